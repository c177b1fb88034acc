"""Sound as a condition: the mel front end against hand-computed references, the encoder's frame
alignment, the combined conditioner's contract, sound in folders, and the sync metrics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from media import write_numbered
from videosynth import io
from videosynth.conditioning import ConditionConfig, build_conditioner
from videosynth.conditioning.audio import AudioEncoder, hz_to_mel, log_mel, mel_filterbank, mel_to_hz
from videosynth.data import DataConfig, VideoFolder, build_dataset
from videosynth.data.synthetic import BouncingShapes
from videosynth.errors import ConfigError, DataError
from videosynth.metrics.sync import match_events, onset_alignment, sync_scores, turning_frames

RATE = 16000


# ---- the mel front end ------------------------------------------------------------------------


def test_slaney_mel_scale_by_hand():
    # linear below 1 kHz (200/3 Hz per mel), so 1 kHz is mel 15; above, 27 mels per factor 6.4
    assert float(hz_to_mel(1000.0)) == pytest.approx(15.0)
    assert float(hz_to_mel(500.0)) == pytest.approx(7.5)
    assert float(hz_to_mel(6400.0)) == pytest.approx(15.0 + 27.0)
    hz = torch.tensor([0.0, 100.0, 999.0, 1000.0, 3000.0, 7999.0], dtype=torch.float64)
    assert torch.allclose(mel_to_hz(hz_to_mel(hz)), hz)


def test_filterbank_weights_by_hand():
    """Two bands over a 8-bin spectrum at 1.6 kHz: every weight from the triangle formula."""
    fb = mel_filterbank(1600, 14, 2).double()  # bins every 1600/14 Hz, 0..800 Hz: all on the linear part
    step = 800.0 / 3  # 4 mel points evenly spaced over 0..800 Hz -> 0, 266.7, 533.3, 800 Hz
    bins = np.arange(8) * 1600 / 14
    for m in range(2):
        lo, mid, hi = m * step, (m + 1) * step, (m + 2) * step
        tri = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0, None)
        assert np.allclose(fb[m].numpy(), tri * 2 / (hi - lo), rtol=1e-5)
    # area normalisation: each filter integrates to ~1 over frequency on a fine grid
    fine = mel_filterbank(16000, 8192, 32).double()
    assert torch.allclose(fine.sum(1) * (8000 / 4096), torch.ones(32, dtype=torch.float64), atol=0.02)


def test_a_pure_tone_lights_the_band_around_its_frequency():
    n_fft, n_mels = 512, 64
    for freq in (300.0, 1000.0, 2500.0, 5000.0):
        tone = torch.sin(2 * math.pi * freq * torch.arange(RATE) / RATE)[None] * 0.5
        mel = log_mel(tone, RATE, n_fft, n_fft // 4, n_mels)  # (1, M, J)
        assert mel.shape == (1, n_mels, RATE // (n_fft // 4) + 1)
        band = int(mel[0, :, 10:-10].mean(1).argmax())
        points = mel_to_hz(torch.linspace(0.0, float(hz_to_mel(RATE / 2)), n_mels + 2, dtype=torch.float64))
        centres = points[1:-1]
        assert band == int((centres - freq).abs().argmin())  # the band centred nearest the tone
    silence = log_mel(torch.zeros(1, RATE), RATE, n_fft, n_fft // 4, n_mels)
    assert torch.allclose(silence, torch.full_like(silence, math.log(1e-5)))


# ---- the encoder and the conditioner ------------------------------------------------------------


def test_encoder_gives_one_feature_per_video_frame_local_in_time():
    torch.manual_seed(0)
    enc = AudioEncoder(16, RATE, 8.0, n_mels=32).eval()
    quiet = torch.zeros(2, 2 * RATE)  # 2 s at 8 fps: 16 frames
    frames, pooled = enc(quiet)
    assert frames.shape == (2, 16, 16) and pooled.shape == (2, 16)
    click = quiet.clone()
    click[:, 5 * RATE // 8: 5 * RATE // 8 + 40] = 0.8  # a click at the start of frame 5
    changed = (enc(click)[0] - frames).abs().amax(dim=(0, 2))  # (T,)
    assert changed[5] > 1e-3
    assert (changed[:4] == 0).all() and (changed[7:] == 0).all()  # only the frames around it move
    null, null_pooled = enc(click, is_null=torch.tensor([True, False]))
    assert torch.equal(null[0], enc.null_frame.expand(16, -1)) and torch.equal(null_pooled[0], enc.null_pooled)
    with pytest.raises(ConfigError, match="sample rate"):
        AudioEncoder(16, 0, 8.0)


def test_combined_class_and_sound_condition():
    cfg = ConditionConfig(kind="class", num_classes=3, dim=8, audio=True, audio_rate=RATE, audio_fps=8.0,
                          audio_mels=16, audio_fft=256)
    cond = build_conditioner(cfg).eval()
    labels = torch.tensor([0, 2])
    sound = torch.rand(2, RATE) - 0.5  # 1 s: 8 frames
    c = cond.encode(labels, ["", ""], audio=sound, tokens=True)
    assert c.pooled.shape == (2, 8) and c.frames.shape == (2, 8, 8)
    assert c.tokens.shape == (2, 1 + 8, 8) and c.mask.all()  # the class token, then one per frame of sound
    alone = cond.base.encode(labels, ["", ""])
    frames, pooled = cond.encoder(sound)
    assert torch.allclose(c.pooled, alone.pooled + pooled)
    silent = cond.encode(labels, ["", ""])  # no sound given: the learned null
    assert torch.equal(silent.frames[:, 0], cond.encoder.null_frame.expand(2, -1))
    both_null = cond.encode(labels, ["", ""], audio=sound, force_null=True)
    assert torch.allclose(both_null.pooled, (cond.base.embed.weight[3] + cond.encoder.null_pooled).expand(2, -1))
    with pytest.raises(ConfigError, match=r"audio must be float \[2, S\]"):
        cond.encode(labels, ["", ""], audio=torch.zeros(3, RATE))
    with pytest.raises(ConfigError, match="trained without condition.audio"):
        build_conditioner(ConditionConfig(kind="class", num_classes=3, dim=8)).encode(labels, ["", ""], audio=sound)


def test_sound_without_sound_in_the_data_is_one_line():
    from videosynth.train.run import run_training

    with pytest.raises(ConfigError, match="set data.audio"):
        run_training({"family": "mocogan", "model": {"preset": "tiny"}, "data": {"frames": 4, "size": 16,
                      "num_samples": 8}, "condition": {"kind": "none", "audio": True, "dim": 8},
                      "train": {"steps": 1, "batch_size": 4}}, run_dir="/nonexistent/never-written")


# ---- sound in folders --------------------------------------------------------------------------


def test_folder_items_carry_the_sound_under_their_clip_and_silent_videos_are_reported(tmp_path):
    root = tmp_path / "videos"
    fps = 10.0
    for i in range(4):
        path = root / "a" / f"v{i}.mp4"
        write_numbered(path, 30, fps=fps)
        sound = np.zeros(3 * RATE, np.float32)
        sound[round(12 / fps * RATE)] = 0.9  # a click at frame 12 of every video
        io.write_video(path, io.read_all(path), fps=fps, audio=sound, sample_rate=RATE)
    write_numbered(root / "a" / "silent.mp4", 30, fps=fps)
    ds = VideoFolder(root, frames=8, size=16, split="all", audio_rate=RATE, train_clip="center", progress=False,
                     max_broken_fraction=0.5)
    assert ds.fps == fps and len(ds) == 4
    assert [r for p, r in ds.broken if p.endswith("silent.mp4")] == ["no audio stream, and data.audio asks for sound"]
    item = ds[0]
    assert item["audio"].shape == (round(8 / fps * RATE),)
    start = ds.clip_start(0)  # centred: frames 11..18
    at = int(item["audio"].abs().argmax())
    assert abs(at - round((12 - start) / fps * RATE)) <= 3
    with pytest.raises(DataError, match="silent.mp4: no audio stream"):
        VideoFolder(root, frames=8, size=16, split="all", audio_rate=RATE, progress=False, max_broken_fraction=0.1)
    cfg = DataConfig(name="folder", root=str(root), frames=8, size=16, audio=RATE, max_broken_fraction=0.5)
    assert build_dataset(cfg, "all")[1]["audio"].shape == (round(8 / fps * RATE),)


# ---- sync metrics ------------------------------------------------------------------------------


def test_event_matching_is_one_to_one_within_the_tolerance():
    c = match_events(np.array([3, 4, 10]), np.array([4, 9, 20]), tolerance=1)
    assert (c.hits, c.predicted, c.expected) == (2, 3, 3)
    assert match_events(np.array([3]), np.array([5]), tolerance=1).hits == 0
    path = np.stack([np.r_[np.arange(6.0), 5.0 - np.arange(1.0, 5.0)], np.full(10, 8.0)], 1)  # out and back
    assert turning_frames(path).tolist() == [5]


def test_sync_scores_one_on_real_clips_and_drop_for_shuffled_or_shifted_sound():
    ds = BouncingShapes(100, frames=16, size=32, colour="white", audio_rate=RATE, split="val")
    clips = [ds[i]["video"] for i in range(48)]
    truths = [{k: ds.factors(i)[k][:, 0] for k in ("bounces", "pitch", "velocities")} for i in range(48)]
    real = sync_scores(clips, truths)
    assert real["bounce_f1"] > 0.95 and real["pitch_height_corr"] > 0.99 and real["tracked_share"] == 1.0
    shuffled = sync_scores(clips, truths[1:] + truths[:1])
    assert shuffled["bounce_f1"] < 0.4 and shuffled["pitch_height_corr"] < 0.5
    shifted = sync_scores(clips, [{**t, "bounces": np.roll(t["bounces"], 3)} for t in truths])
    assert shifted["bounce_f1"] < 0.3


def test_the_onset_heuristic_prefers_the_real_sound():
    ds = BouncingShapes(100, frames=16, size=32, colour="white", audio_rate=RATE, split="val")
    items = [ds[i] for i in range(48)]
    clips, sounds = [it["video"] for it in items], [it["audio"].numpy() for it in items]
    matched = onset_alignment(clips, sounds, RATE, 8.0)
    shuffled = onset_alignment(clips, sounds[1:] + sounds[:1], RATE, 8.0)
    assert matched["onset_f1"] > shuffled["onset_f1"] + 0.1


# ---- the command line, end to end ----------------------------------------------------------------


def test_a_sound_driven_run_trains_samples_with_a_soundtrack_and_is_scored(tmp_path):
    import json

    from test_cli import one_line_error, videosynth

    run = tmp_path / "run"
    res = videosynth("train", "--config", "configs/mocogan/audio-32x32x16.yaml", "--run-dir", run,
                     "--set", "model.preset=tiny", "--set", "data.size=16", "--set", "data.frames=4",
                     "--set", "data.object_size=0", "--set", "data.num_samples=16", "--set", "train.steps=2",
                     "--set", "train.batch_size=4",
                     "--set", "train.sample_every=0", "--set", "condition.audio_fft=128",
                     "--set", "condition.audio_mels=16")
    assert res.returncode == 0, res.stderr[-3000:]
    sound = BouncingShapes(4, frames=12, size=16, audio_rate=RATE).soundtrack(0)  # 1.5 s at 8 fps
    wav = io.write_audio(tmp_path / "drive.wav", sound, RATE)
    res = videosynth("sample", run, "--audio", wav, "--frames", 12, "--num", 2, "--out", tmp_path / "s.mp4", "--each")
    assert res.returncode == 0, res.stderr[-3000:]
    for path in (tmp_path / "s.mp4", tmp_path / "s-001.mp4"):
        assert io.probe(path).num_frames == 12
        info = io.probe_audio(path)
        assert info is not None and abs(info.duration - 12 / 8) < 0.1  # the soundtrack that drove it
    back = io.read_audio(tmp_path / "s-001.mp4", RATE, 0.2, 1.0)
    assert np.corrcoef(back, sound[round(0.2 * RATE): round(1.2 * RATE)])[0, 1] > 0.9
    assert "--fps 10" in one_line_error(videosynth("sample", run, "--audio", wav, "--fps", 10,
                                                   "--out", tmp_path / "x.mp4"))
    res = videosynth("eval", "sync", run, "--num", 4, "--json", tmp_path / "sync" / "sync.json")
    assert res.returncode == 0, res.stderr[-3000:]
    scores = json.loads((tmp_path / "sync" / "sync.json").read_text())["scores"]
    assert set(scores) == {"real", "matched", "shuffled"} and scores["real"]["tracked_share"] == 1.0


def test_a_sound_driven_prior_samples_the_same_tokens_cached_or_not_and_hears_each_window():
    from videosynth.models.transformer import PRESETS, Prior
    from videosynth.sampling.ar import generate, rollout

    cfg = dataclasses.replace(PRESETS["tiny"], vocab_size=16, latent_shape=(2, 2, 2), audio_dim=4, frames_per_latent=2)
    torch.manual_seed(0)
    prior = Prior(cfg).eval()
    sound = torch.randn(3, 8, 4)  # (B, T, A): 8 video frames = 4 latent frames, twice the prior's length
    kwargs = dict(temperature=1.0, generator=torch.Generator().manual_seed(1))
    cached = rollout(prior, 4, 3, sound=sound, **kwargs)
    kwargs["generator"] = torch.Generator().manual_seed(1)
    assert torch.equal(cached, rollout(prior, 4, 3, sound=sound, use_cache=False, **kwargs))
    greedy = [generate(prior, (2, 2, 2), 3, temperature=0.0, sound=s) for s in (sound[:, :4], -sound[:, :4])]
    assert not torch.equal(*greedy)  # the sound changes what is sampled
    with pytest.raises(ConfigError, match="driven by sound"):
        generate(prior, (2, 2, 2), 3)
