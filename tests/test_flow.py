"""Latent flow matching: the path and its velocity, the ODE solvers, guidance, the DiT's shapes."""

from __future__ import annotations

import pytest
import torch

from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, ConditionedNet
from videosynth.models.dit import PRESETS, DiT, DiTConfig
from videosynth.sampling.flow import guided, integrate, path, sample_times


def test_the_path_is_the_straight_line_from_noise_to_data_with_constant_velocity():
    x0, x1 = torch.randn(3, 2, 1, 2, 2), torch.randn(3, 2, 1, 2, 2)
    t = torch.tensor([0.0, 0.25, 1.0])
    xt, v = path(x0, x1, t)
    assert torch.allclose(xt[0], x0[0]) and torch.allclose(xt[2], x1[2])
    assert torch.allclose(xt[1], 0.75 * x0[1] + 0.25 * x1[1])
    assert torch.allclose(v, x1 - x0)
    # moving along v for the rest of the time lands on the data
    assert torch.allclose(xt[1] + (1 - 0.25) * v[1], x1[1], atol=1e-6)


def test_time_sampling_lies_in_the_open_unit_interval_and_logit_normal_centres_on_a_half():
    g = torch.Generator().manual_seed(0)
    for kind in ("logit-normal", "uniform"):
        t = sample_times(20000, kind, generator=g)
        assert t.min() > 0 and t.max() < 1
    t = sample_times(20000, "logit-normal", generator=g)
    assert abs(float(t.median()) - 0.5) < 0.02 and float(((t > 0.25) & (t < 0.75)).float().mean()) > 0.6
    with pytest.raises(ConfigError, match="time sampling"):
        sample_times(4, "cosine")


def test_euler_and_heun_reach_the_analytic_endpoint():
    x0 = torch.randn(4, 3)
    c = torch.randn(4, 3)
    constant = lambda x, t: c  # noqa: E731 - dx/dt = c: x(1) = x0 + c, exact for both solvers
    for solver in ("euler", "heun"):
        assert torch.allclose(integrate(constant, x0, 3, solver), x0 + c, atol=1e-6)
    linear_in_t = lambda x, t: c * t[:, None]  # noqa: E731 - x(1) = x0 + c / 2; Heun (trapezoid) is exact
    assert torch.allclose(integrate(linear_in_t, x0, 2, "heun"), x0 + c / 2, atol=1e-6)
    euler = integrate(linear_in_t, x0, 8, "euler")  # left Riemann sum: x0 + c * (1 - 1/8) / 2
    assert torch.allclose(euler, x0 + c * (1 - 1 / 8) / 2, atol=1e-6)
    decay = lambda x, t: -x  # noqa: E731 - x(1) = x0 / e; Heun's error shrinks as h^2
    exact = x0 * torch.exp(torch.tensor(-1.0))
    errors = [float((integrate(decay, x0, n, "heun") - exact).abs().max()) for n in (4, 8)]
    assert errors[1] < errors[0] / 3
    # the straight-line field of one data point takes noise to it in a single Euler step
    x1 = torch.randn(4, 3)
    assert torch.allclose(integrate(lambda x, t: (x1 - x) / (1 - t[:, None]), x0, 1, "euler"), x1, atol=1e-6)
    with pytest.raises(ConfigError, match="solver"):
        integrate(constant, x0, 2, "rk4")


def test_guidance_one_is_plain_conditional_sampling_and_other_scales_mix_both_velocities_of_one_forward():
    calls = []

    def conditional(x, t):
        calls.append(("cond", x.shape[0]))
        return torch.full_like(x, 5.0)

    def paired(x, t):  # one forward over the batch taken twice: conditional rows, then null rows
        calls.append(("pair", x.shape[0]))
        return torch.cat([torch.full_like(x[:2], 5.0), torch.full_like(x[2:], 2.0)])

    x, t = torch.zeros(2, 3), torch.zeros(2)
    assert torch.equal(guided(conditional, paired, 1.0)(x, t), torch.full_like(x, 5.0)) and calls == [("cond", 2)]
    calls.clear()
    assert torch.allclose(guided(conditional, paired, 3.0)(x, t), torch.full_like(x, 2.0 + 3.0 * (5.0 - 2.0)))
    assert calls == [("pair", 4)]  # cond and null in one batched call
    assert torch.allclose(guided(conditional, paired, 0.0)(x, t), torch.full_like(x, 2.0))  # scale 0: unconditional
    with pytest.raises(ConfigError, match="conditional model"):
        guided(conditional, None, 2.0)


