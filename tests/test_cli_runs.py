"""benchmarks/cli_runs.py: a calibrated budget times each network once and shares the rate only where
a step's work is the same."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def cli_runs(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import cli_runs as module
    yield module
    sys.modules.pop("cli_runs", None)


def _cfg(**loss):
    return {"family": "flow", "model": {"preset": "demo-32x32x8"}, "condition": {"kind": "class"},
            "loss": {"objective": "flow", **loss}, "train": {"batch_size": 16}}


def test_a_cost_neutral_loss_change_reuses_the_rate_and_another_is_timed(cli_runs, tmp_path, monkeypatch):
    timed = []

    def fake_train(cfg, run, seconds, seed, log, **_):  # a calibration run that logs 7 steps/s
        timed.append(cfg["loss"])
        run.mkdir(parents=True, exist_ok=True)
        (run / "log.jsonl").write_text("\n".join(json.dumps({"step": i, "it_s": 7.0}) for i in range(4)) + "\n")
        return seconds

    monkeypatch.setattr(cli_runs, "train", fake_train)
    rates = {}
    budget = cli_runs.Budget(True, rates, tmp_path)
    assert budget.rate(_cfg(), tmp_path / "log") == 7.0 and len(timed) == 1
    rates[next(iter(rates))] = 16.5  # as if timed on an idle machine
    assert budget.rate(_cfg(logit_mean=-0.5, logit_std=1.2), tmp_path / "log") == 16.5  # where times fall: same work
    assert len(timed) == 1 and len(rates) == 2  # stored under its own key too, not timed
    assert budget.rate(_cfg(objective="shortcut"), tmp_path / "log") == 7.0  # another objective: timed
    assert len(timed) == 2
