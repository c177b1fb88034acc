"""The data section of a run config and the dataset factory used by training and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch.utils.data import Dataset

from videosynth.config import at_least, checked, in_range
from videosynth.data.synthetic import BouncingShapes, MovingDigits
from videosynth.data.video_folder import VideoFolder
from videosynth.errors import ConfigError


@dataclass
class DataConfig:
    """Which data to train on and how clips are cut.

    ``name``: ``"bouncing-shapes"``, ``"moving-digits"`` or ``"folder"`` (then ``root`` is
    required and ``manifest`` optional).  ``num_objects``/``num_samples``/``object_size``
    apply to the built-in datasets (``object_size`` 0 = their default); ``stride``,
    ``val_fraction`` and ``max_broken_fraction`` to folders.
    """

    name: str = "bouncing-shapes"  # "bouncing-shapes" | "moving-digits" | "folder"
    root: str | None = None
    manifest: str | None = None
    frames: int = checked(16, at_least(1))
    size: int = checked(64, at_least(4))
    stride: int = checked(1, at_least(1))
    num_objects: int = checked(1, at_least(1))
    num_samples: int = checked(10000, at_least(1))
    object_size: int = checked(0, at_least(0))  # pixels; 0 = the built-in dataset's default for `size`
    colour: str = ""  # bouncing-shapes: "" = a random palette colour per object, or one name ("white", "red", ...)
    seed: int = checked(0, in_range(0, 2**31 - 1))
    val_fraction: float = checked(0.1, in_range(0, 1, high_open=True))
    max_broken_fraction: float = checked(0.2, in_range(0, 1))
    num_workers: int = checked(0, at_least(0))  # DataLoader worker processes (decoding runs in them)


def _moving_digits(cfg: DataConfig, split: str) -> Dataset:
    if cfg.colour:
        raise ConfigError("data.colour applies to bouncing-shapes only (moving-digits are white); remove it")
    return MovingDigits(cfg.num_samples, cfg.frames, cfg.size, cfg.num_objects, cfg.object_size, cfg.seed, split)


def _bouncing_shapes(cfg: DataConfig, split: str) -> Dataset:
    return BouncingShapes(cfg.num_samples, cfg.frames, cfg.size, cfg.num_objects, cfg.object_size, cfg.seed, split,
                          colour=cfg.colour)


def _folder(cfg: DataConfig, split: str) -> Dataset:
    if not cfg.root:
        raise ConfigError("data.root must name a folder of videos when data.name is 'folder'")
    return VideoFolder(cfg.root, frames=cfg.frames, size=cfg.size, stride=cfg.stride, split=split,
                       manifest=cfg.manifest, val_fraction=cfg.val_fraction, seed=cfg.seed,
                       max_broken_fraction=cfg.max_broken_fraction)


DATASETS: dict[str, Callable[[DataConfig, str], Dataset]] = {
    "moving-digits": _moving_digits,
    "bouncing-shapes": _bouncing_shapes,
    "folder": _folder,
}
BUILD_SPLITS = ("train", "val", "all")


def build_dataset(cfg: DataConfig, split: str = "train") -> Dataset:
    """Build the dataset named by ``cfg.name`` for ``split`` (``"train"``, ``"val"`` or ``"all"``).

    The result yields items ``{"video": float32 [3, T, H, W] in [-1, 1], "label": int64, "caption": str}``
    and has ``class_names`` and ``captions()``; folder datasets also ``set_epoch(epoch)``.

    Raises:
        ConfigError: unknown name (the valid ones are listed), bad split, missing root.
        DataError: unreadable or unsuitable folder data.
    """
    if cfg.name not in DATASETS:
        raise ConfigError(f"unknown data.name '{cfg.name}'; valid names: {', '.join(DATASETS)}")
    if split not in BUILD_SPLITS:
        raise ConfigError(f"split must be one of {', '.join(BUILD_SPLITS)}, got '{split}'")
    return DATASETS[cfg.name](cfg, split)
