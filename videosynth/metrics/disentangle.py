"""Content/motion disentanglement on the built-in data: does one code fix *what* moves and the other *how*?

MoCoGAN (Tulyakov et al., "MoCoGAN: Decomposing Motion and Content for Video Generation", CVPR 2018)
draws a content code once per clip and a motion path per frame. If the two are disentangled, clips
that share a content code show the same object (class, size, colour) in different motions, and clips
that share a motion path move the same way whatever the object. Both are checked here on clips laid
out in groups, with no network beyond the class probe of ``eval class-acc``:

*Per clip* (:func:`measure_clips`):

- ``class``: the probe's most likely class;
- from the clip's longest track (the detector and tracker of :mod:`videosynth.metrics.tracking`):
  ``size``, the median blob area (px); ``colour``, the median blob colour (uint8 RGB); and
  ``displacement``, the tracked centroid's last position minus its first (px, (x, y)). An untracked
  clip (no object followed for ``min_track`` frames) has none of the three.

*Agreement of a measure within groups* (:func:`agreement`): the share of unordered pairs of
different clips of one group that agree, over the pairs of every group:

- ``class``: the probe classes are equal;
- ``size``: both clips are tracked and their areas differ by at most :data:`SIZE_TOLERANCE` of the larger;
- ``colour``: both are tracked and their colours lie within :data:`COLOUR_TOLERANCE` (Euclidean, uint8 RGB);
- ``trajectory``: both are tracked, both displacements are at least :data:`MIN_DISPLACEMENT` of the
  frame side long, and the angle between them is at most :data:`ANGLE_TOLERANCE` degrees.

Groups (:func:`grid_groups`): in a content x motion grid (rows share a content code, columns a
motion), *content-fixed* groups are the rows and *motion-fixed* groups the columns; *shuffled*
groups hold clips whose codes were all drawn independently, grouped at random, so their agreement
is what clips that share nothing score (class about 1 / classes, trajectory about 1/4 for directions
spread evenly). A disentangled model scores content-fixed class, size and colour agreement near 1
with trajectory agreement near shuffled, and motion-fixed trajectory agreement near 1 with class
agreement near shuffled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Callable

import numpy as np
import torch

from videosynth.errors import VideoSynthError
from videosynth.metrics.tracking import TrackingConfig, Track, clip_frames, detect_blobs, track_blobs

SIZE_TOLERANCE = 0.25  # relative area difference of one object seen twice (the tracker's size_tol)
COLOUR_TOLERANCE = 40.0  # uint8 RGB distance of one colour seen twice (the tracker's colour_tol)
ANGLE_TOLERANCE = 45.0  # degrees: half of a compass quadrant, so even directions agree 1/4 of the time
MIN_DISPLACEMENT = 0.05  # share of the frame side a clip's object must travel to have a direction
MEASURES = ("class", "size", "colour", "trajectory")
GROUPINGS = ("content-fixed", "motion-fixed", "shuffled")


@dataclass
class ClipMeasures:
    """What :func:`measure_clips` sees in ``N`` clips (NaN where a clip has no track).

    classes: int64 ``[N]``; areas: float64 ``[N]`` px; colours: float64 ``[N, 3]`` uint8 units;
    displacements: float64 ``[N, 2]`` px (x, y); side: the frame side in px.
    """

    classes: np.ndarray
    areas: np.ndarray
    colours: np.ndarray
    displacements: np.ndarray
    side: int


def _longest_track(clip: torch.Tensor, cfg: TrackingConfig) -> Track | None:
    frames = clip_frames(clip)  # (T, H, W, 3) in [0, 1]
    per_frame = [detect_blobs(f, cfg)[0] for f in frames]
    tracks = [tr for tr in track_blobs(per_frame, cfg.max_jump * max(frames.shape[1:3])) if len(tr.blobs) >= cfg.min_track]
    return max(tracks, key=lambda tr: len(tr.blobs)) if tracks else None


def measure_clips(videos: torch.Tensor, classify: Callable[[torch.Tensor], torch.Tensor],
                  cfg: TrackingConfig | None = None) -> ClipMeasures:
    """The per-clip measures of ``videos`` (float ``[N, C, T, H, W]`` in ``[-1, 1]``).

    ``classify(videos)`` returns int64 ``[N]`` classes (:func:`probe_classifier` wraps the class probe).

    Raises:
        VideoSynthError: not a batch of clips.
    """
    if videos.ndim != 5:
        raise VideoSynthError(f"measure_clips expects videos [N, C, T, H, W], got {tuple(videos.shape)}")
    cfg = cfg or TrackingConfig()
    n = videos.shape[0]
    areas, colours, moves = np.full(n, math.nan), np.full((n, 3), math.nan), np.full((n, 2), math.nan)
    for i, clip in enumerate(videos):
        track = _longest_track(clip, cfg)
        if track is None:
            continue
        areas[i] = float(np.median([b.area for b in track.blobs]))
        colours[i] = np.median(np.stack([b.colour for b in track.blobs]), axis=0)  # (3,)
        moves[i] = track.blobs[-1].centre - track.blobs[0].centre  # (x, y)
    classes = classify(videos).cpu().numpy().astype(np.int64)  # (N,)
    return ClipMeasures(classes, areas, colours, moves, int(max(videos.shape[3:])))


def probe_classifier(probe, device: str, batch: int = 64) -> Callable[[torch.Tensor], torch.Tensor]:
    """``videos [N, C, T, H, W] -> int64 [N]``: the class probe's most likely class per clip, ``batch`` at a time."""
    @torch.inference_mode()
    def classify(videos: torch.Tensor) -> torch.Tensor:
        return torch.cat([probe(v.to(device))[1].argmax(1).cpu() for v in videos.split(batch)])
    return classify


