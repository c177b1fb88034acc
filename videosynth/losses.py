"""GAN losses with one signature, gradient penalties, reconstruction and perceptual losses.

Every GAN loss is a :class:`GANLoss` pair sharing one signature:
``d_loss(d_real, d_fake) -> scalar`` (minimised by the discriminator) and
``g_loss(d_fake) -> scalar`` (minimised by the generator), where ``d_real`` and
``d_fake`` are raw discriminator outputs (logits / critic values) of shape ``(B,)``.
All math runs in float32 whatever the input dtype (mixed precision keeps losses fp32).

References:
    Goodfellow et al. 2014, "Generative Adversarial Nets" (minimax, non-saturating).
    Arjovsky et al. 2017, "Wasserstein GAN"; Gulrajani et al. 2017, "Improved Training
    of Wasserstein GANs" (gradient penalty).
    Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018 (hinge loss).
    Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?" (R1).
    Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a
    Perceptual Metric" (LPIPS).

VQ losses live with the VQ-VAE model (``videosynth/models/vqvae.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from videosynth.config import choice_hint
from videosynth.errors import ConfigError, MissingWeightsError
from videosynth.metrics.lpips import load_lpips, video_frames

# Gulrajani et al. 2017 use lambda = 10 for every experiment.
GP_WEIGHT = 10.0
# Mescheder et al. 2018 use gamma = 10 for most of their experiments.
R1_GAMMA = 10.0


# ----------------------------------------------------------------------------- GAN losses


def _f32(x: torch.Tensor) -> torch.Tensor:
    return x.float()


def _bce_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    # -log sigmoid(r) - log(1 - sigmoid(f)), written with softplus for stability.
    return F.softplus(-_f32(d_real)).mean() + F.softplus(_f32(d_fake)).mean()


def _minimax_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    # The saturating objective: minimise log(1 - sigmoid(f)) = -softplus(f).
    return -F.softplus(_f32(d_fake)).mean()


def _non_saturating_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    # Minimise -log sigmoid(f) = softplus(-f).
    return F.softplus(-_f32(d_fake)).mean()


def _hinge_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - _f32(d_real)).mean() + F.relu(1 + _f32(d_fake)).mean()


def _wgan_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return _f32(d_fake).mean() - _f32(d_real).mean()


def _critic_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    # Hinge and WGAN generators both maximise the critic value of their samples.
    return -_f32(d_fake).mean()


@dataclass(frozen=True)
class GANLoss:
    """A discriminator/generator loss pair.

    ``d_loss(d_real (B,), d_fake (B,)) -> scalar`` and ``g_loss(d_fake (B,)) -> scalar``,
    both float32, both to be minimised.
    """

    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]


GAN_LOSSES = {
    # Goodfellow et al.: BCE for D, the saturating log(1 - D(G(z))) for G.
    "minimax": GANLoss(_bce_d_loss, _minimax_g_loss),
    # Goodfellow et al.'s practical variant: G minimises -log D(G(z)).
    "non-saturating": GANLoss(_bce_d_loss, _non_saturating_g_loss),
    "hinge": GANLoss(_hinge_d_loss, _critic_g_loss),
    # Use with the gradient penalty (WGAN-GP, gradient_norm_penalty) and several critic steps per generator step.
    "wgan": GANLoss(_wgan_d_loss, _critic_g_loss),
}


def get_gan_loss(name: str) -> GANLoss:
    """Look up ``GAN_LOSSES[name]``; an unknown name is a ConfigError with the closest one."""
    if name not in GAN_LOSSES:
        raise ConfigError(f"unknown GAN loss '{name}' ({choice_hint(name, GAN_LOSSES)})")
    return GAN_LOSSES[name]


# ----------------------------------------------------------------------------- penalties


def interpolates(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP's random interpolates ``x_hat = a * real + (1 - a) * fake``, ``a ~ U[0, 1]`` per sample.

    ``real`` / ``fake`` are ``(B, ...)`` (videos ``(B, C, T, H, W)`` in ``[-1, 1]``), both detached;
    the result requires grad, for :func:`gradient_norm_penalty`.
    """
    batch = real.shape[0]
    alpha_shape = (batch,) + (1,) * (real.dim() - 1)  # (B, 1, 1, 1, 1)
    alpha = torch.rand(alpha_shape, generator=generator, device=real.device, dtype=real.dtype)
    return (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)  # (B, ...)


