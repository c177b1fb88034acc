"""A KL-regularised continuous (Gaussian) latent.

The VAE bottleneck (Kingma & Welling 2014, "Auto-Encoding Variational Bayes") as latent-diffusion
autoencoders use it (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models"): a weak KL term keeps the latent bounded and near-Gaussian, which is what a flow or
diffusion model over it wants; a plain autoencoder's latent scale drifts freely.

This file holds :class:`GaussianOutput` and :class:`GaussianBottleneck`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from videosynth.models.bottlenecks.base import ContinuousBottleneck, TokenizerFields, all_reduce_sum, distributed

# Log-variance clamp (as in latent-diffusion autoencoders).
LOGVAR_RANGE = (-30.0, 20.0)
# Momentum of the running per-channel latent mean / std kept for the generators that use the latents.
LATENT_STATS_MOMENTUM = 0.01


@dataclass
class GaussianOutput:
    """The Gaussian bottleneck's forward: a sampled (training) or mean (eval) latent and its KL."""

    latents: torch.Tensor  # (B, C, t, h, w): the decoder's input, gradient to the encoder
    kl: torch.Tensor  # scalar >= 0: KL(q(z|x) || N(0, I)), mean over elements
    loss: torch.Tensor  # scalar: kl_weight * kl, the term added to the reconstruction loss

    def metrics(self) -> dict[str, torch.Tensor]:
        return {"loss_kl": self.loss.detach()}


class GaussianBottleneck(ContinuousBottleneck):
    """The encoder gives a mean and a log-variance per latent channel; training decodes a sample
    ``mean + std * eps`` and adds ``kl_weight * KL(q(z|x) || N(0, I))`` (mean over elements), eval
    decodes the mean.

    Running per-channel mean and std of the latents (buffers ``latent_mean``, ``latent_std``,
    saved with the weights) give :meth:`normalize` / :meth:`denormalize`, so a generator over the
    latents sees zero-mean unit-variance channels and hands back latents the decoder expects.
    """

    def __init__(self, channels: int, kl_weight: float):
        super().__init__()
        self.channels, self.kl_weight = channels, kl_weight
        self.register_buffer("latent_mean", torch.zeros(channels))
        self.register_buffer("latent_std", torch.ones(channels))

    @classmethod
    def encoder_channels(cls, cfg: TokenizerFields) -> int:
        return 2 * cfg.code_dim  # a mean and a log-variance per latent channel

    @classmethod
    def from_config(cls, cfg: TokenizerFields) -> "GaussianBottleneck":
        return cls(cfg.code_dim, cfg.kl_weight)

    def split(self, moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output ``[B, 2C, t, h, w]`` -> mean, log-variance ``[B, C, t, h, w]`` each (float32)."""
        mean, logvar = moments.float().chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def encode(self, moments: torch.Tensor) -> torch.Tensor:
        """Encoder output ``[B, 2C, t, h, w]`` -> the mean latent ``float32 [B, C, t, h, w]`` (not normalised)."""
        return self.split(moments)[0]

    def _view(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, 1, 1, 1)

    def normalize(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, C, t, h, w]`` -> zero-mean, unit-variance channels (the running statistics)."""
        return (latents - self._view(self.latent_mean)) / self._view(self.latent_std)

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        return latents * self._view(self.latent_std) + self._view(self.latent_mean)

    @torch.no_grad()
    def _update_stats(self, mean: torch.Tensor) -> None:
        flat = mean.transpose(0, 1).reshape(self.channels, -1)  # (C, B*t*h*w)
        batch_mean, batch_std = flat.mean(1), flat.std(1).clamp_min(1e-6)
        if distributed():
            batch_mean = all_reduce_sum(batch_mean) / dist.get_world_size()
            batch_std = all_reduce_sum(batch_std) / dist.get_world_size()
        self.latent_mean.lerp_(batch_mean, LATENT_STATS_MOMENTUM)
        self.latent_std.lerp_(batch_std, LATENT_STATS_MOMENTUM)

    def forward(self, moments: torch.Tensor) -> GaussianOutput:
        """Encoder output ``[B, 2C, t, h, w]`` -> a sampled latent (training; updates the running
        statistics) or the mean (eval), with the KL of ``q(z|x)`` to ``N(0, I)``."""
        mean, logvar = self.split(moments)
        if self.training:
            self._update_stats(mean.detach())
            latents = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        else:
            latents = mean
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        return GaussianOutput(latents, kl, self.kl_weight * kl)
