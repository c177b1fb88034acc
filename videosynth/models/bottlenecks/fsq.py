"""Finite scalar quantisation.

Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple": each latent channel is
bounded and rounded to a few values; the implicit codebook is their product grid, so there is no
codebook to learn, no commitment loss and no dead code. Its indices feed the same priors as the
vector quantiser's.

This file holds :class:`FSQ`.
"""

from __future__ import annotations

import math

import torch

from videosynth.errors import ConfigError
from videosynth.models.bottlenecks.base import DiscreteBottleneck, QuantizerOutput, TokenizerFields, code_statistics

# Keeps tanh's output strictly inside the outermost rounding bins (Mentzer et al. 2023).
FSQ_EPS = 1e-3


class FSQ(DiscreteBottleneck):
    """Each of the ``D = len(levels)`` latent channels is bounded with a shifted ``tanh`` to ``L_i``
    values and rounded, straight-through; ``prod(levels)`` codes. Codes lie on ``{-1, ..., 1}`` per
    channel (``round(bound(z)) / (L_i // 2)``); index ``sum_i digit_i * prod(L_<i)`` with
    ``digit_i = code_i * (L_i // 2) + L_i // 2`` in ``[0, L_i)``. Nothing is saved with the weights.
    """

    def __init__(self, levels: tuple[int, ...]):
        super().__init__()
        self.levels = tuple(int(v) for v in levels)
        lv = torch.tensor(self.levels, dtype=torch.float32)
        self.register_buffer("_levels", lv, persistent=False)
        self.register_buffer("_half_width", torch.div(lv, 2, rounding_mode="floor"), persistent=False)
        basis = torch.cumprod(torch.tensor((1,) + self.levels[:-1], dtype=torch.long), 0)
        self.register_buffer("_basis", basis, persistent=False)
        self.codebook_size = math.prod(self.levels)

    @classmethod
    def configure(cls, cfg: TokenizerFields) -> None:
        """``code_dim`` and ``codebook_size`` follow from ``levels``."""
        if not cfg.levels:
            raise ConfigError("vqvae.levels must list at least one level (e.g. [8, 5, 5, 5]) for bottleneck fsq")
        cfg.code_dim, cfg.codebook_size = len(cfg.levels), math.prod(cfg.levels)

    @classmethod
    def from_config(cls, cfg: TokenizerFields) -> "FSQ":
        return cls(tuple(cfg.levels))

    def _view(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, *([1] * (z.dim() - 2)))  # (1, D, 1, ...) to broadcast over channels

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, D, ...]`` -> values in ``(-L/2, L/2)``, offset so rounding gives exactly ``L`` values."""
        levels = self._view(self._levels, z)
        half = (levels - 1) * (1 + FSQ_EPS) / 2
        offset = torch.where(levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, D, ...]`` -> codes on the grid, straight-through (forward rounds, gradient of ``bound``)."""
        bounded = self.bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        return rounded / self._view(self._half_width, z)

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, D, t, h, w]`` on the grid -> indices ``int64 [B, t, h, w]``."""
        half = self._view(self._half_width, codes)
        digits = torch.round(codes * half + half).long()  # (B, D, t, h, w), in [0, L_i)
        return (digits * self._view(self._basis, codes)).sum(1)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Encoder outputs ``[B, D, t, h, w]`` -> indices ``int64 [B, t, h, w]``."""
        return self.codes_to_indices(self.quantize(z.float()))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Indices ``[B, t, h, w]`` -> codes on the grid ``float32 [B, D, t, h, w]``."""
        shape = (1, -1, 1, 1, 1)
        digits = (codes.long()[:, None] // self._basis.view(shape)) % self._levels.long().view(shape)  # (B, D, t, h, w)
        half = self._half_width.view(shape)
        return (digits.float() - half) / half

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantise ``z [B, D, t, h, w]``; no losses, batch perplexity and usage as the vector quantiser reports."""
        quantized = self.quantize(z.float())  # (B, D, t, h, w)
        grid = self.codes_to_indices(quantized.detach())  # (B, t, h, w)
        counts = torch.bincount(grid.flatten(), minlength=self.codebook_size).float()
        perplexity, usage = code_statistics(counts)
        return QuantizerOutput(quantized, grid, perplexity, usage)
