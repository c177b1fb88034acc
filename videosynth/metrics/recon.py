"""Reconstruction metrics for videos: PSNR, SSIM and (optional) LPIPS, per frame and averaged.

SSIM follows Wang et al., "Image Quality Assessment: From Error Visibility to
Structural Similarity" (IEEE TIP 2004): an 11×11 Gaussian window with σ = 1.5,
K₁ = 0.01, K₂ = 0.03, computed on the valid region of each channel of each
frame. LPIPS is Zhang et al., "The Unreasonable Effectiveness of Deep Features
as a Perceptual Metric" (CVPR 2018), the AlexNet variant of :mod:`.lpips`, the
same network the perceptual loss uses, from a local weights file.

All functions take two batches of videos ``float [B, C, T, H, W]`` in ``[-1, 1]``
and return one value per video ``float [B]`` (the mean over frames).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from videosynth.errors import VideoSynthError

VALUE_RANGE = 2.0  # inputs live in [-1, 1]
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if x.shape != y.shape or x.ndim != 5:
        raise VideoSynthError(f"{name} expects two videos [B, C, T, H, W] of equal shape, got "
                              f"{tuple(x.shape)} and {tuple(y.shape)}")


def _frames(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).double()  # (B*T, C, H, W)


def psnr_of_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of a mean squared error between videos in ``[-1, 1]``; ``inf`` where ``mse`` is 0."""
    return 10.0 * torch.log10(VALUE_RANGE ** 2 / mse)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per frame, averaged over frames.

    Args:
        x, y: videos ``float [B, C, T, H, W]`` in ``[-1, 1]`` (peak-to-peak range 2).

    Returns:
        ``float64 [B]``; ``inf`` for identical videos.
    """
    _check_pair(x, y, "psnr")
    b, _, t = x.shape[:3]
    mse = (_frames(x) - _frames(y)).pow(2).flatten(1).mean(dim=1)  # (B*T,)
    per_frame = psnr_of_mse(mse)  # (B*T,), inf where mse == 0
    return per_frame.view(b, t).mean(dim=1)  # (B,)


def _gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    window = g[:, None] @ g[None, :]  # (size, size)
    return window.expand(channels, 1, size, size).contiguous()  # (C, 1, size, size) depthwise


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity, per frame (mean over channels and the valid window region), averaged over frames.

    Args:
        x, y: videos ``float [B, C, T, H, W]`` in ``[-1, 1]``; H and W at least 11.

    Returns:
        ``float64 [B]`` in ``[-1, 1]``; exactly 1 for identical videos.

    Raises:
        VideoSynthError: shape mismatch or frames smaller than the 11-pixel window.
    """
    _check_pair(x, y, "ssim")
    b, c, t, h, w = x.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise VideoSynthError(f"ssim needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {h}x{w}")
    a, bb = _frames(x), _frames(y)
    window = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, c).to(a.device)
    blur = lambda z: F.conv2d(z, window, groups=c)  # noqa: E731 — (B*T, C, H-10, W-10)
    mu_a, mu_b = blur(a), blur(bb)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(bb * bb) - mu_b ** 2
    cov = blur(a * bb) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * VALUE_RANGE) ** 2, (SSIM_K2 * VALUE_RANGE) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return ssim_map.flatten(1).mean(dim=1).view(b, t).mean(dim=1)  # (B,)


def lpips_distance(x: torch.Tensor, y: torch.Tensor, net: torch.nn.Module | str | Path | None = None) -> torch.Tensor:
    """LPIPS-alex distance per frame, averaged over frames (:mod:`videosynth.metrics.lpips`).

    Args:
        x, y: videos ``float [B, C, T, H, W]`` in ``[-1, 1]`` (frames at least 32x32).
        net: a loaded :class:`~videosynth.metrics.lpips.LPIPSAlex` (reused over batches), or
            the weights file / a folder holding it; default the weights search path.

    Returns:
        ``float64 [B]`` (0 for identical videos; lower is more similar).

    Raises:
        MissingWeightsError: the weights are not on disk (nothing is downloaded).
    """
    from videosynth.metrics.lpips import LPIPS_MIN_SIZE, load_lpips, video_frames

    _check_pair(x, y, "lpips")
    b, _, t, h, w = x.shape
    if min(h, w) < LPIPS_MIN_SIZE:
        raise VideoSynthError(f"lpips needs frames of at least {LPIPS_MIN_SIZE}x{LPIPS_MIN_SIZE} pixels, got {h}x{w}")
    if not isinstance(net, torch.nn.Module):
        net = load_lpips(net)[0]
    net = net.to(x.device)
    with torch.inference_mode():
        d = net(video_frames(x), video_frames(y))  # (B*T,)
    return d.double().view(b, t).mean(dim=1)  # (B,)


def recon_metrics(x: torch.Tensor, y: torch.Tensor, with_lpips: bool = False) -> dict[str, float]:
    """Mean PSNR / SSIM (and LPIPS if asked) over a batch of video pairs ``[B, C, T, H, W]`` in ``[-1, 1]``."""
    out = {"psnr": float(psnr(x, y).mean()), "ssim": float(ssim(x, y).mean())}
    if with_lpips:
        out["lpips"] = float(lpips_distance(x, y).mean())
    return out
