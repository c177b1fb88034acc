"""The family registry: one record per model family.

A family is a model file (``videosynth/models/``), an objective (``videosynth/train/``), an
inference pipeline (``videosynth/pipelines/``), its record here and its configs
(``configs/<family>/``). ``tests/test_family_contract.py`` runs the contract suite over every
record, so a registered family inherits it.
"""

from __future__ import annotations

from dataclasses import dataclass

from videosynth.config import choice_hint
from videosynth.errors import ConfigError
from videosynth.pipelines import (
    FlowPipeline,
    MoCoGANPipeline,
    Pipeline,
    TokenizerPipeline,
    TwoStagePipeline,
    VideoGANPipeline,
)
from videosynth.train.config import RunConfig
from videosynth.train.flow import FlowObjective, FlowRunConfig
from videosynth.train.gan import GANObjective, VideoGANRunConfig
from videosynth.train.mocogan import MoCoGANObjective, MoCoGANRunConfig
from videosynth.train.objective import Objective
from videosynth.train.prior import PriorObjective, PriorRunConfig
from videosynth.train.vqvae import VQVAEObjective, VQVAERunConfig


@dataclass(frozen=True)
class Family:
    """``name`` (the ``family:`` key of a run config), its run-config class, objective and pipeline.

    The sampling options ``videosynth sample`` exposes for the family are ``pipeline.options``;
    the batch entries its objective trains on are ``objective.batch_keys``.
    """

    name: str
    run_config: type[RunConfig]
    objective: type[Objective]
    pipeline: type[Pipeline]
    summary: str


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("videogan", VideoGANRunConfig, GANObjective, VideoGANPipeline,
           "3D-conv GAN (Vondrick et al. 2016), one- or two-stream generator"),
    Family("mocogan", MoCoGANRunConfig, MoCoGANObjective, MoCoGANPipeline,
           "content + recurrent motion GAN with image and video discriminators (Tulyakov et al. 2018)"),
    Family("vqvae", VQVAERunConfig, VQVAEObjective, TokenizerPipeline,
           "video VQ-VAE tokenizer, stage one of the two-stage model (VideoGPT)"),
    Family("transformer", PriorRunConfig, PriorObjective, TwoStagePipeline,
           "autoregressive Transformer prior over tokenizer tokens, stage two (VideoGPT)"),
    Family("flow", FlowRunConfig, FlowObjective, FlowPipeline,
           "diffusion transformer trained with rectified flow on a continuous tokenizer's latents (DiT, Latte)"),
)}


def get_family(name: str) -> Family:
    """The registry record of a family name; unknown -> ConfigError with the closest name."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown 'family: {name}' ({choice_hint(name, FAMILIES)})")
    return FAMILIES[name]
