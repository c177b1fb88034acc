"""A dataset of clips from a folder of videos (and/or frame folders).

Layout conventions, all optional::

    root/
      train/ val/           split folders (else a deterministic hash split of the paths)
        <class>/...         the first-level subfolder is the class (sorted names -> labels)
      manifest.csv          ``path, caption, label[, split]``, passed as ``manifest=``

Standard dataset layouts (UCF-101 split files, Kinetics CSVs, BAIR trajectories, see
:mod:`videosynth.data.layouts`) are passed as a :class:`Layout`: the list of videos with
their split, class and time window, which the folder probes and samples like any other.

Each item is ``{"video": float32 [3, T, size, size] in [-1, 1], "label": int64 scalar
(-1 = none), "caption": str ("" = none)}``.  Training draws a random clip start
(and crop window) per call from an RNG seeded by ``(seed, epoch, index)``, so
epochs differ but are reproducible; evaluation takes the centred clip.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from videosynth.data.base import ClipDataset

from videosynth import io
from videosynth.data.manifest import ManifestRow, read_manifest
from videosynth.data.scan import ScanResult, VideoEntry, check_inside, check_root, find_videos, relative_name, scan
from videosynth.data.transforms import ClipTransform, cover_size
from videosynth.errors import DataError

log = logging.getLogger("videosynth.data")

SPLITS = ("train", "val", "all")
CLIP_MODES = ("random", "center")
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validate", "validation", "test")}
MAX_RETRIES = 8  # clips drawn after a decode failure before the item gives up
HASH_SPAN = 2 ** 32  # the hash split compares the first 32 bits of sha1(path) with val_fraction
# A video at most this much longer than its time window is the window's segment already (a stream-copied
# cut starts at the keyframe before the window), so it is used whole instead of being cut again.
TRIMMED_SLACK_S = 2.0
TIME_DECIMALS = 6  # seconds x fps is rounded to this many decimals before it becomes a frame number


def _split_of_path(rel_path: str, val_fraction: float) -> str:
    """Deterministic split from the relative path alone (independent of seed, machine, file order)."""
    h = int(hashlib.sha1(rel_path.encode("utf-8", "surrogateescape")).hexdigest()[:8], 16)  # any name the OS gives
    return "val" if h / HASH_SPAN < val_fraction else "train"


def _item_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def find_split_folders(root: Path) -> dict[str, Path] | None:
    """``{"train": root/train, "val": root/val}`` when the root is organised by split, else None."""
    found = {}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
    return found if "train" in found and "val" in found else None


@dataclass
class Listed:
    """One video a layout names, before it is probed.

    ``path``: relative to the dataset root (posix) or absolute.  ``split``: ``"train"``, a
    val name (``SPLIT_FOLDERS["val"]``), another name (only in split ``"all"``), or ``""``
    for the hash split by ``val_fraction``.  ``label``: class name (``""`` = none).
    ``window``: ``(start, end)`` seconds of the video that clips are cut from (None = all of it).
    ``source``: the file (and line) that names it, for messages (``""``: found by walking the root).
    """

    path: str
    split: str = ""
    label: str = ""
    caption: str = ""
    window: tuple[float, float] | None = None
    source: str = ""


@dataclass
class Layout:
    """The videos of a dataset and what they are.

    ``class_names``: label ``i`` is ``class_names[i]`` (None = the sorted labels found, or
    integer labels as they are).  ``missing``: ``(path, reason)`` of videos the layout lists
    but could not find; they count as broken.
    """

    listing: list[Listed]
    class_names: list[str] | None = None
    missing: list[tuple[str, str]] = field(default_factory=list)


def _resolve(root: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


def folder_layout(root: Path, labels: bool = True) -> Layout:
    """Every video and frame folder under ``root``: split from split folders, class from the first subfolder.

    With split folders (``train/`` and ``val/``/``test/``...) a video outside them is split
    ``"other"``; without them the split is left to the hash split.  ``labels=False`` leaves
    every video unlabelled.
    """
    split_dirs = find_split_folders(root)
    listing = []
    for path in find_videos(root):
        rel = relative_name(path, root)
        parts = rel.split("/")
        split = ""
        if split_dirs is not None:
            split = next((s for s, d in split_dirs.items() if d.name == parts[0]), "other")
            parts = parts[1:]
        label = parts[0] if labels and len(parts) >= 2 else ""
        listing.append(Listed(rel, split=split, label=label))
    return Layout(listing)


def manifest_layout(root: Path, manifest: str | Path) -> Layout:
    """The videos a manifest lists (``path, caption, label[, split]``).

    A manifest without any label leaves the classes to the first subfolder of each path.

    Raises:
        DataError: missing or malformed manifest, or one that lists no videos.
    """
    path = Path(manifest).expanduser()
    if not path.is_absolute() and not path.is_file() and (root / path).is_file():
        path = root / path
    rows: list[ManifestRow] = read_manifest(path)
    if not rows:
        raise DataError(f"{path}: manifest lists no videos")
    labelled = any(r.label for r in rows)
    listing = []
    for r in rows:
        rel = relative_name(_resolve(root, r.path), root)
        parts = rel.split("/")
        label = r.label if labelled else (parts[0] if len(parts) >= 2 else "")
        listing.append(Listed(rel, split=r.split, label=label, caption=r.caption, source=str(path)))
    return Layout(listing)


def _normal_split(split: str) -> str:
    split = split.strip().lower()
    return "val" if split in SPLIT_FOLDERS["val"] else split


def frame_window(entry: VideoEntry, window: tuple[float, float] | None) -> tuple[int, int]:
    """Frames ``[first, end)`` of ``entry`` inside the time ``window`` (seconds).

    Frame ``k`` is shown at ``k / fps`` seconds; it is inside when ``start <= k / fps < end``.
    A video no longer than the window plus ``TRIMMED_SLACK_S`` is the trimmed segment itself
    and is used whole, as is every video when ``window`` is None.
    """
    if window is None or entry.num_frames / entry.fps <= window[1] - window[0] + TRIMMED_SLACK_S:
        return 0, entry.num_frames
    first = math.ceil(round(window[0] * entry.fps, TIME_DECIMALS))
    end = math.ceil(round(window[1] * entry.fps, TIME_DECIMALS))
    return min(first, entry.num_frames), min(end, entry.num_frames)


class VideoFolder(ClipDataset):
    """Clips of ``frames`` frames (every ``stride``-th) resized and cropped to ``size`` x ``size``.

    Args:
        root: folder searched recursively for video files and frame folders.
        frames, stride: clip length and frame step; shorter videos are reported broken.
        size: output height and width (shorter side resized, then cropped).
        split: ``"train"``, ``"val"`` or ``"all"``.
        manifest: CSV/JSONL of ``path, caption, label[, split]``; when given, only listed videos are used.
        layout: the videos to use with their splits, classes and time windows (instead of a
            manifest or the folder walk), e.g. from :mod:`videosynth.data.layouts`.
        val_fraction: share of videos hashed into ``val`` when there are no split folders / column.
        seed: base of the per-item RNG (with the epoch from :meth:`set_epoch`).
        train_clip: ``"random"`` start and crop per call, or ``"center"``; ``val`` is always centred.
        clips_per_video: each video stands for this many items: random clips (training), so a few long
            videos still fill batches and an epoch sees more of each, or centred ones spread evenly
            from its start to its end (``val``, ``"center"``), so a few held-out videos give many clips.
        max_broken_fraction: abort when more than this share of the files is broken.
        broken_hint: how the caller raises that share, for the message (a config key, a flag).
        cache_dir: where the scan index is cached (default: the user cache dir).
        progress: show a progress bar while scanning (only on a terminal).
        verify: decode the first and last frame of each video at scan time.
        audio_rate: with a sample rate (Hz), each item carries ``"audio"``: the sound under its clip,
            float32 ``[S]`` mono in [-1, 1], ``S = round(frames * stride * audio_rate / fps)``
            (sample 0 at the clip's first frame). Videos without sound are reported broken.
        fps: the frame rate the sound is aligned with (0 = the most common rate of the videos).
            A video at another rate has the sound under its clip resampled to the same ``S``
            samples, so every clip frame gets ``audio_rate / fps`` samples (its pitch scales by
            ``fps / video fps``).

    Attributes:
        class_names: class names (index = label): sorted, or the layout's order.
        broken: ``(path, reason)`` for every file skipped.
        from_cache: whether the scan index came from the cache.

    Raises:
        DataError: missing root, no usable videos, an empty split, or too many broken files.
    """

    def __init__(self, root: str | Path, frames: int = 16, size: int = 64, stride: int = 1, split: str = "train",
                 manifest: str | Path | None = None, val_fraction: float = 0.1, seed: int = 0,
                 train_clip: str = "random", max_broken_fraction: float = 0.2, cache_dir: str | Path | None = None,
                 progress: bool = True, verify: bool = True,
                 broken_hint: str = "raise data.max_broken_fraction", layout: Layout | None = None,
                 audio_rate: int = 0, fps: float = 0.0, clips_per_video: int = 1) -> None:
        if split not in SPLITS:
            raise DataError(f"split must be one of {SPLITS}, got {split!r}")
        if train_clip not in CLIP_MODES:
            raise DataError(f"train_clip must be one of {CLIP_MODES}, got {train_clip!r}")
        if frames < 1 or stride < 1 or size < 1 or clips_per_video < 1:
            raise DataError(f"frames, stride, size and clips_per_video must be positive, got {frames}, {stride}, "
                            f"{size}, {clips_per_video}")
        if manifest is not None and layout is not None:
            raise DataError("give a manifest or a layout, not both")
        self.root = Path(root).expanduser()
        check_root(self.root)
        self.frames, self.stride, self.size, self.split, self.seed = frames, stride, size, split, seed
        self.epoch = 0
        self.clip_mode = train_clip if split in ("train", "all") else "center"
        self.repeats = clips_per_video
        self.transform = ClipTransform(size, crop="random" if self.clip_mode == "random" else "center")
        self._reader = io.VideoReader()  # keeps recent files open: a clip's sound and the next clip reuse them
        self.span = (frames - 1) * stride + 1  # frames a clip covers in the source

        if layout is None:
            layout = manifest_layout(self.root, manifest) if manifest is not None else folder_layout(self.root)
        for x in layout.listing:
            check_inside(self.root, self._resolve(x.path), x.source or "the layout")
        listed = {self._rel(self._resolve(x.path)): x for x in layout.listing}
        paths = [self._resolve(rel) for rel in listed]
        result: ScanResult = scan(self.root, paths, min_frames=self.span, verify=verify, cache_dir=cache_dir,
                                  progress=progress)
        self.from_cache = result.from_cache
        entries, outside = self._in_windows(result.entries, listed)
        self.audio_rate = audio_rate
        silent = []
        if audio_rate > 0:
            entries, silent = self._with_sound(entries)
        self.broken = [(str(self._resolve(p)), reason)
                       for p, reason in layout.missing + result.broken + outside + silent]
        total = len(entries) + len(self.broken)
        if total == 0:
            raise DataError(f"{self.root}: no videos found (looked for {', '.join(io.VIDEO_EXTENSIONS)} "
                            f"files and folders of {'/'.join(io.IMAGE_EXTENSIONS)} frames)")
        if len(self.broken) > max_broken_fraction * total:
            shown = "; ".join(f"{p}: {r}" for p, r in self.broken[:3])
            raise DataError(f"{self.root}: {len(self.broken)} of {total} videos are broken or shorter than "
                            f"{self.span} frames (more than max_broken_fraction={max_broken_fraction}); "
                            f"e.g. {shown}. Fix or remove them, or {broken_hint}")
        if not entries:
            path, reason = self.broken[0]
            raise DataError(f"{self.root}: no usable videos ({len(self.broken)} broken, e.g. {path}: {reason})")
        self._label_and_split(entries, listed, val_fraction, layout.class_names)
        rates = [round(e.fps, 3) for e in self.entries]
        self.fps = float(fps) if fps > 0 else max(set(rates), key=rates.count)  # the most common frame rate

    # ------------------------------------------------------------------ indexing

    def _resolve(self, path: str) -> Path:
        return _resolve(self.root, path)

    def _rel(self, path: Path) -> str:
        return relative_name(path, self.root)

    def _with_sound(self, entries):
        """``(entries with a soundtrack, [(path, reason)] of the rest)``: the sound is asked for."""
        kept, silent = [], []
        for item in entries:
            try:
                info = io.probe_audio(self._resolve(item[0].path))
            except DataError as exc:
                silent.append((item[0].path, f"unreadable soundtrack ({exc})"))
                continue
            if info is None:
                what = "no audio.* file beside its frames" if self._resolve(item[0].path).is_dir() else "no audio stream"
                silent.append((item[0].path, f"{what}, and data.audio asks for sound"))
            else:
                kept.append(item)
        return kept, silent

    def clip_audio(self, index: int, start: int) -> torch.Tensor:
        """The sound under the clip of video ``index`` from frame ``start``: float32 ``[S]`` (see the class doc)."""
        entry = self.entries[index]
        samples = round(self.frames * self.stride * self.audio_rate / self.fps)
        t0, length = io.clip_window(start, self.frames, self.stride, entry.fps)
        rate = max(1, round(samples / length))  # == audio_rate when the video runs at self.fps
        sound = self._reader.read_audio(self.path(index), rate, t0, length)
        sound = np.pad(sound[:samples], (0, max(0, samples - len(sound))))  # rounding of the rate: exact S
        return torch.from_numpy(np.ascontiguousarray(sound, dtype=np.float32))

    def _in_windows(self, entries: list[VideoEntry], listed: dict[str, Listed]):
        """``([(entry, (first, end))], broken)``: each video's frames inside its time window."""
        kept, outside = [], []
        for e in entries:
            first, end = frame_window(e, listed[e.path].window)
            if end - first >= self.span:
                kept.append((e, (first, end)))
            else:
                start, stop = listed[e.path].window
                outside.append((e.path, f"{end - first} frames lie in its window {start:g}-{stop:g} s "
                                        f"({e.num_frames} frames at {e.fps:g} fps), a clip needs {self.span}"))
        return kept, outside

    def _label_and_split(self, entries: list[tuple[VideoEntry, tuple[int, int]]], listed: dict[str, Listed],
                         val_fraction: float, class_names: list[str] | None) -> None:
        items = []  # (entry, frame range, split, listing)
        for e, frames in entries:
            x = listed[e.path]
            split = _normal_split(x.split) if x.split else _split_of_path(e.path, val_fraction)
            items.append((e, frames, split, x))

        keys = sorted({x.label for *_, x in items if x.label})
        if class_names is not None:
            self.class_names = list(class_names)
            label_of = {name: i for i, name in enumerate(self.class_names)}
            unknown = [k for k in keys if k not in label_of]
            if unknown:
                raise DataError(f"{self.root}: labels {unknown[:3]} are not among the layout's class names")
        elif keys and all(k.lstrip("-").isdigit() for k in keys):
            # integer labels from a manifest: class i is named "i"
            self.class_names = [str(i) for i in range(max(int(k) for k in keys) + 1)]
            label_of = {k: int(k) for k in keys}
        else:
            self.class_names = keys
            label_of = {k: i for i, k in enumerate(keys)}
        chosen = [it for it in items if self.split == "all" or it[2] == self.split]
        if not chosen:
            raise DataError(f"{self.root}: split '{self.split}' holds no usable videos ({len(items)} in total); "
                            f"add videos, adjust data.val_fraction (now {val_fraction}) or use split 'all'")
        self.entries = [e for e, *_ in chosen]
        self.frame_ranges = [frames for _, frames, *_ in chosen]
        self.labels = [label_of.get(x.label, -1) for *_, x in chosen]
        self._captions = [x.caption for *_, x in chosen]

    # ------------------------------------------------------------------ dataset API

    def __len__(self) -> int:
        return len(self.entries) * self.repeats

    def set_epoch(self, epoch: int) -> None:
        """Change the random clips drawn in training (call once per epoch, before iterating).

        DataLoader workers copy the dataset when an iterator starts, so this reaches
        them unless ``persistent_workers=True`` (then the epoch stays fixed).
        """
        self.epoch = int(epoch)

    def captions(self) -> list[str]:
        """Distinct non-empty captions of this split, sorted."""
        return sorted({c for c in self._captions if c})

    def path(self, index: int) -> Path:
        """Absolute path of video ``index``."""
        return self._resolve(self.entries[index].path)

    def read_frames(self, index: int, start: int) -> np.ndarray:
        """The clip of video ``index`` from frame ``start``: uint8 ``[frames, h, w, 3]``, scaled while decoding
        so its shorter side is ``size`` (:func:`~videosynth.data.transforms.cover_size`); the transform crops it.

        Raises:
            DataError: the file cannot be read (see :func:`videosynth.io.read_clip`).
        """
        entry = self.entries[index]
        return self._reader.read_clip(self.path(index), start, self.frames, self.stride,
                                      size=cover_size(entry.height, entry.width, self.size))

    def clip_start(self, index: int, generator: torch.Generator | None = None, slot: int = 0) -> int:
        """First frame of the clip for video ``index``, inside its time window: random (training), or centred --
        with ``clips_per_video`` above 1, clip ``slot`` of that many spread evenly over the video."""
        first, end = self.frame_ranges[index]
        room = end - first - self.span + 1  # number of valid starts
        if self.clip_mode == "random":
            return first + int(torch.randint(0, room, (1,), generator=generator))
        if self.repeats == 1:
            return first + (room - 1) // 2
        return first + round(slot * (room - 1) / (self.repeats - 1))

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items ({len(self.entries)} videos)")
        generator = torch.Generator().manual_seed(_item_seed(self.seed, self.epoch, index))
        current = index % len(self.entries)
        reason = ""
        for _attempt in range(MAX_RETRIES + 1):
            try:
                start = self.clip_start(current, generator, index // len(self.entries))
                frames = self.read_frames(current, start)
                sound = self.clip_audio(current, start) if self.audio_rate > 0 else None
            except (DataError, OSError, ValueError, RuntimeError) as exc:
                reason = str(exc)
                log.warning("could not read a clip (%s); drawing another video", reason)
                current = int(torch.randint(0, len(self.entries), (1,), generator=generator))
                continue
            item = {"video": self.transform(frames, generator),
                    "label": torch.tensor(self.labels[current], dtype=torch.int64),
                    "caption": self._captions[current]}
            if sound is not None:
                item["audio"] = sound  # (S,) mono in [-1, 1]
            return item
        raise DataError(f"{self.root}: {MAX_RETRIES + 1} clips in a row failed to decode (last: {reason}); "
                        f"check the files or rescan")

    def __repr__(self) -> str:
        return (f"VideoFolder(root={str(self.root)!r}, split={self.split!r}, videos={len(self.entries)}, "
                f"classes={len(self.class_names)}, broken={len(self.broken)}, frames={self.frames}, "
                f"stride={self.stride}, size={self.size})")
