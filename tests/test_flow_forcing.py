"""Flow options beyond the plain objective: per-frame times (Diffusion Forcing) and sampling with clean
context, shortcut steps, the shifted time grid, guidance in one batched forward, and runs saved before
these options (tests/fixtures/flow-v1) sampling as they did."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import videosynth
from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, ConditionedNet
from videosynth.models.dit import PRESETS, DiT, DiTConfig
from videosynth.sampling.flow import integrate, shortcut_target, time_grid
from videosynth.train.families import tiny_config
from videosynth.train.flow import FlowLossConfig, draw_frame_times
from videosynth.train.run import run_training

FIXTURES = Path(__file__).parent / "fixtures" / "flow-v1"
TRAIN = {"steps": 2, "batch_size": 4, "log_every": 1, "ckpt_every": 100, "sample_every": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny continuous tokenizer and the flow family's "forcing" and "shortcut" tiny runs on it, 4 steps at a
    large learning rate: far enough from adaLN-Zero's zero velocity that every input of the DiT matters."""
    root = tmp_path_factory.mktemp("flow-options")
    tok = run_training({**tiny_config("vqvae", "continuous"), "train": TRAIN}, run_dir=root / "kl", progress=False)
    return {v: run_training({**tiny_config("flow", v, tok), "optim": {"lr": 1e-2, "warmup_steps": 0},
                             "train": {**TRAIN, "steps": 4}}, run_dir=root / v, progress=False)
            for v in ("forcing", "shortcut")}


def _random_dit(**fields) -> DiT:
    """A DiT with random weights everywhere (adaLN-Zero left), so every input reaches the output."""
    torch.manual_seed(0)
    net = DiT(DiTConfig(**{**PRESETS["tiny"].__dict__, "latent_channels": 2, "latent_shape": (4, 4, 4), **fields}))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return net


# ----------------------------------------------------------------------------- per-frame times


def test_per_frame_times_of_one_value_are_one_time_per_clip_and_each_frame_gets_its_own():
    net = _random_dit(cond_dim=8)
    x, cond = torch.randn(2, 2, 4, 4, 4), torch.randn(2, 8)
    t = torch.tensor([0.3, 0.8])
    shared = net(x, t, cond)
    assert torch.allclose(net(x, t[:, None].expand(2, 4), cond), shared, rtol=1e-5, atol=1e-4)
    other = t[:, None].repeat(1, 4)
    other[:, 2] = 0.95  # frame 2 at another time: its adaLN changes, and through attention every frame
    assert not torch.allclose(net(x, other, cond), shared, atol=1e-3)
    with pytest.raises(ConfigError, match=r"per-frame times must be \[2, 4\]"):
        net(x, torch.rand(2, 3), cond)
    # latent frames under one token (patch 2 in time) share the time of the first
    paired = _random_dit(patch=(2, 2, 2))
    t4 = torch.tensor([[0.2, 0.2, 0.7, 0.7]])
    moved = torch.tensor([[0.2, 0.9, 0.7, 0.1]])
    assert torch.equal(paired(x[:1], t4), paired(x[:1], moved))


def test_frame_times_draw_clean_context_full_sequence_and_independent_clips_in_their_shares():
    cfg = FlowLossConfig(frame_times="independent", context_share=0.3, full_share=0.2)
    torch.manual_seed(0)
    t = draw_frame_times(6000, 4, cfg)
    assert t.shape == (6000, 4) and t.min() > 0 and t.max() <= 1
    clean = t == 1
    context = clean.any(1)
    # clean frames are a prefix of 1 .. 3 frames, the rest of such a clip at one time below 1
    k = clean.sum(1)
    assert torch.equal(clean[context], torch.arange(4)[None] < k[context, None])
    assert k[context].min() == 1 and k[context].max() == 3 and set(k[context].tolist()) == {1, 2, 3}
    rest = t[context].masked_fill(clean[context], float("nan"))
    assert ((rest - rest.nanmean(1, keepdim=True)).nan_to_num().abs() < 1e-7).all()
    one_time = (t == t[:, :1]).all(1) & ~context
    assert abs(float(context.float().mean()) - 0.3) < 0.02
    assert abs(float(one_time.float().mean()) - 0.2) < 0.02
    assert (t[~context & ~one_time].std(1) > 0).all()  # independent clips: a time per frame
    with pytest.raises(ConfigError, match="frame_times: independent"):
        FlowLossConfig(context_share=0.5)
    with pytest.raises(ConfigError, match="more than all clips"):
        FlowLossConfig(frame_times="independent", context_share=0.6, full_share=0.5)


