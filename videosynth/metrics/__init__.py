"""Evaluation: FVD / KVD / IS / FID with pinned protocols, reconstruction metrics, weight-free metrics.

Pure math lives in :mod:`.frechet`, :mod:`.kernel`, :mod:`.inception_score` and
:mod:`.recon`; feature networks (loaded only from local files) in :mod:`.detectors`
and :mod:`.weights`; the protocol and result records in :mod:`.protocol`; the
weight-free metrics for the built-in data in :mod:`.tracking` and :mod:`.probe_net`.
"""

from videosynth.metrics.frechet import FeatureStats, frechet_distance, frechet_distance_from_stats
from videosynth.metrics.in_training import evaluate_during_training
from videosynth.metrics.inception_score import inception_score
from videosynth.metrics.kernel import kernel_distance, mmd2_unbiased, polynomial_kernel
from videosynth.metrics.protocol import MetricResult, Protocol
from videosynth.metrics.recon import lpips_distance, psnr, recon_metrics, ssim

__all__ = [
    "evaluate_during_training", "FeatureStats", "frechet_distance", "frechet_distance_from_stats", "inception_score",
    "kernel_distance", "mmd2_unbiased", "polynomial_kernel", "MetricResult", "Protocol",
    "lpips_distance", "psnr", "recon_metrics", "ssim",
]