def test_dit_maps_latents_to_velocities_of_the_same_shape_and_starts_at_zero():
    cfg = DiTConfig(**{**PRESETS["tiny"].__dict__, "latent_channels": 4, "latent_shape": (2, 4, 4), "cond_dim": 8})
    net = DiT(cfg)
    x = torch.randn(3, 4, 2, 4, 4)
    v = net(x, torch.rand(3), torch.randn(3, 8))
    assert v.shape == x.shape and torch.equal(v, torch.zeros_like(v))  # adaLN-Zero: the output layer is zero
    torch.nn.init.normal_(net.out.weight)
    patches = torch.randn(3, cfg.num_tokens, 4 * 4)  # unpatchify inverts the patch layout of patch_embed
    grid = net.unpatchify(patches)
    assert grid.shape == (3, 4, 2, 4, 4)
    assert torch.equal(grid[0, :, 0, 0:2, 0:2].permute(1, 2, 0).reshape(-1), patches[0, 0])
    with pytest.raises(ConfigError, match="latents"):
        net(torch.randn(1, 4, 2, 8, 8), torch.rand(1))
    with pytest.raises(ConfigError, match="patch"):
        DiTConfig(latent_shape=(3, 4, 4), patch=(2, 2, 2))


def test_the_dit_mlp_activation_is_tanh_gelu_atens_own_in_training_and_equal_to_rounding_in_sampling():
    from videosynth.models.layers import TanhGELU

    ref, fast = torch.nn.GELU(approximate="tanh"), TanhGELU()
    x = (torch.randn(64, 48) * 4).requires_grad_()  # well into both tails
    kept = x.detach().clone()
    g = torch.randn(64, 48)
    (grad_ref,) = torch.autograd.grad(ref(x), x, g)
    (grad_fast,) = torch.autograd.grad(fast(x), x, g)
    assert torch.equal(fast(x), ref(x)) and torch.equal(grad_fast, grad_ref)  # training: bit for bit
    with torch.no_grad():  # sampling: the sigmoid form, equal to float rounding
        assert torch.allclose(fast(x), ref(x), atol=1e-6, rtol=0)
    assert torch.equal(x.detach(), kept)  # the in-place passes work on a buffer of their own
    half = x.detach().bfloat16()  # other precisions take the stock kernel
    assert torch.equal(fast(half), ref(half))
    assert isinstance(DiT(DiTConfig(**PRESETS["tiny"].__dict__)).blocks[0].mlp[1], TanhGELU)


DATA = {"name": "bouncing-shapes", "frames": 4, "size": 16, "num_samples": 16, "colour": "white"}
TRAIN = {"steps": 2, "batch_size": 4, "sample_every": 0, "device": "cpu", "log_every": 1}


def tiny_flow_run(root, **sections):
    """A tiny continuous tokenizer and a class-conditional flow run on it (2 steps each), in ``root``;
    ``sections`` replace sections of the flow run's config."""
    from videosynth.train.run import run_training

    tok = run_training({"family": "vqvae", "model": {"preset": "tiny", "bottleneck": "continuous", "code_dim": 4},
                        "data": DATA, "train": TRAIN}, run_dir=root / "kl", progress=False)
    return run_training({"family": "flow", "tokenizer_run": str(tok), "model": {"preset": "tiny"}, "data": DATA,
                         "condition": {"kind": "class", "dim": 8, "dropout": 0.3}, "train": TRAIN, **sections},
                        run_dir=root / "flow", progress=False)


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    return tiny_flow_run(tmp_path_factory.mktemp("flow"))


