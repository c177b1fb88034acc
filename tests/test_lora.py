"""LoRA fine-tunes (``--init RUN --set finetune.lora_rank=R``) of every family that takes adapters: the
adapter alone trains and is saved, loads onto its base for sampling, merges into a plain run that
samples the same clips, resumes exactly, and refuses another base, a missing peft and bad settings in
one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import videosynth
from videosynth.checkpoint import find_checkpoint
from videosynth.errors import CheckpointError, ConfigError
from videosynth.train.families import FAMILIES, tiny_config
from videosynth.train.run import run_training

pytest.importorskip("peft", reason="LoRA needs the 'lora' extra (pip install 'videosynth[lora]')")

TRAIN = {"batch_size": 4, "log_every": 1, "ckpt_every": 100, "sample_every": 0, "device": "cpu", "steps": 2,
         "ema_decay": 0.5}
CLASS = {"kind": "class", "dim": 8, "dropout": 0.2}
LORA_FAMILIES = sorted(f for f, record in FAMILIES.items() if record.can.lora)
# a learning rate that moves a tiny adapter far in a few steps, so its samples differ from the base's
TUNE = ["finetune.lora_rank=4", "optim.lr=0.05", "optim.warmup_steps=0"]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """``bases(family)``: a tokenizer and a 3-step class-conditional base run of the family, trained once."""
    root = tmp_path_factory.mktemp("lora-bases")
    made: dict[str, tuple[dict, Path]] = {}

    def get(family: str) -> tuple[dict, Path]:
        if family not in made:
            variant = FAMILIES[family].tokenizer
            tok = run_training({**tiny_config("vqvae", variant), "train": TRAIN}, run_dir=root / f"{family}-tok",
                               progress=False)
            # a rate that opens the DiT's zero-initialised gates in three steps, so an adapter's change shows
            cfg = {**tiny_config(family, "plain", tok), "condition": CLASS, "optim": {"lr": 0.01, "warmup_steps": 0},
                   "train": {**TRAIN, "steps": 3}}
            made[family] = (cfg, run_training(cfg, run_dir=root / family, progress=False))
        return made[family]

    return get


def _files(run: Path) -> set[str]:
    return {p.name for p in find_checkpoint(run)[0].iterdir()}


@pytest.mark.parametrize("family", LORA_FAMILIES)
def test_the_adapter_alone_trains_loads_onto_its_base_and_merges_into_the_same_samples(tmp_path, bases, family):
    cfg, base = bases(family)
    tuned = run_training(cfg, TUNE, run_dir=tmp_path / "lora", progress=False, init=base)
    assert _files(tuned) == {"adapter.safetensors", "adapter-ema.safetensors", "state.pt", "meta.json"}
    adapter = load_file(str(find_checkpoint(tuned)[0] / "adapter.safetensors"))
    model = load_file(str(find_checkpoint(base)[0] / "model.safetensors"))
    assert all("lora_" in k or ".conditioner." in k for k in adapter)
    assert sum(v.numel() for v in adapter.values()) < sum(v.numel() for v in model.values()) / 2
    recorded = json.loads((find_checkpoint(tuned)[0] / "meta.json").read_text())["config"]["finetune"]
    assert recorded["base_run"] == str(base) and recorded["base_checkpoint"] == "step-000003"
    assert recorded["base_sha256"] == find_checkpoint(base)[1]["files"]["ema.safetensors"]

    pipe = videosynth.load(tuned, device="cpu")
    clips = pipe(num=3, seed=0)
    assert not torch.equal(clips, videosynth.load(base, device="cpu")(num=3, seed=0))  # the adapter changes them
    from videosynth.cli import main

    assert main(["weights", "merge-lora", str(tuned), "--out", str(tmp_path / "merged")]) == 0
    assert _files(tmp_path / "merged") == {"model.safetensors", "ema.safetensors", "meta.json"}
    merged = videosynth.load(tmp_path / "merged", device="cpu")
    assert torch.equal(merged(num=3, seed=0), clips)
    assert torch.equal(merged(num=2, seed=1, ema=False), pipe(num=2, seed=1, ema=False))
    assert main(["weights", "merge-lora", str(tuned), "--out", str(tmp_path / "merged")]) == 2  # not over a run


def test_a_lora_run_resumes_exactly(tmp_path, bases):
    cfg, base = bases("transformer")
    tune = [*TUNE, "finetune.lora_dropout=0.1"]  # dropout draws from the RNG the checkpoint restores
    run_training({**cfg, "train": {**TRAIN, "steps": 4}}, tune, run_dir=tmp_path / "straight", progress=False,
                 init=base)
    run_training(cfg, tune, run_dir=tmp_path / "split", progress=False, init=base)
    run_training(None, ["train.steps=4"], resume=tmp_path / "split", progress=False)
    for name in ("adapter.safetensors", "adapter-ema.safetensors"):
        a = load_file(str(find_checkpoint(tmp_path / "straight")[0] / name))
        b = load_file(str(find_checkpoint(tmp_path / "split")[0] / name))
        assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a), name
    rows = lambda d: [json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]  # noqa: E731
    assert [r["loss"] for r in rows(tmp_path / "straight")][2:] == [r["loss"] for r in rows(tmp_path / "split")][2:]
    with pytest.raises(ConfigError, match="cannot change 'finetune'"):
        run_training(None, ["train.steps=5", "finetune.lora_rank=2"], resume=tmp_path / "split", progress=False)


def test_new_classes_get_fresh_rows_and_the_base_weights_stay_frozen(tmp_path, bases):
    cfg, base = bases("transformer")
    digits = {**cfg, "data": {**cfg["data"], "name": "moving-digits", "colour": ""}}
    tuned = run_training(digits, TUNE, run_dir=tmp_path / "digits", progress=False, init=base)
    adapter = load_file(str(find_checkpoint(tuned)[0] / "adapter.safetensors"))
    assert adapter["prior.conditioner.embed.weight"].shape[0] == 11  # ten digits and the null row
    pipe = videosynth.load(tuned, device="cpu")
    assert pipe.class_names == [str(d) for d in range(10)]
    assert pipe(num=2, seed=0, label="7").shape == (2, 3, 4, 16, 16)
    # the backbone is the base's (plus the merged adapter): the layers without an adapter are untouched
    base_ema = load_file(str(find_checkpoint(base)[0] / "ema.safetensors"))
    mine = pipe.net(True).state_dict()
    assert torch.equal(mine["net.head.weight"], base_ema["prior.net.head.weight"])
    assert torch.equal(mine["net.blocks.0.ln1.weight"], base_ema["prior.net.blocks.0.ln1.weight"])
    assert not torch.equal(mine["net.blocks.0.attn.qkv.weight"], base_ema["prior.net.blocks.0.attn.qkv.weight"])


def test_another_base_and_missing_peft_are_refused_in_one_line(tmp_path, bases, monkeypatch):
    from videosynth.cli import main

    cfg, base = bases("transformer")
    tuned = run_training(cfg, TUNE, run_dir=tmp_path / "lora", progress=False, init=base)
    # the base trained on: its weights replaced by another run's
    other = run_training({**cfg, "train": {**TRAIN, "seed": 7, "steps": 3}}, run_dir=tmp_path / "other",
                         progress=False)
    original = (tuned / "config.yaml").read_text()
    point = lambda run: original.replace(f"base_run: {base}\n", f"base_run: {run}\n")  # noqa: E731
    (tuned / "config.yaml").write_text(point(other))
    with pytest.raises(CheckpointError, match="not the base this adapter was trained on") as err:
        videosynth.load(tuned, device="cpu")(num=1)
    assert "\n" not in str(err.value)
    (tuned / "config.yaml").write_text(point(tmp_path / "gone"))
    with pytest.raises(CheckpointError, match="finetune.base_run .* not found"):
        videosynth.load(tuned, device="cpu")(num=1)
    (tuned / "config.yaml").write_text(original)
    monkeypatch.setitem(sys.modules, "peft", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'videosynth\[lora\]'"):
        videosynth.load(tuned, device="cpu")(num=1)
    assert main(["sample", str(tuned), "--num", "1", "--out", str(tmp_path / "x.mp4")]) == 2


def test_bad_lora_settings_are_refused_before_a_run_is_written(tmp_path, bases):
    cfg, base = bases("transformer")
    with pytest.raises(ConfigError, match="--init RUN"):
        run_training(cfg, ["finetune.lora_rank=4"], run_dir=tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="lora_targets"):
        run_training(cfg, [*TUNE, "finetune.lora_targets=[nothing]"], run_dir=tmp_path / "b", progress=False,
                     init=base)
    tuned = run_training(cfg, TUNE, run_dir=tmp_path / "lora", progress=False, init=base)
    with pytest.raises(CheckpointError, match="is a LoRA fine-tune"):  # --init needs whole weights: merge first
        run_training(cfg, [], run_dir=tmp_path / "c", progress=False, init=tuned)
    assert not (tmp_path / "a" / "checkpoints").exists() and not (tmp_path / "c" / "checkpoints").exists()
