"""The contract between the shared loop and a family's training objective.

A family plugs in a subclass of :class:`Objective`::

    class GANObjective(Objective):
        def __init__(self, cfg: VideoGANRunConfig, ctx: Context):
            super().__init__(cfg, ctx)
            self.G = ctx.wrap(Conditioned(Generator(cfg.model), build_conditioner(cfg.condition)))
            self.opt_g = adam(self.G.parameters(), ...)          # fused: the NaN guard needs no sync
            self.ema_g = EMA(self.G, cfg.train.ema_decay)

        def modules(self):    return {"generator": self.G, ...}         # saved in model.safetensors
        def ema_modules(self): return {"generator": self.ema_g.module}  # saved in ema.safetensors
        def optimizers(self): return {"generator": self.opt_g, ...}    # saved in state.pt
        def train_step(self, batch, step) -> dict[str, Tensor | float]:
            with self.ctx.autocast():
                loss = ...                                        # compute in fp32 where it matters
            self.ctx.backward_step(loss, self.opt_g, self.G)      # NaN guard, scaler, clipping
            self.ema_g.update(self.G)
            return {"loss_g": loss.detach(), ...}                 # synced to the host at log_every only
        def sample(self, n, generator) -> Tensor:                 # float [n, C, T, H, W] in [-1, 1]
            ...

``batch`` holds the keys of ``batch_keys`` moved to ``ctx.device`` (by default ``video``:
float32 [B, C, T, H, W] in [-1, 1], and ``label``: int64 [B]) plus ``caption``: list[str].
Use the global torch RNG for training noise (it is seeded per rank and restored on resume)
and the given ``generator`` for samples. ``extra_state()`` / ``load_extra_state()`` carry
anything else that must survive a resume (tensors, numbers). Inference (``videosynth sample``)
does not go through the objective: each family has a pipeline in ``videosynth.pipelines``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from videosynth.train.config import RunConfig
from videosynth.errors import ConfigError
from videosynth.train.context import Context


class Objective:
    """Base class of a family's training objective; see the module docstring."""

    # batch entries the loop moves to the device (the rest, e.g. captions, stay as collated)
    batch_keys: ClassVar[tuple[str, ...]] = ("video", "label")
    # whether the family's networks take a sound condition (condition.audio)
    takes_audio: ClassVar[bool] = False
    # a LoRA fine-tune (train/finetune.py): its checkpoints hold the adapter alone; adapter_line says what trains
    adapted: bool = False
    adapter_line: str = ""

    def __init__(self, cfg: RunConfig, ctx: Context):
        self.cfg = cfg
        self.ctx = ctx
        if getattr(getattr(cfg, "condition", None), "audio", False) and not self.takes_audio:
            raise ConfigError(f"condition.audio: the {cfg.family} family does not take sound yet "
                              "(family mocogan does); set condition.audio: false")

    @classmethod
    def build_dataset(cls, cfg: RunConfig, split: str):
        """The training set; by default the clips ``cfg.data`` describes."""
        from videosynth.data import build_dataset

        return build_dataset(cfg.data, split)

    @classmethod
    def prepare_config(cls, cfg: RunConfig, dataset) -> RunConfig:
        """The run config as it will be saved, with what the data (and other runs) decide filled in.

        Called once before a new run writes ``config.yaml``; by default it fills
        ``condition.num_classes`` / ``condition.vocab`` from the training data.
        """
        import dataclasses

        if cfg.condition is None or (cfg.condition.kind == "none" and not cfg.condition.audio):
            return cfg
        from videosynth.conditioning import fit_condition_config

        condition = fit_condition_config(cfg.condition, dataset.captions(), list(dataset.class_names),
                                         dataset.audio_rate, dataset.fps)
        return dataclasses.replace(cfg, condition=condition)

    def modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def ema_modules(self) -> dict[str, nn.Module]:
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, batch: dict, step: int) -> dict[str, torch.Tensor | float]:
        """One optimisation step; returns values to log (0-d tensors are synced at ``log_every`` only)."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Videos for the periodic sample grid, float [n, C, T, H, W] in [-1, 1]; None = none."""
        return None

    def default_audio(self, n: int) -> torch.Tensor | None:
        """Sample-grid sound: the soundtracks of the first ``n`` training clips, ``float32 [n, S]`` (None without)."""
        cond = getattr(self.cfg, "condition", None)
        if cond is None or not cond.audio:
            return None
        dataset = self.ctx.dataset
        return torch.stack([dataset[i % len(dataset)]["audio"] for i in range(n)])  # (n, S)

    def default_conditions(self, n: int) -> tuple[torch.Tensor | None, list[str] | None]:
        """Sample-grid conditions: labels int64 ``[n]`` cycling through the classes, or the data's captions."""
        from videosynth.conditioning import TEXT_KINDS

        cond = getattr(self.cfg, "condition", None)
        if cond is None or cond.kind == "none":
            return None, None
        if cond.kind == "class":
            return torch.arange(n) % max(cond.num_classes, 1), None
        if cond.kind in TEXT_KINDS:
            dataset = self.ctx.dataset
            captions = [c for c in dataset.captions() if c]
            if captions:
                return None, [captions[i % len(captions)] for i in range(n)]
        return None, None

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def set_train(self, mode: bool) -> None:
        for m in self.modules().values():
            m.train(mode)


