"""The built-in audio-visual data: a soundtrack whose clicks, pitches and timbres are exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from videosynth.data import DataConfig, build_dataset
from videosynth.data import soundtrack, synthetic
from videosynth.data.synthetic import BouncingShapes, MovingDigits
from videosynth.errors import ConfigError

RATE = 16000
FPS = 8.0


def shapes(**kw) -> BouncingShapes:
    args = dict(num_samples=40, frames=16, size=32, colour="white", audio_rate=RATE, fps=FPS)
    return BouncingShapes(**{**args, **kw})


def test_items_carry_a_soundtrack_of_the_clip_length_deterministic_by_seed():
    ds = shapes()
    item = ds[3]
    assert item["audio"].dtype.is_floating_point and item["audio"].shape == (round(16 / FPS * RATE),)
    assert item["audio"].abs().max() <= 1.0
    assert np.array_equal(item["audio"].numpy(), shapes()[3]["audio"].numpy())
    assert not np.array_equal(item["audio"].numpy(), shapes(seed=1)[3]["audio"].numpy())
    assert "audio" not in BouncingShapes(4, frames=8, size=32)[0]  # only when asked for
    cfg = DataConfig(name="moving-digits", frames=8, size=32, num_samples=4, audio=8000, fps=4.0)
    assert build_dataset(cfg)[0]["audio"].shape == (8000 * 2,)  # 8 frames at 4 fps = 2 s
    with pytest.raises(ConfigError, match="data.audio"):
        BouncingShapes(4, frames=8, size=32).soundtrack(0)


def test_clicks_sound_exactly_at_the_ground_truth_bounce_frames(monkeypatch):
    ds = shapes(num_objects=2)
    with_clicks = [ds.soundtrack(i) for i in range(20)]
    side, floor = soundtrack.click(RATE, soundtrack.SIDE_CLICK_PITCH), soundtrack.click(RATE)
    monkeypatch.setattr(soundtrack, "CLICK_LEVEL", 0.0)
    seen = np.zeros(2, int)
    for i, sound in enumerate(with_clicks):
        residual = sound.astype(np.float64) - ds.soundtrack(i)  # the clicks alone
        expected = np.zeros_like(residual)
        f = ds.factors(i)
        frames = np.flatnonzero(f["bounces"].any(axis=1))
        for t in frames:
            at = round(t / FPS * RATE)
            turned = (np.sign(f["velocities"][t]) != np.sign(f["velocities"][t - 1])).any(axis=0)  # (x, y)
            for axis, burst in ((0, side), (1, floor)):
                if turned[axis]:  # a low click off a side wall, a high one off the floor or ceiling
                    expected[at:at + burst.size] += burst[: len(expected) - at]
                    seen[axis] += 1
        assert np.abs(residual - expected).max() < 1e-5, f"item {i}: clicks off the bounce frames {frames}"
    assert (seen >= 5).all()  # the clips bounce often enough, both ways, for this to test something
    spectrum = lambda x: np.abs(np.fft.rfft(x, 4096))  # noqa: E731
    hz = np.fft.rfftfreq(4096, 1 / RATE)
    assert hz[spectrum(side).argmax()] == pytest.approx(soundtrack.SIDE_CLICK_PITCH, abs=40)
    assert hz[spectrum(floor).argmax()] == pytest.approx(soundtrack.CLICK_PITCH, abs=40)


def test_bounce_frames_are_where_the_velocity_turned():
    f = shapes().factors(0)
    v, b = f["velocities"][:, 0], f["bounces"][:, 0]
    for t in range(1, len(v)):
        assert b[t] == bool((np.sign(v[t]) != np.sign(v[t - 1])).any())
    assert not b[0]


def _zero_crossing_pitch(x: np.ndarray) -> float:
    """Hz of a (near) pure tone from its rising zero crossings."""
    rising = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    return (len(rising) - 1) / ((rising[-1] - rising[0]) / RATE)


def test_the_pitch_follows_the_height_two_octaves_from_bottom_to_top():
    ds = shapes()  # white circles: a pure sine tone
    samples = RATE / FPS
    errors, heights, pitches = [], [], []
    for i in range(6):
        f, sound = ds.factors(i), ds.soundtrack(i)
        for t in range(16):
            if f["bounces"][max(t, 1) - 1:t + 2].any():
                continue  # a click or a turn inside this frame
            segment = sound[round(t * samples) + 200: round((t + 1) * samples) - 50]
            measured = _zero_crossing_pitch(segment)
            errors.append(abs(measured / f["pitch"][t, 0] - 1))
            heights.append(-f["positions"][t, 0, 1])
            pitches.append(np.log2(measured))
    assert np.median(errors) < 0.03
    assert np.corrcoef(heights, pitches)[0, 1] > 0.99
    half, size = ds.object_size / 2, ds.size
    low, high = soundtrack.pitch_of(np.array([size - half, half]), half, size - half)
    assert low == pytest.approx(soundtrack.LOW_PITCH) and high == pytest.approx(4 * soundtrack.LOW_PITCH)


def test_each_class_has_its_own_timbre():
    def third_harmonic_share(cls_name: str) -> float:
        ds = shapes()
        i = next(i for i in range(len(ds)) if ds.factors(i)["classes"][0] == synthetic.SHAPES.index(cls_name))
        f, sound = ds.factors(i), ds.soundtrack(i)
        t = next(t for t in range(1, 15) if not f["bounces"][t - 1:t + 2].any())
        segment = sound[round(t * RATE / FPS): round((t + 1) * RATE / FPS)] * np.hanning(round(RATE / FPS))
        spectrum = np.abs(np.fft.rfft(segment))
        freqs = np.fft.rfftfreq(len(segment), 1 / RATE)
        f0 = f["pitch"][t, 0]
        band = lambda hz: spectrum[(freqs > hz * 0.93) & (freqs < hz * 1.07)].sum()  # noqa: E731
        return band(3 * f0) / band(f0)

    circle, square, triangle = (third_harmonic_share(n) for n in synthetic.SHAPES)
    assert circle < 0.02 and square > 0.2 and 0.05 < triangle < 0.2  # 0, 1/3 and 1/9 of the fundamental
    digits = {tuple(MovingDigits(2)._harmonics(d)) for d in range(10)}
    assert len(digits) == 10


def test_preview_writes_a_clip_with_its_sound(tmp_path):
    from test_cli import videosynth

    from videosynth import io

    res = videosynth("data", "preview", "bouncing-shapes", "--audio", RATE, "--num", 1, "--size", 32,
                     "--out", tmp_path / "p.mp4")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "with the first clip's sound" in res.stdout
    info = io.probe_audio(tmp_path / "p.mp4")
    assert info is not None and abs(info.duration - 16 / FPS) < 0.1
    assert io.probe(tmp_path / "p.mp4").fps == FPS
