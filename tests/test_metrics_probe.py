"""Probe network (FPD) training reproducibility, loading, and the in-training evaluation hook."""

import math

import numpy as np
import pytest
import torch

from videosynth.errors import CheckpointError
from videosynth.metrics.in_training import evaluate_during_training
from videosynth.metrics.pipeline import Side, frechet_metric
from videosynth.metrics.probe_net import (PRESETS, ProbeNet, load_probe, load_probe_detector, motion_target,
                                          save_probe, train_probe)
from videosynth.metrics.protocol import Protocol
from videosynth.metrics.weights import sha256_file
from videosynth.data.base import ClipDataset

from test_metrics_tracking import bouncing_squares


class TinySquares(ClipDataset):
    """Contract-shaped items (video, label, caption) with ground-truth velocities in factors()."""

    def __init__(self, n=12):
        self.videos = bouncing_squares(n, seed=5)[:, :, :8, :16, :16]  # (N, C, 8, 16, 16)
        self.vel = np.random.default_rng(0).choice([-1.0, 1.0], size=(n, 2))

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, i):
        return {"video": self.videos[i], "label": torch.tensor(i % 3), "caption": ""}

    def factors(self, i):
        return {"velocities": np.tile(self.vel[i], (8, 1, 1))}  # (T, K, 2)


def _cfg():
    cfg = PRESETS["test"]
    cfg.num_classes = 3
    return cfg


def test_motion_target_quadrants():
    assert [motion_target(np.array(v)) for v in ([1, 1], [-1, 1], [1, -1], [-1, -1])] == [0, 1, 2, 3]


def test_train_probe_is_reproducible_and_round_trips(tmp_path):
    ds = TinySquares()
    paths = []
    for k in range(2):
        net = train_probe(ds, _cfg(), steps=3, batch_size=4, seed=7)
        paths.append(tmp_path / f"p{k}.safetensors")
        save_probe(net, paths[-1], {"dataset": "tiny", "seed": 7})
    assert sha256_file(paths[0]) == sha256_file(paths[1])
    loaded, meta = load_probe(paths[0])
    assert meta == {"dataset": "tiny", "seed": 7}
    x = ds.videos[:2]
    torch.testing.assert_close(loaded.features(x), net.features(x))
    assert loaded.features(x).shape == (2, _cfg().feature_dim)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="train-probe"):
        load_probe(bad)


def test_fpd_and_in_training_hook(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = ProbeNet(_cfg())
    weights_dir = tmp_path / "w"
    save_probe(net, weights_dir / "probe-bouncing-shapes.safetensors")
    monkeypatch.setenv("VIDEOSYNTH_WEIGHTS", str(weights_dir))

    probe = load_probe_detector("bouncing-shapes", device="cpu")
    assert probe.sha256 == sha256_file(weights_dir / "probe-bouncing-shapes.safetensors")
    real = bouncing_squares(12, seed=1)
    protocol = Protocol("fpd", probe.name, probe.sha256, resize=probe.resize, num_samples=12)
    same = frechet_metric(probe, Side("real", lambda s: [real]), Side("same", lambda s: [real]), protocol,
                          label=probe.label)
    assert same.value == pytest.approx(0.0, abs=1e-6) and "not FVD" in same.format()

    noise = lambda num, generator: torch.rand(num, 3, 16, 32, 32, generator=generator) * 2 - 1  # noqa: E731
    out = evaluate_during_training(noise, "bouncing-shapes", num=8, seed=0, real=real[:8])
    assert out["track/valid_share_real"] == 1.0 and out["track/valid_share"] == 0.0
    assert out["track/valid_share_gap"] == -1.0 and out["fpd"] > 0
    assert all(isinstance(v, float) for v in out.values())
    assert math.isnan(out["track/accel_residual"])  # nothing could be tracked in noise

    monkeypatch.setenv("VIDEOSYNTH_WEIGHTS", str(tmp_path / "empty"))
    out = evaluate_during_training(lambda n, s: [real[:4], real[4:8]], "bouncing-shapes", num=8, real=real[:8])
    assert "fpd" not in out and out["track/valid_share_gap"] == 0.0
