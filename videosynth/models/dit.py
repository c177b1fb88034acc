"""A spatio-temporal diffusion transformer over video latents, for flow matching.

DiT (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers") extended to the
``(t, h, w)`` latent grid of a video autoencoder as in Latte (Ma et al. 2024): the latent
``[B, C, t, h, w]`` is cut into ``patch`` cubes, each embedded as one token with a learned
position. Every block is self-attention (``scaled_dot_product_attention``) and an MLP, each
modulated by adaLN-Zero -- shift, scale and a gate regressed from the conditioning vector
``c = embed(flow time) + embed(pooled condition)``, the gates starting at zero so every block
starts as the identity; a final adaLN layer maps tokens back to patches of velocity.

``attention: full`` attends over all space-time tokens at once; ``factorised`` (Latte's
variant 1, as in TimeSformer's divided attention) attends within each latent frame, then
across frames at each spatial position -- ``t + h*w`` keys per token instead of ``t*h*w``.
``cross_attention: true`` adds, after self-attention, attention from the video tokens to the
condition's token sequence (text tokens; a class is one token), as PixArt-alpha does; its
output projection starts at zero. ``frame_sound: true`` adds the sound's per-frame features to
the tokens of the latent frame they lie under (the frames of one latent frame concatenated, one
linear map, zero at the start), so the sound of frame ``k`` reaches the tokens of frame ``k``
without attention having to learn the alignment first.

Times may differ per latent frame (Diffusion Forcing, Chen et al. 2024): ``t`` is ``[B]`` (one
flow time per clip) or ``[B, t]`` (one per latent frame), and the conditioning vector -- hence
every adaLN shift, scale and gate -- is then one per frame of tokens, broadcast over that frame's
tokens. With ``step_levels > 0`` the model is also told the size of the step it is asked to take
(shortcut models, Frans et al. 2024): a learned embedding of the level ``k`` of step ``2**-k``,
added to ``c``, zero at the start.

This file holds, in reading order: :class:`DiTConfig` with :data:`PRESETS`, the time
embedding, attention, the block, and :class:`DiT`. The model predicts the velocity
``[B, C, t, h, w]`` of the flow at time ``t`` (``float32 [B]`` in ``[0, 1]``); the path
convention is in :mod:`videosynth.sampling.flow`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from videosynth.config import at_least, checked
from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, ConditionedNet, conditioned
from videosynth.models.layers import TanhGELU, frames_for

ATTENTION = ("full", "factorised")

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
    attention: str = "full"  # "full" space-time | "factorised" space then time
    cross_attention: bool = False  # attend to the condition's token sequence (needs a condition)
    frame_sound: bool = False  # add each latent frame's sound features to its tokens (needs condition.audio)
    clip_frames: int = checked(0, at_least(0))  # video frames under the latent grid (set from the data)
    step_levels: int = checked(0, at_least(0))  # shortcut step sizes 1, 1/2, ... it is told (set from loss.objective)
    # a second token stream of log-mel sound frames (joint audio-video runs, models/joint_dit.py; set from joint:)
    sound_mels: int = checked(0, at_least(0))  # mel bands (0 = video only)
    sound_frames: int = checked(0, at_least(0))  # mel frames per clip
    sound_patch: int = checked(2, at_least(1))  # mel frames per sound token

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION:
            raise ConfigError(f"model.attention must be one of {list(ATTENTION)}, got '{self.attention}'")
        self.latent_shape = tuple(int(v) for v in self.latent_shape)
        self.patch = tuple(int(v) for v in self.patch)
        if len(self.latent_shape) != 3 or len(self.patch) != 3:
            raise ConfigError("model.latent_shape and model.patch must each list three sizes (t, h, w)")
        for axis, n, p in zip("thw", self.latent_shape, self.patch):
            if n % p:
                raise ConfigError(f"model.patch {list(self.patch)} does not divide the latent grid "
                                  f"{list(self.latent_shape)} (axis {axis}); choose a patch that does")
        if self.frame_sound and self.clip_frames % self.grid[0]:
            raise ConfigError(f"model.frame_sound: {self.clip_frames} frames do not split evenly over "
                              f"{self.grid[0]} latent frames of tokens; choose data.frames or model.patch to fit")
        if self.width % self.heads:
            raise ConfigError(f"model.width {self.width} must be a multiple of model.heads {self.heads}")
        if self.sound_mels and self.sound_frames % self.sound_patch:
            raise ConfigError(f"model.sound_patch {self.sound_patch} does not divide the clip's {self.sound_frames} "
                              "mel frames; choose a patch that does")

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
    # the same latents on a CPU budget: more steps of a narrow DiT beat fewer of a wide one
    "demo-32x32x8": DiTConfig(width=96, depth=4, heads=4),
    # 64x64x16 clips -> 4 x 16 x 16 latents -> 256 tokens
    "64x64x16": DiTConfig(width=384, depth=12, heads=6),
}


def time_features(t: torch.Tensor, dim: int = TIME_FREQUENCIES) -> torch.Tensor:
    """Flow times ``float [B]`` in [0, 1] -> sinusoidal features ``[B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = (t.float() * TIME_SCALE)[:, None] * freqs[None]  # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=1)  # (B, dim)


def per_token(m: torch.Tensor, n: int, counts: tuple[int, ...] | None = None) -> torch.Tensor:
    """A modulation per sample ``[B, W]`` or per frame of tokens ``[B, gt, W]`` -> broadcastable over the
    ``n`` tokens ``[B, 1, W]`` / ``[B, N, W]`` (tokens in ``(t, h, w)`` order: each frame's tokens are adjacent).

    ``counts``: one modulation per run of tokens ``[B, len(counts), W]``, run ``i`` ``counts[i]`` tokens long
    (the streams of a joint model)."""
    if counts is not None:
        return torch.cat([m[:, i:i + 1].expand(-1, k, -1) for i, k in enumerate(counts)], dim=1)  # (B, N, W)
    return m[:, None] if m.dim() == 2 else m.repeat_interleave(n // m.shape[1], dim=1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: ``x [B, N, W]`` normalised elsewhere, shifted and scaled by :func:`per_token` modulations."""
    return x * (1 + scale) + shift


def self_attention(x: torch.Tensor, qkv: nn.Linear, proj: nn.Linear, heads: int) -> torch.Tensor:
    """Multi-head self-attention of tokens ``x [B, N, W]`` (fused query/key/value projection)."""
    b, n, w = x.shape
    q, k, v = qkv(x).view(b, n, 3, heads, w // heads).unbind(2)  # each (B, N, h, d)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (B, h, N, d)
    return proj(out.transpose(1, 2).reshape(b, n, w))


class CrossAttention(nn.Module):
    """Attention from tokens ``x [B, N, W]`` to a condition sequence ``context [B, L, D]``."""

    def __init__(self, width: int, heads: int, context_dim: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(context_dim, 2 * width)
        self.proj = nn.Linear(width, width)  # zero-initialised in DiT.__init__: starts as no change

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask [B, L]`` (True = attend) hides the context's padding."""
        b, n, w = x.shape
        d = w // self.heads
        q = self.q(self.norm(x)).view(b, n, self.heads, d).transpose(1, 2)  # (B, h, N, d)
        k, v = self.kv(context).view(b, context.shape[1], 2, self.heads, d).permute(2, 0, 3, 1, 4)  # (B, h, L, d)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, L)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, N, d)
        return self.proj(out.transpose(1, 2).reshape(b, n, w))


class Block(nn.Module):
    """Self-attention (full, or space then time), optional cross-attention, an MLP; adaLN-Zero by ``c``."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, factorised: bool = False,
                 context_dim: int | None = None):
        super().__init__()
        self.heads, self.factorised = heads, factorised
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)  # full space-time attention, or within each frame
        self.proj = nn.Linear(width, width)
        if factorised:  # then across frames, with its own modulation
            self.norm_t = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
            self.qkv_t = nn.Linear(width, 3 * width)
            self.proj_t = nn.Linear(width, width)
        self.cross = CrossAttention(width, heads, context_dim) if context_dim else None
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), TanhGELU(),
                                 nn.Linear(mlp_ratio * width, width))
        # shift, scale and gate of attention, MLP (and temporal attention): zero-initialised in DiT.__init__
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, (9 if factorised else 6) * width))

    def forward(self, x: torch.Tensor, c: torch.Tensor, grid: tuple[int, int, int],
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None,
                counts: tuple[int, ...] | None = None) -> torch.Tensor:
        """``x [B, N, W]`` tokens in ``(t, h, w)`` order, ``c [B, W]`` or per frame of tokens ``[B, t, W]``
        (or per run of ``counts`` tokens, see :func:`per_token`), ``grid`` the token grid ``(t, h, w)``."""
        b, n, w = x.shape
        mod = [per_token(m, n, counts) for m in self.ada(c).chunk(9 if self.factorised else 6, dim=-1)]  # (B, 1 | N, W)
        h = modulate(self.norm1(x), mod[0], mod[1])
        if self.factorised:
            gt, gh, gw = grid
            h = self_attention(h.reshape(b * gt, gh * gw, w), self.qkv, self.proj, self.heads)  # within frames
            x = x + mod[2] * h.reshape(b, n, w)
            h = modulate(self.norm_t(x), mod[6], mod[7]).view(b, gt, gh * gw, w).transpose(1, 2)  # (B, hw, t, W)
            h = self_attention(h.reshape(b * gh * gw, gt, w), self.qkv_t, self.proj_t, self.heads)  # across frames
            x = x + mod[8] * h.view(b, gh * gw, gt, w).transpose(1, 2).reshape(b, n, w)
        else:
            x = x + mod[2] * self_attention(h, self.qkv, self.proj, self.heads)
        if self.cross is not None and context is not None:
            x = x + self.cross(x, context, context_mask)
        return x + mod[5] * self.mlp(modulate(self.norm2(x), mod[3], mod[4]))


class DiT(ConditionedNet):
    """Velocity ``v(x_t, t | c)``: latents ``[B, C, t, h, w]``, times ``[B]`` or ``[B, t]``, pooled condition
    ``[B, D]``; with ``step_levels``, the level ``[B]`` of the step it takes."""

    # every block's self-attention (and temporal attention), cross-attention and MLP
    lora_targets = ("qkv", "proj", "qkv_t", "proj_t", "cross.q", "cross.kv", "mlp.0", "mlp.2")

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        c, w = cfg.latent_channels, cfg.width
        self.patch_embed = nn.Conv3d(c, w, kernel_size=cfg.patch, stride=cfg.patch)
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.num_tokens, w) * 0.02)
        self.time_embed = nn.Sequential(nn.Linear(TIME_FREQUENCIES, w), nn.SiLU(), nn.Linear(w, w))
        self.cond_embed = nn.Linear(cfg.cond_dim, w) if cfg.cond_dim else None
        self.step_embed = nn.Embedding(cfg.step_levels, w) if cfg.step_levels else None
        if cfg.cross_attention and not cfg.cond_dim:
            raise ConfigError("model.cross_attention needs a condition (condition.kind class or text)")
        self.takes_context = cfg.cross_attention  # Conditioned hands over the condition's tokens
        self.takes_cond_frames = cfg.frame_sound  # ... and the sound's per-frame features
        if cfg.frame_sound and not (cfg.cond_dim and cfg.clip_frames):
            raise ConfigError("model.frame_sound needs a sound condition (condition.audio: true) and the clip "
                              "length (model.clip_frames, set from data.frames)")
        # the sound features of the clip_frames / t frames under one latent frame -> one token offset
        self.sound = nn.Linear(cfg.clip_frames // cfg.grid[0] * cfg.cond_dim, w) if cfg.frame_sound else None
        self.blocks = nn.ModuleList(
            Block(w, cfg.heads, cfg.mlp_ratio, cfg.attention == "factorised", cfg.cond_dim if cfg.cross_attention else None)
            for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.out = nn.Linear(w, math.prod(cfg.patch) * c)
        zeroed = [*(b.ada[-1] for b in self.blocks), self.ada_out[-1], self.out]  # adaLN-Zero
        zeroed += [b.cross.proj for b in self.blocks if b.cross is not None]
        zeroed += [self.sound] if self.sound is not None else []
        for module in zeroed:
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        if self.step_embed is not None:  # every step size starts as the instantaneous velocity
            nn.init.zeros_(self.step_embed.weight)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None,
                cond_frames: torch.Tensor | None = None, step: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity ``[B, C, t, h, w]``; ``context [B, L, cond_dim]`` / ``context_mask [B, L]`` for cross-attention;
        ``cond_frames [B, clip_frames, cond_dim]`` (or ``[B, 1, cond_dim]`` for every frame) with ``frame_sound``.

        ``t``: flow times ``[B]`` (or a scalar), or one per latent frame ``[B, t]``; the latent frames of one
        token (``patch[0] > 1``) share the time of their first. ``step``: int64 ``[B]`` levels ``k`` of steps
        ``2**-k`` (models with ``step_levels``; required there)."""
        cfg = self.cfg
        if x.dim() != 5 or tuple(x.shape[1:]) != (cfg.latent_channels, *cfg.latent_shape):
            raise ConfigError(f"DiT expects latents [B, {cfg.latent_channels}, {', '.join(map(str, cfg.latent_shape))}]"
                              f", got {list(x.shape)}")
        b = x.shape[0]
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, W)
        if self.sound is not None:
            gt = cfg.grid[0]
            sound = frames_for(cond_frames, b, cfg.clip_frames, cfg.cond_dim).to(tokens.dtype)  # (B, T, D)
            offset = self.sound(sound.reshape(b, gt, -1))  # (B, t, W): one per latent frame of tokens
            tokens = (tokens.view(b, gt, -1, cfg.width) + offset[:, :, None]).view(b, -1, cfg.width)
        c = self.conditioning(t, b, cond, step)  # (B, W) or (B, gt, W)
        for block in self.blocks:
            tokens = block(tokens, c, cfg.grid, context, context_mask)
        shift, scale = (per_token(m, cfg.num_tokens) for m in self.ada_out(c).chunk(2, dim=-1))
        patches = self.out(modulate(self.norm_out(tokens), shift, scale))  # (B, N, prod(patch) * C)
        return self.unpatchify(patches)

    def conditioning(self, t: torch.Tensor, b: int, cond: torch.Tensor | None,
                     step: torch.Tensor | None) -> torch.Tensor:
        """The adaLN input ``c``: ``[B, W]`` for one time per clip, ``[B, gt, W]`` for one per latent frame."""
        cfg = self.cfg
        if t.dim() == 2:
            if t.shape != (b, cfg.latent_shape[0]):
                raise ConfigError(f"per-frame times must be [{b}, {cfg.latent_shape[0]}], got {list(t.shape)}")
            frames = t[:, ::cfg.patch[0]]  # (B, gt): the first latent frame of each token frame
            c = self.time_embed(time_features(frames.reshape(-1))).view(b, -1, cfg.width)  # (B, gt, W)
        else:
            c = self.time_embed(time_features(t.expand(b) if t.dim() == 0 else t))  # (B, W)
        extra = self.cond_embed(cond) if self.cond_embed is not None and cond is not None else None  # (B, W)
        if self.step_embed is not None:
            if step is None:
                raise ConfigError("this DiT was trained with shortcut steps (model.step_levels): give step levels")
            extra = self.step_embed(step) if extra is None else extra + self.step_embed(step)
        if extra is None:
            return c
        return c + (extra if c.dim() == 2 else extra[:, None])

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """``[B, N, pt*ph*pw*C]`` tokens back to the latent grid ``[B, C, t, h, w]``."""
        cfg = self.cfg
        (gt, gh, gw), (pt, ph, pw), c = cfg.grid, cfg.patch, cfg.latent_channels
        x = patches.view(-1, gt, gh, gw, pt, ph, pw, c)
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(-1, c, gt * pt, gh * ph, gw * pw)


def build_modules(cfg: DiTConfig, condition) -> dict[str, Conditioned]:
    """The networks a flow checkpoint holds: ``{"dit": DiT with its conditioner}``."""
    return {"dit": conditioned(lambda: DiT(cfg), condition)}
