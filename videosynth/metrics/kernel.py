"""Kernel distance (KID / KVD): unbiased MMD² with a cubic polynomial kernel, over random subsets.

Bińkowski et al., "Demystifying MMD GANs" (ICLR 2018) define KID on Inception
features; Unterthiner et al. (2018) report the same quantity on I3D features as
KVD. The kernel is k(x, y) = (x·y / d + 1)³ and each subset gives the unbiased
estimator

    MMD²ᵤ = 1/(m(m−1)) Σ_{i≠j} k(xᵢ,xⱼ) + 1/(m(m−1)) Σ_{i≠j} k(yᵢ,yⱼ) − 2/m² Σ_{i,j} k(xᵢ,yⱼ).

Pure numpy; features are float arrays ``[N, D]``.
"""

from __future__ import annotations

import numpy as np

from videosynth.errors import VideoSynthError

POLY_DEGREE = 3  # the kernel of Bińkowski et al.
POLY_COEF = 1.0


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x·y / d + 1)³ for all pairs: ``[N, D] × [M, D] -> [N, M]`` (float64)."""
    d = x.shape[1]
    return (x @ y.T / d + POLY_COEF) ** POLY_DEGREE  # (N, M)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between two equally sized samples ``[m, D]`` (m ≥ 2) with the cubic kernel."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise VideoSynthError(f"unbiased MMD needs two samples of equal size ≥ 2, got {x.shape[0]} and {y.shape[0]}")
    kxx = polynomial_kernel(x, x)  # (m, m)
    kyy = polynomial_kernel(y, y)  # (m, m)
    kxy = polynomial_kernel(x, y)  # (m, m)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.mean())


def kernel_distance(feats_x: np.ndarray, feats_y: np.ndarray, num_subsets: int = 100,
                    subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID/KVD: mean and std of :func:`mmd2_unbiased` over random subsets.

    Args:
        feats_x, feats_y: features ``[N, D]`` and ``[M, D]`` from the same detector.
        num_subsets: number of subsets drawn (without replacement within a subset).
        subset_size: samples per subset; capped at ``min(N, M)``.
        seed: seed of the subset draws (``numpy.random.default_rng``), so results repeat.

    Returns:
        ``(mean, std)`` of MMD² over subsets (std is 0 with one subset). Often
        reported ×1000 in papers; the raw value is returned here.

    Raises:
        VideoSynthError: different feature sizes, fewer than 2 samples, non-finite features.
    """
    x = np.asarray(feats_x, dtype=np.float64)
    y = np.asarray(feats_y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise VideoSynthError(f"kernel distance needs features [N, D] of one detector, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise VideoSynthError("kernel distance got NaN/Inf features")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise VideoSynthError(f"kernel distance needs at least 2 samples per side, got {x.shape[0]} and {y.shape[0]}")
    if num_subsets < 1:
        raise VideoSynthError(f"num_subsets must be ≥ 1, got {num_subsets}")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets, dtype=np.float64)
    for i in range(num_subsets):
        xs = x[rng.choice(x.shape[0], m, replace=False)]  # (m, D)
        ys = y[rng.choice(y.shape[0], m, replace=False)]  # (m, D)
        values[i] = mmd2_unbiased(xs, ys)
    return float(values.mean()), float(values.std())