def test_flow_sampling_is_deterministic_by_seed_and_guidance_one_needs_one_forward(flow_run, tmp_path):
    import videosynth
    from videosynth.train.run import run_training

    pipe = videosynth.load(flow_run)
    a = pipe(2, seed=3, label=1, steps=3, solver="euler")
    assert a.shape == (2, 3, 4, 16, 16) and torch.equal(a, pipe(2, seed=3, label=1, steps=3, solver="euler"))
    assert not torch.equal(a, pipe(2, seed=4, label=1, steps=3, solver="euler"))
    with pytest.raises(ConfigError, match="--steps 0"):
        pipe(1, steps=0)
    # a VQ tokenizer is refused by the flow family in one line
    vq = run_training({"family": "vqvae", "model": {"preset": "tiny"}, "data": DATA, "train": TRAIN},
                      run_dir=tmp_path / "vq", progress=False)
    with pytest.raises(ConfigError, match="continuous latents"):
        run_training({"family": "flow", "tokenizer_run": str(vq), "model": {"preset": "tiny"}, "data": DATA,
                      "train": TRAIN}, run_dir=tmp_path / "bad", progress=False)
    # per-frame sound features without a sound condition are refused in one line
    tok = pipe.config["tokenizer_run"]
    with pytest.raises(ConfigError, match="frame_sound adds the sound"):
        run_training({"family": "flow", "tokenizer_run": tok, "model": {"preset": "tiny", "frame_sound": True},
                      "data": DATA, "condition": {"kind": "class", "dim": 8}, "train": TRAIN},
                     run_dir=tmp_path / "deaf", progress=False)
    assert isinstance(pipe.net(), Conditioned)


def test_known_latents_are_held_on_their_path_and_kept_exactly():
    from videosynth.sampling.flow import keep_known

    x0, known = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    mask = torch.zeros(2, 3, 4, dtype=torch.bool)
    mask[:, :, :2] = True
    seen = []

    def velocity(x, t):
        seen.append((x[mask].clone(), float(t[0])))
        return torch.ones_like(x)

    out = integrate(velocity, x0, 4, "heun", keep_known(x0, known, mask))
    assert torch.equal(out[mask], known[mask])  # observed part returned exactly
    assert torch.allclose(out[~mask], x0[~mask] + 1.0)  # the rest integrated as without projection
    for values, t in seen:  # the model always saw the observed part at the step's noise level
        assert torch.allclose(values, ((1 - t) * x0 + t * known)[mask], atol=1e-6)


def test_primed_flow_sampling_keeps_the_observed_latent_frames(flow_run):
    import videosynth
    from videosynth.pipelines.flow import sample_flow_latents

    pipe = videosynth.load(flow_run)
    known = torch.randn(2, 4, 1, 4, 4)  # one of two latent frames observed
    latents = sample_flow_latents(pipe.net(), 2, torch.Generator().manual_seed(0), steps=3, known=known)
    assert latents.shape == (2, 4, 2, 4, 4) and torch.equal(latents[:, :, :1], known)
    clip = torch.rand(1, 3, 2, 16, 16) * 2 - 1  # two frames = one latent frame of this tokenizer
    primed = pipe(2, seed=0, prime_video=clip, steps=3)
    assert primed.shape == (2, 3, 4, 16, 16) and torch.equal(primed, pipe(2, seed=0, prime_video=clip, steps=3))
    assert not torch.equal(primed, pipe(2, seed=0, steps=3))
    with pytest.raises(ConfigError, match="--prime-frames needs --prime"):
        pipe(1, prime_frames=2)
    with pytest.raises(ConfigError, match="observed latents must be"):
        sample_flow_latents(pipe.net(), 2, torch.Generator(), known=torch.randn(2, 3, 1, 4, 4))  # 3 channels, not 4


def test_class_acc_sampling_options_are_parsed_and_checked_by_the_pipeline():
    from videosynth.commands.eval import parse_options

    assert parse_options(["steps=8", "solver=euler", "guidance=1.5"]) == {"steps": 8, "solver": "euler",
                                                                         "guidance": 1.5}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["steps"])


