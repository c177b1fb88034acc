"""Training logs: ``log.jsonl`` rows, the loss plot, periodic sample videos.

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


def jsonable(value):
    """Floats rounded for the log; NaN/Inf become null (JSON has no NaN)."""
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


def append_row(log_path: Path, row: dict) -> None:
    """Append one JSON line to ``log.jsonl``; a full disk is a one-line CheckpointError."""
    try:
        with open(log_path, "a") as f:
            f.write(json.dumps({k: jsonable(v) for k, v in row.items()}) + "\n")
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


def write_loss_plot(log_path: Path, out: Path) -> None:
    """Plot every ``loss*`` series of ``log.jsonl`` into a PNG (PIL only, no matplotlib)."""
    from PIL import Image, ImageDraw

    series: dict[str, list[tuple[int, float]]] = {}
    if not log_path.is_file():
        return
    for line in log_path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        for key, value in row.items():
            if key.startswith("loss") and isinstance(value, (int, float)) and math.isfinite(value):
                series.setdefault(key, []).append((row["step"], float(value)))
    width, height, margin = 800, 420, 50
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([margin, 20, width - 20, height - margin], outline="black")
    points = [p for s in series.values() for p in s]
    if points:
        x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
        y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1e-6)
        colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

        def xy(p):
            return (
                margin + (p[0] - x0) / (x1 - x0) * (width - margin - 20),
                height - margin - (p[1] - y0) / (y1 - y0) * (height - margin - 20),
            )

        for i, (name, pts) in enumerate(sorted(series.items())):
            colour = colours[i % len(colours)]
            if len(pts) > 1:
                draw.line([xy(p) for p in pts], fill=colour, width=2)
            draw.text((margin + 10, 25 + 14 * i), name, fill=colour)
        draw.text((margin, height - margin + 8), f"step {x0}", fill="black")
        draw.text((width - 120, height - margin + 8), f"step {x1}", fill="black")
        draw.text((4, 20), f"{y1:.3g}", fill="black")
        draw.text((4, height - margin - 12), f"{y0:.3g}", fill="black")
    tmp = temp_path(out)
    try:
        img.save(tmp, format="PNG")
        os.replace(tmp, out)
    except OSError as exc:
        raise CheckpointError(f"cannot write {out}: {exc.strerror or exc}; free disk space and resume") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_samples(videos: torch.Tensor | None, run_dir: Path, step: int, fps: int) -> Path | None:
    """A sample grid ``float [n, C, T, H, W]`` in [-1, 1] as ``samples/step-NNNNNN.mp4``."""
    from videosynth.io import write_grid

    if videos is None:
        return None
    out = Path(run_dir) / "samples" / f"step-{step:06d}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_grid(out, videos.float().cpu(), nrow=int(math.ceil(math.sqrt(videos.shape[0]))), fps=fps)
    return out
