"""Inference pipelines: a run directory -> inference modules only -> clips.

``videosynth.load(run_dir)`` reads the run's ``config.yaml``, picks the pipeline of its
``family:`` from the family registry and loads the weights of its newest valid checkpoint (or
the one asked for). See :mod:`~videosynth.pipelines.base` for the contract. Pipelines never
import the training code.
"""

from __future__ import annotations

from videosynth.pipelines.base import Option, Pipeline
from videosynth.pipelines.flow import FlowPipeline
from videosynth.pipelines.gan import MoCoGANPipeline, VideoGANPipeline
from videosynth.pipelines.maskgit import MaskedPipeline
from videosynth.pipelines.two_stage import TokenizerPipeline, TwoStagePipeline

__all__ = ["Option", "Pipeline", "VideoGANPipeline", "MoCoGANPipeline", "TokenizerPipeline", "FlowPipeline",
           "TwoStagePipeline", "MaskedPipeline"]
