"""Saving an objective to a checkpoint folder and restoring it for an exact resume.

The folder format itself (atomic writes, hashes, ``latest``) is :mod:`videosynth.checkpoint`;
this module decides what goes in: every module of ``objective.modules()`` and
``objective.ema_modules()``, the optimisers, the RNG state, the step and the objective's extra state.
"""

from __future__ import annotations

from pathlib import Path

import torch

from videosynth.checkpoint import (
    EMA_FILE,
    MODEL_FILE,
    STATE_FILE,
    load_modules,
    module_tensors,
    save_checkpoint,
    split_vocab,
)
from videosynth.config import to_dict
from videosynth.errors import CheckpointError
from videosynth.train.config import RunConfig
from videosynth.train.objective import Objective
from videosynth.train.rng import rng_state, set_rng_state


def save(run_dir: Path, step: int, objective: Objective, config: RunConfig, keep_last: int) -> Path:
    """Write the objective's weights, EMA, optimisers and RNG as ``checkpoints/step-NNNNNN``."""
    ema = objective.ema_modules()
    state = {
        "step": step,
        "optimizers": {k: o.state_dict() for k, o in objective.optimizers().items()},
        "rng": rng_state(),
        "extra": objective.extra_state(),
    }
    meta_config, _ = split_vocab(to_dict(config))  # the vocabulary lives in vocab.json, once
    return save_checkpoint(run_dir, step, config.family, meta_config, module_tensors(objective.modules()),
                           module_tensors(ema) if ema else None, state, keep_last)


def load(path: Path, objective: Objective) -> int:
    """Restore modules, EMA, optimisers, RNG and extra state from a checkpoint folder; returns the step."""
    load_modules(path, objective.modules(), MODEL_FILE)
    ema = objective.ema_modules()
    if ema:
        load_modules(path, ema, EMA_FILE)
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointError(f"cannot read {path / STATE_FILE}: {exc}") from None
    for name, opt in objective.optimizers().items():
        if name not in state.get("optimizers", {}):
            raise CheckpointError(f"{path / STATE_FILE} has no optimiser state for '{name}'")
        load_optimizer(opt, state["optimizers"][name])
    set_rng_state(state["rng"])
    objective.load_extra_state(state.get("extra", {}))
    return int(state["step"])


def load_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """``opt.load_state_dict(state)``, keeping how ``opt`` was built to run its update.

    A saved state carries its groups' ``fused`` / ``foreach`` flags, and loading would put them
    back: a run saved before the optimisers were fused (or on a device without the kernel)
    would resume unfused. The flags stay as built, and the step counts go where a fused
    kernel wants them (float32 on the parameter's device).
    """
    built = [{k: g.get(k) for k in ("fused", "foreach")} for g in opt.param_groups]
    opt.load_state_dict(state)
    for group, flags in zip(opt.param_groups, built):
        group.update(flags)
        if group.get("fused"):
            for p in group["params"]:
                st = opt.state.get(p, {})
                if "step" in st:
                    st["step"] = torch.as_tensor(st["step"], dtype=torch.float32).to(p.device)
