"""Video I/O with PyAV: probe, read a clip (seek + decode only what is needed), write, grids.

This is the I/O boundary of the library: frames here are ``uint8 [T, H, W, 3]``
numpy arrays (RGB).  Conversion to the library layout (``float32 [C, T, H, W]``
in ``[-1, 1]``) lives in :mod:`videosynth.data.transforms`.

A *video* is either a file any bundled FFmpeg demuxer reads (mp4, mov, mkv,
webm, avi, gif, ...) or a *frame folder*: a directory of jpg/png images whose
names sort naturally (``frame_2.png`` before ``frame_10.png``).  Every function
that reads takes either.

Reading a clip seeks to the nearest keyframe at or before the first wanted frame
and decodes forward only until the last wanted frame; the frame index of each
decoded frame is computed from its presentation timestamp (pts), so the clip is
correct for B-frames, long GOPs and containers with a start offset.
"""

from __future__ import annotations

import gc
import math
import os
import re
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image
import torch

from videosynth.errors import DataError

VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".mpeg",
    ".wmv", ".flv", ".ts", ".mts", ".m2ts", ".3gp", ".ogv",
)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
AUDIO_EXTENSIONS = (".wav", ".mp3", ".aac", ".m4a", ".flac", ".ogg", ".oga", ".opus", ".wma", ".aif", ".aiff")
# A frame folder's soundtrack is a file of this name (any audio suffix) inside the folder.
SOUNDTRACK_STEM = "audio"

# Frame folders carry no timing; this is the rate reported by probe() for them.
FRAME_FOLDER_FPS = 25.0
# Codecs whose pts/seek support is unreliable: always decode from the first frame.
SEQUENTIAL_CODECS = ("gif", "apng")
# Decoders that drop non-reference pictures packet by packet when asked (skip_frame, see _frames)
# and show every other picture unchanged; libdav1d (AV1) takes the setting once and shows wrong frames.
SKIPPING_CODECS = ("h264", "hevc", "mpeg4")
# AVI stores no presentation times: its demuxer numbers packets in decode order and guesses pts.
# MPEG-4 Part 2 (Xvid, DivX) guesses come out right but one frame late where the file has B-frames
# (see _start_pts); H.264/HEVC guesses are wrong under B-pyramids, so those decode from the start.
AVI_SEQUENTIAL_CODECS = ("h264", "hevc")
# packets demuxed from the start of an AVI file to find its first picture's pts (a reorder window)
AVI_START_PACKETS = 16

# Encoder chosen for each output suffix (override with ``codec=``).
DEFAULT_CODECS = {
    ".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264",
    ".webm": "libvpx-vp9", ".avi": "mjpeg",
}
# Pixel format per encoder; 4:2:0 formats need even width and height.
DEFAULT_PIX_FMTS = {
    "libx264": "yuv420p", "libx265": "yuv420p", "hevc": "yuv420p", "h264": "yuv420p",
    "libvpx-vp9": "yuv420p", "libvpx": "yuv420p", "libsvtav1": "yuv420p",
    "libaom-av1": "yuv420p", "av1": "yuv420p", "mpeg4": "yuv420p",
    "mjpeg": "yuvj420p", "ffv1": "yuv444p", "prores": "yuv422p10le",
    "png": "rgb24", "rawvideo": "rgb24", "gif": "rgb8",
}
GRAY_CODECS = ("libx264", "ffv1")  # encoders that store single-channel input as gray
EVEN_PIX_FMTS = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv422p10le", "nv12")
# Constant rate factor for x264/x265/vp9: visually near-lossless at small sizes.
DEFAULT_CRF = "18"


# ----------------------------------------------------------------------------- helpers


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: ``f2.png`` < ``f10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frames(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, naturally sorted (hidden files skipped)."""
    folder = Path(folder)
    try:
        names = [e.name for e in os.scandir(folder)
                 if e.is_file() and not e.name.startswith(".")
                 and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS]
    except OSError as exc:
        raise DataError(f"{folder}: cannot list frame folder ({exc.strerror or exc})") from None
    return [folder / n for n in sorted(names, key=natural_key)]


def _describe(exc: BaseException) -> str:
    """One-line reason from an FFmpeg/OS error."""
    text = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    return str(text).splitlines()[0]


def _open(path: Path):
    """``path`` opened for reading, its decoders set to one thread each.

    One thread: a decoder with a thread pool that a forked process inherits (a DataLoader or scan
    worker) hangs it when it is freed there, joining threads the child does not have; and on
    short random clips the pool did not pay (the same clips/s with and without it, 320x240 H.264).
    """
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable video ({_describe(exc)})") from None
    for stream in (*container.streams.video, *container.streams.audio):
        stream.codec_context.thread_count = 1
    return container


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise DataError(f"{path}: contains no video stream")
    return container.streams.video[0]


def _rate(stream) -> Fraction:
    """Frames per second of ``stream`` as an exact fraction (25 when unknown)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate.numerator, rate.denominator)
    return Fraction(FRAME_FOLDER_FPS)


def _frame_index(pts: int, start_pts: int, fps: Fraction, time_base: Fraction) -> int:
    """Frame number of a decoded frame from its pts: the nearest frame slot, ties to even like ``round``.

    Integer arithmetic on the fractions' parts: this runs once per decoded frame.
    """
    num = (pts - start_pts) * time_base.numerator * fps.numerator
    den = time_base.denominator * fps.denominator
    q, r = divmod(num, den)
    return q + (2 * r > den or (2 * r == den and q % 2 == 1))


