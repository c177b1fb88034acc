"""What the ``eval`` sub-commands share: ``--option KEY=VALUE`` parsing, the class-probe arguments and a
``--json`` writer that makes its folder first."""

from __future__ import annotations

import argparse
from pathlib import Path

from videosynth.errors import ConfigError


def json_folder_made(fn):
    """``fn(args)`` after creating the folder of ``--json OUT`` (so a result is never lost to a missing folder)."""
    def run_with_folder(args: argparse.Namespace) -> int:
        if getattr(args, "json", None):
            Path(args.json).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return fn(args)

    return run_with_folder


def probe_args(p: argparse.ArgumentParser) -> None:
    """``--probe`` and ``--probe-steps``: the class probe of the sub-commands that classify clips."""
    p.add_argument("--probe", help="class probe .safetensors (default: one kept in $XDG_CACHE_HOME/videosynth/probes, "
                                   "trained on the run's data the first time)")
    p.add_argument("--probe-steps", type=int, default=600, help="training steps of a new probe (default 600)")


def parse_options(items: list[str]) -> dict:
    """``["steps=8", "solver=euler"]`` -> ``{"steps": 8, "solver": "euler"}`` (values read as YAML scalars)."""
    from videosynth.config import parse_yaml

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            value = parse_yaml(raw, f"--option {key.strip()}")
        except ConfigError:
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out

