"""The family registry: one record per model family, read by the CLI, ``videosynth.load`` and the tests.

A family is a model file (``videosynth/models/``), an objective (``videosynth/train/``), an
inference pipeline (``videosynth/pipelines/``), its record here and its configs
(``configs/<family>/``). ``tests/test_family_contract.py`` runs the contract suite over every
record with the record's own tiny configs, so a registered family inherits it.

The registry lives in ``train`` because a record names the objective and ``train`` may import
``pipelines`` (never the reverse); ``videosynth.load`` reads it from the package root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from videosynth.checkpoint import read_run_config
from videosynth.config import choice_hint
from videosynth.errors import CheckpointError, ConfigError
from videosynth.pipelines import (
    FlowPipeline,
    MaskedPipeline,
    MoCoGANPipeline,
    Option,
    Pipeline,
    TokenizerPipeline,
    TwoStagePipeline,
    VideoGANPipeline,
)
from videosynth.train.config import RunConfig
from videosynth.train.flow import FlowObjective, FlowRunConfig
from videosynth.train.gan import GANObjective, VideoGANRunConfig
from videosynth.train.maskgit import MaskedObjective, MaskedRunConfig
from videosynth.train.mocogan import MoCoGANObjective, MoCoGANRunConfig
from videosynth.train.objective import Objective
from videosynth.train.prior import PriorObjective, PriorRunConfig
from videosynth.train.vqvae import VQVAEObjective, VQVAERunConfig


@dataclass(frozen=True)
class Capabilities:
    """What a family's runs can do beyond unconditional clips of the training length.

    generative: it makes clips (a tokenizer only encodes and decodes); sound: it takes
    ``condition.audio``; prime: it starts from observed frames (continues them, or animates one); long: it
    makes clips longer than its training clips; lora: it fine-tunes with LoRA adapters (a ``finetune:`` section).
    """

    generative: bool = True
    sound: bool = False
    prime: bool = False
    long: bool = False
    lora: bool = False


# The clip of every tiny config: 4 frames of 16 x 16 px, white shapes.
TINY_DATA = {"name": "bouncing-shapes", "frames": 4, "size": 16, "num_samples": 16, "colour": "white"}
TINY_SOUND = {"audio": True, "dim": 8, "audio_fft": 128, "audio_mels": 16}


@dataclass(frozen=True)
class Family:
    """A family: ``name`` (the ``family:`` key of a run config), its run-config class, objective,
    pipeline, a one-line summary and its :class:`Capabilities`.

    ``tiny`` holds named tiny run configs (``train:`` left out) for the contract suite: ``plain``,
    ``rich`` (most of the objective's options), for a family that takes sound, ``audio``, and any
    other variant an option needs (the suite runs each but ``plain`` through every contract test).
    ``tokenizer`` names the tiny variant of the ``vqvae`` family a second-stage family's tiny
    configs train on (the suite fills ``tokenizer_run``). The sampling options ``videosynth
    sample`` exposes are ``pipeline.options``; the batch entries its objective trains on,
    ``objective.batch_keys``.
    """

    name: str
    run_config: type[RunConfig]
    objective: type[Objective]
    pipeline: type[Pipeline]
    summary: str
    can: Capabilities
    tiny: dict[str, dict] = field(default_factory=dict)
    tokenizer: str | None = None


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("videogan", VideoGANRunConfig, GANObjective, VideoGANPipeline,
           "3D-conv GAN (Vondrick et al. 2016), one- or two-stream generator",
           Capabilities(sound=True),
           tiny={
               "plain": {"model": {"preset": "tiny"}},
               "rich": {"model": {"preset": "tiny-two-stream"},
                        "condition": {"kind": "class", "dim": 8, "dropout": 0.2},
                        "loss": {"kind": "wgan", "n_critic": 2, "gp_weight": 10.0, "mask_weight": 0.1,
                                 "aux_class_weight": 1.0, "diffaug": "color,translation", "mode_seeking": 0.1}},
               # text + sound: per-frame sound features bias the 3D stream; D judges clip and sound together
               "audio": {"model": {"preset": "tiny-two-stream"},
                         "condition": {"kind": "text", "dropout": 0.2, **TINY_SOUND}},
           }),
    Family("mocogan", MoCoGANRunConfig, MoCoGANObjective, MoCoGANPipeline,
           "content + recurrent motion GAN with image and video discriminators (Tulyakov et al. 2018)",
           Capabilities(sound=True, prime=True, long=True),
           tiny={
               "plain": {"model": {"preset": "tiny"}},
               "rich": {"model": {"preset": "tiny", "num_actions": 3},
                        "condition": {"kind": "text", "dim": 8, "dropout": 0.2},
                        "loss": {"kind": "hinge", "instance_noise": 0.1, "instance_noise_steps": 4,
                                 "mode_seeking": 0.1, "motion_seeking": 0.1}},
               # class + sound: the sound drives the motion cell, both discriminators hear it; the
               # stabilisers (AC-GAN head on D_I, R1, DiffAugment, batch std) on the same run
               "audio": {"model": {"preset": "tiny", "d_batch_std": True},
                         "condition": {"kind": "class", "dropout": 0.2, **TINY_SOUND},
                         "loss": {"aux_class_weight": 1.0, "r1_gamma": 1.0, "diffaug": "color,translation",
                                  "mode_seeking": 0.1, "motion_seeking": 0.1}},
           }),
    Family("vqvae", VQVAERunConfig, VQVAEObjective, TokenizerPipeline,
           "video VQ-VAE tokenizer, stage one of the two-stage model (VideoGPT)",
           Capabilities(generative=False),
           tiny={
               "plain": {"model": {"preset": "tiny"}},
               "rich": {"model": {"preset": "tiny", "codebook_size": 16, "restart_after": 1},
                        "optim": {"warmup_steps": 2}},
               "continuous": {"model": {"preset": "tiny", "bottleneck": "continuous", "code_dim": 4}},
           }),
    Family("transformer", PriorRunConfig, PriorObjective, TwoStagePipeline,
           "autoregressive Transformer prior over tokenizer tokens, stage two (VideoGPT)",
           Capabilities(sound=True, prime=True, long=True, lora=True),
           tiny={
               "plain": {"model": {"preset": "tiny"}},
               "rich": {"model": {"preset": "tiny"}, "condition": {"kind": "class", "dim": 8, "dropout": 0.3},
                        "optim": {"warmup_steps": 2}, "sample": {"top_k": 8}},
               # class + sound, sampled with guidance: the sound under each latent frame joins its tokens' inputs
               "audio": {"model": {"preset": "tiny"}, "condition": {"kind": "class", "dropout": 0.3, **TINY_SOUND},
                         "sample": {"top_k": 8, "guidance_scale": 2.0}},
           }, tokenizer="plain"),
    Family("maskgit", MaskedRunConfig, MaskedObjective, MaskedPipeline,
           "masked-token prior over tokenizer tokens with parallel decoding (MaskGIT, MAGVIT)",
           Capabilities(sound=True, prime=True, long=True, lora=True),
           tiny={
               "plain": {"model": {"preset": "tiny"}, "sample": {"steps": 3}},
               "rich": {"model": {"preset": "tiny"}, "condition": {"kind": "text", "dim": 8, "dropout": 0.3},
                        "loss": {"prefix_share": 0.5}, "optim": {"warmup_steps": 2},
                        "sample": {"steps": 3, "top_k": 8, "guidance_scale": 2.0}},
               "audio": {"model": {"preset": "tiny"}, "condition": {"kind": "class", "dropout": 0.3, **TINY_SOUND},
                         "sample": {"steps": 2, "guidance_scale": 2.0}},
           }, tokenizer="plain"),
    Family("flow", FlowRunConfig, FlowObjective, FlowPipeline,
           "diffusion transformer trained with rectified flow on a continuous tokenizer's latents (DiT, Latte)",
           Capabilities(sound=True, prime=True, long=True, lora=True),
           tiny={
               "plain": {"model": {"preset": "tiny"}, "sample": {"steps": 2, "solver": "euler"}},
               "rich": {"model": {"preset": "tiny", "attention": "factorised", "cross_attention": True},
                        "condition": {"kind": "text", "dim": 8, "text_heads": 2, "dropout": 0.3},
                        "loss": {"time_sampling": "uniform"}, "optim": {"warmup_steps": 2},
                        "sample": {"steps": 2, "guidance": 2.0}},
               # sound alone, heard through cross-attention (one token per frame) and added per latent frame
               "audio": {"model": {"preset": "tiny", "cross_attention": True, "frame_sound": True},
                         "condition": {"kind": "none", "text_heads": 2, "dropout": 0.2, **TINY_SOUND},
                         "sample": {"steps": 2, "guidance": 2.0}},
               # per-frame times with clean-context and full-sequence shares (Diffusion Forcing)
               "forcing": {"model": {"preset": "tiny"}, "condition": {"kind": "class", "dim": 8, "dropout": 0.3},
                           "loss": {"frame_times": "independent", "context_share": 0.5, "full_share": 0.25},
                           "sample": {"steps": 2, "guidance": 2.0, "context_noise": 0.1}},
               # shortcut steps: samples in 1, 2, 4, ... steps
               "shortcut": {"model": {"preset": "tiny"}, "condition": {"kind": "class", "dim": 8, "dropout": 0.3},
                            "loss": {"objective": "shortcut", "shortcut_steps": 8, "shortcut_share": 0.5},
                            "sample": {"steps": 2, "solver": "euler", "guidance": 2.0}},
               # joint audio-video: the clip's sound as a second stream of log-mel frames, with video-to-audio
               # and audio-to-video rows
               "joint": {"model": {"preset": "tiny"}, "condition": {"kind": "class", "dim": 8, "dropout": 0.3},
                         "joint": {"audio": True, "mels": 16, "fft": 256, "mels_per_frame": 8, "vocoder_iters": 4},
                         "loss": {"video_to_audio_share": 0.25, "audio_to_video_share": 0.25},
                         "sample": {"steps": 2, "solver": "euler", "guidance": 2.0}},
           }, tokenizer="continuous"),
)}


def get_family(name: str) -> Family:
    """The registry record of a family name; unknown -> ConfigError with the closest name."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown 'family: {name}' ({choice_hint(name, FAMILIES)})")
    return FAMILIES[name]