def _rgb(frame, reformatter: VideoReformatter, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 ``[H, W, 3]`` of a decoded frame; scaled to ``size = (H, W)`` by FFmpeg when given.

    One reformatter serves a whole read: ``frame.to_ndarray(format=...)`` builds a new scaler, with
    its thread pool, per frame, which took 4x as long as the conversion itself on 320x240 frames.
    One scaler thread: DataLoader workers, not the scaler, spread decoding over the cores.
    """
    width, height = (None, None) if size is None else (size[1], size[0])
    return reformatter.reformat(frame, width, height, format="rgb24", threads=1).to_ndarray()


# ----------------------------------------------------------------------------- probe


@dataclass
class VideoInfo:
    """What :func:`probe` learns about a video without decoding it.

    Attributes:
        path: the file or frame folder.
        num_frames: number of frames (container count when it has one, else counted packets).
        fps: frames per second (``FRAME_FOLDER_FPS`` for frame folders).
        width, height: frame size in pixels.
        duration: seconds.
        codec: decoder name (``"frames"`` for a frame folder).
    """

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    duration: float
    codec: str


def probe(path: str | Path) -> VideoInfo:
    """Read the header of a video file or frame folder.

    The frame count is exact when the container stores it (mp4, mov, avi);
    otherwise (mkv, webm, gif) the packets are counted by demuxing, which does
    not decode anything.

    Raises:
        DataError: missing, empty or unreadable file, no video stream, empty frame folder.
    """
    path = Path(path)
    if path.is_dir():
        frames = list_frames(path)
        if not frames:
            raise DataError(f"{path}: frame folder holds no {'/'.join(IMAGE_EXTENSIONS)} images")
        try:
            with Image.open(frames[0]) as im:
                width, height = im.size
        except (OSError, ValueError) as exc:
            raise DataError(f"{frames[0]}: not a readable image ({_describe(exc)})") from None
        n = len(frames)
        return VideoInfo(str(path), n, FRAME_FOLDER_FPS, width, height, n / FRAME_FOLDER_FPS, "frames")

    container = _open(path)
    try:
        stream = _video_stream(container, path)
        fps = _rate(stream)
        num_frames = int(stream.frames or 0)
        if num_frames <= 0:
            num_frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = num_frames / float(fps)
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        codec = ctx.name
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable video ({_describe(exc)})") from None
    finally:
        container.close()
    if width <= 0 or height <= 0:
        raise DataError(f"{path}: video stream has no frame size (unsupported or corrupt)")
    return VideoInfo(str(path), num_frames, float(fps), width, height, duration, codec)


# ----------------------------------------------------------------------------- read


def _clip_indices(start: int, num_frames: int, stride: int) -> list[int]:
    if start < 0 or num_frames < 1 or stride < 1:
        raise ValueError(f"need start >= 0, num_frames >= 1, stride >= 1; got {start}, {num_frames}, {stride}")
    return [start + i * stride for i in range(num_frames)]


def _read_folder(folder: Path, indices: list[int], size: tuple[int, int] | None = None) -> np.ndarray:
    frames = list_frames(folder)
    if indices[-1] >= len(frames):
        raise DataError(f"{folder}: clip needs frame {indices[-1]} but the folder holds {len(frames)} frames")
    out = []
    for i in indices:
        try:
            with Image.open(frames[i]) as im:
                im = im.convert("RGB")
                out.append(np.asarray(im if size is None else im.resize((size[1], size[0]), Image.BILINEAR)))
        except (OSError, ValueError) as exc:
            raise DataError(f"{frames[i]}: not a readable image ({_describe(exc)})") from None
    if len({a.shape for a in out}) > 1:
        raise DataError(f"{folder}: frames have different sizes; resize them to one size")
    return np.stack(out)  # (T, H, W, 3)


def _is_avi(container) -> bool:
    return "avi" in container.format.name.split(",")


def _sequential(container, stream) -> bool:
    """Whether ``stream``'s frames are numbered by counting from the first (no trustworthy pts)."""
    name = stream.codec_context.name
    return name in SEQUENTIAL_CODECS or (name in AVI_SEQUENTIAL_CODECS and _is_avi(container))


def _clip_seeks(container, indices: list[int]) -> bool:
    """Whether reading ``indices`` starts with a seek (else it decodes from the first frame)."""
    video = container.streams.video
    return bool(video) and indices[0] > 0 and not _sequential(container, video[0])


def _start_pts(container, stream) -> int:
    """pts of the first picture shown: frame 0 of :func:`_frame_index`.

    The stream's start time, except in AVI: there the first packet's dts is 0 and a file with
    B-frames shows its first picture at pts 1 (the decoder's delay), so every frame would be
    numbered one late; the smallest pts among the first packets is the first picture's.
    Leaves ``container`` at its start in that case, unless the file's value is already known.
    """
    start = stream.start_time or 0
    if not _is_avi(container):
        return start
    stamp = _stamp(Path(container.name))  # a file's first picture is found once per process (it took 3 % of a read)
    key = (container.name, stream.index, stamp)
    if stamp is not None and key in _AVI_STARTS:
        return _AVI_STARTS[key]
    container.seek(0)
    seen = [packet.pts for _, packet in zip(range(AVI_START_PACKETS), container.demux(stream))
            if packet.pts is not None and packet.size > 0]
    container.seek(0)
    found = min(seen, default=start)
    if stamp is not None:
        _AVI_STARTS[key] = found
        while len(_AVI_STARTS) > 100_000:
            _AVI_STARTS.popitem(last=False)
    return found


_AVI_STARTS: OrderedDict[tuple, int] = OrderedDict()  # (path, stream, _stamp) -> pts of the first picture


def _frames(container, stream, skip_before: int | None, packets: list[int]):
    """Decoded frames of ``stream`` from where ``container`` stands.

    With ``skip_before`` (a pts), packets that show before it are decoded with ``skip_frame =
    NONREF``: the decoder drops the pictures no other picture refers to (most B-frames) instead of
    decoding them. A clip never shows those pictures, and the frames it does show come out bit for
    bit the same. Every other packet is decoded with ``DEFAULT``. ``packets[0]`` counts the packets read.
    """
    context = stream.codec_context
    for packet in container.demux(stream):
        packets[0] += packet.size > 0
        early = skip_before is not None and packet.pts is not None and packet.pts < skip_before
        context.skip_frame = "NONREF" if early else "DEFAULT"
        yield from packet.decode()


def _decode_indices(container, path: Path, indices: list[int],
                    size: tuple[int, int] | None = None) -> tuple[np.ndarray, int, int]:
    """Decode the frames ``indices`` (increasing) of the open video file ``path``.

    Returns ``(uint8 [T, H, W, 3], frames decoded, packets read)``; frames scaled to ``size = (H, W)``
    when given. Frames before the clip that no other frame needs are not decoded (see
    :func:`_frames`), so a clip far from its keyframe decodes fewer frames than it reads packets.
    """
    decoded = 0
    packets = [0]
    reformatter = VideoReformatter()
    context = None
    try:
        stream = _video_stream(container, path)
        context = stream.codec_context
        fps = _rate(stream)
        time_base = Fraction(stream.time_base.numerator, stream.time_base.denominator)
        sequential = _sequential(container, stream)
        start_pts = 0 if sequential else _start_pts(container, stream)
        seek = _clip_seeks(container, indices)
        # pts of the first wanted frame, exact; a seek with backward=True lands on the keyframe at or before it.
        target = start_pts + math.floor(Fraction(indices[0]) / (fps * time_base))
        # packets before this pts show frames that round to an earlier frame number (_frame_index)
        skip_before = start_pts + math.ceil((indices[0] - Fraction(1, 2)) / (fps * time_base))
        skip = context.name in SKIPPING_CODECS and indices[0] > 0 and not sequential
        for _attempt in range(3):
            if seek:
                try:
                    container.seek(target, stream=stream, backward=True, any_frame=False)
                except av.FFmpegError:
                    seek = False
                    container.seek(0)
            out: list = [None] * len(indices)
            j = 0
            prev = None  # last decoded frame: the one on screen until the next pts
            count = 0
            overshot = False
            redo = False  # the clip's first frame is held over from a pts gap: maybe a frame skipped
            for frame in _frames(container, stream, skip_before if skip else None, packets):
                decoded += 1
                if frame.pts is None and not sequential:
                    sequential = True  # no timestamps: count frames from the start instead
                    if seek or skip:  # (a skipped frame is not counted)
                        overshot, skip = True, False
                        break
                idx = count if sequential else _frame_index(frame.pts, start_pts, fps, time_base)
                count += 1
                if prev is None and seek and idx > indices[0]:
                    overshot = True  # the demuxer landed past the wanted frame
                    break
                if skip and j == 0 and indices[0] < idx and prev is not None:
                    redo = True  # the frame on screen at the clip's start may be one that was skipped
                    break
                while j < len(indices) and indices[j] < idx and prev is not None:
                    out[j] = _rgb(prev, reformatter, size)  # frame held over a pts gap
                    j += 1
                while j < len(indices) and indices[j] <= idx:
                    out[j] = _rgb(frame, reformatter, size)
                    j += 1
                if j == len(indices):
                    break
                prev = frame
            if redo:
                skip = False  # the same read again, every frame decoded
                if not seek:
                    container.seek(0)
                continue
            if not overshot:
                break
            # Fall back to decoding from the start of the stream (also when timestamps are missing).
            seek = False
            container.seek(0)
        if j < len(indices):
            raise DataError(
                f"{path}: clip needs frame {indices[j]} but the video ends before it"
                f" (shorter than its header says, or truncated)")
    except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:
        raise DataError(f"{path}: decode failed ({_describe(exc)})") from None
    finally:
        if context is not None:
            context.skip_frame = "DEFAULT"  # the container may be read again (VideoReader)
    return np.stack(out), decoded, packets[0]  # (T, H, W, 3)


def read_clip(path: str | Path, start: int, num_frames: int, stride: int = 1,
              size: tuple[int, int] | None = None) -> np.ndarray:
    """Read frames ``start, start + stride, ..., start + (num_frames - 1) * stride``.

    Seeks to the nearest keyframe at or before ``start`` and decodes forward only
    up to the last wanted frame.  Grayscale and paletted videos come back as RGB.
    ``size = (H, W)`` scales the frames as they are converted (FFmpeg's bilinear,
    antialiased when shrinking; Pillow's for frame folders), else they keep their size.
    :class:`VideoReader` reads the same clips while keeping the files open.

    Returns:
        uint8 array ``[num_frames, H, W, 3]``.

    Raises:
        DataError: unreadable file, or the video is shorter than the clip needs.
        ValueError: ``start < 0``, ``num_frames < 1`` or ``stride < 1``.
    """
    path = Path(path)
    indices = _clip_indices(start, num_frames, stride)
    if path.is_dir():
        return _read_folder(path, indices, size)
    container = _open(path)
    try:
        return _decode_indices(container, path, indices, size)[0]
    finally:
        container.close()


def read_all(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Decode a whole (small) video: uint8 ``[T, H, W, 3]``.

    Meant for short clips and tests; use :func:`read_clip` for training data.

    Raises:
        DataError: unreadable file or no frames.
    """
    path = Path(path)
    if path.is_dir():
        n = len(list_frames(path))
        if max_frames is not None:
            n = min(n, max_frames)
        if n == 0:
            raise DataError(f"{path}: frame folder holds no images")
        return _read_folder(path, list(range(n)))
    container = _open(path)
    frames = []
    reformatter = VideoReformatter()
    try:
        stream = _video_stream(container, path)
        for frame in container.decode(stream):
            frames.append(_rgb(frame, reformatter, None))
            if max_frames is not None and len(frames) >= max_frames:
                break
    except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:
        raise DataError(f"{path}: decode failed ({_describe(exc)})") from None
    finally:
        container.close()
    if not frames:
        raise DataError(f"{path}: no frames could be decoded")
    return np.stack(frames)  # (T, H, W, 3)


# ----------------------------------------------------------------------------- write


def _as_frames(frames) -> np.ndarray:
    """Accept uint8 ``[T, H, W, 3]``, ``[T, H, W, 1]`` or ``[T, H, W]`` (numpy or torch)."""
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"write_video expects uint8 frames, got {frames.dtype}; use data.transforms.to_uint8")
    if frames.ndim == 3:
        frames = frames[..., None]  # (T, H, W, 1)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.shape[0] == 0:
        raise ValueError(f"write_video expects frames [T, H, W, 3] (or [T, H, W, 1]), got {frames.shape}")
    return frames


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """Pad odd height/width by one replicated edge row/column (4:2:0 chroma needs even sizes)."""
    _, h, w, _ = frames.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # (T, H', W', C)


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    # GIF stores delays in 1/100 s; Pillow merges identical consecutive frames (adding their delays).
    images = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000.0 / fps, loop=0, optimize=False)


# Marks the temporary files written next to their destination and renamed into place; a file
# whose name starts with "." and holds this mark is a leftover of a killed writer.
TEMP_MARK = ".tmp-"


def temp_path(path: str | Path) -> Path:
    """``dir/.name.tmp-PID.ext``: where ``path`` is written before it is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.stem}{TEMP_MARK}{os.getpid()}{path.suffix}")


def is_temp(path: str | Path) -> bool:
    """Whether ``path`` is a leftover temporary file of :func:`temp_path` (or a checkpoint temp folder)."""
    name = Path(path).name
    return name.startswith(".") and TEMP_MARK in name


def write_video(path: str | Path, frames, fps: float = 8.0, *, codec: str | None = None,
                pix_fmt: str | None = None, options: dict[str, str] | None = None, audio=None,
                sample_rate: int | None = None) -> Path:
    """Encode ``frames`` (uint8 ``[T, H, W, 3]``, or ``[T, H, W]`` / ``[T, H, W, 1]`` grayscale).

    ``audio`` (mono float32 ``[S]`` in [-1, 1] at ``sample_rate`` Hz, sample 0 at the first
    frame) is written as a soundtrack beside the video: AAC in mp4/mov/mkv, Opus in webm, MP3
    in avi. GIFs carry no sound, so a GIF asked to is refused.

    The container follows the suffix: ``.mp4``/``.mov``/``.m4v``/``.mkv`` (H.264,
    yuv420p), ``.webm`` (VP9), ``.avi`` (MJPEG), ``.gif`` (Pillow, looping).
    ``codec``/``pix_fmt``/``options`` override the encoder (e.g. ``codec="ffv1"``,
    ``pix_fmt="gray"``, ``options={"g": "50"}`` for a 50-frame keyframe interval).
    Odd sizes are padded to even by replicating the last row/column when the
    pixel format needs it.  The file is written to a temporary name and renamed.

    Returns:
        the path written.

    Raises:
        DataError: unknown suffix, encoder missing from the bundled FFmpeg, or an encoder failure.
        ValueError: frames of the wrong dtype/shape.
    """
    path = Path(path)
    frames = _as_frames(frames)
    suffix = path.suffix.lower()
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if audio is not None:
        audio = check_audio(audio, sample_rate)
        if suffix not in AUDIO_ENCODERS:
            raise DataError(f"{path}: '{suffix}' files carry no sound; write .mp4 (or "
                            f"{', '.join(sorted(AUDIO_ENCODERS))}) for a video with its soundtrack")
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".gif" and codec is None:
            _write_gif(tmp, frames, fps)
        else:
            _encode(tmp, path, frames, fps, suffix, codec, pix_fmt, options, audio, sample_rate)
        os.replace(tmp, path)
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _encode(tmp: Path, path: Path, frames: np.ndarray, fps: float, suffix: str, codec: str | None,
            pix_fmt: str | None, options: dict[str, str] | None, audio: np.ndarray | None = None,
            sample_rate: int | None = None) -> None:
    """Encode ``frames`` into ``tmp``; errors name ``path``, the file the user asked for."""
    codec = codec or DEFAULT_CODECS.get(suffix)
    if codec is None:
        raise DataError(f"{path}: cannot write '{suffix}' videos; use one of "
                        f"{', '.join(sorted(DEFAULT_CODECS) + ['.gif'])}")
    try:
        av.codec.Codec(codec, "w")
    except Exception:  # noqa: BLE001 - PyAV raises several types for unknown codecs
        raise DataError(f"encoder '{codec}' is not in this FFmpeg build; choose another codec") from None
    gray_in = frames.shape[-1] == 1
    if pix_fmt is None:
        gray_out = gray_in and codec in GRAY_CODECS
        pix_fmt = "gray" if gray_out else DEFAULT_PIX_FMTS.get(codec, "yuv420p")
    if pix_fmt in EVEN_PIX_FMTS:
        frames = _pad_even(frames)
    opts = dict(options or {})
    if codec in ("libx264", "libx265") and "crf" not in opts:
        opts["crf"] = DEFAULT_CRF
    if codec == "libx265":
        opts.setdefault("x265-params", "log-level=error")
    _, h, w, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1001)
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream(codec, rate=rate, options=opts)
            stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
            sound = None if audio is None else _add_audio_stream(container, AUDIO_ENCODERS[suffix], sample_rate)
            src_fmt = "gray" if gray_in else "rgb24"
            for f in frames:
                image = f[..., 0] if gray_in else f
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=src_fmt)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
            if sound is not None:
                _mux_audio(container, AUDIO_ENCODERS[suffix], audio, sample_rate, sound)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"{path}: encoding with '{codec}' failed ({_describe(exc)})") from None


