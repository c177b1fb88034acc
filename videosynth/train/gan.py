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

DDP: the discriminator half of the objective is one module (:class:`DiscriminatorLoss`)
whose single forward computes the whole discriminator loss, so DDP sees one forward per
backward; in the generator update the bare (unwrapped) discriminator is used with its
parameters frozen, so no gradient sync is expected for it there.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from videosynth.augment import diff_augment, parse_policy
from videosynth.conditioning import ConditionConfig, build_conditioner
from videosynth.data import DataConfig
from videosynth.errors import ConfigError
from videosynth.losses import (
    RECONSTRUCTION_LOSSES,
    add_instance_noise,
    annealed_noise_std,
    PerceptualLoss,
    get_gan_loss,
    gradient_penalty,
    r1_penalty,
)
from videosynth.models.videogan import GENERATORS, PRESETS, Discriminator, VideoGANConfig
from videosynth.train.loop import EMA, Context, Objective, RunConfig, TrainConfig, unwrap

# Standing BatchNorm statistics of the EMA generator: batches x clips of fixed-seed noise.
STANDING_BATCHES = 8
STANDING_BATCH = 16
STANDING_SEED = 0

# ----------------------------------------------------------------------------- config


@dataclass
class GANLossConfig:
    """Section ``loss:`` of a VideoGAN run."""

    kind: str = "non-saturating"  # a key of videosynth.losses.GAN_LOSSES
    n_critic: int = 1  # discriminator updates per generator update (5 for WGAN-GP)
    gp_weight: float = 0.0  # WGAN-GP lambda (10 with kind "wgan"); 0 = off
    r1_gamma: float = 0.0  # R1 penalty gamma on real data; 0 = off
    mask_weight: float = 0.0  # L1 sparsity of the two-stream foreground mask (VGAN: 0.1)
    instance_noise: float = 0.0  # std of Gaussian noise on every discriminator input at step 0
    instance_noise_steps: int = 0  # anneal that std linearly to 0 over this many steps (0 = keep it)
    # DiffAugment on every discriminator input, e.g. "color,translation,cutout"; "" = off
    diffaug: str = ""
    # AC-GAN (Odena et al. 2017), class conditions only: D also learns to classify real clips
    # and G is rewarded when its clips are classified as their label; 0 = off
    aux_class_weight: float = 0.0
    # Paired terms between G(z | c_i) and real clip i: only meaningful when the condition
    # pins the clip down (e.g. overfitting checks); 0 = off.
    recon_weight: float = 0.0
    recon_kind: str = "l1"  # "l1" | "l2"
    perceptual_weight: float = 0.0  # LPIPS from local weights (MissingWeightsError if absent)
    perceptual_path: str | None = None  # explicit LPIPS weights file; None = search the weights dirs