def test_long_flow_sampling_returns_the_requested_frames_by_sliding_windows(flow_run):
    """Past the training length each window holds the last latent frames as context and adds the rest."""
    import videosynth
    from videosynth.pipelines.flow import sample_flow_latents

    pipe = videosynth.load(flow_run)  # 4 frames = 2 latent frames per window
    net = pipe.net()
    short = sample_flow_latents(net, 2, torch.Generator().manual_seed(5), steps=2)
    long = sample_flow_latents(net, 2, torch.Generator().manual_seed(5), steps=2, total_t=5)
    assert long.shape == (2, 4, 5, 4, 4) and torch.equal(long[:, :, :2], short)  # window 1 is the short sample
    assert torch.equal(long, sample_flow_latents(net, 2, torch.Generator().manual_seed(5), steps=2, total_t=5))
    clips = pipe(2, seed=1, frames=12, steps=2)  # 3x the training length
    assert clips.shape == (2, 3, 12, 16, 16) and torch.equal(clips, pipe(2, seed=1, frames=12, steps=2))
    assert pipe(1, seed=1, frames=2, steps=2).shape == (1, 3, 2, 16, 16)  # shorter: the first latent frame
    # a long observation is kept whole and continued
    known = torch.randn(2, 4, 3, 4, 4)
    out = sample_flow_latents(net, 2, torch.Generator().manual_seed(0), steps=2, known=known, total_t=6)
    assert out.shape == (2, 4, 6, 4, 4) and torch.equal(out[:, :, :3], known)
    with pytest.raises(ConfigError, match="multiple"):
        pipe(1, frames=7)
    with pytest.raises(ConfigError, match="context_frames"):
        pipe(1, frames=8, context_frames=2)
    with pytest.raises(ConfigError, match="more than"):
        sample_flow_latents(net, 2, torch.Generator(), known=known, total_t=2)


def test_long_windows_hold_the_context_of_the_previous_window():
    """A stub velocity that records its inputs: every window after the first starts from the last
    ``context_t`` latent frames made so far, held exactly at the end of the window."""
    from videosynth.pipelines.flow import sample_flow_latents

    cfg = DiTConfig(**{**PRESETS["tiny"].__dict__, "latent_channels": 2, "latent_shape": (3, 2, 2)})

    class Drift(ConditionedNet):  # dx/dt = 1 everywhere: a window's new frames end at noise + 1
        def __init__(self):
            super().__init__()
            self.cfg, self.w = cfg, torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, t, cond=None):
            return torch.ones_like(x)

    net = Conditioned(Drift(), None)
    g = torch.Generator().manual_seed(0)
    out = sample_flow_latents(net, 1, g, steps=2, solver="euler", total_t=7, context_t=1)
    g = torch.Generator().manual_seed(0)
    noises = [torch.randn(1, 2, 3, 2, 2, generator=g) for _ in range(3)]  # windows: 3 + 2 + 2 frames
    assert torch.allclose(out[:, :, :3], noises[0] + 1)
    assert torch.allclose(out[:, :, 3:5], noises[1][:, :, 1:] + 1)
    assert torch.allclose(out[:, :, 5:7], noises[2][:, :, 1:] + 1)


def _one_block(factorised: bool, **gates) -> "torch.nn.Module":
    """A DiT block whose adaLN output is constant: the named gates open (1), every other chunk 0."""
    from videosynth.models.dit import Block

    block = Block(8, 2, 2, factorised=factorised)
    torch.nn.init.zeros_(block.ada[-1].weight)
    bias = torch.zeros(9 if factorised else 6, 8)
    for index in gates.values():
        bias[index] = 1.0
    block.ada[-1].bias.data = bias.reshape(-1)
    return block


