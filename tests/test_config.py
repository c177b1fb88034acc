"""Typed configs: YAML + overrides onto dataclasses, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from videosynth.config import apply_overrides, from_dict, load_yaml, merge, to_dict
from videosynth.errors import ConfigError
from videosynth.train.config import TrainConfig


@dataclass
class Inner:
    size: int = 64
    sizes: tuple[int, ...] = (2, 4, 4)
    name: str | None = None


@dataclass
class Outer:
    lr: float = 1e-3
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)
    flag: bool = False


def test_from_dict_roundtrip():
    obj = from_dict(Outer, {"lr": 1, "inner": {"size": 32, "sizes": [1, 2, 2]}, "tags": ["a"], "flag": True})
    assert obj == Outer(lr=1.0, inner=Inner(size=32, sizes=(1, 2, 2)), tags=["a"], flag=True)
    assert from_dict(Outer, to_dict(obj)) == obj


@pytest.mark.parametrize(
    "data, message",
    [
        ({"lrr": 1}, "unknown key 'lrr' (did you mean 'lr'?)"),
        ({"inner": {"szie": 3}}, "unknown key 'inner.szie' (did you mean 'inner.size'?)"),
        ({"inner": {"size": "big"}}, "'inner.size' must be an integer"),
        ({"flag": "yes"}, "'flag' must be true or false"),
        ({"inner": 3}, "'inner' must be a mapping"),
        ({"tags": "a"}, "'tags' must be a list"),
    ],
)
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as exc:
        from_dict(Outer, data)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_overrides_parse_yaml_scalars():
    data = apply_overrides({"train": {"steps": 1}}, ["train.steps=20", "train.lr=3e-4", "model.sizes=[1,2]", "x.y=abc"])
    assert data == {"train": {"steps": 20, "lr": 3e-4}, "model": {"sizes": [1, 2]}, "x": {"y": "abc"}}
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["train.steps"])


def test_merge_is_recursive():
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_load_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_yaml(bad)


def test_train_config_typo():
    with pytest.raises(ConfigError, match="did you mean 'train.batch_size'"):
        from_dict(TrainConfig, {"batchsize": 3}, "train")


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "videosynth.cli", *args], capture_output=True, text=True, **kw)


def test_cli_config_errors_are_one_line(tmp_path):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("family: videogann\n")
    res = _cli("train", "--config", str(cfg))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "did you mean 'videogan'" in res.stderr
    res = _cli("train", "--config", str(tmp_path / "missing.yaml"))
    assert res.returncode == 2 and "config file not found" in res.stderr
    res = _cli("train", "--resume", str(tmp_path / "norun"))
    assert res.returncode == 2 and "cannot resume" in res.stderr
