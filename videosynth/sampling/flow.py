"""Rectified-flow paths and ODE samplers (Lipman et al. 2023; Liu et al. 2023; Esser et al. 2024).

Convention: time runs from noise to data. ``x0 ~ N(0, I)`` is noise, ``x1`` a (normalised)
data latent, the path is the straight line

    x_t = (1 - t) * x0 + t * x1,        t in [0, 1],

and the velocity a model learns is its derivative ``v = x1 - x0``. Sampling integrates
``dx/dt = v(x_t, t)`` from ``t = 0`` (noise) to ``t = 1`` with Euler or Heun steps on a uniform
grid. Classifier-free guidance mixes the conditional and unconditional velocities,
``v = v_null + s * (v_cond - v_null)`` (``s = 1``: plain conditional sampling, one forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from videosynth.config import at_least, checked
from videosynth.errors import ConfigError

SOLVERS = ("euler", "heun")
TIME_SAMPLING = ("logit-normal", "uniform")

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t [B, ...], t [B]) -> v [B, ...]


@dataclass
class FlowSampleConfig:
    """Defaults for sampling a flow run (section ``sample:``; each overridable per call)."""

    steps: int = checked(16, at_least(1))
    solver: str = "heun"  # "euler" | "heun"
    guidance: float = checked(1.0, at_least(0))  # > 1 needs condition.dropout > 0 in training
    context_frames: int | None = checked(None, at_least(1))  # latent frames of context per window past the training length (default t // 2)

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ConfigError(f"sample.solver must be one of {list(SOLVERS)}, got '{self.solver}'")


def path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The point ``x_t`` on the straight path and its velocity target ``x1 - x0``; ``t [B]`` broadcast."""
    tt = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - tt) * x0 + tt * x1, x1 - x0


def sample_times(n: int, kind: str, generator: torch.Generator | None = None, device=None,
                 mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Training times ``[n]`` in (0, 1): logit-normal (``sigmoid(N(mean, std))``, Esser et al. 2024) or uniform."""
    if kind == "logit-normal":
        return torch.sigmoid(torch.randn(n, generator=generator, device=device) * std + mean)
    if kind == "uniform":
        return torch.rand(n, generator=generator, device=device)
    raise ConfigError(f"time sampling must be one of {list(TIME_SAMPLING)}, got '{kind}'")


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


@torch.no_grad()
def integrate(velocity: Velocity, x0: torch.Tensor, steps: int, solver: str = "heun",
              project: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Solve ``dx/dt = velocity(x, t)`` from ``t = 0`` at ``x0`` to ``t = 1`` in ``steps`` uniform steps.

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
    grid = torch.linspace(0.0, 1.0, steps + 1, device=x0.device)
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


def guided(model: Callable[..., torch.Tensor], scale: float) -> Callable[..., torch.Tensor]:
    """``model(x, t, null: bool) -> v`` -> the classifier-free-guided velocity ``(x, t) -> v``."""
    if scale == 1.0:
        return lambda x, t: model(x, t, False)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_cond, v_null = model(x, t, False), model(x, t, True)
        return v_null + scale * (v_cond - v_null)

    return velocity


__all__ = ["FlowSampleConfig", "path", "sample_times", "integrate", "keep_known", "guided", "SOLVERS",
           "TIME_SAMPLING"]