# ----------------------------------------------------------------------------- float <-> uint8

UINT8_HALF_RANGE = 127.5  # [-1, 1] <-> [0, 255]


def to_uint8(video) -> np.ndarray:
    """float ``[..., C, T, H, W]`` in ``[-1, 1]`` -> uint8 ``[..., T, H, W, C]`` (values clamped, rounded).

    Accepts a torch tensor or numpy array, with or without a batch axis.
    """
    import torch

    x = torch.as_tensor(video).detach().cpu().float()
    if x.ndim < 4:
        raise ValueError(f"to_uint8 expects video [..., C, T, H, W], got {tuple(x.shape)}")
    x = ((x + 1.0) * UINT8_HALF_RANGE).round_().clamp_(0, 255).to(torch.uint8)
    return x.movedim(-4, -1).contiguous().numpy()  # (..., T, H, W, C)


# ----------------------------------------------------------------------------- grids


def _grid_layout(videos) -> np.ndarray:
    """Normalise grid input to uint8 ``[N, T, H, W, 3]``.

    Float input is ``[N, C, T, H, W]`` in ``[-1, 1]`` (the library layout);
    uint8 input is ``[N, T, H, W, C]`` (the I/O layout) or ``[N, C, T, H, W]``
    when its last axis is not a channel axis.
    """
    if hasattr(videos, "detach"):
        videos = videos.detach().cpu()
        is_uint8 = str(videos.dtype) == "torch.uint8"
        videos = videos.numpy() if is_uint8 else videos.float()
    else:
        videos = np.asarray(videos)
        is_uint8 = videos.dtype == np.uint8
    if videos.ndim == 4:
        videos = videos[None]  # (1, ...)
    if videos.ndim != 5:
        raise ValueError(f"write_grid expects videos [N, C, T, H, W], got shape {tuple(videos.shape)}")
    if is_uint8:
        if videos.shape[-1] not in (1, 3) and videos.shape[1] in (1, 3):
            videos = videos.transpose(0, 2, 3, 4, 1)  # (N, T, H, W, C)
        out = videos
    else:
        out = to_uint8(videos)  # (N, T, H, W, C)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)  # (N, T, H, W, 3)
    return out


