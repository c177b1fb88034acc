"""Detector plumbing with tiny TorchScript stand-ins written by the test (no real weights needed)."""

import json
import logging

import numpy as np
import pytest
import torch

from videosynth.errors import MissingWeightsError, VideoSynthError
from videosynth.metrics import detectors as det
from videosynth.metrics.frechet import FeatureStats
from videosynth.metrics.pipeline import Side, frechet_metric, inception_score_metric, kernel_metric
from videosynth.metrics.protocol import Protocol
from videosynth.metrics.weights import KNOWN_WEIGHTS, resolve_weights, sha256_file

# torch.jit is deprecated upstream but it is the format of the reference detector files
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class TinyI3D(torch.nn.Module):
    """Same call signature as the StyleGAN-V I3D TorchScript; 400-d output."""

    def __init__(self, out_dim: int = 400):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 4, kernel_size=(3, 8, 8), stride=(1, 8, 8))
        self.head = torch.nn.Linear(4, out_dim)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        h = torch.relu(self.conv(x)).mean(dim=(2, 3, 4))  # (B, 4)
        return self.head(h)


class SmallI3D(TinyI3D):
    """Same signature with 32-d features: 400×400 matrix square roots are slow on a busy 2-core machine."""

    def __init__(self):
        super().__init__(out_dim=32)


