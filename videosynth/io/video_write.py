"""Writing videos: uint8 frames ``[T, H, W, 3]`` (or grayscale) encoded with PyAV, GIFs with Pillow,
an optional mono soundtrack muxed beside them; written to a temporary name and renamed into place."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from videosynth.errors import DataError
from videosynth.io.audio_write import AUDIO_ENCODERS, _add_audio_stream, _mux_audio, check_audio
from videosynth.io.files import _describe, temp_path


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


def _as_frames(frames) -> np.ndarray:
    """Accept uint8 ``[T, H, W, 3]``, ``[T, H, W, 1]`` or ``[T, H, W]`` (numpy or torch)."""
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"write_video expects uint8 frames, got {frames.dtype}; use videosynth.io.to_uint8")
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