def test_factorised_attention_attends_within_frames_then_across_frames_at_one_position():
    grid = (3, 2, 2)  # 3 latent frames of 2 x 2 tokens
    x = torch.randn(1, 12, 8)
    moved = x.clone()
    moved[0, 0] += torch.randn(8)  # token (frame 0, position 0); not a constant, which LayerNorm removes
    c = torch.zeros(1, 8)
    changed = lambda block: (block(moved, c, grid) - block(x, c, grid)).abs().sum(-1)[0].view(3, 4) > 1e-6  # noqa: E731
    spatial = changed(_one_block(True, spatial=2))  # only the spatial attention's gate open
    assert spatial[0].all() and not spatial[1:].any()  # frame 0 only
    temporal = changed(_one_block(True, temporal=8))  # only the temporal attention's gate open
    assert temporal[:, 0].all() and not temporal[:, 1:].any()  # position 0 only, every frame
    full = changed(_one_block(False, attention=2))
    assert full.all()  # full attention: every token sees the change


def test_cross_attention_reads_the_valid_condition_tokens_only():
    cfg = DiTConfig(**{**PRESETS["tiny"].__dict__, "latent_channels": 2, "latent_shape": (2, 4, 4), "cond_dim": 8,
                       "cross_attention": True})
    net = DiT(cfg)
    for module in net.modules():  # leave adaLN-Zero: random weights everywhere, so the context matters
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.2)
    x, t, pooled = torch.randn(2, 2, 2, 4, 4), torch.rand(2), torch.randn(2, 8)
    context, mask = torch.randn(2, 5, 8), torch.tensor([[True] * 3 + [False] * 2] * 2)
    v = net(x, t, pooled, context, mask)
    padded = context.clone()
    padded[:, 3:] = 100.0  # masked positions: no effect
    assert torch.allclose(net(x, t, pooled, padded, mask), v, atol=1e-5)
    other = context.clone()
    other[:, 0] += 1.0
    assert not torch.allclose(net(x, t, pooled, other, mask), v)
    with pytest.raises(ConfigError, match="cross_attention needs a condition"):
        DiT(DiTConfig(**{**cfg.__dict__, "cond_dim": 0}))
    with pytest.raises(ConfigError, match="model.attention"):
        DiTConfig(attention="axial")


def test_frame_sound_reaches_the_tokens_of_the_latent_frame_it_lies_under():
    cfg = DiTConfig(**{**PRESETS["tiny"].__dict__, "latent_channels": 2, "latent_shape": (4, 4, 4), "cond_dim": 8,
                       "frame_sound": True, "clip_frames": 8})  # 2 video frames per latent frame
    net = DiT(cfg)
    x, t, pooled, sound = torch.randn(2, 2, 4, 4, 4), torch.rand(2), torch.randn(2, 8), torch.randn(2, 8, 8)
    assert torch.equal(net(x, t, pooled, cond_frames=sound), net(x, t, pooled, cond_frames=sound + 1))  # zero start
    torch.nn.init.normal_(net.sound.weight)
    seen = []
    net.blocks[0].register_forward_hook(lambda module, args, out: seen.append(args[0]))
    net(x, t, pooled, cond_frames=sound)
    louder = sound.clone()
    louder[:, 5] += 1.0  # video frame 5 lies under latent frame 2
    net(x, t, pooled, cond_frames=louder)
    changed = (seen[1] - seen[0]).abs().amax(-1).view(2, 4, 4)  # (B, t, h*w): block 0's input tokens
    assert (changed[:, 2] > 0).all() and not changed[:, [0, 1, 3]].any()
    net(x, t, pooled, cond_frames=sound[:, :1])  # one feature (the null sound) stands for every frame
    with pytest.raises(ValueError, match="cond_frames"):
        net(x, t, pooled, cond_frames=sound[:, :6])
    with pytest.raises(ConfigError, match="split evenly"):
        DiTConfig(**{**cfg.__dict__, "clip_frames": 6})
    with pytest.raises(ConfigError, match="frame_sound needs a sound condition"):
        DiT(DiTConfig(**{**cfg.__dict__, "cond_dim": 0}))


