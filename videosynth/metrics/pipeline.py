"""Distribution metrics end to end: video batches -> detector -> streaming statistics -> number + protocol.

One function per family of metric, all with one shape of input: a *side* is
either reference statistics loaded from ``.npz`` (checked against the protocol)
or a function ``seed -> iterable of float [B, C, T, H, W] in [-1, 1]``.

- :func:`frechet_metric` — FVD (I3D), per-frame FID (Inception), FPD (probe net).
- :func:`kernel_metric`  — KVD (I3D) / KID (Inception) with the cubic-kernel MMD.
- :func:`inception_score_metric` — video IS (C3D), fake side only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Iterable

import torch

from videosynth.errors import VideoSynthError
from videosynth.metrics.detectors import extract_features
from videosynth.metrics.frechet import FeatureStats, frechet_distance_from_stats
from videosynth.metrics.inception_score import inception_score
from videosynth.metrics.kernel import kernel_distance
from videosynth.metrics.protocol import (MetricResult, Protocol, check_compatible, mean_std_over_seeds,
                                         sample_warnings)

log = logging.getLogger(__name__)

BatchFn = Callable[[int], Iterable[torch.Tensor]]

KVD_SUBSETS = 100  # Bińkowski et al.
KVD_SUBSET_SIZE = 1000
IS_SPLITS = 10  # Salimans et al.


@dataclass
class Side:
    """One side of a comparison: precomputed statistics (``stats_path``) or a batch source (``batches``)."""

    name: str
    batches: BatchFn | None = None
    stats_path: str | None = None


def side_stats(side: Side, detector, protocol: Protocol, seed: int, batch_size: int = 8,
               keep_features: bool = False, warnings: list[str] | None = None) -> FeatureStats:
    """Statistics of one side under ``protocol`` (``protocol.num_samples`` clips).

    Raises:
        VideoSynthError: stored statistics made with another protocol, or lacking
            kept features when they are needed; a source with no clips.
    """
    if side.stats_path is not None:
        stats, stored = FeatureStats.load(side.stats_path)
        check_compatible(stored, protocol, side.stats_path)
        if keep_features and not stats.keep_features:
            raise VideoSynthError(f"{side.stats_path} holds only mean/covariance; this metric needs the features "
                                  "(recompute with --save-stats while running kvd)")
        return stats
    if side.batches is None:
        raise VideoSynthError(f"side '{side.name}' has neither statistics nor clips")
    stats = extract_features(detector, side.batches(seed), num=protocol.num_samples, batch_size=batch_size,
                             keep_features=keep_features, warnings=warnings)
    if stats.num == 0:
        raise VideoSynthError(f"'{side.name}' gave no clips; check the path and --frames")
    return stats


def _clips(rows: int, detector, protocol: Protocol) -> int:
    """Clips behind ``rows`` feature rows (per-frame detectors give one row per frame)."""
    return rows // protocol.frames if getattr(detector, "per_frame", False) else rows


def _save(stats: FeatureStats, path: str | None, protocol: Protocol) -> None:
    if path:
        stats.save(path, protocol.to_dict())
        log.info("saved statistics to %s", path)


def frechet_metric(detector, real: Side, fake: Side, protocol: Protocol, seeds: list[int] | None = None,
                   batch_size: int = 8, save_real: str | None = None, save_fake: str | None = None,
                   label: str = "", method: str = "sqrtm") -> MetricResult:
    """Fréchet distance between detector features of real and fake clips (FVD / FID / FPD).

    Args:
        detector: a :class:`~videosynth.metrics.detectors.Detector` (or probe detector).
        real, fake: the two sides; the real side is computed once with ``protocol.seed``.
        protocol: the pinned protocol (its ``num_samples`` clips per side).
        seeds: fake-side seeds; with several, the value is mean ± std over them.
        save_real, save_fake: write the side's statistics (``.npz`` + protocol) there.
    """
    warnings: list[str] = []
    seeds = seeds or [protocol.seed]
    real_stats = side_stats(real, detector, protocol, protocol.seed, batch_size, warnings=warnings)
    _save(real_stats, save_real if real.stats_path is None else None, protocol)
    values, n_fake = [], 0
    for seed in seeds:
        fake_stats = side_stats(fake, detector, replace(protocol, seed=seed), seed, batch_size, warnings=warnings)
        if seed == seeds[0]:
            _save(fake_stats, save_fake if fake.stats_path is None else None, replace(protocol, seed=seed))
        values.append(frechet_distance_from_stats(real_stats, fake_stats, method=method))
        n_fake = fake_stats.num
    value, std = mean_std_over_seeds(values)
    n_real_clips = _clips(real_stats.num, detector, protocol)
    n_fake_clips = _clips(n_fake, detector, protocol)
    warnings += sample_warnings(n_real_clips, n_fake_clips, protocol.num_samples)
    for w in warnings:
        log.warning(w)
    return MetricResult(protocol.metric, value, protocol, std, n_real_clips, n_fake_clips, _dedup(warnings),
                        {"per_seed": dict(zip(map(str, seeds), values)), "real": real.name, "fake": fake.name,
                         "feature_rows": {"real": real_stats.num, "fake": n_fake}}, label)


def kernel_metric(detector, real: Side, fake: Side, protocol: Protocol, seeds: list[int] | None = None,
                  batch_size: int = 8, save_real: str | None = None, save_fake: str | None = None,
                  label: str = "", num_subsets: int = KVD_SUBSETS, subset_size: int = KVD_SUBSET_SIZE) -> MetricResult:
    """Kernel distance (KVD with I3D, KID with Inception) between real and fake features; see :func:`kernel_distance`."""
    warnings: list[str] = []
    seeds = seeds or [protocol.seed]
    real_stats = side_stats(real, detector, protocol, protocol.seed, batch_size, True, warnings)
    _save(real_stats, save_real if real.stats_path is None else None, protocol)
    values, subset_stds, n_fake = [], [], 0
    for seed in seeds:
        fake_stats = side_stats(fake, detector, replace(protocol, seed=seed), seed, batch_size, True, warnings)
        if seed == seeds[0]:
            _save(fake_stats, save_fake if fake.stats_path is None else None, replace(protocol, seed=seed))
        mean, sub_std = kernel_distance(real_stats.features, fake_stats.features, num_subsets, subset_size, seed)
        values.append(mean)
        subset_stds.append(sub_std)
        n_fake = fake_stats.num
    value, std = mean_std_over_seeds(values)
    if std is None:
        std = subset_stds[0]  # one seed: report the spread over subsets, as the reference code does
    n_real_clips = _clips(real_stats.num, detector, protocol)
    n_fake_clips = _clips(n_fake, detector, protocol)
    warnings += sample_warnings(n_real_clips, n_fake_clips, protocol.num_samples)
    for w in warnings:
        log.warning(w)
    return MetricResult(protocol.metric, value, protocol, std, n_real_clips, n_fake_clips, _dedup(warnings),
                        {"per_seed": dict(zip(map(str, seeds), values)), "subset_std": subset_stds,
                         "num_subsets": num_subsets, "subset_size": subset_size,
                         "real": real.name, "fake": fake.name}, label)


def inception_score_metric(detector, fake: Side, protocol: Protocol, seeds: list[int] | None = None,
                           batch_size: int = 8, splits: int = IS_SPLITS, label: str = "") -> MetricResult:
    """Video Inception Score of the fake side (C3D probabilities); mean ± std over splits (or seeds)."""
    warnings: list[str] = []
    seeds = seeds or [protocol.seed]
    values, split_stds, n = [], [], 0
    for seed in seeds:
        stats = side_stats(fake, detector, replace(protocol, seed=seed), seed, batch_size, True, warnings)
        mean, split_std = inception_score(stats.features, splits=min(splits, stats.num))
        values.append(mean)
        split_stds.append(split_std)
        n = stats.num
    value, std = mean_std_over_seeds(values)
    if std is None:
        std = split_stds[0]
    warnings += sample_warnings(None, n, protocol.num_samples)
    for w in warnings:
        log.warning(w)
    return MetricResult(protocol.metric, value, protocol, std, None, n, _dedup(warnings),
                        {"per_seed": dict(zip(map(str, seeds), values)), "split_std": split_stds,
                         "splits": splits, "fake": fake.name}, label)


def _dedup(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def clips_for(pipe, key: str, values, seed: int, batch_size: int, options: dict,
              on_progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """One clip per condition: ``pipe`` run with ``key=values[i:i + batch_size]`` per batch (captions,
    sounds, ...), batch ``i`` from seed ``seed + i``; float ``[len(values), C, T, H, W]`` in ``[-1, 1]``."""
    made = []
    for start in range(0, len(values), batch_size):
        part = values[start:start + batch_size]
        made.append(pipe(len(part), seed=seed + start, batch_size=len(part), **{key: part}, **options))
        if on_progress is not None:
            on_progress(len(part))
    return torch.cat(made)