def make_grid(videos, nrow: int = 8, pad: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile N clips into one clip: uint8 ``[T, rows*(H+pad)+pad, nrow*(W+pad)+pad, 3]``.

    ``videos``: float ``[N, C, T, H, W]`` in ``[-1, 1]`` or uint8 ``[N, T, H, W, 3]``.
    """
    clips = _grid_layout(videos)  # (N, T, H, W, 3)
    n, t, h, w, _ = clips.shape
    ncol = max(1, min(nrow, n))
    rows = math.ceil(n / ncol)
    grid = np.full((t, rows * (h + pad) + pad, ncol * (w + pad) + pad, 3), pad_value, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[:, y:y + h, x:x + w] = clips[i]
    return grid


def filmstrip(videos, pad: int = 2, pad_value: int = 0) -> np.ndarray:
    """Clips as one still image: uint8 ``[N*(H+pad)+pad, T*(W+pad)+pad, 3]``, row i = clip i, column j = frame j.

    ``videos``: float ``[N, C, T, H, W]`` in ``[-1, 1]`` (numpy or torch) or uint8 ``[N, T, H, W, 3]``.
    """
    clips = _grid_layout(videos)  # (N, T, H, W, 3)
    n, t, h, w, _ = clips.shape
    sheet = np.full((n * (h + pad) + pad, t * (w + pad) + pad, 3), pad_value, np.uint8)
    for i in range(n):
        for j in range(t):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            sheet[y:y + h, x:x + w] = clips[i, j]
    return sheet


def write_grid(path: str | Path, videos, nrow: int = 8, fps: float = 8.0, pad: int = 2,
               pad_value: int = 0, audio=None, sample_rate: int | None = None) -> Path:
    """Write many clips tiled into one file.

    ``videos``: float ``[N, C, T, H, W]`` in ``[-1, 1]`` (numpy or torch) or uint8
    ``[N, T, H, W, 3]``.  ``.mp4``/``.gif``/``.webm``/...: an animated grid with
    ``nrow`` clips per row.  ``.png``/``.jpg``: a still filmstrip, one row per clip
    with its frames side by side.  ``audio`` / ``sample_rate``: a soundtrack, as for :func:`write_video`.

    Raises:
        DataError: unsupported suffix or encoder failure.
    """
    path = Path(path)
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        sheet = filmstrip(videos, pad, pad_value)  # (H', W', 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(path)
        return path
    return write_video(path, make_grid(videos, nrow=nrow, pad=pad, pad_value=pad_value), fps=fps, audio=audio,
                       sample_rate=sample_rate)


# ----------------------------------------------------------------------------- audio
#
# Audio inside the library is mono float32 in [-1, 1] at one fixed sample rate; here it is a
# numpy array ``[S]``. Times are seconds from the first video frame when the file has a video
# stream (so frame k starts at k / fps, as read_clip numbers frames), else from the audio
# stream's start. Decoding seeks near the window and stops after it, like read_clip.

AUDIO_SEEK_MARGIN = 0.1  # seconds decoded before a window's start: a few codec frames, so the first kept one is whole
# After a seek, decoded frames that end this many seconds or more before the window only prime the decoder
# (more where the resampler's taps reach further: below ~2.5 kHz): they are dropped wherever the demuxer
# landed (a Matroska seek without audio cues lands where earlier reads left its index), so a window's
# samples do not depend on what was read before.
AUDIO_RESAMPLE_LEAD = 0.02
# Resampling (here, not in FFmpeg's filter graph, whose set-up and per-frame push/pull took more
# than decoding, and whose output grid began wherever its first input frame did, up to a sample off
# between reads): a Kaiser-windowed sinc low-pass at AUDIO_ROLLOFF of the lower rate's Nyquist
# frequency, AUDIO_ZERO_CROSSINGS zero crossings each side, so output sample j (at j / rate
# seconds from the origin) depends only on the input samples around it, wherever a read began.
AUDIO_ZERO_CROSSINGS = 24
AUDIO_ROLLOFF = 0.95
AUDIO_KAISER_BETA = 9.0
MAX_POLYPHASE_TAPS = 1 << 22  # a rate pair whose polyphase filter is larger computes taps per read
RESAMPLE_CHUNK = 1 << 20  # input samples gathered into resampler windows at a time (4 MiB)
# Audio decoders opened once per process and flushed before each read that seeks (opening an AAC
# decoder took 0.4-0.7 ms, a sixth to a third of reading a clip's sound from an open file). A
# flushed decoder's first frame may differ from a fresh one's, so a decoder is shared only where
# the first frame after a seek always falls in the priming margin (see _shared_decoder); later
# frames match a fresh decoder's: MP3 bit for bit, AAC to an ulp (FFmpeg's AAC decoder differs by
# as much after other reads of its own stream; its noise substitution draws other noise).
SHARED_AUDIO_DECODERS = ("aac", "mp3float")
MAX_SHARED_DECODERS = 8
# Soundtrack encoder per video suffix; GIF and still images carry no sound.
AUDIO_ENCODERS = {".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus",
                  ".avi": "libmp3lame"}
AUDIO_BITRATE = 128_000  # bits per second of written soundtracks


@dataclass
class AudioInfo:
    """What :func:`probe_audio` learns about a soundtrack: ``path`` (the file holding it), ``sample_rate``
    (Hz), ``channels``, ``duration`` (seconds, 0 when the container does not say) and ``codec``."""

    path: str
    sample_rate: int
    channels: int
    duration: float
    codec: str


def soundtrack(path: str | Path) -> Path | None:
    """The file holding ``path``'s sound: a file itself, a frame folder's ``audio.*`` file, else None."""
    path = Path(path)
    if not path.is_dir():
        return path
    for ext in AUDIO_EXTENSIONS:
        candidate = path / f"{SOUNDTRACK_STEM}{ext}"
        if candidate.is_file():
            return candidate
    return None


def probe_audio(path: str | Path) -> AudioInfo | None:
    """The soundtrack of a video, audio file or frame folder; None when it has none.

    Raises:
        DataError: missing, empty or unreadable file.
    """
    source = soundtrack(path)
    if source is None:
        return None
    container = _open(source)
    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = container.duration / av.time_base if container.duration is not None else 0.0
        return AudioInfo(str(source), int(ctx.sample_rate or stream.rate or 0), int(ctx.channels or 0),
                         duration, ctx.name)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"{source}: not a readable audio stream ({_describe(exc)})") from None
    finally:
        container.close()


def _origin(container, audio_stream) -> float:
    """Time zero of the file in seconds: its first video frame where it has video, else its audio start."""
    reference = container.streams.video[0] if container.streams.video else audio_stream
    if reference.start_time is None or reference.time_base is None:
        return 0.0
    return float(reference.start_time * reference.time_base)


def _check_window(sample_rate: int, duration: float | None) -> None:
    if sample_rate < 1:
        raise DataError(f"sample_rate must be positive, got {sample_rate}")
    if duration is not None and duration < 0:
        raise DataError(f"audio window duration must be >= 0, got {duration}")


def _soundtrack_of(path: Path) -> Path:
    source = soundtrack(path)
    if source is None:
        raise DataError(f"{path}: frame folder has no soundtrack (put an {SOUNDTRACK_STEM}.wav beside its frames)")
    return source


def _audio_seeks(container, start: float) -> bool:
    """Whether reading from ``start`` seconds begins with a seek (else it decodes from the first sample)."""
    audio = container.streams.audio
    return bool(audio) and start - AUDIO_SEEK_MARGIN > 0 and audio[0].time_base is not None


def _seconds(pts: int, time_base: Fraction) -> float:
    """``float(pts * time_base)`` without building a Fraction (the same correctly rounded float)."""
    return pts * time_base.numerator / time_base.denominator


def _ends_before(frame, seconds: float, time_base: Fraction | None) -> bool:
    """Whether a decoded audio frame with a timestamp (in its stream's ``time_base``) ends at or before ``seconds``."""
    pts = frame.pts
    if pts is None or time_base is None:
        return False
    rate = frame.sample_rate
    return bool(rate) and _seconds(pts, time_base) + frame.samples / rate <= seconds


# sample format (planar or not) -> (dtype, offset, scale): value = (stored - offset) / scale
_SAMPLE_FORMATS = {"u8": (np.uint8, 128.0, 128.0), "s16": (np.int16, 0.0, 32768.0), "s32": (np.int32, 0.0, 2.0 ** 31),
                   "s64": (np.int64, 0.0, 2.0 ** 63), "flt": (np.float32, 0.0, 1.0), "dbl": (np.float64, 0.0, 1.0)}


def _mono(frame) -> np.ndarray:
    """float32 ``[n]``: a decoded frame's channels averaged, integer formats scaled to ``[-1, 1]``."""
    name = frame.format.name
    planar = name.endswith("p")
    if name.removesuffix("p") not in _SAMPLE_FORMATS:
        raise ValueError(f"unsupported sample format {name}")
    dtype, offset, scale = _SAMPLE_FORMATS[name.removesuffix("p")]
    n = frame.samples
    if planar:
        planes = [np.frombuffer(plane, dtype, count=n) for plane in frame.planes]  # no copy
        x = planes[0] if len(planes) == 1 else np.mean(planes, axis=0, dtype=np.float32)  # (C, n) -> (n,)
    else:
        channels = len(frame.layout.channels)
        x = np.frombuffer(frame.planes[0], dtype, count=n * channels)
        x = x if channels == 1 else x.reshape(n, channels).mean(axis=1, dtype=np.float32)
    if dtype is np.float32 and x.dtype == np.float32:
        return x
    x = x.astype(np.float32)
    return x if offset == 0.0 and scale == 1.0 else (x - np.float32(offset)) / np.float32(scale)


def _filter_shape(in_rate: int, out_rate: int) -> tuple[float, float]:
    """``(cutoff, half width)``: the low-pass's cutoff as a fraction of the input's Nyquist frequency,
    and how far its taps reach each side, in input samples."""
    cutoff = AUDIO_ROLLOFF * min(1.0, out_rate / in_rate)
    return cutoff, AUDIO_ZERO_CROSSINGS / cutoff


def _taps(offsets: np.ndarray, cutoff: float, half: float) -> np.ndarray:
    """Filter weights for input samples ``offsets`` (input samples, any shape ``[..., K]``) from an
    output sample's position; each row sums to 1, so a constant passes unchanged."""
    inside = np.clip(1.0 - (offsets / half) ** 2, 0.0, None)
    taps = cutoff * np.sinc(cutoff * offsets) * np.i0(AUDIO_KAISER_BETA * np.sqrt(inside))
    taps[np.abs(offsets) > half] = 0.0
    return taps / taps.sum(axis=-1, keepdims=True)


_POLYPHASE: OrderedDict[tuple, torch.Tensor] = OrderedDict()


def _polyphase(up: int, down: int, cutoff: float, reach: int) -> torch.Tensor:
    """float32 ``[down + 2 * reach, up]``: column ``r`` weighs input samples ``q * down - reach ...`` into output
    sample ``q * up + r`` (input position ``(q * up + r) * down / up``)."""
    key = (up, down)
    taps = _POLYPHASE.get(key)
    if taps is None:
        offsets = np.arange(-reach, down + reach)[None, :] - np.arange(up)[:, None] * (down / up)
        taps = torch.from_numpy(_taps(offsets, cutoff, AUDIO_ZERO_CROSSINGS / cutoff).astype(np.float32).T.copy())
        _POLYPHASE[key] = taps
        while len(_POLYPHASE) > 8:
            _POLYPHASE.popitem(last=False)
    return taps


def _resample(x: np.ndarray, lo: int, in_rate: int, out_rate: int, first: int, wanted: int) -> np.ndarray:
    """Output samples ``first ... first + wanted - 1`` at ``out_rate`` of the input ``x`` at ``in_rate``
    whose sample 0 is input sample ``lo`` (both counted from the same origin); silence outside ``x``."""
    g = math.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    cutoff, half = _filter_shape(in_rate, out_rate)
    reach = math.ceil(half)
    width = down + 2 * reach
    if up * width <= MAX_POLYPHASE_TAPS:  # blocks of `up` outputs from strided windows of the input
        taps = _polyphase(up, down, cutoff, reach)
        q0, q1 = first // up, -(-(first + wanted) // up)
        out = np.empty((q1 - q0) * up, np.float32)
        step = max(1, RESAMPLE_CHUNK // width)  # windows overlap: a chunk of them at a time
        for a in range(q0, q1, step):
            b = min(q1, a + step)
            buf = np.zeros((b - a) * down + 2 * reach, np.float32)
            _place(buf, a * down - reach, x, lo)
            windows = np.lib.stride_tricks.as_strided(buf, (b - a, width), (buf.strides[0] * down, buf.strides[0]))
            # torch's matmul: its threads follow torch.set_num_threads (one in a DataLoader worker), where numpy's
            # BLAS starts its own pool per process and, beside training, took 5-20 ms for this 0.2 ms product
            block = torch.from_numpy(np.ascontiguousarray(windows)) @ taps  # (windows, up): outputs a * up ...
            out[(a - q0) * up:(b - q0) * up] = block.numpy().ravel()
        return out[first - q0 * up:first - q0 * up + wanted]
    out = np.empty(wanted, np.float32)
    k = np.arange(-reach, reach + 1)
    for c0 in range(0, wanted, 2048):  # a rate pair with a huge period: the taps of each output sample
        j = np.arange(first + c0, first + min(wanted, c0 + 2048), dtype=np.int64)
        base = j * down // up
        frac = (j * down - base * up) / up
        start = int(base[0]) - reach
        buf = np.zeros(int(base[-1]) - start + reach + 1, np.float32)
        _place(buf, start, x, lo)
        taps = _taps(k[None, :] - frac[:, None], cutoff, half).astype(np.float32)
        out[c0:c0 + j.size] = np.einsum("nk,nk->n", buf[(base - start)[:, None] + k[None, :]], taps)
    return out


def _place(buf: np.ndarray, at: int, x: np.ndarray, lo: int) -> None:
    """Copy the overlap of ``x`` (starting at sample ``lo``) into ``buf`` (starting at sample ``at``)."""
    a, b = max(at, lo), min(at + buf.size, lo + x.size)
    if b > a:
        buf[a - at:b - at] = x[a - lo:b - lo]


def _lead(stream, sample_rate: int) -> float:
    """Seconds before a window that decoding keeps: the resampler's reach and then some."""
    in_rate = stream.codec_context.sample_rate or stream.rate or 0
    if not in_rate or in_rate == sample_rate:
        return AUDIO_RESAMPLE_LEAD
    return max(AUDIO_RESAMPLE_LEAD, 2 * _filter_shape(in_rate, sample_rate)[1] / in_rate)


_AUDIO_DECODERS: OrderedDict[tuple, object] = OrderedDict()  # (codec, rate, layout, extradata) -> decoder


def _shared_decoder(stream):
    """``(key, flushed decoder)`` for ``stream``'s packets kept for this process, or ``None`` to use the stream's own.

    Only for reads that seek: their first decoded frame ends at most one codec frame after
    ``AUDIO_SEEK_MARGIN`` before the window, and is dropped as priming when that frame is shorter
    than the margin less ``AUDIO_RESAMPLE_LEAD``.
    """
    ctx = stream.codec_context
    rate, size = ctx.sample_rate or 0, ctx.frame_size or 0
    if ctx.name not in SHARED_AUDIO_DECODERS or rate <= 0 or size <= 0 or ctx.layout is None:
        return None
    if size / rate >= AUDIO_SEEK_MARGIN - AUDIO_RESAMPLE_LEAD:
        return None
    key = (ctx.name, rate, ctx.layout.name, bytes(ctx.extradata or b""))
    decoder = _AUDIO_DECODERS.pop(key, None)  # taken out while in use: two threads never share one
    if decoder is None:
        decoder = av.CodecContext.create(ctx.name, "r")
        decoder.extradata = ctx.extradata
        decoder.sample_rate = rate
        decoder.layout = ctx.layout
        decoder.thread_count = 1
    else:
        decoder.flush_buffers()
    return key, decoder


def _keep_decoder(key: tuple, decoder) -> None:
    """Put a decoder of :func:`_shared_decoder` back for the next read (the most recent last)."""
    _AUDIO_DECODERS[key] = decoder
    while len(_AUDIO_DECODERS) > MAX_SHARED_DECODERS:
        _AUDIO_DECODERS.popitem(last=False)


def _decoded_by(decoder, container, stream):
    """Frames of ``stream`` from where ``container`` stands, decoded by ``decoder`` (then drained)."""
    for packet in container.demux(stream):
        yield from decoder.decode(packet)  # the empty packet at the end drains the decoder


def _decode_audio(container, source: Path, sample_rate: int, start: float, duration: float | None) -> np.ndarray:
    """The window of :func:`read_audio` from the open file ``source``: float32 ``[S]`` mono in ``[-1, 1]``."""
    try:
        if not container.streams.audio:
            raise DataError(f"{source}: contains no audio stream")
        stream = container.streams.audio[0]
        origin = _origin(container, stream)
        first = round(start * sample_rate)  # output sample 0, counted from the origin
        wanted = None if duration is None else round(duration * sample_rate)
        seeks = _audio_seeks(container, start)
        lead = _lead(stream, sample_rate)
        if seeks:
            target = max(0.0, origin + start - AUDIO_SEEK_MARGIN - (lead - AUDIO_RESAMPLE_LEAD))
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
        lead_in = origin + start - lead  # seconds
        in_rate = 0  # the stream's sample rate, from its first decoded frame
        need = None  # input samples (from the origin) up to which the window's output depends on the input
        pieces: list[tuple[int, np.ndarray]] = []  # (first input sample from the origin, mono samples)
        cursor = None  # where the next frame starts when it carries no pts
        time_base = stream.time_base  # decoded frames carry their stream's time base
        shared = _shared_decoder(stream) if seeks and lead == AUDIO_RESAMPLE_LEAD else None
        frames = container.decode(stream) if shared is None else _decoded_by(shared[1], container, stream)
        for frame in frames:
            if seeks and _ends_before(frame, lead_in, time_base):
                continue  # priming: the first frames after a seek
            rate = frame.sample_rate
            if not in_rate:
                in_rate = rate
                if in_rate <= 0:
                    raise ValueError("the audio stream has no sample rate")
                if wanted is not None:
                    need = (first + wanted) * in_rate // sample_rate + math.ceil(_filter_shape(in_rate, sample_rate)[1]) + 2
            elif rate != in_rate:
                raise ValueError(f"the sample rate changes inside the stream ({in_rate} to {rate} Hz)")
            samples = _mono(frame)
            if frame.pts is not None and time_base is not None:
                at = round((_seconds(frame.pts, time_base) - origin) * in_rate)
            else:
                at = cursor if cursor is not None else 0
            pieces.append((at, samples))
            cursor = at + samples.size
            if need is not None and cursor >= need:
                break
        if shared is not None:
            _keep_decoder(*shared)  # not after a failure: a decoder in an unknown state is dropped
    except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:
        raise DataError(f"{source}: audio decode failed ({_describe(exc)})") from None
    if not pieces:
        return np.zeros(wanted or 0, np.float32)
    lo = min(at for at, _ in pieces)
    hi = max(at + x.size for at, x in pieces)
    x = np.zeros(hi - lo, np.float32)
    for at, samples in pieces:  # in decode order: a later frame overwrites an overlap
        x[at - lo:at - lo + samples.size] = samples
    if wanted is None:
        wanted = max(0, -(-hi * sample_rate // in_rate) - first)
    if in_rate == sample_rate:
        out = np.zeros(wanted, np.float32)
        _place(out, first, x, lo)
    else:
        out = _resample(x, lo, in_rate, sample_rate, first, wanted)
    return np.clip(out, -1.0, 1.0)


def read_audio(path: str | Path, sample_rate: int, start: float = 0.0, duration: float | None = None) -> np.ndarray:
    """Mono float32 ``[S]`` in ``[-1, 1]`` at ``sample_rate`` Hz from ``start`` seconds for ``duration`` seconds.

    Channels are averaged (downmix) and resampled (windowed sinc). ``S = round(duration * sample_rate)``
    exactly: a window reaching before the start or past the end of the sound is padded with
    silence. ``duration=None`` reads to the end. Works on videos with an audio stream, audio
    files (wav, mp3, aac/m4a, flac, ogg, opus, ...) and frame folders with an ``audio.*`` file.
    :class:`VideoReader` reads the same windows while keeping the files open.

    Raises:
        DataError: no soundtrack, an unreadable file, or a bad window.
    """
    path = Path(path)
    _check_window(sample_rate, duration)
    source = _soundtrack_of(path)
    container = _open(source)
    try:
        return _decode_audio(container, source, sample_rate, start, duration)
    finally:
        container.close()


def clip_window(start: int, num_frames: int, stride: int, fps: float) -> tuple[float, float]:
    """``(start seconds, duration seconds)`` of the sound under a clip of :func:`read_clip`.

    The clip's frames ``start, start + stride, ...`` each stand for ``stride`` source frames, so
    the window is ``num_frames * stride / fps`` seconds from frame ``start``'s time ``start / fps``.
    """
    if fps <= 0:
        raise DataError(f"fps must be positive to align audio with frames, got {fps}")
    _clip_indices(start, num_frames, stride)
    return start / fps, num_frames * stride / fps


def read_clip_audio(path: str | Path, start: int, num_frames: int, stride: int, fps: float,
                    sample_rate: int) -> np.ndarray:
    """The sound under the clip ``read_clip(path, start, num_frames, stride)``: float32 ``[S]`` mono in [-1, 1],
    ``S = round(num_frames * stride / fps * sample_rate)``, sample 0 at frame ``start``."""
    t0, length = clip_window(start, num_frames, stride, fps)
    return read_audio(path, sample_rate, t0, length)


def check_audio(audio, sample_rate: int | None) -> np.ndarray:
    """Mono float32 ``[S]`` from a numpy array or tensor ``[S]`` (or ``[1, S]``), values clipped to [-1, 1]."""
    if sample_rate is None or sample_rate < 1:
        raise ValueError(f"writing audio needs a positive sample_rate, got {sample_rate}")
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 2 and audio.shape[0] == 1:
        audio = audio[0]
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono [S], got shape {tuple(audio.shape)}")
    return np.clip(audio, -1.0, 1.0)


def write_audio(path: str | Path, audio, sample_rate: int) -> Path:
    """Write mono float32 ``[S]`` in [-1, 1] as ``.wav`` (16-bit PCM), ``.flac``, ``.mp3``, ``.m4a``, ``.ogg``
    or ``.opus``; written to a temporary name and renamed.

    Raises:
        DataError: an unknown suffix or an encoder failure.
    """
    path = Path(path)
    samples = check_audio(audio, sample_rate)
    codec = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".m4a": "aac", ".aac": "aac",
             ".ogg": "libopus", ".opus": "libopus"}.get(path.suffix.lower())
    if codec is None:
        raise DataError(f"{path}: cannot write '{path.suffix}' audio; use .wav, .flac, .mp3, .m4a, .ogg or .opus")
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(tmp), mode="w", format=_AUDIO_FORMATS.get(path.suffix.lower())) as container:
            _mux_audio(container, codec, samples, sample_rate)
        os.replace(tmp, path)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"cannot write {path}: {_describe(exc)}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


_AUDIO_FORMATS = {".m4a": "ipod", ".aac": "adts", ".ogg": "ogg", ".opus": "ogg"}  # containers by suffix
OPUS_RATES = (48000, 24000, 16000, 12000, 8000)  # the only rates the Opus encoder takes


def _add_audio_stream(container, codec: str, sample_rate: int):
    rate = sample_rate
    if codec == "libopus" and rate not in OPUS_RATES:
        rate = 48000  # resampled below
    stream = container.add_stream(codec, rate=rate)
    stream.layout = "mono"
    if codec not in ("pcm_s16le", "flac"):
        stream.bit_rate = AUDIO_BITRATE
    return stream


def _mux_audio(container, codec: str, samples: np.ndarray, sample_rate: int, stream=None) -> None:
    """Encode ``samples`` (mono float32 [S]) into ``container`` with ``codec`` (a new stream unless given)."""
    stream = stream or _add_audio_stream(container, codec, sample_rate)
    ctx = stream.codec_context
    formats = [f.name for f in (ctx.codec.audio_formats or [])]
    resampler = av.AudioResampler(format=formats[0] if formats else "s16", layout="mono", rate=ctx.sample_rate)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None]), format="flt", layout="mono")  # (1, S)
    frame.sample_rate, frame.pts = sample_rate, 0
    for converted in resampler.resample(frame):  # PyAV cuts them to the encoder's frame size
        container.mux(stream.encode(converted))
    for converted in resampler.resample(None):
        container.mux(stream.encode(converted))
    container.mux(stream.encode(None))


