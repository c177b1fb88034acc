"""Test media: real video files whose frames encode their own index, damage written into real files,
and a corpus of real footage with such damage.

Frame ``k`` is a 2 x 4 grid of blocks, block ``b`` (row-major) bright when bit
``b`` of ``k`` is set and dark otherwise: large flat blocks survive lossy
codecs and palette quantisation, so the index of a decoded frame is recovered
exactly (up to 256 frames).
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import av
import numpy as np
from PIL import Image

from videosynth import io

GRID = (2, 4)  # block rows, block columns: 8 bits of frame index
DARK, BRIGHT = 20, 235
MAX_NUMBERED = 2 ** (GRID[0] * GRID[1])


def _block_of(height: int, width: int) -> np.ndarray:
    rows = np.arange(height)[:, None] * GRID[0] // height
    cols = np.arange(width)[None, :] * GRID[1] // width
    return rows * GRID[1] + cols  # (H, W) block number


def numbered_frames(num_frames: int, height: int = 32, width: int = 32, gray: bool = False) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` (or ``[T, H, W, 1]`` when ``gray``) whose blocks spell the frame index."""
    if num_frames > MAX_NUMBERED:
        raise ValueError(f"at most {MAX_NUMBERED} numbered frames")
    block = _block_of(height, width)
    bits = (np.arange(num_frames)[:, None, None] >> block[None]) & 1  # (T, H, W)
    frames = np.where(bits == 1, BRIGHT, DARK).astype(np.uint8)[..., None]  # (T, H, W, 1)
    return frames if gray else np.repeat(frames, 3, axis=-1)


def frame_numbers(frames: np.ndarray) -> list[int]:
    """Recover the index of each decoded numbered frame ``[T, H, W, C]`` (padding-tolerant)."""
    t, h, w = frames.shape[:3]
    if min(h, w) < 16:
        raise ValueError(f"numbered frames need at least 16 x 16 pixels to decode, got {h} x {w}")
    luma = frames.reshape(t, h, w, -1).astype(np.float32).mean(axis=-1)  # (T, H, W)
    out = []
    for frame in luma:
        k = 0
        for b in range(GRID[0] * GRID[1]):
            r, c = divmod(b, GRID[1])
            # the block's interior, 2 px away from its edges (edge padding and ringing)
            y0, y1 = r * h // GRID[0] + 2, (r + 1) * h // GRID[0] - 2
            x0, x1 = c * w // GRID[1] + 2, (c + 1) * w // GRID[1] - 2
            if frame[y0:y1, x0:x1].mean() > (DARK + BRIGHT) / 2:
                k |= 1 << b
        out.append(k)
    return out


def write_numbered(path: str | Path, num_frames: int = 20, height: int = 32, width: int = 32,
                   fps: float = 10.0, gray: bool = False, **kwargs) -> Path:
    """Write a numbered video with :func:`videosynth.io.write_video` (kwargs: codec, pix_fmt, options)."""
    return io.write_video(path, numbered_frames(num_frames, height, width, gray), fps=fps, **kwargs)


def write_frame_folder(folder: str | Path, num_frames: int = 12, height: int = 32, width: int = 32,
                       ext: str = ".png") -> Path:
    """Numbered frames as ``frame_1.png ... frame_N.png`` (unpadded, to test natural sorting)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(numbered_frames(num_frames, height, width)):
        Image.fromarray(frame).save(folder / f"frame_{k + 1}{ext}")
    return folder


def write_broken(folder: str | Path) -> dict[str, str]:
    """Write one file of each kind of breakage; returns {file name: expected reason keyword}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.mp4").write_bytes(b"")
    rng = np.random.default_rng(0)
    (folder / "noise.mp4").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (folder / "text.mp4").write_text("this is not a video\n")
    good = write_numbered(folder / "truncated_src.mp4", 20)
    data = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    good.unlink()
    write_numbered(folder / "short.mp4", 3)
    return {"empty.mp4": "empty", "noise.mp4": "readable", "text.mp4": "readable",
            "truncated.mp4": "readable", "short.mp4": "frames"}


