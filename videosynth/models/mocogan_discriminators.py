"""MoCoGAN's two discriminators: frames (2D convs) and clips (3D convs).

Tulyakov et al. 2018 (see :mod:`videosynth.models.mocogan`, which builds them beside the
generator). The image discriminator judges single frames picked from each clip
(:func:`~videosynth.models.mocogan.sample_frames`), the video discriminator whole clips; both are
projection discriminators (Miyato & Koyama 2018) when ``cond_dim > 0``, both may end with the
minibatch standard deviation (``batch_std``), and with a sound condition both see the sound of the
moments they judge as extra input channels.

Layouts: frames ``float32 [N, C, H, W]``, clips ``float32 [B, C, T, H, W]``, both in ``[-1, 1]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from videosynth.models.conditioned import ConditionedNet
from videosynth.models.layers import (LEAKY_RELU_SLOPE, SOUND_CHANNELS, dcgan_init_, frames_for, spectral_norm,
                                      with_batch_std, with_sound_channels)

BASE_SIZE = 4  # spatial size of the first generator feature map / last discriminator map
KERNEL = 4  # every (transposed) conv uses kernel 4, stride 2, padding 1: exact x2 / /2


def initialize_weights(module: nn.Module, use_spectral_norm: bool = False) -> None:
    """DCGAN initialisation of ``module``; then, if asked, spectral norm on every conv / linear layer.

    Spectral norm comes after the initialisation so its power-iteration vectors match the weights.
    """
    dcgan_init_(module)
    if use_spectral_norm:
        for m in list(module.modules()):
            if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                spectral_norm(m)


def num_doublings(size: int) -> int:
    """Number of x2 steps between the 4x4 base map and ``size`` (size must be 4 * 2^k)."""
    return int(round(math.log2(size / BASE_SIZE)))


def picked_features(cond_frames: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per-frame condition features ``[B, T, D]`` of the frames ``index [B, k]`` -> ``[B*k, D]`` (clip-major)."""
    b, k = index.shape
    picked = torch.gather(cond_frames, 1, index[:, :, None].expand(b, k, cond_frames.shape[2]))  # (B, k, D)
    return picked.reshape(b * k, -1)