def warmup_lr(base: float, warmup_steps: int, step: int, decay_steps: int = 0, total_steps: int = 0) -> float:
    """The learning rate at ``step``: warm-up, constant, then an optional cosine decay to 0.

    Linear warm-up ``base * (step + 1) / warmup_steps`` over the first steps, then ``base``;
    with ``decay_steps`` the last ``decay_steps`` of ``total_steps`` follow a half cosine from
    ``base`` down to 0 (warm-up, stable, decay). The stable phase does not depend on the run's
    length, so a run trained at a constant rate can be resumed with more steps and a decay.
    A pure function of the step, so resuming restores it without extra state.
    """
    lr = base if warmup_steps <= 0 else base * min(1.0, (step + 1) / warmup_steps)
    if decay_steps > 0:
        start = max(0, total_steps - decay_steps)
        if step >= start:
            frac = min(1.0, (step - start + 1) / max(1, total_steps - start))
            lr *= 0.5 * (1.0 + math.cos(math.pi * frac))
    return lr


EMA_WARMUP = 10  # EMA decay ramps as (1 + step) / (EMA_WARMUP + step) so short runs sample trained weights


def ema_decay_at(decay: float, step: int) -> float:
    """The EMA decay at ``step``: ``decay``, held lower early on so short runs sample trained weights."""
    return min(decay, (1 + step) / (EMA_WARMUP + step))


def set_lr(optimizer: torch.optim.Optimizer, optim_cfg, step: int, total_steps: int) -> None:
    """Every parameter group's rate at ``step`` by :func:`warmup_lr` from an optim section with
    ``lr``, ``warmup_steps`` and ``decay_steps``."""
    lr = warmup_lr(optim_cfg.lr, optim_cfg.warmup_steps, step, optim_cfg.decay_steps, total_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr


def adam(params, lr: float, betas: tuple[float, float], weight_decay: float = 0.0,
         decoupled: bool = False) -> torch.optim.Adam:
    """Adam (AdamW with ``decoupled``) on torch's fused kernel where the parameters' device has one.

    The fused update takes the NaN guard's verdict as a device tensor (``found_inf``), so a step
    with a non-finite loss is skipped without the host waiting for the device
    (:meth:`~videosynth.train.context.Context.backward_step`). ``params`` may be parameter groups.
    """
    params = list(params)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    try:
        return cls(params, lr, betas, weight_decay=weight_decay, fused=True)
    except RuntimeError:  # a device or dtype without a fused kernel: the loop syncs on the guard instead
        return cls(params, lr, betas, weight_decay=weight_decay)


def trainable(module: nn.Module) -> list[nn.Parameter]:
    """Parameters that train (a frozen pretrained text encoder stays out)."""
    return [p for p in module.parameters() if p.requires_grad]


def conditioned_modules(net: nn.Module, name: str) -> dict[str, nn.Module]:
    """The checkpointed modules of one :class:`~videosynth.models.conditioned.Conditioned` network:
    ``{name: net}``, saved as ``name.net.*`` and ``name.conditioner.*`` like every family's."""
    return {name: net}
