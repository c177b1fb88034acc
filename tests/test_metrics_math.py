"""Pure metric math: Fréchet distance, streaming stats, KVD/KID, Inception Score, PSNR/SSIM."""

import numpy as np
import pytest
import scipy.linalg
import torch

from videosynth.errors import MissingWeightsError, VideoSynthError
from videosynth.metrics import (FeatureStats, frechet_distance, inception_score, kernel_distance, mmd2_unbiased,
                                psnr, ssim)
from videosynth.metrics.recon import lpips_distance


def _random_cov(rng, d, n=200):
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    return np.cov(x, rowvar=False)


# ---- Fréchet distance --------------------------------------------------------------------

@pytest.mark.parametrize("method", ["sqrtm", "eigen"])
def test_frechet_equal_stats_is_zero(method):
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=8), _random_cov(rng, 8)
    assert frechet_distance(mu, sigma, mu, sigma, method=method) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("method", ["sqrtm", "eigen"])
def test_frechet_mean_shift_only(method):
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(size=6), _random_cov(rng, 6)
    shift = rng.normal(size=6)
    got = frechet_distance(mu, sigma, mu + shift, sigma, method=method)
    assert got == pytest.approx(float(shift @ shift), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("method", ["sqrtm", "eigen"])
def test_frechet_diagonal_closed_form(method):
    a = np.array([1.0, 4.0, 0.25, 9.0])
    b = np.array([2.0, 1.0, 1.0, 0.5])
    mu = np.zeros(4)
    got = frechet_distance(mu, np.diag(a), mu, np.diag(b), method=method)
    assert got == pytest.approx(float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)), rel=1e-9)


def test_frechet_matches_reference_sqrtm_route():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    s1, s2 = _random_cov(rng, 10), _random_cov(rng, 10)
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    ref = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))
    assert frechet_distance(mu1, s1, mu2, s2, method="sqrtm") == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(mu1, s1, mu2, s2, method="eigen") == pytest.approx(ref, rel=1e-6)


def test_frechet_singular_covariances_are_handled():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 16))  # fewer samples than dimensions: rank-deficient covariances
    y = rng.normal(size=(5, 16)) + 0.5
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    a = frechet_distance(x.mean(0), s1, y.mean(0), s2, method="eigen")
    assert np.isfinite(a) and a > 0


def test_frechet_rejects_nonfinite_and_bad_shapes():
    mu, sigma = np.zeros(3), np.eye(3)
    with pytest.raises(VideoSynthError, match="NaN"):
        frechet_distance(mu, sigma * np.nan, mu, sigma)
    with pytest.raises(VideoSynthError, match="shape"):
        frechet_distance(mu, sigma, np.zeros(4), np.eye(4))
    with pytest.raises(VideoSynthError, match="unknown"):
        frechet_distance(mu, sigma, mu, sigma, method="magic")


def test_frechet_rejects_strongly_complex_sqrt():
    # A non-PSD "covariance" makes Σ1Σ2 have negative eigenvalues: its square root is truly complex.
    s1 = np.diag([1.0, -4.0])
    s2 = np.eye(2)
    with pytest.raises(VideoSynthError, match="complex"):
        frechet_distance(np.zeros(2), s1, np.zeros(2), s2, method="sqrtm")


# ---- streaming statistics ----------------------------------------------------------------

def test_streaming_stats_match_numpy_cov(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(103, 7)) * 3 + 1000.0  # large offset: raw-moment sums would lose digits
    stats = FeatureStats(keep_features=True)
    for chunk in np.array_split(x, [1, 5, 40, 41, 90]):
        stats.update(chunk)
    assert stats.num == 103
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats.features, x.astype(np.float32))

    # merge == one pass; torch input accepted
    a, b = FeatureStats(), FeatureStats()
    a.update(x[:50])
    b.update(torch.from_numpy(x[50:]))
    a.merge(b)
    np.testing.assert_allclose(a.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)

    # save / load round trip with the protocol
    path = tmp_path / "s.npz"
    stats.save(path, {"detector": "i3d", "frames": 16})
    loaded, protocol = FeatureStats.load(path)
    assert protocol == {"detector": "i3d", "frames": 16}
    assert loaded.num == 103
    np.testing.assert_allclose(loaded.cov, stats.cov)
    np.testing.assert_allclose(loaded.features, stats.features)


