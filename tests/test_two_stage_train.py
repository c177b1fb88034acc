"""Two-stage pipeline end to end through the CLI: train a tokenizer, reconstruct, tokenize,
train a class-conditional prior on the token cache, sample (rollout + guidance), decode."""

import json

import pytest
import torch
import yaml

from videosynth.cli import main
from videosynth.io import read_all
from videosynth.sample_ar import sample_two_stage
from videosynth.train.loop import train
from videosynth.train.prior import PriorObjective, TokenDataset
from videosynth.train.run import resolve_config
from videosynth.train.vqvae import load_tokenizer

DATA = {"name": "moving-digits", "frames": 4, "size": 16, "num_samples": 8}
LOOP = {"steps": 3, "batch_size": 4, "log_every": 1, "ckpt_every": 3, "sample_every": 3, "num_samples": 2,
        "device": "cpu"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-stage")
    vq_cfg = {"family": "vqvae", "model": {"preset": "tiny", "restart_after": 2}, "data": DATA, "train": LOOP}
    (root / "vq.yaml").write_text(yaml.safe_dump(vq_cfg))
    assert main(["train", "--config", str(root / "vq.yaml"), "--run-dir", str(root / "vq"), "--no-progress"]) == 0
    return root


def test_tokenizer_run_logs_and_samples(runs):
    rows = [json.loads(line) for line in (runs / "vq" / "log.jsonl").read_text().splitlines()]
    for key in ("loss_recon", "psnr", "perplexity", "usage", "restarted"):
        assert key in rows[-1]
    sample = read_all(runs / "vq" / "samples" / "step-000003.mp4")
    assert sample.shape[0] == 4  # frames of original | reconstruction grid
    model, cfg, meta = load_tokenizer(runs / "vq")
    assert not model.training and cfg.model.downsample == (2, 4, 4) and meta["step"] == 3


def test_reconstruct_command(runs, capsys):
    out = runs / "recon.mp4"
    code = main(["reconstruct", str(runs / "vq"), "moving-digits", "--split", "train", "--num", "2",
                 "--out", str(out), "--json", str(runs / "recon.json")])
    assert code == 0 and out.is_file()
    assert "PSNR" in capsys.readouterr().out
    scores = json.loads((runs / "recon.json").read_text())
    assert scores["num"] == 2 and scores["psnr"] > 0


def test_tokenize_then_train_and_sample_prior(runs, capsys):
    tokens = runs / "tokens"
    assert main(["tokenize", str(runs / "vq"), "moving-digits", "--out", str(tokens), "--batch-size", "3",
                 "--shard-size", "5"]) == 0
    cache = TokenDataset(tokens)
    assert len(cache) == DATA["num_samples"] and len(cache.index["shards"]) == 2
    assert cache.latent_shape == (2, 4, 4) and cache[0]["tokens"].shape == (2, 4, 4)
    # the cache holds what the tokenizer encodes
    from videosynth.data import DataConfig, build_dataset

    model, _, _ = load_tokenizer(runs / "vq")
    first = build_dataset(DataConfig(**DATA), "train")[0]["video"]
    assert torch.equal(model.encode(first[None])[0], cache[0]["tokens"])

    prior_cfg = {
        "family": "transformer", "tokenizer_run": str(runs / "vq"), "tokens": str(tokens),
        "model": {"preset": "tiny"}, "data": DATA, "condition": {"kind": "class", "dim": 16, "dropout": 0.5},
        "sample": {"top_k": 8}, "optim": {"warmup_steps": 0}, "train": LOOP,
    }
    (runs / "prior.yaml").write_text(yaml.safe_dump(prior_cfg))
    assert main(["train", "--config", str(runs / "prior.yaml"), "--run-dir", str(runs / "prior"), "--no-progress"]) == 0
    saved = resolve_config(None, [], resume_dir=runs / "prior")
    assert saved.model.vocab_size == 64 and saved.model.latent_shape == (2, 4, 4) and saved.model.cond_dim == 16
    assert (runs / "prior" / "samples" / "step-000003.mp4").is_file()

    out = runs / "samples.mp4"
    code = main(["sample", str(runs / "prior"), "--num", "2", "--frames", "8", "--label", "3",
                 "--guidance", "2.0", "--out", str(out)])
    assert code == 0 and read_all(out).shape[0] == 8  # rolled out past the 4 training frames

    clips = sample_two_stage(runs / "prior", 2, seed=1, label=3, frames=8, device="cpu")
    again = sample_two_stage(runs / "prior", 2, seed=1, label=3, frames=8, device="cpu")
    assert clips.shape == (2, 3, 8, 16, 16) and torch.equal(clips, again)
    primed = sample_two_stage(runs / "prior", 2, seed=1, prime_video=first[None, :, :2].repeat(2, 1, 1, 1, 1),
                              device="cpu")
    assert primed.shape == (2, 3, 4, 16, 16)


def test_prior_on_the_fly_encoding_matches_cache_loss(runs):
    """The loop trains a prior directly on a token cache and, separately, on videos encoded on the fly."""
    from videosynth.data import DataConfig, build_dataset

    base = {"family": "transformer", "tokenizer_run": str(runs / "vq"), "model": {"preset": "tiny"}, "data": DATA,
            "optim": {"warmup_steps": 0}, "train": {**LOOP, "sample_every": 0}}
    cfg = resolve_config(base)
    train(cfg, PriorObjective, runs / "prior-video", build_dataset(DataConfig(**DATA), "train"), progress=False)
    if not (runs / "tokens").is_dir():
        main(["tokenize", str(runs / "vq"), "moving-digits", "--out", str(runs / "tokens")])
    cfg = resolve_config({**base, "tokens": str(runs / "tokens")})
    train(cfg, PriorObjective, runs / "prior-cache", TokenDataset(runs / "tokens"), progress=False)
    a = [json.loads(x)["loss"] for x in (runs / "prior-video" / "log.jsonl").read_text().splitlines()]
    b = [json.loads(x)["loss"] for x in (runs / "prior-cache" / "log.jsonl").read_text().splitlines()]
    assert a == pytest.approx(b, abs=1e-5)  # same data order, same tokens, same seed


def test_errors_are_one_line(runs, capsys):
    assert main(["reconstruct", str(runs / "nope"), "moving-digits"]) == 2
    assert main(["tokenize", str(runs / "vq"), "no-such-data", "--out", str(runs / "t2")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "Traceback" not in err


def test_tokenizer_resume_is_exact(tmp_path):
    """3 steps straight == 2 steps + resume + 1 step, codebook buffers included."""
    from videosynth.train.run import run_training
    from videosynth.train.vqvae import load_tokenizer

    cfg = {"family": "vqvae", "model": {"preset": "tiny", "restart_after": 1}, "data": DATA,
           "train": {**LOOP, "sample_every": 0, "ckpt_every": 2}}
    run_training(cfg, run_dir=tmp_path / "straight", progress=False)
    run_training(cfg, ["train.steps=2"], run_dir=tmp_path / "split", progress=False)
    run_training(None, ["train.steps=3"], resume=tmp_path / "split", progress=False)
    a, _, _ = load_tokenizer(tmp_path / "straight")
    b, _, _ = load_tokenizer(tmp_path / "split")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


DDP_SCRIPT = """
import json, sys
import torch, torch.distributed as dist
from videosynth.data import DataConfig, build_dataset
from videosynth.train.loop import train
from videosynth.train.run import resolve_config
from videosynth.train.vqvae import VQVAEObjective

captured = {}
class Capture(VQVAEObjective):
    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        captured["obj"] = self

cfg = resolve_config(json.loads(sys.argv[3]))
train(cfg, Capture, sys.argv[1], build_dataset(cfg.data, "train"), progress=False)
state = captured["obj"].vqvae.state_dict()
flat = torch.cat([v.float().flatten() for v in state.values()])
gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
dist.all_gather(gathered, flat)
if dist.get_rank() == 0:
    codebook = state["quantizer.embedding"]
    open(sys.argv[2], "w").write(json.dumps({"max_diff": float((gathered[1] - gathered[0]).abs().max()),
                                             "finite": bool(torch.isfinite(codebook).all())}))
dist.destroy_process_group()
"""


def test_tokenizer_ddp_two_cpu_processes_share_codebook(tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp_vq.py"
    script.write_text(DDP_SCRIPT)
    cfg = {"family": "vqvae", "model": {"preset": "tiny", "restart_after": 1}, "data": DATA,
           "train": {**LOOP, "batch_size": 2, "sample_every": 0}}
    out = tmp_path / "ddp.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(tmp_path / "run"), str(out), json.dumps(cfg)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["finite"] and result["max_diff"] == 0.0  # weights, codebook and EMA statistics agree


@pytest.mark.parametrize("path", sorted(str(p) for family in ("vqvae", "transformer")
                                        for p in (__import__("pathlib").Path(__file__).parents[1] / "configs" / family).glob("*.yaml")))
def test_shipped_configs_resolve(path):
    cfg = resolve_config(path)
    assert cfg.family in ("vqvae", "transformer")
