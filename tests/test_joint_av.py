"""Joint audio-video flow runs: one DiT makes a clip and its sound, sound for a given video, a clip for a given sound."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import videosynth
from test_hostile_files import one_line_error, run_cli
from videosynth.errors import ConfigError, VideoSynthError
from videosynth.data import DataConfig, build_dataset
from videosynth.data.transforms import to_uint8
from videosynth.io import probe_audio, read_all, read_audio, write_audio, write_video
from videosynth.models.dit import PRESETS, per_token
from videosynth.models.joint_dit import JointDiT
from videosynth.sampling.joint import sample_streams
from videosynth.train.families import TINY_DATA, tiny_config
from videosynth.train.flow import FlowLossConfig
from videosynth.train.joint_flow import draw_stream_times, onset_weights
from videosynth.train.run import run_training

TRAIN = {"batch_size": 4, "log_every": 1, "ckpt_every": 100, "sample_every": 0, "device": "cpu", "ema_decay": 0.9}
RATE, FRAMES, FPS = 8000, 4, 8  # the tiny configs' sound: 4 frames of 16x16 px, 1000 samples per frame


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny continuous tokenizer, a tiny joint run on it (2 steps) and a video-only flow run (1 step)."""
    root = tmp_path_factory.mktemp("joint")
    tok = run_training({**tiny_config("vqvae", "continuous"), "train": {**TRAIN, "steps": 2}}, run_dir=root / "tok",
                       progress=False)
    joint = run_training({**tiny_config("flow", "joint", tok), "train": {**TRAIN, "steps": 2}},
                         run_dir=root / "joint", progress=False)
    video = run_training({**tiny_config("flow", "plain", tok), "train": {**TRAIN, "steps": 1}},
                         run_dir=root / "video", progress=False)
    return {"tok": tok, "joint": joint, "video": video}


def tiny_joint_dit() -> JointDiT:
    cfg = dataclasses.replace(PRESETS["tiny"], latent_channels=4, latent_shape=(2, 4, 4), clip_frames=4,
                              sound_mels=16, sound_frames=32, sound_patch=2)
    return JointDiT(cfg)


def test_a_joint_run_trains_both_streams_and_records_its_sound_stream(runs):
    rows = [json.loads(line) for line in (runs["joint"] / "log.jsonl").read_text().splitlines()]
    assert all(r["loss_video"] > 0 and r["loss_sound"] > 0 for r in rows)
    assert all(abs(r["loss"] - r["loss_video"] - r["loss_sound"]) < 1e-4 for r in rows)
    pipe = videosynth.load(runs["joint"], device="cpu")
    assert pipe.generates_sound and pipe.audio_rate == RATE and pipe.audio_fps == FPS
    assert (pipe.model_cfg.sound_mels, pipe.model_cfg.sound_frames, pipe.model_cfg.clip_frames) == (16, 32, FRAMES)
    assert not videosynth.load(runs["video"], device="cpu").generates_sound


def test_stream_times_share_out_clean_video_clean_sound_and_joint_rows():
    torch.manual_seed(0)
    cfg = FlowLossConfig(video_to_audio_share=0.3, audio_to_video_share=0.2)
    tv, ts = draw_stream_times(20000, cfg)
    video_given, sound_given = tv == 1, ts == 1
    assert abs(float(video_given.float().mean()) - 0.3) < 0.02 and abs(float(sound_given.float().mean()) - 0.2) < 0.02
    assert not bool((video_given & sound_given).any())  # one stream is always left to learn
    joint = ~video_given & ~sound_given
    assert torch.equal(tv[joint], ts[joint]) and float(tv[joint].max()) < 1  # joint rows: one time for both
    with pytest.raises(ConfigError, match="more than all rows"):
        FlowLossConfig(video_to_audio_share=0.7, audio_to_video_share=0.4)


def test_rows_with_a_given_stream_can_draw_the_other_streams_time_nearer_the_noise():
    torch.manual_seed(0)
    tv, ts = draw_stream_times(20000, FlowLossConfig(video_to_audio_share=0.3, audio_to_video_share=0.2,
                                                     given_logit_mean=-2.0))
    video_given, sound_given = tv == 1, ts == 1
    joint = ~video_given & ~sound_given
    # sigmoid(-2) = 0.12 in the given rows, sigmoid(0) = 0.5 in the joint rows
    assert abs(float(ts[video_given].median()) - 0.119) < 0.01 and abs(float(tv[sound_given].median()) - 0.119) < 0.01
    assert abs(float(tv[joint].median()) - 0.5) < 0.02 and torch.equal(tv[joint], ts[joint])
    for bad in ({"given_logit_mean": -1.0}, {"given_logit_mean": -1.0, "video_to_audio_share": 0.5,
                                              "time_sampling": "uniform"}):
        with pytest.raises(ConfigError, match="loss.given_logit_mean"):
            FlowLossConfig(**bad)