# ----------------------------------------------------------------------------- open containers, kept


# Open files one VideoReader keeps: a clip's sound after its frames and the next clip of a recent file
# skip the open (~1.3 ms for a small mp4), at the cost of a demuxer and decoder state per file held.
MAX_OPEN_CONTAINERS = 8


def _stamp(path: Path) -> tuple | None:
    """What identifies the file's contents for reuse: inode, size, mtime (None when it cannot be stat'ed)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class VideoReader:
    """:func:`read_clip` and :func:`read_audio` through a small LRU of open containers, for one process.

    A read reuses the container of its file when the file is unchanged (same inode, size and
    mtime; else it is reopened) and the read starts with a seek (seeking resets the demuxer and
    the decoders; a read from the very start takes a fresh container, as the plain functions do),
    so results equal the plain functions': frames exactly, sound exactly but for AAC, whose FFmpeg
    decoder comes out an ulp apart after other reads (and, in bands coded as noise, with other
    noise), as it does in :func:`read_audio`, which shares decoders (``SHARED_AUDIO_DECODERS``).
    A read that fails closes its container.  The least recently used container beyond
    ``max_open`` is closed.

    Safe with DataLoader workers: a fork closes every reader's containers in the parent first (the
    child would otherwise inherit FFmpeg state whose decoder threads it lacks), a pickled reader
    (spawned workers) arrives empty, and a reader that finds itself in another process than the one
    that opened its containers (a fork that bypassed Python) drops them without closing them.
    Not for concurrent use by several threads.
    """

    def __init__(self, max_open: int = MAX_OPEN_CONTAINERS) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be >= 1, got {max_open}")
        self.max_open = max_open
        self._held: OrderedDict[str, tuple[tuple | None, object]] = OrderedDict()  # path -> (stamp, container)
        self._pid = os.getpid()
        self._stranded: list = []  # containers of another process: never closed here (see class doc)
        _READERS.add(self)

    def read_clip(self, path: str | Path, start: int, num_frames: int, stride: int = 1,
                  size: tuple[int, int] | None = None) -> np.ndarray:
        """:func:`read_clip`: uint8 ``[num_frames, H, W, 3]``, the same frames; same errors."""
        path = Path(path)
        indices = _clip_indices(start, num_frames, stride)
        if path.is_dir():
            return _read_folder(path, indices, size)
        return self._read(path, lambda c: _clip_seeks(c, indices),
                          lambda c: _decode_indices(c, path, indices, size)[0])

    def read_audio(self, path: str | Path, sample_rate: int, start: float = 0.0,
                   duration: float | None = None) -> np.ndarray:
        """:func:`read_audio`: float32 ``[S]`` mono in ``[-1, 1]``, the same samples; same errors."""
        _check_window(sample_rate, duration)
        source = _soundtrack_of(Path(path))
        return self._read(source, lambda c: _audio_seeks(c, start),
                          lambda c: _decode_audio(c, source, sample_rate, start, duration))

    def close(self) -> None:
        """Close every container held (the reader stays usable)."""
        self._claim()
        while self._held:
            self._held.popitem()[1][1].close()

    def _claim(self) -> None:
        """In a process other than the one that opened the held containers, strand them (never close them)."""
        if self._pid != os.getpid():
            self._stranded.extend(container for _, container in self._held.values())
            self._held.clear()
            self._pid = os.getpid()

    def _read(self, path: Path, seeks, read):
        """``read(container)`` on a held container of ``path`` where ``seeks(container)``, else a new one."""
        self._claim()
        stamp = _stamp(path)
        held = self._held.pop(str(path), None)
        container = None
        if held is not None:
            if held[0] == stamp and seeks(held[1]):
                container = held[1]
            else:
                held[1].close()
        if container is None:
            container = _open(path)
        try:
            out = read(container)
        except BaseException:
            container.close()
            raise
        self._held[str(path)] = (stamp, container)
        while len(self._held) > self.max_open:
            self._held.popitem(last=False)[1][1].close()
        return out

    def __getstate__(self) -> dict:
        return {"max_open": self.max_open}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_open"])


_READERS: weakref.WeakSet[VideoReader] = weakref.WeakSet()


def _close_readers() -> None:
    """Before a fork: close the readers' containers and free them, and any other PyAV garbage, here.

    Containers and their streams form reference cycles, so a closed one lives until the cyclic GC
    runs; run in a child, freeing one whose codec had threads (an encoder, a decoder not opened by
    :func:`_open`) would hang it.
    """
    for reader in list(_READERS):
        reader.close()
    _AUDIO_DECODERS.clear()
    gc.collect()


os.register_at_fork(before=_close_readers)
