"""Find videos under a folder, probe them once, and cache the result.

A scan lists every video file (by extension) and every frame folder (a
directory holding images) below a root, probes each one (header only, plus the
first and last frame decoded to catch truncation) and sorts them into usable
entries and broken files with a reason; a large folder is probed by a pool of
processes, one per CPU, in chunks.  The result is cached as JSON in the
user cache directory (``$XDG_CACHE_HOME/videosynth/index`` or
``~/.cache/videosynth/index``), keyed by the file list, sizes, mtimes and the
clip parameters, so a second scan of an unchanged folder probes nothing.  The
dataset folder itself is never written to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from videosynth import io
from videosynth.errors import DataError
from videosynth.usercache import cache_home, write_cache_file

log = logging.getLogger("videosynth.data")

CACHE_VERSION = 4  # bump when the cached entry format or meaning changes
MAX_LOGGED_BROKEN = 20  # broken files listed one per warning; the rest are counted
VFR_SLACK = 0.02  # share of the header's frame count allowed to be missing at the end (timestamp rounding)


@dataclass
class VideoEntry:
    """A usable video: ``path`` relative to the scan root (posix), plus its probe numbers.

    ``width``/``height``: the frame size as shown and read, the display rotation applied (a phone's
    1920x1080 stream turned a quarter is 1080 wide, 1920 high).

    ``skipped_packets``: undecodable packets the scan's reads met and skipped (the gap filled, see
    :mod:`videosynth.io.packet_errors`); the scan decodes the first and last frame only, so a file
    damaged elsewhere shows 0 here and is reported by the read that meets the damage.

    ``header_frames``: the frame count the header claims where fewer frames decode (a truncated
    download, a muxer that wrote a wrong count); ``num_frames`` is then the frames that decode, and
    clips are cut from those. 0 when the header is right.
    """

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    skipped_packets: int = 0
    header_frames: int = 0


@dataclass
class ScanResult:
    """Usable ``entries`` and ``broken`` ``(path, reason)`` pairs (paths relative to ``root``)."""

    root: str
    entries: list[VideoEntry] = field(default_factory=list)
    broken: list[tuple[str, str]] = field(default_factory=list)
    from_cache: bool = False


# ----------------------------------------------------------------------------- listing


def check_root(root: Path) -> None:
    """A one-line DataError unless ``root`` is a folder (a file given as a folder is named as such)."""
    if root.is_dir():
        return
    if root.exists():
        raise DataError(f"dataset folder {root} is a file, not a folder: data.root must be a folder of videos "
                        "or frame folders (put the file in a folder, or list files in a data.manifest)")
    raise DataError(f"dataset folder not found: {root}")


def check_inside(root: Path, path: Path, source: str) -> None:
    """Refuse ``path`` unless it lies under the dataset ``root``, judged on the lexical path.

    ``..`` steps and absolute paths are resolved by ``normpath`` against the absolute root, not by
    following symlinks: a symlink the user placed inside the root (to a disk of videos, say) stays
    allowed, while a manifest or split file cannot name ``../../secret.avi`` or ``/etc/...``.

    Raises:
        DataError: naming the path, ``source`` (the file that lists it) and the root.
    """
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.join(base, os.path.expanduser(path)))
    if os.path.commonpath([base, full]) != base:
        raise DataError(f"{source} names {printable(str(path))}, which lies outside the dataset root {base}; "
                        "a manifest or split file may only list videos under data.root (no '..' out of it, no "
                        "absolute paths elsewhere): move the videos under the root or set data.root above them")


def find_videos(root: str | Path) -> list[Path]:
    """Video files and frame folders below ``root``, naturally sorted; hidden entries skipped.

    A directory that directly holds image files is a frame folder (not searched further).

    Raises:
        DataError: ``root`` is not a directory.
    """
    root = Path(root)
    check_root(root)
    found: list[Path] = []
    seen: set[str] = set()  # real paths of visited folders: symlink loops are walked once
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=io.natural_key)
        visible = [f for f in filenames if not f.startswith(".")]
        here = Path(dirpath)
        if here != root and any(os.path.splitext(f)[1].lower() in io.IMAGE_EXTENSIONS for f in visible):
            found.append(here)
            dirnames[:] = []  # a frame folder is one video
            continue
        # FIFOs, sockets and devices named *.mp4 are listed too: scan() reports them broken without opening them
        found.extend(here / f for f in visible if os.path.splitext(f)[1].lower() in io.VIDEO_EXTENSIONS)
    return sorted(found, key=lambda p: io.natural_key(p.relative_to(root).as_posix()))


def _signature(path: Path) -> list:
    """(size, mtime_ns) of a file; (frame count, total size, newest mtime) of a frame folder."""
    try:
        if path.is_dir():
            stats = [f.stat() for f in io.list_frames(path)]
            return [len(stats), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)]
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    except (OSError, DataError):
        return [-1, -1]


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The index cache folder: ``cache_dir``, else ``$XDG_CACHE_HOME/videosynth/index``, else ``~/.cache/...``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return cache_home() / "index"


def _cache_key(root: Path, rel_paths: list[str], signatures: list, params: dict) -> str:
    blob = json.dumps({"version": CACHE_VERSION, "root": str(root.resolve()), "files": list(zip(rel_paths, signatures)),
                       "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


# ----------------------------------------------------------------------------- probing


def _last_readable(reader: io.VideoReader, path: Path, num_frames: int) -> int:
    """Frame count confirmed by decoding the last frame (the first is known to decode).

    Variable-frame-rate files map timestamps to frame slots with small rounding
    drift, so a last frame that is missing by a few slots (``VFR_SLACK`` of the
    count) shortens the video; past that the header overstates the file (truncated,
    or a wrong count), and the frames that do decode are found by bisection.
    """
    try:
        reader.read_clip(path, num_frames - 1, 1)
        return num_frames
    except DataError:
        shorter = num_frames - max(1, round(num_frames * VFR_SLACK))
        if shorter < 1:
            raise
        try:
            reader.read_clip(path, shorter - 1, 1)
            return shorter
        except DataError:
            return _decodable_frames(reader, path, shorter - 1)


def _decodable_frames(reader: io.VideoReader, path: Path, missing: int) -> int:
    """Frames that decode from the start, given that frame 0 decodes and frame ``missing`` does not
    (each probe seeks to a keyframe and decodes one frame)."""
    good, bad = 0, missing
    while bad - good > 1:
        mid = (good + bad) // 2
        try:
            reader.read_clip(path, mid, 1)
            good = mid
        except DataError:
            bad = mid
    return good + 1


def check_video(path: Path, min_frames: int, verify: bool = True) -> VideoEntry | str:
    """Probe one video; return its entry, or the reason it cannot be used."""
    reader = io.VideoReader(max_open=1)  # the last frame's seek reuses the file the first frame opened
    skipped_before = io.skipped_packets(path)
    try:
        info = io.probe(path)
        if info.num_frames < min_frames:
            return f"only {info.num_frames} frames, a clip needs {min_frames}"
        num_frames = info.num_frames
        if verify:
            # The first and last frame decode: catches truncated files whose header looks fine.
            reader.read_clip(path, 0, 1)
            num_frames = _last_readable(reader, path, num_frames)
            if num_frames < min_frames:
                return f"only {num_frames} decodable frames, a clip needs {min_frames}"
    except DataError as exc:
        reason = str(exc)
        prefix = f"{path}: "
        return reason[len(prefix):] if reason.startswith(prefix) else reason
    except Exception as exc:  # noqa: BLE001 - a scan reports any failure of one file and goes on
        return f"unexpected {type(exc).__name__}: {exc}"
    finally:
        reader.close()
    skipped = io.skipped_packets(path) - skipped_before
    overstated = num_frames < info.num_frames - max(1, round(info.num_frames * VFR_SLACK))
    return VideoEntry("", num_frames, info.fps, info.width, info.height, info.codec, skipped,
                      info.num_frames if overstated else 0)


# Seconds one video's probe may take before the scan reports it broken and goes on.
PROBE_TIMEOUT_S = 60.0


def check_video_bounded(path: Path, min_frames: int, verify: bool = True,
                        timeout: float | None = None) -> VideoEntry | str:
    """:func:`check_video` in a worker thread, given up after ``timeout`` seconds (a hung read).

    The worker is a daemon thread: a probe stuck in the OS does not keep the process alive.
    """
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    box: list = []
    worker = threading.Thread(target=lambda: box.append(check_video(path, min_frames, verify)), daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive() or not box:
        return f"probe did not finish within {timeout:g} s (a hung read?); skipped"
    return box[0]


# Fewer files than this are probed in this process: starting workers (which import the library
# when they are spawned) costs more than probing a few files (~5 ms each for a small mp4).
PARALLEL_MIN_FILES = 100
CHUNKS_PER_WORKER = 8  # chunks handed to each worker: small enough to balance, large enough to batch


def check_file(path: Path, min_frames: int, verify: bool = True) -> VideoEntry | str:
    """One file of a scan: its entry, or the reason it is broken (missing, not a regular file, empty, or
    what :func:`check_video_bounded` finds). The entry's ``path`` is left for the caller to set."""
    if not path.exists():
        return "file not found"
    if not (path.is_file() or path.is_dir()):
        return "not a regular file (a FIFO, socket or device); skipped"
    if path.is_file() and path.stat().st_size == 0:
        return "empty file (0 bytes)"
    return check_video_bounded(path, min_frames, verify)


