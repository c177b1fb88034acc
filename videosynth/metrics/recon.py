"""Reconstruction metrics for videos: PSNR, SSIM and (optional) LPIPS, per frame and averaged.

SSIM follows Wang et al., "Image Quality Assessment: From Error Visibility to
Structural Similarity" (IEEE TIP 2004): an 11×11 Gaussian window with σ = 1.5,
K₁ = 0.01, K₂ = 0.03, computed on the valid region of each channel of each
frame. LPIPS is Zhang et al., "The Unreasonable Effectiveness of Deep Features
as a Perceptual Metric" (CVPR 2018), used only through the ``lpips`` package
when it and its backbone weights are already on disk.

All functions take two batches of videos ``float [B, C, T, H, W]`` in ``[-1, 1]``
and return one value per video ``float [B]`` (the mean over frames).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from videosynth.errors import MissingWeightsError, VideoSynthError

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
    per_frame = 10.0 * torch.log10(VALUE_RANGE ** 2 / mse)  # (B*T,), inf where mse == 0
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


# Backbone files torchvision would otherwise download for lpips.LPIPS(pretrained=True).
LPIPS_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def lpips_distance(x: torch.Tensor, y: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS distance per frame, averaged over frames, via the optional ``lpips`` package.

    Args:
        x, y: videos ``float [B, C, T, H, W]`` in ``[-1, 1]`` (the range LPIPS expects).
        net: ``"alex"`` or ``"vgg"``.

    Returns:
        ``float64 [B]`` (0 for identical videos; lower is more similar).

    Raises:
        MissingWeightsError: ``lpips`` is not installed, or the torchvision backbone
            weights are not already in the torch hub cache (nothing is downloaded).
    """
    _check_pair(x, y, "lpips")
    if net not in LPIPS_BACKBONE_FILES:
        raise VideoSynthError(f"unknown LPIPS net '{net}'; choose one of {sorted(LPIPS_BACKBONE_FILES)}")
    try:
        import lpips  # optional dependency
    except ImportError:
        raise MissingWeightsError("LPIPS needs the optional 'lpips' package (pip install lpips) and its "
                                  f"backbone file {LPIPS_BACKBONE_FILES[net]} in the torch hub cache; "
                                  "PSNR and SSIM work without it")
    backbone = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILES[net]
    if not backbone.is_file():
        raise MissingWeightsError(f"LPIPS backbone weights {backbone} not found; videosynth never downloads "
                                  "them — place the torchvision file there to enable LPIPS")
    model = lpips.LPIPS(net=net, verbose=False).eval().to(x.device)
    b, _, t = x.shape[:3]
    with torch.inference_mode():
        d = model(_frames(x).float(), _frames(y).float())  # (B*T, 1, 1, 1)
    return d.double().view(b, t).mean(dim=1)  # (B,)


def recon_metrics(x: torch.Tensor, y: torch.Tensor, with_lpips: bool = False) -> dict[str, float]:
    """Mean PSNR / SSIM (and LPIPS if asked) over a batch of video pairs ``[B, C, T, H, W]`` in ``[-1, 1]``."""
    out = {"psnr": float(psnr(x, y).mean()), "ssim": float(ssim(x, y).mean())}
    if with_lpips:
        out["lpips"] = float(lpips_distance(x, y).mean())
    return out