def test_streaming_stats_errors(tmp_path):
    s = FeatureStats()
    s.update(np.zeros((3, 4)))
    with pytest.raises(VideoSynthError, match="feature size"):
        s.update(np.zeros((3, 5)))
    with pytest.raises(VideoSynthError, match="NaN"):
        s.update(np.full((2, 4), np.nan))
    with pytest.raises(VideoSynthError, match="keep"):
        _ = s.features
    with pytest.raises(VideoSynthError, match="does not exist"):
        FeatureStats.load(tmp_path / "missing.npz")


# ---- kernel distance ---------------------------------------------------------------------

def _brute_force_mmd(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_mmd_matches_brute_force():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(9, 4)), rng.normal(size=(9, 4)) + 0.3
    assert mmd2_unbiased(x, y) == pytest.approx(_brute_force_mmd(x, y), rel=1e-10)


def test_kernel_distance_subsets_seeded_and_unbiased():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(30, 5)) + 1.0
    a = kernel_distance(x, y, num_subsets=5, subset_size=10, seed=3)
    assert a == kernel_distance(x, y, num_subsets=5, subset_size=10, seed=3)
    # each subset equals brute force on the same draw
    sub_rng = np.random.default_rng(3)
    vals = []
    for _ in range(5):
        xs, ys = x[sub_rng.choice(40, 10, replace=False)], y[sub_rng.choice(30, 10, replace=False)]
        vals.append(_brute_force_mmd(xs, ys))
    assert a[0] == pytest.approx(np.mean(vals), rel=1e-10)
    assert a[1] == pytest.approx(np.std(vals), rel=1e-8)
    # subset size capped at min(N, M); same distribution -> near zero
    same = kernel_distance(x, rng.normal(size=(40, 5)), num_subsets=20, subset_size=1000)
    assert abs(same[0]) < a[0]


# ---- Inception Score ---------------------------------------------------------------------

def test_inception_score_bounds():
    k = 5
    uniform = np.full((100, k), 1.0 / k)
    assert inception_score(uniform, splits=10)[0] == pytest.approx(1.0)
    one_hot = np.eye(k)[np.arange(100) % k]  # balanced within every split of 10 consecutive rows
    mean, std = inception_score(one_hot, splits=10, shuffle_seed=None)
    assert mean == pytest.approx(k) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_rejects_logits():
    with pytest.raises(VideoSynthError, match="probabilities"):
        inception_score(np.random.default_rng(0).normal(size=(20, 4)), splits=2)
    with pytest.raises(VideoSynthError, match="splits"):
        inception_score(np.full((3, 2), 0.5), splits=5)


# ---- reconstruction ----------------------------------------------------------------------

def test_psnr_ssim_identities():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 3, 16, 16, generator=g) * 2 - 1  # (B, C, T, H, W) in [-1, 1]
    assert torch.isinf(psnr(x, x)).all()
    torch.testing.assert_close(ssim(x, x), torch.ones(2, dtype=torch.float64))
    # a constant offset of 0.2 in a range of 2: PSNR = 10 log10(4 / 0.04) = 20 dB
    y = (x + 0.2)
    torch.testing.assert_close(psnr(x, y), torch.full((2,), 20.0, dtype=torch.float64))
    # SSIM is symmetric, below 1 for a distorted copy, and decreases with more noise
    noisy1 = x + 0.1 * torch.randn(x.shape, generator=g)
    noisy2 = x + 0.5 * torch.randn(x.shape, generator=g)
    torch.testing.assert_close(ssim(x, noisy1), ssim(noisy1, x))
    assert (ssim(x, noisy2) < ssim(x, noisy1)).all() and (ssim(x, noisy1) < 1).all()
    assert (psnr(x, noisy2) < psnr(x, noisy1)).all()


def test_ssim_too_small_and_lpips_missing(monkeypatch):
    x = torch.zeros(1, 3, 2, 8, 8)
    with pytest.raises(VideoSynthError, match="11x11"):
        ssim(x, x)
    monkeypatch.setenv("VIDEOSYNTH_WEIGHTS", "/nonexistent-weights")
    monkeypatch.setenv("XDG_CACHE_HOME", "/nonexistent-cache")
    with pytest.raises(VideoSynthError, match="32x32"):
        lpips_distance(torch.zeros(1, 3, 2, 16, 16), torch.zeros(1, 3, 2, 16, 16))
    with pytest.raises(MissingWeightsError, match="lpips_alex.safetensors.*nonexistent-weights"):
        lpips_distance(torch.zeros(1, 3, 2, 32, 32), torch.zeros(1, 3, 2, 32, 32))
