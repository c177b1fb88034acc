"""Two-stage pipeline end to end through the CLI: train a tokenizer, reconstruct, tokenize,
train a class-conditional prior on the token cache, sample (rollout + guidance), decode."""

import json
import math

import pytest
import torch
import yaml

import videosynth
from videosynth.cli import main
from videosynth.data.tokens import TokenDataset
from videosynth.io import read_all
from videosynth.pipelines import TokenizerPipeline
from videosynth.train.loop import train
from videosynth.train.prior import PriorObjective
from videosynth.train.run import resolve_config

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
    tokenizer = TokenizerPipeline.from_run(runs / "vq", device="cpu")
    assert not tokenizer.model.training and tokenizer.model_cfg.downsample == (2, 4, 4) and tokenizer.step == 3
    assert not any(p.requires_grad for p in tokenizer.model.parameters())


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

    tokenizer = TokenizerPipeline.from_run(runs / "vq", device="cpu")
    first = build_dataset(DataConfig(**DATA), "train")[0]["video"]
    assert torch.equal(tokenizer.encode(first[None])[0], cache[0]["tokens"])

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

    pipe = videosynth.load(runs / "prior", device="cpu")
    clips = pipe(2, seed=1, label=3, frames=8)
    again = videosynth.load(runs / "prior", device="cpu")(2, seed=1, label=3, frames=8)
    assert clips.shape == (2, 3, 8, 16, 16) and torch.equal(clips, again)
    primed = pipe(2, seed=1, prime_video=first[None, :, :2].repeat(2, 1, 1, 1, 1))
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


def test_a_constant_rate_run_resumes_with_more_steps_and_a_cosine_decay(runs):
    """Warm-up, stable, decay: the decay covers the last ``optim.decay_steps`` of the resumed
    run's ``train.steps``, and the steps trained before it keep the constant rate."""
    from videosynth.train.objective import warmup_lr

    run = runs / "vq-decay"
    cfg = {"family": "vqvae", "model": {"preset": "tiny"}, "data": DATA, "optim": {"lr": 1e-3, "warmup_steps": 2},
           "train": {**LOOP, "steps": 4, "ckpt_every": 4, "sample_every": 0}}
    (runs / "decay.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(runs / "decay.yaml"), "--run-dir", str(run), "--no-progress"]) == 0
    assert main(["train", "--resume", str(run), "--set", "train.steps=8", "--set", "optim.decay_steps=4",
                 "--no-progress"]) == 0
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    lrs = {row["step"]: row["lr_vqvae"] for row in rows}
    assert sorted(lrs) == list(range(1, 9))
    assert lrs[1] == pytest.approx(5e-4) and lrs[2] == lrs[3] == lrs[4] == pytest.approx(1e-3)
    decay = [lrs[s] for s in range(5, 9)]
    assert decay == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(1, 5)], abs=1e-6)  # the log rounds
    assert decay == sorted(decay, reverse=True) and decay[-1] == 0.0
    assert warmup_lr(1e-3, 2, 1, decay_steps=100, total_steps=8) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 2 / 8)))