class ImageDiscriminator(ConditionedNet):
    """DCGAN frame discriminator ``D_I(x | c)`` on single frames ``[N, C, H, W]`` -> (logits ``[N]``, class logits).

    Kernel-4 stride-2 convs down to 4x4 (LeakyReLU 0.2; BatchNorm2d after all but
    the first unless spectral norm is on), then a 4x4 conv to one logit. With
    ``cond_dim > 0`` a projection term ``<sum_hw phi(x), W c>`` is added; with
    ``num_classes > 0`` a linear head classifies each frame (AC-GAN: what a class looks
    like is visible in a single frame, so the frame discriminator is where it is learned).
    """

    def __init__(self, size: int, width: int, channels: int, cond_dim: int = 0, use_spectral_norm: bool = False,
                 audio_dim: int = 0, num_classes: int = 0, batch_std: bool = False):
        super().__init__()
        self.takes_cond_frames = audio_dim > 0  # Conditioned hands over the sound's per-frame features
        self.sound = nn.Linear(audio_dim, SOUND_CHANNELS) if audio_dim > 0 else None
        layers: list[nn.Module] = []
        in_ch, ch = channels + (SOUND_CHANNELS if audio_dim > 0 else 0), width
        for i in range(num_doublings(size)):
            layers.append(nn.Conv2d(in_ch, ch, KERNEL, 2, 1, bias=use_spectral_norm))
            if i > 0 and not use_spectral_norm:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(LEAKY_RELU_SLOPE, inplace=True))
            in_ch, ch = ch, ch * 2
        self.features = nn.Sequential(*layers)
        self.feature_dim = in_ch
        self.batch_std = batch_std
        self.head = nn.Conv2d(in_ch + int(batch_std), 1, BASE_SIZE, 1, 0)
        self.project = nn.Linear(cond_dim, in_ch, bias=False) if cond_dim > 0 else None
        self.class_head = nn.Linear(in_ch, num_classes) if num_classes > 0 else None
        initialize_weights(self, use_spectral_norm)

    def forward(self, frames: torch.Tensor, cond: torch.Tensor | None = None, cond_frames: torch.Tensor | None = None,
                frame_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``frames [N, C, H, W]`` in ``[-1, 1]``, ``cond [N, D] | None`` -> (logits ``[N]``, ``[N, K] | None``).

        ``cond`` may also hold one row per clip ``[B, D]`` for ``N = B * k`` frames taken ``k`` per
        clip (frame ``i * k + j`` belongs to clip ``i``, as :func:`sample_frames` lays them out).
        A sound-conditioned discriminator also takes the clips' per-frame sound features
        ``cond_frames [B, T, A]`` and the frames picked, ``frame_index [B, k]``: each frame is
        judged together with the sound under it.
        """
        if cond is not None and cond.shape[0] != frames.shape[0]:
            cond = cond.repeat_interleave(frames.shape[0] // cond.shape[0], dim=0)  # (B*k, D)
        if self.sound is not None:
            if cond_frames is None or frame_index is None:
                raise ValueError("this image discriminator judges frames with their sound: pass cond_frames "
                                 "[B, T, A] and frame_index [B, k]")
            b, dim = frame_index.shape[0], self.sound.in_features
            t = cond_frames.shape[1] if cond_frames.shape[1] > 1 else int(frame_index.max()) + 1
            sound = picked_features(frames_for(cond_frames, b, t, dim), frame_index)  # (B*k, A)
            frames = with_sound_channels(frames, self.sound(sound))
        h = self.features(frames)  # (N, F, 4, 4)
        logit = self.head(with_batch_std(h) if self.batch_std else h).flatten(1).mean(1)  # (N,)
        pooled = h.sum(dim=(2, 3))  # (N, F)
        if self.project is not None and cond is not None:
            logit = logit + (pooled * self.project(cond)).sum(1)  # (N,)
        classes = self.class_head(pooled) if self.class_head is not None else None  # (N, K)
        return logit, classes


class VideoDiscriminator(ConditionedNet):
    """3D-conv clip discriminator ``D_V(x | c)``: ``[B, C, T, H, W]`` -> (logits ``[B]``, category logits).

    Kernel-4 3D convs halve space at every layer and time while it lasts (the
    temporal stride drops to 1 once the training length is used up), so any clip
    length is accepted: the logit map is averaged over its remaining time axis.
    With ``cond_dim > 0`` a projection term is added; with ``num_actions > 0`` a
    linear category head predicts the action code from the pooled features.
    """

    def __init__(
        self,
        size: int,
        frames: int,
        width: int,
        channels: int,
        cond_dim: int = 0,
        num_actions: int = 0,
        use_spectral_norm: bool = False,
        audio_dim: int = 0,
        batch_std: bool = False,
    ):
        super().__init__()
        self.takes_cond_frames = audio_dim > 0
        self.sound = nn.Linear(audio_dim, SOUND_CHANNELS) if audio_dim > 0 else None
        layers: list[nn.Module] = []
        in_ch, ch = channels + (SOUND_CHANNELS if audio_dim > 0 else 0), width
        time_left = frames
        for i in range(num_doublings(size)):
            t_stride = 2 if time_left >= 2 else 1
            t_kernel, t_pad = (KERNEL, 1) if t_stride == 2 else (3, 1)  # kernel 3, pad 1 keeps T at stride 1
            time_left //= t_stride
            layers.append(
                nn.Conv3d(in_ch, ch, (t_kernel, KERNEL, KERNEL), (t_stride, 2, 2), (t_pad, 1, 1), bias=use_spectral_norm)
            )
            if i > 0 and not use_spectral_norm:
                layers.append(nn.BatchNorm3d(ch))
            layers.append(nn.LeakyReLU(LEAKY_RELU_SLOPE, inplace=True))
            in_ch, ch = ch, ch * 2
        self.features = nn.Sequential(*layers)
        self.feature_dim = in_ch
        self.batch_std = batch_std
        self.head = nn.Conv3d(in_ch + int(batch_std), 1, (1, BASE_SIZE, BASE_SIZE))
        self.project = nn.Linear(cond_dim, in_ch, bias=False) if cond_dim > 0 else None
        self.category = nn.Linear(in_ch, num_actions) if num_actions > 0 else None
        initialize_weights(self, use_spectral_norm)

    def forward(self, video: torch.Tensor, cond: torch.Tensor | None = None,
                cond_frames: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``video [B, C, T, H, W]`` in ``[-1, 1]``, ``cond [B, D] | None`` -> (``[B]``, ``[B, A] | None``).

        A sound-conditioned discriminator takes ``cond_frames [B, T, S]`` too: the sound enters
        as extra input channels, frame by frame, so the first convolutions see motion and sound
        of the same moments.
        """
        if self.sound is not None:
            sound = frames_for(cond_frames, video.shape[0], video.shape[2], self.sound.in_features)  # (B, T, A)
            video = with_sound_channels(video, self.sound(sound).transpose(1, 2))  # (B, C + S, T, H, W)
        h = self.features(video)  # (B, F, t, 4, 4)
        logit = self.head(with_batch_std(h) if self.batch_std else h).flatten(1).mean(1)  # (B,)
        pooled = h.mean(dim=2).sum(dim=(2, 3))  # (B, F): mean over time, sum over space
        if self.project is not None and cond is not None:
            logit = logit + (pooled * self.project(cond)).sum(1)  # (B,)
        category = self.category(pooled) if self.category is not None else None  # (B, A)
        return logit, category
