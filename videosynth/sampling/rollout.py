"""What every sampler of a latent-stage prior shares: the batch's condition, observed frames, and
the sliding-window rollout to more latent frames than the prior was trained on.

Layouts: token grids ``int64 [B, t, h, w]``; videos ``float32 [B, C, T, H, W]`` in ``[-1, 1]``;
sound ``float32 [B, S]`` mono at the run's rate; per-frame sound features ``[B, T, A]``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from videosynth.errors import ConfigError
from videosynth.models.conditioned import null_inputs


class TokenCondition(NamedTuple):
    """One draw of a batch's condition for a token sampler, and its null for classifier-free guidance.

    pooled: ``[B, D]`` or None (an unconditional prior); frames: ``[B, T, A]`` per-video-frame sound
    features or None; ``null_*``: the same for the null condition (None without guidance).
    """

    pooled: torch.Tensor | None
    frames: torch.Tensor | None = None
    null_pooled: torch.Tensor | None = None
    null_frames: torch.Tensor | None = None

    def window(self, first: int, length: int, frames_per_latent: int) -> "TokenCondition":
        """The condition of latent frames ``first .. first + length``: the sound under them only."""
        def part(frames):
            if frames is None or frames.shape[1] == 1:  # no sound, or the null sound of every frame
                return frames
            return frames[:, first * frames_per_latent:(first + length) * frames_per_latent]
        return self._replace(frames=part(self.frames), null_frames=part(self.null_frames))


@torch.inference_mode()
def encode_condition(conditioner, n: int, labels: torch.Tensor | None, captions: list[str] | None,
                     audio: torch.Tensor | None, guided: bool, device: torch.device,
                     frames: int | None = None) -> TokenCondition | None:
    """The :class:`TokenCondition` of ``n`` clips (None for a prior without a conditioner).

    ``labels`` int64 ``[n]`` (-1 = none) and ``captions`` (``""`` = none) default to the null
    condition; ``audio`` ``float32 [n, S]``; ``guided`` also embeds the null condition;
    ``frames`` (the clip length) is checked against the sound's features.

    Raises:
        ConfigError: guidance without a conditioner; sound that covers another number of frames.
    """
    if conditioner is None:
        if guided:
            raise ConfigError("guidance != 1 needs a conditional model (condition.kind other than 'none', or sound)")
        if audio is not None:
            raise ConfigError("audio was given but this model was trained without condition.audio")
        return None
    labels, captions = null_inputs(n, labels, captions)
    was_training = conditioner.training
    conditioner.eval()
    try:
        c = conditioner.encode(labels.to(device), captions, audio=audio)
        null = conditioner.encode(labels.to(device), captions, audio=audio, force_null=True) if guided else None
    finally:
        conditioner.train(was_training)
    if c.frames is not None and frames is not None and c.frames.shape[1] not in (1, frames):
        raise ConfigError(f"the sound covers {c.frames.shape[1]} frames, the clip {frames}")
    return TokenCondition(c.pooled, c.frames, None if null is None else null.pooled,
                          None if null is None else null.frames)


def latent_frames(frames: int | None, time_downsample: int, default_t: int) -> int:
    """Latent frames of a clip of ``frames`` video frames (default: ``default_t`` latent frames).

    Raises:
        ConfigError: ``frames`` not a multiple of the tokenizer's time downsampling.
    """
    if frames is None:
        return default_t
    if frames % time_downsample:
        raise ConfigError(f"frames={frames} is not a multiple of the tokenizer's time downsampling {time_downsample}")
    return frames // time_downsample


def check_prime_video(prime_video: torch.Tensor, n: int, frames: int, time_downsample: int) -> None:
    """Observed frames must be ``[n, C, T0, H, W]`` with ``T0 <= frames`` a multiple of the time downsampling.

    Raises:
        ConfigError: naming the shape given and the one expected.
    """
    if prime_video.dim() != 5 or prime_video.shape[0] != n or prime_video.shape[2] % time_downsample:
        raise ConfigError(f"prime_video must be [{n}, C, T0, H, W] with T0 a multiple of {time_downsample}, "
                          f"got {list(prime_video.shape)}")
    if prime_video.shape[2] > frames:
        raise ConfigError(f"prime_video has {prime_video.shape[2]} frames, more than the {frames} requested")


def windowed(window: Callable[[int, torch.Tensor | None, int], torch.Tensor], total_t: int, t: int,
             context_t: int | None, prime: torch.Tensor | None = None, dim: int = 1) -> torch.Tensor:
    """Sliding-window generation of ``total_t`` latent frames along dimension ``dim``.

    ``window(length, prime, first)`` generates ``length <= t`` latent frames whose first ones are
    ``prime`` (or none) and which start at latent frame ``first`` of the clip (for the sound under
    them). The first window continues ``prime`` (observed frames, kept as given); each later one
    is primed with the last ``context_t`` frames made so far (default ``t // 2``) and adds
    ``t - context_t`` new ones. An observation longer than a window is kept whole and continued.

    Raises:
        ConfigError: ``context_t`` not in ``[0, t)`` when a second window is needed, or ``total_t < 1``.
    """
    if total_t < 1:
        raise ConfigError(f"the clip must hold at least one latent frame, got {total_t}")
    context_t = t // 2 if context_t is None else context_t
    observed = 0 if prime is None else prime.shape[dim]
    if total_t > max(t, observed) and not 0 <= context_t < t:
        raise ConfigError(f"context_frames (context_t) must be in [0, {t}) for a model of {t} latent frames, "
                          f"got {context_t}")
    if observed > t:
        out = prime
    else:
        out = window(min(t, max(total_t, observed)), prime, 0)
    while out.shape[dim] < total_t:
        first = out.shape[dim] - context_t
        context = out.narrow(dim, first, context_t) if context_t else None
        new = window(t, context, first)
        out = torch.cat([out, new.narrow(dim, context_t, t - context_t)], dim=dim)
    return out.narrow(dim, 0, total_t)
