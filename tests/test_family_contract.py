"""The contract every registered family inherits: build, train, resume == straight, load -> generate, DDP.

Parametrised over ``videosynth.train.families.FAMILIES`` and driven by it alone: a new family gets
every test here by being registered with its tiny configs and capabilities.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import videosynth
from videosynth.checkpoint import find_checkpoint
from loop_helpers import HostSyncs
from videosynth.errors import VideoSynthError
from videosynth.train.families import FAMILIES, tiny_config
from videosynth.train.run import resolve_config, run_training

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"batch_size": 4, "log_every": 1, "ckpt_every": 100, "sample_every": 0, "keep_last": 2, "device": "cpu",
         "ema_decay": 0.9}

# (family, variant) pairs the heavier contract tests run: every variant but "plain" ("rich", "audio" for a
# sound-driven family, and the variants of options that change training or sampling)
CASES = [(f, v) for f in sorted(FAMILIES) for v in FAMILIES[f].tiny if v != "plain"]
CASE_IDS = [f"{f}-{v}" for f, v in CASES]
VARIANTS = [(f, v) for f in sorted(FAMILIES) for v in FAMILIES[f].tiny]


@pytest.fixture(scope="module")
def tokenizer_runs(tmp_path_factory) -> dict[str, Path]:
    """The tiny tokenizer runs second-stage families train on, by ``vqvae`` variant, trained on first use."""
    root = tmp_path_factory.mktemp("tokenizers")
    runs: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in runs:
            runs[variant] = run_training({**tiny_config("vqvae", variant), "train": {**TRAIN, "steps": 2}},
                                         run_dir=root / variant, progress=False)
        return runs[variant]

    return get


@pytest.fixture(scope="module")
def configs(tokenizer_runs):
    """``configs[family][variant]``: the registry's tiny configs, second stages on their tokenizer run."""
    class Configs(dict):
        def __missing__(self, family):
            record = FAMILIES[family]
            run = tokenizer_runs(record.tokenizer) if record.tokenizer else None
            self[family] = {v: tiny_config(family, v, run) for v in record.tiny}
            return self[family]
    return Configs()


def _with_train(cfg: dict, **train) -> dict:
    return {**cfg, "train": {**TRAIN, **train}}


