"""Frame layout and range conversions, resize and crop for the data pipeline.

I/O layout: ``uint8 [T, H, W, 3]`` (numpy), as returned by :mod:`videosynth.io`.
Library layout: ``float32 [C, T, H, W]`` in ``[-1, 1]`` with ``C = 3`` (a batch adds
a leading ``B``).  :func:`to_float` goes one way, :func:`to_uint8` the other;
``to_uint8(to_float(x)) == x`` exactly; both are defined in :mod:`videosynth.io.convert`
(the I/O writes grids from float videos) and re-exported here.

All randomness takes an explicit ``torch.Generator`` so a clip is reproducible
from ``(seed, epoch, index)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from videosynth.io.convert import to_float, to_uint8  # noqa: F401  (the conversions live with the I/O)

CROP_MODES = ("center", "random")


def crop_box(height: int, width: int, size: tuple[int, int], crop: str = "center",
             generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """The source window ``(top, left, h, w)`` that, resized, gives the output of :func:`resize_crop`.

    The shorter side is scaled to fit ``size``; the window has the aspect ratio of ``size``.
    """
    out_h, out_w = size
    scale = max(out_h / height, out_w / width)
    h = min(height, max(1, round(out_h / scale)))
    w = min(width, max(1, round(out_w / scale)))
    if crop == "center":
        top, left = (height - h) // 2, (width - w) // 2
    elif crop == "random":
        top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
    else:
        raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
    return top, left, h, w


def cover_size(height: int, width: int, size: int | tuple[int, int]) -> tuple[int, int]:
    """``(h, w)`` of a ``height`` x ``width`` frame scaled to just cover ``size``: the shorter side fits it.

    Frames decoded at this size (``io.read_clip(..., size=)``) need only the crop of
    :class:`ClipTransform`, not its resize.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else tuple(size)
    scale = max(out_h / height, out_w / width)
    return max(out_h, round(height * scale)), max(out_w, round(width * scale))


def resize(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of float ``[C, T, H, W]`` to ``[C, T, *size]`` (antialiased when shrinking)."""
    _, _, h, w = video.shape
    if (h, w) == tuple(size):
        return video.contiguous()
    antialias = h > size[0] or w > size[1]
    out = F.interpolate(video, size=tuple(size), mode="bilinear", align_corners=False,
                        antialias=antialias)  # (C, T, out_h, out_w): T acts as the batch axis
    return out.clamp_(-1.0, 1.0)


def resize_crop(video: torch.Tensor, size: int | tuple[int, int], crop: str = "center",
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Resize the shorter side to ``size`` and crop (centre or random) to ``size``.

    ``video``: float ``[C, T, H, W]``; returns float ``[C, T, size_h, size_w]``.
    The crop is taken first and only that window is resized (same result, less work).
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    _, _, height, width = video.shape
    top, left, h, w = crop_box(height, width, size, crop, generator)
    return resize(video[:, :, top:top + h, left:left + w], size)  # (C, T, size_h, size_w)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of uint8 frames ``[T, H, W, C]`` to ``[T, *size, C]`` (antialiased when shrinking).

    Resizing before the float conversion touches 4 bytes per output pixel
    instead of 16 per input pixel: several times faster for the usual downscale.
    """
    t, h, w, c = frames.shape
    if (h, w) == tuple(size):
        return frames
    antialias = h > size[0] or w > size[1]
    x = frames.permute(0, 3, 1, 2)  # (T, C, H, W) view with channels-last strides: torch's fast uint8 path
    out = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=antialias)
    return out.permute(0, 2, 3, 1)  # (T, size_h, size_w, C)


@dataclass
class ClipTransform:
    """uint8 frames ``[T, H, W, C]`` -> float32 ``[3, T, size, size]`` in ``[-1, 1]``.

    The shorter side is resized to ``size`` and the other cropped (centre, or at
    random from the generator passed to ``__call__`` when ``crop="random"``).
    Cropping and resizing happen on uint8; only the output is made float.
    """

    size: int | tuple[int, int] = 64
    crop: str = "center"

    def __post_init__(self) -> None:
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {self.crop!r}")

    def __call__(self, frames, generator: torch.Generator | None = None) -> torch.Tensor:
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        frames = torch.as_tensor(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
        if frames.ndim == 3:
            frames = frames.unsqueeze(-1)  # (T, H, W, 1) grayscale
        height, width = frames.shape[1], frames.shape[2]
        top, left, h, w = crop_box(height, width, size, self.crop, generator)
        window = frames[:, top:top + h, left:left + w]  # (T, h, w, C)
        return to_float(resize_frames(window, size))  # (3, T, size_h, size_w)
