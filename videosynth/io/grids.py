"""Many clips as one: an animated grid (``make_grid``, ``write_grid``) or a still filmstrip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from videosynth.io.convert import to_uint8
from videosynth.io.video_write import write_video


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