def _weights(run_dir: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    path, _ = find_checkpoint(run_dir)
    return load_file(str(path / name))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_record_is_whole(family):
    """Each record's run config, pipeline and tiny configs name the family, and its capabilities match them."""
    record = FAMILIES[family]
    assert record.run_config().family == family and record.pipeline.family == family
    assert {"plain", "rich"} <= set(record.tiny)
    assert ("audio" in record.tiny) == record.can.sound, "a family that takes sound has a tiny 'audio' config"
    assert (record.tokenizer is None) or record.tokenizer in FAMILIES["vqvae"].tiny
    option_names = {o.name for o in record.pipeline.options}
    assert ("prime" in option_names) == record.can.prime
    if record.can.sound:
        assert record.objective.takes_audio


@pytest.mark.parametrize("family,variant", VARIANTS, ids=[f"{f}-{v}" for f, v in VARIANTS])
def test_two_steps_train_with_finite_losses(tmp_path, configs, family, variant):
    run = run_training(_with_train(configs[family][variant], steps=2), run_dir=tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    losses = {k: v for r in rows for k, v in r.items() if k.startswith("loss")}
    assert losses and all(isinstance(v, float) and v == v for v in losses.values()), rows
    assert "skipped" not in rows[-1]


# checks of labels that run only when the labels are on the CPU, where reading a value waits for nothing
CPU_ONLY_CHECKS = ("_check_range", "class_loss")


@pytest.mark.parametrize("family,variant", CASES, ids=CASE_IDS)
def test_train_steps_between_log_steps_wait_for_no_device_value(tmp_path, configs, family, variant, monkeypatch):
    """A family's ``train_step`` keeps its numbers on the device (the loop reads them at log steps): no
    ``.item()``, ``bool()``, ``float()``, ``.tolist()``, ``.cpu()`` after the first step (which may read
    one-time state, such as whether a codebook is initialised), apart from the CPU-only label checks."""
    syncs = HostSyncs(monkeypatch)
    objective = FAMILIES[family].objective
    train_step = objective.train_step

    def watched(self, batch, step):
        if step == 0:
            return train_step(self, batch, step)
        with syncs.watch():
            return train_step(self, batch, step)

    monkeypatch.setattr(objective, "train_step", watched)
    run_training(_with_train(configs[family][variant], steps=4, log_every=100), run_dir=tmp_path / "run",
                 progress=False)
    waits = [w for w in syncs.where if w.split()[-1] not in CPU_ONLY_CHECKS]
    assert waits == [], sorted(set(waits))


@pytest.mark.parametrize("family,variant", CASES, ids=CASE_IDS)
def test_resume_equals_straight_bit_for_bit(tmp_path, configs, family, variant):
    """N steps straight == k steps + resume + (N - k) steps (the "rich" variant: most RNG users)."""
    cfg = configs[family][variant]
    run_training(_with_train(cfg, steps=4), run_dir=tmp_path / "straight", progress=False)
    run_training(_with_train(cfg, steps=2), run_dir=tmp_path / "split", progress=False)
    run_training(None, ["train.steps=4"], resume=tmp_path / "split", progress=False)
    for name in ("model.safetensors", "ema.safetensors"):
        if not (find_checkpoint(tmp_path / "straight")[0] / name).exists():
            continue
        a, b = _weights(tmp_path / "straight", name), _weights(tmp_path / "split", name)
        assert sorted(a) == sorted(b)
        assert [k for k in a if not torch.equal(a[k], b[k])] == [], name
    rows = lambda d: [json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]  # noqa: E731
    straight = {r["step"]: r for r in rows(tmp_path / "straight")}
    split = {r["step"]: r for r in rows(tmp_path / "split")}
    for step in (3, 4):
        assert {k: v for k, v in straight[step].items() if k.startswith("loss")} == \
               {k: v for k, v in split[step].items() if k.startswith("loss")}


@pytest.mark.parametrize("family,variant", CASES, ids=CASE_IDS)
def test_load_and_generate_without_training_artefacts(tmp_path, configs, family, variant):
    """Save -> ``videosynth.load`` -> a decodable clip of the documented shape, with only config + weights."""
    from videosynth.data.transforms import to_uint8
    from videosynth.io import read_all, write_video

    cfg = configs[family][variant]
    run = run_training(_with_train(cfg, steps=2), run_dir=tmp_path / "run", progress=False)
    for path in run.rglob("state.pt"):
        path.unlink()  # inference needs no optimiser state
    (run / "log.jsonl").unlink()
    before = sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*"))
    pipe = videosynth.load(run, device="cpu")
    assert pipe.family == family
    if not FAMILIES[family].can.generative:
        with pytest.raises(VideoSynthError, match="cannot generate"):
            pipe(num=1)
        clips = pipe.reconstruct(torch.rand(2, 3, 4, 16, 16) * 2 - 1)
    else:
        kwargs = {"label": 1} if pipe.condition_kind == "class" else {}
        if pipe.takes_audio:  # a soundtrack for each clip, at the run's rate: 4 frames of it
            kwargs["audio"] = torch.rand(2, pipe.samples_for(4), generator=torch.Generator().manual_seed(0)) - 0.5
        clips = pipe(num=2, seed=0, **kwargs)
        assert torch.equal(clips, pipe(num=2, seed=0, **kwargs))  # deterministic by seed
    assert clips.shape == (2, 3, 4, 16, 16) and clips.dtype == torch.float32
    assert clips.min() >= -1 and clips.max() <= 1
    write_video(tmp_path / "clip.mp4", to_uint8(clips[0]), fps=8)
    assert read_all(tmp_path / "clip.mp4").shape == (4, 16, 16, 3)  # decodes: T frames of H x W x RGB
    # nothing in the run was written or touched by loading and sampling
    assert sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*")) == before
    # unknown sampling options are refused in one line
    if FAMILIES[family].can.generative:
        with pytest.raises(VideoSynthError, match="does not apply"):
            pipe(num=1, no_such_option=3)


def test_prior_samples_after_its_token_cache_is_deleted(tmp_path, configs, tokenizer_runs):
    from videosynth.cli import main

    cache = tmp_path / "tokens"
    assert main(["tokenize", str(tokenizer_runs("plain")), str(ROOT / "tests" / "fixtures" / "data-tiny.yaml"),
                 "--out", str(cache)]) == 0
    cfg = {**configs["transformer"]["rich"], "tokens": str(cache)}
    run = run_training(_with_train(cfg, steps=2), run_dir=tmp_path / "prior", progress=False)
    shutil.rmtree(cache)
    clips = videosynth.load(run, device="cpu")(num=1, label=0)
    assert clips.shape == (1, 3, 4, 16, 16)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_shipped_configs_resolve(family):
    paths = sorted((ROOT / "configs" / family).glob("*.yaml"))
    assert paths, f"configs/{family}/ ships no config"
    for path in paths:
        cfg = resolve_config(path)
        assert cfg.family == family, path


DDP_SCRIPT = """
import json, sys
import torch
import torch.distributed as dist
from videosynth.train.families import get_family
from videosynth.train.loop import train
from videosynth.train.run import resolve_config

cfg = resolve_config(json.loads(sys.argv[1]))
family = get_family(cfg.family)
captured = {}

class Capture(family.objective):
    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        captured["objective"] = self

train(cfg, Capture, sys.argv[2], family.objective.build_dataset(cfg, "train"), progress=False)
objective = captured["objective"]
# parameters, and buffers other than those each rank updates locally by design (BatchNorm running
# statistics between DDP's broadcasts, spectral norm's power-iteration vectors)
LOCAL = ("running_mean", "running_var", "num_batches_tracked", "weight_u", "weight_v")
tensors = [t for m in objective.modules().values() for t in m.parameters()]
tensors += [b for m in objective.modules().values() for n, b in m.named_buffers() if not n.endswith(LOCAL)]
params = torch.cat([t.detach().float().flatten() for t in tensors])
gathered = [torch.zeros_like(params) for _ in range(dist.get_world_size())]
dist.all_gather(gathered, params)
if dist.get_rank() == 0:
    with open(sys.argv[3], "w") as f:
        json.dump({"max_diff": float((gathered[0] - gathered[1]).abs().max())}, f)
dist.destroy_process_group()
# skip interpreter teardown: a gloo rank sometimes aborts there ("terminate called without an
# active exception") after all its work is done; the result above is complete by then
sys.stdout.flush(); sys.stderr.flush()
import os; os._exit(0)
"""


@pytest.mark.parametrize("family,variant", CASES, ids=CASE_IDS)
def test_ddp_two_gloo_processes_keep_identical_weights(tmp_path, configs, family, variant):
    """Two CPU ranks (gloo) train the "rich" variant; every parameter and buffer agrees afterwards."""
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "ddp.json"
    cfg = _with_train(configs[family][variant], steps=3, batch_size=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), json.dumps(cfg), str(tmp_path / "run"), str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[:3000]
    assert json.loads(out.read_text())["max_diff"] == 0.0
    assert find_checkpoint(tmp_path / "run")[1]["step"] == 3
