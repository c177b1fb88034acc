"""Helpers the benchmarks share: run the real CLI, train a config for a wall-clock budget, read a run's steps.

Imported by the scripts beside it (``families.py``, ``matrix.py``), which put this folder on ``sys.path``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MANY_STEPS = 10**6  # train.steps: the time limit ends every run


def videosynth(*args: str, log: Path | None = None) -> float:
    """Run the CLI (this interpreter), output to ``log``; returns wall seconds. Raises on failure."""
    cmd = [sys.executable, "-m", "videosynth", *args]
    start = time.perf_counter()
    with open(log, "a") if log else open("/dev/null", "w") as out:
        out.write(f"$ videosynth {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"`videosynth {' '.join(args)}` failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - start


def config_of(path: str, **changes) -> dict:
    """The YAML config at ``path`` (from the repository root) with ``section.key=value`` changes."""
    cfg = yaml.safe_load((ROOT / path).read_text())
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if name:
            cfg.setdefault(section, {})[name] = value
        else:
            cfg[section] = value
    return cfg


def train(cfg: dict, run_dir: Path, seconds: float, seed: int, log: Path, steps: int = MANY_STEPS,
          args: tuple[str, ...] = ()) -> float:
    """``videosynth train`` of ``cfg`` for ``seconds`` of loop time (or ``steps``, whichever ends first), with
    more command-line ``args`` (``--init RUN``, ``--set KEY=VALUE``); returns the process's wall seconds."""
    cfg = dict(cfg)
    cfg["train"] = {**cfg.get("train", {}), "steps": steps, "time_limit": max(1.0, seconds), "seed": seed,
                    "sample_every": 0, "ckpt_every": MANY_STEPS, "eval_every": 0}
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return videosynth("train", "--config", str(path), "--run-dir", str(run_dir), "--no-progress", *args, log=log)


STARTUP_S = 5.0  # a training process's start-up (imports, data, model), which a wall-clock budget pays


# loss settings that move where a step's work goes (which flow times are drawn), not how much there is
COST_NEUTRAL_LOSS = ("logit_mean", "logit_std")


def _cost_of(key: str) -> str:
    """A :class:`Budget` rate key without its cost-neutral loss settings: keys equal here time the same."""
    parts = json.loads(key)
    parts["loss"] = {k: v for k, v in (parts.get("loss") or {}).items() if k not in COST_NEUTRAL_LOSS}
    return json.dumps(parts, sort_keys=True)


class Budget:
    """Seconds of training, spent as wall-clock (``train.time_limit``) or, ``calibrated``, as steps.

    Calibrated: each distinct network and batch (model, loss and condition sections, batch size) is
    first timed for ``calib_seconds`` and its best log interval's rate (steps per second: the least
    disturbed one) is kept in ``rates`` (a dict the caller stores in its JSON); a run of ``s``
    seconds then trains ``rate x (s - STARTUP_S)`` steps. On an idle machine both spend the same;
    a calibrated run's result does not depend on what else the machine ran meanwhile. The timing
    itself does: time each network once on an idle machine (the rates are kept, so a resumed
    benchmark reuses them), or a busy one hands it too few steps. A network that differs from a timed
    one only in :data:`COST_NEUTRAL_LOSS` settings takes its rate, so an ablation of those settings
    is never timed again on a busy machine.
    """

    def __init__(self, calibrated: bool, rates: dict, calib_dir: Path, calib_seconds: float = 40.0):
        self.calibrated, self.rates, self.calib_dir, self.calib_seconds = calibrated, rates, calib_dir, calib_seconds

    def rate(self, cfg: dict, log: Path) -> float:
        key = json.dumps({k: cfg.get(k) for k in ("family", "model", "loss", "condition")}
                         | {"batch": cfg.get("train", {}).get("batch_size")}, sort_keys=True)
        if key not in self.rates:
            twin = next((k for k in self.rates if _cost_of(k) == _cost_of(key)), None)
            if twin is not None:
                self.rates[key] = self.rates[twin]  # the same work a step: timed once, idle, already
        if key not in self.rates:
            run = fresh(self.calib_dir / f"calibrate-{len(self.rates)}")
            train(cfg, run, self.calib_seconds, 0, log)
            rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
            self.rates[key] = max(r["it_s"] for r in rows[2:] or rows)  # past the warm-up
            print(f"  calibrated {cfg['family']}: {self.rates[key]:.2f} steps/s", file=sys.stderr, flush=True)
        return self.rates[key]

    def train(self, cfg: dict, run_dir: Path, seconds: float, seed: int, log: Path) -> float:
        """Train ``cfg`` for ``seconds``; returns the seconds spent (wall, or what the steps stand for)."""
        if not self.calibrated:
            return train(cfg, run_dir, seconds, seed, log)
        optim = dict(cfg.get("optim") or {})
        decay_share = optim.pop("decay_share", 0.0)  # a cosine decay over this share of the steps
        cfg = {**cfg, "optim": optim}
        steps = max(1, round(self.rate(cfg, log) * (seconds - STARTUP_S)))
        if decay_share:
            optim["decay_steps"] = round(steps * decay_share)
        train(cfg, run_dir, MANY_SECONDS, seed, log, steps=steps)
        return seconds


def fresh(run: Path) -> Path:
    """``run`` emptied: a folder left by an interrupted sitting of a benchmark is trained again."""
    shutil.rmtree(run, ignore_errors=True)
    return run


MANY_SECONDS = 10**6  # train.time_limit of a run its steps end


def last_step(run_dir: Path) -> int:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    return max(int(r["step"]) for r in rows)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def figure_for(args) -> Path | None:
    """The figure a benchmark writes: ``--figure``, else the ``--json`` path as .png; its suffix is
    checked now, before, not after, the hours of training."""
    figure = Path(args.figure) if args.figure else Path(args.json).with_suffix(".png") if args.json else None
    if figure is not None:
        from videosynth.plots import check_suffix

        check_suffix(figure, "--figure")
    return figure


def read_results(args) -> dict:
    """What ``--plot-only`` draws: the ``--json`` results file (SystemExit naming it when missing)."""
    if not args.json or not Path(args.json).is_file():
        raise SystemExit(f"--plot-only reads an existing results file: --json {args.json} not found")
    return json.loads(Path(args.json).read_text())
