"""The shared training loop: checkpoints, exact resume, NaN guard, signals, DDP."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from loop_helpers import HostSyncs, TinyClips, TinyObjective, TinyRunConfig
from videosynth.errors import CheckpointError, ConfigError, VideoSynthError
from videosynth.checkpoint import normalize_keys
from videosynth.train import checkpointing
from videosynth.train.context import Context, SkipWatch
from videosynth.train.config import TrainConfig
from videosynth.checkpoint import find_checkpoint
from videosynth.train.loop import train

HERE = Path(__file__).parent


def _cfg(**train_kw) -> TinyRunConfig:
    cfg = TinyRunConfig()
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train_kw))


def _final(run_dir: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    path, _ = find_checkpoint(run_dir)
    return load_file(str(path / name))


def test_run_dir_layout(tmp_path):
    train(_cfg(), TinyObjective, tmp_path, TinyClips(), progress=False)
    assert (tmp_path / "config.yaml").is_file()
    assert (tmp_path / "latest").read_text().strip() == "step-000006"
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["step-000003", "step-000006"]  # keep_last=2
    ck = tmp_path / "checkpoints" / "step-000006"
    for name in ("model.safetensors", "ema.safetensors", "state.pt", "meta.json"):
        assert (ck / name).is_file()
    state = torch.load(ck / "state.pt", weights_only=True)  # no pickle beyond tensors
    assert state["step"] == 6
    meta = json.loads((ck / "meta.json").read_text())
    assert meta["step"] == 6 and meta["config"]["train"]["steps"] == 6
    rows = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all("loss" in r and "it_s" in r for r in rows)
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "checkpoints").iterdir())


@pytest.mark.parametrize("split", [2, 3, 5])
def test_resume_is_exact(tmp_path, split):
    """N steps straight == k steps + resume + (N - k) steps, bit for bit (epoch boundary at 6)."""
    n = 9
    train(_cfg(steps=n, ckpt_every=100), TinyObjective, tmp_path / "straight", TinyClips(), progress=False)
    train(_cfg(steps=split, ckpt_every=100), TinyObjective, tmp_path / "split", TinyClips(), progress=False)
    train(_cfg(steps=n, ckpt_every=100), TinyObjective, tmp_path / "split", TinyClips(), resume=True, progress=False)
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = _final(tmp_path / "straight", name), _final(tmp_path / "split", name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k


def test_corrupt_latest_checkpoint_falls_back(tmp_path, caplog):
    train(_cfg(), TinyObjective, tmp_path, TinyClips(), progress=False)
    newest = tmp_path / "checkpoints" / "step-000006" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated, as by a crash or a full disk
    path, meta = find_checkpoint(tmp_path)
    assert path.name == "step-000003" and meta["step"] == 3
    assert "corrupt" in caplog.text


def test_missing_run_dir_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        find_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        find_checkpoint(tmp_path)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "synced"])
def test_nan_loss_skips_the_step(tmp_path, fused):
    cfg = dataclasses.replace(_cfg(), nan_steps=[2], fused=fused)
    train(cfg, TinyObjective, tmp_path, TinyClips(), progress=False)
    rows = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert rows[2]["skipped"] == "net" and "skipped" not in rows[3]
    for v in _final(tmp_path).values():
        assert torch.isfinite(v).all()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "synced"])
def test_many_nan_steps_stop_with_the_last_good_checkpoint(tmp_path, fused):
    cfg = dataclasses.replace(_cfg(steps=20, max_bad_steps=3), nan_steps=list(range(4, 20)), fused=fused)
    with pytest.raises(VideoSynthError, match="non-finite"):
        train(cfg, TinyObjective, tmp_path, TinyClips(), progress=False)
    path, meta = find_checkpoint(tmp_path)
    assert meta["step"] in (3, 6)  # skipped steps leave the weights untouched
    for v in load_file(str(path / "model.safetensors")).values():
        assert torch.isfinite(v).all()


def test_a_skipped_fused_update_leaves_weights_moments_and_step_count():
    obj = TinyObjective(_cfg(), Context(TrainConfig(device="cpu"), torch.device("cpu"), None))
    x = TinyClips()[0]["video"][None]
    for step in range(2):
        obj.train_step({"video": x}, step)
    before = {k: v.clone() for k, v in obj.net.state_dict().items()}
    state = {id(p): {k: v.clone() for k, v in obj.opt.state[p].items()} for p in obj.net.parameters()}
    obj.cfg.nan_steps = [2]
    obj.ctx.skips = {}
    obj.train_step({"video": x}, 2)
    assert obj.ctx.skips["net"].item() == 1.0
    assert all(torch.equal(v, before[k]) for k, v in obj.net.state_dict().items())
    for p in obj.net.parameters():
        for k, v in obj.opt.state[p].items():
            assert torch.equal(v, state[id(p)][k]), k  # exp_avg, exp_avg_sq and step as they were
    obj.ctx.skips = {}
    obj.train_step({"video": x}, 3)  # the next finite step updates again, counting from 2
    assert obj.ctx.skips["net"].item() == 0.0
    assert all(obj.opt.state[p]["step"].item() == 3 for p in obj.net.parameters())
    assert not torch.equal(obj.net.state_dict()["1.weight"], before["1.weight"])


def test_skips_reach_the_log_and_the_limit_at_log_steps(tmp_path, caplog):
    """With log_every > 1 a skip is known at the next log step: its row names it, a long run stops there."""
    cfg = dataclasses.replace(_cfg(steps=6, log_every=3), nan_steps=[1])
    train(cfg, TinyObjective, tmp_path / "one", TinyClips(), progress=False)
    rows = [json.loads(l) for l in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6]
    assert rows[0]["skipped"] == "net" and "skipped" not in rows[1]
    assert "step 3: non-finite loss in net; update skipped (net: 1 since the last log)" in caplog.text
    cfg = dataclasses.replace(_cfg(steps=20, log_every=4, ckpt_every=100, max_bad_steps=3), nan_steps=[1, 5, 6, 7])
    with pytest.raises(VideoSynthError, match="3 steps in a row had a non-finite loss \\(by step 8\\)"):
        train(cfg, TinyObjective, tmp_path / "run", TinyClips(), progress=False)


def test_train_steps_with_the_fused_guard_make_no_host_sync(tmp_path, monkeypatch):
    """Between log steps nothing in a step waits for the device: no .item(), bool(), float(), .tolist(), .cpu()."""
    syncs = HostSyncs(monkeypatch)
    step_of = TinyObjective.train_step

    def train_step(self, batch, step):
        with syncs.watch():
            out = step_of(self, batch, step)
            self.ctx.skips = dict(self.ctx.skips)  # what the loop adds to its SkipWatch
            return out

    monkeypatch.setattr(TinyObjective, "train_step", train_step)
    add = SkipWatch.add

    def watched_add(self, flags):
        with syncs.watch():
            add(self, flags)

    monkeypatch.setattr(SkipWatch, "add", watched_add)
    cfg = dataclasses.replace(_cfg(steps=6, log_every=100, ckpt_every=100), nan_steps=[2])
    train(cfg, TinyObjective, tmp_path / "fused", TinyClips(), progress=False)
    assert syncs.calls == []
    rows = [json.loads(l) for l in (tmp_path / "fused" / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6 and rows[-1]["skipped"] == "net"
    train(dataclasses.replace(cfg, fused=False), TinyObjective, tmp_path / "synced", TinyClips(), progress=False)
    assert syncs.calls.count("item") >= 6  # an unfused optimiser's guard waits for the verdict every step (and its step counts)


def test_a_run_saved_unfused_resumes_fused(tmp_path):
    train(dataclasses.replace(_cfg(steps=3), fused=False), TinyObjective, tmp_path, TinyClips(), progress=False)
    obj = TinyObjective(_cfg(), Context(TrainConfig(device="cpu"), torch.device("cpu"), tmp_path))
    path, _ = find_checkpoint(tmp_path)
    checkpointing.load(path, obj)
    assert all(g["fused"] for g in obj.opt.param_groups)
    steps = [obj.opt.state[p]["step"] for p in obj.net.parameters()]
    assert all(s.dtype == torch.float32 and s.item() == 3 for s in steps)
    obj.train_step({"video": TinyClips()[0]["video"][None]}, 3)
    assert all(obj.opt.state[p]["step"].item() == 4 for p in obj.net.parameters())


def test_resuming_on_data_with_other_classes_is_a_config_error(tmp_path):
    train(_cfg(steps=3), TinyObjective, tmp_path, TinyClips(), progress=False)
    other = TinyClips()
    other.class_names = ["b", "a"]  # the same names in another order: every label would change meaning
    with pytest.raises(ConfigError, match="trained on classes \\['a', 'b'\\], the data have \\['b', 'a'\\]"):
        train(_cfg(steps=6), TinyObjective, tmp_path, other, resume=True, progress=False)
    train(_cfg(steps=6), TinyObjective, tmp_path, TinyClips(), resume=True, progress=False)
    assert find_checkpoint(tmp_path)[1]["step"] == 6


def test_disk_full_is_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    train(_cfg(steps=3), TinyObjective, tmp_path, TinyClips(), progress=False)
    import safetensors.torch

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(CheckpointError, match="No space left"):
        train(_cfg(steps=6), TinyObjective, tmp_path, TinyClips(), resume=True, progress=False)
    path, meta = find_checkpoint(tmp_path)
    assert meta["step"] == 3
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "checkpoints").iterdir())


def test_mismatched_checkpoint_names_the_keys(tmp_path):
    train(_cfg(steps=3), TinyObjective, tmp_path, TinyClips(), progress=False)
    bad = {"net.1.weight": torch.zeros(3, 3)}
    from safetensors.torch import save_file

    path = tmp_path / "checkpoints" / "step-000003"
    save_file(bad, str(path / "model.safetensors"))
    obj = TinyObjective(_cfg(), Context(TrainConfig(device="cpu"), torch.device("cpu"), tmp_path))
    with pytest.raises(CheckpointError, match="net"):
        checkpointing.load(path, obj)


def test_normalize_keys():
    state = {"module.a.weight": 1, "_orig_mod.module.b": 2, "c": 3}
    assert normalize_keys(state) == {"a.weight": 1, "b": 2, "c": 3}


SCRIPT = r"""
import sys, json, dataclasses, time, torch
sys.path.insert(0, {here!r})
from loop_helpers import TinyClips, TinyObjective, TinyRunConfig, weights
from videosynth.train.loop import train
from videosynth.errors import Interrupted
import torch.distributed as dist

