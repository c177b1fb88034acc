"""Shared primitives for the model files: dimension-generic convolutions and norms,
conditional batch normalisation, spectral normalisation and DCGAN initialisation.

Only small, stable building blocks live here; architectures live in their own
files (``videogan.py``, ``mocogan.py``, ...).  ``conv_nd``-style factories follow
improved-diffusion's ``nn.py`` so one block can serve 1D, 2D and 3D data.

References:
    Radford et al. 2016, "Unsupervised Representation Learning with Deep
    Convolutional Generative Adversarial Networks" (DCGAN initialisation).
    Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks".
    de Vries et al. 2017, "Modulating early visual processing by language"
    (conditional batch normalisation).
"""

from __future__ import annotations

import torch
from torch import nn

# DCGAN paper: "All weights were initialized from a zero-centered Normal
# distribution with standard deviation 0.02."
DCGAN_INIT_STD = 0.02

# Negative slope of the discriminator's LeakyReLU in DCGAN and VGAN.
LEAKY_RELU_SLOPE = 0.2

# Input channels a sound-conditioned discriminator gives the per-frame sound features (early fusion).
SOUND_CHANNELS = 8

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_TRANSPOSE = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def _check_dims(dims: int) -> None:
    if dims not in _CONV:
        raise ValueError(f"dims must be 1, 2 or 3, got {dims}")


def conv_nd(dims: int, *args, **kwargs) -> nn.Module:
    """``nn.Conv{dims}d(*args, **kwargs)`` for ``dims`` in 1, 2, 3."""
    _check_dims(dims)
    return _CONV[dims](*args, **kwargs)


def conv_transpose_nd(dims: int, *args, **kwargs) -> nn.Module:
    """``nn.ConvTranspose{dims}d(*args, **kwargs)`` for ``dims`` in 1, 2, 3."""
    _check_dims(dims)
    return _CONV_TRANSPOSE[dims](*args, **kwargs)


def batch_norm_nd(dims: int, num_features: int, **kwargs) -> nn.Module:
    """``nn.BatchNorm{dims}d(num_features, **kwargs)`` for ``dims`` in 1, 2, 3."""
    _check_dims(dims)
    return _BATCH_NORM[dims](num_features, **kwargs)


def layer_norm_nd(num_features: int) -> nn.Module:
    """Layer normalisation over (C, *spatial) of a ``(B, C, ...)`` tensor, any number of dims.

    ``GroupNorm`` with a single group normalises each sample over all channels
    and positions, the critic normalisation recommended by WGAN-GP.
    """
    return nn.GroupNorm(1, num_features)


