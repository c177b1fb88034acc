"""MoCoGAN training objective on the shared loop, and the content/motion sampling grid.

Tulyakov et al. 2018, "MoCoGAN: Decomposing Motion and Content for Video Generation".

One step (``MoCoGANObjective.train_step``):

1. the generator renders a batch of fake clips (conditioned on the batch's labels /
   captions when the run is conditional; action codes drawn uniformly);
2. the image discriminator ``D_I`` takes one update on random single frames of real and
   fake clips, with its own optimiser and loss weight;
3. the video discriminator ``D_V`` takes one update on whole clips, with its own optimiser
   and loss weight, plus the category loss when the model has an action code;
4. the generator takes one update against both discriminators (weighted sum), plus the
   category loss; then the EMA generator is updated.

Options: any loss of ``videosynth.losses.GAN_LOSSES``; instance noise on every
discriminator input with a linearly annealed std; the category head trained either
InfoGAN-style on the sampled action codes of fake clips (``category_source: fake``) or,
as in the paper's code, on the labels of real clips (``category_source: real``).

Conditioning: the generator and each discriminator own a conditioner built from
``condition:`` (as in the VideoGAN objective), so each projection discriminator learns its
own class / text embedding; fake clips are generated for the real batch's labels / captions.

DDP: each discriminator runs one forward (real and fake together) per backward; the
generator update goes through the bare, frozen discriminators, so no gradient sync is
expected for them there.

Sampling (``videosynth.sampling.gan``): the content/motion grid, content interpolation and
clips longer than the training length; the periodic sample grid uses the EMA generator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from videosynth.augment import parse_policy
from videosynth.config import at_least, checked, in_range, positive
from videosynth.checkpoint import unwrap
from videosynth.conditioning import ConditionConfig
from videosynth.conditioning.base import Condition
from videosynth.data import DataConfig
from videosynth.errors import ConfigError
from videosynth.losses import get_gan_loss, mode_seeking_loss
from videosynth.models.conditioned import fit_audio_dim, fit_cond_dim
from videosynth.models.mocogan import PRESETS, MoCoGANConfig, build_modules, frame_picks, sample_frames
from videosynth.sampling.gan import sample_mocogan
from videosynth.train.config import RunConfig, TrainConfig
from videosynth.train.context import Context
from videosynth.train.ema import EMA
from videosynth.train.gan_common import GANObjectiveBase, check_clip_size, class_loss, with_class_head
from videosynth.train.objective import adam, trainable

# Adam settings of the paper's code: lr 2e-4, betas (0.5, 0.999), weight decay 1e-5.
PAPER_LR = 2e-4
PAPER_BETA1 = 0.5
PAPER_WEIGHT_DECAY = 1e-5
CATEGORY_SOURCES = ("fake", "real")


# ----------------------------------------------------------------------------- config


@dataclass
class MoCoGANLossConfig:
    """Section ``loss:``: the GAN loss and the weights of both discriminators' terms."""

    kind: str = "non-saturating"  # a key of videosynth.losses.GAN_LOSSES
    image_weight: float = checked(1.0, at_least(0))  # weight of the D_I terms (its own loss and the generator's)
    video_weight: float = checked(1.0, at_least(0))  # weight of the D_V terms
    category_weight: float = checked(1.0, at_least(0))  # cross-entropy of the action head (models with num_actions > 0)
    category_source: str = "fake"  # "fake": InfoGAN on sampled codes; "real": labels of real clips
    image_frames: int = checked(1, at_least(1))  # random frames per clip shown to D_I
    instance_noise: float = checked(0.0, at_least(0))  # std of Gaussian noise added to every discriminator input at step 0
    instance_noise_steps: int = checked(0, at_least(0))  # anneal the std linearly to 0 over this many steps (0 = keep it)
    diffaug: str = ""  # DiffAugment on every discriminator input, e.g. "color,translation"; "" = off
    r1_gamma: float = checked(0.0, at_least(0))  # R1 penalty on real frames (D_I) and clips (D_V); 0 = off
    mode_seeking: float = checked(0.0, at_least(0))  # weight of MSGAN's term against one clip per condition
    # the same term between two clips of one content code and condition drawn with two motion codes: charges
    # G for motion its motion code does not decide (half a batch more of generator per step; 0 = off)
    motion_seeking: float = checked(0.0, at_least(0))
    # AC-GAN (Odena et al. 2017), class conditions only: D_I also learns to classify real frames
    # and G is rewarded when its frames are classified as their clip's label; 0 = off
    aux_class_weight: float = checked(0.0, at_least(0))


