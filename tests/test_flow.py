"""Latent flow matching: the path and its velocity, the ODE solvers, guidance, the DiT's shapes."""

from __future__ import annotations

import pytest
import torch

from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned
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


def test_guidance_one_is_plain_conditional_sampling_and_other_scales_mix_both_velocities():
    calls = []

    def model(x, t, null):
        calls.append(null)
        return torch.full_like(x, 2.0 if null else 5.0)

    x, t = torch.zeros(2, 3), torch.zeros(2)
    assert torch.equal(guided(model, 1.0)(x, t), torch.full_like(x, 5.0)) and calls == [False]
    assert torch.allclose(guided(model, 3.0)(x, t), torch.full_like(x, 2.0 + 3.0 * (5.0 - 2.0)))
    assert torch.allclose(guided(model, 0.0)(x, t), torch.full_like(x, 2.0))  # scale 0: unconditional


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


DATA = {"name": "bouncing-shapes", "frames": 4, "size": 16, "num_samples": 16, "colour": "white"}
TRAIN = {"steps": 2, "batch_size": 4, "sample_every": 0, "device": "cpu", "log_every": 1}


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    """A tiny continuous tokenizer and a class-conditional flow run on it (2 steps each)."""
    from videosynth.train.run import run_training

    root = tmp_path_factory.mktemp("flow")
    tok = run_training({"family": "vqvae", "model": {"preset": "tiny", "bottleneck": "continuous", "code_dim": 4},
                        "data": DATA, "train": TRAIN}, run_dir=root / "kl", progress=False)
    return run_training({"family": "flow", "tokenizer_run": str(tok), "model": {"preset": "tiny"}, "data": DATA,
                         "condition": {"kind": "class", "dim": 8, "dropout": 0.3}, "train": TRAIN},
                        run_dir=root / "flow", progress=False)


def test_flow_sampling_is_deterministic_by_seed_and_guidance_one_needs_one_forward(flow_run, tmp_path):
    import videosynth
    from videosynth.train.run import run_training

    pipe = videosynth.load(flow_run)
    a = pipe(2, seed=3, label=1, steps=3, solver="euler")
    assert a.shape == (2, 3, 4, 16, 16) and torch.equal(a, pipe(2, seed=3, label=1, steps=3, solver="euler"))
    assert not torch.equal(a, pipe(2, seed=4, label=1, steps=3, solver="euler"))
    with pytest.raises(ConfigError, match="--steps 0"):
        pipe(1, steps=0)
    with pytest.raises(ConfigError, match="sliding"):
        pipe(1, frames=8)
    # a VQ tokenizer is refused by the flow family in one line
    vq = run_training({"family": "vqvae", "model": {"preset": "tiny"}, "data": DATA, "train": TRAIN},
                      run_dir=tmp_path / "vq", progress=False)
    with pytest.raises(ConfigError, match="continuous latents"):
        run_training({"family": "flow", "tokenizer_run": str(vq), "model": {"preset": "tiny"}, "data": DATA,
                      "train": TRAIN}, run_dir=tmp_path / "bad", progress=False)
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
    with pytest.raises(ConfigError, match="observed latents"):
        sample_flow_latents(pipe.net(), 2, torch.Generator(), known=torch.randn(2, 4, 3, 4, 4))


def test_class_acc_sampling_options_are_parsed_and_checked_by_the_pipeline():
    from videosynth.commands.eval import parse_options

    assert parse_options(["steps=8", "solver=euler", "guidance=1.5"]) == {"steps": 8, "solver": "euler",
                                                                         "guidance": 1.5}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["steps"])
