"""A spatio-temporal diffusion transformer over video latents, for flow matching.

DiT (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers") extended to the
``(t, h, w)`` latent grid of a video autoencoder as in Latte (Ma et al. 2024): the latent
``[B, C, t, h, w]`` is cut into ``patch`` cubes, each embedded as one token with a learned
position; every block is full space-time self-attention (``scaled_dot_product_attention``) and an
MLP, each modulated by adaLN-Zero -- shift, scale and a gate regressed from the conditioning
vector ``c = embed(flow time) + embed(pooled condition)``, the gates starting at zero so every
block starts as the identity; a final adaLN layer maps tokens back to patches of velocity.

This file holds, in reading order: :class:`DiTConfig` with :data:`PRESETS`, the time
embedding, the block, and :class:`DiT`. The model predicts the velocity ``[B, C, t, h, w]`` of
the flow at time ``t`` (``float32 [B]`` in ``[0, 1]``); the path convention is in
:mod:`videosynth.sampling.flow`.

Not here yet: cross-attention to sequence conditions (text tokens, audio frames) and factorised
space/time attention; the pooled condition reaches every block through adaLN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from videosynth.config import at_least, checked
from videosynth.errors import ConfigError

# Sinusoidal time features (as DiT): frequencies from 1 to 1/MAX_PERIOD over half the width.
TIME_FREQUENCIES = 256
MAX_PERIOD = 10000.0
TIME_SCALE = 1000.0  # flow time in [0, 1] is scaled like DiT's integer diffusion steps


@dataclass
class DiTConfig:
    """DiT hyper-parameters. ``latent_channels`` / ``latent_shape`` are set from the tokenizer."""

    latent_channels: int = checked(4, at_least(1))
    latent_shape: tuple[int, int, int] = checked((4, 8, 8), at_least(1))  # (t, h, w) of the latent grid
    patch: tuple[int, int, int] = checked((1, 2, 2), at_least(1))  # latent cells per token, per axis
    width: int = checked(128, at_least(8))
    depth: int = checked(4, at_least(1))
    heads: int = checked(4, at_least(1))
    mlp_ratio: int = checked(4, at_least(1))
    cond_dim: int = checked(0, at_least(0))  # pooled condition width (0 = unconditional)

    def __post_init__(self) -> None:
        self.latent_shape = tuple(int(v) for v in self.latent_shape)
        self.patch = tuple(int(v) for v in self.patch)
        if len(self.latent_shape) != 3 or len(self.patch) != 3:
            raise ConfigError("model.latent_shape and model.patch must each list three sizes (t, h, w)")
        for axis, n, p in zip("thw", self.latent_shape, self.patch):
            if n % p:
                raise ConfigError(f"model.patch {list(self.patch)} does not divide the latent grid "
                                  f"{list(self.latent_shape)} (axis {axis}); choose a patch that does")
        if self.width % self.heads:
            raise ConfigError(f"model.width {self.width} must be a multiple of model.heads {self.heads}")

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tokens per axis."""
        return tuple(n // p for n, p in zip(self.latent_shape, self.patch))

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)


PRESETS: dict[str, DiTConfig] = {
    # unit tests: milliseconds per step
    "tiny": DiTConfig(width=32, depth=2, heads=2, mlp_ratio=2),
    # the demo's shapes (4 x 8 x 8 latents of 32x32x8 clips): 64 tokens of 2x2 cells
    "shapes-32x32x8": DiTConfig(width=192, depth=6, heads=6),
    # 64x64x16 clips -> 4 x 16 x 16 latents -> 256 tokens
    "64x64x16": DiTConfig(width=384, depth=12, heads=6),
}


def time_features(t: torch.Tensor, dim: int = TIME_FREQUENCIES) -> torch.Tensor:
    """Flow times ``float [B]`` in [0, 1] -> sinusoidal features ``[B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = (t.float() * TIME_SCALE)[:, None] * freqs[None]  # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=1)  # (B, dim)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: ``x [B, N, W]`` normalised elsewhere, shifted and scaled per sample ``[B, W]``."""
    return x * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    """Space-time self-attention and an MLP, each behind adaLN-Zero modulation by ``c``."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))  # zero-initialised in DiT.__init__

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=1)  # each (B, W)
        q, k, v = self.qkv(modulate(self.norm1(x), shift1, scale1)).view(b, n, 3, self.heads, w // self.heads).unbind(2)
        attn = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (B, h, N, d)
        x = x + gate1[:, None] * self.proj(attn.transpose(1, 2).reshape(b, n, w))
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """Velocity ``v(x_t, t | c)``: latents ``[B, C, t, h, w]``, times ``[B]``, pooled condition ``[B, D]``."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        c, w = cfg.latent_channels, cfg.width
        self.patch_embed = nn.Conv3d(c, w, kernel_size=cfg.patch, stride=cfg.patch)
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.num_tokens, w) * 0.02)
        self.time_embed = nn.Sequential(nn.Linear(TIME_FREQUENCIES, w), nn.SiLU(), nn.Linear(w, w))
        self.cond_embed = nn.Linear(cfg.cond_dim, w) if cfg.cond_dim else None
        self.blocks = nn.ModuleList(Block(w, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.out = nn.Linear(w, math.prod(cfg.patch) * c)
        for module in [*(b.ada[-1] for b in self.blocks), self.ada_out[-1], self.out]:  # adaLN-Zero
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.cfg
        if x.dim() != 5 or tuple(x.shape[1:]) != (cfg.latent_channels, *cfg.latent_shape):
            raise ConfigError(f"DiT expects latents [B, {cfg.latent_channels}, {', '.join(map(str, cfg.latent_shape))}]"
                              f", got {list(x.shape)}")
        b = x.shape[0]
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, W)
        c = self.time_embed(time_features(t.expand(b) if t.dim() == 0 else t))  # (B, W)
        if self.cond_embed is not None and cond is not None:
            c = c + self.cond_embed(cond)
        for block in self.blocks:
            tokens = block(tokens, c)
        shift, scale = self.ada_out(c).chunk(2, dim=1)
        patches = self.out(modulate(self.norm_out(tokens), shift, scale))  # (B, N, prod(patch) * C)
        return self.unpatchify(patches)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """``[B, N, pt*ph*pw*C]`` tokens back to the latent grid ``[B, C, t, h, w]``."""
        cfg = self.cfg
        (gt, gh, gw), (pt, ph, pw), c = cfg.grid, cfg.patch, cfg.latent_channels
        x = patches.view(-1, gt, gh, gw, pt, ph, pw, c)
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(-1, c, gt * pt, gh * ph, gw * pw)
