"""The data section of a run config and the dataset factory used by training and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch.utils.data import Dataset

from videosynth.config import at_least, checked, in_range
from videosynth.data.layouts import bair_layout, kinetics_layout, ucf101_layout
from videosynth.data.synthetic import BouncingShapes, MovingDigits
from videosynth.data.video_folder import VideoFolder
from videosynth.errors import ConfigError


BUILTIN_FPS = 8.0  # frame rate of the built-in datasets' clips (their soundtracks' timing)
BUILTIN = ("moving-digits", "bouncing-shapes")  # the procedural datasets: no download, known factors


@dataclass
class DataConfig:
    """Which data to train on and how clips are cut.

    ``name``: ``"bouncing-shapes"``, ``"moving-digits"``, ``"folder"`` (then ``root`` is
    required and ``manifest`` optional) or a standard layout read from ``root`` (see
    :mod:`videosynth.data.layouts`): ``"ucf101"`` (``split_file`` 1-3, ``split_dir`` where the
    split files are when they are not found next to the videos), ``"kinetics"``
    (``annotations``: the CSV file, or a folder of ``train.csv``/``validate.csv``) or ``"bair"``.
    ``num_objects``/``num_samples``/``object_size`` apply to the built-in datasets
    (``object_size`` 0 = their default); ``stride``, ``val_fraction`` and ``max_broken_fraction``
    to the datasets on disk.
    """

    name: str = "bouncing-shapes"  # "bouncing-shapes" | "moving-digits" | "folder" | "ucf101" | "kinetics" | "bair"
    root: str | None = None
    manifest: str | None = None
    split_file: int | None = checked(None, in_range(1, 3))  # ucf101: trainlist0N/testlist0N (None = 1)
    split_dir: str | None = None  # ucf101: folder of classInd.txt and the split lists (None = looked for)
    annotations: str | None = None  # kinetics: CSV file, or a folder holding train.csv and validate.csv
    frames: int = checked(16, at_least(1))
    size: int = checked(64, at_least(4))
    stride: int = checked(1, at_least(1))
    num_objects: int = checked(1, at_least(1))
    num_samples: int = checked(10000, at_least(1))
    object_size: int = checked(0, at_least(0))  # pixels; 0 = the built-in dataset's default for `size`
    colour: str = ""  # bouncing-shapes: "" = a random palette colour per object, or one name ("white", "red", ...)
    classes: list[str] = checked(factory=list)  # built-in data: the classes objects are drawn from ([] = all);
    # the labels and class list stay the dataset's, so a run on some classes can be fine-tuned onto the others
    seed: int = checked(0, in_range(0, 2**31 - 1))
    val_fraction: float = checked(0.1, in_range(0, 1, high_open=True))
    max_broken_fraction: float = checked(0.2, in_range(0, 1))
    num_workers: int = checked(0, at_least(0))  # DataLoader worker processes (decoding runs in them)
    clips_per_video: int = checked(1, at_least(1))  # datasets on disk: clips per video (train: random; val: spread)
    audio: int = checked(0, in_range(0, 192000))  # Hz: each item carries its clip's soundtrack at this rate; 0 = none
    fps: float = checked(0.0, in_range(0, 240))  # frame rate the sound lines up with; 0 = 8 for the built-in
    # datasets, the videos' most common rate for folders
    # built-in datasets: (class, colour, initial direction) combinations the train split never shows (a
    # compositional split, drawn by `seed`; val keeps them all); 0 = none held out
    holdout_combinations: int = checked(0, at_least(0))


def _moving_digits(cfg: DataConfig, split: str) -> Dataset:
    if cfg.colour:
        raise ConfigError("data.colour applies to bouncing-shapes only (moving-digits are white); remove it")
    ds = MovingDigits(cfg.num_samples, cfg.frames, cfg.size, cfg.num_objects, cfg.object_size, cfg.seed, split,
                      audio_rate=cfg.audio, fps=cfg.fps or BUILTIN_FPS, holdout_combinations=cfg.holdout_combinations,
                      classes=tuple(cfg.classes))
    ds.held_out  # drawn now, so a holdout too large is refused before training starts
    return ds


def _bouncing_shapes(cfg: DataConfig, split: str) -> Dataset:
    ds = BouncingShapes(cfg.num_samples, cfg.frames, cfg.size, cfg.num_objects, cfg.object_size, cfg.seed, split,
                        colour=cfg.colour, audio_rate=cfg.audio, fps=cfg.fps or BUILTIN_FPS,
                        holdout_combinations=cfg.holdout_combinations, classes=tuple(cfg.classes))
    ds.held_out  # drawn now, so a holdout too large is refused before training starts
    return ds


def _root(cfg: DataConfig, what: str) -> str:
    if not cfg.root:
        raise ConfigError(f"data.root must name {what} when data.name is '{cfg.name}'")
    return cfg.root


def _video_folder(cfg: DataConfig, split: str, root: str, **source) -> VideoFolder:
    """A VideoFolder cut as ``cfg`` says; ``source`` is its ``manifest=`` or ``layout=``."""
    return VideoFolder(root, frames=cfg.frames, size=cfg.size, stride=cfg.stride, split=split,
                       val_fraction=cfg.val_fraction, seed=cfg.seed, max_broken_fraction=cfg.max_broken_fraction,
                       audio_rate=cfg.audio, fps=cfg.fps, clips_per_video=cfg.clips_per_video, **source)


def _folder(cfg: DataConfig, split: str) -> Dataset:
    return _video_folder(cfg, split, _root(cfg, "a folder of videos"), manifest=cfg.manifest)


def _ucf101(cfg: DataConfig, split: str) -> Dataset:
    root = _root(cfg, "the UCF101 folder (one subfolder of .avi videos per class)")
    return _video_folder(cfg, split, root, layout=ucf101_layout(root, cfg.split_file or 1, cfg.split_dir))


def _kinetics(cfg: DataConfig, split: str) -> Dataset:
    root = _root(cfg, "the folder of Kinetics videos")
    if not cfg.annotations:
        raise ConfigError("data.annotations must name the Kinetics CSV (label,youtube_id,time_start,time_end,split) "
                          "or a folder holding train.csv and validate.csv when data.name is 'kinetics'")
    return _video_folder(cfg, split, root, layout=kinetics_layout(root, cfg.annotations))


def _bair(cfg: DataConfig, split: str) -> Dataset:
    root = _root(cfg, "the converted BAIR folder (train/ and test/ of trajectory frame folders)")
    return _video_folder(cfg, split, root, layout=bair_layout(root))


DATASETS: dict[str, Callable[[DataConfig, str], Dataset]] = {
    "moving-digits": _moving_digits,
    "bouncing-shapes": _bouncing_shapes,
    "folder": _folder,
    "ucf101": _ucf101,
    "kinetics": _kinetics,
    "bair": _bair,
}
ON_DISK = ("folder", "ucf101", "kinetics", "bair")  # the datasets read from data.root
# Keys only some datasets read: given for another one, they would be ignored, so they are refused.
DATASET_KEYS: dict[str, tuple[str, ...]] = {
    "manifest": ("folder",),
    "split_file": ("ucf101",),
    "split_dir": ("ucf101",),
    "annotations": ("kinetics",),
}
BUILD_SPLITS = ("train", "val", "all")


def build_dataset(cfg: DataConfig, split: str = "train") -> Dataset:
    """Build the dataset named by ``cfg.name`` for ``split`` (``"train"``, ``"val"`` or ``"all"``).

    The result yields items ``{"video": float32 [3, T, H, W] in [-1, 1], "label": int64, "caption": str}``
    and has ``class_names`` and ``captions()``; datasets on disk also ``set_epoch(epoch)``.

    Raises:
        ConfigError: unknown name (the valid ones are listed), bad split, missing root, a key
            the dataset does not read.
        DataError: unreadable or unsuitable data on disk (missing split files, bad CSV rows, ...).
    """
    if cfg.name not in DATASETS:
        raise ConfigError(f"unknown data.name '{cfg.name}'; valid names: {', '.join(DATASETS)}")
    for key, names in DATASET_KEYS.items():
        if getattr(cfg, key) is not None and cfg.name not in names:
            raise ConfigError(f"data.{key} applies to data.name {' or '.join(names)} only "
                              f"(data.name is '{cfg.name}'); remove it")
    if cfg.holdout_combinations and cfg.name not in BUILTIN:
        raise ConfigError(f"data.holdout_combinations applies to the built-in datasets ({', '.join(BUILTIN)}) only "
                          f"(data.name is '{cfg.name}'); remove it")
    if cfg.classes and cfg.name not in BUILTIN:
        raise ConfigError(f"data.classes applies to the built-in datasets ({', '.join(BUILTIN)}); for "
                          f"'{cfg.name}' choose the class folders to train on instead; remove it")
    if cfg.clips_per_video != 1 and cfg.name not in ON_DISK:
        raise ConfigError(f"data.clips_per_video applies to datasets on disk ({', '.join(ON_DISK)}); the built-in "
                          f"'{cfg.name}' draws data.num_samples clips already; remove it")
    if split not in BUILD_SPLITS:
        raise ConfigError(f"split must be one of {', '.join(BUILD_SPLITS)}, got '{split}'")
    return DATASETS[cfg.name](cfg, split)