@dataclass
class GANOptimConfig:
    """Section ``optim:``: Adam for both networks (DCGAN / VGAN: lr 2e-4, betas (0.5, 0.999))."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999


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


# ----------------------------------------------------------------------------- modules


class ConditionedGenerator(nn.Module):
    """A VideoGAN generator with its own conditioner: ``(z, labels, captions) -> video``.

    ``forward(z (B, z_dim), labels int64 (B,), captions list[str], return_parts=False,
    force_null=False)`` -> ``(B, C, T, H, W)`` in ``[-1, 1]`` (or the generator's parts dict).
    """

    def __init__(self, net: nn.Module, conditioner: nn.Module | None):
        super().__init__()
        self.net = net
        self.conditioner = conditioner

    def forward(self, z, labels=None, captions=None, return_parts: bool = False, force_null: bool = False):
        cond = None
        if self.conditioner is not None:
            cond = self.conditioner(labels, captions, force_null=force_null)  # (B, D)
        return self.net(z, cond, return_parts=return_parts)


class DiscriminatorLoss(nn.Module):
    """The discriminator with its own conditioner; ``forward`` computes the whole D loss.

    ``logits(videos (B, C, T, H, W) in [-1, 1], labels, captions) -> (B,)``;
    ``forward(real, fake, labels, captions) -> dict`` with ``loss`` (float32 scalar) and the
    detached terms ``d_real``, ``d_fake`` (means), ``gp``, ``r1``.
    """

    def __init__(self, net: Discriminator, conditioner: nn.Module | None, loss: GANLossConfig):
        super().__init__()
        self.net = net
        self.conditioner = conditioner
        self.gan_loss = get_gan_loss(loss.kind)
        self.gp_weight = loss.gp_weight
        self.r1_gamma = loss.r1_gamma
        self.aux_class_weight = loss.aux_class_weight

    def condition(self, labels, captions) -> torch.Tensor | None:
        return None if self.conditioner is None else self.conditioner(labels, captions)  # (B, D)

    def logits(self, videos: torch.Tensor, labels=None, captions=None) -> torch.Tensor:
        return self.net(videos, self.condition(labels, captions))

    def judge(self, videos: torch.Tensor, labels=None, captions=None):
        """``(logits (B,), class logits (B, K) or None)``; see :meth:`Discriminator.judge`."""
        return self.net.judge(videos, self.condition(labels, captions))

    def forward(self, real: torch.Tensor, fake: torch.Tensor, labels=None, captions=None) -> dict:
        cond = self.condition(labels, captions)
        if self.r1_gamma > 0:
            real = real.detach().requires_grad_(True)
        d_real, class_real = self.net.judge(real, cond)  # (B,), (B, K) or None
        d_fake = self.net(fake.detach(), cond)  # (B,)
        loss = self.gan_loss.d_loss(d_real, d_fake)
        out = {"d_real": d_real.detach().float().mean(), "d_fake": d_fake.detach().float().mean()}
        if self.aux_class_weight > 0:
            aux = class_loss(class_real, labels)
            loss = loss + self.aux_class_weight * aux
            out["aux_class_real"] = aux.detach()
        if self.gp_weight > 0:
            gp = gradient_penalty(self.net, real, fake, cond, weight=self.gp_weight)
            loss = loss + gp
            out["gp"] = gp.detach()
        if self.r1_gamma > 0:
            r1 = r1_penalty(d_real, real, gamma=self.r1_gamma)
            loss = loss + r1
            out["r1"] = r1.detach()
        out["loss"] = loss
        return out


def class_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the discriminator's class head, in float32; label -1 (unknown) is ignored."""
    if not bool((labels >= 0).any()):
        return class_logits.sum() * 0.0  # no known label in the batch: zero, but keeps the graph
    return F.cross_entropy(class_logits.float(), labels.to(class_logits.device), ignore_index=-1)


def requires_grad(params: list[nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


def trainable(module: nn.Module) -> list[nn.Parameter]:
    """Parameters that train (a frozen pretrained text encoder stays out)."""
    return [p for p in module.parameters() if p.requires_grad]


# ----------------------------------------------------------------------------- objective


class GANObjective(Objective):
    """Alternating D/G updates with an EMA generator; see the module docstring."""

    def __init__(self, cfg: VideoGANRunConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.model_cfg = _model_config(cfg)
        self.loss_cfg = cfg.loss
        self.diffaug = parse_policy(cfg.loss.diffaug)
        if cfg.loss.n_critic < 1:
            raise ConfigError(f"loss.n_critic={cfg.loss.n_critic} must be >= 1")
        if cfg.loss.recon_kind not in RECONSTRUCTION_LOSSES:
            raise ConfigError(f"loss.recon_kind='{cfg.loss.recon_kind}' is not one of {', '.join(RECONSTRUCTION_LOSSES)}")
        if cfg.loss.mask_weight > 0 and self.model_cfg.generator != "two-stream":
            raise ConfigError("loss.mask_weight > 0 needs model.generator: two-stream (only it has a mask)")
        model = self.model_cfg
        generator = ConditionedGenerator(GENERATORS[model.generator](model), build_conditioner(cfg.condition))
        discriminator = DiscriminatorLoss(Discriminator(model), build_conditioner(cfg.condition), cfg.loss)
        self.G = ctx.wrap(generator)
        self.D = ctx.wrap(discriminator)
        self.d_params = trainable(self.D)  # frozen for the generator update, then thawed
        betas = (cfg.optim.beta1, cfg.optim.beta2)
        self.opt_g = torch.optim.Adam(trainable(self.G), lr=cfg.optim.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=cfg.optim.lr_d, betas=betas)
        self.ema_g = EMA(self.G, cfg.train.ema_decay)
        self._standing: tuple | None = None  # (EMA version key, EMA copy with standing BN stats)
        self.perceptual = None
        if cfg.loss.perceptual_weight > 0:
            self.perceptual = PerceptualLoss(cfg.loss.perceptual_path).to(ctx.device)

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "discriminator": self.D}

    def ema_modules(self) -> dict[str, nn.Module]:
        return {"generator": self.ema_g.module}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def _noise(self, n: int) -> torch.Tensor:
        # the global RNG: seeded per rank by the loop and restored on resume
        return torch.randn(n, self.model_cfg.z_dim, device=self.ctx.device)

    def _d_input(self, videos: torch.Tensor, std: float) -> torch.Tensor:
        """What the discriminator sees: the clips with instance noise, then DiffAugment."""
        return diff_augment(add_instance_noise(videos, std), self.diffaug)

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        real, labels, captions = batch["video"], batch["label"], batch["caption"]
        _check_batch(real, self.model_cfg)
        n = real.shape[0]
        metrics: dict[str, float] = {}
        std = annealed_noise_std(self.loss_cfg.instance_noise, self.loss_cfg.instance_noise_steps, step)

        # ---- discriminator: n_critic updates on this batch, fresh noise each ----------------
        # The last critic update's fakes are generated with grad and reused by the generator
        # update (as in the DCGAN tutorial), which saves one generator forward per step.
        for i in range(self.loss_cfg.n_critic):
            last = i == self.loss_cfg.n_critic - 1
            with torch.set_grad_enabled(last), self.ctx.autocast():
                parts = self.G(self._noise(n), labels, captions, return_parts=True)
            with self.ctx.autocast():
                d_out = self.D(self._d_input(real, std), self._d_input(parts["video"].detach().float(), std),
                               labels, captions)
            grad_d = self.ctx.backward_step(d_out["loss"], self.opt_d, self.D, name="discriminator")
        metrics["loss_d"] = d_out["loss"].item()
        metrics.update({k: v.item() for k, v in d_out.items() if k != "loss"})
        if grad_d is not None:
            metrics["grad_norm_d"] = grad_d

        # ---- generator: one update through the frozen bare discriminator --------------------
        requires_grad(self.d_params, False)
        d_bare = unwrap(self.D)
        fake = parts["video"].float()  # (B, C, T, H, W)
        with self.ctx.autocast():
            d_fake, class_fake = d_bare.judge(self._d_input(fake, std), labels, captions)  # (B,), (B, K)
        loss_adv = d_bare.gan_loss.g_loss(d_fake)
        loss_g = loss_adv
        metrics["loss_g_adv"] = loss_adv.item()
        if self.loss_cfg.aux_class_weight > 0:
            aux = class_loss(class_fake, labels)
            loss_g = loss_g + self.loss_cfg.aux_class_weight * aux
            metrics["aux_class_fake"] = aux.item()
        if self.loss_cfg.mask_weight > 0:
            mask_l1 = parts["mask"].float().abs().mean()
            loss_g = loss_g + self.loss_cfg.mask_weight * mask_l1
            metrics["mask_l1"] = mask_l1.item()
        if self.loss_cfg.recon_weight > 0:
            recon = RECONSTRUCTION_LOSSES[self.loss_cfg.recon_kind](fake, real)
            loss_g = loss_g + self.loss_cfg.recon_weight * recon
            metrics["recon"] = recon.item()
        if self.perceptual is not None:
            perceptual = self.perceptual(fake, real)
            loss_g = loss_g + self.loss_cfg.perceptual_weight * perceptual
            metrics["perceptual"] = perceptual.item()
        grad_g = self.ctx.backward_step(loss_g, self.opt_g, self.G, name="generator")
        requires_grad(self.d_params, True)
        self.ema_g.update(self.G)
        metrics["loss_g"] = loss_g.item()
        metrics["d_fake_g"] = d_fake.detach().float().mean().item()
        if grad_g is not None:
            metrics["grad_norm_g"] = grad_g
        if std > 0:
            metrics["instance_noise"] = std
        return metrics

    # ---- sampling ---------------------------------------------------------------------------

    def _default_conditions(self, n: int) -> tuple[torch.Tensor | None, list[str] | None]:
        """Labels cycling through the classes / captions cycling through the data's captions."""
        kind = self.cfg.condition.kind
        if kind == "class":
            return torch.arange(n) % self.cfg.condition.num_classes, None
        if kind in ("text", "pretrained-text"):
            dataset = self.ctx.dataset
            captions = [c for c in (dataset.captions() if hasattr(dataset, "captions") else []) if c]
            if captions:
                return None, [captions[i % len(captions)] for i in range(n)]
        return None, None

    @torch.no_grad()
    def _standing_ema(self) -> nn.Module:
        """A copy of the EMA generator with BatchNorm statistics recomputed for its own weights.

        The EMA copies the live generator's running statistics, which belong to the live
        weights, not to the averaged ones (samples come out washed out); as in BigGAN
        (Brock et al. 2019, "standing statistics"), they are re-estimated from
        ``STANDING_BATCHES`` fixed-seed noise batches.  Cached until the EMA weights change.
        """
        ema = self.ema_g.module
        # every in-place update (EMA lerp_, checkpoint load) bumps a tensor's version counter
        key = tuple(t._version for t in ema.state_dict(keep_vars=True).values())
        if self._standing is not None and self._standing[0] == key:
            return self._standing[1]
        net = copy.deepcopy(ema)
        norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if norms:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the standing batches
            net.train()
            g = torch.Generator().manual_seed(STANDING_SEED)
            labels, captions = self._default_conditions(STANDING_BATCH)
            labels = torch.full((STANDING_BATCH,), -1) if labels is None else labels
            for _ in range(STANDING_BATCHES):
                z = torch.randn(STANDING_BATCH, self.model_cfg.z_dim, generator=g).to(self.ctx.device)
                net(z, labels.to(self.ctx.device), captions or [""] * STANDING_BATCH)
        net.eval()
        self._standing = (key, net)
        return net

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """EMA-generator clips from fixed noise: float ``(n, C, T, H, W)`` in ``[-1, 1]``."""
        labels, captions = self._default_conditions(n)
        return self.generate(n, generator, labels, captions)

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                 captions: list[str] | None = None, frames: int | None = None, ema: bool = True,
                 **options) -> torch.Tensor:
        """``n`` clips float ``(n, C, T, H, W)`` in ``[-1, 1]``; noise from ``generator`` (CPU).

        ``labels`` int64 ``(n,)`` (-1 = none) / ``captions`` for conditional runs; missing ones
        use the null condition.  Raises ConfigError for ``frames`` other than the trained
        length or unknown ``options`` (VideoGAN has no sampling controls).
        """
        if options:
            raise ConfigError(f"VideoGAN sampling has no option(s) {', '.join(sorted(options))}")
        if frames is not None and frames != self.model_cfg.frames:
            raise ConfigError(f"this VideoGAN generates {self.model_cfg.frames} frames; --frames {frames} "
                              "is not possible (the clip length is fixed by the architecture)")
        net = self._standing_ema() if ema else unwrap(self.G)
        z = torch.randn(n, self.model_cfg.z_dim, generator=generator).to(self.ctx.device)
        if labels is None:
            labels = torch.full((n,), -1, dtype=torch.long)
        if captions is None:
            captions = [""] * n
        was_training = net.training
        net.eval()
        try:
            video = net(z, labels.to(self.ctx.device), captions)
        finally:
            net.train(was_training)
        return video.float().clamp(-1, 1)


def _model_config(cfg: VideoGANRunConfig) -> VideoGANConfig:
    """The model config with ``cond_dim`` taken from ``condition.dim`` when conditioning is on."""
    model = cfg.model
    conditional = cfg.condition is not None and cfg.condition.kind != "none"
    if cfg.loss.aux_class_weight > 0:
        if not conditional or cfg.condition.kind != "class" or cfg.condition.num_classes < 1:
            raise ConfigError("loss.aux_class_weight > 0 (AC-GAN) needs condition.kind: class with known classes")
        model = dataclasses.replace(model, num_classes=cfg.condition.num_classes)
    if conditional and model.cond_dim == 0:
        return dataclasses.replace(model, cond_dim=cfg.condition.dim)
    if conditional and model.cond_dim != cfg.condition.dim:
        raise ConfigError(f"model.cond_dim={model.cond_dim} differs from condition.dim={cfg.condition.dim}; "
                          "leave model.cond_dim at 0 to follow the conditioner")
    if not conditional and model.cond_dim != 0:
        raise ConfigError(f"model.cond_dim={model.cond_dim} but condition.kind is none; "
                          "set model.cond_dim: 0 or choose a condition kind")
    return model


def _check_batch(real: torch.Tensor, model: VideoGANConfig) -> None:
    expected = (model.channels, model.frames, model.size, model.size)
    if tuple(real.shape[1:]) != expected:
        raise ConfigError(f"data clips are {tuple(real.shape[1:])} (C, T, H, W) but the model makes {expected}; "
                          f"set data.frames: {model.frames} and data.size: {model.size}")
