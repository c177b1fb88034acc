"""Vector quantisation with an EMA codebook.

van den Oord et al. 2017 ("Neural Discrete Representation Learning"), as VideoGPT (Yan et al.
2021, "VideoGPT: Video Generation using VQ-VAE and Transformers") trains it on video: an EMA
codebook (decay 0.99, Laplace smoothing) initialised from encoder outputs of the first training
batch, dead-code restart from the batch, codebook statistics synchronised across DDP ranks.

This file holds, in reading order: the candidate draw for initialisation and restarts,
:class:`VQConfig`, :class:`VectorQuantizerOutput` and :class:`VectorQuantizer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from videosynth.errors import ConfigError
from videosynth.models.bottlenecks.base import (DiscreteBottleneck, QuantizerOutput, TokenizerFields, all_reduce_sum,
                                                broadcast, code_statistics)

CODEBOOK_MODES = ("ema", "loss")
RESTART_NOISE = 0.01  # relative jitter on restarted codes so codes drawn from the same vector split


def _candidate_rows(z: torch.Tensor, finite: torch.Tensor, fallback: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` random rows of ``z [N, D]`` among its finite rows (``finite`` bool ``[N]``), plus tiny noise so
    repeats differ; drawn on the device with no host sync (the count of finite rows is never read).

    Without replacement when ``N >= n`` (the rows with the ``n`` largest random keys, non-finite rows keyed
    last), else with replacement. A draw that still lands on a non-finite row (fewer finite rows than
    draws) takes the row of ``fallback [n, D]`` (the current codebook) instead.
    """
    if z.shape[0] >= n:
        keys = torch.rand(z.shape[0], device=z.device).masked_fill_(~finite, -1.0)  # (N,)
        idx = keys.topk(n).indices  # (n,)
    else:
        idx = torch.randint(0, z.shape[0], (n,), device=z.device)
    rows = torch.where(finite[idx, None], z[idx], fallback)  # (n, D)
    return rows + RESTART_NOISE * rows.std() * torch.randn_like(rows)


@dataclass
class VQConfig:
    """The vector quantiser's settings (checked where the tokenizer config declares them)."""

    codebook_size: int = 512
    code_dim: int = 64
    codebook: str = "ema"  # "ema": EMA-updated buffer | "loss": a parameter trained by the codebook loss
    beta: float = 0.25  # commitment weight
    decay: float = 0.99  # EMA decay of codebook statistics
    eps: float = 1e-5  # Laplace smoothing of EMA counts
    restart_after: int = 100  # restart a code unused this many consecutive training steps (0 = never)
    restart_threshold: float = 0.0  # "ema": restart codes with EMA count below this (0 = off; VideoGPT: 1.0)
    collapse_usage: float = 0.05  # collapsed when a batch uses fewer than this share of the codes it could


@dataclass
class VectorQuantizerOutput(QuantizerOutput):
    """The vector quantiser's training forward: the discrete output plus its losses and restarts."""

    codebook_loss: torch.Tensor  # scalar; 0 in "ema" mode
    commit_loss: torch.Tensor  # scalar, already weighted by beta
    restarted: torch.Tensor  # scalar: codes restarted by this forward (0 outside training)

    @property
    def loss(self) -> torch.Tensor:
        return self.codebook_loss + self.commit_loss

    def metrics(self) -> dict[str, torch.Tensor]:
        return {"loss_commit": self.commit_loss.detach(), "loss_codebook": self.codebook_loss.detach(),
                **super().metrics(), "restarted": self.restarted.detach()}


