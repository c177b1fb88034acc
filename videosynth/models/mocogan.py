"""MoCoGAN: a video generator that keeps *content* and *motion* apart.

Tulyakov, Liu, Yang, Kautz. "MoCoGAN: Decomposing Motion and Content for Video
Generation", CVPR 2018 (arXiv:1707.04993).

A video is a path in the latent space of an image generator:

* the content code ``z_C`` is drawn once per video (who / what is in the scene);
* the motion codes ``z_M(1..T)`` come from a recurrent cell (GRU by default,
  LSTM as an option) driven by fresh noise ``eps(t)`` at every step, starting
  from a zero state, so the cell can run for any number of frames;
* an optional categorical action code ``a`` (one-hot, InfoGAN-style) and the
  condition embedding ``c`` from the shared conditioner are appended;
* a 2D DCGAN-style image generator renders every frame from
  ``[z_C, z_M(t), a, c]`` (transposed convs, BatchNorm2d, ReLU, Tanh);
* optionally (``motion_warp``) each rendered frame is then shifted by a translation read from
  ``z_M(t)`` alone, and with ``render_motion: false`` the renderer no longer sees ``z_M(t)``: the
  object's path is then the motion code's by construction, its look the content code's -- the
  split the paper asks of its codes, built in for footage whose motion is things moving across
  the frame (not for zooms, turns or deformation, which a translation cannot make).

Two discriminators judge the result: an image discriminator (2D convs) on
randomly chosen single frames and a video discriminator (3D convs) on clips.
Both become projection discriminators (Miyato & Koyama 2018) when
``cond_dim > 0``; the video discriminator can also carry a category head that
predicts the action code (cross-entropy, the InfoGAN mutual-information term).

This file holds the generator's modules (primitives, the motion RNN, the image generator, the
video generator), the config dataclass, ``PRESETS`` and :func:`build_modules` (what a checkpoint
holds, each network with its conditioner); the discriminators live in
:mod:`videosynth.models.mocogan_discriminators`, training in ``videosynth/train/mocogan.py``.

Layouts: videos are ``float32 [B, C, T, H, W]`` in ``[-1, 1]``; single frames
``float32 [N, C, H, W]`` in ``[-1, 1]``; codes are ``float32 [B, D]`` (per video)
or ``[B, T, D]`` (per frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from videosynth.config import at_least, checked
from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, ConditionedNet, conditioner_of
from videosynth.models.layers import frames_for
from videosynth.models.mocogan_discriminators import (BASE_SIZE, KERNEL, ImageDiscriminator, VideoDiscriminator,
                                                      initialize_weights, num_doublings)

WARP_SPEED = 0.25  # half-frames a frame: warp_velocity's top speed (4 px a frame at 32 px; the built-in data's ~1)


# ----------------------------------------------------------------------------- primitives


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``device``.

    Drawing on the generator's own device keeps a seeded CPU generator valid (and
    reproducible) when the model lives on a GPU.
    """
    src = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=src).to(device)