def _pair_agrees(m: ClipMeasures, i: int, j: int) -> dict[str, bool]:
    """Whether clips ``i`` and ``j`` agree on each of :data:`MEASURES` (untracked clips agree on nothing tracked)."""
    a_i, a_j = m.areas[i], m.areas[j]
    size = bool(abs(a_i - a_j) <= SIZE_TOLERANCE * max(a_i, a_j))  # False when either is NaN
    colour = bool(np.linalg.norm(m.colours[i] - m.colours[j]) <= COLOUR_TOLERANCE)
    d_i, d_j = m.displacements[i], m.displacements[j]
    n_i, n_j = np.linalg.norm(d_i), np.linalg.norm(d_j)
    trajectory = False
    if np.isfinite([n_i, n_j]).all() and min(n_i, n_j) >= MIN_DISPLACEMENT * m.side:
        cos = float(np.dot(d_i, d_j) / (n_i * n_j))
        trajectory = math.degrees(math.acos(max(-1.0, min(1.0, cos)))) <= ANGLE_TOLERANCE
    return {"class": bool(m.classes[i] == m.classes[j]), "size": size, "colour": colour, "trajectory": trajectory}


def paths(m: ClipMeasures) -> dict[str, float]:
    """How far the clips' objects travel: ``directed``, the share of clips tracked with a displacement of
    at least :data:`MIN_DISPLACEMENT` of the frame (the clips whose trajectory has a direction to agree
    on), and ``median_px``, the median length of the tracked displacements (NaN when none is tracked)."""
    length = np.linalg.norm(m.displacements, axis=1)  # (N,) NaN where untracked
    tracked = np.isfinite(length)
    return {"directed": float((length[tracked] >= MIN_DISPLACEMENT * m.side).sum() / len(length)),
            "median_px": float(np.median(length[tracked])) if tracked.any() else math.nan}


def agreement(m: ClipMeasures, groups: np.ndarray) -> dict[str, float]:
    """Share of agreeing pairs per measure (see the module docstring) over the groups ``int [G, M]`` of clip
    indices into ``m``, ``M >= 2``; also ``pairs``, their number.

    Raises:
        VideoSynthError: groups of fewer than two clips.
    """
    groups = np.asarray(groups)
    if groups.ndim != 2 or groups.shape[1] < 2:
        raise VideoSynthError(f"agreement needs groups [G, M] of at least 2 clips, got shape {groups.shape}")
    counts = dict.fromkeys(MEASURES, 0)
    pairs = 0
    for group in groups:
        for i, j in combinations(group.tolist(), 2):
            for key, agrees in _pair_agrees(m, i, j).items():
                counts[key] += agrees
            pairs += 1
    return {**{k: counts[k] / pairs for k in MEASURES}, "pairs": float(pairs)}


def grid_groups(rows: int, cols: int) -> dict[str, np.ndarray]:
    """Groups of a row-major ``rows x cols`` content x motion grid (clip ``r * cols + c``: content ``r``,
    motion ``c``): ``content-fixed`` ``[rows, cols]`` (the rows), ``motion-fixed`` ``[cols, rows]`` (the columns)."""
    index = np.arange(rows * cols).reshape(rows, cols)  # (rows, cols)
    return {"content-fixed": index, "motion-fixed": index.T}


def disentanglement(grid: ClipMeasures, shuffled: ClipMeasures, rows: int, cols: int) -> dict:
    """Agreement (:func:`agreement`) of the content-fixed and motion-fixed groups of a ``rows x cols`` grid
    and of ``shuffled`` (clips with independent codes, grouped ``cols`` at a time), plus the share of tracked
    clips on each side and how far their objects travel (:func:`paths`):
    ``{"agreement": {grouping: {measure: share}}, "tracked": {...}, "paths": {"grid": ..., "shuffled": ...}}``.

    Raises:
        VideoSynthError: ``shuffled`` holds fewer than ``2 * cols`` clips or not a whole number of groups.
    """
    n = len(shuffled.classes)
    if n < 2 * cols or n % cols:
        raise VideoSynthError(f"shuffled clips must fill at least two groups of {cols}, got {n}")
    groups = grid_groups(rows, cols)
    table = {name: agreement(grid, g) for name, g in groups.items()}
    table["shuffled"] = agreement(shuffled, np.arange(n).reshape(-1, cols))
    tracked = {"grid": float(np.isfinite(grid.areas).mean()), "shuffled": float(np.isfinite(shuffled.areas).mean())}
    return {"agreement": table, "tracked": tracked, "paths": {"grid": paths(grid), "shuffled": paths(shuffled)}}


