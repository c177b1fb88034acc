"""Fréchet distance between Gaussians fitted to feature sets, with streaming statistics.

Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium" (NeurIPS 2017) define FID; Unterthiner et al., "Towards Accurate
Generative Models of Video: A New Metric & Challenges" (2018) apply the same
distance to I3D features (FVD).

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½)

This file is pure math on numpy arrays: :class:`FeatureStats` accumulates the
mean and covariance of features in float64 batch by batch (never holding all
features unless asked to), and :func:`frechet_distance` compares two of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.linalg

from videosynth.errors import VideoSynthError

# Offset added to both covariance diagonals when the product has no finite square root
# (singular covariances, e.g. fewer samples than feature dimensions).
SQRTM_EPS = 1e-6
# Largest tolerated imaginary part of diag((Σ₁Σ₂)^½), relative to max(1, |Tr(Σ₁Σ₂)^½|).
IMAG_TOL = 1e-3
# Negative results down to -NEG_TOL * scale are rounding noise and reported as 0.
NEG_TOL = 1e-6

# ---------------------------------------------------------------------------------------
# Streaming statistics
# ---------------------------------------------------------------------------------------


class FeatureStats:
    """Running mean and covariance of features, accumulated in float64.

    Uses the pairwise update of Chan et al. (1979): each batch's mean and centred
    sum of squares are merged into the running ones, which stays accurate when the
    features have a large common offset (unlike raw ``Σx xᵀ`` sums).

    Args:
        keep_features: also keep every feature row (float32) for metrics that need
            samples rather than moments (KVD/KID). Memory grows as ``N × D``.
    """

    def __init__(self, keep_features: bool = False) -> None:
        self.keep_features = keep_features
        self.num = 0
        self.dim: int | None = None
        self._mean: np.ndarray | None = None  # (D,)
        self._m2: np.ndarray | None = None  # (D, D) centred sum of outer products
        self._features: list[np.ndarray] = []

    # -- accumulation -----------------------------------------------------------------

    def update(self, feats) -> None:
        """Add a batch of features ``[N, D]`` (numpy array or torch tensor, any float dtype).

        Raises:
            VideoSynthError: wrong rank, a feature size that differs from earlier
                batches, or non-finite values.
        """
        x = _as_float64(feats)
        if x.ndim != 2:
            raise VideoSynthError(f"FeatureStats.update expects features [N, D], got shape {x.shape}")
        if x.shape[0] == 0:
            return
        if not np.isfinite(x).all():
            raise VideoSynthError("FeatureStats.update got NaN/Inf features; check the detector input range")
        self._check_dim(x.shape[1])
        n_b = x.shape[0]
        mean_b = x.mean(axis=0)  # (D,)
        xc = x - mean_b  # (N, D)
        m2_b = xc.T @ xc  # (D, D)
        self._combine(n_b, mean_b, m2_b)
        if self.keep_features:
            self._features.append(x.astype(np.float32))

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Fold another accumulator into this one (e.g. from another worker); returns self."""
        if other.num == 0:
            return self
        self._check_dim(other.dim)
        self._combine(other.num, other._mean, other._m2)
        if self.keep_features:
            if not other.keep_features:
                raise VideoSynthError("cannot merge stats without kept features into stats that keep them")
            self._features.extend(other._features)
        return self

    def _check_dim(self, dim: int) -> None:
        if self.dim is None:
            self.dim = int(dim)
            self._mean = np.zeros(dim, dtype=np.float64)
            self._m2 = np.zeros((dim, dim), dtype=np.float64)
        elif dim != self.dim:
            raise VideoSynthError(f"feature size changed from {self.dim} to {dim}; one detector per FeatureStats")

    def _combine(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        n_a = self.num
        n = n_a + n_b
        delta = mean_b - self._mean  # (D,)
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / n)  # (D, D)
        self.num = n

    # -- results ----------------------------------------------------------------------

    @property
    def mean(self) -> np.ndarray:
        """Mean feature ``[D]`` (float64)."""
        if self.num == 0:
            raise VideoSynthError("no features accumulated yet")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance ``[D, D]`` (float64, divides by N − 1 like ``numpy.cov``)."""
        if self.num < 2:
            raise VideoSynthError(f"a covariance needs at least 2 samples, got {self.num}")
        return self._m2 / (self.num - 1)

    @property
    def features(self) -> np.ndarray:
        """All kept feature rows ``[N, D]`` (float32); requires ``keep_features=True``."""
        if not self.keep_features:
            raise VideoSynthError("these statistics did not keep features (needed for KVD/KID); "
                                  "recompute them with keep_features=True")
        if not self._features:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        return np.concatenate(self._features, axis=0)

    # -- persistence ------------------------------------------------------------------

    def save(self, path: str | Path, protocol: dict | None = None) -> None:
        """Write ``num``, ``mean``, ``m2`` (and kept features) plus the protocol JSON to ``.npz``.

        The write is atomic (temp file in the same folder, then ``os.replace``).
        """
        import os
        import tempfile

        if self.num == 0:
            raise VideoSynthError(f"refusing to save empty feature statistics to {path}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "num": np.array(self.num, dtype=np.int64),
            "mean": self._mean,
            "m2": self._m2,
            "protocol": np.array(json.dumps(protocol or {}, sort_keys=True)),
        }
        if self.keep_features:
            arrays["features"] = self.features
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp.npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | Path) -> tuple["FeatureStats", dict]:
        """Read statistics written by :meth:`save`; returns ``(stats, protocol_dict)``.

        Raises:
            VideoSynthError: missing file or not a statistics file.
        """
        path = Path(path)
        if not path.is_file():
            raise VideoSynthError(f"statistics file {path} does not exist; create it with --save-stats")
        try:
            with np.load(path, allow_pickle=False) as data:
                num = int(data["num"])
                mean = np.asarray(data["mean"], dtype=np.float64)
                m2 = np.asarray(data["m2"], dtype=np.float64)
                protocol = json.loads(str(data["protocol"]))
                features = np.asarray(data["features"], dtype=np.float32) if "features" in data else None
        except (KeyError, ValueError, OSError) as exc:
            raise VideoSynthError(f"{path} is not a videosynth statistics file ({exc}); recompute it with --save-stats")
        stats = cls(keep_features=features is not None)
        stats.num, stats.dim = num, int(mean.shape[0])
        stats._mean, stats._m2 = mean, m2
        if features is not None:
            stats._features = [features]
        return stats, protocol


def _as_float64(feats) -> np.ndarray:
    if hasattr(feats, "detach"):  # torch tensor
        feats = feats.detach().to("cpu").double().numpy()
    return np.asarray(feats, dtype=np.float64)


# ---------------------------------------------------------------------------------------
# Matrix square root and the distance
# ---------------------------------------------------------------------------------------


def _trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((Σ₁Σ₂)^½) via ``scipy.linalg.sqrtm``, retrying with an eps offset when needed."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * SQRTM_EPS
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if not np.isfinite(covmean).all():
        raise VideoSynthError("the matrix square root of Σ₁Σ₂ is not finite even with an eps offset; "
                              "use more samples (at least the feature dimension) or method='eigen'")
    if np.iscomplexobj(covmean):
        diag = np.diagonal(covmean)
        scale = max(1.0, abs(float(np.sum(diag.real))))
        if np.max(np.abs(diag.imag)) > IMAG_TOL * scale:
            raise VideoSynthError(
                f"the matrix square root is strongly complex (max imaginary part "
                f"{np.max(np.abs(diag.imag)):.3g}); the covariances are ill-conditioned — "
                "use more samples or method='eigen'")
        covmean = covmean.real
    return float(np.trace(covmean))


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped)."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _trace_sqrt_product_eigen(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((Σ₁Σ₂)^½) = Σ √λ(Σ₁^½ Σ₂ Σ₁^½): a symmetric PSD eigenproblem, real by construction."""
    s1 = _psd_sqrt(sigma1)
    m = s1 @ sigma2 @ s1  # (D, D), symmetric PSD
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sum(np.sqrt(np.clip(w, 0, None))))


