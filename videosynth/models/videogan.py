"""VideoGAN: 3D-convolutional video GANs after Vondrick, Pirsiavash & Torralba 2016,
"Generating Videos with Scene Dynamics" (NeurIPS).

The file holds, in reading order:

* ``UpBlock`` / ``UpStack`` -- transposed convolution + (conditional) BatchNorm + ReLU,
  stacked from a 1x1(x1) noise "image" up to the output resolution;
* ``DownBlock`` -- strided convolution + norm + LeakyReLU(0.2) for the discriminator;
* ``VideoGANConfig`` and ``plan_layers`` -- how size/frames/width become layers;
* ``VideoGenerator`` -- the single-stream generator (DCGAN in 3D);
* ``TwoStreamGenerator`` -- the VGAN generator: a 3D foreground stream emitting a
  video and a sigmoid mask, a 2D background stream emitting one static image,
  composed as ``m * fg + (1 - m) * bg``;
* ``Discriminator`` -- 3D convolutions down to one logit, with an optional
  projection term (Miyato & Koyama 2018, "cGANs with Projection Discriminator")
  and optional spectral normalisation (Miyato et al. 2018);
* ``PRESETS`` -- named configurations;
* ``build_modules`` -- what a checkpoint holds: generator and discriminator, each with its conditioner.

Layout and range: videos are ``float32 (B, C, T, H, W)`` in ``[-1, 1]``; noise is
``(B, z_dim)`` standard normal; conditions are ``float32 (B, cond_dim)`` from the
shared conditioner (``videosynth.conditioning``) or ``None`` for unconditional models.

The preset ``seed-64x64x32`` is the network of the paper: z (100-d) -> 512 -> 256 ->
128 -> 64 -> 3 channels, 64x64 pixels, 32 frames.  Its first transposed
convolution has kernel (2, 4, 4), so it maps the 1x1x1 noise to 2x4x4 and four
stride-2 layers double that to 32x64x64; a naive kernel-4 first layer would
give 4x4x4 and hence 64 frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from videosynth.config import at_least, checked, choice_hint
from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, ConditionedNet, conditioner_of
from videosynth.models.layers import (
    LEAKY_RELU_SLOPE,
    SOUND_CHANNELS,
    ConditionalBatchNorm,
    batch_norm_nd,
    conv_nd,
    conv_transpose_nd,
    dcgan_init_,
    frames_for,
    layer_norm_nd,
    spectral_norm,
    with_sound_channels,
)

# Every spatial layer has kernel 4, stride 2, padding 1 (exact doubling/halving);
# the first generator layer maps 1x1 to 4x4, the last discriminator layer 4x4 to 1x1.
KERNEL = 4
STRIDE = 2
PADDING = 1
FIRST_SIZE = 4
# A layer that keeps the number of frames uses a temporal kernel of 3 with padding 1.
KEEP_TIME_KERNEL = 3
# The paper's first layer emits 2 frames (kernel (2, 4, 4)); plan_layers keeps at
# least this many frames at the bottom of the network.
MIN_FIRST_FRAMES = 2


def _choice_error(key: str, value: str, options) -> ConfigError:
    return ConfigError(f"VideoGANConfig.{key}={value!r} is not valid ({choice_hint(value, options)})")


def _check_cond(cond: torch.Tensor | None, cond_dim: int, batch: int, who: str) -> None:
    """Raise ConfigError when the condition does not match the model's ``cond_dim``."""
    if cond_dim == 0:
        if cond is not None:
            raise ConfigError(f"{who} is unconditional (cond_dim=0) but got a condition; "
                              "set model.cond_dim to the conditioner's dim or drop the condition")
        return
    if cond is None:
        raise ConfigError(f"{who} has cond_dim={cond_dim} but got no condition; "
                          "set conditioning.kind or set model.cond_dim: 0")
    if cond.shape != (batch, cond_dim):
        raise ConfigError(f"{who} expects a condition of shape ({batch}, {cond_dim}), got {tuple(cond.shape)}; "
                          "model.cond_dim must equal the conditioner's dim")


# ----------------------------------------------------------------------------- blocks


