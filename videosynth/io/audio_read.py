"""Reading sound: probe a soundtrack, decode a window of it as mono float32 at a fixed rate.

Audio inside the library is mono float32 in [-1, 1] at one fixed sample rate; here it is a
numpy array ``[S]``. Times are seconds from the first video frame when the file has a video
stream (so frame k starts at k / fps, as read_clip numbers frames), else from the audio
stream's start. Decoding seeks near the window and stops after it, like read_clip. Decoders
of the common lossy codecs are kept per process and reused (the decoder pool below).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videosynth.errors import DataError
from videosynth.io.files import AUDIO_EXTENSIONS, SOUNDTRACK_STEM, _describe, _open
from videosynth.io.packet_errors import PacketTally, settle
from videosynth.io.resample import filter_shape, place, resample
from videosynth.io.video_read import _clip_indices


AUDIO_SEEK_MARGIN = 0.1  # seconds decoded before a window's start: a few codec frames, so the first kept one is whole
# After a seek, decoded frames that end this many seconds or more before the window only prime the decoder
# (more where the resampler's taps reach further: below ~2.5 kHz): they are dropped wherever the demuxer
# landed (a Matroska seek without audio cues lands where earlier reads left its index), so a window's
# samples do not depend on what was read before.
AUDIO_RESAMPLE_LEAD = 0.02
# Audio decoders opened once per process and flushed before each read that seeks (opening an AAC
# decoder costs a sizeable share of reading a clip's sound from an open file). A
# flushed decoder's first frame may differ from a fresh one's, so a decoder is shared only where
# the first frame after a seek always falls in the priming margin (see _shared_decoder); later
# frames match a fresh decoder's: MP3 bit for bit, AAC to an ulp (FFmpeg's AAC decoder differs by
# as much after other reads of its own stream; its noise substitution draws other noise).
SHARED_AUDIO_DECODERS = ("aac", "mp3float")
MAX_SHARED_DECODERS = 8


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


def _lead(stream, sample_rate: int) -> float:
    """Seconds before a window that decoding keeps: the resampler's reach and then some."""
    in_rate = stream.codec_context.sample_rate or stream.rate or 0
    if not in_rate or in_rate == sample_rate:
        return AUDIO_RESAMPLE_LEAD
    return max(AUDIO_RESAMPLE_LEAD, 2 * filter_shape(in_rate, sample_rate)[1] / in_rate)


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


def clear_shared_decoders() -> None:
    """Drop every decoder kept by :func:`_shared_decoder` (before a fork: see :mod:`videosynth.io.reader_cache`)."""
    _AUDIO_DECODERS.clear()


def _decoded_by(decoder, container, stream, tally: PacketTally):
    """Frames of ``stream`` from where ``container`` stands, decoded by ``decoder`` (then drained).

    A packet that fails to decode yields its duration in seconds instead (0.0 when the container
    does not say) and is counted in ``tally`` (see :mod:`videosynth.io.packet_errors`).
    """
    for packet in container.demux(stream):  # the empty packet at the end drains the decoder
        tally.packets += packet.size > 0
        try:
            frames = decoder.decode(packet)
        except av.FFmpegError as exc:
            tally.failed(_describe(exc))
            known = packet.duration is not None and packet.time_base is not None
            yield float(packet.duration * packet.time_base) if known else 0.0
            continue
        yield from frames


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
        tally = PacketTally()
        for frame in _decoded_by(stream.codec_context if shared is None else shared[1], container, stream, tally):
            if isinstance(frame, float):  # a lost packet: silence where it was (pieces are placed by pts)
                if cursor is not None and in_rate:
                    cursor += round(frame * in_rate)  # frames without pts follow on after the gap
                continue
            if seeks and _ends_before(frame, lead_in, time_base):
                continue  # priming: the first frames after a seek
            rate = frame.sample_rate
            if not in_rate:
                in_rate = rate
                if in_rate <= 0:
                    raise ValueError("the audio stream has no sample rate")
                if wanted is not None:
                    need = (first + wanted) * in_rate // sample_rate + math.ceil(filter_shape(in_rate, sample_rate)[1]) + 2
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
        if shared is not None and not tally.errors:
            _keep_decoder(*shared)  # not after a failure: a decoder in an unknown state is dropped
    except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:
        raise DataError(f"{source}: audio decode failed ({_describe(exc)})") from None
    settle(tally, source, "audio")
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
        place(out, first, x, lo)
    else:
        out = resample(x, lo, in_rate, sample_rate, first, wanted)
    return np.clip(out, -1.0, 1.0)


def read_audio(path: str | Path, sample_rate: int, start: float = 0.0, duration: float | None = None) -> np.ndarray:
    """Mono float32 ``[S]`` in ``[-1, 1]`` at ``sample_rate`` Hz from ``start`` seconds for ``duration`` seconds.

    Channels are averaged (downmix) and resampled (windowed sinc). ``S = round(duration * sample_rate)``
    exactly: a window reaching before the start or past the end of the sound is padded with
    silence. ``duration=None`` reads to the end. Works on videos with an audio stream, audio
    files (wav, mp3, aac/m4a, flac, ogg, opus, ...) and frame folders with an ``audio.*`` file.
    :class:`VideoReader` reads the same windows while keeping the files open. A packet that fails to
    decode is skipped and its samples are silence; later samples keep their timestamps (see
    :mod:`videosynth.io.packet_errors`).

    Raises:
        DataError: no soundtrack, an unreadable file, a bad window, or more than
            ``MAX_PACKET_ERROR_SHARE`` of the packets read fail to decode.
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
