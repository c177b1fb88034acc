"""Reading video frames with PyAV: probe, seek and decode only what a clip needs.

Frames come back as ``uint8 [T, H, W, 3]`` numpy arrays (RGB), from a file or a frame folder,
upright: turned as the stream's display matrix says (see :mod:`~videosynth.io.orientation`).

Reading a clip seeks to the nearest keyframe at or before the first wanted frame
and decodes forward only until the last wanted frame; the frame index of each
decoded frame is computed from its presentation timestamp (pts), so the clip is
correct for B-frames, long GOPs and containers with a start offset.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from videosynth.errors import DataError
from videosynth.io import orientation
from videosynth.io.files import IMAGE_EXTENSIONS, _describe, _open, _stamp, list_frames
from videosynth.io.orientation import UPRIGHT, Orientation
from videosynth.io.packet_errors import PacketTally, settle


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
# packets probe() decodes at most to find a first picture (and its display matrix); beyond, it reports upright
ORIENTATION_PACKETS = 32


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
        width, height: frame size in pixels as shown, the display rotation applied (a 1920x1080
            stream turned a quarter is 1080 wide, 1920 high): the size :func:`read_clip` returns.
        duration: seconds.
        codec: decoder name (``"frames"`` for a frame folder).
        orientation: how decoded pictures are turned upright (:mod:`~videosynth.io.orientation`).
    """

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    duration: float
    codec: str
    orientation: Orientation = UPRIGHT


def probe(path: str | Path) -> VideoInfo:
    """Read the header of a video file or frame folder.

    The frame count is exact when the container stores it (mp4, mov, avi);
    otherwise (mkv, webm, gif) the packets are counted by demuxing. The first
    picture is decoded (once per file in a process) for the display matrix,
    which PyAV exposes on decoded frames only.

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
        turn = _first_orientation(container, stream, path)
        num_frames = int(stream.frames or 0)
        if num_frames <= 0:
            container.seek(0)
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
    height, width = turn.displayed(height, width)
    return VideoInfo(str(path), num_frames, float(fps), width, height, duration, codec, turn)


def stored_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of the pictures as stored, from the header alone: nothing is decoded, so a
    caller can refuse a huge frame before it costs memory (probe decodes the first picture).

    Raises:
        DataError: missing, empty or unreadable file, no video stream, no frame size.
    """
    path = Path(path)
    if path.is_dir():
        info = probe(path)  # a frame folder: its first image's header
        return info.width, info.height
    container = _open(path)
    try:
        ctx = _video_stream(container, path).codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
    finally:
        container.close()
    if width <= 0 or height <= 0:
        raise DataError(f"{path}: video stream has no frame size (unsupported or corrupt)")
    return width, height


def _first_orientation(container, stream, path: Path) -> Orientation:
    """``path``'s orientation (kept per file), from its first picture when not known yet.

    Decodes from where ``container`` stands, its start, up to ``ORIENTATION_PACKETS`` packets; a file
    with no picture among them is reported upright here and its reads learn the orientation.
    """
    known = orientation.known(path)
    if known is not None:
        return known
    tally = PacketTally()  # not settled: the reads report undecodable packets
    for frame in _frames(container, stream, None, tally):
        if frame is not None:
            return orientation.of_file(path, frame)
        if tally.packets >= ORIENTATION_PACKETS:
            break
    return UPRIGHT


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


def _frames(container, stream, skip_before: int | None, tally: PacketTally):
    """Decoded frames of ``stream`` from where ``container`` stands; ``None`` for a packet that fails to decode.

    With ``skip_before`` (a pts), packets that show before it are decoded with ``skip_frame =
    NONREF``: the decoder drops the pictures no other picture refers to (most B-frames) instead of
    decoding them. A clip never shows those pictures, and the frames it does show come out bit for
    bit the same. Every other packet is decoded with ``DEFAULT``. ``tally`` counts the packets read
    and those that failed (see :mod:`videosynth.io.packet_errors`).
    """
    context = stream.codec_context
    for packet in container.demux(stream):
        tally.packets += packet.size > 0
        early = skip_before is not None and packet.pts is not None and packet.pts < skip_before
        context.skip_frame = "NONREF" if early else "DEFAULT"
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            tally.failed(_describe(exc))
            yield None
            continue
        yield from frames