TRACE_SQRT_METHODS = {"sqrtm": _trace_sqrt_product_sqrtm, "eigen": _trace_sqrt_product_eigen}


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: str = "sqrtm") -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂).

    Args:
        mu1, mu2: means ``[D]``.
        sigma1, sigma2: covariances ``[D, D]``.
        method: ``"sqrtm"`` (``scipy.linalg.sqrtm`` of Σ₁Σ₂, the route of the
            reference FID/FVD code, with an eps offset on failure) or ``"eigen"``
            (eigenvalues of Σ₁^½ Σ₂ Σ₁^½; always real and stable).

    Returns:
        The squared distance d² ≥ 0 as a Python float.

    Raises:
        VideoSynthError: shape mismatch, non-finite inputs or result, or a strongly
            complex matrix square root.
    """
    if method not in TRACE_SQRT_METHODS:
        raise VideoSynthError(f"unknown Fréchet method '{method}'; choose one of {sorted(TRACE_SQRT_METHODS)}")
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise VideoSynthError(f"Fréchet distance shape mismatch: μ {mu1.shape} vs {mu2.shape}, "
                              f"Σ {sigma1.shape} vs {sigma2.shape}; were both sides made by the same detector?")
    for name, arr in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.isfinite(arr).all():
            raise VideoSynthError(f"Fréchet distance input {name} has NaN/Inf values")
    diff = mu1 - mu2
    tr_covmean = TRACE_SQRT_METHODS[method](sigma1, sigma2)
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    if not np.isfinite(value):
        raise VideoSynthError("Fréchet distance is not finite; check the features for overflow")
    scale = max(1.0, float(np.trace(sigma1) + np.trace(sigma2)))
    if value < 0:
        if value < -NEG_TOL * scale:
            raise VideoSynthError(f"Fréchet distance came out negative ({value:.3g}); the covariances are "
                                  "ill-conditioned — use more samples or method='eigen'")
        value = 0.0
    return value


def frechet_distance_from_stats(a: FeatureStats, b: FeatureStats, method: str = "sqrtm") -> float:
    """:func:`frechet_distance` between two :class:`FeatureStats`."""
    return frechet_distance(a.mean, a.cov, b.mean, b.cov, method=method)
