"""Autoregressive Transformer prior over video tokens.

Decoder-only Transformer (GPT, Radford et al. 2018/2019) over the flattened
token grid of a video tokenizer, as in VideoGPT (Yan et al. 2021): tokens are
read t-major, then h, then w; positions use factorised learned embeddings
(sum of a t, an h and a w embedding); attention is causal and pre-LN.

Sequence layout. For a token grid ``x`` of ``N = t*h*w`` tokens the input
sequence is ``[BOS, x_0, ..., x_{N-2}]`` and the output at index ``i``
predicts ``x_i``. The input at index ``i`` carries the position embedding of
the token it predicts (position ``i``), so the model always knows which
``(t, h, w)`` cell comes next. ``BOS`` is the extra vocabulary id
``vocab_size``.

Conditioning. A class / text condition arrives as the pooled conditioner
vector ``cond [B, cond_dim]``; it is projected to ``n_embd`` and added to the
BOS input, i.e. it is one prefix token every position attends to. (Pooled
rather than a token sequence keeps the sequence length fixed, which keeps the
KV cache and the position table simple.) Video prediction needs no special
path: the tokens of the observed frames are the prefix of the sequence.

This file holds, in reading order: the KV cache, causal self-attention, the
MLP, the block, :class:`PriorConfig` with :data:`PRESETS`, :class:`Prior`, and
:class:`Decoder` (the one-position step of KV-cached sampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from videosynth.config import at_least, checked, in_range
from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, ConditionedNet, conditioned

# ---------------------------------------------------------------------------
# primitives and blocks
# ---------------------------------------------------------------------------


class KVCache:
    """Per-layer key/value buffers for incremental decoding.

    Buffers are preallocated as ``[B, n_head, max_len, head_dim]``; ``length``
    is the number of positions already written. Build it with
    :meth:`Prior.new_cache`.
    """

    def __init__(self, n_layer: int, batch: int, n_head: int, max_len: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype):
        shape = (batch, n_head, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.max_len = max_len
        self.length = 0

    def write(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v [B, nh, n, hs]`` at ``start``; return all keys/values up to ``start + n``."""
        n = k.shape[2]
        keys, values = self.k[layer], self.v[layer]
        keys.narrow(2, start, n).copy_(k)  # narrow + copy_: cheaper per token than slice assignment
        values.narrow(2, start, n).copy_(v)
        return keys.narrow(2, 0, start + n), values.narrow(2, 0, start + n)  # (B, nh, start + n, hs)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention on ``scaled_dot_product_attention``."""

    def __init__(self, cfg: "PriorConfig"):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.attn_dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                start_pos: int = 0) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)  # 3 x (B, n, C)
        q, k, v = (a.view(b, n, self.n_head, c // self.n_head).transpose(1, 2) for a in (q, k, v))  # (B, nh, n, hs)
        drop = self.dropout if self.training else 0.0
        if cache is not None:
            k, v = cache.write(layer, start_pos, k, v)  # (B, nh, start_pos + n, hs)
        if cache is None or start_pos == 0:
            # keys and queries cover the same positions: plain causal attention
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        elif n == 1:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)  # one query sees the whole past
        else:
            # query i sits at absolute position start_pos + i and may see keys 0 .. start_pos + i
            keys = torch.arange(k.shape[2], device=x.device)
            queries = torch.arange(start_pos, start_pos + n, device=x.device)
            mask = keys[None, :] <= queries[:, None]  # (n, start_pos + n)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        y = y.transpose(1, 2).reshape(b, n, c)  # (B, n, C)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: "PriorConfig"):
        super().__init__()
        hidden = cfg.mlp_ratio * cfg.n_embd
        self.fc = nn.Linear(cfg.n_embd, hidden)
        self.proj = nn.Linear(hidden, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LN Transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: "PriorConfig"):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                start_pos: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer, start_pos)
        return x + self.mlp(self.ln2(x))


# ---------------------------------------------------------------------------
# config and presets
# ---------------------------------------------------------------------------