def test_training_with_per_frame_times_feeds_the_dit_one_time_per_latent_frame(runs, tmp_path, monkeypatch):
    seen = []
    forward = DiT.forward

    def watched(self, x, t, *args, **kwargs):
        seen.append(t.detach().clone())
        return forward(self, x, t, *args, **kwargs)

    monkeypatch.setattr(DiT, "forward", watched)
    tok = videosynth.load(runs["forcing"], device="cpu").config["tokenizer_run"]
    run_training({**tiny_config("flow", "forcing", tok), "train": {**TRAIN, "steps": 6}}, run_dir=tmp_path / "run",
                 progress=False)
    train_times = [t for t in seen if t.dim() == 2 and t.shape[0] == TRAIN["batch_size"]]
    assert len(train_times) == 6 and all(t.shape == (4, 2) for t in train_times)  # 2 latent frames per clip
    every = torch.cat(train_times)
    assert (every == 1).any(), "the context share gives some clips a clean first frame"
    assert not (every == 1).all(1).any(), "never a clip without a frame to denoise"


# ----------------------------------------------------------------------------- clean context


class Stub(ConditionedNet):
    """A velocity that depends on state and per-frame times, recording what it is given."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg, self.w = cfg, torch.nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, t, cond=None):
        self.seen.append((x.clone(), t.clone()))
        return 0.5 * x + t.view(t.shape[0], 1, -1, 1, 1) + 1.0  # (B, C, t, h, w)


@pytest.mark.parametrize("noise", [0.0, 0.25])
@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_context_given_clean_stays_exactly_as_given_and_the_model_sees_it_at_its_time(noise, solver):
    from videosynth.pipelines.flow import sample_window

    cfg = DiTConfig(**{**PRESETS["tiny"].__dict__, "latent_channels": 2, "latent_shape": (3, 2, 2)})
    stub = Stub(cfg)
    x0, known = torch.randn(2, 2, 3, 2, 2), torch.randn(2, 2, 2, 2, 2)
    times = torch.full((2,), 1 - noise)
    out = sample_window(Conditioned(stub, None), x0, torch.full((2,), -1), [""] * 2, 3, solver, 1.0, known,
                        context="clean", context_time=times)
    assert torch.equal(out[:, :, :2], known)  # returned exactly as given
    for x, t in stub.seen:
        assert t.shape == (2, 3) and torch.equal(t[:, :2], torch.full((2, 2), 1 - noise))
        assert torch.allclose(x[:, :, :2], noise * x0[:, :, :2] + (1 - noise) * known, atol=1e-6)  # never moved
    # the new frame on the step's grid
    assert sorted({round(float(t[0, 2]), 4) for _, t in stub.seen}) == \
        ([0.0, 0.3333, 0.6667] if solver == "euler" else [0.0, 0.3333, 0.6667, 1.0])
    with pytest.raises(ConfigError, match="splits the model's tokens"):
        odd = DiTConfig(**{**cfg.__dict__, "latent_shape": (4, 2, 2), "patch": (2, 1, 1)})
        sample_window(Conditioned(Stub(odd), None), torch.randn(1, 2, 4, 2, 2), torch.full((1,), -1), [""], 2,
                      solver, 1.0, torch.randn(1, 2, 1, 2, 2), context="clean")


def test_a_rollout_gives_observed_frames_clean_and_its_own_frames_at_the_context_noise():
    from videosynth.pipelines.flow import sample_flow_latents

    cfg = DiTConfig(**{**PRESETS["tiny"].__dict__, "latent_channels": 2, "latent_shape": (3, 2, 2)})
    stub = Stub(cfg)
    net = Conditioned(stub, None)
    known = torch.randn(1, 2, 2, 2, 2)  # two observed latent frames
    out = sample_flow_latents(net, 1, torch.Generator().manual_seed(0), steps=2, solver="euler", known=known,
                              total_t=6, context_t=2, context="clean", context_noise=0.2)
    assert out.shape == (1, 2, 6, 2, 2) and torch.equal(out[:, :, :2], known)
    context_times = [tuple(t[0, :2].tolist()) for _, t in stub.seen]
    # windows of 3 frames, 2 steps each: the observation (frames 0, 1) clean; then context (1, 2): observed
    # frame 1 clean, made frame 2 at noise 0.2; then (2, 3) and (3, 4): made frames only
    assert context_times == [(1.0, 1.0)] * 2 + [(1.0, pytest.approx(0.8))] * 2 + [pytest.approx((0.8, 0.8))] * 4
    again = sample_flow_latents(Conditioned(Stub(cfg), None), 1, torch.Generator().manual_seed(0), steps=2,
                                solver="euler", known=known, total_t=6, context_t=2, context="clean",
                                context_noise=0.2)
    assert torch.equal(out, again)


def test_a_forcing_run_continues_clean_context_by_default_and_rolls_out_deterministically_by_seed(runs):
    from videosynth.pipelines.flow import sample_flow_latents

    pipe = videosynth.load(runs["forcing"], device="cpu")
    assert pipe.sample_cfg.context == "clean"  # recorded when the run started, from loss.frame_times
    clip = torch.rand(1, 3, 2, 16, 16) * 2 - 1  # one latent frame observed
    a = pipe(2, seed=1, label=1, frames=12, prime_video=clip)
    assert a.shape == (2, 3, 12, 16, 16) and torch.equal(a, pipe(2, seed=1, label=1, frames=12, prime_video=clip))
    assert not torch.equal(a, pipe(2, seed=2, label=1, frames=12, prime_video=clip))
    assert not torch.equal(a, pipe(2, seed=1, label=1, frames=12, prime_video=clip, context="project"))
    known = torch.randn(2, 4, 1, 4, 4)
    latents = sample_flow_latents(pipe.net(), 2, torch.Generator().manual_seed(0), steps=2, known=known, total_t=5,
                                  context="clean", context_noise=0.1)
    assert latents.shape == (2, 4, 5, 4, 4) and torch.equal(latents[:, :, :1], known)
    with pytest.raises(ConfigError, match="--context"):
        pipe(1, context="stabilised")


def test_history_guidance_weighs_the_velocity_with_context_against_the_one_with_the_context_as_noise():
    from videosynth.sampling.flow import hold_context

    calls = []

    def velocity(x, times):  # each frame's velocity depends on every frame (the mean) and on its own time
        calls.append((x.clone(), times.clone()))
        return x.mean(dim=2, keepdim=True) + times[:, None, :, None, None] + 0.5 * x

    x, free = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 2, 2, 2)
    t, ctx_time = torch.full((2,), 0.25), torch.ones(2)
    plain = hold_context(velocity, 2, ctx_time)(x, t)
    assert len(calls) == 1
    guided = hold_context(velocity, 2, ctx_time, history=3.0, free=free)(x, t)
    (seen, seen_t), (blind, blind_t) = calls[2], calls[1]
    assert torch.equal(seen, x) and torch.equal(seen_t, calls[0][1])  # the context as given, at its time
    assert torch.equal(blind[:, :, :2], free) and torch.equal(blind[:, :, 2:], x[:, :, 2:])  # ... or as noise
    assert torch.equal(blind_t, torch.tensor([[0.0, 0.0, 0.25, 0.25]] * 2))  # at time 0
    v_free = velocity(blind, blind_t)
    assert torch.allclose(guided[:, :, 2:], (v_free + 3.0 * (plain - v_free))[:, :, 2:], atol=1e-6)
    assert torch.equal(guided[:, :, :2], torch.zeros_like(guided[:, :, :2]))  # the context never moves
    assert not torch.allclose(guided, plain)
    with pytest.raises(ConfigError, match="stands in for the context"):
        hold_context(velocity, 2, ctx_time, history=2.0)


class TimeMixingEncoder(torch.nn.Module):
    """A tokenizer stand-in whose latent frame ``i`` (of 2 frames each) also sees the whole clip's mean, as a
    convolutional encoder's padding sees where the clip ends."""

    cfg = type("Cfg", (), {"downsample": (2, 1, 1)})()

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def encode_latents(self, video):
        pairs = video.unflatten(2, (-1, 2)).mean(dim=3)  # (n, C, T / 2, H, W)
        return pairs + 0.5 * video.mean(dim=2, keepdim=True)


