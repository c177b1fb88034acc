"""Training curves drawn with matplotlib: a run's ``loss.png`` and ``videosynth plot`` comparisons.

Both read ``log.jsonl`` (one JSON object per logged step, the source of truth). Loss keys are
grouped into panels by name (:data:`LOSS_GROUPS`: the GAN's generator / discriminator losses
apart from reconstruction terms, regularisers and classification heads), each series drawn
faint as logged with its smoothed line over it (:func:`ema`, debiased like TensorBoard's
smoothing), on a log y-axis where a panel's values are positive and span more than
:data:`LOG_SCALE_DECADES` decades (:func:`use_log_scale`).

matplotlib is imported inside the functions that draw, never at import time (``videosynth
--help`` stays fast), and figures are built on the Agg canvas directly (no pyplot, no GUI, no
global figure state). Files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from videosynth.errors import CheckpointError, ConfigError
from videosynth.io import temp_path

# ---- panels: which loss keys are drawn together ------------------------------------------
# (title, exact keys, key prefixes); a key joins the first group that names it or a prefix of
# it; any other key starting with "loss" falls into the last group, so a new family's losses
# are drawn without a change here.
LOSS_GROUPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("generator / discriminator", ("loss_g", "loss_d"), ("loss_g_", "loss_d_")),
    ("reconstruction", ("recon", "loss_recon", "perceptual", "mask_l1"), ()),
    ("regularisers", ("loss_commit", "loss_codebook", "loss_kl", "gp", "r1"), ()),
    ("classification", ("aux_class_real", "aux_class_fake"), ("loss_category_",)),
    ("loss", ("loss", "bits_per_token"), ("loss",)),
)
PANEL_ORDER = ("loss", "generator / discriminator", "reconstruction", "regularisers", "classification")

LOG_SCALE_DECADES = 2.0  # a positive series spanning more than 100x reads better on a log axis
SMOOTH_SPAN_SHARE = 30  # automatic smoothing: an EMA span of 1/30 of the points (pandas "span")
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
PANEL_WIDTH, PANEL_HEIGHT = 6.4, 3.4  # inches per panel
DPI = 110
RAW_ALPHA = 0.3  # the series as logged, behind its smoothed line
MAX_COLUMNS = 2


def loss_group(key: str) -> str | None:
    """The panel a logged key is drawn in, or None for what is not a loss (psnr, grad_norm_g, lr_*, it_s)."""
    for title, names, prefixes in LOSS_GROUPS:
        if key in names or any(key.startswith(p) for p in prefixes):
            return title
    return None


# ---- reading log.jsonl ------------------------------------------------------------------


def read_log(path: str | Path) -> list[dict]:
    """The rows of a ``log.jsonl``; a line that is not a JSON object (half-written) is skipped.

    Raises:
        CheckpointError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found: is {path.parent} a run directory written by videosynth train?")
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def is_number(value) -> bool:
    """A finite logged number (``null`` = NaN/Inf in the log, strings and booleans are not series)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def numeric_keys(rows: list[dict]) -> list[str]:
    """Keys with at least one finite number, in first-seen order (``step`` and ``time`` left out)."""
    keys: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if key not in ("step", "time") and is_number(value):
                keys.setdefault(key)
    return list(keys)


def series(rows: list[dict], key: str, x: str = "step") -> tuple[list[float], list[float]]:
    """``(xs, ys)`` of ``key``: x is the step, or with ``x="time"`` seconds since the first timed row.

    ``time`` is the wall clock when the row was written, so a pause between a stop and a resume
    counts; rows without a time (older eval rows) are left out of a time axis.
    """
    if x not in ("step", "time"):
        raise ConfigError(f"--x {x}: use step or time")
    times = [row["time"] for row in rows if is_number(row.get("time"))]
    start = min(times) if times else 0.0
    xs, ys = [], []
    for row in rows:
        value = row.get(key)
        if not is_number(value):
            continue
        if x == "time":
            if not is_number(row.get("time")):
                continue
            xs.append(float(row["time"]) - start)
        else:
            xs.append(float(row["step"]))
        ys.append(float(value))
    return xs, ys


# ---- smoothing and scales ----------------------------------------------------------------


def ema(values: list[float], weight: float) -> list[float]:
    """Debiased exponential moving average: ``s_i = w s_{i-1} + (1 - w) x_i``, divided by ``1 - w^(i+1)``.

    The division removes the pull towards the zero start (TensorBoard's smoothing does the
    same), so the first point is the first value and a constant series stays constant.
    ``weight`` 0 returns the values unchanged.

    Raises:
        ConfigError: ``weight`` outside ``[0, 1)``.
    """
    if not 0.0 <= weight < 1.0:
        raise ConfigError(f"smoothing weight {weight!r} must be in [0, 1) (0 = none)")
    out, acc, debias = [], 0.0, 1.0
    for v in values:
        acc = weight * acc + (1.0 - weight) * v
        debias *= weight
        out.append(acc / (1.0 - debias))
    return out


def auto_weight(n: int) -> float:
    """The EMA weight whose span is ``n / SMOOTH_SPAN_SHARE`` points (0, i.e. none, for short logs).

    A fixed weight barely smooths a long log and over-smooths a short one; with span ``N`` the
    weight is ``1 - 2 / (N + 1)`` (pandas' ``ewm(span=N)``).
    """
    span = n / SMOOTH_SPAN_SHARE
    return 0.0 if span <= 1 else 1.0 - 2.0 / (span + 1.0)


def use_log_scale(values: list[float]) -> bool:
    """Whether a panel's values read better on a log axis: all positive, spanning > ``LOG_SCALE_DECADES`` decades."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite or min(finite) <= 0:
        return False
    return math.log10(max(finite) / min(finite)) > LOG_SCALE_DECADES


# ---- figures -----------------------------------------------------------------------------


def new_figure(panels: int, title: str):
    """An Agg-canvas figure with ``panels`` axes in up to ``MAX_COLUMNS`` columns; returns (fig, axes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(MAX_COLUMNS, max(panels, 1))
    rows = math.ceil(max(panels, 1) / cols)
    fig = Figure(figsize=(PANEL_WIDTH * cols, PANEL_HEIGHT * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[panels:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, axes[:max(panels, 1)]


def _draw(ax, xs: list[float], ys: list[float], label: str, colour: str, weight: float | None) -> None:
    """One series: faint as logged, its smoothed line over it (``weight`` None = automatic)."""
    w = auto_weight(len(ys)) if weight is None else weight
    if w == 0:
        ax.plot(xs, ys, color=colour, linewidth=1.5, label=label, marker="." if len(ys) < 2 else None)
        return
    ax.plot(xs, ys, color=colour, linewidth=1.0, alpha=RAW_ALPHA)
    ax.plot(xs, ema(ys, w), color=colour, linewidth=1.8, label=label)


def _finish(ax, title: str, xlabel: str, ylabel: str, values: list[float]) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if use_log_scale(values):
        ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="best")


def palette(n: int) -> list[str]:
    """``n`` colours of matplotlib's default cycle (repeating past its length)."""
    from matplotlib import rcParams

    cycle = rcParams["axes.prop_cycle"].by_key()["color"]
    return [cycle[i % len(cycle)] for i in range(n)]


def _smoothing_note(weight: float | None) -> str:
    if weight is None:
        return f"EMA with a span of 1/{SMOOTH_SPAN_SHARE} of the points (none for {SMOOTH_SPAN_SHARE} points or fewer)"
    return f"EMA, weight {weight:g}" if weight > 0 else "not smoothed"


def loss_figure(rows: list[dict], run_name: str, weight: float | None = None):
    """A run's losses, one panel per :func:`loss_group`; title: run name and last step.

    Returns a matplotlib ``Figure`` (Agg canvas). With no loss logged yet, one empty panel says so.
    """
    groups: dict[str, list[str]] = {}
    for key in numeric_keys(rows):
        group = loss_group(key)
        if group is not None:
            groups.setdefault(group, []).append(key)
    ordered = [g for g in PANEL_ORDER if g in groups]
    step = max((r["step"] for r in rows), default=0)
    fig, axes = new_figure(len(ordered), f"{run_name}: step {step}")
    if not ordered:
        axes[0].text(0.5, 0.5, "no loss logged yet", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_xlabel("step")
        return fig
    for ax, group in zip(axes, ordered):
        values: list[float] = []
        for key, colour in zip(groups[group], palette(len(groups[group]))):
            xs, ys = series(rows, key)
            _draw(ax, xs, ys, key, colour, weight)
            values += ys
        _finish(ax, group, "step", "value (log scale)" if use_log_scale(values) else "value", values)
    fig.supxlabel(f"faint: as logged; line: {_smoothing_note(weight)}", fontsize="x-small", alpha=0.7)
    return fig


def run_labels(runs: list[Path]) -> list[str]:
    """Each run's folder name, with as many parent folders as it takes to tell them apart."""
    parts = [Path(os.path.abspath(r)).parts for r in runs]
    depth = 1
    while depth < max(len(p) for p in parts):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
        depth += 1
    return ["/".join(p) for p in parts]


def compare_figure(logs: dict[str, list[dict]], keys: list[str], x: str = "step", weight: float | None = None,
                   title: str = ""):
    """One panel per key, one line per run (``logs``: label -> rows), x = step or wall-clock seconds."""
    xlabel = "step" if x == "step" else "seconds since the first logged row"
    fig, axes = new_figure(len(keys), title or f"{len(logs)} runs")
    colours = palette(len(logs))
    for ax, key in zip(axes, keys):
        values: list[float] = []
        for (label, rows), colour in zip(logs.items(), colours):
            xs, ys = series(rows, key, x)
            if ys:
                _draw(ax, xs, ys, label, colour, weight)
                values += ys
        _finish(ax, key, xlabel, key, values)
    fig.supxlabel(f"faint: as logged; line: {_smoothing_note(weight)}", fontsize="x-small", alpha=0.7)
    return fig


def check_suffix(out: str | Path, what: str = "--out") -> str:
    """The figure format of ``out`` (``png``, ``pdf``, ``svg``).

    Raises:
        ConfigError: another suffix.
    """
    suffix = Path(out).suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise ConfigError(f"{what} {out}: cannot write '{suffix or 'no suffix'}' figures; "
                          f"use a name ending in {', '.join(FIGURE_SUFFIXES)}")
    return suffix[1:]


def save_figure(fig, out: str | Path) -> Path:
    """Write ``fig`` to ``out`` atomically (temporary name in the same folder, then rename).

    Raises:
        ConfigError: an unsupported suffix.
        OSError: the file system refused the write (callers name the fix).
    """
    out = Path(out)
    fmt = check_suffix(out)
    tmp = temp_path(out)
    try:
        fig.savefig(tmp, format=fmt)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