def gradient_norm_penalty(scores: torch.Tensor, x_hat: torch.Tensor, weight: float = GP_WEIGHT) -> torch.Tensor:
    """``weight * E[(||grad_x critic(x_hat)||_2 - 1)^2]`` from the critic's ``scores (B,)`` on ``x_hat``.

    The graph is kept (``create_graph``) so the result can be back-propagated into the critic.
    Returns a float32 scalar.
    """
    (grads,) = torch.autograd.grad(scores.float().sum(), x_hat, create_graph=True)
    norms = grads.float().flatten(1).norm(2, dim=1)  # (B,)
    return weight * ((norms - 1) ** 2).mean()


def r1_penalty(d_real: torch.Tensor, real: torch.Tensor, gamma: float = R1_GAMMA) -> torch.Tensor:
    """R1 penalty ``gamma / 2 * E[||grad_x D(x)||^2]`` on real data.

    ``real`` ``(B, ...)`` must have ``requires_grad=True`` and ``d_real`` ``(B,)`` must
    have been computed from it.  Keeps the graph so the result can be back-propagated.
    Returns a float32 scalar.
    """
    if not real.requires_grad:
        raise ValueError("r1_penalty needs real.requires_grad_(True) before computing d_real")
    (grads,) = torch.autograd.grad(d_real.float().sum(), real, create_graph=True)
    return gamma / 2 * grads.float().flatten(1).pow(2).sum(dim=1).mean()


MODE_SEEKING_EPS = 1e-5


def mode_seeking_loss(fake: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Mode seeking (Mao et al. 2019, MSGAN): ``1 / (d + eps)``, ``d`` the mean absolute difference
    between the generator's outputs for different noise under the same condition, so a generator
    that makes one clip per class whatever its noise pays for it.

    ``fake`` ``(B, ...)``; ``labels`` ``(B,)``: pairs of the same class only (None: every pair, for
    conditions no two clips share). MSGAN divides by the codes' distance too; for independent
    Gaussian codes that is nearly constant, so it is left out. A float32 scalar, 0 where the batch
    holds no pair.
    """
    flat = fake.float().flatten(1)
    dist = torch.cdist(flat[None], flat[None], p=1)[0] / flat.shape[1]  # (B, B) mean |a - b|
    pairs = torch.ones_like(dist, dtype=torch.bool) if labels is None else labels[:, None] == labels[None, :]
    pairs = torch.triu(pairs, diagonal=1).float()
    count = pairs.sum()
    mean = (dist * pairs).sum() / count.clamp_min(1)
    return torch.where(count > 0, 1 / (mean + MODE_SEEKING_EPS), torch.zeros_like(mean))


# ----------------------------------------------------------------------------- instance noise


def annealed_noise_std(start: float, steps: int, step: int) -> float:
    """Instance-noise std at ``step``: linear from ``start`` to 0 over ``steps`` (0 = constant).

    Instance noise (Sønderby et al. 2017, "Amortised MAP inference for image super-resolution")
    blurs real and fake distributions together early on, so the discriminator cannot win outright
    before the generator has learnt anything.
    """
    if start <= 0:
        return 0.0
    if steps <= 0:
        return start
    return start * max(0.0, 1.0 - step / steps)


def add_instance_noise(x: torch.Tensor, std: float) -> torch.Tensor:
    """``x + N(0, std^2)`` (global RNG); ``x`` itself when ``std`` is 0."""
    return x + std * torch.randn_like(x) if std > 0 else x


def l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error in float32; any matching shapes (videos ``(B, C, T, H, W)``)."""
    return F.l1_loss(prediction.float(), target.float())


def l2_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error in float32; any matching shapes (videos ``(B, C, T, H, W)``)."""
    return F.mse_loss(prediction.float(), target.float())


RECONSTRUCTION_LOSSES = {"l1": l1_loss, "l2": l2_loss}


# ----------------------------------------------------------------------------- perceptual

class PerceptualLoss(nn.Module):
    """LPIPS perceptual distance between videos, frame by frame, from LOCAL weights.

    The network and its weights are the ``lpips`` metric's (:mod:`videosynth.metrics.lpips`),
    found like every metric weight (``path``, ``$VIDEOSYNTH_WEIGHTS``, the user cache; nothing
    is downloaded) and frozen. Frames must be at least 32x32 pixels.

    Raises:
        MissingWeightsError: the weights file is not found or is not LPIPS-alex.
    """

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        try:
            self.net, found = load_lpips(path)
        except MissingWeightsError as exc:
            raise MissingWeightsError(f"perceptual loss: {exc} (or set loss.perceptual_weight=0)") from None
        self.path = found.path

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """prediction, target: ``(B, C, T, H, W)`` in ``[-1, 1]`` -> float32 scalar, mean over frames."""
        return self.net(video_frames(prediction), video_frames(target)).mean()