def test_a_short_prime_is_encoded_as_the_start_of_a_whole_window_its_last_frame_held():
    from videosynth.pipelines.flow import encode_prime

    enc, prime = TimeMixingEncoder(), torch.randn(2, 3, 4, 5, 5)
    held = torch.cat([prime, prime[:, :, -1:].expand(-1, -1, 4, -1, -1)], dim=2)  # 8 frames: a whole window
    assert torch.equal(encode_prime(enc, prime, window=8), enc.encode_latents(held)[:, :, :2])
    assert not torch.allclose(encode_prime(enc, prime, window=8), enc.encode_latents(prime))
    assert torch.equal(encode_prime(enc, prime), enc.encode_latents(prime))  # no window: as it is
    longer = torch.randn(2, 3, 10, 5, 5)
    assert torch.equal(encode_prime(enc, longer, window=8), enc.encode_latents(longer))


def test_a_forcing_run_takes_history_guidance_with_clean_context_only(runs, tmp_path):
    pipe = videosynth.load(runs["forcing"], device="cpu")
    clip = torch.rand(1, 3, 2, 16, 16) * 2 - 1
    a = pipe(2, seed=1, label=1, frames=12, prime_video=clip, history_guidance=2.0)
    assert torch.equal(a, pipe(2, seed=1, label=1, frames=12, prime_video=clip, history_guidance=2.0))
    assert not torch.equal(a, pipe(2, seed=1, label=1, frames=12, prime_video=clip))
    with pytest.raises(ConfigError, match="add --context clean"):
        pipe(1, prime_video=clip, context="project", history_guidance=2.0)
    cfg = {**tiny_config("flow", "forcing", pipe.config["tokenizer_run"]), "train": TRAIN}
    cfg["sample"] = {**cfg.get("sample", {}), "context": "project", "context_noise": 0.0, "history_guidance": 2.0}
    with pytest.raises(ConfigError, match="sample.history_guidance"):
        run_training(cfg, run_dir=tmp_path / "refused", progress=False)