class TinyC3D(torch.nn.Module):
    """C3D-like: uint8 [B, 3, 16, 112, 112] -> 101 logits."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(3, 101)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.float().mean(dim=(2, 3, 4)) / 255.0)


class TinyInception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(3, 2048)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.head(x.float().mean(dim=(2, 3)) / 255.0)


def _write(module, path):
    torch.manual_seed(0)
    torch.jit.script(module()).save(str(path))
    return path


@pytest.fixture
def i3d_file(tmp_path):
    return _write(TinyI3D, tmp_path / "i3d_torchscript.pt")


def _clips(n, t=16, size=16, seed=0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, t, size, size, generator=g) * 2 - 1 + offset).clamp(-1, 1)  # (B, C, T, H, W)


def test_resolution_order_env_and_cache(tmp_path, monkeypatch, i3d_file):
    cache = tmp_path / "xdg" / "videosynth" / "weights"
    cache.mkdir(parents=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (cache / "i3d_torchscript.pt").write_bytes(i3d_file.read_bytes() + b"")
    assert resolve_weights("i3d").source == "cache"

    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "i3d_torchscript.pt").write_bytes(b"other bytes")
    monkeypatch.setenv("VIDEOSYNTH_WEIGHTS", str(env_dir))
    found = resolve_weights("i3d")
    assert found.source == "env" and found.path == env_dir / "i3d_torchscript.pt"
    assert found.sha256 == sha256_file(env_dir / "i3d_torchscript.pt")

    # explicit file and explicit folder beat both
    assert resolve_weights("i3d", i3d_file).source == "explicit"
    assert resolve_weights("i3d", i3d_file.parent).path == i3d_file


def test_missing_weights_message_names_file_places_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOSYNTH_WEIGHTS", str(tmp_path / "nowhere"))
    with pytest.raises(MissingWeightsError) as err:
        det.load_detector("i3d", device="cpu")
    msg = str(err.value)
    assert "i3d_torchscript.pt" in msg
    assert str(tmp_path / "nowhere" / "i3d_torchscript.pt") in msg
    assert "videosynth/weights/i3d_torchscript.pt" in msg
    assert KNOWN_WEIGHTS["i3d"].url in msg
    # an explicit path that does not exist is not silently replaced by another place
    with pytest.raises(MissingWeightsError, match="explicit|searched"):
        resolve_weights("c3d", tmp_path / "c3d_here.pt")


def test_not_torchscript_is_a_clear_error(tmp_path):
    bad = tmp_path / "i3d_torchscript.pt"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(VideoSynthError, match="TorchScript"):
        det.load_detector("i3d", str(bad), device="cpu")


def test_i3d_call_convention_and_batching_invariance(i3d_file):
    d = det.load_detector("i3d", str(i3d_file), device="cpu")
    assert d.prepare(_clips(1)).shape == (1, 3, 16, 224, 224)
    clips = _clips(7)
    one = det.extract_features(d, [clips], batch_size=1, keep_features=True)
    many = det.extract_features(d, [clips[:3], clips[3:]], batch_size=5, keep_features=True)
    assert one.num == many.num == 7 and one.dim == 400
    np.testing.assert_allclose(one.features, many.features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(one.cov, many.cov, rtol=1e-4, atol=1e-6)
    limited = det.extract_features(d, [clips, clips], num=9, batch_size=4)
    assert limited.num == 9


def test_min_frames_guard_warns_not_drops(i3d_file, caplog):
    d = det.load_detector("i3d", str(i3d_file), device="cpu")
    warnings = []
    with caplog.at_level(logging.WARNING):
        stats = det.extract_features(d, [_clips(3, t=4)], batch_size=2, warnings=warnings)
    assert stats.num == 3  # nothing dropped
    assert len(warnings) == 1 and "4 frames" in warnings[0] and "at least 10" in warnings[0]
    assert "at least 10" in caplog.text


def test_fvd_pipeline_protocol_json_and_mismatch(tmp_path):
    d = det.load_detector("i3d", str(_write(SmallI3D, tmp_path / "i3d_torchscript.pt")), device="cpu")
    # frames=10: the I3D minimum, so no short-clip warning; few clips keep the 224-pixel resize cheap
    protocol = Protocol("fvd", "i3d", d.sha256, frames=10, size=16, resize=d.resize, num_samples=6)
    real = Side("real", batches=lambda seed: [_clips(6, t=10, seed=100)])
    fake = Side("fake", batches=lambda seed: [_clips(6, t=10, seed=seed, offset=0.5)])
    stats_path = tmp_path / "real.npz"
    res = frechet_metric(d, real, fake, protocol, seeds=[0, 1], batch_size=5, save_real=str(stats_path))
    assert res.value > 0 and res.std is not None and set(res.details["per_seed"]) == {"0", "1"}
    assert any("< 256" in w for w in res.warnings)
    out = tmp_path / "r.json"
    res.write_json(out)
    data = json.loads(out.read_text())
    assert data["protocol"]["detector_sha256"] == d.sha256 and data["protocol"]["frames"] == 10
    assert "protocol: detector=i3d" in res.format()

    # cached real statistics give the same number as recomputing
    cached = frechet_metric(d, Side("real.npz", stats_path=str(stats_path)), fake, protocol, seeds=[0, 1],
                            batch_size=5)
    assert cached.value == pytest.approx(res.value, rel=1e-9)
    _, stored = FeatureStats.load(stats_path)
    assert stored["detector_sha256"] == d.sha256

    # the same stats with another protocol are refused, naming what differs
    other = Protocol("fvd", "i3d", d.sha256, frames=32, size=16, resize=d.resize, num_samples=6)
    with pytest.raises(VideoSynthError, match="frames: stats have 10, asked for 32"):
        frechet_metric(d, Side("real.npz", stats_path=str(stats_path)), fake, other)
    with pytest.raises(VideoSynthError, match="only mean/covariance"):
        kernel_metric(d, Side("real.npz", stats_path=str(stats_path)), fake, protocol)


def test_kvd_same_distribution_smaller_than_shifted(tmp_path):
    d = det.load_detector("i3d", str(_write(SmallI3D, tmp_path / "i3d_torchscript.pt")), device="cpu")
    protocol = Protocol("kvd", "i3d", d.sha256, frames=4, num_samples=8)
    real = Side("real", batches=lambda seed: [_clips(8, t=4, seed=100)])
    same = kernel_metric(d, real, Side("same", batches=lambda s: [_clips(8, t=4, seed=200)]), protocol, subset_size=6)
    shifted = kernel_metric(d, real, Side("shift", batches=lambda s: [_clips(8, t=4, seed=1, offset=0.8)]),
                            protocol, subset_size=6)
    assert shifted.value > same.value


def test_c3d_and_inception_conventions(tmp_path):
    c3d = det.load_detector("c3d", str(_write(TinyC3D, tmp_path / "c3d_ucf101.pt")), device="cpu")
    x = c3d.prepare(_clips(2, t=8, size=20))
    assert x.dtype == torch.uint8 and x.shape == (2, 3, 16, 112, 112)
    probs = c3d(_clips(2, size=20))
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))  # logits were turned into probabilities
    protocol = Protocol("is", "c3d", c3d.sha256, num_samples=20)
    res = inception_score_metric(c3d, Side("fake", batches=lambda s: [_clips(20, seed=s)]), protocol, splits=2)
    assert 1.0 <= res.value < 101

    inc = det.load_detector("inception", str(_write(TinyInception, tmp_path / "inc.pt")), device="cpu")
    feats = inc(_clips(2, t=3))
    assert feats.shape == (6, 2048)  # one row per frame


def test_grey_input_and_bad_layout(i3d_file):
    d = det.load_detector("i3d", str(i3d_file), device="cpu")
    assert d(_clips(2)[:, :1]).shape == (2, 400)
    with pytest.raises(VideoSynthError, match="B, C, T, H, W"):
        d(torch.zeros(2, 16, 3, 16, 16))
