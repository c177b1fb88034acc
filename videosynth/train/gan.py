"""The GAN objective for the VideoGAN family on the shared training loop.

One training step (``GANObjective.train_step``) is:

1. ``n_critic`` discriminator updates, each on the step's real batch and fresh noise:
   ``loss_d = d_loss(D(x), D(G(z)))`` (+ WGAN-GP gradient penalty, + R1 penalty);
2. one generator update on the last critic update's fakes (the DCGAN tutorial's order):
   ``loss_g = g_loss(D(G(z)))`` (+ L1 mask sparsity for the
   two-stream generator, Vondrick et al. 2016; + optional paired reconstruction /
   perceptual terms);
3. the EMA generator is updated; periodic sample grids and ``generate`` use it with fixed
   noise, after re-estimating its BatchNorm statistics for the averaged weights.

Conditioning: the generator and the discriminator each own a conditioner built from
``condition:`` (so the projection discriminator learns its own class/text embedding,
as in Miyato & Koyama 2018), and fake clips are generated for the real batch's
labels/captions.

DDP: the discriminator judges real clips, fake clips and (for WGAN-GP) their interpolates in
one forward, so DDP sees one forward per backward and they share one draw of the condition
dropout; in the generator update the bare (unwrapped) discriminator is used with its
parameters frozen, so no gradient sync is expected for it there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from videosynth.config import at_least, checked, in_range, positive
from videosynth.augment import parse_policy
from videosynth.checkpoint import unwrap
from videosynth.conditioning import ConditionConfig
from videosynth.data import DataConfig
from videosynth.errors import ConfigError
from videosynth.losses import (
    RECONSTRUCTION_LOSSES,
    PerceptualLoss,
    get_gan_loss,
    gradient_norm_penalty,
    interpolates,
)
from videosynth.models.conditioned import fit_audio_dim, fit_cond_dim
from videosynth.models.videogan import PRESETS, VideoGANConfig, build_modules
from videosynth.sampling.gan import sample_videogan
from videosynth.train.config import RunConfig, TrainConfig
from videosynth.train.context import Context
from videosynth.train.ema import EMA
from videosynth.train.gan_common import GANObjectiveBase, check_clip_size, class_loss, with_class_head
from videosynth.train.objective import adam, trainable

# ----------------------------------------------------------------------------- config


@dataclass
class GANLossConfig:
    """Section ``loss:`` of a VideoGAN run."""

    kind: str = "non-saturating"  # a key of videosynth.losses.GAN_LOSSES
    n_critic: int = checked(1, at_least(1))  # discriminator updates per generator update (5 for WGAN-GP)
    gp_weight: float = checked(0.0, at_least(0))  # WGAN-GP lambda (10 with kind "wgan"); 0 = off
    r1_gamma: float = checked(0.0, at_least(0))  # R1 penalty gamma on real data; 0 = off
    mode_seeking: float = checked(0.0, at_least(0))  # weight of MSGAN's term against one clip per condition
    mask_weight: float = checked(0.0, at_least(0))  # L1 sparsity of the two-stream foreground mask (VGAN: 0.1)
    instance_noise: float = checked(0.0, at_least(0))  # std of Gaussian noise on every discriminator input at step 0
    instance_noise_steps: int = checked(0, at_least(0))  # anneal that std linearly to 0 over this many steps (0 = keep it)
    # DiffAugment on every discriminator input, e.g. "color,translation,cutout"; "" = off
    diffaug: str = ""
    # AC-GAN (Odena et al. 2017), class conditions only: D also learns to classify real clips
    # and G is rewarded when its clips are classified as their label; 0 = off
    aux_class_weight: float = checked(0.0, at_least(0))
    # Paired terms between G(z | c_i) and real clip i: only meaningful when the condition
    # pins the clip down (e.g. overfitting checks); 0 = off.
    recon_weight: float = checked(0.0, at_least(0))
    recon_kind: str = "l1"  # "l1" | "l2"
    perceptual_weight: float = checked(0.0, at_least(0))  # LPIPS from local weights (MissingWeightsError if absent)
    perceptual_path: str | None = None  # explicit LPIPS weights file; None = search the weights dirs


@dataclass
class GANOptimConfig:
    """Section ``optim:``: Adam for both networks (DCGAN / VGAN: lr 2e-4, betas (0.5, 0.999))."""

    lr_g: float = checked(2e-4, positive())
    lr_d: float = checked(2e-4, positive())
    beta1: float = checked(0.5, in_range(0, 1, high_open=True))
    beta2: float = checked(0.999, in_range(0, 1, high_open=True))
    decay_steps: int = checked(0, at_least(0))  # both rates: cosine to 0 over the last steps of train.steps


@dataclass
class VideoGANRunConfig(RunConfig):
    """A VideoGAN run: model, data, condition, loss, optimiser and loop settings."""

    family: str = "videogan"
    model: VideoGANConfig = field(default_factory=VideoGANConfig)
    data: DataConfig = field(default_factory=DataConfig)
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    loss: GANLossConfig = field(default_factory=GANLossConfig)
    optim: GANOptimConfig = field(default_factory=GANOptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    presets: ClassVar[dict] = {"model": PRESETS}


# ----------------------------------------------------------------------------- objective


def model_config(cfg: VideoGANRunConfig) -> VideoGANConfig:
    """The model config with ``cond_dim`` from ``condition.dim`` and the AC-GAN head's class count.

    Raises:
        ConfigError: the AC-GAN head without class labels, or a ``cond_dim`` that disagrees.
    """
    return fit_audio_dim(fit_cond_dim(with_class_head(cfg.model, cfg), cfg.condition), cfg.condition)


class GANObjective(GANObjectiveBase):
    """Alternating D/G updates with an EMA generator; see the module docstring."""

    takes_audio = True  # per-frame sound features bias every 3D generator layer; D judges clip and sound

    def __init__(self, cfg: VideoGANRunConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.model_cfg = model = model_config(cfg)
        if model.audio_dim:
            self.batch_keys = (*self.batch_keys, "audio")
        self.loss_cfg = cfg.loss
        self.gan_loss = get_gan_loss(cfg.loss.kind)
        self.diffaug = parse_policy(cfg.loss.diffaug)
        if cfg.loss.n_critic < 1:
            raise ConfigError(f"loss.n_critic={cfg.loss.n_critic} must be >= 1")
        if cfg.loss.recon_kind not in RECONSTRUCTION_LOSSES:
            raise ConfigError(f"loss.recon_kind='{cfg.loss.recon_kind}' is not one of {', '.join(RECONSTRUCTION_LOSSES)}")
        if cfg.loss.mask_weight > 0 and model.generator != "two-stream":
            raise ConfigError("loss.mask_weight > 0 needs model.generator: two-stream (only it has a mask)")
        check_clip_size(model.channels, model.frames, model.size, cfg.data)
        nets = build_modules(model, cfg.condition)
        self.G = ctx.wrap(nets["generator"])
        self.D = ctx.wrap(nets["discriminator"])
        self.d_params = trainable(self.D)  # frozen for the generator update, then thawed
        betas = (cfg.optim.beta1, cfg.optim.beta2)
        self.opt_g = adam(trainable(self.G), cfg.optim.lr_g, betas)
        self.opt_d = adam(self.d_params, cfg.optim.lr_d, betas)
        self.ema_g = EMA(self.G, cfg.train.ema_decay)
        self.perceptual = None
        if cfg.loss.perceptual_weight > 0:
            self.perceptual = PerceptualLoss(cfg.loss.perceptual_path).to(ctx.device)

    def modules(self):
        return {"generator": self.G, "discriminator": self.D}

    def ema_modules(self):
        return {"generator": self.ema_g.module}

    def optimizers(self):
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def base_rates(self) -> dict[str, float]:
        return {"generator": self.cfg.optim.lr_g, "discriminator": self.cfg.optim.lr_d}

    @property
    def noise_dim(self) -> int:
        return self.model_cfg.z_dim

    def _noise(self, n: int) -> torch.Tensor:
        # the global RNG: seeded per rank by the loop and restored on resume
        return torch.randn(n, self.model_cfg.z_dim, device=self.ctx.device)

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor, labels, captions, sound=None) -> dict:
        """The whole D loss of one critic update, from one discriminator forward.

        ``real`` / ``fake`` ``(B, C, T, H, W)`` as the discriminator sees them (``real`` from
        :meth:`real_d_input`, so R1 can differentiate by it). Returns ``loss``
        (float32 scalar) and the detached terms ``d_real``, ``d_fake`` (means), ``gp``, ``r1``,
        ``aux_class_real``.
        """
        lcfg = self.loss_cfg
        inputs = [real, fake.detach()]
        if lcfg.gp_weight > 0:
            inputs.append(interpolates(real, fake))  # (B, C, T, H, W) with grad, for WGAN-GP
        judged = self.D(*inputs, labels=labels, captions=captions, with_class=True,
                        **(sound or {}))  # one (logits, class) per input
        (d_real, class_real), (d_fake, _) = judged[0], judged[1]
        loss = self.gan_loss.d_loss(d_real, d_fake)
        out = {"d_real": d_real.detach().float().mean(), "d_fake": d_fake.detach().float().mean()}
        if lcfg.aux_class_weight > 0:
            aux = class_loss(class_real, labels)
            loss = loss + lcfg.aux_class_weight * aux
            out["aux_class_real"] = aux.detach()
        if lcfg.gp_weight > 0:
            gp = gradient_norm_penalty(judged[2][0], inputs[2], weight=lcfg.gp_weight)
            loss = loss + gp
            out["gp"] = gp.detach()
        r1 = self.r1(d_real, real)
        if r1 is not None:
            loss = loss + r1
            out["r1"] = r1.detach()
        out["loss"] = loss
        return out

    def train_step(self, batch: dict, step: int) -> dict:
        real, labels, captions = batch["video"], batch["label"], batch["caption"]
        n = real.shape[0]
        lcfg = self.loss_cfg
        sound = {"audio": batch["audio"]} if self.model_cfg.audio_dim else {}  # (B, S): fakes are made for it
        metrics: dict = {}
        std = self.noise_std(step)
        self.decay_rates(step)

        # ---- discriminator: n_critic updates on this batch, fresh noise each ----------------
        # The last critic update's fakes are generated with grad and reused by the generator
        # update (as in the DCGAN tutorial), which saves one generator forward per step.
        for i in range(lcfg.n_critic):
            last = i == lcfg.n_critic - 1
            with torch.set_grad_enabled(last), self.ctx.autocast():
                parts = self.G(self._noise(n), labels=labels, captions=captions, return_parts=True, **sound)
            with self.ctx.autocast():
                d_out = self.discriminator_loss(self.real_d_input(real, std),
                                                self.d_input(parts["video"].detach().float(), std), labels, captions,
                                                sound)
            grad_d = self.ctx.backward_step(d_out["loss"], self.opt_d, self.D, name="discriminator")
        metrics["loss_d"] = d_out.pop("loss").detach()
        metrics.update(d_out)
        if grad_d is not None:
            metrics["grad_norm_d"] = grad_d

        # ---- generator: one update through the frozen bare discriminator --------------------
        with self.frozen_discriminators():
            fake = parts["video"].float()  # (B, C, T, H, W)
            with self.ctx.autocast():
                d_fake, class_fake = unwrap(self.D)(self.d_input(fake, std), labels=labels, captions=captions,
                                                    with_class=True, **sound)  # (B,), (B, K)
            loss_adv = self.gan_loss.g_loss(d_fake)
            loss_g = loss_adv
            metrics["loss_g_adv"] = loss_adv.detach()
            if lcfg.aux_class_weight > 0:
                aux = class_loss(class_fake, labels)
                loss_g = loss_g + lcfg.aux_class_weight * aux
                metrics["aux_class_fake"] = aux.detach()
            seeking = self.mode_seeking(fake, labels)
            if seeking is not None:
                loss_g = loss_g + seeking
                metrics["mode_seeking"] = seeking.detach()
            if lcfg.mask_weight > 0:
                mask_l1 = parts["mask"].float().abs().mean()
                loss_g = loss_g + lcfg.mask_weight * mask_l1
                metrics["mask_l1"] = mask_l1.detach()
            if lcfg.recon_weight > 0:
                recon = RECONSTRUCTION_LOSSES[lcfg.recon_kind](fake, real)
                loss_g = loss_g + lcfg.recon_weight * recon
                metrics["recon"] = recon.detach()
            if self.perceptual is not None:
                perceptual = self.perceptual(fake, real)
                loss_g = loss_g + lcfg.perceptual_weight * perceptual
                metrics["perceptual"] = perceptual.detach()
            grad_g = self.ctx.backward_step(loss_g, self.opt_g, self.G, name="generator")
        self.ema_g.update(self.G)
        metrics["loss_g"] = loss_g.detach()
        metrics["d_fake_g"] = d_fake.detach().float().mean()
        if grad_g is not None:
            metrics["grad_norm_g"] = grad_g
        if std > 0:
            metrics["instance_noise"] = std
        return metrics

    # ---- periodic samples ---------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """EMA-generator clips from fixed noise, conditions cycling: float ``(n, C, T, H, W)`` in ``[-1, 1]``."""
        labels, captions = self.default_conditions(n)
        return sample_videogan(self.standing_ema(), n, self.model_cfg.z_dim, generator, labels, captions,
                               audio=self.default_audio(n))
