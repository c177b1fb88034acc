"""VQ-VAE video tokenizer.

Vector-quantised autoencoder of van den Oord et al. 2017 ("Neural Discrete
Representation Learning") with 3D convolutions over ``(T, H, W)`` as in
VideoGPT (Yan et al. 2021, "VideoGPT: Video Generation using VQ-VAE and
Transformers").

The bottleneck between encoder and decoder is a choice (``bottleneck: vq | fsq | gaussian``,
``videosynth.models.bottlenecks``): the EMA vector quantiser, finite scalar quantisation, whose
codes feed the same priors, or a KL-regularised continuous latent for flow matching.

This file holds, in reading order: the 3D residual block, the encoder and the
decoder, :class:`VQVAEConfig` with :data:`PRESETS`, and :class:`VQVAE`.

Layouts: videos are ``float32 [B, C, T, H, W]`` in ``[-1, 1]``; codes of a discrete
bottleneck are ``int64 [B, t, h, w]`` and latents ``float32 [B, code_dim, t, h, w]``,
with ``t = T / downsample[0]`` etc.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from videosynth.config import at_least, checked, in_range, positive
from videosynth.errors import ConfigError
from videosynth.models.bottlenecks import (Bottleneck, BottleneckOutput, ContinuousBottleneck, DiscreteBottleneck,
                                           bottleneck_class, build_bottleneck, canonical_name)

# ---------------------------------------------------------------------------
# primitives and blocks
# ---------------------------------------------------------------------------

MAX_NORM_GROUPS = 32  # GroupNorm groups; the largest divisor of the channel count up to this


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, MAX_NORM_GROUPS), channels)


class ResBlock3d(nn.Module):
    """Pre-activation residual block: norm-SiLU-conv3 then norm-SiLU-conv1, plus identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = _norm(channels)
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.norm2 = _norm(channels)
        self.conv2 = nn.Conv3d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