def _check_chunk(paths: list[Path], min_frames: int, verify: bool) -> list[VideoEntry | str]:
    return [check_file(path, min_frames, verify) for path in paths]


def _check_all(paths: list[Path], min_frames: int, verify: bool, workers: int, bar) -> list[VideoEntry | str]:
    """:func:`check_file` of every path, in order; across ``workers`` processes when there are many files."""
    if workers <= 1 or len(paths) < PARALLEL_MIN_FILES:
        outcomes = []
        for path in paths:
            outcomes.append(check_file(path, min_frames, verify))
            bar.update(1)
        return outcomes
    size = max(1, math.ceil(len(paths) / (workers * CHUNKS_PER_WORKER)))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    done: dict[int, list] = {}
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks))) as pool:
            futures = {pool.submit(_check_chunk, chunk, min_frames, verify): i for i, chunk in enumerate(chunks)}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                bar.update(len(done[futures[future]]))
    except BrokenProcessPool:
        log.warning("a scan worker process died (a crash in a decoder?); probing the %d remaining files here",
                    sum(len(c) for i, c in enumerate(chunks) if i not in done))
        for i, chunk in enumerate(chunks):
            if i not in done:
                done[i] = _check_chunk(chunk, min_frames, verify)
                bar.update(len(chunk))
    return [outcome for i in range(len(chunks)) for outcome in done[i]]