def test_onset_weights_favour_the_frames_where_a_band_rises_and_keep_the_loss_size():
    sound = torch.zeros(2, 4, 8)
    sound[0, :, 3] = 2.0  # a click: every band rises at frame 3, falls at 4
    w = onset_weights(sound, 4.0)
    assert torch.allclose(w.mean(dim=(1, 2)), torch.ones(2))
    assert float(w[0, :, 3].min()) > float(w[0, :, 4].max()) and torch.equal(w[1], torch.ones(4, 8))
    assert torch.equal(onset_weights(sound, 0.0), torch.ones_like(sound))


def test_a_run_whose_rows_all_give_the_video_learns_only_the_sound(runs, tmp_path):
    cfg = tiny_config("flow", "joint", runs["tok"])
    cfg["loss"] = {"video_to_audio_share": 1.0}
    run = run_training({**cfg, "train": {**TRAIN, "steps": 1}}, run_dir=tmp_path / "v2a", progress=False)
    row = json.loads((run / "log.jsonl").read_text().splitlines()[0])
    assert row["loss_video"] == 0 and row["loss_sound"] > 0


def test_joint_attention_lets_each_stream_see_the_other_and_each_stream_gets_its_own_time():
    torch.manual_seed(0)
    net = tiny_joint_dit()
    for p in net.parameters():  # away from the zero start, so every path carries signal
        torch.nn.init.normal_(p, std=0.2)
    x, s = torch.randn(2, 4, 2, 4, 4), torch.randn(2, 16, 32)
    t = torch.full((2,), 0.5)
    v, a = net(x, t, s, t)
    v2, a2 = net(x, t, s + 1, t)  # another sound moves the video's velocity (joint attention) ...
    assert not torch.allclose(v, v2, atol=1e-4) and not torch.allclose(a, a2, atol=1e-4)
    v3, _ = net(x, t, s, torch.ones(2))  # ... and so does the sound stream's time, through its tokens only
    assert not torch.allclose(v, v3, atol=1e-4)
    m = torch.arange(6.0).view(1, 2, 3)  # per-stream modulations broadcast over runs of 3 and 2 tokens
    assert per_token(m, 5, (3, 2))[0, :, 0].tolist() == [0, 0, 0, 3, 3]
    assert torch.equal(net.unpatch_sound(net.patch_sound(s)), s)


@pytest.mark.parametrize("given", ["video", "sound"])
def test_a_given_stream_is_what_the_model_sees_at_time_one_and_is_returned_as_given(given):
    seen = []

    def model(xv, tv, xa, ta):
        seen.append((xv.clone(), tv.clone(), xa.clone(), ta.clone()))
        return -xv, -xa

    g = torch.Generator().manual_seed(0)
    noise_v, noise_s = torch.randn(2, 4, 2, 4, 4, generator=g), torch.randn(2, 16, 32, generator=g)
    known = torch.randn(2, 4, 2, 4, 4) if given == "video" else torch.randn(2, 16, 32)
    kwargs = {"known_video": known} if given == "video" else {"known_sound": known}
    video, sound = sample_streams(model, None, 1.0, noise_v, noise_s, 3, "heun", **kwargs)
    held, moved = (video, sound) if given == "video" else (sound, video)
    assert torch.equal(held, known) and not torch.equal(moved, noise_s if given == "video" else noise_v)
    free_times = []
    for xv, tv, xa, ta in seen:
        assert torch.equal(xv if given == "video" else xa, known)
        assert bool(((tv if given == "video" else ta) == 1).all())
        free_times.append(round(float((ta if given == "video" else tv)[0]), 4))
    assert free_times == [0.0, 0.3333, 0.3333, 0.6667, 0.6667, 1.0]  # the free stream follows Heun's grid
    with pytest.raises(ConfigError, match="not both"):
        sample_streams(model, None, 1.0, noise_v, noise_s, 2, known_video=noise_v, known_sound=noise_s)


