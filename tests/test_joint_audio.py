"""The sound a joint run generates: log-mel frames aligned with video frames, the Griffin-Lim vocoder, and the
analysers that read clicks, pitch and loudness back from a soundtrack (``videosynth eval audio-recon``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from test_hostile_files import one_line_error, run_cli
from videosynth.conditioning.melcodec import MelCodec, spectral_convergence
from videosynth.data import DataConfig, build_dataset
from videosynth.errors import ConfigError
from videosynth.metrics.sound import click_frames, pitch_track, truth_scores
from videosynth.metrics.timbre import TimbreProbe, fit_on_data

RATE, FPS = 8000, 8  # 1000 samples per video frame: small and quick


@pytest.fixture(scope="module")
def soundtracks():
    """Eight one-object soundtracks of 8 frames at 8 kHz with their ground truth."""
    ds = build_dataset(DataConfig(name="bouncing-shapes", frames=8, size=32, object_size=12, num_samples=8,
                                  audio=RATE), "val")
    sounds = torch.stack([ds[i]["audio"] for i in range(8)])  # (8, 8000)
    truths = [{k: ds.factors(i)[k][:, 0] for k in ("bounces", "positions", "pitch")} for i in range(8)]
    assert sum(int(t["bounces"].sum()) for t in truths) >= 2, "the fixture should hold some bounces"
    return sounds, truths


def codec() -> MelCodec:
    return MelCodec(RATE, FPS, mels=64, fft=512, mels_per_frame=8)


def test_the_timbre_probe_hears_each_clips_class_in_real_and_rebuilt_sound_and_not_in_anothers(soundtracks):
    data = DataConfig(name="bouncing-shapes", frames=8, size=32, object_size=12, num_samples=400, audio=RATE)
    probe = fit_on_data(data, 3, RATE, FPS, per_class=8)
    val = build_dataset(data, "val")
    items = [val[i] for i in range(24)]
    sounds, labels = torch.stack([it["audio"] for it in items]), torch.stack([it["label"] for it in items])
    assert len(set(labels.tolist())) == 3
    heard = probe.predict(sounds)
    assert (heard == labels).all()  # a sine, odd harmonics at 1/3, at 1/9: told apart whatever the pitch
    assert (heard == labels.roll(1)).float().mean() < 0.6  # the next clip's class is not what this one sounds like
    rebuilt = codec().decode(codec().encode(sounds))
    assert (probe.predict(rebuilt) == labels).float().mean() >= 0.9  # the vocoder keeps the harmonics
    silence = probe.predict(torch.zeros(1, sounds.shape[1]))
    assert silence.shape == (1,)  # silence reads as no harmonics: a class, never an error
    with pytest.raises(ConfigError, match="no sound of class 2"):
        TimbreProbe.fit(sounds[labels < 2], labels[labels < 2], 3, RATE, FPS)


def test_log_mel_frames_line_up_with_video_frames_a_click_shows_in_its_frames_first_mel_frame():
    c = codec()
    audio = torch.zeros(1, 4 * 1000)
    audio[0, 2000:2040] = torch.sin(torch.arange(40) * 2 * np.pi * 3000 / RATE)  # a burst at frame 2's start
    mel = c.encode(audio)
    assert mel.shape == (1, 64, 4 * 8)  # 8 mel frames per video frame
    energy = mel[0].exp().sum(0)  # (32,)
    assert int(energy.argmax()) == 2 * 8  # centred on the first sample of frame 2
    assert float(energy[:2 * 8 - 4].max()) < float(energy[2 * 8]) / 10  # nothing before the burst's window


def test_griffin_lim_rebuilds_the_soundtrack_so_its_clicks_pitch_and_loudness_read_back(soundtracks):
    sounds, truths = soundtracks
    c = codec()
    rebuilt = c.decode(c.encode(sounds))
    assert rebuilt.shape == sounds.shape and rebuilt.abs().max() <= 1
    assert spectral_convergence(sounds, rebuilt, c.fft, c.hop) < 0.35
    assert spectral_convergence(sounds, torch.zeros_like(sounds), c.fft, c.hop) == pytest.approx(1.0)
    assert float((c.log_mel(rebuilt) - c.log_mel(sounds)).abs().mean()) < 0.5
    scores = truth_scores(rebuilt, truths, RATE, FPS)
    assert scores["bounce_f1"] >= 0.95 and scores["pitch_height_corr"] > 0.99 and scores["loudness_x_corr"] > 0.9
    # a vocoder fed the wrong frames does not: another clip's mel frames lose the clicks and the pitch
    wrong = c.decode(c.encode(sounds.roll(1, dims=0)))
    shuffled = truth_scores(wrong, truths, RATE, FPS)
    assert shuffled["bounce_f1"] < 0.6 and shuffled["pitch_height_corr"] < 0.6


def test_the_analysers_read_the_real_soundtrack_exactly(soundtracks):
    sounds, truths = soundtracks
    for sound, truth in zip(sounds, truths):
        assert click_frames(sound, RATE, FPS).tolist() == np.flatnonzero(truth["bounces"]).tolist()
        error = np.abs(np.log2(pitch_track(sound, RATE, FPS)) - np.log2(truth["pitch"]))
        assert np.median(error) < 0.02  # octaves
    with pytest.raises(ConfigError, match="whole number of frames"):
        click_frames(sounds[0, :999], RATE, FPS)


@pytest.mark.parametrize("kwargs,message", [
    ({"mels_per_frame": 3}, "mels_per_frame=3: a video frame holds 1000 samples"),
    ({"fft": 64}, "shorter than the hop"),
    ({"mels": 300}, "too many bands"),
])
def test_a_codec_whose_frames_cannot_line_up_is_refused_in_one_line(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MelCodec(RATE, FPS, **{"mels": 64, "fft": 512, "mels_per_frame": 8, **kwargs})
    with pytest.raises(ConfigError, match="whole number of video frames"):
        codec().encode(torch.zeros(1, 1500))


def test_eval_audio_recon_prints_and_writes_the_scores_and_a_spectrogram(tmp_path, capsys):
    code, out, _ = run_cli(["eval", "audio-recon", "bouncing-shapes", "--num", "4", "--rate", RATE, "--mels", 64,
                            "--fft", 512, "--json", tmp_path / "r.json", "--spectrograms", tmp_path / "s.png"], capsys)
    assert code == 0 and "spectral convergence" in out and "bounce_f1" in out
    result = json.loads((tmp_path / "r.json").read_text())
    scores = result["scores"]
    assert 0 <= scores["spectral_convergence"] < 0.5 and scores["original"]["bounce_f1"] == 1.0
    assert result["protocol"]["codec"]["rate"] == RATE and result["protocol"]["hop"] == 125
    assert (tmp_path / "s.png").stat().st_size > 1000
    code, _, err = run_cli(["eval", "audio-recon", "bouncing-shapes", "--num", "2", "--rate", RATE,
                            "--mels-per-frame", 3], capsys)
    assert "mels_per_frame=3" in one_line_error(code, err)
