"""Training logs: ``log.jsonl`` rows, learning rates, the loss plot, periodic sample videos.

``log.jsonl`` is the source of truth: one JSON object per logged step. Values an objective
returns as 0-d tensors stay on the device until a row is written (``train.log_every``), where
they are brought to the host in one transfer.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from videosynth.errors import CheckpointError
from videosynth.io import temp_path


def to_host(metrics: dict) -> dict[str, float | str]:
    """Logged values as Python numbers: every tensor brought to the host in one transfer."""
    tensors = {k: v for k, v in metrics.items() if isinstance(v, torch.Tensor)}
    out = {k: v for k, v in metrics.items() if k not in tensors}
    if tensors:
        device = next(iter(tensors.values())).device
        stacked = torch.stack([v.detach().float().reshape(()).to(device) for v in tensors.values()])  # (K,)
        out.update(zip(tensors, stacked.cpu().tolist()))
    return {k: out[k] for k in metrics}


def log_value(value):
    """A logged value as ``log.jsonl`` holds it: floats rounded, NaN/Inf as null (JSON has no NaN; a
    reader of the log sees a missing number, where metric results spell them out as strings)."""
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


def append_row(log_path: Path, row: dict) -> None:
    """Append one JSON line to ``log.jsonl``; a full disk is a one-line CheckpointError."""
    try:
        with open(log_path, "a") as f:
            f.write(json.dumps({k: log_value(v) for k, v in row.items()}) + "\n")
    except OSError as exc:
        raise CheckpointError(f"cannot write {log_path}: {exc.strerror or exc}; free disk space and resume") from None


def truncate_log(log_path: Path, step: int) -> int:
    """Cut ``log.jsonl`` back to the rows of steps ``<= step`` (a resume from checkpoint ``step``).

    Rows logged after the checkpoint a run resumes from are logged again by the resumed run,
    and a line half-written by a killed process is not JSON: both are dropped, so no step appears
    twice. The file is replaced atomically. Returns the number of rows dropped.
    """
    if not log_path.is_file():
        return 0
    kept, dropped = [], 0
    for line in log_path.read_text().splitlines():
        try:
            row = json.loads(line)
            keep = isinstance(row, dict) and int(row.get("step", 0)) <= step
        except (ValueError, TypeError):
            keep = False
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        tmp = temp_path(log_path)
        try:
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, log_path)
        except OSError as exc:
            raise CheckpointError(f"cannot rewrite {log_path}: {exc.strerror or exc}; free disk space") from None
        finally:
            tmp.unlink(missing_ok=True)
    return dropped


def learning_rates(optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
    """The learning rate each optimiser's last step used: ``lr_<name>`` (``lr_<name>_<i>`` per group when they differ).

    Read from ``param_groups`` at log time only (objectives set warm-up rates there before
    stepping); plain Python numbers, so no device transfer.
    """
    out = {}
    for name, opt in optimizers.items():
        rates = [float(group["lr"]) for group in opt.param_groups]
        if len(set(rates)) == 1:
            out[f"lr_{name}"] = rates[0]
        else:
            out.update({f"lr_{name}_{i}": rate for i, rate in enumerate(rates)})
    return out


def write_loss_plot(log_path: Path, out: Path) -> None:
    """Draw the losses of ``log.jsonl`` into ``out`` (a PNG, written atomically), titled with the run's name.

    One panel per loss group, smoothed over the raw series (see :mod:`videosynth.plots`); a full
    disk is a one-line CheckpointError.
    """
    from videosynth.plots import loss_figure, read_log, save_figure

    rows = read_log(log_path) if log_path.is_file() else []
    fig = loss_figure(rows, log_path.parent.name)
    try:
        save_figure(fig, out)
    except OSError as exc:
        raise CheckpointError(f"cannot write {out}: {exc.strerror or exc}; free disk space and resume") from None


def write_samples(videos: torch.Tensor | None, run_dir: Path, step: int, fps: int) -> Path | None:
    """A sample grid ``float [n, C, T, H, W]`` in [-1, 1] as ``samples/step-NNNNNN.mp4``."""
    from videosynth.io import write_grid

    if videos is None:
        return None
    out = Path(run_dir) / "samples" / f"step-{step:06d}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_grid(out, videos.float().cpu(), nrow=int(math.ceil(math.sqrt(videos.shape[0]))), fps=fps)
    return out