def format_table(result: dict) -> str:
    """Plain-text table of :func:`disentanglement`: one row per measure, one column per grouping."""
    table = result["agreement"]
    lines = [f"{'agreement':<12}" + "".join(f"{g:>15}" for g in GROUPINGS)]
    for key in MEASURES:
        lines.append(f"{key:<12}" + "".join(f"{table[g][key]:>15.3f}" for g in GROUPINGS))
    lines.append(f"{'pairs':<12}" + "".join(f"{int(table[g]['pairs']):>15d}" for g in GROUPINGS))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# A MoCoGAN run, end to end
# ---------------------------------------------------------------------------------------


def run_disentanglement(run, rows: int, seed: int, device: str, probe_path=None, probe_steps: int = 300,
                        ema: bool = True, cfg: TrackingConfig | None = None) -> dict:
    """:func:`disentanglement` of a MoCoGAN pipeline ``run`` trained on built-in data, with its class probe.

    A ``rows x rows`` content x motion grid (seed ``seed``) and ``rows * rows`` clips of independent codes
    (seed ``seed + 1``) are sampled; a class-conditional run gives every grid row one class (row ``r``:
    class ``r mod K``) and the independent clips random classes, so a content code is its class and its
    ``z_C`` together. The probe is the one ``eval class-acc`` trains on the run's data (or ``probe_path``).

    Returns :func:`disentanglement`'s dict with ``chance`` (class: 1 / classes), the probe's path, the protocol
    and ``paths["real"]``: how far the objects of as many real val clips travel (a model whose objects move
    less than the data's leaves more clips without a direction, which trajectory agreement cannot count).

    Raises:
        ConfigError: a run of another family, on data without ground truth, driven by sound, or ``rows < 2``.
    """
    from videosynth.data import build_dataset
    from videosynth.data.factory import BUILTIN
    from videosynth.errors import ConfigError
    from videosynth.metrics.class_accuracy import class_probe

    if run.family != "mocogan":
        raise ConfigError(f"eval disentangle needs a MoCoGAN run (content and motion codes); {run.run_dir} is a "
                          f"'{run.family}' run")
    if run.data.name not in BUILTIN:
        raise ConfigError(f"eval disentangle: {run.run_dir} was trained on '{run.data.name}', not on built-in data "
                          f"({', '.join(BUILTIN)}), so its clips have no classes and paths to be checked against")
    if run.takes_audio:
        raise ConfigError(f"eval disentangle: {run.run_dir} is driven by sound, so its motion is not a code to hold "
                          "fixed; use eval sync")
    if rows < 2:
        raise ConfigError(f"--rows {rows}: groups need at least 2 clips")
    names = build_dataset(run.data, "train").class_names
    probe, path = class_probe(run.data, names, device, probe_path, probe_steps)
    n = rows * rows
    grid_labels = shuffled_labels = None
    if run.condition_kind == "class":
        k = len(run.class_names)
        grid_labels = (torch.arange(n) // rows) % k  # (n,): one class per grid row
        shuffled_labels = torch.randint(k, (n,), generator=torch.Generator().manual_seed(seed + 1))
    with torch.inference_mode():
        grid = run.generate(n, torch.Generator().manual_seed(seed), labels=grid_labels, ema=ema,
                            grid="content-motion").float().cpu()  # (n, C, T, H, W)
        shuffled = run.generate(n, torch.Generator().manual_seed(seed + 1), labels=shuffled_labels,
                                ema=ema).float().cpu()  # (n, C, T, H, W)
    classify = probe_classifier(probe, device)
    cfg = cfg or TrackingConfig()
    result = disentanglement(measure_clips(grid, classify, cfg), measure_clips(shuffled, classify, cfg), rows, rows)
    val = build_dataset(run.data, "val")
    real = torch.stack([val[i]["video"] for i in range(min(n, len(val)))])  # (n, C, T, H, W): the paths to match
    result["paths"]["real"] = paths(measure_clips(real, classify, cfg))
    result.update(run=str(run.run_dir), step=run.step, probe=str(path), chance={"class": 1 / len(names)},
                  protocol={"rows": rows, "cols": rows, "seed": seed, "ema": ema, "frames": int(grid.shape[2]),
                            "size": int(grid.shape[3]), "size_tolerance": SIZE_TOLERANCE,
                            "colour_tolerance": COLOUR_TOLERANCE, "angle_tolerance": ANGLE_TOLERANCE,
                            "min_displacement": MIN_DISPLACEMENT})
    return result
