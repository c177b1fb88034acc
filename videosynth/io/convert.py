"""Float <-> uint8 frame conversion: the library layout and the I/O layout, the one place they meet.

Library layout: ``float32 [..., C, T, H, W]`` in ``[-1, 1]``. I/O layout: ``uint8 [T, H, W, C]``.
uint8 value ``v`` maps to ``v / UINT8_HALF_RANGE - 1`` (0 -> -1, 255 -> +1), and
``to_uint8(to_float(x)) == x`` exactly.
"""

from __future__ import annotations

import numpy as np
import torch

UINT8_HALF_RANGE = 127.5  # [-1, 1] <-> [0, 255]
# StyleGAN-V's conversion for its detectors: x * 127.5 + 128, clamped, truncated (see to_uint8_truncating)
TRUNCATING_SCALE = 127.5
TRUNCATING_OFFSET = 128.0


def to_float(frames) -> torch.Tensor:
    """uint8 ``[T, H, W, C]`` (C = 1, 3 or 4) or ``[T, H, W]`` -> float32 ``[3, T, H, W]`` in ``[-1, 1]``.

    Grayscale is repeated to 3 channels; an alpha channel is dropped.

    Raises:
        ValueError: not uint8, or not 3/4-dimensional.
    """
    x = torch.as_tensor(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else torch.as_tensor(frames)
    if x.dtype != torch.uint8:
        raise ValueError(f"to_float expects uint8 frames, got {x.dtype}")
    if x.ndim == 3:
        x = x.unsqueeze(-1)  # (T, H, W, 1)
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise ValueError(f"to_float expects frames [T, H, W, C], got {tuple(x.shape)}")
    if x.shape[-1] == 4:
        x = x[..., :3]  # drop alpha
    if x.shape[-1] == 1:
        x = x.expand(-1, -1, -1, 3)  # (T, H, W, 3)
    x = x.permute(3, 0, 1, 2).float()  # (C, T, H, W)
    return x.div_(UINT8_HALF_RANGE).sub_(1.0)


def to_uint8(video) -> np.ndarray:
    """float ``[..., C, T, H, W]`` in ``[-1, 1]`` -> uint8 ``[..., T, H, W, C]`` (values clamped, rounded).

    Accepts a torch tensor or numpy array, with or without a batch axis; the result is a numpy
    array on the CPU.

    Raises:
        ValueError: fewer than 4 dimensions.
    """
    x = torch.as_tensor(video).detach().cpu().float()
    if x.ndim < 4:
        raise ValueError(f"to_uint8 expects video [..., C, T, H, W], got {tuple(x.shape)}")
    x = ((x + 1.0) * UINT8_HALF_RANGE).round_().clamp_(0, 255).to(torch.uint8)
    return x.movedim(-4, -1).contiguous().numpy()  # (..., T, H, W, C)


def to_uint8_truncating(x: torch.Tensor) -> torch.Tensor:
    """float in ``[-1, 1]`` -> uint8 in ``[0, 255]`` as ``x * 127.5 + 128`` clamped and truncated; same layout
    and device.

    This is not :func:`to_uint8`: it is the conversion of the StyleGAN-V metrics code whose
    C3D and Inception reference statistics the detectors reproduce (a value half-way between two
    levels goes up, where :func:`to_uint8` rounds it to even), and it keeps the tensor where it is
    so the detector's input never leaves its device.
    """
    return (x * TRUNCATING_SCALE + TRUNCATING_OFFSET).clamp(0, 255).to(torch.uint8)