class VectorQuantizer(DiscreteBottleneck):
    """Nearest-neighbour codebook lookup with a straight-through estimator.

    Modes (``cfg.codebook``):

    - ``"ema"`` (default): the codebook follows exponential moving averages of
      the assigned encoder outputs (decay ``cfg.decay``, Laplace-smoothed
      counts); no codebook loss term.
    - ``"loss"``: the codebook is a parameter trained by ``||sg[z] - e||^2``.

    Both modes add the commitment term ``beta * ||z - sg[e]||^2``. In training
    mode the codebook is initialised from encoder outputs of the first batch,
    and dead codes are replaced by random encoder outputs of the batch: codes
    unused for ``cfg.restart_after`` consecutive training steps, and in "ema"
    mode also codes whose EMA count falls below ``cfg.restart_threshold``.

    Under ``torch.distributed`` every training forward all-reduces the code
    counts (and EMA sums) and broadcasts initialisation/restart candidates from
    rank 0, so every rank must run the training forward the same number of
    times. Eval-mode forwards use only local statistics and no collectives.
    """

    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.cfg = cfg
        self.codebook_size = cfg.codebook_size
        k, d = cfg.codebook_size, cfg.code_dim
        init = torch.randn(k, d) / math.sqrt(d)
        if cfg.codebook == "loss":
            self.embedding = nn.Parameter(init)
        else:
            self.register_buffer("embedding", init)
        self.register_buffer("ema_count", torch.ones(k))  # (K,) EMA of assignments per code
        self.register_buffer("ema_sum", init.clone())  # (K, D) EMA of the sum of assigned vectors
        self.register_buffer("unused_steps", torch.zeros(k, dtype=torch.long))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self._initialized_seen = False  # host copy of ``initialized`` once it is True (see _needs_init)

    @classmethod
    def configure(cls, cfg: TokenizerFields) -> None:
        if cfg.codebook not in CODEBOOK_MODES:
            raise ConfigError(f"vqvae.codebook must be one of {list(CODEBOOK_MODES)}, got '{cfg.codebook}'")

    @classmethod
    def from_config(cls, cfg: TokenizerFields) -> "VectorQuantizer":
        return cls(VQConfig(cfg.codebook_size, cfg.code_dim, cfg.codebook, cfg.beta, cfg.decay, cfg.eps,
                            cfg.restart_after, cfg.restart_threshold, cfg.collapse_usage))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook rows for ``codes [B, t, h, w]`` -> ``[B, D, t, h, w]``."""
        return self.embedding[codes].permute(0, 4, 1, 2, 3)  # (B, D, t, h, w)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared L2) for each row of ``flat [N, D]`` -> ``[N]``."""
        emb = self.embedding.float()
        dist2 = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ emb.t() + emb.pow(2).sum(1)[None]
        )  # (N, K)
        return dist2.argmin(1)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest codes of ``z [B, D, t, h, w]`` -> ``int64 [B, t, h, w]``; a pure lookup, even in training mode."""
        b, d, t, h, w = z.shape
        flat = z.float().permute(0, 2, 3, 4, 1).reshape(-1, d)  # (B*t*h*w, D)
        return self.nearest(flat).view(b, t, h, w)  # (B, t, h, w)

    def _candidates(self, flat: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
        """One candidate code ``[K, D]`` per codebook row, drawn from the finite rows of ``flat`` (the
        current code where none can be drawn); rank 0's on every rank. Every rank must call it."""
        fallback = self.embedding.detach().float()
        return broadcast(_candidate_rows(flat, finite, fallback, self.cfg.codebook_size).contiguous())

    @torch.no_grad()
    def _init_from_batch(self, flat: torch.Tensor, finite: torch.Tensor) -> None:
        rows = self._candidates(flat, finite)  # (K, D)
        self.embedding.data.copy_(rows)
        self.ema_sum.copy_(rows)
        self.ema_count.fill_(1.0)
        self.unused_steps.zero_()
        self.initialized.fill_(True)
        self._initialized_seen = True

    def _needs_init(self) -> bool:
        """Whether the codebook still awaits its data initialisation. The flag is a buffer (saved, and
        the same on every rank); it is read from the device once, then remembered on the host, so a
        training step does not wait for the device (loading a state dict forgets it)."""
        if not self._initialized_seen:
            self._initialized_seen = bool(self.initialized)
        return not self._initialized_seen

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._initialized_seen = False  # the loaded flag is read again at the next training forward
        super()._load_from_state_dict(*args, **kwargs)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, finite: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """EMA update and dead-code restart; returns the synchronised counts ``[K]`` and the number of codes
        restarted (a device scalar). Rows of ``flat [N, D]`` that are not ``finite`` count nowhere (a diverging
        encoder must not poison the codebook). Nothing here waits for the device: dead codes are replaced by
        ``torch.where`` from candidates drawn every step, not by a host decision."""
        cfg = self.cfg
        flat = torch.where(finite[:, None], flat, 0.0)  # (N, D): a NaN would survive a zero weight in a matmul
        # non-finite rows go to an extra code K that is dropped: the counts and sums leave them out
        onehot = F.one_hot(torch.where(finite, indices, cfg.codebook_size), cfg.codebook_size + 1)
        onehot = onehot[:, :cfg.codebook_size].type(flat.dtype)  # (N, K)
        counts = all_reduce_sum(onehot.sum(0))  # (K,)
        if cfg.codebook == "ema":
            sums = all_reduce_sum(onehot.t() @ flat)  # (K, D)
            self.ema_count.mul_(cfg.decay).add_(counts, alpha=1 - cfg.decay)
            self.ema_sum.mul_(cfg.decay).add_(sums, alpha=1 - cfg.decay)
            total = self.ema_count.sum()
            smoothed = (self.ema_count + cfg.eps) / (total + cfg.codebook_size * cfg.eps) * total
            self.embedding.data.copy_(self.ema_sum / smoothed[:, None])
        self.unused_steps.add_(1).masked_fill_(counts > 0, 0)

        by_threshold = cfg.codebook == "ema" and cfg.restart_threshold > 0
        if cfg.restart_after <= 0 and not by_threshold:
            return counts, counts.new_zeros(())
        dead = torch.zeros_like(counts, dtype=torch.bool)
        if cfg.restart_after > 0:
            dead |= self.unused_steps >= cfg.restart_after
        if by_threshold:
            dead |= self.ema_count < cfg.restart_threshold
        # ``dead`` comes from synchronised buffers and the candidates from rank 0, so every rank restarts alike
        rows = self._candidates(flat, finite)  # (K, D)
        self.embedding.data.copy_(torch.where(dead[:, None], rows, self.embedding.data))
        self.ema_sum.copy_(torch.where(dead[:, None], rows, self.ema_sum))
        self.ema_count.masked_fill_(dead, 1.0)
        self.unused_steps.masked_fill_(dead, 0)
        return counts, dead.sum().float()

    def forward(self, z: torch.Tensor) -> VectorQuantizerOutput:
        """Quantise ``z [B, D, t, h, w]`` (any float dtype; the math runs in float32)."""
        b, d, t, h, w = z.shape
        z = z.float()
        flat = z.permute(0, 2, 3, 4, 1).reshape(-1, d)  # (B*t*h*w, D)
        if self.training:
            finite = torch.isfinite(flat.detach()).all(1)  # (N,)
            if self._needs_init():  # a synchronised flag: every rank agrees
                self._init_from_batch(flat.detach(), finite)
        indices = self.nearest(flat.detach())  # (N,)
        restarted = flat.new_zeros(())
        if self.training:
            counts, restarted = self._update(flat.detach(), finite, indices)
        else:
            counts = torch.bincount(indices, minlength=self.cfg.codebook_size).float()
        grid = indices.view(b, t, h, w)  # (B, t, h, w)
        q = self.decode_codes(grid)  # (B, D, t, h, w)
        commit = self.cfg.beta * F.mse_loss(z, q.detach())
        if self.cfg.codebook == "loss":
            codebook = F.mse_loss(q, z.detach())
        else:
            codebook = z.new_zeros(())
        quantized = z + (q - z).detach()  # straight-through: forward q, gradient to z
        perplexity, usage = code_statistics(counts)
        return VectorQuantizerOutput(quantized, grid, perplexity, usage, codebook, commit, restarted)

    def collapsed(self, out: QuantizerOutput) -> bool:
        """True when ``out`` used fewer than ``cfg.collapse_usage`` of the codes its batch could reach.

        A batch of ``N`` latent vectors can use at most ``min(N, K)`` codes.
        """
        reachable = min(out.indices.numel(), self.cfg.codebook_size)
        used = float(out.usage) * self.cfg.codebook_size
        return used < self.cfg.collapse_usage * reachable
