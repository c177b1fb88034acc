"""Training entry point: YAML config -> typed run config -> dataset -> shared loop.

``videosynth train --config X.yaml`` and ``videosynth demo`` both come through
:func:`run_training`; tests call it directly with tiny configs.
"""

from __future__ import annotations

import os
from pathlib import Path

from videosynth.checkpoint import read_run_config
from videosynth.config import apply_overrides, load_yaml
from videosynth.errors import CheckpointError, ConfigError
from videosynth.train.config import RunConfig, build_run_config
from videosynth.train.families import get_family
from videosynth.train.finetune import with_base_run
from videosynth.train.loop import sample_grid, train


# What a resume may change: the loop, the optimiser, the losses, sampling defaults, and where
# and how the data is read; never what fixes the checkpoint's shapes (model, condition, data content).
RESUME_FIXED = ("family", "model", "condition", "data", "finetune")
RESUME_DATA_OK = ("root", "manifest", "split_dir", "annotations", "num_workers", "max_broken_fraction")


def check_resume_overrides(overrides: list[str], run_dir: str | Path) -> None:
    """Refuse ``--set`` keys a resume cannot change, in one line naming the key.

    Raises:
        ConfigError: a key under ``model``, ``condition``, ``data`` (but its location keys) or ``family``.
    """
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        top, _, rest = key.partition(".")
        if top in RESUME_FIXED and not (top == "data" and rest in RESUME_DATA_OK):
            raise ConfigError(
                f"--set {key}: a resumed run cannot change '{top}' (it fixes the checkpoint's shapes and data); "
                f"start a new run (--config {Path(run_dir) / 'config.yaml'} --set {item} --run-dir NEW_DIR)")


def resolve_config(
    config: str | Path | dict | None,
    overrides: list[str] = (),
    resume_dir: str | Path | None = None,
) -> RunConfig:
    """Typed run config from a YAML path or dict plus ``--set`` overrides.

    On resume the run's own ``config.yaml`` is the base and a ``config`` is refused, so the
    resumed run trains exactly what was started; overrides may change the loop, optimiser and
    loss settings (:data:`RESUME_FIXED` sections are refused). Nothing is written here.
    """
    if resume_dir is not None:
        if config is not None:
            raise ConfigError(f"give --config or --resume, not both (a resumed run keeps {Path(resume_dir) / 'config.yaml'};"
                              " change loop settings with --set)")
        path = Path(resume_dir) / "config.yaml"
        if not Path(resume_dir).is_dir():
            raise CheckpointError(f"cannot resume {resume_dir}: no such run directory")
        if not path.is_file():
            raise CheckpointError(f"cannot resume: {path} not found (is {resume_dir} a run directory?)")
        check_resume_overrides(list(overrides), resume_dir)
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
    init: str | Path | None = None,
) -> Path:
    """Train a run from a config (or resume one); returns the run directory.

    The config is resolved and checked and the dataset built before anything is written;
    the loop then takes the run's lock (see :func:`videosynth.train.loop.train`). ``init``: a run
    whose weights a new run starts from (fine-tuning; see :func:`videosynth.train.checkpointing.init_from`),
    or the base run a LoRA fine-tune adapts (``finetune.lora_rank > 0``; see :mod:`videosynth.train.finetune`).

    Raises:
        Interrupted: SIGINT / SIGTERM stopped the run after saving a checkpoint.
    """
    cfg = resolve_config(config, overrides, resume)
    if init is not None and get_family(cfg.family).can.lora:
        cfg = with_base_run(cfg, init)
    if run_dir is not None and resume is None and Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder; choose another --run-dir")
    objective_cls = get_family(cfg.family).objective
    dataset = objective_cls.build_dataset(cfg, "train")  # the prior may train on cached tokens
    run_dir = Path(resume) if resume is not None else Path(run_dir) if run_dir else default_run_dir(cfg, config)
    eval_fn = _eval_fn(cfg) if cfg.train.eval_every > 0 else None
    train(cfg, objective_cls, run_dir, dataset, resume=resume is not None, progress=progress, eval_fn=eval_fn,
          init=init)
    return run_dir


def _eval_fn(cfg: RunConfig):
    """Periodic weight-free evaluation for runs on the built-in data (``train.eval_every``)."""
    from videosynth.metrics import evaluate_during_training

    name = cfg.data.name

    def fn(objective, step):
        return evaluate_during_training(lambda n, g: sample_grid(objective, n, g), name, cfg.train.eval_num, cfg.train.seed, data_config=cfg.data)

    return fn


__all__ = ["run_training", "resolve_config"]
