"""Exponential moving average of a module's weights, for sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn

from videosynth.checkpoint import unwrap


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied).

    ``module`` is the shadow copy used for sampling; call ``update(src)`` after each optimiser
    step. ``updates`` counts the updates, so a cache derived from the EMA weights (standing
    BatchNorm statistics) knows when it is stale.
    """

    def __init__(self, src: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(unwrap(src)).eval()
        self.module.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, src: nn.Module) -> None:
        src = unwrap(src)
        for ema_p, p in zip(self.module.parameters(), src.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - self.decay)
        for ema_b, b in zip(self.module.buffers(), src.buffers()):
            ema_b.copy_(b)
        self.updates += 1