class UpBlock(nn.Module):
    """Transposed convolution -> BatchNorm (conditional when ``cond_dim > 0``) -> ReLU.

    Maps ``(B, in_ch, *spatial)`` to ``(B, out_ch, *spatial')`` for ``dims`` spatial dims.
    """

    def __init__(self, dims: int, in_ch: int, out_ch: int, kernel, stride, padding, cond_dim: int = 0):
        super().__init__()
        # No bias: the following BatchNorm removes it anyway.
        self.conv = conv_transpose_nd(dims, in_ch, out_ch, kernel, stride, padding, bias=False)
        self.norm = ConditionalBatchNorm(dims, out_ch, cond_dim) if cond_dim > 0 else batch_norm_nd(dims, out_ch)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv(x)
        x = self.norm(x, cond) if isinstance(self.norm, ConditionalBatchNorm) else self.norm(x)
        return F.relu(x)


def _up_geometry(dims: int, time_stride: int):
    """(kernel, stride, padding) of an upsampling layer; ``time_stride`` 1 keeps T (3D only)."""
    if dims == 2:
        return KERNEL, STRIDE, PADDING
    time_kernel = KERNEL if time_stride == STRIDE else KEEP_TIME_KERNEL
    return (time_kernel, KERNEL, KERNEL), (time_stride, STRIDE, STRIDE), PADDING


# Discriminator normalisations by name (spectral norm replaces them, see VideoGANConfig).
D_NORMS = {
    "batch": lambda ch: batch_norm_nd(3, ch),
    "layer": layer_norm_nd,  # the critic normalisation recommended for WGAN-GP
    "none": lambda ch: nn.Identity(),
}


class DownBlock(nn.Module):
    """Strided convolution -> optional norm -> LeakyReLU(0.2); mirror of :class:`UpBlock`."""

    def __init__(self, in_ch: int, out_ch: int, time_stride: int, norm: str):
        super().__init__()
        kernel, stride, padding = _up_geometry(3, time_stride)
        self.conv = conv_nd(3, in_ch, out_ch, kernel, stride, padding, bias=norm == "none")
        self.norm = D_NORMS[norm](out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), LEAKY_RELU_SLOPE)


# How the generator sees the condition.
G_CONDITIONING = ("concat", "batchnorm")


# ----------------------------------------------------------------------------- config


@dataclass
class VideoGANConfig:
    """Configuration of a VideoGAN generator/discriminator pair.

    The number of layers follows from ``size`` and ``frames``: ``log2(size / 4)``
    stride-2 layers; the first ``n_time`` of them also double time, with
    ``n_time = min(layers, log2(frames) - 1)``, and the first generator layer emits
    ``frames / 2**n_time`` frames (2 for the paper's 64x64x32 network).  Widths
    double from ``g_base`` (just before the output layer) towards the noise, and from
    ``d_base`` (first discriminator layer) towards the logit, capped at ``max_channels``.
    """

    z_dim: int = checked(100, at_least(1))  # noise size
    size: int = checked(64, at_least(8))  # output height = width, a power of two >= 8 (32, 64, 128, ...)
    frames: int = checked(32, at_least(2))  # output frames, a power of two >= 2 (8, 16, 32, ...)
    channels: int = checked(3, at_least(1))  # video channels
    g_base: int = checked(64, at_least(1))  # generator width of the last hidden layer
    d_base: int = checked(64, at_least(1))  # discriminator width of the first layer
    max_channels: int = checked(512, at_least(1))  # width cap for both networks
    generator: str = "single"  # "single" | "two-stream"
    # "concat": the condition is concatenated to z (default; as in conditional DCGANs);
    # "batchnorm": every generator BatchNorm becomes conditional.
    g_conditioning: str = "concat"
    d_norm: str = "batch"  # "batch" | "layer" | "none"; unused when d_spectral_norm is on
    d_spectral_norm: bool = False  # spectral norm on every D weight, and no norm layers in D
    cond_dim: int = checked(0, at_least(0))  # condition size from the shared conditioner; 0 = unconditional
    audio_dim: int = checked(0, at_least(0))  # per-frame sound features (condition.audio); 0 = no sound
    # classes of the discriminator's auxiliary classifier head (AC-GAN); 0 = no head
    num_classes: int = checked(0, at_least(0))

    def __post_init__(self):
        if self.size < 8 or self.size & (self.size - 1):
            raise ConfigError(f"VideoGANConfig.size={self.size} must be a power of two >= 8 (e.g. 32, 64, 128)")
        if self.frames < MIN_FIRST_FRAMES or self.frames & (self.frames - 1):
            raise ConfigError(f"VideoGANConfig.frames={self.frames} must be a power of two >= 2 (e.g. 8, 16, 32)")
        for key in ("z_dim", "channels", "g_base", "d_base", "max_channels"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"VideoGANConfig.{key}={getattr(self, key)} must be positive")
        if self.cond_dim < 0:
            raise ConfigError(f"VideoGANConfig.cond_dim={self.cond_dim} must be >= 0 (0 = unconditional)")
        if self.num_classes < 0:
            raise ConfigError(f"VideoGANConfig.num_classes={self.num_classes} must be >= 0 (0 = no class head)")
        if self.generator not in GENERATORS:
            raise _choice_error("generator", self.generator, GENERATORS)
        if self.g_conditioning not in G_CONDITIONING:
            raise _choice_error("g_conditioning", self.g_conditioning, G_CONDITIONING)
        if self.d_norm not in D_NORMS:
            raise _choice_error("d_norm", self.d_norm, D_NORMS)


