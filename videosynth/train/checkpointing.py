"""Saving an objective to a checkpoint folder and restoring it for an exact resume.

The folder format itself (atomic writes, hashes, ``latest``) is :mod:`videosynth.checkpoint`;
this module decides what goes in: every module of ``objective.modules()`` and
``objective.ema_modules()`` (of a LoRA fine-tune, the adapter alone), the optimisers, the RNG state,
the step and the objective's extra state.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from videosynth.checkpoint import (
    ADAPTER_EMA_FILE,
    ADAPTER_FILE,
    EMA_FILE,
    MODEL_FILE,
    STATE_FILE,
    find_checkpoint,
    load_module_state,
    load_modules,
    load_weights,
    module_tensors,
    read_class_names,
    save_checkpoint,
    split_vocab,
    unwrap,
)
from videosynth.config import to_dict
from videosynth.errors import CheckpointError
from videosynth.models.lora import adapter_state, load_adapter
from videosynth.train.config import RunConfig
from videosynth.train.objective import Objective
from videosynth.train.rng import rng_state, set_rng_state


def weight_files(objective: Objective) -> tuple[str, str]:
    """The checkpoint files of the objective's modules and EMA copies: a LoRA fine-tune saves its adapter alone."""
    return (ADAPTER_FILE, ADAPTER_EMA_FILE) if objective.adapted else (MODEL_FILE, EMA_FILE)


def _tensors(objective: Objective, modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    if not objective.adapted:
        return module_tensors(modules)
    return {f"{name}.{key}": value.detach().to("cpu").contiguous().clone()
            for name, module in modules.items() for key, value in adapter_state(unwrap(module)).items()}


def _load(path: Path, file: str, objective: Objective, modules: dict[str, nn.Module]) -> None:
    if not objective.adapted:
        load_modules(path, modules, file)
        return
    weights = load_weights(path, file)
    for name, module in modules.items():
        load_adapter(unwrap(module), weights.get(name, {}), f"{path / file} [{name}]")


def save(run_dir: Path, step: int, objective: Objective, config: RunConfig, keep_last: int) -> Path:
    """Write the objective's weights (a LoRA fine-tune: its adapter), EMA, optimisers and RNG as
    ``checkpoints/step-NNNNNN``."""
    ema = objective.ema_modules()
    state = {
        "step": step,
        "optimizers": {k: o.state_dict() for k, o in objective.optimizers().items()},
        "rng": rng_state(),
        "extra": objective.extra_state(),
    }
    meta_config, _ = split_vocab(to_dict(config))  # the vocabulary lives in vocab.json, once
    return save_checkpoint(run_dir, step, config.family, meta_config, _tensors(objective, objective.modules()),
                           _tensors(objective, ema) if ema else None, state, keep_last, weight_files(objective))


def load(path: Path, objective: Objective) -> int:
    """Restore modules, EMA, optimisers, RNG and extra state from a checkpoint folder; returns the step."""
    model_file, ema_file = weight_files(objective)
    _load(path, model_file, objective, objective.modules())
    ema = objective.ema_modules()
    if ema:
        _load(path, ema_file, objective, ema)
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"{path} has no {STATE_FILE} (an exported or merged run samples but does not resume): "
                              "start a new run from it with --init")
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


# ---- a new run started from another run's weights ------------------------------------------------


def init_from(run: Path, objective: Objective, class_names: list[str]) -> str:
    """Load the newest valid checkpoint of ``run`` (another run of the same family and architecture)
    into a new run's modules and EMA copies; optimisers, step and RNG start fresh. Returns one line
    saying what was kept.

    Class tables follow the class *names*: a row of a class both runs know is kept (wherever its
    index moved), a new class keeps its fresh initialisation, the null row is kept. A table is a
    tensor whose first dimension is the class count (plus the null row) in both runs.

    Raises:
        CheckpointError: ``run`` has no valid checkpoint, or a module or tensor that does not match
            the new run's (named, in one line: a different architecture).
    """
    path, meta = find_checkpoint(run, files=(MODEL_FILE,))
    if ADAPTER_FILE in meta.get("files", {}):
        raise CheckpointError(f"--init {run} is a LoRA fine-tune (its checkpoints hold an adapter alone): merge it "
                              f"first (videosynth weights merge-lora {run} --out DIR) and start from the merged run")
    family = objective.cfg.family
    if meta.get("family") not in (None, family):
        raise CheckpointError(f"--init {run} is a {meta.get('family')} run; a {family} run can only start from "
                              "a run of this family")
    old_names = read_class_names(run)
    rows = class_rows(old_names, class_names)
    files = meta.get("files", {})
    for file, modules in ((MODEL_FILE, objective.modules()), (EMA_FILE, objective.ema_modules())):
        weights = load_weights(path, file if file in files else MODEL_FILE)
        for name, module in modules.items():
            if name not in weights:
                raise CheckpointError(f"--init {run}: its checkpoint has no '{name}' (this run needs: "
                                      f"{', '.join(modules)}): start from a run of this family")
            state = remap_classes(weights[name], unwrap(module).state_dict(), rows, len(old_names))
            load_module_state(module, state, f"--init {path / file} [{name}]")
    kept = [n for n in class_names if n in old_names]
    new = [n for n in class_names if n not in old_names]
    line = f"initialised from {path} (step {meta.get('step', '?')})"
    if class_names and old_names:
        line += f"; classes kept: {', '.join(kept) or 'none'}; new: {', '.join(new) or 'none'}"
    return line


def class_rows(old: list[str], new: list[str]) -> list[int | None]:
    """For each new class, the index of the same name among the old ones (None: a new class)."""
    return [old.index(name) if name in old else None for name in new]


def remap_classes(saved: dict[str, torch.Tensor], own: dict[str, torch.Tensor], rows: list[int | None],
                   old_count: int) -> dict[str, torch.Tensor]:
    """``saved`` with every class table rebuilt for the new classes (see :func:`init_from`); other
    tensors as saved (a mismatch among them is reported by the loader)."""
    new_count = len(rows)
    if not rows or (old_count == new_count and rows == list(range(new_count))):
        return saved
    out = dict(saved)
    for key, value in saved.items():
        mine = own.get(key)
        if mine is None or value.dim() == 0 or mine.shape[1:] != value.shape[1:]:
            continue
        null = 0
        if (value.shape[0], mine.shape[0]) == (old_count + 1, new_count + 1):
            null = 1  # the last row is the learned null condition
        elif (value.shape[0], mine.shape[0]) != (old_count, new_count):
            continue
        table = mine.clone()
        for i, j in enumerate(rows):
            if j is not None:
                table[i] = value[j]
        if null:
            table[-1] = value[-1]
        out[key] = table
    return out
