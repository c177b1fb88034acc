"""Weight-free metrics for the built-in data: detect, track and check the physics of bright objects on black.

The built-in datasets (moving digits, bouncing shapes) render a few bright
objects on a black background; each moves with constant velocity and reflects
elastically off the walls, and never changes size or colour. A generated clip
that matches the data should keep those invariants, which can be measured with
no pretrained network at all:

1. *detect* — threshold the brightest channel, label connected components
   (``scipy.ndimage.label`` on a slightly dilated mask so thin strokes of a digit
   stay one object), drop specks below ``min_area``;
2. *track* — match objects frame to frame by a constant-velocity prediction
   (Hungarian assignment, gated by ``max_jump``);
3. *check* — per clip: object-count persistence, size persistence (relative std
   of blob area), colour drift, straight-line motion between bounces (second
   difference of centre positions away from walls, in pixels), bounce
   correctness (velocity sign flips only near walls), and whether all of these
   are within tolerance (a *physically valid* clip).

Statistics are aggregated over clips and reported for real and generated clips
side by side, with the gap, since no real renderer is perfect under this test
(objects that overlap merge into one blob, anti-aliasing changes areas slightly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import scipy.ndimage
import scipy.optimize
import torch

from videosynth.errors import VideoSynthError

CONNECTIVITY = np.ones((3, 3), dtype=bool)  # 8-connected components


@dataclass
class TrackingConfig:
    """Detector, tracker and tolerance settings (pixel units unless stated)."""

    threshold: float = 0.25  # object pixels: brightest channel above this, in [0, 1]
    min_area: int = 4  # smaller blobs are noise specks
    max_area_share: float = 0.25  # larger blobs are not objects (e.g. a frame full of noise)
    dilate: int = 1  # dilation steps before labelling (joins strokes of one glyph)
    max_jump: float = 0.35  # largest plausible motion per frame, as a share of the frame side
    min_track: int = 4  # tracks shorter than this are not used for the physics checks
    wall_margin: float = 1.5  # distance from a wall (beyond the object's speed) that counts as "at the wall"
    min_speed: float = 0.3  # px/frame; slower motion has no reliable direction
    count_tol: float = 0.75  # least share of frames showing the clip's usual object count
    size_tol: float = 0.25  # largest relative std of a blob's area
    colour_tol: float = 40.0  # largest mean colour drift, uint8 units
    accel_tol: float = 0.75  # largest mean |second difference| of the centre away from walls
    bounce_tol: float = 0.99  # least share of direction changes that happen at a wall
    background_tol: float = 0.05  # largest mean brightness (in [0, 1]) of the background around objects


@dataclass
class Blob:
    """One detected object: centre (x, y), area (brightness-weighted, px), mean colour (uint8 units),
    bbox of its above-threshold pixels (x0, y0, x1, y1)."""

    centre: np.ndarray
    area: float
    colour: np.ndarray
    bbox: tuple[int, int, int, int]


@dataclass
class Track:
    """Per-frame blobs of one object; ``frames[i]`` is the frame index of ``blobs[i]``."""

    frames: list[int] = field(default_factory=list)
    blobs: list[Blob] = field(default_factory=list)

    def predict(self) -> np.ndarray:
        """Constant-velocity guess of the next centre."""
        if len(self.blobs) >= 2:
            return 2 * self.blobs[-1].centre - self.blobs[-2].centre
        return self.blobs[-1].centre


# ---------------------------------------------------------------------------------------
# Detection and tracking
# ---------------------------------------------------------------------------------------


def detect_blobs(frame: np.ndarray, cfg: TrackingConfig) -> tuple[list[Blob], float]:
    """Bright objects in one frame ``float [H, W, 3]`` in ``[0, 1]`` (black background).

    Returns:
        ``(blobs, background)``: the accepted objects and the mean brightness in
        ``[0, 1]`` of every pixel outside them (0 for a clean black background).
    """
    intensity = frame.max(axis=2)  # (H, W)
    mask = intensity > cfg.threshold
    grouped = scipy.ndimage.binary_dilation(mask, CONNECTIVITY, iterations=cfg.dilate) if cfg.dilate else mask
    labels, n = scipy.ndimage.label(grouped, CONNECTIVITY)
    max_area = cfg.max_area_share * intensity.size
    blobs = []
    foreground = np.zeros_like(mask)
    for idx, sl in enumerate(scipy.ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        region = labels[sl] == idx  # (h, w): the object with its dilated, anti-aliased rim
        core = region & mask[sl]  # (h, w): pixels above the threshold
        if not core.any() or core.sum() < cfg.min_area or core.sum() > max_area:
            continue
        foreground[sl] |= region
        w = intensity[sl] * region  # (h, w) brightness weights, so anti-aliased edges give sub-pixel centres
        ys, xs = np.mgrid[sl[0], sl[1]]
        centre = np.array([(xs * w).sum(), (ys * w).sum()]) / w.sum()  # (x, y)
        colour = frame[sl][core].mean(axis=0) * 255.0  # (3,)
        cy, cx = np.nonzero(core)
        bbox = (sl[1].start + int(cx.min()), sl[0].start + int(cy.min()),
                sl[1].start + int(cx.max()), sl[0].start + int(cy.max()))
        blobs.append(Blob(centre, float(w.sum()), colour, bbox))
    background = float(intensity[~foreground].mean()) if (~foreground).any() else 1.0
    return blobs, background


def track_blobs(per_frame: list[list[Blob]], max_jump: float) -> list[Track]:
    """Link blobs across frames: Hungarian matching of predicted to detected centres, gated by ``max_jump`` px."""
    active: list[Track] = []
    done: list[Track] = []
    for t, blobs in enumerate(per_frame):
        matched_tracks, matched_blobs = set(), set()
        if active and blobs:
            pred = np.stack([tr.predict() for tr in active])  # (A, 2)
            cent = np.stack([b.centre for b in blobs])  # (N, 2)
            cost = np.linalg.norm(pred[:, None] - cent[None], axis=2)  # (A, N)
            rows, cols = scipy.optimize.linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] <= max_jump:
                    active[r].frames.append(t)
                    active[r].blobs.append(blobs[c])
                    matched_tracks.add(r)
                    matched_blobs.add(c)
        done += [tr for i, tr in enumerate(active) if i not in matched_tracks]
        active = [tr for i, tr in enumerate(active) if i in matched_tracks]
        active += [Track([t], [b]) for i, b in enumerate(blobs) if i not in matched_blobs]
    return done + active


# ---------------------------------------------------------------------------------------
# Physics checks
# ---------------------------------------------------------------------------------------


def _near_wall(track: Track, axis: int, extent: int, speed: float, margin: float) -> np.ndarray:
    """Per entry of the track: is the object within ``speed + margin`` px of a wall on ``axis`` (0 = x, 1 = y)?

    Two tests, either suffices: the visible bounding box reaches the wall, or a
    square collision box of the object's largest extent centred on its centre does
    (a digit is narrower than tall but bounces on its square box; a triangle's
    centroid is off its box centre but its tip reaches the wall). Walls lie at
    −0.5 and ``extent − 0.5`` in pixel-centre coordinates.
    """
    lo = np.array([b.bbox[axis] for b in track.blobs], dtype=np.float64)
    hi = np.array([b.bbox[axis + 2] for b in track.blobs], dtype=np.float64)
    sides = [max(b.bbox[2] - b.bbox[0], b.bbox[3] - b.bbox[1]) + 1 for b in track.blobs]
    half = float(np.median(sides)) / 2
    centre = np.array([b.centre[axis] for b in track.blobs], dtype=np.float64)
    reach = speed + margin
    box_near = (lo <= reach) | (hi >= extent - 1 - reach)
    centre_near = (centre + 0.5 <= half + reach) | (centre >= extent - 0.5 - half - reach)
    return box_near | centre_near


def _track_physics(track: Track, size: tuple[int, int], cfg: TrackingConfig) -> dict[str, float]:
    """Physics of one track (its frames are consecutive by construction of :func:`track_blobs`).

    Per axis, a *bounce* is a sign flip of the velocity (both sides faster than
    ``min_speed``). It is correct when it happens at a wall and turns the object
    away from that wall (a flip at the left wall must go from moving left to
    moving right). The straight-motion residual is the |second difference| of the
    centre at every frame except the three around a bounce (discrete reflection
    bends the path there) and slow frames at a wall (a bounce too slow to detect).
    """
    pos = np.stack([b.centre for b in track.blobs])  # (L, 2)
    area = np.array([b.area for b in track.blobs], dtype=np.float64)
    colour = np.stack([b.colour for b in track.blobs])  # (L, 3)
    accel, flips, flips_ok = [], 0, 0
    for axis, extent in ((0, size[1]), (1, size[0])):
        vel = np.diff(pos[:, axis])  # (L-1,)
        speed = float(np.median(np.abs(vel))) if len(vel) else 0.0
        near = _near_wall(track, axis, extent, speed, cfg.wall_margin)  # (L,)
        skip = np.zeros(len(pos), dtype=bool)
        for t in range(1, len(pos) - 1):
            fast = abs(vel[t - 1]) > cfg.min_speed and abs(vel[t]) > cfg.min_speed
            if fast and vel[t - 1] * vel[t] < 0:
                flips += 1
                at_wall = bool(near[t - 1] or near[t] or near[t + 1])
                low_wall = pos[t, axis] < (extent - 1) / 2
                away = vel[t] > 0 if low_wall else vel[t] < 0
                flips_ok += at_wall and away
                skip[t - 1:t + 2] = True
            elif near[t] and not fast:
                skip[t - 1:t + 2] = True
        for t in range(1, len(pos) - 1):
            if not skip[t]:
                accel.append(abs(pos[t + 1, axis] - 2 * pos[t, axis] + pos[t - 1, axis]))
    return {
        "size_rel_std": float(area.std() / area.mean()),
        "colour_drift": float(np.linalg.norm(colour - np.median(colour, axis=0), axis=1).mean()),
        "accel_residual": float(np.mean(accel)) if accel else 0.0,
        "flips": float(flips),
        "flips_at_wall": float(flips_ok),
    }


def clip_frames(clip: torch.Tensor | np.ndarray) -> np.ndarray:
    """A clip ``float [C, T, H, W]`` in ``[-1, 1]`` (C = 3 or 1) as frames ``float [T, H, W, 3]`` in ``[0, 1]``.

    Raises:
        VideoSynthError: not a clip of that layout.
    """
    x = clip.detach().float().cpu().numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip, np.float32)
    if x.ndim != 4:
        raise VideoSynthError(f"expected a clip [C, T, H, W], got shape {x.shape}")
    if x.shape[0] == 1:
        x = np.repeat(x, 3, axis=0)
    return np.clip((x.transpose(1, 2, 3, 0) + 1.0) / 2.0, 0.0, 1.0)  # (T, H, W, 3)


def clip_physics(clip: torch.Tensor | np.ndarray, cfg: TrackingConfig | None = None) -> dict[str, float]:
    """Weight-free statistics of one clip.

    Args:
        clip: ``float [C, T, H, W]`` in ``[-1, 1]`` (C = 3 or 1).

    Returns:
        ``count_persistence`` (share of frames with the clip's modal, non-zero object
        count; higher is better), ``background`` (mean brightness in [0, 1] outside
        the objects; lower is better), ``size_rel_std``, ``colour_drift`` (uint8 units),
        ``accel_residual`` (px; lower is better), ``bounce_correct`` (share of
        direction changes at a wall; 1 if none), ``num_objects``, ``tracked``
        (1 if any object was followed for ``min_track`` frames) and ``valid`` (1 if
        every check is within tolerance). Physics values are NaN when nothing was tracked.
    """
    cfg = cfg or TrackingConfig()
    frames = clip_frames(clip)  # (T, H, W, 3) in [0, 1]
    t, h, w = frames.shape[:3]
    detections = [detect_blobs(f, cfg) for f in frames]
    per_frame = [blobs for blobs, _ in detections]
    background = float(np.mean([bg for _, bg in detections]))
    counts = np.array([len(b) for b in per_frame])
    modal = int(np.bincount(counts).argmax())
    persistence = float(np.mean(counts == modal)) if modal > 0 else 0.0
    tracks = [tr for tr in track_blobs(per_frame, cfg.max_jump * max(h, w)) if len(tr.blobs) >= cfg.min_track]
    out = {"count_persistence": persistence, "background": background, "num_objects": float(modal),
           "tracked": float(bool(tracks))}
    if not tracks:
        out.update(size_rel_std=math.nan, colour_drift=math.nan, accel_residual=math.nan, bounce_correct=math.nan,
                   valid=0.0)
        return out
    phys = [_track_physics(tr, (h, w), cfg) for tr in tracks]
    weights = np.array([len(tr.blobs) for tr in tracks], dtype=np.float64)  # long tracks count more
    for key in ("size_rel_std", "colour_drift", "accel_residual"):
        out[key] = float(np.average([p[key] for p in phys], weights=weights))
    flips = sum(p["flips"] for p in phys)
    out["bounce_correct"] = sum(p["flips_at_wall"] for p in phys) / flips if flips else 1.0
    out["valid"] = float(not failed_checks(out, cfg))
    return out


def failed_checks(stats: dict[str, float], cfg: TrackingConfig | None = None) -> list[str]:
    """The checks a tracked clip's :func:`clip_physics` statistics fail, by name (none: a valid clip):
    ``count``, ``size``, ``colour``, ``accel``, ``bounce``, ``background``. A NaN statistic fails."""
    cfg = cfg or TrackingConfig()
    within = {"count": stats["count_persistence"] >= cfg.count_tol,
              "size": stats["size_rel_std"] <= cfg.size_tol,
              "colour": stats["colour_drift"] <= cfg.colour_tol,
              "accel": stats["accel_residual"] <= cfg.accel_tol,
              "bounce": stats["bounce_correct"] >= cfg.bounce_tol,
              "background": stats["background"] <= cfg.background_tol}
    return [name for name, ok in within.items() if not ok]


# ---------------------------------------------------------------------------------------
# Aggregation and comparison
# ---------------------------------------------------------------------------------------

# Direction of improvement of each aggregated statistic (+1: higher is better).
STAT_DIRECTIONS = {
    "count_persistence": +1, "background": -1, "size_rel_std": -1, "colour_drift": -1, "accel_residual": -1,
    "bounce_correct": +1, "valid_share": +1, "tracked_share": +1,
}


def physics_stats(videos: Iterable[torch.Tensor] | torch.Tensor, cfg: TrackingConfig | None = None,
                  limit: int | None = None) -> dict[str, float]:
    """Aggregate :func:`clip_physics` over clips.

    Args:
        videos: ``float [B, C, T, H, W]`` in ``[-1, 1]``, or an iterable of such batches.
        limit: stop after this many clips.

    Returns:
        Means over clips of ``count_persistence``, ``background``, ``size_rel_std``, ``colour_drift``,
        ``accel_residual``, ``bounce_correct`` (NaN-skipping for the physics values),
        ``valid_share`` (share of physically valid clips), ``tracked_share`` and ``num_clips``.
    """
    cfg = cfg or TrackingConfig()
    batches = [videos] if isinstance(videos, torch.Tensor) else videos
    rows = []
    for batch in batches:
        if batch.ndim != 5:
            raise VideoSynthError(f"physics_stats expects videos [B, C, T, H, W], got {tuple(batch.shape)}")
        for clip in batch:
            if limit is not None and len(rows) >= limit:
                break
            rows.append(clip_physics(clip, cfg))
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise VideoSynthError("physics_stats got no clips")
    out = {}
    for key in ("count_persistence", "background", "size_rel_std", "colour_drift", "accel_residual",
                "bounce_correct"):
        vals = np.array([r[key] for r in rows], dtype=np.float64)
        out[key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
    out["valid_share"] = float(np.mean([r["valid"] for r in rows]))
    out["tracked_share"] = float(np.mean([r["tracked"] for r in rows]))
    out["num_clips"] = float(len(rows))
    return out


def compare_physics(real: dict[str, float], fake: dict[str, float]) -> dict[str, dict[str, float]]:
    """Side-by-side real / fake statistics and the gap ``fake − real`` for each key of :data:`STAT_DIRECTIONS`."""
    return {k: {"real": real[k], "fake": fake[k], "gap": fake[k] - real[k]} for k in STAT_DIRECTIONS}


def format_comparison(table: dict[str, dict[str, float]]) -> str:
    """Plain-text table of :func:`compare_physics` output."""
    lines = [f"{'statistic':<20}{'real':>10}{'fake':>10}{'gap':>10}  better"]
    for k, row in table.items():
        better = "higher" if STAT_DIRECTIONS[k] > 0 else "lower"
        lines.append(f"{k:<20}{row['real']:>10.4f}{row['fake']:>10.4f}{row['gap']:>+10.4f}  {better}")
    return "\n".join(lines)