class LayerPlan(NamedTuple):
    first_frames: int  # frames emitted by the first generator layer (= frames seen by the D logit layer)
    g_widths: list[int]  # generator hidden widths, from the noise side to the output side
    d_widths: list[int]  # discriminator widths, from the input side to the logit side
    time_strides: list[int]  # per stride-2 generator layer (input side first): 2 doubles T, 1 keeps it


def plan_layers(cfg: VideoGANConfig) -> LayerPlan:
    """Derive the layer widths and temporal strides from ``size``, ``frames`` and widths."""
    n_layers = int(math.log2(cfg.size // FIRST_SIZE))
    n_time = min(n_layers, int(math.log2(cfg.frames // MIN_FIRST_FRAMES)))
    g_widths = [min(cfg.g_base * 2 ** (n_layers - 1 - i), cfg.max_channels) for i in range(n_layers)]
    d_widths = [min(cfg.d_base * 2**i, cfg.max_channels) for i in range(n_layers)]
    time_strides = [STRIDE] * n_time + [1] * (n_layers - n_time)
    return LayerPlan(cfg.frames // 2**n_time, g_widths, d_widths, time_strides)


# ----------------------------------------------------------------------------- generators


class UpStack(nn.Module):
    """Noise ``(B, in_dim)`` -> features ``(B, g_widths[-1], T/2, H/2, W/2)`` (3D) or
    ``(B, g_widths[-1], H/2, W/2)`` (2D): all generator layers but the output one.

    With ``audio_dim > 0`` (3D only) every layer's output gets a per-frame bias from the sound:
    the per-frame features ``[B, T, audio_dim]`` averaged to the layer's frames, projected to
    its channels and added at every position of those frames.
    """

    def __init__(self, dims: int, in_dim: int, plan: LayerPlan, cond_dim: int = 0, audio_dim: int = 0):
        super().__init__()
        self.dims = dims
        first_kernel = (plan.first_frames, FIRST_SIZE, FIRST_SIZE) if dims == 3 else FIRST_SIZE
        blocks = [UpBlock(dims, in_dim, plan.g_widths[0], first_kernel, 1, 0, cond_dim)]
        for i in range(1, len(plan.g_widths)):
            geometry = _up_geometry(dims, plan.time_strides[i - 1])
            blocks.append(UpBlock(dims, plan.g_widths[i - 1], plan.g_widths[i], *geometry, cond_dim))
        self.blocks = nn.ModuleList(blocks)
        self.sound = nn.ModuleList(nn.Linear(audio_dim, w) for w in plan.g_widths) if audio_dim and dims == 3 \
            else None

    def forward(self, h: torch.Tensor, cond: torch.Tensor | None = None,
                sound: torch.Tensor | None = None) -> torch.Tensor:
        x = h.view(h.shape + (1,) * self.dims)  # (B, in_dim, 1, 1[, 1])
        for i, block in enumerate(self.blocks):
            x = block(x, cond)
            if self.sound is not None:
                at = F.adaptive_avg_pool1d(sound.transpose(1, 2), x.shape[2]).transpose(1, 2)  # (B, t, A)
                x = x + self.sound[i](at).permute(0, 2, 1)[..., None, None]  # (B, C, t, 1, 1) per-frame bias
        return x


class _GeneratorBase(ConditionedNet):
    """Noise handling shared by both generators."""

    def __init__(self, cfg: VideoGANConfig):
        super().__init__()
        self.cfg = cfg
        self.z_dim = cfg.z_dim
        self.plan = plan_layers(cfg)
        concat = cfg.cond_dim if cfg.g_conditioning == "concat" else 0
        self.in_dim = cfg.z_dim + concat
        self.bn_cond_dim = cfg.cond_dim if cfg.g_conditioning == "batchnorm" else 0
        self.takes_cond_frames = cfg.audio_dim > 0  # Conditioned hands over the sound's per-frame features

    def _sound(self, cond_frames: torch.Tensor | None, b: int) -> torch.Tensor | None:
        """The per-frame sound features ``[B, T, A]``, checked (None for a model without sound)."""
        if self.cfg.audio_dim == 0:
            return None
        return frames_for(cond_frames, b, self.cfg.frames, self.cfg.audio_dim).float()

    def sample_noise(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Standard-normal noise ``(n, z_dim)`` float32, on ``generator``'s device when one is given."""
        device = generator.device if generator is not None else device
        return torch.randn(n, self.z_dim, generator=generator, device=device)

    def _inputs(self, z: torch.Tensor, cond: torch.Tensor | None):
        """Validate and return ``(stack input (B, in_dim), condition for the norms or None)``."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        _check_cond(cond, self.cfg.cond_dim, z.shape[0], "VideoGAN generator")
        if cond is None:
            return z, None
        if self.bn_cond_dim:
            return z, cond
        return torch.cat([z, cond.to(z.dtype)], dim=1), None  # (B, z_dim + cond_dim)

    def initialize_weights(self) -> None:
        dcgan_init_(self)


class VideoGenerator(_GeneratorBase):
    """Single-stream 3D generator: ``G(z | c) -> (B, C, T, H, W)`` in ``[-1, 1]`` (Tanh output)."""

    def __init__(self, cfg: VideoGANConfig):
        super().__init__(cfg)
        self.stack = UpStack(3, self.in_dim, self.plan, self.bn_cond_dim, cfg.audio_dim)
        self.to_video = conv_transpose_nd(3, self.plan.g_widths[-1], cfg.channels,
                                          *_up_geometry(3, self.plan.time_strides[-1]))
        self.initialize_weights()

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None, return_parts: bool = False,
                cond_frames: torch.Tensor | None = None):
        """z: ``(B, z_dim)``; cond: ``(B, cond_dim)`` or None; ``cond_frames (B, T, audio_dim)``: the sound.

        Returns the video ``(B, C, T, H, W)`` in ``[-1, 1]``, or ``{"video": ...}`` when
        ``return_parts`` (the same interface as :class:`TwoStreamGenerator`).
        Raises ConfigError when ``cond`` does not match ``cond_dim``.
        """
        h, norm_cond = self._inputs(z, cond)
        sound = self._sound(cond_frames, z.shape[0])
        video = torch.tanh(self.to_video(self.stack(h, norm_cond, sound)))  # (B, C, T, H, W)
        return {"video": video} if return_parts else video


class TwoStreamGenerator(_GeneratorBase):
    """VGAN two-stream generator: a 3D foreground stream (video + sigmoid mask) and a 2D
    background stream (one static image), ``video = m * fg + (1 - m) * bg``."""

    def __init__(self, cfg: VideoGANConfig):
        super().__init__(cfg)
        width = self.plan.g_widths[-1]
        geometry = _up_geometry(3, self.plan.time_strides[-1])
        self.foreground = UpStack(3, self.in_dim, self.plan, self.bn_cond_dim, cfg.audio_dim)  # the sound moves it
        self.to_video = conv_transpose_nd(3, width, cfg.channels, *geometry)
        self.to_mask = conv_transpose_nd(3, width, 1, *geometry)
        self.background = UpStack(2, self.in_dim, self.plan, self.bn_cond_dim)
        self.to_background = conv_transpose_nd(2, width, cfg.channels, *_up_geometry(2, STRIDE))
        self.initialize_weights()

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None, return_parts: bool = False,
                cond_frames: torch.Tensor | None = None):
        """z: ``(B, z_dim)``; cond: ``(B, cond_dim)`` or None; ``cond_frames (B, T, audio_dim)``: the sound.

        Returns the video ``(B, C, T, H, W)`` in ``[-1, 1]``; with ``return_parts`` a dict
        ``{"video", "foreground" (B, C, T, H, W) in [-1, 1], "mask" (B, 1, T, H, W) in
        [0, 1], "background" (B, C, 1, H, W) in [-1, 1]}`` with
        ``video == mask * foreground + (1 - mask) * background``.
        Raises ConfigError when ``cond`` does not match ``cond_dim``.
        """
        h, norm_cond = self._inputs(z, cond)
        features = self.foreground(h, norm_cond, self._sound(cond_frames, z.shape[0]))  # (B, W, T/2, H/2, W/2)
        foreground = torch.tanh(self.to_video(features))  # (B, C, T, H, W)
        mask = torch.sigmoid(self.to_mask(features))  # (B, 1, T, H, W)
        background = torch.tanh(self.to_background(self.background(h, norm_cond)))  # (B, C, H, W)
        background = background.unsqueeze(2)  # (B, C, 1, H, W): static over time
        video = mask * foreground + (1 - mask) * background  # (B, C, T, H, W)
        if return_parts:
            return {"video": video, "foreground": foreground, "mask": mask, "background": background}
        return video


GENERATORS = {"single": VideoGenerator, "two-stream": TwoStreamGenerator}


# ----------------------------------------------------------------------------- discriminator


class Discriminator(ConditionedNet):
    """3D-convolutional discriminator ``D(x | c) -> logits (B,)`` (no sigmoid).

    Strided convolutions mirror the generator down to ``(first_frames, 4, 4)``; a
    final convolution over that whole volume gives one logit.  With ``cond_dim > 0``
    the projection term ``<phi(x), W c>`` is added, where ``phi(x)`` is the last
    feature map summed over positions. With ``num_classes > 0`` a linear head on
    ``phi(x)`` also classifies the clip (AC-GAN, Odena et al. 2017; see :meth:`judge`).
    BatchNorm is used on all but the first layer unless ``d_spectral_norm`` (then every
    weight is spectrally normalised, no norm layers).
    """

    def __init__(self, cfg: VideoGANConfig):
        super().__init__()
        self.cfg = cfg
        plan = plan_layers(cfg)
        norm = "none" if cfg.d_spectral_norm else cfg.d_norm
        strides = plan.time_strides[::-1]  # the generator's first layers double time; D halves it last
        widths = plan.d_widths
        self.takes_cond_frames = cfg.audio_dim > 0  # it judges each clip together with its sound
        self.sound = nn.Linear(cfg.audio_dim, SOUND_CHANNELS) if cfg.audio_dim > 0 else None
        in_ch = cfg.channels + (SOUND_CHANNELS if cfg.audio_dim > 0 else 0)
        blocks = [DownBlock(in_ch, widths[0], strides[0], "none")]  # no norm on the input layer
        for i in range(1, len(widths)):
            blocks.append(DownBlock(widths[i - 1], widths[i], strides[i], norm))
        self.blocks = nn.Sequential(*blocks)
        self.to_logit = conv_nd(3, widths[-1], 1, (plan.first_frames, FIRST_SIZE, FIRST_SIZE))
        self.projection = nn.Linear(cfg.cond_dim, widths[-1], bias=False) if cfg.cond_dim > 0 else None
        self.class_head = nn.Linear(widths[-1], cfg.num_classes) if cfg.num_classes > 0 else None
        self.initialize_weights()
        if cfg.d_spectral_norm:
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv3d, nn.Linear)):
                    spectral_norm(m)

    def initialize_weights(self) -> None:
        dcgan_init_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(B, C, T, H, W)`` in ``[-1, 1]`` -> ``(B, d_widths[-1], first_frames, 4, 4)``."""
        return self.blocks(x)

    def judge(self, x: torch.Tensor, cond: torch.Tensor | None = None,
              cond_frames: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: ``(B, C, T, H, W)`` in ``[-1, 1]`` (size/frames of the config); cond ``(B, cond_dim)``
        or None; ``cond_frames (B, T, audio_dim)`` for a sound-conditioned discriminator (the sound
        enters as extra input channels, frame by frame). Returns float logits ``(B,)`` and the class
        logits ``(B, num_classes)`` (None without a class head). Raises ConfigError on a condition mismatch."""
        cfg = self.cfg
        expected = (cfg.channels, cfg.frames, cfg.size, cfg.size)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"discriminator expects (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        _check_cond(cond, cfg.cond_dim, x.shape[0], "VideoGAN discriminator")
        if self.sound is not None:
            sound = frames_for(cond_frames, x.shape[0], cfg.frames, cfg.audio_dim)  # (B, T, A)
            x = with_sound_channels(x, self.sound(sound).transpose(1, 2))  # (B, C + S, T, H, W)
        h = self.features(x)  # (B, W, t0, 4, 4)
        logit = self.to_logit(h).flatten(1).squeeze(1)  # (B,)
        phi = h.sum(dim=(2, 3, 4))  # (B, W)
        if self.projection is not None:
            logit = logit + (phi * self.projection(cond.to(phi.dtype))).sum(dim=1)  # (B,)
        class_logits = self.class_head(phi) if self.class_head is not None else None  # (B, K)
        return logit, class_logits

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, with_class: bool = False,
                cond_frames: torch.Tensor | None = None):
        """The real/fake logits ``(B,)`` of :meth:`judge`; with ``with_class`` the pair :meth:`judge` returns."""
        out = self.judge(x, cond, cond_frames)
        return out if with_class else out[0]


# ----------------------------------------------------------------------------- model


def build_generator(cfg: VideoGANConfig, condition) -> Conditioned:
    """The generator a VideoGAN checkpoint holds (``generator``), with its conditioner; all inference needs."""
    return Conditioned(GENERATORS[cfg.generator](cfg), conditioner_of(condition))


def build_modules(cfg: VideoGANConfig, condition) -> dict[str, Conditioned]:
    """The networks a VideoGAN checkpoint holds: ``generator`` and ``discriminator``, each with its conditioner.

    ``generator(z, cond=)`` -> ``(B, C, T, H, W)`` in ``[-1, 1]``; ``discriminator(video, cond=)`` -> logits ``(B,)``.
    """
    generator = build_generator(cfg, condition)
    return {"generator": generator, "discriminator": Conditioned(Discriminator(cfg), conditioner_of(condition))}


PRESETS = {
    # The network of Vondrick et al. 2016: 64x64 px, 32 frames, widths 512-256-128-64.
    "seed-64x64x32": VideoGANConfig(),
    "two-stream-64x64x32": VideoGANConfig(generator="two-stream"),
    # The seed network with a spectrally normalised discriminator (hinge / WGAN losses).
    "seed-sn-64x64x32": VideoGANConfig(d_spectral_norm=True),
    # CPU-sized: 32x32 px, widths 128-64-32. `videosynth demo` uses the 8-frame one (about 5
    # steps/s at batch 16 on 2 CPU cores): coloured moving objects after ~2000 steps.
    "demo-32x32x8": VideoGANConfig(size=32, frames=8, g_base=32, d_base=32, z_dim=64),
    "demo-32x32x16": VideoGANConfig(size=32, frames=16, g_base=32, d_base=32, z_dim=64),
    "demo-two-stream-32x32x16": VideoGANConfig(size=32, frames=16, g_base=32, d_base=32, z_dim=64,
                                               generator="two-stream"),
    # Tests: 16x16 px, 4 frames, a few channels.
    "tiny": VideoGANConfig(size=16, frames=4, g_base=4, d_base=4, z_dim=8),
    "tiny-two-stream": VideoGANConfig(size=16, frames=4, g_base=4, d_base=4, z_dim=8, generator="two-stream"),
}