@dataclass
class MoCoGANOptimConfig:
    """Section ``optim:``: one Adam per network (the paper's code: lr 2e-4, betas (0.5, 0.999), wd 1e-5)."""

    lr_g: float = checked(PAPER_LR, positive())
    lr_d_image: float = checked(PAPER_LR, positive())
    lr_d_video: float = checked(PAPER_LR, positive())
    beta1: float = checked(PAPER_BETA1, in_range(0, 1, high_open=True))
    beta2: float = checked(0.999, in_range(0, 1, high_open=True))
    weight_decay: float = checked(PAPER_WEIGHT_DECAY, at_least(0))
    decay_steps: int = checked(0, at_least(0))  # all three rates: cosine to 0 over the last steps of train.steps


@dataclass
class MoCoGANRunConfig(RunConfig):
    """A MoCoGAN run (``family: mocogan``); ``model: {preset: NAME, ...}`` picks a preset."""

    family: str = "mocogan"
    model: MoCoGANConfig = field(default_factory=lambda: dataclasses.replace(PRESETS["demo-32x32x16"]))
    data: DataConfig = field(default_factory=lambda: DataConfig(frames=16, size=32))
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    loss: MoCoGANLossConfig = field(default_factory=MoCoGANLossConfig)
    optim: MoCoGANOptimConfig = field(default_factory=MoCoGANOptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    presets: ClassVar[dict] = {"model": PRESETS}


# ----------------------------------------------------------------------------- objective


class MoCoGANObjective(GANObjectiveBase):
    """Generator + image discriminator + video discriminator, each with its own Adam."""

    takes_audio = True  # the sound's per-frame features drive the motion cell; both discriminators hear it

    def __init__(self, cfg: MoCoGANRunConfig, ctx: Context):
        super().__init__(cfg, ctx)
        lcfg = cfg.loss
        if lcfg.category_source not in CATEGORY_SOURCES:
            raise ConfigError(f"loss.category_source must be one of {CATEGORY_SOURCES}, got '{lcfg.category_source}'")
        if lcfg.image_frames < 1:
            raise ConfigError(f"loss.image_frames must be >= 1, got {lcfg.image_frames}")
        self.gan = get_gan_loss(lcfg.kind)
        self.diffaug = parse_policy(lcfg.diffaug)
        self.model_cfg = mcfg = fit_audio_dim(fit_cond_dim(with_class_head(cfg.model, cfg), cfg.condition),
                                              cfg.condition)
        self.audio = mcfg.audio_dim > 0
        if self.audio:
            self.batch_keys = (*self.batch_keys, "audio")
        check_clip_size(mcfg.channels, mcfg.frames, mcfg.size, cfg.data)
        self.use_category = mcfg.num_actions > 0 and mcfg.d_category_head and lcfg.category_weight > 0
        classes = len(ctx.dataset.class_names)
        if self.use_category and lcfg.category_source == "real" and mcfg.num_actions < classes:
            # checked once here, not per step on the device (labels there are not range-checked)
            raise ConfigError(f"model.num_actions={mcfg.num_actions} but the data have {classes} classes: the action "
                              f"head learns the real clips' labels (loss.category_source: real); set it to {classes}")

        nets = build_modules(mcfg, cfg.condition)
        self.G = ctx.wrap(nets["generator"])
        self.D_I = ctx.wrap(nets["image_discriminator"])
        self.D_V = ctx.wrap(nets["video_discriminator"])

        ocfg = cfg.optim

        def adam_of(module, lr: float) -> torch.optim.Adam:
            # trainable parameters only: a frozen pretrained text encoder stays out
            return adam(trainable(module), lr, (ocfg.beta1, ocfg.beta2), ocfg.weight_decay)

        self.opt_g = adam_of(self.G, ocfg.lr_g)
        self.opt_di = adam_of(self.D_I, ocfg.lr_d_image)
        self.opt_dv = adam_of(self.D_V, ocfg.lr_d_video)
        self.d_params = trainable(self.D_I) + trainable(self.D_V)  # frozen / thawed around the generator update
        self.ema_g = EMA(self.G, cfg.train.ema_decay)

    # ---- loop interface -------------------------------------------------------------------

    def modules(self):
        return {"generator": self.G, "image_discriminator": self.D_I, "video_discriminator": self.D_V}

    def ema_modules(self):
        return {"generator": self.ema_g.module}

    def optimizers(self):
        return {"generator": self.opt_g, "image_discriminator": self.opt_di, "video_discriminator": self.opt_dv}

    def base_rates(self) -> dict[str, float]:
        ocfg = self.cfg.optim
        return {"generator": ocfg.lr_g, "image_discriminator": ocfg.lr_d_image, "video_discriminator": ocfg.lr_d_video}

    @property
    def noise_dim(self) -> int:
        return self.model_cfg.content_dim

    def _category_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return class_loss(logits, target, self.model_cfg.num_actions)

    def _r1(self, d_real: torch.Tensor, real_in: torch.Tensor) -> torch.Tensor | float:
        r1 = self.r1(d_real, real_in)
        return 0.0 if r1 is None else r1

    # ---- one step ------------------------------------------------------------------------

    def train_step(self, batch: dict, step: int) -> dict:
        real, labels = batch["video"], batch["label"]  # (B, C, T, H, W), (B,)
        b, k = real.shape[0], self.cfg.loss.image_frames
        std = self.noise_std(step)
        self.decay_rates(step)
        action = unwrap(self.G).net.sample_actions(b)  # (B,) uniform action codes, or None
        # the sound of the real clips drives the fakes; each frame is judged with the sound under it
        cond = {"labels": labels, "captions": batch["caption"], **({"audio": batch["audio"]} if self.audio else {})}

        again = None  # (B // 2, C, T, H, W): the first clips again, with new motion codes
        with self.ctx.autocast():
            if self.cfg.loss.motion_seeking > 0:
                fake, again = self._fakes_with_second_motion(b, action, cond)
            else:
                fake, _ = self.G(b, action=action, **cond)  # (B, C, T, H, W)
        fake = fake.float()
        picks = {}
        if self.audio:  # real and fake frames at the same moments, matched with their sound
            picks["frame_index"] = frame_picks(b, real.shape[2], k, device=real.device)  # (B, k)
        frames = (sample_frames(real, k, index=picks.get("frame_index")),
                  sample_frames(fake, k, index=picks.get("frame_index")))  # (B*k, C, H, W) real, fake
        frame_cond = {**cond, **picks, "frame_labels": labels.repeat_interleave(k)}  # clip-major, as sample_frames

        logs = self._image_d_step(*frames, frame_cond, std)
        logs.update(self._video_d_step(real, fake, cond, action, std))
        logs.update(self._generator_step(frames[1], fake, frame_cond, cond, action, std, again))
        self.ema_g.update(self.G)
        if self.cfg.loss.instance_noise > 0:
            logs["instance_noise"] = std
        return logs

    def _image_d_step(self, real_frames, fake_frames, frame_cond: dict, std: float) -> dict:
        """One update of D_I on single frames (+ the AC-GAN class loss on real frames)."""
        lcfg, cond = self.cfg.loss, dict(frame_cond)
        frame_labels = cond.pop("frame_labels")
        real_in = self.real_d_input(real_frames, std)
        with self.ctx.autocast():
            (d_real, class_real), (d_fake, _) = self.D_I(real_in, self.d_input(fake_frames.detach(), std),
                                                        **cond)  # (B*k,), (B*k, K) | None each
        loss = lcfg.image_weight * (self.gan.d_loss(d_real, d_fake) + self._r1(d_real, real_in))
        logs = {"d_image_real": d_real.detach().float().mean(), "d_image_fake": d_fake.detach().float().mean()}
        if lcfg.aux_class_weight > 0:
            aux = class_loss(class_real, frame_labels)
            loss = loss + lcfg.aux_class_weight * aux
            logs["aux_class_real"] = aux.detach()
        logs["loss_d_image"] = loss.detach()
        return self._with_norm(logs, "grad_norm_d_image",
                               self.ctx.backward_step(loss, self.opt_di, self.D_I, name="image_discriminator"))

    def _video_d_step(self, real, fake, cond: dict, action, std: float) -> dict:
        """One update of D_V on whole clips (+ the action category loss)."""
        lcfg = self.cfg.loss
        real_in = self.real_d_input(real, std)
        with self.ctx.autocast():
            (d_real, cat_real), (d_fake, cat_fake) = self.D_V(real_in, self.d_input(fake.detach(), std),
                                                              **cond)  # (B,), (B, A) | None
        loss = lcfg.video_weight * (self.gan.d_loss(d_real, d_fake) + self._r1(d_real, real_in))
        logs = {"d_video_real": d_real.detach().float().mean(), "d_video_fake": d_fake.detach().float().mean()}
        if self.use_category:
            source = (cat_real, cond["labels"]) if lcfg.category_source == "real" else (cat_fake, action)
            loss_cat = self._category_loss(*source)
            loss = loss + lcfg.category_weight * loss_cat
            logs["loss_category_d"] = loss_cat.detach()
        elif cat_real is not None:  # head present but switched off: keep it in the graph for DDP
            loss = loss + 0.0 * (cat_real.float().sum() + cat_fake.float().sum())
        logs["loss_d_video"] = loss.detach()
        return self._with_norm(logs, "grad_norm_d_video",
                               self.ctx.backward_step(loss, self.opt_dv, self.D_V, name="video_discriminator"))

    def _fakes_with_second_motion(self, b: int, action, cond: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``b`` fakes and the first ``b // 2`` of them again: the same content codes and condition draw, new
        motion noise (and action codes); one generator forward of all of them, so DDP sees one per backward."""
        h = max(1, b // 2)
        bare = unwrap(self.G)
        c = bare.condition(cond["labels"], cond["captions"], b, audio=cond.get("audio"),
                           tokens=bare.net.takes_context)
        both = None
        if c is not None:  # every row of the draw again for the first h clips (a field of one row stands for all)
            rows = torch.cat([torch.arange(b), torch.arange(h)]).to(c.pooled.device)
            both = Condition(*(x if x is None or x.shape[0] != b else x[rows] for x in c))
        z = bare.net.sample_content(b)  # (B, Dc)
        actions = None if action is None else torch.cat([action, bare.net.sample_actions(h)])
        video, _ = self.G(b + h, action=actions, condition=both, z_content=torch.cat([z, z[:h]]))
        return video[:b], video[b:].float()

    def _generator_step(self, fake_frames, fake, frame_cond: dict, cond: dict, action, std: float,
                        again: torch.Tensor | None = None) -> dict:
        """One update of G through both frozen bare discriminators; ``again``: the first clips of ``fake``
        with other motion codes (``loss.motion_seeking``)."""
        lcfg, frame_cond = self.cfg.loss, dict(frame_cond)
        frame_labels = frame_cond.pop("frame_labels")
        with self.frozen_discriminators():
            with self.ctx.autocast():
                gi, class_fake = unwrap(self.D_I)(self.d_input(fake_frames, std), **frame_cond)  # (B*k,), (B*k, K)
                gv, cat_g = unwrap(self.D_V)(self.d_input(fake, std), **cond)  # (B,), (B, A) | None
            loss_image, loss_video = self.gan.g_loss(gi), self.gan.g_loss(gv)
            loss = lcfg.image_weight * loss_image + lcfg.video_weight * loss_video
            logs = {"loss_g_image": loss_image.detach(), "loss_g_video": loss_video.detach()}
            if lcfg.aux_class_weight > 0:
                aux = class_loss(class_fake, frame_labels)
                loss = loss + lcfg.aux_class_weight * aux
                logs["aux_class_fake"] = aux.detach()
            seeking = self.mode_seeking(fake, cond["labels"])
            if seeking is not None:
                loss = loss + seeking
                logs["mode_seeking"] = seeking.detach()
            if again is not None:  # each clip against itself with another motion: pairs by index
                pairs = torch.arange(again.shape[0], device=again.device).repeat(2)
                motion = lcfg.motion_seeking * mode_seeking_loss(torch.cat([fake[:again.shape[0]], again]), pairs)
                loss = loss + motion
                logs["motion_seeking"] = motion.detach()
            if self.use_category:
                loss_cat = self._category_loss(cat_g, action)
                loss = loss + lcfg.category_weight * loss_cat
                logs["loss_category_g"] = loss_cat.detach()
            logs["loss_g"] = loss.detach()
            return self._with_norm(logs, "grad_norm_g",
                                   self.ctx.backward_step(loss, self.opt_g, self.G, name="generator"))

    @staticmethod
    def _with_norm(logs: dict, name: str, norm) -> dict:
        """``logs`` with the gradient norm the loop reported (None when it does not measure it)."""
        if norm is not None:
            logs[name] = norm
        return logs

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The periodic grid: EMA generator, labels / captions cycling through the data's."""
        labels, captions = self.default_conditions(n)
        return sample_mocogan(self.standing_ema(), n, generator, labels, captions, audio=self.default_audio(n))
