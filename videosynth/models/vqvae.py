"""VQ-VAE video tokenizer.

Vector-quantised autoencoder of van den Oord et al. 2017 ("Neural Discrete
Representation Learning") with 3D convolutions over ``(T, H, W)`` as in
VideoGPT (Yan et al. 2021, "VideoGPT: Video Generation using VQ-VAE and
Transformers"): an EMA codebook (decay 0.99, Laplace smoothing) initialised
from encoder outputs on the first training batch, dead-code restart from the
batch, and codebook statistics synchronised across DDP ranks.

The bottleneck is a choice (``bottleneck: vq | fsq``): the vector quantiser, or finite
scalar quantisation (Mentzer et al. 2023), whose indices feed the same priors.

This file holds, in reading order: the 3D residual block, the encoder and the
decoder, the vector quantiser, the FSQ bottleneck, :class:`VQVAEConfig` with
:data:`PRESETS`, and :class:`VQVAE`.

Layouts: videos are ``float32 [B, C, T, H, W]`` in ``[-1, 1]``; latent token
indices are ``int64 [B, t, h, w]`` with ``t = T / downsample[0]`` etc.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from videosynth.config import at_least, checked, in_range, positive
from videosynth.errors import ConfigError

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
    """Video ``[B, 3, T, H, W]`` -> latent ``[B, code_dim, t, h, w]``.

    Layout ``"rgb"``: the first strided conv reads the RGB frames, each step halves the axes
    and widens to the next of ``level_channels`` (then ``hidden``), a 3x3x3 conv mixes at the
    latent resolution. Layout ``"full"`` (runs made before layouts existed): a 3x3x3 conv
    lifts RGB to ``hidden`` channels at full resolution and every step keeps ``hidden``.
    """

    def __init__(self, cfg: "VQVAEConfig"):
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
        # a continuous bottleneck takes a mean and a log-variance per latent channel
        self.conv_out = nn.Conv3d(ch, cfg.code_dim * (2 if cfg.bottleneck == "continuous" else 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.conv_in is None else self.conv_in(x)  # (B, C or hidden, T, H, W)
        for conv in self.down:
            h = F.silu(conv(h))  # each step halves the axes with stride 2
        if self.conv_mid is not None:
            h = self.conv_mid(h)
        h = self.res(h)  # (B, hidden, t, h, w)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, code_dim, t, h, w)


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
# vector quantiser
# ---------------------------------------------------------------------------

CODEBOOK_MODES = ("ema", "loss")
BOTTLENECKS = ("vq", "fsq", "continuous")


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (in place); identity in a single process. Every rank must call it."""
    if _distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _broadcast(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's tensor on every rank (in place); identity in a single process. Every rank must call it."""
    if _distributed():
        dist.broadcast(t, src=0)
    return t


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


RESTART_NOISE = 0.01  # relative jitter on restarted codes so codes drawn from the same vector split


@dataclass
class QuantizerOutput:
    """Quantiser results. ``quantized`` carries the straight-through gradient to ``z``."""

    quantized: torch.Tensor  # (B, D, t, h, w)
    indices: torch.Tensor  # (B, t, h, w) int64
    codebook_loss: torch.Tensor  # scalar; 0 in "ema" mode
    commit_loss: torch.Tensor  # scalar, already weighted by beta
    perplexity: torch.Tensor  # scalar, exp(entropy) of this batch's code histogram
    usage: torch.Tensor  # scalar in [0, 1]: fraction of the codebook used by this batch
    restarted: torch.Tensor  # scalar: codes restarted by this forward (0 outside training)


class VectorQuantizer(nn.Module):
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

    def __init__(self, cfg: "VQVAEConfig"):
        super().__init__()
        self.cfg = cfg
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

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook rows for ``indices [B, t, h, w]`` -> ``[B, D, t, h, w]``."""
        return self.embedding[indices].permute(0, 4, 1, 2, 3)  # (B, D, t, h, w)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared L2) for each row of ``flat [N, D]`` -> ``[N]``."""
        emb = self.embedding.float()
        dist2 = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ emb.t() + emb.pow(2).sum(1)[None]
        )  # (N, K)
        return dist2.argmin(1)

    def _candidates(self, flat: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
        """One candidate code ``[K, D]`` per codebook row, drawn from the finite rows of ``flat`` (the
        current code where none can be drawn); rank 0's on every rank. Every rank must call it."""
        fallback = self.embedding.detach().float()
        return _broadcast(_candidate_rows(flat, finite, fallback, self.cfg.codebook_size).contiguous())

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
        counts = _all_reduce_sum(onehot.sum(0))  # (K,)
        if cfg.codebook == "ema":
            sums = _all_reduce_sum(onehot.t() @ flat)  # (K, D)
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

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
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
        q = self.lookup(grid)  # (B, D, t, h, w)
        commit = self.cfg.beta * F.mse_loss(z, q.detach())
        if self.cfg.codebook == "loss":
            codebook = F.mse_loss(q, z.detach())
        else:
            codebook = z.new_zeros(())
        quantized = z + (q - z).detach()  # straight-through: forward q, gradient to z
        probs = counts / counts.sum().clamp_min(1)
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
        usage = (counts > 0).float().mean()
        return QuantizerOutput(quantized, grid, codebook, commit, perplexity, usage, restarted)


# Keeps tanh's output strictly inside the outermost rounding bins (Mentzer et al. 2023).
FSQ_EPS = 1e-3


class FSQ(nn.Module):
    """Finite scalar quantisation (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple").

    Each of the ``D = len(levels)`` latent channels is bounded with a shifted ``tanh`` to
    ``L_i`` values and rounded, straight-through; the implicit codebook is their product grid,
    ``prod(levels)`` codes, with no codebook, no commitment loss and no dead codes. Codes lie on
    ``{-1, ..., 1}`` per channel (``round(bound(z)) / (L_i // 2)``); index ``sum_i digit_i *
    prod(L_<i)`` with ``digit_i = code_i * (L_i // 2) + L_i // 2`` in ``[0, L_i)``.
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
        """Codes ``[B, D, t, h, w]`` -> indices ``int64 [B, t, h, w]``."""
        half = self._view(self._half_width, codes)
        digits = torch.round(codes * half + half).long()  # (B, D, t, h, w), in [0, L_i)
        return (digits * self._view(self._basis, codes)).sum(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices ``[B, t, h, w]`` -> codes ``float32 [B, D, t, h, w]``."""
        digits = (indices.long()[:, None] // self._basis.view(1, -1, 1, 1, 1)) % self._levels.long().view(1, -1, 1, 1, 1)
        half = self._half_width.view(1, -1, 1, 1, 1)
        return (digits.float() - half) / half

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """The code index of each row of ``flat [N, D]`` (pre-bottleneck encoder outputs) -> ``[N]``."""
        codes = self.quantize(flat.float()[:, :, None, None, None])  # (N, D, 1, 1, 1)
        return self.codes_to_indices(codes).view(-1)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantise ``z [B, D, t, h, w]``; no losses (both 0), batch perplexity and usage as the VQ reports."""
        z = z.float()
        quantized = self.quantize(z)  # (B, D, t, h, w)
        grid = self.codes_to_indices(quantized.detach())  # (B, t, h, w)
        counts = torch.bincount(grid.flatten(), minlength=self.codebook_size).float()
        probs = counts / counts.sum().clamp_min(1)
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
        zero = z.new_zeros(())
        return QuantizerOutput(quantized, grid, zero, zero, perplexity, (counts > 0).float().mean(), 0)


# Log-variance clamp of the continuous bottleneck (as in latent-diffusion autoencoders).
LOGVAR_RANGE = (-30.0, 20.0)
# Momentum of the running per-channel latent mean / std kept for the generators that use the latents.
LATENT_STATS_MOMENTUM = 0.01


class GaussianBottleneck(nn.Module):
    """A KL-regularised continuous latent (the VAE bottleneck of latent-diffusion autoencoders).

    The encoder gives a mean and a log-variance per latent channel; training decodes a sample
    ``mean + std * eps`` and adds ``kl_weight * KL(q(z|x) || N(0, I))`` (mean over elements),
    eval decodes the mean. The KL keeps the latent bounded and near-Gaussian, which is what a
    flow or diffusion model over it wants; a plain autoencoder's latent scale drifts freely.

    Running per-channel mean and std of the latents (buffers ``latent_mean``, ``latent_std``,
    saved with the weights) give :meth:`normalize` / :meth:`denormalize`, so a generator over the
    latents sees zero-mean unit-variance channels and hands back latents the decoder expects.
    """

    def __init__(self, channels: int, kl_weight: float):
        super().__init__()
        self.channels, self.kl_weight = channels, kl_weight
        self.register_buffer("latent_mean", torch.zeros(channels))
        self.register_buffer("latent_std", torch.ones(channels))

    def split(self, moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output ``[B, 2C, t, h, w]`` -> mean, log-variance ``[B, C, t, h, w]`` each (float32)."""
        mean, logvar = moments.float().chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def _view(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, 1, 1, 1)

    def normalize(self, latent: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, C, t, h, w]`` -> zero-mean, unit-variance channels (the running statistics)."""
        return (latent - self._view(self.latent_mean)) / self._view(self.latent_std)

    def denormalize(self, latent: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        return latent * self._view(self.latent_std) + self._view(self.latent_mean)

    @torch.no_grad()
    def _update_stats(self, mean: torch.Tensor) -> None:
        flat = mean.transpose(0, 1).reshape(self.channels, -1)  # (C, B*t*h*w)
        batch_mean, batch_std = flat.mean(1), flat.std(1).clamp_min(1e-6)
        if _distributed():
            batch_mean = _all_reduce_sum(batch_mean) / dist.get_world_size()
            batch_std = _all_reduce_sum(batch_std) / dist.get_world_size()
        self.latent_mean.lerp_(batch_mean, LATENT_STATS_MOMENTUM)
        self.latent_std.lerp_(batch_std, LATENT_STATS_MOMENTUM)

    def forward(self, moments: torch.Tensor) -> QuantizerOutput:
        mean, logvar = self.split(moments)
        if self.training:
            self._update_stats(mean.detach())
            latent = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        else:
            latent = mean
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        zero = mean.new_zeros(())
        b, _, t, h, w = mean.shape
        no_indices = torch.zeros(b, t, h, w, dtype=torch.long, device=mean.device)
        one = mean.new_ones(())
        return QuantizerOutput(latent, no_indices, zero, self.kl_weight * kl, one, one, 0)


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
    codebook: str = "ema"  # "ema" | "loss"
    # "vq": the vector quantiser above; "fsq": finite scalar quantisation to ``levels`` (then
    # code_dim = len(levels) and codebook_size = prod(levels), derived here; beta, the codebook
    # and restart settings are unused)
    # "continuous": a KL-regularised latent of code_dim channels (no indices; for flow matching)
    bottleneck: str = "vq"
    levels: list[int] = checked(factory=lambda: [8, 5, 5, 5], check=at_least(2))
    kl_weight: float = checked(1e-4, at_least(0))  # "continuous": weight of KL(q(z|x) || N(0, I))
    beta: float = checked(0.25, at_least(0))  # commitment weight
    decay: float = checked(0.99, in_range(0, 1, high_open=True))  # EMA decay of codebook statistics
    eps: float = checked(1e-5, positive())  # Laplace smoothing of EMA counts
    restart_after: int = checked(100, at_least(0))  # restart a code unused this many consecutive training steps (0 = never)
    restart_threshold: float = checked(0.0, at_least(0))  # "ema": restart codes with EMA count below this (0 = off; VideoGPT: 1.0)
    collapse_usage: float = checked(0.05, in_range(0, 1))  # usage_collapsed() when the batch uses fewer than this share of the codes it could

    def __post_init__(self) -> None:
        if self.bottleneck not in BOTTLENECKS:
            raise ConfigError(f"vqvae.bottleneck must be one of {list(BOTTLENECKS)}, got '{self.bottleneck}'")
        if self.bottleneck == "fsq":
            if not self.levels:
                raise ConfigError("vqvae.levels must list at least one level (e.g. [8, 5, 5, 5]) for bottleneck fsq")
            self.code_dim, self.codebook_size = len(self.levels), math.prod(self.levels)
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
        if self.codebook not in CODEBOOK_MODES:
            raise ConfigError(f"vqvae.codebook must be one of {list(CODEBOOK_MODES)}, got '{self.codebook}'")
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
class VQOutput:
    """One VQ-VAE forward. Scalars are 0-dim tensors; ``loss`` = recon + codebook + commit."""

    recon: torch.Tensor  # (B, C, T, H, W), unclamped
    loss: torch.Tensor
    recon_loss: torch.Tensor  # MSE in the [-1, 1] range
    commit_loss: torch.Tensor  # beta-weighted
    codebook_loss: torch.Tensor  # 0 in "ema" mode
    perplexity: torch.Tensor
    usage: torch.Tensor  # fraction of codes used by this batch, in [0, 1]
    indices: torch.Tensor  # (B, t, h, w) int64
    restarted: torch.Tensor | float = 0.0  # dead codes restarted by this forward (a scalar tensor)


class VQVAE(nn.Module):
    """Video VQ-VAE: ``encode`` videos to token grids, ``decode`` token grids to videos."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        if cfg.bottleneck == "fsq":
            self.quantizer = FSQ(tuple(cfg.levels))
        elif cfg.bottleneck == "continuous":
            self.quantizer = GaussianBottleneck(cfg.code_dim, cfg.kl_weight)
        else:
            self.quantizer = VectorQuantizer(cfg)
        self.decoder = Decoder(cfg)

    @property
    def continuous(self) -> bool:
        """True for the continuous (KL) bottleneck: ``encode`` gives float latents, not token indices."""
        return self.cfg.bottleneck == "continuous"

    def latent_shape(self, frames: int, size: int | tuple[int, int]) -> tuple[int, int, int]:
        """Token grid ``(t, h, w)`` for clips of ``frames`` frames at ``size`` (int or (H, W)).

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

    def forward(self, x: torch.Tensor) -> VQOutput:
        """Reconstruct ``x [B, C, T, H, W]`` in ``[-1, 1]``; returns losses and codebook statistics.

        In training mode this updates the codebook (see :class:`VectorQuantizer`).
        """
        self._check(x)
        z = self.encoder(x)  # (B, D, t, h, w)
        with torch.autocast(z.device.type, enabled=False):  # nearest-code search and EMA stay fp32
            q = self.quantizer(z.float())
        recon = self.decoder(q.quantized)  # (B, C, T, H, W)
        recon_loss = F.mse_loss(recon.float(), x.float())
        loss = recon_loss + q.codebook_loss + q.commit_loss
        return VQOutput(
            recon, loss, recon_loss, q.commit_loss, q.codebook_loss, q.perplexity, q.usage, q.indices, q.restarted
        )

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Video ``[B, C, T, H, W]`` in ``[-1, 1]`` -> token indices ``int64 [B, t, h, w]``.

        Pure lookup: never updates the codebook, even in training mode. For the continuous
        bottleneck: the mean latent ``float32 [B, code_dim, t, h, w]`` (not normalised).
        """
        self._check(video)
        z = self.encoder(video).float()  # (B, D, t, h, w); (B, 2D, t, h, w) for the continuous bottleneck
        if self.continuous:
            return self.quantizer.split(z)[0]  # the mean latent (B, D, t, h, w)
        b, d, t, h, w = z.shape
        flat = z.permute(0, 2, 3, 4, 1).reshape(-1, d)  # (B*t*h*w, D)
        return self.quantizer.nearest(flat).view(b, t, h, w)  # (B, t, h, w)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Token indices ``int64 [B, t, h, w]`` -> video ``float32 [B, C, T, H, W]`` clamped to ``[-1, 1]``.

        For the continuous bottleneck: latents ``float32 [B, code_dim, t, h, w]`` as ``encode`` gives them.

        Raises:
            ConfigError: indices outside ``[0, codebook_size)`` or not 4-D.
        """
        if self.continuous:
            if indices.dim() != 5 or indices.shape[1] != self.cfg.code_dim:
                raise ConfigError(f"this tokenizer's latents are float [B, {self.cfg.code_dim}, t, h, w], "
                                  f"got {list(indices.shape)}")
            return self.decoder(indices.float()).float().clamp(-1, 1)
        if indices.dim() != 4:
            raise ConfigError(f"VQVAE.decode expects tokens [B, t, h, w], got {list(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.cfg.codebook_size):
            raise ConfigError(
                f"token ids must lie in [0, {self.cfg.codebook_size}); got "
                f"[{int(indices.min())}, {int(indices.max())}] — was the prior trained on another tokenizer?"
            )
        z = self.quantizer.lookup(indices.long())  # (B, D, t, h, w)
        return self.decoder(z).float().clamp(-1, 1)

    def usage_collapsed(self, out: VQOutput) -> bool:
        """True when ``out`` used fewer than ``cfg.collapse_usage`` of the codes its batch could reach.

        A batch of ``N`` latent vectors can use at most ``min(N, K)`` codes.
        """
        if self.cfg.bottleneck != "vq":
            return False  # FSQ has no dead codes to restart; a continuous latent has no codes
        reachable = min(out.indices.numel(), self.cfg.codebook_size)
        used = float(out.usage) * self.cfg.codebook_size
        return used < self.cfg.collapse_usage * reachable


def warn_if_collapsed(model: VQVAE, out: VQOutput, step: int | None = None) -> bool:
    """Issue a ``UserWarning`` when codebook usage has collapsed; returns whether it did."""
    if not model.usage_collapsed(out):
        return False
    at = f" at step {step}" if step is not None else ""
    warnings.warn(
        f"VQ-VAE codebook usage collapsed{at}: {float(out.usage):.1%} of {model.cfg.codebook_size} codes used "
        f"(perplexity {float(out.perplexity):.1f}); lower vqvae.restart_after or the learning rate",
        stacklevel=2,
    )
    return True