def test_video_to_audio_keeps_the_given_video_and_audio_to_video_keeps_the_given_sound(runs):
    pipe = videosynth.load(runs["joint"], device="cpu")
    clips = torch.rand(2, 3, FRAMES, 16, 16) * 2 - 1
    av = pipe.with_sound(2, seed=0, label=1, given_video=clips)
    assert torch.equal(av.video, clips) and av.audio.shape == (2, FRAMES * RATE // FPS)
    assert torch.equal(pipe.with_sound(2, seed=0, label=1, given_video=clips).audio, av.audio)  # by seed
    sound = torch.rand(2, FRAMES * RATE // FPS) - 0.5
    av = pipe.with_sound(2, seed=0, label=1, audio=sound)
    assert torch.equal(av.audio, sound) and av.video.shape == (2, 3, FRAMES, 16, 16)
    assert torch.equal(pipe(2, seed=0, label=1, audio=sound), av.video)  # pipe(audio=) is audio-to-video
    joint = pipe.with_sound(3, seed=1)
    assert joint.video.shape == (3, 3, FRAMES, 16, 16) and joint.audio.shape == (3, FRAMES * RATE // FPS)
    assert torch.equal(pipe(3, seed=1), joint.video)


def test_sample_writes_mp4s_carrying_each_clips_generated_sound_of_the_clip_length(runs, tmp_path, capsys):
    out = tmp_path / "av.mp4"
    code, printed, err = run_cli(["sample", runs["joint"], "--num", 2, "--out", out, "--each", "--no-progress"], capsys)
    assert code == 0, err
    assert "with the sound made for clip 0" in printed and "each with its own sound" in printed
    for path in (out, tmp_path / "av-000.mp4", tmp_path / "av-001.mp4"):
        info = probe_audio(path)
        assert info is not None and abs(info.duration - FRAMES / FPS) < 0.05, (path, info)
    assert read_all(tmp_path / "av-001.mp4").shape == (FRAMES, 16, 16, 3)
    expected = videosynth.load(runs["joint"], device="cpu").with_sound(2, seed=0).audio
    heard = [read_audio(tmp_path / f"av-00{i}.mp4", RATE, 0.0, FRAMES / FPS) for i in (0, 1)]
    # each file's sound is its own clip's (AAC is lossy: closer to its own than to the other's)
    for i in (0, 1):
        own, other = (float((torch.from_numpy(heard[i]) - expected[j]).abs().mean()) for j in (i, 1 - i))
        assert own < other


def test_sample_makes_sound_for_a_given_video_and_a_video_for_a_given_wav(runs, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    write_video(clip, to_uint8(build_dataset(DataConfig(**TINY_DATA), "val")[0]["video"]), fps=FPS)
    code, printed, err = run_cli(["sample", runs["joint"], "--video", clip, "--num", 1, "--out", tmp_path / "d.mp4",
                                  "--each", "--no-grid", "--no-progress"], capsys)
    assert code == 0 and "each with its own sound" in printed, err
    assert abs(probe_audio(tmp_path / "d-000.mp4").duration - FRAMES / FPS) < 0.05
    # the frames written are the given video's (through two lossy encodes), not a new draw
    given, written = (torch.from_numpy(read_all(p)).float() for p in (clip, tmp_path / "d-000.mp4"))
    assert (given - written).abs().mean() < 4 < given.std()
    sound = torch.rand(FRAMES * RATE // FPS) - 0.5
    write_audio(tmp_path / "drive.wav", sound.numpy(), RATE)
    code, printed, err = run_cli(["sample", runs["joint"], "--audio", tmp_path / "drive.wav", "--num", 1,
                                  "--out", tmp_path / "v.mp4", "--no-progress"], capsys)
    assert code == 0 and "with its sound" in printed, err
    write_audio(tmp_path / "drive-11k.wav", (torch.rand(11025 * FRAMES // FPS) - 0.5).numpy(), 11025)
    code, _, err = run_cli(["sample", runs["joint"], "--audio", tmp_path / "drive-11k.wav", "--num", 1,
                            "--out", tmp_path / "v11.mp4", "--no-progress"], capsys)
    assert code == 0, err  # a sound at another rate is resampled to the run's
    assert probe_audio(tmp_path / "v11.mp4").sample_rate == RATE


def test_eval_sync_on_a_joint_run_returns_the_three_scores_and_their_controls(runs, tmp_path, capsys):
    code, printed, err = run_cli(["eval", "sync", runs["joint"], "--num", 3, "--json", tmp_path / "s.json",
                                  "--spectrograms", tmp_path / "s.png", "--probe-steps", 2, "--no-progress"], capsys)
    assert code == 0, err
    assert (tmp_path / "s.png").stat().st_size > 1000  # real, made-for and generated sound side by side
    assert "video-to-audio" in printed and "audio-to-video" in printed and "shuffled" in printed
    scores = json.loads((tmp_path / "s.json").read_text())["scores"]
    assert set(scores) == {"joint", "video_to_audio", "audio_to_video"}
    assert set(scores["joint"]) == {"real", "generated", "shuffled"}
    assert set(scores["video_to_audio"]) == set(scores["audio_to_video"]) == {"real", "matched", "shuffled"}
    # the real soundtrack read back against its own clip's truth: the analysers' ceiling
    assert scores["video_to_audio"]["real"]["bounce_f1"] == 1.0
    assert scores["video_to_audio"]["real"]["pitch_height_corr"] > 0.95
    assert all(k in scores["joint"]["generated"] for k in ("bounce_f1", "pitch_height_corr", "loudness_x_corr"))
    # a class-conditional run: class-timbre on every side, with the timbre probe's ceiling on real sound
    assert all("class_timbre" in side for mode in scores.values() for side in mode.values())
    assert scores["video_to_audio"]["real"]["class_timbre"] == 1.0
    assert all("class_accuracy" in side for side in scores["joint"].values()) and "class_timbre =" in printed


def test_bad_joint_inputs_give_one_line_errors(runs, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    assert run_cli(["sample", runs["video"], "--num", 1, "--out", clip, "--no-progress"], capsys)[0] == 0
    code, _, err = run_cli(["sample", runs["video"], "--video", clip, "--out", tmp_path / "x.mp4"], capsys)
    assert "generates video only" in one_line_error(code, err)
    write_audio(tmp_path / "short.wav", (torch.rand(RATE // 4) - 0.5).numpy(), RATE)
    code, _, err = run_cli(["sample", runs["joint"], "--audio", tmp_path / "short.wav", "--out", tmp_path / "x.mp4"],
                           capsys)
    assert "give a sound at least that long" in one_line_error(code, err)
    code, _, err = run_cli(["sample", runs["joint"], "--prime", clip, "--out", tmp_path / "x.mp4"], capsys)
    assert "does not apply to joint" in one_line_error(code, err)
    pipe = videosynth.load(runs["joint"], device="cpu")
    with pytest.raises(ConfigError, match="given sound must be"):
        pipe.with_sound(1, audio=torch.zeros(1, 999))
    with pytest.raises(VideoSynthError, match="generates video only"):
        videosynth.load(runs["video"], device="cpu").with_sound(1)
    for change, message in (({"loss": {"audio_to_video_share": 0.5}, "joint": {"audio": False}},
                             "audio_to_video_share applies to joint"),
                            ({"loss": {"onset_weight": 4.0}, "joint": {"audio": False}}, "onset_weight applies to joint"),
                            ({"condition": {"kind": "class", "audio": True}}, "cannot be given as a condition"),
                            ({"model": {"preset": "tiny", "attention": "factorised"}}, "factorised"),
                            ({"joint": {"audio": True, "mels_per_frame": 3}}, "mels_per_frame=3")):
        cfg = {**tiny_config("flow", "joint", runs["tok"]), **change, "train": {**TRAIN, "steps": 1}}
        with pytest.raises(ConfigError, match=message):
            run_training(cfg, run_dir=tmp_path / "bad", progress=False)
        assert not (tmp_path / "bad" / "config.yaml").exists()


def test_the_web_page_serves_a_joint_run_with_each_clips_sound(runs, tmp_path):
    pytest.importorskip("gradio", reason="the web extra is not installed (pip install -e '.[web]')")
    from videosynth.web.runs import Limits, Request, ServedRun, generate

    run = ServedRun(runs["joint"])
    assert run.takes_audio  # the page offers a sound upload: a clip for that sound
    result = generate(run, Request(num=2, label="1"), Limits(), tmp_path / "out")
    for path in (result.grid, *result.clips):
        assert abs(probe_audio(path).duration - FRAMES / FPS) < 0.05
