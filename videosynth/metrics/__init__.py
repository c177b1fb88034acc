"""Evaluation: FVD / KVD / IS / FID with pinned protocols, reconstruction metrics, weight-free metrics.

Pure math lives in :mod:`.frechet`, :mod:`.kernel`, :mod:`.inception_score` and
:mod:`.recon`; feature networks (loaded only from local files) in :mod:`.detectors`,
:mod:`.lpips` and :mod:`.weights`; the protocol and result records in :mod:`.protocol`; the
weight-free metrics for the built-in data in :mod:`.tracking` and :mod:`.probe_net`.

The names below are imported on first use, so ``import videosynth.metrics.lpips`` (the
perceptual loss does) does not pull in scipy and the detectors.
"""

from __future__ import annotations

import importlib

# eager: this submodule shares the name of its function, which must win over the module attribute
from videosynth.metrics.inception_score import inception_score

_EXPORTS = {
    "evaluate_during_training": "in_training", "FeatureStats": "frechet", "frechet_distance": "frechet",
    "frechet_distance_from_stats": "frechet", "kernel_distance": "kernel",
    "mmd2_unbiased": "kernel", "polynomial_kernel": "kernel", "MetricResult": "protocol", "Protocol": "protocol",
    "lpips_distance": "recon", "psnr": "recon", "recon_metrics": "recon", "ssim": "recon",
}

__all__ = [*_EXPORTS, "inception_score"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'videosynth.metrics' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"videosynth.metrics.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
