"""Run directories written before the family-contract layout (tests/fixtures/runs-v0) still load and sample.

The fixtures were saved by the code of commit 9098460 (``tests/fixtures/make_runs_v0.py``) together
with fixed-seed samples of each run; today's pipelines must reproduce them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import videosynth
from videosynth.train.run import run_training

FIXTURES = Path(__file__).parent / "fixtures" / "runs-v0"
SAME = 1e-6  # samples in [-1, 1]; one wrong weight, seed or draw moves them by far more
CONDITIONS = {"videogan": {"label": 1}, "mocogan": {"text": "a white circle"}, "transformer": {"label": 1}}


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    root = tmp_path / "runs-v0"
    shutil.copytree(FIXTURES, root)
    monkeypatch.chdir(root)  # the prior names its tokenizer run relative to where it was trained
    return root


@pytest.mark.parametrize("family", sorted(CONDITIONS))
def test_old_runs_sample_as_they_did(runs, family):
    expected = load_file(str(FIXTURES / "expected-samples.safetensors"))
    pipe = videosynth.load(family, device="cpu")
    raw = pipe(2, seed=0, ema=False, **CONDITIONS[family])
    # the same numbers up to float rounding: another CPU's conv kernels differ in the last bits
    # (4.7e-10 on an AMD EPYC against the fixtures' machine), far below any change of weights or seeds
    assert (raw - expected[f"{family}-raw"]).abs().max() < SAME
    ema = pipe(2, seed=0, **CONDITIONS[family])
    if family == "videogan":
        # standing BatchNorm statistics now use a seeded condition dropout (the fixture has dropout
        # 0.1; before, the draws came from whatever the global RNG held): close, not equal
        assert (ema - expected[family]).abs().max() < 1e-3
    elif family == "mocogan":
        # EMA samples now carry BatchNorm statistics re-estimated for the EMA weights (standing
        # statistics, as the VideoGAN's); with the live statistics the same EMA weights give the old samples
        live = videosynth.load(family, device="cpu")
        live.prepare = lambda net, ema: net
        assert (live(2, seed=0, **CONDITIONS[family]) - expected[family]).abs().max() < SAME
        assert (ema - expected[family]).abs().max() > 1e-3
    else:
        assert (ema - expected[family]).abs().max() < SAME


def test_old_prior_finds_its_tokenizer_when_runs_move_together(runs, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # "vqvae" is not in the working directory: found next to the prior run
    clips = videosynth.load(runs / "transformer", device="cpu")(1, seed=0, label=1)
    assert clips.shape == (1, 3, 4, 16, 16)


def test_old_tokenizer_reconstructs(runs):
    tokenizer = videosynth.load("vqvae", device="cpu")
    x = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    assert tokenizer.reconstruct(x).shape == x.shape
    assert tokenizer.encode(x).shape == (2, 2, 4, 4)


def test_old_run_resumes(runs):
    """The videogan fixture kept its optimiser state: it trains on from step 2 with today's loop."""
    run_training(None, ["train.steps=3"], resume=runs / "videogan", progress=False)
    assert videosynth.load(runs / "videogan", device="cpu").step == 3


@pytest.mark.parametrize("condition", [None, {"kind": "class", "dim": 8, "dropout": 0.3}])
def test_a_prior_saved_in_the_older_layout_loads_into_todays(tmp_path, condition):
    """Prior and flow runs used to save their network as ``prior.*`` beside ``conditioner.*``; every
    family now saves ``NAME.net.*`` / ``NAME.conditioner.*``. A run rewritten into the old layout
    samples exactly what it sampled before (conditional and unconditional)."""
    from safetensors.torch import save_file

    from videosynth.checkpoint import find_checkpoint, sha256
    from videosynth.train.families import tiny_config

    train = {"batch_size": 4, "log_every": 1, "ckpt_every": 100, "sample_every": 0, "device": "cpu"}
    tok = run_training({**tiny_config("vqvae", "plain"), "train": {**train, "steps": 1}}, run_dir=tmp_path / "tok",
                       progress=False)
    cfg = {**tiny_config("transformer", "plain", tok), "train": {**train, "steps": 2}}
    if condition:
        cfg["condition"] = condition
    run = run_training(cfg, run_dir=tmp_path / "prior", progress=False)
    kwargs = {"label": 1} if condition else {}
    before = videosynth.load(run, device="cpu")(2, seed=0, **kwargs)
    ckpt, meta = find_checkpoint(run)
    import json

    for name in ("model.safetensors", "ema.safetensors"):
        tensors = load_file(str(ckpt / name))
        assert tensors and all(k.startswith("prior.net.") or k.startswith("prior.conditioner.") for k in tensors)
        old = {k.replace("prior.net.", "prior.", 1).replace("prior.conditioner.", "conditioner.", 1): v
               for k, v in tensors.items()}
        save_file(old, str(ckpt / name))
        meta["files"][name] = sha256(ckpt / name)
    (ckpt / "meta.json").write_text(json.dumps(meta))
    assert torch.equal(videosynth.load(run, device="cpu")(2, seed=0, **kwargs), before)
    run_training(None, ["train.steps=3"], resume=run, progress=False)  # and a resume reads it
