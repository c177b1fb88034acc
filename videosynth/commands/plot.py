"""``videosynth plot RUN [RUN ...] --out cmp.png``: training curves of runs side by side.

Reads each run's ``log.jsonl``; draws one panel per key and one line per run, labelled by the
run's folder name (with its parent folders where two names are the same). By default the
keys are the losses every run logged (the keys ``loss.png`` draws); ``--keys`` picks any
logged numbers (``--keys loss_g,loss_d``, ``--keys eval/valid_share``). ``--x time`` puts
wall-clock seconds since each run's first logged row on the x-axis, for runs compared on equal
compute. Each series is drawn faint as logged with an exponential moving average over it
(``--smooth``: the EMA weight in [0, 1), ``auto`` = a span of 1/30 of the points, 0 = none).
The suffix of ``--out`` picks the format: .png, .pdf or .svg. Examples::

    videosynth plot runs/gan-a runs/gan-b --out cmp.png
    videosynth plot runs/gan-a runs/gan-b --keys loss_g,loss_d --x time --smooth 0.9 --out cmp.pdf
"""

from __future__ import annotations

import argparse
from pathlib import Path

from videosynth.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("plot", help="training curves of runs side by side (log.jsonl -> png/pdf/svg)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (each with a log.jsonl)")
    p.add_argument("--out", required=True, help="figure to write: .png, .pdf or .svg")
    p.add_argument("--keys", help="comma-separated logged keys, one panel each (default: the losses all runs logged)")
    p.add_argument("--x", choices=("step", "time"), default="step",
                   help="x-axis: step (default) or wall-clock seconds since each run's first row")
    p.add_argument("--smooth", default="auto",
                   help="EMA weight in [0, 1) over each series (0 = none); auto (default): a span of 1/30 of the points")
    p.set_defaults(func=run)


def smoothing(value: str) -> float | None:
    """``--smooth``: None for ``auto``, else a weight in [0, 1).

    Raises:
        ConfigError: not ``auto`` nor a number in [0, 1).
    """
    if value == "auto":
        return None
    try:
        weight = float(value)
    except ValueError:
        weight = -1.0
    if not 0.0 <= weight < 1.0:
        raise ConfigError(f"--smooth {value}: give auto or an EMA weight in [0, 1) (0 = no smoothing)")
    return weight


def choose_keys(logs: dict[str, list[dict]], runs: list[Path], keys: str | None) -> list[str]:
    """The keys to draw: those asked for (each logged by every run), or the losses all runs share.

    Raises:
        ConfigError: a key a run did not log (naming the run and the keys it has), or no shared loss.
    """
    from videosynth.plots import PANEL_ORDER, loss_group, numeric_keys

    available = {label: numeric_keys(rows) for label, rows in logs.items()}
    if keys:
        wanted = [k.strip() for k in keys.split(",") if k.strip()]
        if not wanted:
            raise ConfigError(f"--keys {keys!r}: give comma-separated keys, e.g. --keys loss_g,loss_d")
        for (label, have), run in zip(available.items(), runs):
            for key in wanted:
                if key not in have:
                    raise ConfigError(f"--keys {key}: not logged in {run / 'log.jsonl'}; "
                                      f"its keys: {', '.join(have)}")
        return wanted
    shared = [k for k in next(iter(available.values())) if all(k in have for have in available.values())]
    losses = [k for k in shared if loss_group(k) is not None]
    if not losses:
        logged = "; ".join(f"{run}: {', '.join(have) or 'nothing'}" for run, have in zip(runs, available.values()))
        raise ConfigError(f"the runs share no loss key ({logged}); pick keys with --keys")
    return sorted(losses, key=lambda k: PANEL_ORDER.index(loss_group(k)))


def run(args: argparse.Namespace) -> int:
    from videosynth.plots import check_suffix, compare_figure, read_log, run_labels, save_figure

    check_suffix(args.out)
    weight = smoothing(args.smooth)
    runs = [Path(r) for r in args.runs]
    labels = run_labels(runs)
    logs: dict[str, list[dict]] = {}
    for label, run_dir in zip(labels, runs):
        if not run_dir.is_dir():
            raise ConfigError(f"{run_dir}: no such run directory")
        rows = read_log(run_dir / "log.jsonl")
        if not rows:
            raise ConfigError(f"{run_dir / 'log.jsonl'} has no rows yet: train the run first")
        logs[label] = rows
    keys = choose_keys(logs, runs, args.keys)
    if args.x == "time":
        for run_dir, rows in zip(runs, logs.values()):
            if not any("time" in row for row in rows):
                raise ConfigError(f"--x time: {run_dir / 'log.jsonl'} has no time column; use --x step")
    fig = compare_figure(logs, keys, args.x, weight, title=", ".join(labels))
    out = save_figure(fig, args.out)
    print(f"wrote {out} ({len(keys)} panel{'s' if len(keys) != 1 else ''}: {', '.join(keys)})")
    return 0
