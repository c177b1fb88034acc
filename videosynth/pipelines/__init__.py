"""Inference pipelines: a run directory -> inference modules only -> clips.

``load(run_dir)`` reads the run's ``config.yaml``, picks the pipeline of its ``family:`` and
loads the weights of its newest valid checkpoint (or the one asked for). See
:mod:`~videosynth.pipelines.base` for the contract. Pipelines never import the training code.
"""

from __future__ import annotations

from pathlib import Path

from videosynth.checkpoint import read_run_config
from videosynth.config import choice_hint
from videosynth.errors import CheckpointError
from videosynth.pipelines.base import Option, Pipeline
from videosynth.pipelines.flow import FlowPipeline
from videosynth.pipelines.gan import MoCoGANPipeline, VideoGANPipeline
from videosynth.pipelines.two_stage import TokenizerPipeline, TwoStagePipeline

PIPELINES: dict[str, type[Pipeline]] = {
    p.family: p for p in (VideoGANPipeline, MoCoGANPipeline, TokenizerPipeline, TwoStagePipeline, FlowPipeline)
}


def load(run_dir: str | Path, checkpoint: str | int | None = None, device: str = "auto") -> Pipeline:
    """The inference pipeline of a run directory.

    Args:
        run_dir: a folder written by ``videosynth train``.
        checkpoint: a step number or ``step-NNNNNN`` folder; default the newest valid one.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``.

    Raises:
        CheckpointError: not a run directory, an unknown family, no valid checkpoint, or weights
            that do not match the run's config.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory not found: {run_dir}")
    config = read_run_config(run_dir)
    family = config.get("family")
    if family not in PIPELINES:
        raise CheckpointError(f"{run_dir}/config.yaml has family '{family}' ({choice_hint(family, PIPELINES)})")
    return PIPELINES[family](run_dir, config, checkpoint, device)


def sampling_options() -> dict[str, Option]:
    """Every family's CLI sampling options by name (``videosynth sample`` derives its flags from them)."""
    out: dict[str, Option] = {}
    for pipeline in PIPELINES.values():
        for opt in pipeline.options:
            if opt.cli:
                out.setdefault(opt.name, opt)
    return out


__all__ = ["PIPELINES", "Option", "Pipeline", "VideoGANPipeline", "MoCoGANPipeline", "TokenizerPipeline", "FlowPipeline",
           "TwoStagePipeline", "load", "sampling_options"]