def packets(path: Path, kind: str) -> list[tuple[int, int, float]]:
    """``(byte offset, size, start seconds)`` of every non-empty packet of the first ``kind`` stream."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [(p.pos, p.size, float(p.pts * p.time_base)) for p in container.demux(stream) if p.size]


def damage(src: Path, dst: Path, hit: list[tuple[int, int, float]], part: tuple[float, float]) -> Path:
    """A copy of ``src`` with the share ``part = (from, to)`` of each packet in ``hit`` overwritten by garbage."""
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(0)
    for pos, size, _ in hit:
        a, b = pos + int(part[0] * size), pos + int(part[1] * size)
        data[a:b] = rng.integers(0, 256, b - a, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def claim_frames(src: Path, dst: Path, factor: int) -> Path:
    """A copy of the AVI ``src`` whose headers (``avih`` dwTotalFrames, each ``strh`` dwLength) claim
    ``factor`` times their counts, as some muxers write them; the frames themselves are untouched."""
    data = bytearray(src.read_bytes())
    # avih: dwMicroSecPerFrame, dwMaxBytesPerSec, dwPaddingGranularity, dwFlags, then dwTotalFrames
    # strh: fccType, fccHandler, dwFlags, wPriority + wLanguage, dwInitialFrames, dwScale, dwRate,
    # dwStart, then dwLength
    for tag, offset in ((b"avih", 16), (b"strh", 32)):
        at = data.find(tag)
        while at >= 0:
            field = at + 8 + offset
            (count,) = struct.unpack_from("<I", data, field)
            struct.pack_into("<I", data, field, min(count * factor, 2**32 - 1))
            at = data.find(tag, at + 4)
    dst.write_bytes(bytes(data))
    return dst


# Where Debian's opencv-doc puts its sample videos (apt-get install opencv-doc: real AVIs of
# MPEG-4 Part 2, MS-MPEG4 and Cinepak video, one with an AC-3 track)
OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")


def real_sources(source: Path = OPENCV_SAMPLES) -> list[Path]:
    """The real video files in ``source`` (``[]`` when it is missing)."""
    return sorted(p for p in source.glob("*.avi") if p.is_file()) if source.is_dir() else []


def real_corpus(sources: list[Path], out: Path) -> dict[str, str]:
    """Copy real videos into ``out`` with defects derived from them; returns ``{file name: what it is}``.

    Derived from the first file with sound (else the first file): ``truncated-`` (its first 55 % of
    bytes), ``damaged-`` (a few video packets and one audio packet overwritten in the middle),
    ``claims6x-`` (headers claiming six times the frames, AVI only); plus ``empty.avi`` and
    ``noise.avi``, which hold nothing decodable.
    """
    out.mkdir(parents=True, exist_ok=True)
    kinds = {}
    for path in sources:
        shutil.copyfile(path, out / path.name)
        kinds[path.name] = "as shipped"
    sounding = [p for p in sources if _has_audio(p)]
    src = (sounding or sources)[0]
    data = src.read_bytes()
    (out / f"truncated-{src.name}").write_bytes(data[: len(data) * 55 // 100])
    kinds[f"truncated-{src.name}"] = "first 55 % of its bytes"
    video = packets(src, "video")
    hit = video[len(video) // 2: len(video) // 2 + 3]
    if sounding:
        sound = packets(src, "audio")
        hit.append(sound[len(sound) // 2])
    damage(src, out / f"damaged-{src.name}", hit, (0.25, 0.75))
    kinds[f"damaged-{src.name}"] = f"{len(hit)} packets overwritten"
    if src.suffix.lower() == ".avi":
        claim_frames(src, out / f"claims6x-{src.name}", 6)
        kinds[f"claims6x-{src.name}"] = "headers claim 6x the frames"
    (out / "empty.avi").write_bytes(b"")
    kinds["empty.avi"] = "empty"
    (out / "noise.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 65536, dtype=np.uint8).tobytes())
    kinds["noise.avi"] = "random bytes"
    return kinds


def _has_audio(path: Path) -> bool:
    with av.open(str(path)) as container:
        return bool(container.streams.audio)
