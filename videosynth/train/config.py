"""Run configs: the loop's ``train:`` section and the base every family's run config extends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from videosynth.config import at_least, checked, choice_hint, from_dict, in_range, merge, to_dict
from videosynth.errors import ConfigError


@dataclass
class TrainConfig:
    """Loop settings shared by every family (section ``train:`` of a run config)."""

    steps: int = checked(1000, at_least(1))
    batch_size: int = checked(16, at_least(1))
    seed: int = checked(0, in_range(0, 2**31 - 1))
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" | "mps"
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16"; autocast on CUDA only, loss math stays fp32
    log_every: int = checked(10, at_least(1))  # steps between host syncs: logs, skipped updates, DDP stop agreement
    ckpt_every: int = checked(500, at_least(1))
    sample_every: int = checked(500, at_least(0))
    num_samples: int = checked(16, at_least(1))  # clips in each periodic sample grid
    sample_fps: int = checked(8, in_range(1, 240))
    keep_last: int = checked(3, at_least(0))  # checkpoints kept on disk
    ema_decay: float = checked(0.999, in_range(0, 1))
    grad_clip: float = checked(0.0, at_least(0))  # 0 = off
    max_bad_steps: int = checked(20, at_least(1))  # consecutive non-finite steps before the run stops (seen at log steps)
    eval_every: int = checked(0, at_least(0))  # 0 = off; weight-free metrics on the built-in data
    eval_num: int = checked(64, at_least(2))
    compile: bool = False  # torch.compile the modules (opt-in)
    time_limit: float = checked(0.0, at_least(0))  # seconds of training in this process; 0 = off
    tensorboard: bool = True  # event files in RUN_DIR/tb/ at every log row (`tensorboard --logdir runs`)


@dataclass
class RunConfig:
    """Base of every family's run config: ``family`` plus the shared sections.

    Families subclass it, giving the shared sections their types and adding ``model`` and
    objective-specific sections, and list the presets a section may name with ``preset: NAME``::

        @dataclass
        class VideoGANRunConfig(RunConfig):
            family: str = "videogan"
            model: VideoGANConfig = field(default_factory=VideoGANConfig)
            data: DataConfig = field(default_factory=DataConfig)
            condition: ConditionConfig = field(default_factory=ConditionConfig)
            loss: GANLossConfig = field(default_factory=GANLossConfig)
            presets: ClassVar[dict] = {"model": PRESETS}
    """

    family: str = ""
    data: Any = None
    condition: Any = None
    train: TrainConfig = field(default_factory=TrainConfig)

    presets: ClassVar[dict[str, dict[str, Any]]] = {}


def resolve_presets(cls: type[RunConfig], data: dict) -> dict:
    """Replace ``section: {preset: NAME, ...}`` by the preset's fields updated with the rest."""
    data = dict(data)
    for section, table in cls.presets.items():
        value = data.get(section)
        if isinstance(value, dict) and "preset" in value:
            value = dict(value)
            name = value.pop("preset")
            if name not in table:
                raise ConfigError(f"unknown preset '{section}.preset: {name}' ({choice_hint(name, table)})")
            data[section] = merge(to_dict(table[name]), value)
    return data


def build_run_config(cls: type[RunConfig], data: dict) -> RunConfig:
    """Typed run config from a YAML dict: presets resolved, unknown keys refused."""
    return from_dict(cls, resolve_presets(cls, data))
