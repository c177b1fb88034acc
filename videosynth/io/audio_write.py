"""Writing sound: mono float32 ``[S]`` in [-1, 1] as an audio file or a video's soundtrack stream."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

from videosynth.errors import DataError
from videosynth.io.files import _describe, temp_path


# Soundtrack encoder per video suffix; GIF and still images carry no sound.
AUDIO_ENCODERS = {".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus",
                  ".avi": "libmp3lame"}
AUDIO_BITRATE = 128_000  # bits per second of written soundtracks


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