def _strides(downsample: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Per-step strides: step ``i`` halves every axis that still needs halving.

    ``(2, 4, 4)`` -> ``[(2, 2, 2), (1, 2, 2)]``: the time axis is done after one step.
    """
    steps = [int(math.log2(d)) for d in downsample]
    return [tuple(2 if i < s else 1 for s in steps) for i in range(max(steps))]


def _kernel(stride: tuple[int, int, int]) -> tuple[int, int, int]:
    # kernel = stride + 2 with padding 1 maps n -> n / stride exactly (and back for the transpose)
    return tuple(s + 2 for s in stride)


LAYOUTS = ("rgb", "full")


def _step_channels(cfg: "VQVAEConfig") -> list[int]:
    """Output channels of each downsampling step, finest first (the last is ``hidden``)."""
    return [*cfg.level_channels, cfg.hidden] if cfg.level_channels else [cfg.hidden] * len(_strides(cfg.downsample))


class Encoder(nn.Module):
    """Video ``[B, 3, T, H, W]`` -> latent ``[B, out_channels, t, h, w]`` (what the bottleneck reads).

    Layout ``"rgb"``: the first strided conv reads the RGB frames, each step halves the axes
    and widens to the next of ``level_channels`` (then ``hidden``), a 3x3x3 conv mixes at the
    latent resolution. Layout ``"full"`` (runs made before layouts existed): a 3x3x3 conv
    lifts RGB to ``hidden`` channels at full resolution and every step keeps ``hidden``.
    """

    def __init__(self, cfg: "VQVAEConfig", out_channels: int):
        super().__init__()
        ch, widths = cfg.hidden, _step_channels(cfg)
        if cfg.layout == "full":
            self.conv_in = nn.Conv3d(cfg.in_channels, ch, 3, padding=1)
            inputs = widths
        else:
            self.conv_in = None
            inputs = [cfg.in_channels, *widths[:-1]]
        self.down = nn.ModuleList(
            nn.Conv3d(i, o, _kernel(s), stride=s, padding=1)
            for i, o, s in zip(inputs, widths, _strides(cfg.downsample))
        )
        self.conv_mid = nn.Conv3d(ch, ch, 3, padding=1) if cfg.layout == "rgb" else None
        self.res = nn.Sequential(*[ResBlock3d(ch) for _ in range(cfg.n_res_blocks)])
        self.norm_out = _norm(ch)
        self.conv_out = nn.Conv3d(ch, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.conv_in is None else self.conv_in(x)  # (B, C or hidden, T, H, W)
        for conv in self.down:
            h = F.silu(conv(h))  # each step halves the axes with stride 2
        if self.conv_mid is not None:
            h = self.conv_mid(h)
        h = self.res(h)  # (B, hidden, t, h, w)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, out_channels, t, h, w)


class Decoder(nn.Module):
    """Latent ``[B, code_dim, t, h, w]`` -> video ``[B, 3, T, H, W]`` (unbounded; ~[-1, 1] once trained).

    The mirror of :class:`Encoder`: layout ``"rgb"`` narrows step by step and the last
    transposed conv writes RGB; ``"full"`` keeps ``hidden`` channels up to a full-resolution
    3x3x3 conv to RGB.
    """

    def __init__(self, cfg: "VQVAEConfig"):
        super().__init__()
        ch, widths = cfg.hidden, _step_channels(cfg)[::-1]  # coarsest first
        self.conv_in = nn.Conv3d(cfg.code_dim, ch, 3, padding=1)
        self.res = nn.Sequential(*[ResBlock3d(ch) for _ in range(cfg.n_res_blocks)])
        self.norm = _norm(ch)
        outputs = widths if cfg.layout == "full" else [*widths[1:], cfg.in_channels]
        self.up = nn.ModuleList(
            nn.ConvTranspose3d(i, o, _kernel(s), stride=s, padding=1)
            for i, o, s in zip(widths, outputs, reversed(_strides(cfg.downsample)))
        )
        self.conv_out = nn.Conv3d(ch, cfg.in_channels, 3, padding=1) if cfg.layout == "full" else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.res(self.conv_in(z))  # (B, hidden, t, h, w)
        h = F.silu(self.norm(h))
        for i, conv in enumerate(self.up):
            h = conv(h)  # each step doubles the axes with stride 2
            if self.conv_out is not None or i + 1 < len(self.up):
                h = F.silu(h)
        return h if self.conv_out is None else self.conv_out(h)  # (B, 3, T, H, W)


# ---------------------------------------------------------------------------
# config and presets
# ---------------------------------------------------------------------------


@dataclass
class VQVAEConfig:
    """VQ-VAE hyper-parameters.

    ``downsample`` is the per-axis factor ``(T, H, W)``; each must be a power of
    two and the clip size a multiple of it.
    """

    in_channels: int = checked(3, at_least(1))
    hidden: int = checked(64, at_least(1))  # channels at the latent resolution (the residual blocks)
    # "rgb": downsample straight from RGB, widening through ``level_channels`` to ``hidden``, and
    # upsample straight back to RGB; "full": every layer ``hidden`` wide, from a full-resolution
    # first conv to a full-resolution last conv (4-8x the compute; runs saved without a layout)
    layout: str = "rgb"
    # "rgb": channels after each downsampling step but the last, finest first (one per step but
    # the last; [] = ``hidden`` at every step)
    level_channels: list[int] = checked(factory=list, check=at_least(1))
    n_res_blocks: int = checked(2, at_least(0))  # residual blocks at latent resolution (encoder and decoder each)
    downsample: tuple[int, int, int] = checked((4, 4, 4), at_least(1))
    codebook_size: int = checked(512, at_least(2))
    code_dim: int = checked(64, at_least(1))
    codebook: str = "ema"  # "vq": "ema" | "loss"
    # "vq": the EMA vector quantiser; "fsq": finite scalar quantisation to ``levels`` (then
    # code_dim = len(levels) and codebook_size = prod(levels), derived by the bottleneck; beta, the
    # codebook and restart settings are unused); "gaussian" (alias "continuous", the name runs were
    # saved with): a KL-regularised latent of code_dim channels (no codes; for flow matching)
    bottleneck: str = "vq"
    levels: list[int] = checked(factory=lambda: [8, 5, 5, 5], check=at_least(2))
    kl_weight: float = checked(1e-4, at_least(0))  # "gaussian": weight of KL(q(z|x) || N(0, I))
    beta: float = checked(0.25, at_least(0))  # commitment weight
    decay: float = checked(0.99, in_range(0, 1, high_open=True))  # EMA decay of codebook statistics
    eps: float = checked(1e-5, positive())  # Laplace smoothing of EMA counts
    restart_after: int = checked(100, at_least(0))  # restart a code unused this many consecutive training steps (0 = never)
    restart_threshold: float = checked(0.0, at_least(0))  # "ema": restart codes with EMA count below this (0 = off; VideoGPT: 1.0)
    collapse_usage: float = checked(0.05, in_range(0, 1))  # usage_collapsed() when the batch uses fewer than this share of the codes it could

    def __post_init__(self) -> None:
        self.bottleneck = canonical_name(self.bottleneck)
        bottleneck_class(self.bottleneck).configure(self)
        self.downsample = tuple(int(v) for v in self.downsample)
        if len(self.downsample) != 3 or any(d < 1 or d & (d - 1) for d in self.downsample):
            raise ConfigError(
                f"vqvae.downsample must be three powers of two (T, H, W), got {list(self.downsample)}"
            )
        if self.layout not in LAYOUTS:
            raise ConfigError(f"vqvae.layout must be one of {list(LAYOUTS)}, got '{self.layout}'")
        steps = len(_strides(self.downsample))
        if self.level_channels and (self.layout != "rgb" or len(self.level_channels) != steps - 1):
            raise ConfigError(
                f"vqvae.level_channels takes {max(steps - 1, 0)} channel counts (one per downsampling step but "
                f"the last) with layout 'rgb', got {list(self.level_channels)}"
                + (" with layout 'full'" if self.layout != "rgb" else "")
            )
        if self.codebook_size < 2 or self.code_dim < 1 or self.hidden < 1:
            raise ConfigError("vqvae.codebook_size must be >= 2 and vqvae.code_dim, vqvae.hidden >= 1")


PRESETS: dict[str, VQVAEConfig] = {
    # unit tests: milliseconds per step at 16x16x4
    "tiny": VQVAEConfig(hidden=16, n_res_blocks=1, downsample=(2, 4, 4), codebook_size=64, code_dim=16),
    # 16 frames of 32x32 -> 4x8x8 tokens; trains on CPU in minutes on the built-in datasets
    "demo-32x32x16": VQVAEConfig(
        hidden=48, n_res_blocks=2, downsample=(4, 4, 4), codebook_size=256, code_dim=32
    ),
    # 8 frames of 32x32 -> 4x8x8 tokens, 64 codes: one-colour shapes on black need few codes;
    # small enough to train well on a 2-core CPU in minutes
    "shapes-32x32x8": VQVAEConfig(
        hidden=32, n_res_blocks=1, downsample=(2, 4, 4), codebook_size=64, code_dim=16
    ),
    # 16 frames of 64x64 -> 4x16x16 latents (coloured two-object shapes, configs/vqvae/shapes-kl-64x64x16.yaml)
    "shapes-64x64x16": VQVAEConfig(
        hidden=64, n_res_blocks=2, downsample=(4, 4, 4), codebook_size=256, code_dim=32
    ),
    # VideoGPT's UCF-101 tokenizer scale: 16x64x64 -> 4x16x16 tokens, 1024 codes
    "ucf-64x64x16": VQVAEConfig(
        hidden=240, n_res_blocks=4, downsample=(4, 4, 4), codebook_size=1024, code_dim=256
    ),
}


# ---------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------


@dataclass
class AutoencoderOutput:
    """One tokenizer training forward. Scalars are 0-dim tensors; ``loss`` = recon + the bottleneck's regulariser."""

    recon: torch.Tensor  # (B, C, T, H, W), unclamped
    loss: torch.Tensor
    recon_loss: torch.Tensor  # MSE in the [-1, 1] range
    bottleneck: BottleneckOutput  # the bottleneck's own output (QuantizerOutput, GaussianOutput, ...)


class VQVAE(nn.Module):
    """Video autoencoder: encoder, bottleneck (``quantizer``), decoder.

    Discrete bottlenecks: ``encode`` videos to code grids, ``decode`` code grids to videos. Every
    bottleneck: ``encode_latents`` videos to the decoder's input, ``decode_latents`` it to videos
    (for a continuous bottleneck, the latents a flow model learns).
    """

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg, bottleneck_class(cfg.bottleneck).encoder_channels(cfg))
        self.quantizer: Bottleneck = build_bottleneck(cfg)  # the name the checkpoints' keys carry
        self.decoder = Decoder(cfg)

    @property
    def continuous(self) -> bool:
        """True for a continuous bottleneck: float latents (``encode_latents``), no codes."""
        return isinstance(self.quantizer, ContinuousBottleneck)

    def latent_shape(self, frames: int, size: int | tuple[int, int]) -> tuple[int, int, int]:
        """Latent grid ``(t, h, w)`` for clips of ``frames`` frames at ``size`` (int or (H, W)).

        Raises:
            ConfigError: a dimension is not a multiple of the matching ``downsample`` factor.
        """
        hh, ww = (size, size) if isinstance(size, int) else size
        out = []
        for name, n, d in zip(("frames", "height", "width"), (frames, hh, ww), self.cfg.downsample):
            if n % d or n < d:
                raise ConfigError(
                    f"clip {name} {n} is not a multiple of vqvae.downsample {d}; "
                    f"use {max(d, n - n % d)} or change vqvae.downsample"
                )
            out.append(n // d)
        return tuple(out)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != self.cfg.in_channels:
            raise ConfigError(
                f"VQVAE expects video [B, {self.cfg.in_channels}, T, H, W], got {list(x.shape)}"
            )
        self.latent_shape(x.shape[2], (x.shape[3], x.shape[4]))

    def _discrete(self, method: str) -> DiscreteBottleneck:
        if not isinstance(self.quantizer, DiscreteBottleneck):
            raise ConfigError(f"VQVAE.{method}: this tokenizer's '{self.cfg.bottleneck}' bottleneck has float latents, "
                              f"no codes; use VQVAE.{method}_latents")
        return self.quantizer

    def forward(self, x: torch.Tensor) -> AutoencoderOutput:
        """Reconstruct ``x [B, C, T, H, W]`` in ``[-1, 1]``; returns the losses and the bottleneck's output.

        In training mode this updates the bottleneck's state (a vector quantiser's codebook, a
        Gaussian bottleneck's latent statistics).
        """
        self._check(x)
        z = self.encoder(x)  # (B, encoder_channels, t, h, w)
        with torch.autocast(z.device.type, enabled=False):  # nearest-code search and EMA stay fp32
            q = self.quantizer(z.float())
        recon = self.decoder(q.latents)  # (B, C, T, H, W)
        recon_loss = F.mse_loss(recon.float(), x.float())
        return AutoencoderOutput(recon, recon_loss + q.loss, recon_loss, q)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Video ``[B, C, T, H, W]`` in ``[-1, 1]`` -> codes ``int64 [B, t, h, w]``.

        Pure lookup: never updates the codebook, even in training mode.

        Raises:
            ConfigError: a continuous bottleneck (no codes), or a video of the wrong shape.
        """
        quantizer = self._discrete("encode")
        self._check(video)
        return quantizer.encode(self.encoder(video).float())  # (B, t, h, w)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``int64 [B, t, h, w]`` -> video ``float32 [B, C, T, H, W]`` clamped to ``[-1, 1]``.

        Raises:
            ConfigError: a continuous bottleneck (no codes), codes outside ``[0, codebook_size)`` or not 4-D.
        """
        quantizer = self._discrete("decode")
        if codes.dim() != 4:
            raise ConfigError(f"VQVAE.decode expects tokens [B, t, h, w], got {list(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.cfg.codebook_size):
            raise ConfigError(
                f"token ids must lie in [0, {self.cfg.codebook_size}); got "
                f"[{int(codes.min())}, {int(codes.max())}] — was the prior trained on another tokenizer?"
            )
        return self.decoder(quantizer.decode_codes(codes.long())).float().clamp(-1, 1)

    @torch.no_grad()
    def encode_latents(self, video: torch.Tensor) -> torch.Tensor:
        """Video ``[B, C, T, H, W]`` in ``[-1, 1]`` -> the decoder's input ``float32 [B, code_dim, t, h, w]``.

        Deterministic and stateless: a continuous bottleneck's mean latent (not normalised), a
        discrete bottleneck's codes as vectors.
        """
        self._check(video)
        return self.quantizer.latents(self.encoder(video).float())  # (B, code_dim, t, h, w)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``float32 [B, code_dim, t, h, w]`` (as ``encode_latents`` gives them) -> video
        ``float32 [B, C, T, H, W]`` clamped to ``[-1, 1]``.

        Raises:
            ConfigError: latents not ``[B, code_dim, t, h, w]``.
        """
        if latents.dim() != 5 or latents.shape[1] != self.cfg.code_dim:
            raise ConfigError(f"this tokenizer's latents are float [B, {self.cfg.code_dim}, t, h, w], "
                              f"got {list(latents.shape)}")
        return self.decoder(latents.float()).float().clamp(-1, 1)

    def usage_collapsed(self, out: AutoencoderOutput) -> bool:
        """True when the bottleneck reports a collapsed codebook for ``out`` (only a vector quantiser can)."""
        return self.quantizer.collapsed(out.bottleneck)


def warn_if_collapsed(model: VQVAE, out: AutoencoderOutput, step: int | None = None) -> bool:
    """Issue a ``UserWarning`` when codebook usage has collapsed; returns whether it did."""
    if not model.usage_collapsed(out):
        return False
    q = out.bottleneck  # a quantiser's output: only a codebook collapses
    at = f" at step {step}" if step is not None else ""
    warnings.warn(
        f"VQ-VAE codebook usage collapsed{at}: {float(q.usage):.1%} of {model.cfg.codebook_size} codes used "
        f"(perplexity {float(q.perplexity):.1f}); lower vqvae.restart_after or the learning rate",
        stacklevel=2,
    )
    return True