# ----------------------------------------------------------------------------- shortcut steps


def test_the_shortcut_target_is_two_half_steps_in_closed_form_on_a_linear_field():
    torch.manual_seed(0)
    a, b, c = torch.randn(3, 3) * 0.5, torch.randn(3), torch.randn(3)
    field = lambda x, t: x @ a.T + t[:, None] * b + c  # noqa: E731 - s(x, t) = A x + b t + c
    x, t, d = torch.randn(5, 3), torch.rand(5) * 0.5, torch.full((5,), 0.25)
    s1 = field(x, t)
    closed = s1 + d[:, None] / 2 * (s1 @ a.T + b)  # (s1 + A (x + d s1) + b (t + d) + c) / 2
    assert torch.allclose(shortcut_target(field, x, t, d), closed, atol=1e-6)
    # a field of time alone, v = b t + c, whose exact steps of d are b (t + d / 2) + c: the target of
    # 2d is the exact average velocity over [t, t + 2d], b (t + d) + c
    exact_step = lambda x, t: (t[:, None] + d[:, None] / 2) * b + c  # noqa: E731
    assert torch.allclose(shortcut_target(exact_step, x, t, d), (t[:, None] + d[:, None]) * b + c, atol=1e-6)


def test_shortcut_targets_and_prediction_see_one_draw_of_the_condition(runs, tmp_path, monkeypatch):
    seen = []
    forward = DiT.forward

    def watched(self, x, t, cond=None, *args, step=None, **kwargs):
        seen.append((torch.is_grad_enabled(), cond.detach().clone(), step.clone()))
        return forward(self, x, t, cond, *args, step=step, **kwargs)

    monkeypatch.setattr(DiT, "forward", watched)
    tok = videosynth.load(runs["shortcut"], device="cpu").config["tokenizer_run"]
    cfg = tiny_config("flow", "shortcut", tok)
    cfg["condition"] = {**cfg["condition"], "dropout": 0.5}
    run_training({**cfg, "train": {**TRAIN, "steps": 4, "batch_size": 8}}, run_dir=tmp_path / "run", progress=False)
    steps = [seen[i:i + 3] for i in range(0, len(seen), 3)]
    assert len(steps) == 4
    for (g1, c1, s1), (g2, c2, s2), (g3, c3, s3) in steps:
        assert not g1 and not g2 and g3  # two target forwards without gradient, then the prediction
        assert torch.equal(c1, c3[:4]) and torch.equal(c2, c3[:4])  # shortcut_share 0.5 of 8 rows
        assert torch.equal(s1, s3[:4] + 1) and (s3[4:] == 3).all()  # half steps; the rest the finest (1/8)