captured = {{}}
class Slow(TinyObjective):
    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        captured["obj"] = self
    def train_step(self, batch, step):
        time.sleep({sleep})
        return super().train_step(batch, step)

cfg = TinyRunConfig()
cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps={steps}, ckpt_every=1000))
try:
    train(cfg, Slow, sys.argv[1], TinyClips(48), progress=False)
except Interrupted as exc:
    print(exc, file=sys.stderr)
    sys.exit(exc.exit_code)
if dist.is_initialized():
    flat = torch.cat([v.flatten() for v in weights(captured["obj"]).values()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    if dist.get_rank() == 0:
        out = {{"max_diff": max(float((g - gathered[0]).abs().max()) for g in gathered),
               "moved": float((flat - gathered[0]).abs().sum())}}
        open(sys.argv[2], "w").write(json.dumps(out))
    dist.destroy_process_group()
"""


def _script(tmp_path, steps, sleep=0.0) -> Path:
    path = tmp_path / "train_tiny.py"
    path.write_text(SCRIPT.format(here=str(HERE), steps=steps, sleep=sleep))
    return path


def test_sigterm_saves_a_loadable_checkpoint_and_resume_finishes(tmp_path):
    script = _script(tmp_path, steps=1000, sleep=0.05)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(script), str(run), "-"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        log = run / "log.jsonl"
        if log.is_file() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # 128 + SIGTERM: a scheduler tells it from a finished run
    assert "interrupted at step" in err and "resume with: videosynth train --resume" in err
    path, meta = find_checkpoint(run)
    assert 3 <= meta["step"] < 1000
    torch.load(path / "state.pt", weights_only=True)


def test_ddp_two_cpu_processes_keep_identical_weights(tmp_path):
    script = _script(tmp_path, steps=4)
    out = tmp_path / "ddp.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(tmp_path / "run"), str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["max_diff"] == 0.0
    _, meta = find_checkpoint(tmp_path / "run")
    assert meta["step"] == 4
    assert len(list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))) == 1  # rank 0 writes events alone


def test_time_limit_stops_with_a_checkpoint_and_resume_continues(tmp_path, capsys):
    """train.time_limit ends the run at the first step past the limit, saved like a finished run."""
    train(_cfg(steps=50, ckpt_every=100, time_limit=1e-9), TinyObjective, tmp_path, TinyClips(), progress=False)
    path, meta = find_checkpoint(tmp_path)
    assert path.name == "step-000001" and meta["step"] == 1
    assert "time_limit" in capsys.readouterr().err
    rows = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1]  # the last step is logged even off the log_every grid
    train(_cfg(steps=4, ckpt_every=100), TinyObjective, tmp_path, TinyClips(), resume=True, progress=False)
    assert find_checkpoint(tmp_path)[0].name == "step-000004"
