"""benchmarks/peers.py --diffusers: the matched diffusers modules, the diffusers sampling loop, the JSON a run
writes, and the package never importing diffusers (a benchmark-only dependency)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import diffusers_peer  # noqa: E402 — the benchmark's module, not the package's

needs_diffusers = pytest.mark.skipif(not diffusers_peer.available(),
                                     reason=f"diffusers is not installed ({diffusers_peer.INSTALL})")


def load_peers():
    spec = importlib.util.spec_from_file_location("peers_bench", ROOT / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_package_never_imports_diffusers():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("videosynth", include_external_packages=True)
    importers = graph.find_modules_that_directly_import("diffusers") if "diffusers" in graph.modules else set()
    assert not importers


def test_without_diffusers_one_line_says_how_to_install(monkeypatch, capsys, tmp_path):
    peers = load_peers()
    monkeypatch.setitem(sys.modules, "diffusers", None)  # find_spec then reports it missing
    out = tmp_path / "peers.json"
    assert peers.main(["--diffusers", "--tiny", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "pip install" in lines[0] and "diffusers" in lines[0]
    assert not out.exists()


@needs_diffusers
def test_matched_models_share_our_token_grid_and_latents():
    setup = diffusers_peer.flow_setup(tiny=True)
    cfg = setup.dit
    x = torch.randn(2, cfg.latent_channels, *cfg.latent_shape)  # (B, C, t, h, w)
    caption_labels = torch.tensor([0, 2])
    for build in diffusers_peer.TRANSFORMERS.values():
        peer = build(setup).eval()
        assert peer.grid == diffusers_peer.token_grid(setup) == [4, 4, 4]
        with torch.no_grad():
            out = peer(x, torch.tensor([500.0, 20.0]), peer.caption(caption_labels))
        assert out.shape == x.shape
    # Latte: as many attention + MLP blocks as ours (a spatial and a temporal one per layer)
    assert 2 * diffusers_peer.latte(setup).transformer.config.num_layers == cfg.depth
    vae = diffusers_peer.cogvideox_vae(setup.tokenizer.model)
    data = setup.tokenizer.data
    assert diffusers_peer.check_round_trip(vae, data.frames, data.size) == [cfg.latent_channels, *cfg.latent_shape]
    ours = sum(p.numel() for p in diffusers_peer.our_tokenizer(setup).parameters())
    assert abs(sum(p.numel() for p in vae.parameters()) - ours) < 0.1 * ours


@needs_diffusers
def test_peers_follow_the_flow_recipe(tmp_path):
    from videosynth.config import dump_yaml, load_yaml

    recipe = load_yaml(diffusers_peer.FLOW_CONFIG)
    recipe["model"] = {"preset": "shapes-32x32x8", "width": 128, "depth": 4, "heads": 4}
    path = tmp_path / "flow.yaml"
    path.write_text(dump_yaml(recipe))
    setup = diffusers_peer.flow_setup(path)
    assert setup.dit_batch == recipe["train"]["batch_size"]
    latte, cog = diffusers_peer.latte(setup).transformer.config, diffusers_peer.cogvideox(setup).transformer.config
    for config in (latte, cog):
        assert (config.num_attention_heads, config.attention_head_dim) == (4, 32)
    assert (latte.num_layers, cog.num_layers) == (2, 4)


class OursAsDiffusers(nn.Module):
    """Our DiT behind the peer's interface: diffusers' prediction (noise - data) at timestep 1000 (1 - t)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def caption(self, labels: torch.Tensor, force_null: bool = False) -> torch.Tensor:
        return self.net.condition(labels, None, labels.shape[0], force_null).pooled[:, None]  # (B, 1, D)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        t = 1 - timestep / diffusers_peer.TRAIN_TIMESTEPS
        return -self.net.net(x, t, cond=caption[:, 0])


@needs_diffusers
def test_diffusers_loop_integrates_the_ode_our_sampler_does():
    """Our DiT in the diffusers loop gives our sampler's latents: the same time grid, sign and guidance."""
    from videosynth.pipelines.flow import sample_flow_latents

    setup = diffusers_peer.flow_setup(tiny=True)
    torch.manual_seed(0)
    net = diffusers_peer.our_dit(setup).eval()
    with torch.no_grad():
        for p in net.parameters():  # adaLN-Zero starts at velocity 0: give every layer weights
            p.normal_(0, 0.05)
    labels, steps, guidance, scale = torch.tensor([0, 1, 2]), 4, 2.0, 10.0
    cfg = setup.dit
    identity = SimpleNamespace(config=SimpleNamespace(scaling_factor=scale),
                               decode=lambda z: SimpleNamespace(sample=z))
    theirs = diffusers_peer.sample_loop(OursAsDiffusers(net), identity, labels, (cfg.latent_channels, *cfg.latent_shape),
                                        steps, guidance, torch.Generator().manual_seed(3))
    ours = sample_flow_latents(net, 3, torch.Generator().manual_seed(3), labels, None, steps, "euler", guidance)
    expected = (ours / scale).clamp(-1, 1)  # the loop divides by the scaling factor and clamps, as it does clips
    assert expected.std() > 0.05  # a real signal within the clamp
    torch.testing.assert_close(theirs, expected, atol=1e-5, rtol=1e-5)


PHASE_KEYS = {"dit_step": ("seconds_median", "seconds_all", "params", "token_grid", "layers"),
              "sample": ("seconds_median", "seconds_per_clip", "params", "token_grid", "model_evaluations",
                         "clip_shape", "finite"),
              "ae_quality": ("params", "latent", "steps", "step_s", "psnr", "ssim", "evals")}


@needs_diffusers
@pytest.mark.slow
@pytest.mark.parametrize("phase", list(PHASE_KEYS))
def test_peers_diffusers_tiny_run_writes_its_json(phase, tmp_path):
    out = tmp_path / "peers-diffusers.json"
    timed = phase != "ae_quality"  # interleaved rounds, here in two sets of fresh processes
    cmd = [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--diffusers", "--tiny", "--rounds", "1",
           "--threads", "1", "--phases", phase, "--json", str(out), *(["--processes", "2"] if timed else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "peers-diffusers" and result["hyper_parameters"]["tiny"]
    r = result["results"][phase]
    models = ("latte", "cogvideox", "videosynth") if phase != "ae_quality" else ("cogvideox", "videosynth")
    for model in models:
        assert set(PHASE_KEYS[phase]) <= set(r[model]), model
        assert r[model]["peak_rss_mb"] >= r[model]["baseline_rss_mb"] > 0
        if timed:
            assert r[model]["processes"] == 2 and len(r[model]["seconds_all"]) == 2
    if phase == "ae_quality":
        assert r["cogvideox"]["latent"] == r["videosynth"]["latent"] == [4, 4, 8, 8]
        assert math.isfinite(r["psnr_difference_db"])
        assert r["psnr_difference_db"] == pytest.approx(r["videosynth"]["psnr"] - r["cogvideox"]["psnr"])
        return
    assert all(r[m]["token_grid"] == [4, 4, 4] for m in models)
    assert set(r["ratios"]) == {"latte", "cogvideox"} and r["ratio"] == r["ratios"]["latte"] > 0
    if phase == "sample":
        steps = result["hyper_parameters"]["sample"]["steps"]
        assert all(r[m]["model_evaluations"] == steps for m in models)  # one forward of 2B per step each
        assert all(r[m]["clip_shape"] == [3, 8, 32, 32] and r[m]["finite"] for m in models)