def scan(root: str | Path, paths: list[Path] | None = None, min_frames: int = 1, verify: bool = True,
         cache_dir: str | Path | None = None, use_cache: bool = True, progress: bool = True,
         quiet: bool = False, workers: int | None = None) -> ScanResult:
    """Probe every video under ``root`` (or just ``paths``) and split usable from broken.

    ``min_frames``: a video shorter than this is broken ("only N frames...").
    Missing paths (e.g. listed by a manifest) are reported broken, not raised.
    The result is cached (see module docstring); ``use_cache=False`` rescans.
    Broken files are logged as warnings unless ``quiet``.
    ``workers``: processes probing files at once (default: one per CPU; 1, or fewer than
    ``PARALLEL_MIN_FILES`` files, probes in this process). The result does not depend on it:
    entries and broken files come in the order of the paths.

    Raises:
        DataError: ``root`` is not a directory.
    """
    root = Path(root)
    check_root(root)
    paths = find_videos(root) if paths is None else [Path(p) for p in paths]
    rel = [relative_name(p, root) for p in paths]
    signatures = [_signature(p) for p in paths]
    key = _cache_key(root, rel, signatures, {"min_frames": min_frames, "verify": verify})
    cache_file = cache_root(cache_dir) / f"{key}.json"
    if use_cache:
        cached = _load_cache(cache_file)
        if cached is not None:
            cached.root = str(root)
            if not quiet:
                _log_broken(root, cached.broken)
            return cached
    result = ScanResult(str(root))
    probed = [i for i, name in enumerate(rel) if is_text(name)]
    with tqdm(total=len(probed), desc=f"scanning {root}", unit="video", leave=False,
              disable=not (progress and sys.stderr.isatty())) as bar:
        outcomes = dict(zip(probed, _check_all([paths[i] for i in probed], min_frames, verify,
                                               workers or os.cpu_count() or 1, bar)))
    for i, name in enumerate(rel):
        outcome = outcomes.get(i, UNNAMEABLE)
        if isinstance(outcome, str):
            result.broken.append((printable(name), outcome))
        else:
            outcome.path = name
            result.entries.append(outcome)
    if not quiet:
        _log_broken(root, result.broken)
    if use_cache:
        _save_cache(cache_file, result)
    return result


# Manifests, caches, logs and reports are UTF-8 text: a file whose name is not valid UTF-8 (a
# Latin-1 name from an old archive) cannot be listed in them, so the scan reports it, named with
# its odd bytes escaped, instead of letting it break every later write.
UNNAMEABLE = "its name is not valid UTF-8; rename the file (manifests, caches and logs are UTF-8 text)"


def is_text(name: str) -> bool:
    """Whether ``name`` (a path as the OS gave it) is valid UTF-8 text (no undecodable bytes)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def printable(name: str) -> str:
    """``name`` with the bytes that are not UTF-8 written as ``\\xNN`` (for reports and messages)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a POSIX string (as given when it is not under ``root``)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _log_broken(root: Path, broken: list[tuple[str, str]]) -> None:
    for name, reason in broken[:MAX_LOGGED_BROKEN]:
        log.warning("skipping broken video %s: %s", root / name, reason)
    if len(broken) > MAX_LOGGED_BROKEN:
        log.warning("... and %d more broken videos under %s", len(broken) - MAX_LOGGED_BROKEN, root)


def _load_cache(file: Path) -> ScanResult | None:
    try:
        data = json.loads(file.read_text())
        if data.get("version") != CACHE_VERSION:
            return None
        entries = [VideoEntry(**e) for e in data["entries"]]
        broken = [(str(p), str(r)) for p, r in data["broken"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or unreadable cache: rescan
    return ScanResult(data.get("root", ""), entries, broken, from_cache=True)


def _save_cache(file: Path, result: ScanResult) -> None:
    data = {"version": CACHE_VERSION, "root": result.root,
            "entries": [asdict(e) for e in result.entries], "broken": [list(b) for b in result.broken]}
    write_cache_file(file, json.dumps(data).encode())