def test_a_shortcut_run_samples_in_one_two_and_four_steps_only(runs):
    pipe = videosynth.load(runs["shortcut"], device="cpu")
    assert pipe.model_cfg.step_levels == 4  # steps 1, 1/2, 1/4, 1/8
    clips = {k: pipe(2, seed=0, label=1, steps=k) for k in (1, 2, 4, 8)}
    for k, clip in clips.items():
        assert clip.shape == (2, 3, 4, 16, 16) and torch.equal(clip, pipe(2, seed=0, label=1, steps=k))
    assert not torch.equal(clips[1], clips[2])
    with pytest.raises(ConfigError, match="1, 2, 4, 8 steps; got --steps 3"):
        pipe(1, steps=3)
    with pytest.raises(ConfigError, match="1, 2, 4, 8 steps; got --steps 16"):
        pipe(1, steps=16)
    with pytest.raises(ConfigError, match="--solver euler"):
        pipe(1, steps=2, solver="heun")
    with pytest.raises(ConfigError, match="--shift must be 1"):
        pipe(1, steps=2, shift=3.0)
    with pytest.raises(ConfigError, match="frame_times: shared"):
        FlowLossConfig(objective="shortcut", frame_times="independent")
    with pytest.raises(ConfigError, match="power of two"):
        FlowLossConfig(objective="shortcut", shortcut_steps=12)


def test_a_shortcut_run_with_the_default_heun_sampler_is_refused_before_training(runs, tmp_path):
    tok = videosynth.load(runs["shortcut"], device="cpu").config["tokenizer_run"]
    cfg = tiny_config("flow", "shortcut", tok)
    cfg["sample"] = {"steps": 2}
    with pytest.raises(ConfigError, match="sample: .*--solver euler"):
        run_training({**cfg, "train": TRAIN}, run_dir=tmp_path / "run", progress=False)


# ----------------------------------------------------------------------------- shift, batched guidance


@pytest.mark.parametrize("shift", [1.0, 3.0, 0.5])
def test_the_shifted_time_grid_follows_the_flow_match_euler_formula(shift):
    grid = time_grid(8, shift)
    sigma = 1 - torch.linspace(0, 1, 9, dtype=torch.float64)  # noise levels, 1 at the noise end
    expected = 1 - shift * sigma / (1 + (shift - 1) * sigma)
    assert torch.allclose(grid.double(), expected, atol=1e-6)
    assert grid[0] == 0 and grid[-1] == 1 and (grid.diff() > 0).all()
    if shift > 1:  # smaller steps near the noise end
        assert grid.diff()[0] < grid.diff()[-1]
    seen = []
    integrate(lambda x, t: seen.append(float(t[0])) or torch.zeros_like(x), torch.zeros(1, 2), 8, "euler",
              shift=shift)
    assert seen == pytest.approx(grid[:-1].tolist())


def test_shift_reaches_flow_sampling(runs):
    pipe = videosynth.load(runs["forcing"], device="cpu")
    a = pipe(1, seed=0, label=0, steps=3, shift=3.0)
    assert torch.equal(a, pipe(1, seed=0, label=0, steps=3, shift=3.0))
    assert not torch.equal(a, pipe(1, seed=0, label=0, steps=3))
    with pytest.raises(ConfigError, match="shift"):
        pipe(1, shift=0.0)


