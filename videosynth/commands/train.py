"""``videosynth train --config FILE.yaml [--set key=value ...] [--run-dir DIR] [--init RUN] | --resume RUN_DIR``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config (or --resume a run)",
                       description="Train a model. Launch under `torchrun --nproc_per_node N` for DDP.")
    p.add_argument("--config", "-c", help="YAML run config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=200 (repeatable)")
    p.add_argument("--run-dir", help="where to write the run (default: runs/<config>-NNN)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run exactly where it stopped")
    p.add_argument("--init", metavar="RUN_DIR", help="start a new run from this run's weights (fine-tuning: new data "
                   "or classes; the same family and architecture)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (shortcut for --set train.device=...)")
    p.add_argument("--steps", type=int, help="shortcut for --set train.steps=N")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from videosynth.train.run import run_training

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    run_dir = run_training(args.config, overrides, args.run_dir, args.resume, progress=not args.no_progress,
                           init=args.init)
    print(f"done: {run_dir}")
    return 0
