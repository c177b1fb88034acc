"""Metrics the training loop can log every ``eval_every`` steps on the built-in data (no downloaded weights).

:func:`evaluate_during_training` samples clips through a callback, measures the
weight-free physics statistics of :mod:`videosynth.metrics.tracking` on them and
on the same number of real validation clips, and, when a probe file for the
dataset exists (``probe-<dataset>.safetensors`` in the weights places), the FPD
of :mod:`videosynth.metrics.probe_net`. Real-side results are cached per process.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Iterable

import torch

from videosynth.errors import MissingWeightsError, VideoSynthError
from videosynth.metrics.detectors import extract_features
from videosynth.metrics.frechet import FeatureStats, frechet_distance_from_stats
from videosynth.metrics.tracking import STAT_DIRECTIONS, TrackingConfig, physics_stats

log = logging.getLogger(__name__)

GenerateFn = Callable[[int, torch.Generator], "torch.Tensor | Iterable[torch.Tensor]"]

_REAL_CACHE: dict[tuple, tuple[torch.Tensor, dict[str, float]]] = {}
_PROBE_CACHE: dict[tuple, FeatureStats] = {}


def real_clips(dataset_name: str, num: int, frames: int, size: int, data_config=None) -> torch.Tensor:
    """The first ``num`` validation clips of a built-in dataset: ``float [num, C, frames, size, size]`` in ``[-1, 1]``.

    ``data_config`` (a ``videosynth.data.DataConfig``) keeps the training data's
    other settings (number of objects, seed); frames and size are taken from the fakes.
    """
    try:
        from videosynth.data import DataConfig, build_dataset
    except ImportError as exc:
        raise VideoSynthError(f"built-in datasets are unavailable ({exc}); cannot draw real clips")
    if data_config is None:
        data_config = DataConfig(name=dataset_name)
    data_config = dataclasses.replace(data_config, name=dataset_name, frames=frames, size=size)
    ds = build_dataset(data_config, "val")
    n = min(num, len(ds))
    return torch.stack([ds[i]["video"] for i in range(n)])  # (N, C, T, H, W)


def _collect(out: "torch.Tensor | Iterable[torch.Tensor]", num: int) -> torch.Tensor:
    batches = [out] if isinstance(out, torch.Tensor) else list(out)
    videos = torch.cat([b.detach().float().cpu() for b in batches], dim=0)[:num]  # (N, C, T, H, W)
    if videos.ndim != 5 or videos.shape[0] == 0:
        raise VideoSynthError(f"generate_fn must return videos [N, C, T, H, W], got {tuple(videos.shape)}")
    return videos


def evaluate_during_training(generate_fn: GenerateFn, dataset_name: str, num: int = 64, seed: int = 0,
                             real: torch.Tensor | None = None, data_config=None, probe_weights: str | None = None,
                             cfg: TrackingConfig | None = None) -> dict[str, float]:
    """Weight-free metrics (and probe FPD when its weights exist) of generated clips, as flat floats for logging.

    Args:
        generate_fn: ``(num, generator) -> float [N, C, T, H, W]`` in ``[-1, 1]`` (or an
            iterable of such batches), where ``generator`` is a CPU ``torch.Generator``
            seeded with ``seed`` (the convention of ``Objective.sample``); called once,
            under ``torch.inference_mode()``.
        dataset_name: ``moving-digits`` or ``bouncing-shapes`` (the real reference).
        num: clips per side.
        seed: seeds the generator handed to ``generate_fn`` so evaluations are repeatable.
        real: real clips to compare with instead of the dataset's validation split.
        data_config: the training ``DataConfig`` (so real clips match it).
        probe_weights: explicit probe file; otherwise ``probe-<dataset>.safetensors``
            is looked up like every weights file and FPD is skipped if absent.

    Returns:
        ``{"track/<stat>": fake value, "track/<stat>_real": real value,
        "track/<stat>_gap": fake − real, ..., "fpd": value (if a probe exists)}``
        for every statistic in :data:`videosynth.metrics.tracking.STAT_DIRECTIONS`.
    """
    cfg = cfg or TrackingConfig()
    with torch.inference_mode():
        fake = _collect(generate_fn(num, torch.Generator(device="cpu").manual_seed(seed)), num)
    _, _, t, h, w = fake.shape
    key = (dataset_name, num, t, h, w, repr(data_config), repr(cfg), None if real is None else id(real))
    if key not in _REAL_CACHE:
        real_videos = real if real is not None else real_clips(dataset_name, num, t, h, data_config)
        _REAL_CACHE[key] = (real_videos, physics_stats(real_videos, cfg))
    real_videos, real_stats = _REAL_CACHE[key]
    fake_stats = physics_stats(fake, cfg)
    out: dict[str, float] = {}
    for stat in STAT_DIRECTIONS:
        out[f"track/{stat}"] = fake_stats[stat]
        out[f"track/{stat}_real"] = real_stats[stat]
        out[f"track/{stat}_gap"] = fake_stats[stat] - real_stats[stat]
    fpd = _probe_fpd(dataset_name, fake, real_videos, probe_weights, key)
    if fpd is not None:
        out["fpd"] = fpd
    return out


def _probe_fpd(dataset_name: str, fake: torch.Tensor, real: torch.Tensor, weights: str | None,
               key: tuple) -> float | None:
    from videosynth.metrics.probe_net import load_probe_detector

    try:
        probe = load_probe_detector(dataset_name, weights)
    except MissingWeightsError as exc:
        log.debug("FPD skipped: %s", exc)
        return None
    if fake.shape[0] < 2 or real.shape[0] < 2:
        return None
    pkey = (*key, probe.sha256)
    if pkey not in _PROBE_CACHE:
        _PROBE_CACHE[pkey] = extract_features(probe, [real], batch_size=32)
    fake_stats = extract_features(probe, [fake], batch_size=32)
    return frechet_distance_from_stats(_PROBE_CACHE[pkey], fake_stats, method="eigen")
