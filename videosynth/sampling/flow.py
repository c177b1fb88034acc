"""Rectified-flow paths and ODE samplers (Lipman et al. 2023; Liu et al. 2023; Esser et al. 2024).

Convention: time runs from noise to data. ``x0 ~ N(0, I)`` is noise, ``x1`` a (normalised)
data latent, the path is the straight line

    x_t = (1 - t) * x0 + t * x1,        t in [0, 1],

and the velocity a model learns is its derivative ``v = x1 - x0``. ``t`` is one time per clip
``[B]`` or, for a model trained with per-frame times (Diffusion Forcing), one per latent frame
``[B, t]``. Sampling integrates ``dx/dt = v(x_t, t)`` from ``t = 0`` (noise) to ``t = 1`` with
Euler or Heun steps on a uniform grid, or on the grid shifted towards the noise end
(``shift > 1``, as diffusers' ``FlowMatchEulerDiscreteScheduler``: with the noise level
``sigma = 1 - t``, ``sigma' = shift * sigma / (1 + (shift - 1) * sigma)``). Classifier-free
guidance mixes the conditional and unconditional velocities, ``v = v_null + s * (v_cond - v_null)``,
both from one forward over the batch taken twice (``s = 1``: plain conditional sampling).

Observed (context) latent frames are kept in one of two ways: ``project`` holds them on their path
to the observation at the noise level of each step (replacement, for any model); ``clean`` gives
them to the model as they are, at time 1 (or at a small noise level ``context_noise``, stabilising
a rollout on its own frames), while the other frames are integrated -- the condition a model
trained with per-frame times and clean context learned. Such a model also knows the frames with no
context at all (the context frames as noise, time 0), so the context can be guided like a condition
(history guidance, Song et al. 2025, "History-Guided Video Diffusion"): with weight ``w``,
``v = v_free + w * (v_context - v_free)``.

Shortcut models (Frans et al. 2024) learn the average velocity over a step of size ``d`` as well:
:func:`shortcut_target` is the self-consistency target that teaches a step of ``2d`` from two of ``d``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from videosynth.config import at_least, checked, in_range, positive
from videosynth.errors import ConfigError

SOLVERS = ("euler", "heun")
TIME_SAMPLING = ("logit-normal", "uniform")
CONTEXT = ("project", "clean")

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t [B, ...], t [B]) -> v [B, ...]


@dataclass
class FlowSampleConfig:
    """Defaults for sampling a flow run (section ``sample:``; each overridable per call)."""

    steps: int = checked(16, at_least(1))
    solver: str = "heun"  # "euler" | "heun"
    guidance: float = checked(1.0, at_least(0))  # > 1 needs condition.dropout > 0 in training
    context_frames: int | None = checked(None, at_least(1))  # latent frames of context per window past the training length (default t // 2)
    shift: float = checked(1.0, positive())  # > 1: more of the steps near the noise end (1: uniform grid)
    # how observed frames are kept: "project" | "clean"; None: "clean" for a run trained with clean
    # context (loss.frame_times: independent, filled in when it starts), else "project" (older runs)
    context: str | None = None
    # noise level (1 - time) at which a rollout's own frames are given as context with "clean"
    context_noise: float = checked(0.0, in_range(0, 1, high_open=True))
    # with "clean": weight of the context against no context (history guidance; 1 = off, one forward)
    history_guidance: float = checked(1.0, at_least(0))

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ConfigError(f"sample.solver must be one of {list(SOLVERS)}, got '{self.solver}'")
        if self.context is not None and self.context not in CONTEXT:
            raise ConfigError(f"sample.context must be one of {list(CONTEXT)}, got '{self.context}'")


def broadcast_time(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Times ``[B]`` -> ``[B, 1, 1, ...]``, or per latent frame ``[B, t]`` -> ``[B, 1, t, 1, 1]``, against
    latents ``like [B, C, t, h, w]``."""
    if t.dim() == 2:
        return t[:, None, :, None, None]
    return t.view(-1, *([1] * (like.dim() - 1)))


def path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The point ``x_t`` on the straight path and its velocity target ``x1 - x0``; ``t [B]`` or ``[B, t]``
    (per latent frame of ``[B, C, t, h, w]`` latents) broadcast."""
    tt = broadcast_time(t, x0)
    return (1 - tt) * x0 + tt * x1, x1 - x0


def sample_times(n: int, kind: str, generator: torch.Generator | None = None, device=None,
                 mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Training times ``[n]`` in (0, 1): logit-normal (``sigmoid(N(mean, std))``, Esser et al. 2024) or uniform."""
    if kind == "logit-normal":
        return torch.sigmoid(torch.randn(n, generator=generator, device=device) * std + mean)
    if kind == "uniform":
        return torch.rand(n, generator=generator, device=device)
    raise ConfigError(f"time sampling must be one of {list(TIME_SAMPLING)}, got '{kind}'")


def time_grid(steps: int, shift: float = 1.0, device=None) -> torch.Tensor:
    """``steps + 1`` times from 0 to 1: uniform, or with the noise level ``sigma = 1 - t`` shifted to
    ``shift * sigma / (1 + (shift - 1) * sigma)`` (``shift > 1``: smaller steps near the noise end)."""
    grid = torch.linspace(0.0, 1.0, steps + 1, device=device)
    if shift == 1.0:
        return grid
    sigma = 1 - grid
    return 1 - shift * sigma / (1 + (shift - 1) * sigma)


