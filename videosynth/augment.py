"""Differentiable augmentation of discriminator inputs for video GANs (DiffAugment).

Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training": the
same random, differentiable transforms are applied to every clip the discriminator
sees, real and generated, in both the discriminator and the generator update. The
discriminator can then no longer win by memorising exact pixels, and the generator
still gets gradients through the transforms. It is the cure for the regime in which
D(real) and D(fake) drift apart within a few hundred steps.

For video every transform is drawn once per clip and applied to all its frames alike,
so the augmentation never creates motion that is not in the clip (Skorokhodov et al.
2022, StyleGAN-V, augment videos the same way).

Policies (``loss.diffaug`` is a comma-separated list, applied in this order):

* ``color``: brightness (+U[-0.5, 0.5]), saturation (×U[0, 2] around the grey
  value) and contrast (×U[0.5, 1.5] around the clip mean);
* ``translation``: an integer shift of up to 1/8 of the frame in x and y, the
  uncovered border filled with zeros;
* ``cutout``: a square of half the frame side set to zero, at a random place.

Videos are ``float (B, C, T, H, W)`` in ``[-1, 1]``; all randomness comes from the
global RNG (seeded per rank by the training loop and restored on resume).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from videosynth.config import choice_hint
from videosynth.errors import ConfigError

TRANSLATION_RATIO = 1 / 8  # largest shift, as a fraction of the frame side (the paper's value)
CUTOUT_RATIO = 1 / 2  # cutout side, as a fraction of the frame side (the paper's value)


def _rand(x: torch.Tensor) -> torch.Tensor:
    """One U[0, 1) number per clip, shaped ``(B, 1, 1, 1, 1)`` to broadcast over a video."""
    return torch.rand(x.shape[0], 1, 1, 1, 1, dtype=x.dtype, device=x.device)


def color(x: torch.Tensor) -> torch.Tensor:
    """Random brightness, saturation and contrast, one draw per clip."""
    x = x + (_rand(x) - 0.5)
    grey = x.mean(dim=1, keepdim=True)  # (B, 1, T, H, W)
    x = (x - grey) * (_rand(x) * 2) + grey
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)  # (B, 1, 1, 1, 1)
    return (x - mean) * (_rand(x) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each clip by the same integer ``(dy, dx)`` in every frame; zeros come in at the border."""
    b, c, t, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    # Index into a copy padded by one zero pixel: every out-of-frame read lands on the padding.
    iy = (ys + dy + 1).clamp(0, h + 1).expand(b, h, w)  # (B, H, W)
    ix = (xs + dx + 1).clamp(0, w + 1).expand(b, h, w)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 3, 4, 1, 2)  # (B, H+2, W+2, C, T)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded[batch, iy, ix].permute(0, 3, 4, 1, 2).contiguous()  # (B, C, T, H, W)


def cutout(x: torch.Tensor, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero one square per clip (the same square in every frame)."""
    b, _, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)  # square centre
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    y0, x0 = cy - ch // 2, cx - cw // 2  # top-left corner; the square may stick out of the frame
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)  # (B, H, W)
    keep = (~inside).to(x.dtype).view(b, 1, 1, h, w)
    return x * keep


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def parse_policy(policy: str, key: str = "loss.diffaug") -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; ``""`` -> ``()``.

    Raises:
        ConfigError: an unknown policy name (with the closest valid one).
    """
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    for name in names:
        if name not in POLICIES:
            raise ConfigError(f"{key}: unknown augmentation '{name}' ({choice_hint(name, POLICIES)})")
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """Apply the named transforms in order to videos ``(B, C, T, H, W)``; ``x`` itself for ``()``."""
    if x.dim() != 5:
        raise ValueError(f"diff_augment expects videos (B, C, T, H, W), got {tuple(x.shape)}")
    for name in policy:
        x = POLICIES[name](x)
    return x