def test_a_text_conditioned_cross_attention_dit_sees_pooled_and_tokens_of_one_dropout_draw():
    from videosynth.conditioning import ConditionConfig, build_conditioner
    from videosynth.conditioning.text import WordTokenizer

    captions = ["a red circle moves left", "a blue square moves up"] * 8
    cond = build_conditioner(ConditionConfig(kind="text", dim=8, dropout=0.5, text_heads=2, max_len=8,
                                             vocab=WordTokenizer().fit(captions)))
    seen = {}

    class Probe(ConditionedNet):
        takes_context = True

        def forward(self, x, cond=None, context=None, context_mask=None):
            seen.update(cond=cond, context=context, mask=context_mask)
            return x

    torch.manual_seed(0)
    Conditioned(Probe(), cond.train())(torch.zeros(16, 1), captions=captions)
    null_pooled = torch.isclose(seen["cond"], cond.null).all(1)
    null_tokens = seen["mask"].sum(1) == 1
    assert 0 < int(null_pooled.sum()) < 16 and torch.equal(null_pooled, null_tokens)  # the same rows dropped
    assert torch.allclose(seen["context"][null_tokens, 0], cond.null.expand(int(null_tokens.sum()), 8))


def test_encode_writes_float_latents_a_flow_run_trains_on_and_tokenize_is_the_same_command(flow_run, tmp_path, capsys):
    """`videosynth encode` of a continuous tokenizer: the latents it encodes, read by a flow run with
    latents: DIR (the same first-step loss as encoding on the fly); `tokenize` is the same command."""
    import json

    from videosynth.cli import main
    from videosynth.data import DataConfig, build_dataset
    from videosynth.data.tokens import LatentDataset, TokenDataset
    from videosynth.errors import DataError
    from videosynth.pipelines import TokenizerPipeline
    from videosynth.train.run import run_training

    tok = flow_run.parent / "kl"
    cache = tmp_path / "latents"
    assert main(["encode", str(tok), "bouncing-shapes", "--out", str(cache), "--batch-size", "3",
                 "--shard-size", "5"]) == 0
    assert "latents of 4 channels" in capsys.readouterr().out
    data = LatentDataset(cache)
    assert len(data) == DATA["num_samples"] and data.channels == 4 and data.latent_shape == (2, 4, 4)
    first = build_dataset(DataConfig(**DATA), "train")[0]["video"]
    tokenizer = TokenizerPipeline.from_run(tok, device="cpu")
    assert torch.allclose(tokenizer.encode_latents(first[None])[0], data[0]["latents"], atol=1e-5)  # batched conv: ulps
    with pytest.raises(DataError, match="cache of latents, not tokens"):
        TokenDataset(cache)
    assert main(["tokenize", str(tok), "bouncing-shapes", "--out", str(tmp_path / "again"), "--split", "val"]) == 0
    runs = {}
    for name, extra in (("fly", {}), ("cached", {"latents": str(cache)})):
        torch.manual_seed(0)
        runs[name] = run_training({"family": "flow", "tokenizer_run": str(tok), "model": {"preset": "tiny"},
                                   "data": DATA, "condition": {"kind": "class", "dim": 8}, "train": TRAIN, **extra},
                                  run_dir=tmp_path / name, progress=False)
    losses = {k: [json.loads(l)["loss"] for l in (v / "log.jsonl").read_text().splitlines()]
              for k, v in runs.items()}
    assert losses["fly"] == pytest.approx(losses["cached"], rel=1e-4)
    with pytest.raises(ConfigError, match="latent cache .* holds latents"):
        run_training({"family": "flow", "tokenizer_run": str(tok), "latents": str(tmp_path / "again"),
                      "model": {"preset": "tiny"}, "data": {**DATA, "frames": 2}, "train": TRAIN},
                     run_dir=tmp_path / "bad", progress=False)


def test_eval_track_samples_a_flow_run_longer_than_training(flow_run, tmp_path):
    import json

    from videosynth.cli import main

    out = tmp_path / "track.json"
    assert main(["eval", "track", "bouncing-shapes", str(flow_run), "--frames", "12", "--num", "4", "--device", "cpu",
                 "--option", "steps=2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["protocol"]["frames"] == 12 and result["protocol"]["options"] == {"steps": 2}
    assert int(result["fake"]["num_clips"]) == 4 and int(result["real"]["num_clips"]) == 4