def tiny_config(name: str, variant: str, tokenizer_run: str | None = None) -> dict:
    """A family's tiny run config ``variant`` as a full config dict (family, data; sound data where the
    condition hears sound; ``tokenizer_run`` for a second-stage family), ``train:`` left to the caller."""
    family = get_family(name)
    cfg = {"family": name, "data": dict(TINY_DATA), **family.tiny[variant]}
    if cfg.get("condition", {}).get("audio") or cfg.get("joint", {}).get("audio"):
        cfg["data"]["audio"] = 8000
    if family.tokenizer is not None:
        cfg["tokenizer_run"] = str(tokenizer_run)
    return cfg


def load(run_dir: str | Path, checkpoint: str | int | None = None, device: str = "auto") -> Pipeline:
    """The inference pipeline of a run directory (``videosynth.load``).

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
    name = config.get("family")
    if name not in FAMILIES:
        raise CheckpointError(f"{run_dir}/config.yaml has family '{name}' ({choice_hint(name, FAMILIES)})")
    return FAMILIES[name].pipeline(run_dir, config, checkpoint, device)


def sampling_options() -> dict[str, Option]:
    """Every family's CLI sampling options by name (``videosynth sample`` derives its flags from them)."""
    out: dict[str, Option] = {}
    for family in FAMILIES.values():
        for opt in family.pipeline.options:
            if opt.cli:
                out.setdefault(opt.name, opt)
    return out
