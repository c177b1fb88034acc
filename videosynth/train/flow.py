"""Latent flow matching: a DiT learns the rectified-flow velocity over a frozen autoencoder's latents.

Each step takes the batch's latents -- read from a latent cache (``latents: DIR``, written once by
``videosynth encode``) or encoded on the fly by the frozen continuous tokenizer of
``tokenizer_run`` (its mean latent) -- normalises them to unit variance with the tokenizer's
running statistics, draws noise
``x0`` and times ``t`` (logit-normal by default, Esser et al. 2024; or uniform), and regresses
the velocity ``x1 - x0`` at ``x_t = (1 - t) x0 + t x1`` (:mod:`videosynth.sampling.flow`) with
an MSE. The condition is dropped with probability ``condition.dropout`` by the conditioner, so
one model serves classifier-free guidance. An EMA of the weights samples.

``loss.frame_times: independent`` (Diffusion Forcing, Chen et al. 2024) draws one time per latent
frame (per frame of tokens) instead of one per clip, so one model denoises whole clips, continues
clean context frames and rolls out in windows on context it was trained on. A share of the clips
(``context_share``) has its first ``k`` frames clean (time 1, ``k`` uniform in ``1 .. t - 1``) and
the rest at one time -- what sampling with clean context asks of the model -- and a share
(``full_share``) has one time for every frame, as a clip sampled from noise; clean frames carry
no loss (their velocity is not determined by them).

``loss.objective: shortcut`` (Frans et al. 2024) also teaches steps of size ``d = 2**-k``: the DiT
is told the step's level ``k``; most of the batch learns the instantaneous velocity (told the
smallest step, ``1 / shortcut_steps``), and a share (``shortcut_share``) learns a step of ``2d``
at a time on the grid of ``2d`` from the model's own two steps of ``d`` (no gradient through the
target, the same draw of the condition), so a run samples in 1, 2, 4, ... steps.

``joint.audio: true`` generates each clip's sound with it: a second stream of log-mel frames in
the same DiT, with video-to-audio and audio-to-video rows (:mod:`videosynth.train.joint_flow`).

Logged: ``loss`` (velocity MSE per latent element; over noisy frames only with per-frame times),
``loss_shortcut`` (the self-consistency rows' part, shortcut runs), ``loss_video`` / ``loss_sound`` (joint runs).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from videosynth.checkpoint import unwrap
from videosynth.conditioning import ConditionConfig
from videosynth.conditioning.base import Condition
from videosynth.conditioning.melcodec import JointAudioConfig, MelCodec
from videosynth.config import at_least, checked, in_range, positive
from videosynth.data import DataConfig
from videosynth.data.tokens import LatentDataset
from videosynth.errors import CheckpointError, ConfigError
from videosynth.models.conditioned import fit_cond_dim
from videosynth.models.dit import PRESETS, DiTConfig
from videosynth.models.joint_dit import build_modules
from videosynth.models.lora import FinetuneConfig, merged_copy
from videosynth.pipelines.flow import check_shortcut, sample_flow
from videosynth.pipelines.joint import sample_joint
from videosynth.pipelines.two_stage import load_tokenizer_run
from videosynth.sampling.flow import TIME_SAMPLING, FlowSampleConfig, path, sample_times, shortcut_target
from videosynth.train.config import RunConfig, TrainConfig
from videosynth.train.context import Context
from videosynth.train.distill import check_distill, distill_loss, teacher_pairs
from videosynth.train.ema import EMA
from videosynth.train.finetune import adapt, record_base
from videosynth.train.joint_flow import fit_joint, joint_loss
from videosynth.train.latent_stage import with_tokenizer_identity
from videosynth.train.objective import Objective, adam, conditioned_modules, ema_decay_at, set_lr


@dataclass
class FlowOptimConfig:
    """AdamW settings (DiT: lr 1e-4, no weight decay; small models take a larger lr)."""

    lr: float = checked(3e-4, positive())
    beta1: float = checked(0.9, in_range(0, 1, high_open=True))
    beta2: float = checked(0.999, in_range(0, 1, high_open=True))
    weight_decay: float = checked(0.0, at_least(0))
    warmup_steps: int = checked(100, at_least(0))
    decay_steps: int = checked(0, at_least(0))  # cosine decay to 0 over the last steps of train.steps


OBJECTIVES = ("flow", "shortcut", "distill")
FRAME_TIMES = ("shared", "independent")


@dataclass
class FlowLossConfig:
    """Section ``loss:``: how training times are drawn, and what the model learns at them."""

    time_sampling: str = "logit-normal"  # "logit-normal" | "uniform"
    logit_mean: float = checked(0.0, in_range(-10, 10))
    logit_std: float = checked(1.0, positive())
    # "flow" (the velocity) | "shortcut" (also steps of 1/2, 1/4, ...: few-step sampling) | "distill" (one step,
    # learned from a trained run's samples: videosynth/train/distill.py)
    objective: str = "flow"
    frame_times: str = "shared"  # "shared" (one time per clip) | "independent" (one per latent frame)
    context_share: float = checked(0.0, in_range(0, 1))  # independent: clips with clean first frames
    full_share: float = checked(0.0, in_range(0, 1))  # independent: clips with one time for every frame
    shortcut_share: float = checked(0.25, in_range(0, 1, low_open=True, high_open=True))  # self-consistency rows
    shortcut_steps: int = checked(128, at_least(2))  # the smallest step is 1 / this (a power of two)
    video_to_audio_share: float = checked(0.0, in_range(0, 1))  # joint runs: rows whose video is given clean
    audio_to_video_share: float = checked(0.0, in_range(0, 1))  # joint runs: rows whose sound is given clean
    # joint runs: the logit-normal location of the other stream's time in rows with one stream given
    # (None: logit_mean). Below 0 trains the noisy end more, where only the given stream can say what to make.
    given_logit_mean: float | None = checked(None, in_range(-10, 10))
    # joint runs: weight of the sound's onsets (rises of a band from one mel frame to the next) in its loss
    onset_weight: float = checked(0.0, at_least(0))
    distill_teacher: str = ""  # objective distill: the trained flow run whose sampler the model learns in one step
    distill_pairs: int = checked(4096, at_least(1))  # objective distill: noise draws the teacher turns into clips

    def __post_init__(self) -> None:
        for key, value, allowed in (("time_sampling", self.time_sampling, TIME_SAMPLING),
                                    ("objective", self.objective, OBJECTIVES),
                                    ("frame_times", self.frame_times, FRAME_TIMES)):
            if value not in allowed:
                raise ConfigError(f"loss.{key} must be one of {list(allowed)}, got '{value}'")
        if self.frame_times == "shared" and (self.context_share or self.full_share):
            raise ConfigError("loss.context_share / loss.full_share share out clips of per-frame times: set "
                              "loss.frame_times: independent, or leave them at 0")
        if self.context_share + self.full_share > 1:
            raise ConfigError(f"loss.context_share + loss.full_share = {self.context_share + self.full_share} "
                              "is more than all clips: make them add up to at most 1")
        if self.video_to_audio_share + self.audio_to_video_share > 1:
            raise ConfigError(f"loss.video_to_audio_share + loss.audio_to_video_share = "
                              f"{self.video_to_audio_share + self.audio_to_video_share} is more than all rows: make "
                              "them add up to at most 1")
        if self.given_logit_mean is not None and (self.time_sampling != "logit-normal" or
                                                  not self.video_to_audio_share + self.audio_to_video_share):
            raise ConfigError("loss.given_logit_mean draws the noisy stream's logit-normal time in rows whose other "
                              "stream is given: set loss.time_sampling: logit-normal and a video_to_audio_share or "
                              "audio_to_video_share, or remove it")
        if self.shortcut_steps & (self.shortcut_steps - 1):
            raise ConfigError(f"loss.shortcut_steps must be a power of two (the steps halve), "
                              f"got {self.shortcut_steps}")
        if self.distill_teacher and self.objective != "distill":
            raise ConfigError("loss.distill_teacher is the teacher of loss.objective: distill: set that objective, "
                              "or remove it")
        if self.objective == "shortcut" and self.frame_times != "shared":
            raise ConfigError("loss.objective: shortcut learns steps of one time per clip: set loss.frame_times: "
                              "shared (per-frame times with shortcut steps are not supported)")

    @property
    def step_levels(self) -> int:
        """Step sizes a shortcut model is told: ``1, 1/2, ..., 1/shortcut_steps`` (0 for plain flow)."""
        return int(math.log2(self.shortcut_steps)) + 1 if self.objective == "shortcut" else 0


def draw_frame_times(n: int, frames: int, cfg: FlowLossConfig, device=None) -> torch.Tensor:
    """Training times ``[n, frames]``, one per frame of tokens (``loss.frame_times: independent``).

    Each clip is, by one uniform draw, a clean-context clip (share ``context_share``: its first ``k``
    frames at time 1, ``k`` uniform in ``1 .. frames - 1``, the rest at one time), a full-sequence
    clip (share ``full_share``: one time for all), or else one of independent times per frame.
    """
    times = dict(device=device, mean=cfg.logit_mean, std=cfg.logit_std)
    t = sample_times(n * frames, cfg.time_sampling, **times).view(n, frames)  # (n, frames)
    shared = sample_times(n, cfg.time_sampling, **times)[:, None]  # (n, 1)
    u = torch.rand(n, 1, device=device)
    k = torch.randint(1, frames, (n, 1), device=device)
    context = u < cfg.context_share  # (n, 1)
    one_time = context | (u < cfg.context_share + cfg.full_share)
    t = torch.where(one_time, shared, t)
    clean = context & (torch.arange(frames, device=device)[None] < k)  # (n, frames)
    return torch.where(clean, torch.ones_like(t), t)


@dataclass
class FlowRunConfig(RunConfig):
    """A flow run (``family: flow``) over the latents of the continuous vqvae run ``tokenizer_run``."""

    family: str = "flow"
    tokenizer_run: str = ""
    tokenizer_checkpoint: str | None = None  # step or folder name; recorded when the run starts (default: newest)
    tokenizer_sha256: str | None = None  # its weights' hash, recorded when the run starts and checked on load
    latents: str | None = None  # a latent cache of tokenizer_run (videosynth encode); default: encode each batch
    model: DiTConfig = field(default_factory=lambda: dataclasses.replace(PRESETS["shapes-32x32x8"]))
    data: DataConfig = field(default_factory=lambda: DataConfig(frames=8, size=32))
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    loss: FlowLossConfig = field(default_factory=FlowLossConfig)
    optim: FlowOptimConfig = field(default_factory=FlowOptimConfig)
    sample: FlowSampleConfig = field(default_factory=FlowSampleConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    joint: JointAudioConfig = field(default_factory=JointAudioConfig)  # generate the sound too (off: video only)
    train: TrainConfig = field(default_factory=TrainConfig)

    presets: ClassVar[dict] = {"model": PRESETS}


def check_latent_cache(cache: LatentDataset, tokenizer, tokenizer_run: str, expected: tuple[int, int, int]) -> None:
    """A latent cache must come from this very tokenizer checkpoint and hold the run's latent grid.

    Raises:
        ConfigError: other weights, another channel count or another latent grid.
    """
    cache.check_written_by(tokenizer.weights_sha256, tokenizer_run)
    shape = (cache.channels, *cache.latent_shape)
    if shape != (tokenizer.model_cfg.code_dim, *expected):
        raise ConfigError(f"latent cache {cache.root} holds latents {list(shape)}, this run needs "
                          f"{[tokenizer.model_cfg.code_dim, *expected]} (data.frames / data.size differ from the "
                          "cache's): re-run `videosynth encode` with this data")


class FlowObjective(Objective):
    """Trains a conditioned :class:`DiT` on normalised latents; samples decode through the tokenizer."""

    takes_audio = True  # through cross-attention to one token per frame of sound and/or per-frame features

    @classmethod
    def batch_keys_for(cls, cfg: FlowRunConfig) -> tuple[str, ...]:
        keys = ("latents", "label") if cfg.latents else ("video", "label")
        hears = cfg.condition is not None and cfg.condition.audio
        return (*keys, "audio") if hears or cfg.joint.audio else keys

    @classmethod
    def build_dataset(cls, cfg: FlowRunConfig, split: str):
        """The latent cache when ``latents`` is set (the loop never decodes videos), else clips."""
        return LatentDataset(cfg.latents) if cfg.latents else super().build_dataset(cfg, split)

    @classmethod
    def prepare_config(cls, cfg: FlowRunConfig, dataset) -> FlowRunConfig:
        """Condition fields from the data, then latent channels, grid and condition width from the tokenizer."""
        cfg = super().prepare_config(cfg, dataset)
        tokenizer = load_tokenizer_run(cfg.tokenizer_run, cfg.tokenizer_checkpoint, cfg.tokenizer_sha256, True)
        latent = tokenizer.latent_shape(cfg.data.frames, cfg.data.size)
        if cfg.latents:
            cache = dataset if isinstance(dataset, LatentDataset) else LatentDataset(cfg.latents)
            check_latent_cache(cache, tokenizer, cfg.tokenizer_run, tuple(latent))
        model = dataclasses.replace(cfg.model, latent_channels=tokenizer.model_cfg.code_dim, latent_shape=tuple(latent),
                                    clip_frames=cfg.data.frames if cfg.model.frame_sound else 0,
                                    step_levels=cfg.loss.step_levels)
        joint, model = fit_joint(cfg, dataset, model)
        if cfg.loss.objective == "distill":
            check_distill(dataclasses.replace(cfg, joint=joint))
        independent = cfg.loss.frame_times == "independent"
        if independent and model.grid[0] < 2:
            raise ConfigError(f"loss.frame_times: independent needs at least 2 frames of tokens, the model has "
                              f"{model.grid[0]} (latent frames {model.latent_shape[0]} / model.patch {model.patch[0]})")
        s = cfg.sample
        sample = dataclasses.replace(s, context=s.context or ("clean" if independent else "project"))
        if sample.context_noise and sample.context != "clean":
            raise ConfigError("sample.context_noise is the noise level of clean context: set sample.context: clean "
                              "(the default with loss.frame_times: independent) or leave it at 0")
        if sample.history_guidance != 1.0 and sample.context != "clean":
            raise ConfigError("sample.history_guidance weighs clean context against none: set sample.context: "
                              "clean (the default with loss.frame_times: independent) or leave it at 1")
        try:
            check_shortcut(model, s.steps, s.solver, s.shift)
        except ConfigError as e:
            raise ConfigError(f"sample: {e} (set sample.steps / sample.solver / sample.shift)") from None
        cfg = dataclasses.replace(cfg, model=fit_cond_dim(model, cfg.condition), sample=sample, joint=joint)
        return record_base(with_tokenizer_identity(cfg, tokenizer))

    def __init__(self, cfg: FlowRunConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.tokenizer = load_tokenizer_run(cfg.tokenizer_run, cfg.tokenizer_checkpoint, cfg.tokenizer_sha256, True,
                                            ctx.device, ctx.run_dir)
        expected = self.tokenizer.latent_shape(cfg.data.frames, cfg.data.size)
        if (cfg.model.latent_channels, tuple(cfg.model.latent_shape)) != (self.tokenizer.model_cfg.code_dim, expected):
            raise CheckpointError(f"model latents {cfg.model.latent_channels}x{list(cfg.model.latent_shape)} do not "
                                  f"match the tokenizer {cfg.tokenizer_run} "
                                  f"({self.tokenizer.model_cfg.code_dim}x{list(expected)})")
        self.batch_keys = self.batch_keys_for(cfg)
        self.audio = cfg.condition is not None and cfg.condition.audio
        if self.audio and not (cfg.model.cross_attention or cfg.model.frame_sound):
            raise ConfigError("condition.audio: the DiT hears the sound through cross-attention or per-frame "
                              "features; set model.cross_attention: true and/or model.frame_sound: true")
        if cfg.model.frame_sound and not self.audio:
            raise ConfigError("model.frame_sound adds the sound's per-frame features: set condition.audio: true")
        if self.audio and cfg.latents:
            raise ConfigError("condition.audio: a latent cache holds no sound; train on clips (remove latents:)")
        self.codec = MelCodec.from_config(cfg.joint).to(ctx.device) if cfg.joint.audio else None
        net = build_modules(cfg.model, cfg.condition)["dit"]
        if cfg.finetune.adapted:
            self.adapted = True
            self.adapter_line = adapt(net, "dit", cfg, ctx.run_dir, list(ctx.dataset.class_names))
        self.net = ctx.wrap(net, find_unused_parameters=net.conditioner is not None)
        o = cfg.optim
        self.opt = adam(unwrap(self.net).parameters(), o.lr, (o.beta1, o.beta2), o.weight_decay, decoupled=True)
        self.ema = EMA(self.net, cfg.train.ema_decay)
        self.pairs = None  # objective distill: the teacher's pairs, made or read at the first step (the run's lock held)

    def modules(self):
        return conditioned_modules(unwrap(self.net), "dit")

    def ema_modules(self):
        return conditioned_modules(self.ema.module, "dit")

    def optimizers(self):
        return {"dit": self.opt}

    def set_train(self, mode: bool) -> None:
        self.net.train(mode)

    def latents_of(self, batch: dict) -> torch.Tensor:
        """The batch's normalised latents ``float32 [B, c, t, h, w]``: cached, or encoded by the frozen tokenizer."""
        model = self.tokenizer.model
        with torch.no_grad():
            latents = batch["latents"] if "latents" in batch else model.encode_latents(batch["video"])
            return model.quantizer.normalize(latents.float())

    def train_step(self, batch: dict, step: int) -> dict:
        set_lr(self.opt, self.cfg.optim, step, self.cfg.train.steps)
        loss, logs = self.pairs_loss(len(batch["label"])) if self.cfg.loss.objective == "distill" else \
            self.data_loss(batch)
        self.ctx.backward_step(loss, self.opt, self.net, name="dit")
        self.ema.decay = ema_decay_at(self.cfg.train.ema_decay, step)
        self.ema.update(self.net)
        return {"loss": loss.detach(), **logs}

    def data_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """The loss of the run's objective on a batch of clips (or cached latents)."""
        x1 = self.latents_of(batch)  # (B, c, t, h, w) data
        x0 = torch.randn_like(x1)  # noise (global RNG: saved and restored with the checkpoint)
        loss_cfg = self.cfg.loss
        if self.codec is not None:
            return joint_loss(self.net, self.ctx, self.codec, x0, x1, batch, loss_cfg)
        if loss_cfg.objective == "shortcut":
            return self.shortcut_loss(x0, x1, batch)
        if loss_cfg.frame_times == "independent":
            return self.frame_loss(x0, x1, batch)
        t = sample_times(x1.shape[0], loss_cfg.time_sampling, device=x1.device, mean=loss_cfg.logit_mean,
                         std=loss_cfg.logit_std)
        xt, target = path(x0, x1, t)
        with self.ctx.autocast():
            v = self.net(xt, labels=batch["label"], captions=list(batch["caption"]), audio=batch.get("audio"), t=t)
        return F.mse_loss(v.float(), target), {}

    def pairs_loss(self, batch_size: int) -> tuple[torch.Tensor, dict]:
        """``loss.objective: distill`` (:mod:`videosynth.train.distill`): the teacher's pairs, not the batch's
        clips (the batch sets only how many), made or read at the first step (the run's lock held by then)."""
        if self.pairs is None:
            run_dir = self.ctx.run_dir and Path(self.ctx.run_dir)
            self.pairs = teacher_pairs(self.cfg, run_dir, self.cfg.tokenizer_sha256, self.ctx.device, self.ctx.is_main)
        return distill_loss(self.net, self.ctx, self.pairs, batch_size), {}

    def frame_loss(self, x0: torch.Tensor, x1: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict]:
        """Per-frame times (:func:`draw_frame_times`); the MSE over the frames that are not clean."""
        model = self.cfg.model
        t = draw_frame_times(x1.shape[0], model.grid[0], self.cfg.loss, x1.device)  # (B, gt)
        t = t.repeat_interleave(model.patch[0], dim=1)  # (B, t): one per latent frame
        xt, target = path(x0, x1, t)
        with self.ctx.autocast():
            v = self.net(xt, labels=batch["label"], captions=list(batch["caption"]), audio=batch.get("audio"), t=t)
        noisy = (t < 1).float()  # (B, t)
        per_frame = (v.float() - target).pow(2).mean(dim=(1, 3, 4))  # (B, t)
        return (per_frame * noisy).sum() / noisy.sum(), {}

    def shortcut_loss(self, x0: torch.Tensor, x1: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict]:
        """Flow-matching rows told the smallest step, then the first ``shortcut_share`` of the batch
        learning a step of ``2d`` from the model's own two steps of ``d`` (:func:`shortcut_target`)."""
        loss_cfg = self.cfg.loss
        b, device = x1.shape[0], x1.device
        k = min(b, max(1, round(b * loss_cfg.shortcut_share)))  # self-consistency rows
        finest = loss_cfg.step_levels - 1  # level of the smallest step: the instantaneous velocity
        t = sample_times(b, loss_cfg.time_sampling, device=device, mean=loss_cfg.logit_mean, std=loss_cfg.logit_std)
        level = torch.randint(0, finest, (k,), device=device)  # a step of 2d = 2**-level
        sections = torch.pow(2.0, level.float())  # (k,)
        start = torch.floor(torch.rand(k, device=device) * sections) / sections  # on the grid of 2d
        t = torch.cat([start, t[k:]])
        levels = torch.cat([level, torch.full((b - k,), finest, dtype=torch.long, device=device)])
        xt, target = path(x0, x1, t)
        net = unwrap(self.net)
        # one draw of the condition (and its dropout) for the targets and the prediction
        c = net.condition(batch["label"], list(batch["caption"]), b, audio=batch.get("audio"),
                          tokens=net.net.takes_context)
        with torch.no_grad(), self.ctx.autocast():
            rows = None if c is None else Condition(*(None if f is None else f[:k] for f in c))

            def half_step(x, tt):  # the model's step of d = 2d / 2, one level finer
                return net(x, condition=rows, t=tt, step=level + 1).float()
            consistent = shortcut_target(half_step, xt[:k], start, 0.5 / sections)
        target = torch.cat([consistent, target[k:]])
        with self.ctx.autocast():
            v = self.net(xt, condition=c, t=t, step=levels)
        error = (v.float() - target).pow(2)
        return error.mean(), {"loss_shortcut": error[:k].detach().mean()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Periodic grid: EMA model, labels cycling through the classes, decoded clips."""
        labels, captions = self.default_conditions(n)
        s = self.cfg.sample
        audio = self.default_audio(n)
        spf = self.cfg.condition.samples_for(1) if audio is not None else 0
        net = merged_copy(self.ema.module) if self.adapted else self.ema.module
        if self.codec is not None:  # the grid shows the clips; their sound is made and left out
            return sample_joint(net, self.tokenizer.model, self.codec, n, generator, labels, captions, steps=s.steps,
                                solver=s.solver, guidance=s.guidance, shift=s.shift).video
        return sample_flow(net, self.tokenizer.model, n, generator, labels, captions,
                           steps=s.steps, solver=s.solver, guidance=s.guidance, audio=audio, samples_per_frame=spf,
                           shift=s.shift)