class ConditionalBatchNorm(nn.Module):
    """Batch normalisation whose scale and shift are predicted from a condition vector.

    ``y = BN(x) * (1 + gamma(c)) + beta(c)``; ``gamma``/``beta`` are linear maps
    initialised to zero, so an untrained layer behaves like plain BatchNorm.

    Args:
        dims: spatial dimensions of the input (1, 2 or 3).
        num_features: channels C.
        cond_dim: size D of the condition vector.
    """

    def __init__(self, dims: int, num_features: int, cond_dim: int):
        super().__init__()
        self.dims = dims
        self.norm = batch_norm_nd(dims, num_features, affine=False)
        self.gamma = nn.Linear(cond_dim, num_features)
        self.beta = nn.Linear(cond_dim, num_features)
        for linear in (self.gamma, self.beta):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x: ``(B, C, *spatial)``; cond: ``(B, D)``. Returns ``(B, C, *spatial)``."""
        shape = (x.shape[0], -1) + (1,) * self.dims
        gamma = self.gamma(cond).view(shape)  # (B, C, 1, ...)
        beta = self.beta(cond).view(shape)  # (B, C, 1, ...)
        return self.norm(x) * (1 + gamma) + beta


def spectral_norm(module: nn.Module) -> nn.Module:
    """Apply spectral normalisation to ``module.weight`` (parametrization API).

    The weight becomes ``module.parametrizations.weight.original`` in the
    state dict; the power-iteration vectors are buffers, so they are saved and
    restored with the checkpoint.
    """
    return nn.utils.parametrizations.spectral_norm(module)


def is_spectral_normed(module: nn.Module) -> bool:
    """True when ``module.weight`` is spectrally normalised by :func:`spectral_norm`."""
    return nn.utils.parametrize.is_parametrized(module, "weight")


_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
_AFFINE_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)


@torch.no_grad()
def dcgan_init_(module: nn.Module, std: float = DCGAN_INIT_STD) -> None:
    """Initialise ``module`` and its children in place the DCGAN way.

    Convolution and linear weights ~ N(0, std), norm scales ~ N(1, std), biases 0.
    Layers of :class:`ConditionalBatchNorm` keep their zero initialisation so
    they start as plain BatchNorm.  For a spectrally normalised layer the
    unnormalised weight is initialised; call this before :func:`spectral_norm`
    so the power-iteration vectors match the new weight.
    """
    conditional = {id(m) for cbn in module.modules() if isinstance(cbn, ConditionalBatchNorm) for m in cbn.modules()}
    for m in module.modules():
        if id(m) in conditional:
            continue
        if isinstance(m, _WEIGHTED):
            weight = m.parametrizations.weight.original if is_spectral_normed(m) else m.weight
            nn.init.normal_(weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _AFFINE_NORMS) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------- per-frame sound features


def with_batch_std(h: torch.Tensor) -> torch.Tensor:
    """Features ``[N, F, ...]`` with one more channel holding how much they vary across the batch.

    The minibatch standard deviation of Karras et al. 2018 (one group): the mean over features and
    positions of the per-feature std over the batch, broadcast as a constant channel. A batch of
    near-identical fakes (mode collapse) has a value real batches never show, so the discriminator
    can reject it. Returns ``[N, F + 1, ...]``.
    """
    # the epsilon keeps the gradient finite where the batch is identical (d sqrt(v) / dv at v = 0)
    std = (h.float().var(dim=0, unbiased=False) + 1e-8).sqrt().mean()  # scalar
    return torch.cat([h, std.to(h.dtype).expand(h.shape[0], 1, *h.shape[2:])], dim=1)


def frames_for(cond_frames: torch.Tensor, b: int, t: int, dim: int) -> torch.Tensor:
    """Per-frame condition features checked to be ``[B, T, dim]``; one feature ``[B, 1, dim]`` (the null
    sound, which has no length of its own) stands for every frame."""
    if cond_frames is not None and cond_frames.shape[1] == 1 and t != 1:
        cond_frames = cond_frames.expand(-1, t, -1)
    if cond_frames is None or tuple(cond_frames.shape) != (b, t, dim):
        shape = None if cond_frames is None else list(cond_frames.shape)
        raise ValueError(f"this network is driven by sound: pass cond_frames [{b}, {t}, {dim}] (one feature per "
                         f"frame), got {shape}")
    return cond_frames


def with_sound_channels(x: torch.Tensor, sound: torch.Tensor) -> torch.Tensor:
    """Append per-frame sound features as constant channels: ``x [N, C, (T,) H, W]`` and
    ``sound [N, S]`` (frames) or ``[N, S, T]`` (clips) -> ``[N, C + S, (T,) H, W]`` (early fusion)."""
    while sound.dim() < x.dim():
        sound = sound.unsqueeze(-1)
    return torch.cat([x, sound.expand(*sound.shape[:2], *x.shape[2:]).to(x.dtype)], dim=1)


# GELU's tanh approximation, 0.5 x (1 + tanh(z)) with z = sqrt(2 / pi) (x + 0.044715 x^3), written as
# x * sigmoid(2 z): the same function to float rounding.
_GELU_2Z = 2 * (2 / torch.pi) ** 0.5  # 2z = _GELU_2Z * (x + _GELU_CUBIC * x^3)
_GELU_CUBIC = 0.044715


def _tanh_gelu(x: torch.Tensor) -> torch.Tensor:
    """``x * sigmoid(2 z)`` in one new buffer."""
    return (x * x).mul_(_GELU_2Z * _GELU_CUBIC).add_(_GELU_2Z).mul_(x).sigmoid_().mul_(x)


class TanhGELU(nn.Module):
    """``nn.GELU(approximate="tanh")``; without autograd (sampling) the same function, to float rounding,
    in sigmoid form.

    ATen's CPU forward kernel for this approximation is slow: on a 2-core AVX-512 CPU a (1024, 384)
    activation took about twice as long as the sigmoid form's passes (and three times the exact erf
    GELU's), the largest cost of a DiT forward after the matrix products. Holds no parameters, so
    checkpoints of ``nn.GELU(approximate="tanh")`` models load unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # training keeps ATen's kernels (the sigmoid form's backward chain did not beat them on 2 threads),
        # and so do low precision and GPUs
        if (torch.is_grad_enabled() and x.requires_grad) or x.dtype not in (torch.float32, torch.float64) \
                or x.device.type != "cpu":
            return nn.functional.gelu(x, approximate="tanh")
        return _tanh_gelu(x)
