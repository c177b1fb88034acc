"""Sampling from trained runs: load a run directory, generate clips, write videos.

Every family's objective implements ``generate(n, generator, labels, captions, frames, ema, **options)``
(see ``videosynth/train/loop.py``); this module loads a run for it and validates what the user asks
for (labels in range, text only for text-conditioned runs) so errors are one line.
Two-stage models compose in the open in ``videosynth/sample_ar.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from videosynth.errors import ConfigError
from videosynth.train import get_family
from videosynth.train.loop import (
    Context,
    Objective,
    RunConfig,
    find_checkpoint,
    load_model_weights,
    select_device,
)


@dataclass
class LoadedRun:
    """A run directory ready for sampling: its config, objective (weights loaded) and checkpoint."""

    run_dir: Path
    config: RunConfig
    objective: Objective
    checkpoint: Path
    step: int

    @property
    def condition_kind(self) -> str:
        cond = getattr(self.config, "condition", None)
        return getattr(cond, "kind", "none") if cond is not None else "none"

    @property
    def class_names(self) -> list[str]:
        """Class names saved with the run (``classes.json``), else the indices as strings."""
        import json

        cond = getattr(self.config, "condition", None)
        n = getattr(cond, "num_classes", 0) if cond is not None else 0
        try:
            names = json.loads((self.run_dir / "classes.json").read_text())
        except (OSError, ValueError):
            names = []
        return names if len(names) == n else [str(i) for i in range(n)]


def load_run(run_dir: str | Path, checkpoint: str | None = None, device: str = "auto") -> LoadedRun:
    """Rebuild a run's objective from ``config.yaml`` and load its model + EMA weights.

    Raises:
        CheckpointError: missing run directory, no (valid) checkpoint, or weights that don't match.
    """
    from videosynth.train.run import resolve_config

    run_dir = Path(run_dir)
    cfg = resolve_config(None, [], resume_dir=run_dir)
    path, meta = find_checkpoint(run_dir, checkpoint)
    _, objective_cls = get_family(cfg.family)
    train_cfg = dataclasses.replace(cfg.train, device=device, compile=False)
    ctx = Context(train_cfg, select_device(device), None)
    with torch.random.fork_rng(devices=[]):  # building the objective must not disturb the caller's RNG
        objective = objective_cls(dataclasses.replace(cfg, train=train_cfg), ctx)
    load_model_weights(path, objective)
    objective.set_train(False)
    for module in objective.ema_modules().values():
        module.eval()
    return LoadedRun(run_dir, cfg, objective, path, int(meta["step"]))


def parse_label(run: LoadedRun, label: str | None) -> int | None:
    """A ``--label`` given as index or class name -> index; one-line errors for the rest."""
    if label is None:
        return None
    if run.condition_kind != "class":
        raise ConfigError(f"--label given but {run.run_dir} was trained with condition '{run.condition_kind}', not class labels")
    names = run.class_names
    if label in names:
        return names.index(label)
    try:
        index = int(label)
    except ValueError:
        raise ConfigError(f"unknown label '{label}' for {run.run_dir} (classes: {', '.join(names)})") from None
    if not 0 <= index < len(names):
        raise ConfigError(f"label {index} out of range for {run.run_dir} (0..{len(names) - 1}: {', '.join(names)})")
    return index


def check_text(run: LoadedRun, text: str | None) -> None:
    if text is not None and run.condition_kind not in ("text", "pretrained-text"):
        raise ConfigError(
            f"--text given but {run.run_dir} was trained with condition '{run.condition_kind}' (train with condition.kind: text)"
        )


def generate(
    run: LoadedRun,
    num: int,
    seed: int = 0,
    label: int | None = None,
    text: str | None = None,
    frames: int | None = None,
    ema: bool = True,
    batch_size: int = 16,
    **options,
) -> torch.Tensor:
    """``num`` clips from a loaded run, float [num, C, T, H, W] in [-1, 1], deterministic by ``seed``.

    Without ``label`` a class-conditional run cycles through its classes (clip i gets class
    i mod K), so a grid shows every class.
    """
    g = torch.Generator().manual_seed(seed)
    if options.get("grid") or options.get("interpolate"):
        batch_size = num  # a content/motion grid is one joint draw; it cannot be split into chunks
    out = []
    kind = run.condition_kind
    n_classes = len(run.class_names)
    with torch.inference_mode():
        for start in range(0, num, batch_size):
            n = min(batch_size, num - start)
            labels = captions = None
            if kind == "class":
                ids = [label if label is not None else (start + i) % max(n_classes, 1) for i in range(n)]
                labels = torch.tensor(ids, dtype=torch.long)
            elif text is not None:
                captions = [text] * n
            out.append(run.objective.generate(n, g, labels=labels, captions=captions, frames=frames, ema=ema, **options).float().cpu())
    return torch.cat(out)


def sample_clips(run_dir: str | Path, num: int, seed: int = 0, batch_size: int = 16, device: str = "auto") -> Iterator[torch.Tensor]:
    """Batches of clips from a run, float [B, C, T, H, W] in [-1, 1] (used by ``videosynth eval``)."""
    run = load_run(run_dir, device=device)
    g_seed = seed
    done = 0
    while done < num:
        n = min(batch_size, num - done)
        yield generate(run, n, seed=g_seed, batch_size=n)
        g_seed += 1
        done += n