def _randint(high: int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    src = generator.device if generator is not None else device
    return torch.randint(high, shape, generator=generator, device=src).to(device)


def sample_frames(video: torch.Tensor, k: int = 1, generator: torch.Generator | None = None,
                  index: torch.Tensor | None = None) -> torch.Tensor:
    """Pick ``k`` random frames (with replacement) from every video, for the image discriminator.

    Args:
        video: ``float32 [B, C, T, H, W]`` in ``[-1, 1]``.
        k: frames per video.
        generator: optional ``torch.Generator`` for reproducible choices.
        index: the frames to take, ``int64 [B, k]`` (default: drawn; see :func:`frame_picks`).

    Returns:
        ``float32 [B * k, C, H, W]``; rows ``i * k .. i * k + k - 1`` come from video ``i``
        (so a per-video condition ``[B, D]`` matches via ``cond.repeat_interleave(k, 0)``).
    """
    b, c, t, h, w = video.shape
    if index is None:
        index = frame_picks(b, t, k, generator, video.device)  # (B, k)
    frames = video.transpose(1, 2)  # (B, T, C, H, W)
    index = index[:, :, None, None, None].expand(b, k, c, h, w)  # (B, k, C, H, W)
    picked = torch.gather(frames, 1, index)  # (B, k, C, H, W)
    return picked.reshape(b * k, c, h, w)  # (B*k, C, H, W)


def frame_picks(b: int, t: int, k: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """``k`` random frame indices per clip, ``int64 [B, k]`` in ``[0, T)``, for :func:`sample_frames`."""
    return _randint(t, (b, k), generator, device)


# ----------------------------------------------------------------------------- blocks


class MotionRNN(nn.Module):
    """Recurrent motion generator: noise ``eps(1..T)`` -> motion codes ``z_M(1..T)``.

    The hidden state starts at zero, so the motion path is a function of the noise
    (and the optional extra input) alone; with every weight of the cell set to zero
    the motion codes are exactly zero.
    """

    CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}

    def __init__(self, kind: str, noise_dim: int, extra_dim: int, motion_dim: int):
        super().__init__()
        self.kind = kind
        self.motion_dim = motion_dim
        self.cell = self.CELLS[kind](noise_dim + extra_dim, motion_dim)

    def forward(self, noise: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """``noise [B, T, E]`` (+ ``extra [B, X]`` fed at every step) -> ``z_M [B, T, motion_dim]``."""
        b, t, _ = noise.shape
        h = noise.new_zeros(b, self.motion_dim)
        c = noise.new_zeros(b, self.motion_dim)  # LSTM cell state (unused by the GRU)
        codes = []
        for step in range(t):
            x = noise[:, step]  # (B, E)
            if extra is not None:
                x = torch.cat([x, extra], dim=1)  # (B, E + X)
            if self.kind == "lstm":
                h, c = self.cell(x, (h, c))
            else:
                h = self.cell(x, h)
            codes.append(h)
        return torch.stack(codes, dim=1)  # (B, T, motion_dim)


class ImageGenerator(nn.Module):
    """DCGAN image generator: a latent vector ``[N, D]`` -> frames ``[N, C, H, W]`` in ``[-1, 1]``.

    1x1 -> 4x4 by a kernel-4 transposed conv, then one x2 transposed conv per
    doubling, halving the width each time; BatchNorm2d + ReLU between, Tanh out.
    """

    def __init__(self, in_dim: int, size: int, width: int, channels: int):
        super().__init__()
        doublings = num_doublings(size)
        ch = width * 2 ** (doublings - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, ch, BASE_SIZE, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(inplace=True),
        ]
        for _ in range(doublings - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, KERNEL, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, KERNEL, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])  # (N, D, 1, 1) -> (N, C, H, W)


# ----------------------------------------------------------------------------- config


@dataclass
class MoCoGANConfig:
    """Sizes of a MoCoGAN. Defaults follow the paper (z_C 50, z_M 10, width 64)."""

    size: int = checked(64, at_least(8))  # frame height = width in pixels; 4 * 2^k, k >= 1
    frames: int = checked(16, at_least(1))  # training clip length (the generator can run longer)
    channels: int = checked(3, at_least(1))
    content_dim: int = checked(50, at_least(1))  # z_C, drawn once per video
    motion_dim: int = checked(10, at_least(1))  # z_M(t), the recurrent cell's state
    motion_noise_dim: int = checked(10, at_least(1))  # eps(t), the recurrent cell's per-step input
    rnn: str = "gru"  # "gru" | "lstm"
    num_actions: int = checked(0, at_least(0))  # categorical action code (one-hot); 0 = none
    num_classes: int = checked(0, at_least(0))  # classes of D_I's auxiliary classifier (AC-GAN, loss.aux_class_weight)
    motion_conditioned: bool = False  # also feed [a, c] to the recurrent cell (the paper feeds them to the renderer only)
    cond_dim: int = checked(0, at_least(0))  # condition embedding size from the shared conditioner; 0 = unconditional
    audio_dim: int = checked(0, at_least(0))  # per-frame sound features (condition.audio); 0 = no sound
    g_width: int = checked(64, at_least(1))  # channels of the last generator layer; doubles towards the 4x4 map
    d_image_width: int = checked(64, at_least(1))  # channels of the first image-discriminator layer
    d_video_width: int = checked(64, at_least(1))  # channels of the first video-discriminator layer
    d_category_head: bool = True  # InfoGAN-style action head on D_V (used when num_actions > 0)
    d_spectral_norm: bool = False  # spectral norm in both discriminators (then no BatchNorm there)
    d_batch_std: bool = False  # both discriminators see the batch's feature spread (against mode collapse)
    motion_warp: bool = False  # shift every rendered frame by a translation read from z_M(t) alone
    render_motion: bool = True  # the renderer also sees z_M(t); false (with motion_warp): looks from content only
    # with motion_warp: z_M(t) is each frame's velocity and the shift their running sum from the first
    # frame, so a steady motion code moves the object at a steady speed (false: z_M(t) is the shift itself)
    warp_velocity: bool = False

    def __post_init__(self) -> None:
        doublings = math.log2(self.size / BASE_SIZE) if self.size > 0 else -1
        if doublings < 1 or not float(doublings).is_integer():
            raise ConfigError(f"model.size must be 4 * 2^k (8, 16, 32, 64, 128, ...), got {self.size}")
        if self.rnn not in MotionRNN.CELLS:
            raise ConfigError(f"model.rnn must be one of {sorted(MotionRNN.CELLS)}, got '{self.rnn}'")
        for name in ("frames", "channels", "content_dim", "motion_dim", "motion_noise_dim", "g_width",
                     "d_image_width", "d_video_width"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_actions", "num_classes", "cond_dim", "audio_dim"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name} must be >= 0, got {getattr(self, name)}")
        if not self.render_motion and not self.motion_warp:
            raise ConfigError("model.render_motion: false leaves the motion code nothing to move; "
                              "set model.motion_warp: true with it, or leave render_motion out")
        if self.warp_velocity and not self.motion_warp:
            raise ConfigError("model.warp_velocity reads the warp's shift as a velocity: set model.motion_warp: true "
                              "with it, or leave warp_velocity out")


PRESETS = {
    # the paper's networks at 64x64, 16 frames
    "paper-64x64x16": MoCoGANConfig(size=64, frames=16),
    # the same design at 32x32 with half widths: one fewer up/down-sampling layer
    "paper-32x32x16": MoCoGANConfig(size=32, frames=16, g_width=32, d_image_width=32, d_video_width=32),
    # small enough for a CPU demo on the built-in data
    "demo-32x32x16": MoCoGANConfig(
        size=32, frames=16, content_dim=32, motion_dim=8, motion_noise_dim=8,
        g_width=16, d_image_width=16, d_video_width=16,
    ),
    # the demo's 8-frame clips (the family table): a 32-wide generator, 16-wide discriminators
    "demo-32x32x8": MoCoGANConfig(
        size=32, frames=8, content_dim=32, motion_dim=8, motion_noise_dim=8,
        g_width=32, d_image_width=16, d_video_width=16,
    ),
    # unit tests: milliseconds per forward
    "tiny": MoCoGANConfig(
        size=16, frames=4, content_dim=8, motion_dim=4, motion_noise_dim=4,
        g_width=8, d_image_width=8, d_video_width=8,
    ),
}


# ----------------------------------------------------------------------------- models


class MoCoGANGenerator(ConditionedNet):
    """``G(z_C, eps(1..T), a, c)`` -> video ``[B, C, T, H, W]`` in ``[-1, 1]``.

    Sampling controls: fix ``z_content`` and vary ``z_motion_noise`` (same
    appearance, different motion), fix the noise and vary the content, ask for
    any ``num_frames`` (the recurrent cell runs past the training length), or
    interpolate content codes and call :meth:`render` directly.
    """

    def __init__(self, cfg: MoCoGANConfig):
        super().__init__()
        self.cfg = cfg
        self.takes_cond_frames = cfg.audio_dim > 0  # the sound's per-frame features drive the motion
        extra = cfg.num_actions + cfg.cond_dim if cfg.motion_conditioned else 0
        self.motion = MotionRNN(cfg.rnn, cfg.motion_noise_dim + cfg.audio_dim, extra, cfg.motion_dim)
        motion_in = cfg.motion_dim if cfg.render_motion else 0
        in_dim = cfg.content_dim + motion_in + cfg.num_actions + cfg.cond_dim + cfg.audio_dim
        self.image = ImageGenerator(in_dim, cfg.size, cfg.g_width, cfg.channels)
        initialize_weights(self.image)
        # motion_warp: z_M(t) -> the frame's (x, y) shift; zero at the start, so training begins unshifted
        self.shift = nn.Linear(cfg.motion_dim, 2) if cfg.motion_warp else None
        if self.shift is not None:
            nn.init.zeros_(self.shift.weight)
            nn.init.zeros_(self.shift.bias)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def sample_content(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Content codes ``z_C ~ N(0, I)``: ``float32 [n, content_dim]``."""
        return _randn((n, self.cfg.content_dim), generator, self.device)

    def sample_motion_noise(self, n: int, num_frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-step noise ``eps(t) ~ N(0, I)`` driving the recurrent cell: ``float32 [n, T, motion_noise_dim]``."""
        return _randn((n, num_frames, self.cfg.motion_noise_dim), generator, self.device)

    def sample_actions(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Uniform action categories ``int64 [n]`` in ``[0, num_actions)``, or None without an action code."""
        if self.cfg.num_actions == 0:
            return None
        return _randint(self.cfg.num_actions, (n,), generator, self.device)

    def _extras(self, b: int, action: torch.Tensor | None, cond: torch.Tensor | None) -> torch.Tensor | None:
        """Per-video ``[a one-hot, c]`` -> ``[B, num_actions + cond_dim]`` (None when both are absent)."""
        parts = []
        if self.cfg.num_actions > 0:
            if action is None:
                raise ValueError("this generator has an action code (num_actions > 0): pass action [B]")
            parts.append(F.one_hot(action.long(), self.cfg.num_actions).float())  # (B, A)
        if self.cfg.cond_dim > 0:
            if cond is None:
                raise ValueError(f"this generator is conditional (cond_dim={self.cfg.cond_dim}): pass cond [B, D]")
            if cond.shape != (b, self.cfg.cond_dim):
                raise ValueError(f"cond must be [{b}, {self.cfg.cond_dim}], got {list(cond.shape)}")
            parts.append(cond.float())  # (B, D)
        return torch.cat(parts, dim=1) if parts else None  # (B, A + D)

    def _sound(self, cond_frames: torch.Tensor | None, b: int, t: int) -> torch.Tensor | None:
        """The per-frame sound features ``[B, T, A]``, checked (None for a model without sound)."""
        if self.cfg.audio_dim == 0:
            return None
        return frames_for(cond_frames, b, t, self.cfg.audio_dim).float()

    def motion_codes(
        self, noise: torch.Tensor, cond: torch.Tensor | None = None, action: torch.Tensor | None = None,
        cond_frames: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Motion noise ``[B, T, E]`` (+ sound features ``[B, T, A]``, step by step) -> ``z_M [B, T, motion_dim]``."""
        extra = self._extras(noise.shape[0], action, cond) if self.cfg.motion_conditioned else None
        sound = self._sound(cond_frames, noise.shape[0], noise.shape[1])
        if sound is not None:
            noise = torch.cat([noise, sound], dim=2)  # (B, T, E + A)
        return self.motion(noise, extra)

    def render(
        self,
        z_content: torch.Tensor,
        z_motion: torch.Tensor,
        cond: torch.Tensor | None = None,
        action: torch.Tensor | None = None,
        cond_frames: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Render every frame from ``[z_C, z_M(t), a, c, s(t)]`` (``s(t)``: the sound's frame-t feature).

        Args:
            z_content: ``[B, content_dim]``.
            z_motion: motion codes ``[B, T, motion_dim]`` (from :meth:`motion_codes`).
            cond: ``[B, cond_dim]`` when ``cond_dim > 0``, else ignored.
            action: ``int64 [B]`` when ``num_actions > 0``, else ignored.

        Returns:
            ``float32 [B, C, T, H, W]`` in ``[-1, 1]``.

        Raises:
            ValueError: a required ``cond`` / ``action`` is missing or mis-shaped.
        """
        b, t, _ = z_motion.shape
        parts = [z_content[:, None].expand(b, t, -1)]  # (B, T, Dc)
        if self.cfg.render_motion:
            parts.append(z_motion)  # (B, T, Dm)
        extra = self._extras(b, action, cond)
        if extra is not None:
            parts.append(extra[:, None].expand(b, t, -1))  # (B, T, A + D)
        sound = self._sound(cond_frames, b, t)
        if sound is not None:
            parts.append(sound)  # (B, T, S)
        z = torch.cat(parts, dim=2).reshape(b * t, -1)  # (B*T, Dc + Dm + A + D + S)
        frames = self.image(z)  # (B*T, C, H, W)
        if self.shift is not None:
            frames = self.translate(frames, self.shifts(z_motion).reshape(b * t, 2))
        frames = frames.reshape(b, t, *frames.shape[1:])  # (B, T, C, H, W)
        return frames.transpose(1, 2)  # (B, C, T, H, W)

    def shifts(self, z_motion: torch.Tensor) -> torch.Tensor:
        """``motion_warp``'s shift of each frame: ``z_M [..., T, motion_dim]`` -> ``[..., T, 2]`` (x, y), in
        half-frames. Read as positions, ``tanh`` of a linear map (``[-1, 1]``: at most half the frame each
        way, so the shape can reach either edge from the middle); with ``warp_velocity``, as velocities of
        at most :data:`WARP_SPEED` half-frames a frame, summed from zero at the first frame."""
        step = torch.tanh(self.shift(z_motion))
        if not self.cfg.warp_velocity:
            return step
        velocity = WARP_SPEED * step  # (..., T, 2)
        return velocity.cumsum(dim=-2) - velocity[..., :1, :]  # frame 0 unshifted, then each velocity added

    def translate(self, frames: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """Move each frame ``[N, C, H, W]`` by its shift ``[N, 2]`` (:meth:`shifts`; bilinear, so the shift
        is learned through the image's own gradient; edges repeat where the frame uncovers)."""
        n = frames.shape[0]
        theta = frames.new_zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, :, 2] = -shifts  # sampling at (p - d) moves the content by +d
        grid = F.affine_grid(theta, list(frames.shape), align_corners=False)  # (N, H, W, 2)
        return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def forward(
        self,
        n: int,
        num_frames: int | None = None,
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        z_content: torch.Tensor | None = None,
        z_motion_noise: torch.Tensor | None = None,
        action: torch.Tensor | None = None,
        cond_frames: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        """Sample ``n`` videos of ``num_frames`` frames (default: the training length, or the sound's).

        A sound-driven generator takes ``cond_frames [n, T, A]``, one sound feature per frame.

        Codes not given are drawn from ``generator`` in a fixed order (content,
        motion noise, action), so one seed gives one batch.

        Returns:
            ``(video, codes)``: video ``float32 [n, C, T, H, W]`` in ``[-1, 1]``; codes is
            ``{"content": [n, Dc], "motion_noise": [n, T, E], "motion": [n, T, Dm],
            "action": int64 [n] | None}``.

        Raises:
            ValueError: given codes disagree with ``n`` / ``num_frames``, or a required
            ``cond`` is missing.
        """
        if z_motion_noise is not None:
            if num_frames is not None and z_motion_noise.shape[1] != num_frames:
                raise ValueError(f"z_motion_noise has {z_motion_noise.shape[1]} steps, num_frames={num_frames}")
            num_frames = z_motion_noise.shape[1]
        if cond_frames is not None and num_frames is None and cond_frames.shape[1] > 1:
            num_frames = cond_frames.shape[1]
        num_frames = num_frames or self.cfg.frames
        if z_content is None:
            z_content = self.sample_content(n, generator)
        if z_motion_noise is None:
            z_motion_noise = self.sample_motion_noise(n, num_frames, generator)
        if action is None:
            action = self.sample_actions(n, generator)
        if z_content.shape[0] != n or z_motion_noise.shape[0] != n:
            raise ValueError(f"codes hold {z_content.shape[0]} / {z_motion_noise.shape[0]} videos, n={n}")
        z_motion = self.motion_codes(z_motion_noise, cond, action, cond_frames)  # (n, T, Dm)
        video = self.render(z_content, z_motion, cond, action, cond_frames)  # (n, C, T, H, W)
        codes = {"content": z_content, "motion_noise": z_motion_noise, "motion": z_motion, "action": action}
        return video, codes


def build_generator(cfg: MoCoGANConfig, condition) -> Conditioned:
    """The generator a MoCoGAN checkpoint holds (``generator``), with its conditioner; all inference needs."""
    return Conditioned(MoCoGANGenerator(cfg), conditioner_of(condition))


def build_modules(cfg: MoCoGANConfig, condition) -> dict[str, Conditioned]:
    """The three networks a MoCoGAN checkpoint holds, each with its conditioner: ``generator``
    (:class:`MoCoGANGenerator`), ``image_discriminator`` (:class:`ImageDiscriminator` on frames) and
    ``video_discriminator`` (:class:`VideoDiscriminator` on clips, with the action head where the
    config asks for one); both discriminators hear the sound when ``cfg.audio_dim`` is set."""
    generator = build_generator(cfg, condition)
    image_d = ImageDiscriminator(cfg.size, cfg.d_image_width, cfg.channels, cfg.cond_dim, cfg.d_spectral_norm,
                                 cfg.audio_dim, cfg.num_classes, cfg.d_batch_std)
    actions = cfg.num_actions if cfg.d_category_head else 0
    video_d = VideoDiscriminator(cfg.size, cfg.frames, cfg.d_video_width, cfg.channels, cfg.cond_dim, actions,
                                 cfg.d_spectral_norm, cfg.audio_dim, cfg.d_batch_std)
    return {"generator": generator, "image_discriminator": Conditioned(image_d, conditioner_of(condition)),
            "video_discriminator": Conditioned(video_d, conditioner_of(condition))}
