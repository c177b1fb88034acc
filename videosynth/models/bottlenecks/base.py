"""The autoencoder bottleneck interface: what sits between a tokenizer's encoder and its decoder.

Two kinds, two return types, never one flag:

- a :class:`DiscreteBottleneck` (``vq``, ``fsq``) ``encode``\\ s encoder outputs to integer codes
  ``int64 [B, t, h, w]`` (the tokens a prior models) and ``decode_codes`` them back to the
  decoder's input ``float32 [B, D, t, h, w]``; its training forward gives a :class:`QuantizerOutput`;
- a :class:`ContinuousBottleneck` (``gaussian``) ``encode``\\ s to float latents
  ``float32 [B, D, t, h, w]`` (what a flow model learns), with ``normalize`` / ``denormalize`` to
  the unit-variance channels a generator over them sees; its forward gives its own output type.

Every bottleneck also gives ``latents(z)``: the deterministic decoder input for encoder outputs
``z`` (the reconstruction path, the same for both kinds). Its training forward's output offers
``latents`` (what the decoder reads, with the gradient to the encoder), ``loss`` (the regulariser
added to the reconstruction loss) and ``metrics()`` (the scalars a training step logs).

This file also holds the collectives the bottlenecks share (sums and broadcasts that are the
identity in a single process) and the code statistics of the discrete ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.distributed as dist
import torch.nn as nn

# ---------------------------------------------------------------------------
# collectives
# ---------------------------------------------------------------------------


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (in place); identity in a single process. Every rank must call it."""
    if distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's tensor on every rank (in place); identity in a single process. Every rank must call it."""
    if distributed():
        dist.broadcast(t, src=0)
    return t


# ---------------------------------------------------------------------------
# what a bottleneck reads from the tokenizer config
# ---------------------------------------------------------------------------


class TokenizerFields(Protocol):
    """The flat ``model:`` fields of a tokenizer config the bottlenecks read (``VQVAEConfig`` has them
    all; each bottleneck's ``from_config`` picks its own and ``configure`` fills in what it derives)."""

    bottleneck: str
    code_dim: int
    codebook_size: int
    codebook: str
    levels: list[int]
    kl_weight: float
    beta: float
    decay: float
    eps: float
    restart_after: int
    restart_threshold: float
    collapse_usage: float


# ---------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------


class BottleneckOutput(Protocol):
    """What the tokenizer's training forward needs from any bottleneck's forward."""

    @property
    def latents(self) -> torch.Tensor:  # (B, D, t, h, w): the decoder's input, gradient to the encoder
        ...

    @property
    def loss(self) -> torch.Tensor:  # scalar: the regulariser added to the reconstruction loss
        ...

    def metrics(self) -> dict[str, torch.Tensor]:
        """The detached scalars a training step logs, by name (device tensors: no host sync)."""
        ...


def code_statistics(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Code histogram ``[K]`` -> (perplexity ``exp(entropy)`` in ``[1, K]``, share of codes used in ``[0, 1]``)."""
    probs = counts / counts.sum().clamp_min(1)
    perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
    return perplexity, (counts > 0).float().mean()


@dataclass
class QuantizerOutput:
    """A discrete bottleneck's training forward. ``quantized`` carries the straight-through gradient to ``z``."""

    quantized: torch.Tensor  # (B, D, t, h, w)
    indices: torch.Tensor  # (B, t, h, w) int64
    perplexity: torch.Tensor  # scalar, exp(entropy) of this batch's code histogram
    usage: torch.Tensor  # scalar in [0, 1]: fraction of the codebook used by this batch

    @property
    def latents(self) -> torch.Tensor:
        return self.quantized

    @property
    def loss(self) -> torch.Tensor:
        return self.quantized.new_zeros(())  # an implicit codebook has nothing to pull together

    def metrics(self) -> dict[str, torch.Tensor]:
        return {"perplexity": self.perplexity.detach(), "usage": self.usage.detach()}


# ---------------------------------------------------------------------------
# the interface
# ---------------------------------------------------------------------------


class Bottleneck(nn.Module, ABC):
    """Encoder outputs ``z [B, encoder_channels, t, h, w]`` -> the decoder's input ``[B, code_dim, t, h, w]``."""

    @classmethod
    def configure(cls, cfg: TokenizerFields) -> None:
        """Check the config's fields for this bottleneck and fill in the ones it derives (in place).

        Raises:
            ConfigError: a field this bottleneck needs is unusable.
        """

    @classmethod
    def encoder_channels(cls, cfg: TokenizerFields) -> int:
        """Channels the encoder must give this bottleneck."""
        return cfg.code_dim

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: TokenizerFields) -> "Bottleneck":
        """The bottleneck the (configured) tokenizer config describes."""

    @abstractmethod
    def latents(self, z: torch.Tensor) -> torch.Tensor:
        """The deterministic decoder input for ``z``, ``float32 [B, code_dim, t, h, w]``; never updates state."""

    def collapsed(self, out: BottleneckOutput) -> bool:
        """Whether ``out`` shows a collapsed codebook (reads the device: call it now and then, not every step)."""
        return False


class DiscreteBottleneck(Bottleneck):
    """A bottleneck with a finite set of ``codebook_size`` codes: the tokens a prior models."""

    codebook_size: int

    @abstractmethod
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Encoder outputs ``[B, D, t, h, w]`` -> codes ``int64 [B, t, h, w]`` in ``[0, codebook_size)``."""

    @abstractmethod
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``int64 [B, t, h, w]`` -> the decoder's input ``float32 [B, D, t, h, w]``."""

    def latents(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode_codes(self.encode(z))

    @abstractmethod
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantise ``z [B, D, t, h, w]`` with a straight-through gradient."""


class ContinuousBottleneck(Bottleneck):
    """A bottleneck whose codes are float latents, with running statistics that normalise them."""

    @abstractmethod
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Encoder outputs -> latents ``float32 [B, D, t, h, w]`` (deterministic, not normalised)."""

    def latents(self, z: torch.Tensor) -> torch.Tensor:
        return self.encode(z)

    @abstractmethod
    def normalize(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, D, t, h, w]`` -> zero-mean, unit-variance channels."""

    @abstractmethod
    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""

    @abstractmethod
    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        """A training (sampled) or eval (deterministic) latent for ``z``, with its regulariser."""

