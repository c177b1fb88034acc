"""benchmarks/mocogan_turns.py: the turn rule, and the script on a tiny warped MoCoGAN run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def _turns_module():
    spec = importlib.util.spec_from_file_location("mocogan_turns_bench", ROOT / "benchmarks" / "mocogan_turns.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_turn_is_a_velocity_sign_change_with_both_sides_fast():
    turns = _turns_module().turns
    straight = np.stack([np.arange(8.0), 0.5 * np.arange(8.0)], axis=1)  # (8, 2)
    assert turns(straight, 0.3) == 0
    bounced = straight.copy()
    bounced[4:, 0] = 6.0 - np.arange(4.0)  # x turns back after frame 3; y goes on
    assert turns(bounced, 0.3) == 1
    crawl = np.stack([np.array([0, 0.1, 0.2, 0.1, 0.0, 0.1, 0.2, 0.3]), np.zeros(8)], axis=1)
    assert turns(crawl, 0.3) == 0  # too slow to have a direction either side


def test_the_script_reads_the_generators_own_path_and_refuses_a_plain_run(tmp_path, capsys):
    from videosynth.train.run import run_training

    bench = _turns_module()
    config = {
        "family": "mocogan",
        "model": {"preset": "tiny", "motion_warp": True, "render_motion": False, "warp_velocity": True},
        "data": {"name": "bouncing-shapes", "colour": "white", "frames": 4, "size": 16, "object_size": 6,
                 "num_samples": 600},
        "condition": {"kind": "class", "dim": 4},
        "train": {"steps": 2, "batch_size": 4, "sample_every": 0, "device": "cpu", "log_every": 1},
    }
    torch.manual_seed(0)
    run = run_training(config, run_dir=tmp_path / "warp", progress=False)
    out = tmp_path / "turns.json"
    assert bench.main([str(run), "--num", "200", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["num"] == 200 and 0.0 <= result["valid_share"] <= 1.0 and 0.0 <= result["turning_share"] <= 1.0
    assert 0.0 < result["real_turning_share"] < 1.0  # the data's objects bounce in some clips, not all
    assert "clips that turn" in capsys.readouterr().out
    plain = run_training({**config, "model": {"preset": "tiny"}}, run_dir=tmp_path / "plain", progress=False)
    with pytest.raises(SystemExit, match="warp_velocity"):
        bench.main([str(plain), "--num", "2"])
    with pytest.raises(SystemExit, match="error: .*missing"):  # a run that is not there: one line, no traceback
        bench.main([str(tmp_path / "missing"), "--num", "2"])
