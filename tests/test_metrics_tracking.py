"""Weight-free metrics: real clips score well, and every corruption makes them worse monotonically."""

import math

import numpy as np
import pytest
import torch

from videosynth.metrics.tracking import (TrackingConfig, clip_physics, compare_physics, failed_checks,
                                         format_comparison, physics_stats)

SIZE, FRAMES, SIDE = 32, 16, 6
PALETTE = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [1, -1, 1]], np.float32)


def bouncing_squares(n, seed=0):
    """Black background, one saturated square at constant velocity, reflecting off the walls."""
    rng = np.random.default_rng(seed)
    out = np.full((n, 3, FRAMES, SIZE, SIZE), -1.0, np.float32)  # (B, C, T, H, W)
    for i in range(n):
        p = rng.uniform(0, SIZE - SIDE, 2)
        v = rng.uniform(1.0, 2.5, 2) * rng.choice([-1, 1], 2)
        colour = PALETTE[rng.integers(len(PALETTE))]
        for f in range(FRAMES):
            x0, y0 = int(round(p[0])), int(round(p[1]))
            out[i, :, f, y0:y0 + SIDE, x0:x0 + SIDE] = colour[:, None, None]
            p = p + v
            for a in range(2):
                if p[a] < 0:
                    p[a], v[a] = -p[a], -v[a]
                if p[a] > SIZE - SIDE:
                    p[a], v[a] = 2 * (SIZE - SIDE) - p[a], -v[a]
    return torch.from_numpy(out)


DATASETS = ("bouncing-shapes", "moving-digits")


def real_clips(n=16, name="bouncing-shapes"):
    """Validation clips of a built-in dataset: float [n, 3, 16, 32, 32] in [-1, 1]."""
    from videosynth.data import DataConfig, build_dataset

    ds = build_dataset(DataConfig(name=name, frames=FRAMES, size=SIZE, num_samples=n), "val")
    return torch.stack([ds[i]["video"] for i in range(n)])  # (B, C, T, H, W)


def add_noise(x, sigma, g):
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def shuffle_frames(x, share, g):
    y = x.clone()
    t = x.shape[2]
    m = int(round(share * t))
    for i in range(len(y)):
        sel = torch.randperm(t, generator=g)[:m]
        idx = torch.arange(t)
        idx[sel] = sel[torch.randperm(m, generator=g)]
        y[i] = x[i][:, idx]
    return y


def freeze_frames(x, every):
    y = x.clone()
    for f in range(1, x.shape[2]):
        if every and f % every == 0:
            y[:, :, f] = y[:, :, f - 1]
    return y


def _non_increasing(vals):
    return all(b <= a + 1e-9 for a, b in zip(vals, vals[1:]))


def _increasing(vals):
    return all(b > a for a, b in zip(vals, vals[1:]))


def test_hand_drawn_squares_are_valid():
    s = physics_stats(bouncing_squares(16))
    assert s["valid_share"] == 1.0 and s["count_persistence"] == 1.0 and s["bounce_correct"] == 1.0
    assert s["size_rel_std"] == 0.0 and s["background"] == 0.0
    assert s["accel_residual"] < 1.0  # only the rounding of positions to whole pixels


@pytest.mark.parametrize("name", DATASETS)
def test_builtin_real_clips_are_valid(name):
    s = physics_stats(real_clips(16, name))
    assert s["valid_share"] == 1.0 and s["count_persistence"] == 1.0 and s["bounce_correct"] == 1.0
    assert s["accel_residual"] < 0.3 and s["size_rel_std"] < 0.1 and s["background"] < 0.01


@pytest.mark.parametrize("name", DATASETS)
def test_noise_worsens_monotonically(name):
    x, g = real_clips(16, name), torch.Generator().manual_seed(1)
    stats = [physics_stats(add_noise(x, s, g)) for s in (0.0, 0.05, 0.15, 0.3, 0.6)]
    assert _increasing([s["background"] for s in stats])
    assert _non_increasing([s["valid_share"] for s in stats]) and stats[-1]["valid_share"] == 0.0


@pytest.mark.parametrize("name", DATASETS)
def test_shuffle_worsens_monotonically(name):
    x, g = real_clips(16, name), torch.Generator().manual_seed(2)
    stats = [physics_stats(shuffle_frames(x, share, g)) for share in (0.0, 0.25, 0.5, 1.0)]
    # direction changes away from walls appear as soon as frames are out of order
    assert stats[0]["bounce_correct"] == 1.0 and all(s["bounce_correct"] < 0.6 for s in stats[1:])
    assert _increasing([s["accel_residual"] for s in stats[:3]])
    # fully shuffled clips are already all but invalid, so their valid share only has to stay near zero
    assert _non_increasing([s["valid_share"] for s in stats[:3]]) and max(s["valid_share"] for s in stats[1:]) <= 0.2


@pytest.mark.parametrize("name", DATASETS)
def test_frozen_frames_worsen_monotonically(name):
    x = real_clips(16, name)
    stats = [physics_stats(freeze_frames(x, every)) for every in (0, 8, 4, 2)]
    assert _increasing([s["accel_residual"] for s in stats])
    assert _non_increasing([s["valid_share"] for s in stats]) and stats[-1]["valid_share"] < 0.5


def test_pure_noise_is_invalid_and_comparison_table():
    g = torch.Generator().manual_seed(3)
    noise = torch.rand(8, 3, FRAMES, SIZE, SIZE, generator=g) * 2 - 1
    fake = physics_stats(noise)
    assert fake["valid_share"] == 0.0 and fake["tracked_share"] == 0.0 and math.isnan(fake["accel_residual"])
    table = compare_physics(physics_stats(real_clips(8)), fake)
    assert table["valid_share"] == {"real": 1.0, "fake": 0.0, "gap": -1.0}
    assert "valid_share" in format_comparison(table)


def test_grey_clip_and_bad_shape():
    clip = real_clips(1, "moving-digits")[0, :1]  # (1, T, H, W): white digits, one channel
    assert clip_physics(clip)["tracked"] == 1.0
    with pytest.raises(Exception, match="C, T, H, W"):
        clip_physics(torch.zeros(16, 16))


def test_failed_checks_names_each_check_out_of_tolerance_and_a_nan_fails():
    cfg = TrackingConfig()
    good = {"count_persistence": 1.0, "size_rel_std": 0.0, "colour_drift": 0.0, "accel_residual": 0.0,
            "bounce_correct": 1.0, "background": 0.0}
    assert failed_checks(good, cfg) == []
    assert failed_checks({**good, "bounce_correct": 0.5, "background": cfg.background_tol + 0.01}, cfg) == \
        ["bounce", "background"]
    assert failed_checks({**good, "size_rel_std": float("nan")}, cfg) == ["size"]
    assert failed_checks({**good, "accel_residual": cfg.accel_tol}, cfg) == []  # the tolerance itself passes
