"""Training entry point: YAML config -> typed run config -> dataset -> shared loop.

``videosynth train --config X.yaml`` and ``videosynth demo`` both come through
:func:`run_training`; tests call it directly with tiny configs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from videosynth.checkpoint import CLASSES_FILE, read_run_config
from videosynth.config import apply_overrides, load_yaml
from videosynth.errors import CheckpointError, ConfigError
from videosynth.train.config import RunConfig, build_run_config
from videosynth.train.families import get_family
from videosynth.train.loop import sample_grid, train


def resolve_config(
    config: str | Path | dict | None,
    overrides: list[str] = (),
    resume_dir: str | Path | None = None,
) -> RunConfig:
    """Typed run config from a YAML path or dict plus ``--set`` overrides.

    On resume the run's own ``config.yaml`` is the base (a given ``config`` is refused unless
    equal), so the resumed run trains exactly what was started; overrides may extend
    ``train.steps`` and other loop settings.
    """
    if resume_dir is not None:
        path = Path(resume_dir) / "config.yaml"
        if not path.is_file():
            raise CheckpointError(f"cannot resume: {path} not found (is {resume_dir} a run directory?)")
        data = read_run_config(resume_dir)
    elif config is None:
        raise ConfigError("no config given: pass --config FILE.yaml (see configs/) or --resume RUN_DIR")
    else:
        data = load_yaml(config) if not isinstance(config, dict) else dict(config)
    data = apply_overrides(data, list(overrides))
    if "family" not in data:
        raise ConfigError(f"config {config or resume_dir} has no 'family:' key (e.g. family: videogan)")
    return build_run_config(get_family(data["family"]).run_config, data)


def default_run_dir(cfg: RunConfig, config_path: str | Path | None) -> Path:
    stem = Path(config_path).stem if isinstance(config_path, (str, Path)) else cfg.family
    root = Path(os.environ.get("VIDEOSYNTH_RUNS", "runs"))
    n = 0
    while (root / f"{stem}-{n:03d}").exists():
        n += 1
    return root / f"{stem}-{n:03d}"


def run_training(
    config: str | Path | dict | None = None,
    overrides: list[str] = (),
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Train a run from a config (or resume one); returns the run directory."""
    cfg = resolve_config(config, overrides, resume)
    objective_cls = get_family(cfg.family).objective
    dataset = objective_cls.build_dataset(cfg, "train")  # the prior may train on cached tokens
    run_dir = Path(resume) if resume is not None else Path(run_dir) if run_dir else default_run_dir(cfg, config)
    if resume is None and (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        raise CheckpointError(f"{run_dir} already holds checkpoints: use --resume {run_dir} or another --run-dir")
    if resume is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        names = list(getattr(dataset, "class_names", []))
        (run_dir / CLASSES_FILE).write_text(json.dumps(names))
    eval_fn = _eval_fn(cfg) if cfg.train.eval_every > 0 else None
    print(f"run directory: {run_dir}", file=sys.stderr)
    train(cfg, objective_cls, run_dir, dataset, resume=resume is not None, progress=progress, eval_fn=eval_fn)
    return run_dir


def _eval_fn(cfg: RunConfig):
    """Periodic weight-free evaluation for runs on the built-in data (``train.eval_every``)."""
    from videosynth.metrics import evaluate_during_training

    name = cfg.data.name

    def fn(objective, step):
        return evaluate_during_training(lambda n, g: sample_grid(objective, n, g), name, cfg.train.eval_num, cfg.train.seed, data_config=cfg.data)

    return fn


__all__ = ["run_training", "resolve_config"]