def keep_known(x0: torch.Tensor, known: torch.Tensor, mask: torch.Tensor) -> Callable:
    """A projection for :func:`integrate` that holds the ``mask``-ed part of the state on the path to ``known``.

    Frame-conditioned sampling (prediction, image-to-video) by replacement: wherever ``mask`` is
    true the state is set to ``(1 - t) * x0 + t * known`` before every velocity call, so the model
    sees the observed latents at the noise level of the step and the endpoint holds them exactly.
    """
    def project(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        on_path, _ = path(x0, known, t)
        return torch.where(mask, on_path, x)

    return project


def hold_context(velocity: Velocity, k: int, context_time: torch.Tensor, history: float = 1.0,
                 free: torch.Tensor | None = None) -> Velocity:
    """The velocity of a window whose first ``k`` latent frames are context (``clean``, see above).

    ``velocity(x, times [B, t])`` takes per-frame times; the returned ``(x, t [B]) -> v`` gives the
    context frames their own times ``context_time`` (``[k]``, 1 = clean) and the others the step's
    time, and does not move the context: its velocity is zero, so any solver keeps it exactly.
    ``history != 1`` (history guidance) also asks for the velocity with the context replaced by
    ``free`` (noise ``[B, C, k, h, w]``, at time 0) and returns ``v_free + history * (v - v_free)``
    (two calls of ``velocity``: it may be classifier-free guided itself, over rows of its own conditions).
    """
    if history != 1.0 and free is None:
        raise ConfigError("history guidance needs the noise that stands in for the context (free)")

    def held(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, frames = x.shape[0], x.shape[2]
        times = torch.cat([context_time.to(t).expand(b, k), t[:, None].expand(b, frames - k)], dim=1)  # (B, t)
        if history == 1.0:
            v = velocity(x, times)
        else:
            unseen = torch.cat([free.to(x), x[:, :, k:]], dim=2)  # (B, C, t, h, w): the context as noise
            blind = torch.cat([torch.zeros_like(times[:, :k]), times[:, k:]], dim=1)  # ... at time 0
            v_free = velocity(unseen, blind)
            v = v_free + history * (velocity(x, times) - v_free)
        return torch.cat([torch.zeros_like(v[:, :, :k]), v[:, :, k:]], dim=2)

    return held


@torch.no_grad()
def integrate(velocity: Velocity, x0: torch.Tensor, steps: int, solver: str = "heun",
              project: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
              shift: float = 1.0) -> torch.Tensor:
    """Solve ``dx/dt = velocity(x, t)`` from ``t = 0`` at ``x0`` to ``t = 1`` in ``steps`` steps on
    :func:`time_grid` (uniform for ``shift = 1``).

    ``project(x, t)``, if given, is applied to the state before every velocity call and to the
    endpoint (see :func:`keep_known`).

    ``euler``: one velocity call per step (first order); ``heun``: Heun's second-order method,
    an Euler guess then the mean of the velocities at both ends (two calls per step).
    """
    if solver not in SOLVERS:
        raise ConfigError(f"solver must be one of {list(SOLVERS)}, got '{solver}'")
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    project = project or (lambda x, t: x)
    x = x0
    b = x0.shape[0]
    grid = time_grid(steps, shift, x0.device)
    for i in range(steps):
        t0, t1 = grid[i], grid[i + 1]
        h = t1 - t0
        x = project(x, t0.expand(b))
        v0 = velocity(x, t0.expand(b))
        if solver == "euler":
            x = x + h * v0
        else:
            guess = project(x + h * v0, t1.expand(b))
            x = x + h * 0.5 * (v0 + velocity(guess, t1.expand(b)))
    return project(x, grid[-1].expand(b))


def guided(conditional: Velocity, paired: Velocity | None, scale: float) -> Velocity:
    """The classifier-free-guided velocity ``(x, t) -> v``.

    ``conditional(x, t)``: the conditional velocity (``scale = 1``: returned as it is, one forward of
    ``B``). ``paired(x2, t2)``: one forward over the batch taken twice, ``[2B, ...]``, whose first ``B``
    rows see the condition and the last ``B`` the null condition.
    """
    if scale == 1.0:
        return conditional
    if paired is None:
        raise ConfigError("guidance != 1 needs a conditional model (condition.kind other than 'none', or sound)")

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_cond, v_null = paired(torch.cat([x, x]), torch.cat([t, t])).chunk(2)  # each (B, ...)
        return v_null + scale * (v_cond - v_null)

    return velocity


def shortcut_target(step_velocity: Velocity, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The self-consistency target of a shortcut of size ``2d`` at ``(x, t)`` (Frans et al. 2024): the mean
    of two shortcuts of size ``d``, ``s1 = s(x, t, d)`` then ``s2 = s(x + d s1, t + d, d)``.

    ``step_velocity(x, t) -> s`` is the model told the step ``d``; ``t``, ``d`` ``[B]``. A model whose
    steps of ``d`` are exact makes the target the exact average velocity over ``[t, t + 2d]``.
    """
    dd = broadcast_time(d, x)
    s1 = step_velocity(x, t)
    s2 = step_velocity(x + dd * s1, t + d)
    return (s1 + s2) / 2


__all__ = ["FlowSampleConfig", "path", "sample_times", "integrate", "keep_known", "hold_context", "guided",
           "shortcut_target", "time_grid", "broadcast_time", "SOLVERS", "TIME_SAMPLING", "CONTEXT"]