@dataclass
class PriorConfig:
    """Prior hyper-parameters. ``vocab_size`` is the tokenizer's codebook size;
    ``latent_shape`` the token grid ``(t, h, w)`` of one training clip."""

    vocab_size: int = checked(512, at_least(2))
    latent_shape: tuple[int, int, int] = checked((4, 8, 8), at_least(1))
    n_layer: int = checked(4, at_least(1))
    n_head: int = checked(4, at_least(1))
    n_embd: int = checked(256, at_least(1))
    mlp_ratio: int = checked(4, at_least(1))
    dropout: float = checked(0.0, in_range(0, 1, high_open=True))  # embeddings and residual branches
    # on the attention probabilities; > 0 takes scaled_dot_product_attention off its fused CPU kernel
    # (a prior step several times slower), so it is separate from ``dropout`` and off by default
    attn_dropout: float = checked(0.0, in_range(0, 1, high_open=True))
    cond_dim: int = checked(0, at_least(0))  # pooled condition width (0 = unconditional)
    audio_dim: int = checked(0, at_least(0))  # per-frame sound features (condition.audio); 0 = no sound
    frames_per_latent: int = checked(1, at_least(1))  # video frames per latent frame (the tokenizer's time stride)

    def __post_init__(self) -> None:
        self.latent_shape = tuple(int(v) for v in self.latent_shape)
        if len(self.latent_shape) != 3 or min(self.latent_shape) < 1:
            raise ConfigError(f"prior.latent_shape must be three positive ints (t, h, w), got {list(self.latent_shape)}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"prior.n_embd ({self.n_embd}) must be divisible by prior.n_head ({self.n_head})")
        if self.vocab_size < 1:
            raise ConfigError("prior.vocab_size must be >= 1 (the tokenizer's codebook_size)")

    @property
    def seq_len(self) -> int:
        t, h, w = self.latent_shape
        return t * h * w


PRESETS: dict[str, PriorConfig] = {
    # unit tests: matches the "tiny" tokenizer on 4x16x16 clips (2x4x4 tokens)
    "tiny": PriorConfig(vocab_size=64, latent_shape=(2, 4, 4), n_layer=2, n_head=2, n_embd=32),
    # matches the "demo-32x32x16" tokenizer (4x8x8 = 256 tokens); trains on CPU
    "demo-32x32x16": PriorConfig(vocab_size=256, latent_shape=(4, 8, 8), n_layer=4, n_head=4, n_embd=128),
    # matches the "shapes-32x32x8" tokenizer (4x8x8 = 256 tokens, 64 codes); trains on CPU
    "shapes-32x32x8": PriorConfig(vocab_size=64, latent_shape=(4, 8, 8), n_layer=4, n_head=4, n_embd=128),
    # VideoGPT's UCF-101 prior scale over 4x16x16 = 1024 tokens
    "ucf-64x64x16": PriorConfig(
        vocab_size=1024, latent_shape=(4, 16, 16), n_layer=8, n_head=4, n_embd=576, dropout=0.2
    ),
}


def latent_sound(cond_frames: torch.Tensor | None, b: int, frames_per_latent: int, audio_dim: int,
                 null_frames: int) -> torch.Tensor:
    """Per-video-frame sound features ``[B, T, A]`` -> one per latent frame ``[B, T // f, A]`` (means over
    the ``f = frames_per_latent`` frames of each); one feature ``[B, 1, A]`` (the null sound) stands for
    every frame and becomes ``[B, null_frames, A]``.

    Raises:
        ConfigError: ``cond_frames`` missing or not ``[b, T, audio_dim]`` (a sound-driven prior needs it).
    """
    if cond_frames is None or cond_frames.dim() != 3 or cond_frames.shape[0] != b \
            or cond_frames.shape[2] != audio_dim:
        shape = None if cond_frames is None else list(cond_frames.shape)
        raise ConfigError(f"this prior is driven by sound: pass cond_frames [{b}, T, {audio_dim}], got {shape}")
    if cond_frames.shape[1] == 1:
        return cond_frames.expand(-1, null_frames, -1)
    f = frames_per_latent
    t = cond_frames.shape[1] // f
    return cond_frames[:, :t * f].reshape(b, t, f, -1).mean(2)  # (B, t, A)


# ---------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------

INIT_STD = 0.02  # GPT-2 initialisation scale


def register_grid(module: nn.Module, latent_shape: tuple[int, int, int]) -> None:
    """Give ``module`` the flat token grid's layout (t-major, then h, then w): buffers ``grid_t``,
    ``grid_h``, ``grid_w`` ``[N]`` (the cell of each flat position) and ``frame_tokens`` (``h * w``:
    position ``p`` lies in latent frame ``p // frame_tokens``)."""
    t, h, w = latent_shape
    flat = torch.arange(t * h * w)
    module.frame_tokens = h * w
    module.register_buffer("grid_t", flat // (h * w), persistent=False)  # (N,)
    module.register_buffer("grid_h", (flat // w) % h, persistent=False)
    module.register_buffer("grid_w", flat % w, persistent=False)


def init_gpt(module: nn.Module, n_layer: int) -> None:
    """GPT-2 initialisation of a token Transformer with factorised positions (``pos_t``, ``pos_h``,
    ``pos_w``) and ``blocks`` of ``attn.proj`` / ``mlp.proj``: N(0, 0.02) weights, zero biases,
    residual projections scaled by 1/sqrt(2 n_layer)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=INIT_STD)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
    for p in (module.pos_t, module.pos_h, module.pos_w):
        nn.init.normal_(p, std=INIT_STD)
    for block in module.blocks:
        for proj in (block.attn.proj, block.mlp.proj):
            nn.init.normal_(proj.weight, std=INIT_STD / math.sqrt(2 * n_layer))


class TokenTransformer(ConditionedNet):
    """What both token priors are built of, in this order: an embedding of the codes plus one extra id,
    factorised positions, condition and sound projections, ``cfg.n_layer`` blocks of ``block``, the
    final norm and the head; GPT-2 initialisation. ``cfg``: a :class:`PriorConfig` or its twin."""

    lora_targets = ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")  # attention and MLP of every block

    def __init__(self, cfg, block: type[nn.Module]):
        super().__init__()
        self.cfg = cfg
        t, h, w = cfg.latent_shape
        self.tok_emb = nn.Embedding(cfg.vocab_size + 1, cfg.n_embd)
        self.pos_t = nn.Parameter(torch.zeros(t, cfg.n_embd))
        self.pos_h = nn.Parameter(torch.zeros(h, cfg.n_embd))
        self.pos_w = nn.Parameter(torch.zeros(w, cfg.n_embd))
        self.cond_proj = nn.Linear(cfg.cond_dim, cfg.n_embd) if cfg.cond_dim > 0 else None
        # the sound under each latent frame joins the inputs of the positions that frame's tokens take
        self.sound_proj = nn.Linear(cfg.audio_dim, cfg.n_embd) if cfg.audio_dim > 0 else None
        self.takes_cond_frames = cfg.audio_dim > 0
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        register_grid(self, cfg.latent_shape)
        init_gpt(self, cfg.n_layer)

    def position_embeddings(self, pos: slice) -> torch.Tensor:
        """Factorised position embeddings ``[n, C]`` of the flat sequence positions ``pos``: t + h + w."""
        return self.pos_t[self.grid_t[pos]] + self.pos_h[self.grid_h[pos]] + self.pos_w[self.grid_w[pos]]


class Prior(TokenTransformer):
    """Decoder-only Transformer over flattened token grids (see the module docstring for the layout)."""

    def __init__(self, cfg: PriorConfig):
        super().__init__(cfg, Block)
        self.bos = cfg.vocab_size  # extra input id marking the start of the sequence

    def new_cache(self, batch: int, device: torch.device | None = None,
                  dtype: torch.dtype | None = None) -> KVCache:
        """An empty KV cache for ``batch`` sequences of up to ``seq_len`` positions."""
        p = self.head.weight
        return KVCache(self.cfg.n_layer, batch, self.cfg.n_head, self.cfg.seq_len,
                       self.cfg.n_embd // self.cfg.n_head, device or p.device, dtype or p.dtype)

    def shift_right(self, tokens: torch.Tensor) -> torch.Tensor:
        """Targets ``[B, n]`` -> inputs ``[B, n]``: ``[BOS, x_0, ..., x_{n-2}]``."""
        bos = torch.full_like(tokens[:, :1], self.bos)
        return torch.cat([bos, tokens[:, :-1]], dim=1)  # (B, n)

    def latent_sound(self, cond_frames: torch.Tensor, b: int) -> torch.Tensor:
        """Per-video-frame sound features ``[B, T, A]`` -> one per latent frame ``[B, t, A]`` (:func:`latent_sound`)."""
        return latent_sound(cond_frames, b, self.cfg.frames_per_latent, self.cfg.audio_dim, self.cfg.latent_shape[0])

    def sound_inputs(self, cond_frames: torch.Tensor, b: int, pos: slice, dtype: torch.dtype) -> torch.Tensor:
        """The projected sound ``[B, n, C]`` that joins the inputs of sequence positions ``pos``: for each,
        the sound under the latent frame of the token it predicts.

        Raises:
            ConfigError: ``cond_frames`` of the wrong shape or not reaching the last latent frame of ``pos``.
        """
        sound = self.sound_proj(self.latent_sound(cond_frames, b).to(dtype))  # (B, t, C)
        last = (pos.stop - 1) // self.frame_tokens  # on the host: no device sync
        if sound.shape[1] <= last:
            raise ConfigError(f"the sound covers {sound.shape[1]} latent frames; the sequence reaches "
                              f"latent frame {last + 1}")
        return sound[:, self.grid_t[pos]]  # (B, n, C)

    def forward(self, idx: torch.Tensor, cond: torch.Tensor | None = None,
                cache: KVCache | None = None, start_pos: int = 0,
                cond_frames: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits.

        Args:
            idx: int64 ``[B, n]`` *input* ids for sequence positions
                ``start_pos .. start_pos + n - 1`` (position 0 holds ``BOS``; use
                :meth:`shift_right` to build them from targets).
            cond: ``[B, cond_dim]`` pooled condition, added to the BOS input
                (used only when ``start_pos == 0``); ``None`` for an
                unconditional prior.
            cache: a :meth:`new_cache` to read past keys/values from and write
                this call's into; its ``length`` advances to ``start_pos + n``.
            start_pos: absolute position of ``idx[:, 0]``; must equal
                ``cache.length`` when a cache is given.
            cond_frames: ``[B, T, audio_dim]`` per-video-frame sound features of a
                sound-driven prior (every call: each position gets the sound under the
                latent frame of the token it predicts).

        Returns:
            float ``[B, n, vocab_size]``; row ``i`` is the distribution of the
            token at flat position ``start_pos + i``, given tokens before it.

        Raises:
            ConfigError: sequence longer than ``latent_shape``, a missing or
                unexpected ``cond``, or a cache out of step.
        """
        b, n = idx.shape
        end = start_pos + n
        if end > self.cfg.seq_len:
            raise ConfigError(
                f"prior sequence of {end} tokens exceeds latent_shape {list(self.cfg.latent_shape)} "
                f"({self.cfg.seq_len} tokens); use rollout() for longer videos"
            )
        if cache is not None and cache.length != start_pos:
            raise ConfigError(f"KV cache holds {cache.length} positions but start_pos is {start_pos}")
        if (cond is None) != (self.cond_proj is None) and start_pos == 0:
            want = f"cond [B, {self.cfg.cond_dim}]" if self.cond_proj is not None else "cond=None"
            raise ConfigError(f"this prior has prior.cond_dim={self.cfg.cond_dim}; pass {want}")
        x = self.tok_emb(idx)  # (B, n, C)
        pos = slice(start_pos, end)
        x = x + self.position_embeddings(pos)
        if start_pos == 0 and cond is not None:
            first = x[:, :1] + self.cond_proj(cond.to(x.dtype))[:, None]  # (B, 1, C): condition joins BOS
            x = torch.cat([first, x[:, 1:]], dim=1)  # (B, n, C)
        if self.sound_proj is not None:
            x = x + self.sound_inputs(cond_frames, b, pos, x.dtype)  # (B, n, C)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, start_pos)
        if cache is not None:
            cache.length = end
        return self.head(self.ln_f(x))  # (B, n, V)

    def decoder(self, cache: KVCache, length: int, cond_frames: torch.Tensor | None = None,
                rows: int = 1) -> "Decoder":
        """The one-position step of incremental decoding for one generation of up to ``length``
        positions into ``cache`` (see :class:`Decoder`); ``cond_frames [rows, T, audio_dim]`` for a
        sound-driven prior, as in :meth:`forward`.

        Raises:
            ConfigError: ``length`` beyond ``latent_shape``; sound missing, misshapen or too short.
        """
        if length > self.cfg.seq_len:
            raise ConfigError(f"prior sequence of {length} tokens exceeds latent_shape "
                              f"{list(self.cfg.latent_shape)} ({self.cfg.seq_len} tokens)")
        pos = slice(0, length)
        extras = [self.position_embeddings(pos)]  # (length, C)
        if self.sound_proj is not None:
            extras.append(self.sound_inputs(cond_frames, rows, pos, extras[0].dtype))  # (rows, length, C)
        return Decoder(self, cache, extras)

    def loss(self, tokens: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) of token grids ``int64 [B, t, h, w]`` or flat ``[B, N]``."""
        flat = tokens.reshape(tokens.shape[0], -1)  # (B, N)
        logits = self(self.shift_right(flat), cond)  # (B, N, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat.reshape(-1))


def build_modules(cfg: PriorConfig, condition) -> dict[str, Conditioned]:
    """The networks a prior checkpoint holds: ``{"prior": Prior with its conditioner}``."""
    return {"prior": conditioned(lambda: Prior(cfg), condition)}


class Decoder:
    """Incremental decoding, one position per :meth:`step`, for one generation (inference only).

    The same arithmetic as ``Prior.forward(idx[:, None], cache=cache, start_pos=pos)`` — the same
    kernels in the same order, so the logits are equal bit for bit — without its checks, module
    calls or per-call attribute lookups: at batch 1 a small prior's step is dominated by the
    per-operation overhead around its matmuls, so references to the weights are gathered into
    plain tuples once per generation and each step is one loop over them. What every step adds to
    the token embedding (the position embeddings ``[length, C]``, the projected sound
    ``[rows, length, C]``) is computed once, by :meth:`Prior.decoder`.
    """

    def __init__(self, prior: Prior, cache: KVCache, extras: list[torch.Tensor]):
        cfg = prior.cfg
        self.cache = cache
        self.extras = extras
        self.n_head, self.head_dim = cfg.n_head, cfg.n_embd // cfg.n_head
        self.width = (cfg.n_embd,)
        self.tok_emb = prior.tok_emb.weight
        self.layers = [
            (b.ln1.weight, b.ln1.bias, b.ln1.eps, b.attn.qkv.weight, b.attn.qkv.bias, b.attn.proj.weight,
             b.attn.proj.bias, b.ln2.weight, b.ln2.bias, b.ln2.eps, b.mlp.fc.weight, b.mlp.fc.bias,
             b.mlp.proj.weight, b.mlp.proj.bias)
            for b in prior.blocks
        ]
        self.final = (prior.ln_f.weight, prior.ln_f.bias, prior.ln_f.eps, prior.head.weight)

    def step(self, idx: torch.Tensor, pos: int) -> torch.Tensor:
        """Logits ``float [B, vocab_size]`` of the token at flat position ``pos``, from its input id
        ``idx int64 [B]`` (the token at ``pos - 1``), with the cache holding positions ``0 .. pos - 1``
        (the caller keeps ``1 <= pos == cache.length`` and ``pos`` below the decoder's length); the
        position's keys and values are written into the cache.
        """
        layer_norm, linear, gelu, attention = torch.layer_norm, F.linear, F.gelu, F.scaled_dot_product_attention
        width, nh, hs = self.width, self.n_head, self.head_dim
        x = F.embedding(idx, self.tok_emb)  # (B, C)
        b = x.shape[0]
        for extra in self.extras:
            x = x + extra.select(-2, pos)  # (B, C)
        write = self.cache.write
        for i, (w1, b1, e1, qkv_w, qkv_b, proj_w, proj_b, w2, b2, e2, fc_w, fc_b, out_w, out_b) \
                in enumerate(self.layers):
            h = layer_norm(x, width, w1, b1, e1)
            q, k, v = linear(h, qkv_w, qkv_b).view(b, 3, nh, 1, hs).unbind(1)  # 3 x (B, nh, 1, hs)
            k, v = write(i, pos, k, v)  # (B, nh, pos + 1, hs)
            # one query sees the whole past; with one query the heads come out in (nh, hs) order
            y = attention(q, k, v).view(b, -1)  # (B, C)
            x = x + linear(y, proj_w, proj_b)
            h = layer_norm(x, width, w2, b2, e2)
            x = x + linear(gelu(linear(h, fc_w, fc_b)), out_w, out_b)
        self.cache.length = pos + 1
        w, bias, eps, head = self.final
        return linear(layer_norm(x, width, w, bias, eps), head)  # (B, V)