def _decode_indices(container, path: Path, indices: list[int],
                    size: tuple[int, int] | None = None) -> tuple[np.ndarray, int, int]:
    """Decode the frames ``indices`` (increasing) of the open video file ``path``.

    Returns ``(uint8 [T, H, W, 3], frames decoded, packets read)``, frames upright and scaled to
    ``size = (H, W)`` (as shown) when given. Frames before the clip that no other frame needs are
    not decoded (see :func:`_frames`), so a clip far from its keyframe decodes fewer frames than it
    reads packets.
    """
    decoded = 0
    read = 0  # packets, over every attempt
    reformatter = VideoReformatter()
    context = None
    turn = None  # the file's orientation, from the first picture decoded
    coded = size  # the size pictures are scaled to before they are turned
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
            tally = PacketTally()  # the last attempt's packets are the read's
            j = 0
            prev = None  # last decoded frame: the one on screen until the next pts
            count = 0
            overshot = False
            redo = False  # the clip's first frame is held over from a pts gap: maybe a frame skipped
            for frame in _frames(container, stream, skip_before if skip else None, tally):
                if frame is None:  # its picture is lost: the previous one stays on screen, as over a pts gap
                    count += sequential  # numbered by counting: the lost picture keeps its slot
                    continue
                decoded += 1
                if turn is None:
                    turn = orientation.of_file(path, frame)
                    coded = turn.coded(size)
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
                    out[j] = _rgb(prev, reformatter, coded)  # frame held over a pts gap
                    j += 1
                while j < len(indices) and indices[j] <= idx:
                    out[j] = _rgb(frame, reformatter, coded)
                    j += 1
                if j == len(indices):
                    break
                prev = frame
            read += tally.packets
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
        settle(tally, path, "video")
        if j < len(indices):
            raise DataError(
                f"{path}: clip needs frame {indices[j]} but the video ends before it"
                f" (shorter than its header says, or truncated)")
    except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:
        raise DataError(f"{path}: decode failed ({_describe(exc)})") from None
    finally:
        if context is not None:
            context.skip_frame = "DEFAULT"  # the container may be read again (VideoReader)
    return turn.apply(np.stack(out)), decoded, read  # (T, H, W, 3)


def read_clip(path: str | Path, start: int, num_frames: int, stride: int = 1,
              size: tuple[int, int] | None = None) -> np.ndarray:
    """Read frames ``start, start + stride, ..., start + (num_frames - 1) * stride``.

    Seeks to the nearest keyframe at or before ``start`` and decodes forward only
    up to the last wanted frame.  Grayscale and paletted videos come back as RGB.
    Frames come upright, turned as the stream's display matrix says (a phone's portrait
    video is ``H > W``; see :mod:`~videosynth.io.orientation`), the size :func:`probe` reports.
    ``size = (H, W)`` scales the frames as they are converted (FFmpeg's bilinear,
    antialiased when shrinking; Pillow's for frame folders), else they keep their size.
    :class:`VideoReader` reads the same clips while keeping the files open. A packet that fails
    to decode is skipped: the frame before it stays on screen (see :mod:`videosynth.io.packet_errors`).

    Returns:
        uint8 array ``[num_frames, H, W, 3]``.

    Raises:
        DataError: unreadable file, the video is shorter than the clip needs, or more than
            ``MAX_PACKET_ERROR_SHARE`` of the packets read fail to decode.
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
    """Decode a whole (small) video: uint8 ``[T, H, W, 3]``, upright as :func:`read_clip`'s frames.

    Meant for short clips and tests; use :func:`read_clip` for training data. A picture that
    fails to decode repeats the one before it.

    Raises:
        DataError: unreadable file, no frames, or too many undecodable packets.
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
    tally = PacketTally()
    reformatter = VideoReformatter()
    turn = UPRIGHT
    try:
        stream = _video_stream(container, path)
        for frame in _frames(container, stream, None, tally):
            if frame is None and not frames:
                continue
            if not frames:
                turn = orientation.of_file(path, frame)
            frames.append(frames[-1] if frame is None else _rgb(frame, reformatter, None))  # a lost picture: held
            if max_frames is not None and len(frames) >= max_frames:
                break
        settle(tally, path, "video")
    except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:
        raise DataError(f"{path}: decode failed ({_describe(exc)})") from None
    finally:
        container.close()
    if not frames:
        raise DataError(f"{path}: no frames could be decoded")
    return turn.apply(np.stack(frames))  # (T, H, W, 3)