def test_guided_velocity_of_one_batched_forward_equals_two_forwards_with_text_tokens_and_sound():
    """Cross-attention to text tokens and per-frame sound: the conditional and null rows in one forward
    (padded token sequences, the null sound repeated per frame) give the two-forward guided velocity."""
    from videosynth.conditioning import ConditionConfig, build_conditioner
    from videosynth.conditioning.text import WordTokenizer
    from videosynth.pipelines.flow import flow_velocity

    captions = ["a red circle moves left quickly", "a square"]
    cond_cfg = ConditionConfig(kind="text", dim=8, text_heads=2, max_len=8, audio=True, audio_rate=8000,
                               audio_fps=8.0, audio_fft=128, audio_mels=16,
                               vocab=WordTokenizer().fit(captions))
    conditioner = build_conditioner(cond_cfg)
    net = Conditioned(_random_dit(cond_dim=8, cross_attention=True, frame_sound=True, clip_frames=8),
                      conditioner).eval()
    for p in conditioner.parameters():
        torch.nn.init.normal_(p, std=0.3)
    labels, audio = torch.full((2,), -1), torch.randn(2, 8000)
    x, t = torch.randn(2, 2, 4, 4, 4), torch.rand(2)
    calls = []
    net.net.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        v = flow_velocity(net, labels, captions, 3.0, audio)(x, t)
        assert calls == [4]
        v_cond = net(x, labels=labels, captions=captions, audio=audio, t=t)
        v_null = net(x, labels=labels, captions=captions, audio=audio, force_null=True, t=t)
    # velocities of tens (random weights): equal up to float rounding of the batched kernels
    assert torch.allclose(v, v_null + 3.0 * (v_cond - v_null), rtol=1e-4, atol=1e-3)
    assert (v - v_cond).abs().max() > 1.0  # and guidance moved them


# ----------------------------------------------------------------------------- runs saved before


@pytest.fixture()
def old_runs(tmp_path, monkeypatch):
    root = tmp_path / "flow-v1"
    shutil.copytree(FIXTURES, root)
    monkeypatch.chdir(root)  # the flow run names its tokenizer run relative to where it was trained
    return root


def test_old_flow_runs_load_and_sample_as_they_did(old_runs):
    from videosynth.pipelines.flow import sample_flow_latents

    expected = load_file(str(FIXTURES / "expected-samples.safetensors"))
    pipe = videosynth.load("flow", device="cpu")
    assert pipe.sample_cfg.context is None and pipe.sample_cfg.shift == 1.0 and pipe.model_cfg.step_levels == 0
    prime = torch.linspace(-1, 1, 3 * 2 * 16 * 16).view(1, 3, 2, 16, 16)
    calls = {"plain": {"label": 1, "steps": 3},
             "guided": {"label": 2, "steps": 2, "solver": "euler", "guidance": 2.0},
             "primed": {"label": 0, "steps": 3, "prime_video": prime},
             "long": {"label": 1, "steps": 2, "frames": 12}}
    known = torch.linspace(-2, 2, 2 * 4 * 1 * 4 * 4).view(2, 4, 1, 4, 4)
    latent_calls = {"plain": {"steps": 3}, "guided": {"steps": 2, "solver": "euler", "guidance": 2.0},
                    "primed": {"steps": 3, "known": known}, "long": {"steps": 2, "total_t": 5, "known": known}}
    for name, kw in calls.items():
        # equal up to float rounding: guidance batches the conditional and null rows into one forward, and the
        # MLP's tanh-GELU is computed in sigmoid form (models.layers.TanhGELU) since these runs were saved
        tol = 1e-5
        assert (pipe(2, seed=0, **kw) - expected[name]).abs().max() <= tol, name
        latents = sample_flow_latents(pipe.net(), 2, torch.Generator().manual_seed(0), torch.tensor([1, 2]),
                                      **latent_calls[name])
        assert (latents - expected["latents-" + name]).abs().max() <= tol, name
    with pytest.raises(ConfigError, match="add --context clean"):
        pipe(1, prime_video=prime, context_noise=0.1)
    # the old projection stays their default; clean context is there to ask for
    assert not torch.equal(pipe(2, seed=0, prime_video=prime, steps=3, label=0, context="clean"), expected["primed"])
