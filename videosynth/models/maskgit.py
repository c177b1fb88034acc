"""Masked-token prior over video tokens: a bidirectional Transformer that fills in masked tokens.

MaskGIT (Chang et al. 2022), as used for video by MAGVIT (Yu et al. 2023): the token grid of a
tokenizer (``int64 [B, t, h, w]``, flattened t-major, then h, then w) is shown with some tokens
replaced by the extra id ``mask_id = vocab_size``; every position attends to every other one and
the head predicts the original token at each position. Training masks a share of the tokens
drawn from a cosine schedule; sampling starts from an all-masked grid and commits the most
confident tokens over a few parallel steps (:mod:`videosynth.sampling.masked`).

Conditioning as in the autoregressive prior: the pooled condition ``cond [B, cond_dim]`` is one
prefix token every position attends to; the sound under each latent frame (``cond_frames``,
per-video-frame features, averaged per latent frame) is added to that frame's tokens. Observed
frames (video prediction, sliding windows) are simply unmasked tokens.

In reading order: bidirectional attention, the block, :class:`MaskedPriorConfig` with
:data:`PRESETS`, :class:`MaskedPrior`, :func:`build_modules` (what a checkpoint holds).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from videosynth.config import at_least, checked, in_range
from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, conditioned
from videosynth.models.transformer import MLP, TokenTransformer, latent_sound

# ---------------------------------------------------------------------------
# blocks
# ---------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head bidirectional self-attention on ``scaled_dot_product_attention``."""

    def __init__(self, cfg: "MaskedPriorConfig"):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)  # 3 x (B, n, C)
        q, k, v = (a.view(b, n, self.n_head, c // self.n_head).transpose(1, 2) for a in (q, k, v))  # (B, nh, n, hs)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, nh, n, hs)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, n, c)))  # (B, n, C)


class Block(nn.Module):
    """Pre-LN block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: "MaskedPriorConfig"):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


# ---------------------------------------------------------------------------
# config and presets
# ---------------------------------------------------------------------------


@dataclass
class MaskedPriorConfig:
    """Masked prior hyper-parameters. ``vocab_size`` is the tokenizer's codebook size and
    ``latent_shape`` the token grid ``(t, h, w)`` of one training clip (both filled from the
    tokenizer when a run starts)."""

    vocab_size: int = checked(512, at_least(2))
    latent_shape: tuple[int, int, int] = checked((4, 8, 8), at_least(1))
    n_layer: int = checked(4, at_least(1))
    n_head: int = checked(4, at_least(1))
    n_embd: int = checked(256, at_least(1))
    mlp_ratio: int = checked(4, at_least(1))
    dropout: float = checked(0.0, in_range(0, 1, high_open=True))
    cond_dim: int = checked(0, at_least(0))  # pooled condition width (0 = unconditional)
    audio_dim: int = checked(0, at_least(0))  # per-frame sound features (condition.audio); 0 = no sound
    frames_per_latent: int = checked(1, at_least(1))  # video frames per latent frame (the tokenizer's time stride)

    def __post_init__(self) -> None:
        self.latent_shape = tuple(int(v) for v in self.latent_shape)
        if len(self.latent_shape) != 3 or min(self.latent_shape) < 1:
            raise ConfigError(f"model.latent_shape must be three positive ints (t, h, w), got {list(self.latent_shape)}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})")

    @property
    def seq_len(self) -> int:
        t, h, w = self.latent_shape
        return t * h * w


PRESETS: dict[str, MaskedPriorConfig] = {
    # unit tests: matches the "tiny" tokenizer on 4x16x16 clips (2x4x4 tokens)
    "tiny": MaskedPriorConfig(vocab_size=64, latent_shape=(2, 4, 4), n_layer=2, n_head=2, n_embd=32),
    # matches the "shapes-32x32x8" tokenizer (4x8x8 = 256 tokens, 64 codes); the AR prior's size
    "shapes-32x32x8": MaskedPriorConfig(vocab_size=64, latent_shape=(4, 8, 8), n_layer=4, n_head=4, n_embd=128),
    # matches the "demo-32x32x16" tokenizer (4x8x8 = 256 tokens)
    "demo-32x32x16": MaskedPriorConfig(vocab_size=256, latent_shape=(4, 8, 8), n_layer=4, n_head=4, n_embd=128),
}


# ---------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------

class MaskedPrior(TokenTransformer):
    """Bidirectional Transformer over flattened token grids with a mask token (module docstring)."""

    def __init__(self, cfg: MaskedPriorConfig):
        super().__init__(cfg, Block)
        self.mask_id = cfg.vocab_size  # the extra input id of a masked position

    def forward(self, idx: torch.Tensor, cond: torch.Tensor | None = None,
                cond_frames: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the token at every position.

        Args:
            idx: int64 ``[B, n]``, a flat grid of ``n = t' * h * w`` positions (``t' <= t``), with
                ``mask_id`` where a token is to be predicted.
            cond: ``[B, cond_dim]`` pooled condition (``None`` for an unconditional prior).
            cond_frames: ``[B, T, audio_dim]`` per-video-frame sound features of a sound-driven
                prior (``[B, 1, audio_dim]``: one feature for every frame, the null sound).

        Returns:
            float ``[B, n, vocab_size]``.

        Raises:
            ConfigError: more positions than ``latent_shape`` holds, or a part of a latent frame;
                a missing or unexpected ``cond``; sound of the wrong shape.
        """
        b, n = idx.shape
        if n > self.cfg.seq_len or n % self.frame_tokens:
            raise ConfigError(f"a masked prior over {list(self.cfg.latent_shape)} takes whole latent frames of "
                              f"{self.frame_tokens} tokens, at most {self.cfg.seq_len}; got {n}")
        if (cond is None) != (self.cond_proj is None):
            want = f"cond [B, {self.cfg.cond_dim}]" if self.cond_proj is not None else "cond=None"
            raise ConfigError(f"this prior has model.cond_dim={self.cfg.cond_dim}; pass {want}")
        x = self.tok_emb(idx)  # (B, n, C)
        x = x + self.position_embeddings(slice(0, n))
        if self.sound_proj is not None:
            t = n // self.frame_tokens
            sound = latent_sound(cond_frames, b, self.cfg.frames_per_latent, self.cfg.audio_dim, t)  # (B, t_sound, A)
            if sound.shape[1] < t:
                raise ConfigError(f"the sound covers {sound.shape[1]} latent frames, the grid {t}")
            x = x + self.sound_proj(sound[:, :t].to(x.dtype))[:, self.grid_t[:n]]  # (B, n, C)
        if cond is not None:
            x = torch.cat([self.cond_proj(cond.to(x.dtype))[:, None], x], dim=1)  # (B, 1 + n, C): prefix token
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x[:, x.shape[1] - n:]))  # (B, n, V)


def build_modules(cfg: MaskedPriorConfig, condition) -> dict[str, Conditioned]:
    """The networks a masked-prior checkpoint holds: ``{"prior": MaskedPrior with its conditioner}``."""
    return {"prior": conditioned(lambda: MaskedPrior(cfg), condition)}
