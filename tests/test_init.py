"""``train --init RUN``: a new run starts from another run's weights; class tables follow class names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from videosynth.checkpoint import find_checkpoint
from videosynth.errors import CheckpointError, ConfigError
from videosynth.train.checkpointing import init_from
from videosynth.train.context import Context
from videosynth.train.families import get_family, tiny_config
from videosynth.train.run import resolve_config, run_training

TRAIN = {"batch_size": 4, "log_every": 1, "ckpt_every": 100, "sample_every": 0, "device": "cpu", "steps": 2}
CLASS = {"kind": "class", "dim": 8, "dropout": 0.2}


def _run(tmp_path: Path, name: str, **changes) -> Path:
    cfg = {**tiny_config("videogan", "plain"), "condition": CLASS, "train": TRAIN, **changes}
    return run_training(cfg, run_dir=tmp_path / name, progress=False)


def _objective(cfg_dict: dict, tmp_path: Path):
    cfg = resolve_config(cfg_dict)
    family = get_family(cfg.family)
    dataset = family.objective.build_dataset(cfg, "train")
    cfg = family.objective.prepare_config(cfg, dataset)
    return family.objective(cfg, Context(cfg.train, torch.device("cpu"), tmp_path / "new", dataset)), dataset


def test_init_loads_every_weight_and_maps_classes_by_name(tmp_path):
    run = _run(tmp_path, "shapes")
    saved = load_file(str(find_checkpoint(run)[0] / "model.safetensors"))
    # the same data: every tensor as saved
    same, data = _objective({**tiny_config("videogan", "plain"), "condition": CLASS, "train": TRAIN}, tmp_path)
    line = init_from(run, same, list(data.class_names))
    assert "classes kept: circle, square, triangle; new: none" in line
    mine = {f"{n}.{k}": v for n, m in same.modules().items() for k, v in m.state_dict().items()}
    assert sorted(mine) == sorted(saved) and all(torch.equal(mine[k], saved[k]) for k in saved)
    # other classes (digits): the class tables are rebuilt (null row kept), everything else as saved
    digits = {**tiny_config("videogan", "plain"), "condition": CLASS, "train": TRAIN,
              "data": {**tiny_config("videogan", "plain")["data"], "name": "moving-digits", "colour": ""}}
    other, data = _objective(digits, tmp_path)
    torch.manual_seed(0)
    line = init_from(run, other, list(data.class_names))
    assert "kept: none; new: 0, 1" in line
    mine = {f"{n}.{k}": v for n, m in other.modules().items() for k, v in m.state_dict().items()}
    tables = [k for k in saved if mine[k].shape != saved[k].shape]
    assert tables and all(mine[k].shape[0] in (10, 11) for k in tables)
    for key in tables:
        if mine[key].shape[0] == 11:  # with the null row: it is the saved one
            assert torch.equal(mine[key][-1], saved[key][-1])
    assert all(torch.equal(mine[k], saved[k]) for k in saved if k not in tables)


def test_init_refuses_another_architecture_or_family_in_one_line(tmp_path):
    run = _run(tmp_path, "shapes")
    wider, data = _objective({**tiny_config("videogan", "plain"), "model": {"preset": "tiny-two-stream"},
                              "condition": CLASS, "train": TRAIN}, tmp_path)
    with pytest.raises(CheckpointError, match="does not match the model") as err:
        init_from(run, wider, list(data.class_names))
    assert "\n" not in str(err.value)
    moco, data = _objective({**tiny_config("mocogan", "plain"), "condition": CLASS, "train": TRAIN}, tmp_path)
    with pytest.raises(CheckpointError, match="start from a run of this family"):
        init_from(run, moco, list(data.class_names))


def test_the_cli_trains_from_init_and_refuses_it_with_resume(tmp_path):
    from videosynth.cli import main

    run = _run(tmp_path, "shapes")
    new = run_training({**tiny_config("videogan", "plain"), "condition": CLASS, "train": TRAIN},
                       run_dir=tmp_path / "tuned", progress=False, init=run)
    assert find_checkpoint(new)[1]["step"] == 2
    with pytest.raises(ConfigError, match="drop --init"):
        run_training(None, ["train.steps=3"], resume=new, progress=False, init=run)
    assert main(["train", "--resume", str(new), "--init", str(run), "--steps", "3", "--no-progress"]) == 2
