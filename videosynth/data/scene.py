"""The scene of the built-in procedural data: what its objects look like and how they move.

Looks: ten digit glyphs drawn from a small stroke font (so nothing is downloaded) and three
shapes (circle, square, triangle), each an anti-aliased coverage patch pasted at sub-pixel
positions. Motion: constant velocity with elastic bounces off the walls, in closed form, so the
straight-line motion between bounces is exact. Coordinates are pixels, ``(x, y)`` with the origin
at the top-left corner of the frame; pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``. The
datasets that draw items from these live in :mod:`videosynth.data.synthetic`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

# ----------------------------------------------------------------------------- glyphs


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 10) -> list:
    """Points on an elliptical arc, angles in degrees counter-clockwise from +x (y grows downwards)."""
    angles = np.radians(np.linspace(a0, a1, n))
    return [(cx + rx * math.cos(a), cy - ry * math.sin(a)) for a in angles]


# Stroke font in a unit box (x right, y down): each digit is a list of polylines.
DIGIT_STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(0.5, 0.5, 0.3, 0.44, 0, 360, 20)],
    1: [[(0.32, 0.22), (0.55, 0.06), (0.55, 0.94)], [(0.32, 0.94), (0.78, 0.94)]],
    2: [_arc(0.5, 0.3, 0.28, 0.24, 160, -30, 9) + [(0.2, 0.94), (0.82, 0.94)]],
    3: [_arc(0.5, 0.28, 0.26, 0.22, 150, -90, 9), _arc(0.5, 0.72, 0.3, 0.22, 90, -150, 9)],
    4: [[(0.68, 0.94), (0.68, 0.06), (0.16, 0.66), (0.86, 0.66)]],
    5: [[(0.8, 0.06), (0.28, 0.06), (0.24, 0.46)] + _arc(0.5, 0.67, 0.3, 0.27, 130, -150, 10)],
    6: [[(0.74, 0.08)] + _arc(0.5, 0.7, 0.3, 0.24, 120, 180, 3) + _arc(0.5, 0.7, 0.3, 0.24, 180, 540, 16)],
    7: [[(0.16, 0.06), (0.84, 0.06), (0.42, 0.94)]],
    8: [_arc(0.5, 0.27, 0.24, 0.21, 0, 360, 16), _arc(0.5, 0.71, 0.3, 0.23, 0, 360, 18)],
    9: [_arc(0.5, 0.3, 0.28, 0.24, 0, 360, 16), [(0.78, 0.3), (0.62, 0.94)]],
}
DIGIT_WIDTH = 0.7  # glyph box width relative to its height (the box is centred on the object)
STROKE = 0.08  # stroke half-width relative to the glyph height
SHAPES = ("circle", "square", "triangle")


def _polyline_distance(px: np.ndarray, py: np.ndarray, polylines: list) -> np.ndarray:
    """Distance from points (arrays of equal shape) to the nearest segment of any polyline."""
    best = np.full(px.shape, np.inf, np.float32)
    for line in polylines:
        pts = np.asarray(line, np.float32)
        a, b = pts[:-1], pts[1:]  # (S, 2) segment ends
        ab = b - a
        ap_x = px[..., None] - a[:, 0]  # (..., S)
        ap_y = py[..., None] - a[:, 1]
        t = np.clip((ap_x * ab[:, 0] + ap_y * ab[:, 1]) / np.maximum((ab ** 2).sum(1), 1e-12), 0, 1)
        d = np.hypot(ap_x - t * ab[:, 0], ap_y - t * ab[:, 1]).min(-1)  # (...)
        best = np.minimum(best, d)
    return best


@lru_cache(maxsize=64)
def glyph_alpha(kind: str, size: int) -> np.ndarray:
    """Anti-aliased coverage in ``[0, 1]`` of an object ``size`` pixels across: float32 ``[P, P]``.

    ``kind`` is ``"digit-0"`` ... ``"digit-9"`` or a name in ``SHAPES``.  The object's
    centre is the patch centre ``(P / 2, P / 2)``; a 1-pixel margin holds the soft edge.
    """
    patch = size + 2
    c = np.arange(patch, dtype=np.float32) + 0.5 - patch / 2  # pixel centres relative to the object centre
    x, y = np.meshgrid(c, c)  # (P, P)
    r = size / 2
    if kind == "circle":
        inside = r - np.hypot(x, y)  # signed distance, positive inside
    elif kind == "square":
        inside = r - np.maximum(np.abs(x), np.abs(y))
    elif kind == "triangle":
        # apex at the top centre, base along the bottom edge of the bounding box
        edges = [((0.0, -r), (-r, r)), ((-r, r), (r, r)), ((r, r), (0.0, -r))]
        dists = []
        for (x0, y0), (x1, y1) in edges:
            nx, ny = y1 - y0, -(x1 - x0)  # inward normal of this edge for this vertex order
            norm = math.hypot(nx, ny)
            dists.append(((x - x0) * nx + (y - y0) * ny) / norm)
        inside = np.minimum.reduce(dists)
    elif kind.startswith("digit-"):
        strokes = [[((u - 0.5) * DIGIT_WIDTH * size, (v - 0.5) * size) for u, v in line]
                   for line in DIGIT_STROKES[int(kind[len("digit-"):])]]
        inside = max(STROKE * size, 1.0) - _polyline_distance(x, y, strokes)
    else:
        raise ValueError(f"unknown glyph {kind!r}")
    return np.clip(inside + 0.5, 0.0, 1.0).astype(np.float32)  # coverage of a 1-pixel box, approx.


def paste(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray, cx: float, cy: float, mode: str) -> None:
    """Draw ``alpha`` (``[P, P]``) centred at ``(cx, cy)`` into ``canvas`` (``[H, W, 3]`` float, 0..255).

    Sub-pixel positions shift the patch bilinearly.  ``mode``: ``"over"`` (opaque
    paint) or ``"max"`` (light adds up to white, as in Moving MNIST).
    """
    p = alpha.shape[0]
    left, top = cx - p / 2, cy - p / 2
    ix, iy = math.floor(left), math.floor(top)
    fx, fy = left - ix, top - iy
    a = np.pad(alpha, ((1, 0), (1, 0)))  # (P+1, P+1): room for the shift
    shifted = ((1 - fy) * (1 - fx) * a + (1 - fy) * fx * np.roll(a, 1, 1)
               + fy * (1 - fx) * np.roll(a, 1, 0) + fy * fx * np.roll(np.roll(a, 1, 0), 1, 1))
    h, w = canvas.shape[:2]
    y0, x0 = iy - 1, ix - 1  # the padding moved the patch one pixel up and left
    sy0, sx0 = max(0, -y0), max(0, -x0)
    y0c, x0c = max(0, y0), max(0, x0)
    y1c, x1c = min(h, y0 + p + 1), min(w, x0 + p + 1)
    if y1c <= y0c or x1c <= x0c:
        return
    cov = shifted[sy0:sy0 + y1c - y0c, sx0:sx0 + x1c - x0c, None]  # (h', w', 1)
    region = canvas[y0c:y1c, x0c:x1c]
    if mode == "max":
        np.maximum(region, cov * colour, out=region)
    else:
        region *= 1 - cov
        region += cov * colour


# ----------------------------------------------------------------------------- motion


def bounce(start: np.ndarray, velocity: np.ndarray, low: float, high: float, steps: int,
           times: np.ndarray | None = None):
    """Positions and velocities of points moving at constant speed inside ``[low, high]``.

    Elastic reflection at the walls, in closed form (unfolded straight line, then a
    triangle wave).  ``start``, ``velocity``: ``[K, 2]``.  Returns
    ``(positions [steps, K, 2], velocities [steps, K, 2])`` at frames ``0 .. steps - 1``, or
    at the (fractional) frame times ``times`` ``[N]`` when given (then ``[N, K, 2]``).
    """
    t = (np.arange(steps, dtype=np.float64) if times is None else np.asarray(times, np.float64))[:, None, None]
    span = high - low
    unfolded = start[None] - low + velocity[None] * t  # (T, K, 2)
    phase = np.mod(unfolded, 2 * span)
    forward = phase < span
    positions = low + np.where(forward, phase, 2 * span - phase)
    velocities = np.where(forward, 1.0, -1.0) * velocity[None]  # (T, K, 2)
    return positions, velocities


def bounce_frames(velocities: np.ndarray) -> np.ndarray:
    """bool ``[T, K]``: frame ``t`` is the first after a wall bounce (a velocity component changed sign)."""
    flipped = np.zeros(velocities.shape[:2], bool)
    flipped[1:] = (np.sign(velocities[1:]) != np.sign(velocities[:-1])).any(-1)  # (T-1, K)
    return flipped
