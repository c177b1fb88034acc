"""Sampling the two streams of a joint audio-video flow model, either or both of them free.

The model gives the velocities of both streams from both states and one flow time per stream,
``(x_video, t_video, x_sound, t_sound) -> (v_video, v_sound)`` (:data:`StreamVelocity`). **Joint**
sampling integrates both from noise at one time; **video-to-audio** gives the video as it is, at
time 1, and integrates the sound; **audio-to-video** the reverse -- the conditions a model trained
with a share of clean-stream rows learned (:mod:`videosynth.models.joint_dit`). The free streams
are packed into one flat state ``[B, D]``, so the solvers, time grids and classifier-free guidance
of :mod:`videosynth.sampling.flow` serve unchanged, and a given stream never moves.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from videosynth.errors import ConfigError
from videosynth.sampling.flow import Velocity, guided, integrate

# (x_video [B, C, t, h, w], t_video [B], x_sound [B, M, J], t_sound [B]) -> (v_video, v_sound), same shapes
StreamVelocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def pack(parts: list[torch.Tensor]) -> torch.Tensor:
    """Tensors ``[B, ...]`` -> one flat state ``[B, D]``."""
    return torch.cat([p.flatten(1) for p in parts], dim=1)


def unpack(x: torch.Tensor, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    """The inverse of :func:`pack` for per-row ``shapes`` (each without the batch dimension)."""
    sizes = [math.prod(s) for s in shapes]
    return [part.reshape(x.shape[0], *s) for part, s in zip(x.split(sizes, dim=1), shapes)]


def free_streams(model: StreamVelocity, video_shape: tuple[int, ...], sound_shape: tuple[int, ...],
                 known_video: torch.Tensor | None = None, known_sound: torch.Tensor | None = None) -> Velocity:
    """``(x [B, D], t [B]) -> v [B, D]``: the packed velocity of the streams not given.

    ``known_video [n, ...]`` / ``known_sound [n, ...]``: given streams, handed to the model at time 1
    (repeated for a batch of ``2n``, the guided forward's); ``*_shape``: a row of each stream.
    """
    shapes = [s for s, known in ((video_shape, known_video), (sound_shape, known_sound)) if known is None]

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        free = unpack(x, shapes)
        b, ones = x.shape[0], torch.ones_like(t)

        def given(known: torch.Tensor) -> torch.Tensor:
            return known.to(x).repeat(b // known.shape[0], *([1] * (known.dim() - 1)))

        xv, tv = (free.pop(0), t) if known_video is None else (given(known_video), ones)
        xa, ta = (free.pop(0), t) if known_sound is None else (given(known_sound), ones)
        v_video, v_sound = model(xv, tv, xa, ta)
        return pack([v for v, known in ((v_video, known_video), (v_sound, known_sound)) if known is None])

    return velocity


@torch.no_grad()
def sample_streams(conditional: StreamVelocity, paired: StreamVelocity | None, guidance: float,
                   noise_video: torch.Tensor, noise_sound: torch.Tensor, steps: int, solver: str = "heun",
                   shift: float = 1.0, known_video: torch.Tensor | None = None,
                   known_sound: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(video [n, C, t, h, w], sound [n, M, J])`` integrated from the noises, a given stream returned as given.

    ``conditional``: the model under the condition; ``paired``: one forward over the batch taken twice
    (conditional rows, then null rows) for classifier-free guidance at scale ``guidance``
    (:func:`~videosynth.sampling.flow.guided`). ``steps``, ``solver``, ``shift``: as
    :func:`~videosynth.sampling.flow.integrate`.

    Raises:
        ConfigError: both streams given (nothing to sample), guidance without a conditional model.
    """
    if known_video is not None and known_sound is not None:
        raise ConfigError("give a video or a sound to a joint run, not both: there is nothing left to generate")
    shapes = (tuple(noise_video.shape[1:]), tuple(noise_sound.shape[1:]))
    knowns = (known_video, known_sound)
    velocity = guided(free_streams(conditional, *shapes, *knowns),
                      None if paired is None else free_streams(paired, *shapes, *knowns), guidance)
    start = pack([x for x, known in zip((noise_video, noise_sound), knowns) if known is None])
    free = unpack(integrate(velocity, start, steps, solver, None, shift),
                  [s for s, k in zip(shapes, knowns) if k is None])
    video = known_video.to(noise_video) if known_video is not None else free.pop(0)
    sound = known_sound.to(noise_sound) if known_sound is not None else free.pop(0)
    return video, sound


__all__ = ["StreamVelocity", "pack", "unpack", "free_streams", "sample_streams"]
