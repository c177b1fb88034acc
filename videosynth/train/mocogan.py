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

Sampling: :func:`content_motion_grid` (rows share content, columns share motion) and
``MoCoGANObjective.generate`` (``videosynth sample``), which can roll the recurrent
motion out past the training length.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from videosynth.conditioning import ConditionConfig, build_conditioner
from videosynth.data import DataConfig
from videosynth.errors import ConfigError, DataError
from videosynth.losses import add_instance_noise, annealed_noise_std, get_gan_loss
from videosynth.models.mocogan import (
    PRESETS,
    ImageDiscriminator,
    MoCoGANConfig,
    MoCoGANGenerator,
    VideoDiscriminator,
    sample_frames,
)
from videosynth.train.gan import requires_grad, trainable
from videosynth.train.loop import EMA, Context, Objective, RunConfig, TrainConfig, unwrap

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
    image_weight: float = 1.0  # weight of the D_I terms (its own loss and the generator's)
    video_weight: float = 1.0  # weight of the D_V terms
    category_weight: float = 1.0  # cross-entropy of the action head (models with num_actions > 0)
    category_source: str = "fake"  # "fake": InfoGAN on sampled codes; "real": labels of real clips
    image_frames: int = 1  # random frames per clip shown to D_I
    instance_noise: float = 0.0  # std of Gaussian noise added to every discriminator input at step 0
    instance_noise_steps: int = 0  # anneal the std linearly to 0 over this many steps (0 = keep it)


@dataclass
class MoCoGANOptimConfig:
    """Section ``optim:``: one Adam per network (the paper's code: lr 2e-4, betas (0.5, 0.999), wd 1e-5)."""

    lr_g: float = PAPER_LR
    lr_d_image: float = PAPER_LR
    lr_d_video: float = PAPER_LR
    beta1: float = PAPER_BETA1
    beta2: float = 0.999
    weight_decay: float = PAPER_WEIGHT_DECAY


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


def model_config(cfg: MoCoGANRunConfig) -> MoCoGANConfig:
    """The run's model config with ``cond_dim`` filled from the condition section.

    Raises:
        ConfigError: ``model.cond_dim`` disagrees with ``condition.dim``, or the clip size of
        ``model`` and ``data`` differ.
    """
    model = cfg.model
    conditional = cfg.condition is not None and cfg.condition.kind != "none"
    if conditional and model.cond_dim == 0:
        model = dataclasses.replace(model, cond_dim=cfg.condition.dim)
    elif conditional and model.cond_dim != cfg.condition.dim:
        raise ConfigError(
            f"model.cond_dim={model.cond_dim} but condition.dim={cfg.condition.dim}: leave model.cond_dim at 0"
        )
    elif not conditional and model.cond_dim != 0:
        raise ConfigError(f"model.cond_dim={model.cond_dim} needs a condition: set condition.kind or cond_dim 0")
    for key in ("frames", "size"):
        if hasattr(cfg.data, key) and getattr(cfg.data, key) != getattr(model, key):
            raise ConfigError(
                f"model.{key}={getattr(model, key)} but data.{key}={getattr(cfg.data, key)}: set both to one value"
            )
    return model


# ----------------------------------------------------------------------------- sampling


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of Gaussian codes ``a, b [D]`` at fractions ``t [S]`` -> ``[S, D]``."""
    cos = (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6:  # (nearly) parallel codes: plain linear interpolation
        return (1 - t)[:, None] * a + t[:, None] * b  # (S, D)
    wa = torch.sin((1 - t) * omega) / torch.sin(omega)  # (S,)
    wb = torch.sin(t * omega) / torch.sin(omega)  # (S,)
    return wa[:, None] * a + wb[:, None] * b  # (S, D)


def _broadcast_rows(x: torch.Tensor | None, rows: int, cols: int, device: torch.device) -> torch.Tensor | None:
    """A condition given once ``[D]`` / ``[1, D]``, per row ``[rows, D]`` or per clip -> ``[rows*cols, D]``."""
    if x is None:
        return None
    n = rows * cols
    x = x.reshape(-1, x.shape[-1]).to(device)  # (k, D)
    if x.shape[0] == 1:
        return x.expand(n, -1)  # (rows*cols, D)
    if x.shape[0] == rows and rows != n:
        return x.repeat_interleave(cols, dim=0)  # (rows*cols, D)
    if x.shape[0] != n:
        raise ValueError(f"cond must hold 1, {rows} or {n} rows, got {x.shape[0]}")
    return x


def _broadcast_actions(action: torch.Tensor | int | None, n: int, device: torch.device) -> torch.Tensor | None:
    if action is None:
        return None
    if isinstance(action, int):
        return torch.full((n,), action, dtype=torch.long, device=device)
    return action.to(device)


def _pad_rows(x: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Repeat the last row of ``x [k, ...]`` up to ``n`` rows (fills the last, partial grid row)."""
    if x is None or x.shape[0] >= n:
        return x
    return torch.cat([x, x[-1:].expand(n - x.shape[0], *x.shape[1:])])


def content_motion_grid(
    generator: MoCoGANGenerator,
    rows: int,
    cols: int,
    frames: int | None = None,
    cond: torch.Tensor | None = None,
    seed: int | torch.Generator = 0,
    action: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """A rows x cols grid of clips: every row shares one content code, every column one motion.

    Row ``r`` uses content code ``r``; column ``c`` uses motion noise ``c`` (and, for
    models with an action code, action ``c % num_actions`` unless ``action`` is given), so
    reading across a row shows one appearance in different motions and reading down a
    column one motion in different appearances. Call it on an eval-mode generator.

    Args:
        generator: the MoCoGAN generator (its EMA copy for best results).
        rows, cols: grid size.
        frames: clip length (default: the training length; longer rolls the motion out).
        cond: condition embedding ``[D]``, ``[1, D]`` (all clips), ``[rows, D]`` (per row) or
            ``[rows * cols, D]``; required when the generator is conditional.
        seed: an int or a ``torch.Generator`` for the codes.
        action: int (all clips) or int64 ``[rows * cols]``.

    Returns:
        ``float32 [rows * cols, C, T, H, W]`` in ``[-1, 1]``, row-major (clip ``r * cols + c``);
        ``videosynth.io.write_grid(path, grid, nrow=cols)`` lays it out.
    """
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    n = rows * cols
    frames = frames or generator.cfg.frames
    content = generator.sample_content(rows, g)  # (rows, Dc)
    noise = generator.sample_motion_noise(cols, frames, g)  # (cols, T, E)
    z_content = content.repeat_interleave(cols, dim=0)  # (rows*cols, Dc): clip r*cols+c -> row r
    z_noise = noise.repeat(rows, 1, 1)  # (rows*cols, T, E): clip r*cols+c -> column c
    cond = _broadcast_rows(cond, rows, cols, generator.device)
    if generator.cfg.num_actions > 0 and action is None:
        action = torch.arange(cols).repeat(rows) % generator.cfg.num_actions  # (rows*cols,)
    action = _broadcast_actions(action, n, generator.device)
    with torch.no_grad():
        video, _ = generator(n, frames, cond=cond, z_content=z_content, z_motion_noise=z_noise, action=action)
    return video  # (rows*cols, C, T, H, W)


def content_interpolation(
    generator: MoCoGANGenerator,
    rows: int,
    steps: int,
    frames: int | None = None,
    cond: torch.Tensor | None = None,
    seed: int | torch.Generator = 0,
    action: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Rows of ``steps`` clips moving from one content code to another under one fixed motion.

    Row ``r`` draws two content codes and one motion noise and interpolates the content
    spherically in ``steps`` clips, so only appearance changes along the row. Arguments
    as in :func:`content_motion_grid` (``cond`` / ``action``: one, per row or per clip).

    Returns:
        ``float32 [rows * steps, C, T, H, W]`` in ``[-1, 1]``, row-major.
    """
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    n = rows * steps
    frames = frames or generator.cfg.frames
    ends = generator.sample_content(2 * rows, g).reshape(rows, 2, -1)  # (rows, 2, Dc)
    noise = generator.sample_motion_noise(rows, frames, g)  # (rows, T, E)
    t = torch.linspace(0, 1, steps, device=ends.device)  # (steps,)
    z_content = torch.cat([_slerp(e[0], e[1], t) for e in ends])  # (rows*steps, Dc)
    z_noise = noise.repeat_interleave(steps, dim=0)  # (rows*steps, T, E): one motion per row
    cond = _broadcast_rows(cond, rows, steps, generator.device)
    if generator.cfg.num_actions > 0 and action is None:
        action = (torch.arange(rows) % generator.cfg.num_actions).repeat_interleave(steps)  # (rows*steps,)
    action = _broadcast_actions(action, n, generator.device)
    with torch.no_grad():
        video, _ = generator(n, frames, cond=cond, z_content=z_content, z_motion_noise=z_noise, action=action)
    return video  # (rows*steps, C, T, H, W)


# ----------------------------------------------------------------------------- modules


class ConditionedGenerator(nn.Module):
    """The MoCoGAN generator with its own conditioner (both trained by the generator's optimiser).

    ``forward(n, labels int64 [n] | None, captions list[str] | None, **kw)`` embeds the
    condition and calls :class:`MoCoGANGenerator` (``kw``: ``num_frames``, ``generator``,
    ``z_content``, ``z_motion_noise``, ``action``); returns ``(video [n, C, T, H, W] in
    [-1, 1], codes)``. ``condition(labels, captions)`` gives the embedding ``[n, D]`` alone.
    """

    def __init__(self, net: MoCoGANGenerator, conditioner: nn.Module | None):
        super().__init__()
        self.net = net
        self.conditioner = conditioner

    def condition(self, labels: torch.Tensor | None, captions: list[str] | None) -> torch.Tensor | None:
        return None if self.conditioner is None else self.conditioner(labels, captions)  # (n, D)

    def forward(self, n: int, labels=None, captions=None, **kwargs):
        return self.net(n, cond=self.condition(labels, captions), **kwargs)


class ConditionedDiscriminator(nn.Module):
    """A MoCoGAN discriminator with its own conditioner (projection embedding, Miyato & Koyama 2018).

    ``forward(*inputs, labels=None, captions=None, repeat=1)`` embeds the condition once and
    returns ``tuple(net(x, cond) for x in inputs)``, so real and fake share one draw of the
    condition dropout and DDP sees one forward per backward. ``repeat=k`` repeats each
    clip's condition for its ``k`` frames (image discriminator on ``[B * k, C, H, W]``).
    """

    def __init__(self, net: nn.Module, conditioner: nn.Module | None):
        super().__init__()
        self.net = net
        self.conditioner = conditioner

    def forward(self, *inputs: torch.Tensor, labels=None, captions=None, repeat: int = 1) -> tuple:
        cond = None
        if self.conditioner is not None:
            cond = self.conditioner(labels, captions)  # (B, D)
            if repeat > 1:
                cond = cond.repeat_interleave(repeat, dim=0)  # (B*k, D): frame i*k+j belongs to clip i
        return tuple(self.net(x, cond) for x in inputs)


# ----------------------------------------------------------------------------- objective


class MoCoGANObjective(Objective):
    """Generator + image discriminator + video discriminator, each with its own Adam."""

    def __init__(self, cfg: MoCoGANRunConfig, ctx: Context):
        super().__init__(cfg, ctx)
        lcfg = cfg.loss
        if lcfg.category_source not in CATEGORY_SOURCES:
            raise ConfigError(f"loss.category_source must be one of {CATEGORY_SOURCES}, got '{lcfg.category_source}'")
        if lcfg.image_frames < 1:
            raise ConfigError(f"loss.image_frames must be >= 1, got {lcfg.image_frames}")
        self.gan = get_gan_loss(lcfg.kind)
        self.model_cfg = mcfg = model_config(cfg)
        self.use_category = mcfg.num_actions > 0 and mcfg.d_category_head and lcfg.category_weight > 0

        def conditioner():
            return build_conditioner(cfg.condition) if cfg.condition is not None else None

        generator = ConditionedGenerator(MoCoGANGenerator(mcfg), conditioner())
        image_d = ImageDiscriminator(mcfg.size, mcfg.d_image_width, mcfg.channels, mcfg.cond_dim, mcfg.d_spectral_norm)
        actions = mcfg.num_actions if mcfg.d_category_head else 0
        video_d = VideoDiscriminator(mcfg.size, mcfg.frames, mcfg.d_video_width, mcfg.channels, mcfg.cond_dim,
                                     actions, mcfg.d_spectral_norm)
        self.G = ctx.wrap(generator)
        self.D_I = ctx.wrap(ConditionedDiscriminator(image_d, conditioner()))
        self.D_V = ctx.wrap(ConditionedDiscriminator(video_d, conditioner()))

        ocfg = cfg.optim

        def adam(module: nn.Module, lr: float) -> torch.optim.Adam:
            # trainable parameters only: a frozen pretrained text encoder stays out
            return torch.optim.Adam(trainable(module), lr, (ocfg.beta1, ocfg.beta2), weight_decay=ocfg.weight_decay)

        self.opt_g = adam(self.G, ocfg.lr_g)
        self.opt_di = adam(self.D_I, ocfg.lr_d_image)
        self.opt_dv = adam(self.D_V, ocfg.lr_d_video)
        self.d_params = trainable(self.D_I) + trainable(self.D_V)  # frozen / thawed around the generator update
        self.ema_g = EMA(self.G, cfg.train.ema_decay)

    # ---- loop interface -------------------------------------------------------------------

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "image_discriminator": self.D_I, "video_discriminator": self.D_V}

    def ema_modules(self) -> dict[str, nn.Module]:
        return {"generator": self.ema_g.module}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "image_discriminator": self.opt_di, "video_discriminator": self.opt_dv}

    # ---- helpers -------------------------------------------------------------------------

    def noise_std(self, step: int) -> float:
        """Instance-noise std at ``step``: linear from ``loss.instance_noise`` to 0."""
        return annealed_noise_std(self.cfg.loss.instance_noise, self.cfg.loss.instance_noise_steps, step)

    @staticmethod
    def _noisy(x: torch.Tensor, std: float) -> torch.Tensor:
        return add_instance_noise(x, std)

    def _category_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over clips with a known category (target -1 = unknown; none known -> 0)."""
        known = target >= 0
        if not bool(known.any()):
            return logits.float().sum() * 0.0  # keeps the head in the graph (DDP expects every parameter)
        if int(target.max()) >= self.model_cfg.num_actions:
            raise DataError(
                f"label {int(target.max())} >= model.num_actions={self.model_cfg.num_actions}: with"
                " loss.category_source 'real' set model.num_actions to the dataset's class count"
            )
        return F.cross_entropy(logits.float()[known], target[known])

    # ---- one step ------------------------------------------------------------------------

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        ctx, lcfg, mcfg = self.ctx, self.cfg.loss, self.model_cfg
        real, labels, captions = batch["video"], batch["label"], batch["caption"]  # (B, C, T, H, W), (B,), [B]
        if tuple(real.shape[1:]) != (mcfg.channels, mcfg.frames, mcfg.size, mcfg.size):
            raise ConfigError(
                f"data clips are {tuple(real.shape[1:])} (C, T, H, W) but the model makes"
                f" {(mcfg.channels, mcfg.frames, mcfg.size, mcfg.size)}: set data.frames and data.size to match"
            )
        b, k = real.shape[0], lcfg.image_frames
        std = self.noise_std(step)
        action = unwrap(self.G).net.sample_actions(b)  # (B,) uniform action codes, or None

        # ---- fake clips -------------------------------------------------------------------
        with ctx.autocast():
            fake, _ = self.G(b, labels, captions, action=action)  # (B, C, T, H, W)
        fake = fake.float()
        real_frames = sample_frames(real, k)  # (B*k, C, H, W)
        fake_frames = sample_frames(fake, k)  # (B*k, C, H, W), same picks for the generator update

        # ---- image discriminator: single frames --------------------------------------------
        with ctx.autocast():
            di_real, di_fake = self.D_I(self._noisy(real_frames, std), self._noisy(fake_frames.detach(), std),
                                        labels=labels, captions=captions, repeat=k)  # (B*k,) each
        loss_di = lcfg.image_weight * self.gan.d_loss(di_real, di_fake)
        gn_di = ctx.backward_step(loss_di, self.opt_di, self.D_I, name="image_discriminator")

        # ---- video discriminator: whole clips (+ action category) ---------------------------
        with ctx.autocast():
            (dv_real, cat_real), (dv_fake, cat_fake) = self.D_V(
                self._noisy(real, std), self._noisy(fake.detach(), std), labels=labels, captions=captions
            )  # (B,), (B, A) | None
        loss_dv = lcfg.video_weight * self.gan.d_loss(dv_real, dv_fake)
        loss_cat_d = None
        if self.use_category:
            source = (cat_real, labels) if lcfg.category_source == "real" else (cat_fake, action)
            loss_cat_d = self._category_loss(*source)
            loss_dv = loss_dv + lcfg.category_weight * loss_cat_d
        elif cat_real is not None:  # head present but switched off: keep it in the graph for DDP
            loss_dv = loss_dv + 0.0 * (cat_real.float().sum() + cat_fake.float().sum())
        gn_dv = ctx.backward_step(loss_dv, self.opt_dv, self.D_V, name="video_discriminator")

        # ---- generator: through both frozen bare discriminators -----------------------------
        d_image, d_video = unwrap(self.D_I), unwrap(self.D_V)
        requires_grad(self.d_params, False)
        with ctx.autocast():
            (gi,) = d_image(self._noisy(fake_frames, std), labels=labels, captions=captions, repeat=k)  # (B*k,)
            ((gv, cat_g),) = d_video(self._noisy(fake, std), labels=labels, captions=captions)  # (B,), (B, A)
        loss_g_image = self.gan.g_loss(gi)
        loss_g_video = self.gan.g_loss(gv)
        loss_g = lcfg.image_weight * loss_g_image + lcfg.video_weight * loss_g_video
        loss_cat_g = None
        if self.use_category:
            loss_cat_g = self._category_loss(cat_g, action)
            loss_g = loss_g + lcfg.category_weight * loss_cat_g
        gn_g = ctx.backward_step(loss_g, self.opt_g, self.G, name="generator")
        requires_grad(self.d_params, True)
        self.ema_g.update(self.G)

        # ---- logs ------------------------------------------------------------------------
        logs = {
            "loss_g": loss_g.item(),
            "loss_g_image": loss_g_image.item(),
            "loss_g_video": loss_g_video.item(),
            "loss_d_image": loss_di.item(),
            "loss_d_video": loss_dv.item(),
            "d_image_real": di_real.float().mean().item(),
            "d_image_fake": di_fake.float().mean().item(),
            "d_video_real": dv_real.float().mean().item(),
            "d_video_fake": dv_fake.float().mean().item(),
        }
        if loss_cat_d is not None:
            logs["loss_category_d"] = loss_cat_d.item()
            logs["loss_category_g"] = loss_cat_g.item()
        for name, norm in (("grad_norm_g", gn_g), ("grad_norm_d_image", gn_di), ("grad_norm_d_video", gn_dv)):
            if norm is not None:
                logs[name] = norm
        if lcfg.instance_noise > 0:
            logs["instance_noise"] = std
        return logs

    # ---- sampling ------------------------------------------------------------------------

    def _condition(
        self, g: ConditionedGenerator, n: int, labels: torch.Tensor | None, captions: list[str] | None
    ) -> torch.Tensor | None:
        """Condition embedding ``[n, D]`` for sampling (null where labels are -1 / captions "")."""
        if g.conditioner is None:
            return None
        labels = torch.full((n,), -1, dtype=torch.long) if labels is None else labels.long()
        captions = [""] * n if captions is None else list(captions)
        if labels.shape[0] != n or len(captions) != n:
            raise ConfigError(f"got {labels.shape[0]} labels and {len(captions)} captions for {n} clips")
        return g.condition(labels.to(self.ctx.device), captions)  # (n, D)

    def _default_conditions(self, n: int) -> tuple[torch.Tensor | None, list[str] | None]:
        """Labels cycling through the classes, or captions cycling through the dataset's."""
        ccfg = self.cfg.condition
        if ccfg is None or ccfg.kind == "none":
            return None, None
        if ccfg.kind == "class":
            return torch.arange(n) % max(ccfg.num_classes, 1), None
        dataset = self.ctx.dataset
        captions = [c for c in (dataset.captions() if hasattr(dataset, "captions") else []) if c]
        return None, ([captions[i % len(captions)] for i in range(n)] if captions else None)

    @torch.no_grad()
    def generate(
        self,
        n: int,
        generator: torch.Generator,
        labels: torch.Tensor | None = None,
        captions: list[str] | None = None,
        frames: int | None = None,
        ema: bool = True,
        grid: str | tuple[int, int] | None = None,
        interpolate: int | None = None,
        action: torch.Tensor | int | None = None,
        **options,
    ) -> torch.Tensor:
        """Clips for ``videosynth sample``: ``float32 [n, C, T, H, W]`` in ``[-1, 1]``.

        ``frames`` may exceed the training length (the motion cell rolls on). Layouts (the
        clips are row-major with ``cols`` clips per row):

        * ``grid="content-motion"`` (or ``(rows, cols)``): :func:`content_motion_grid` with
          ``cols = ceil(sqrt(n))``, so it lines up with a square grid writer;
        * ``interpolate=STEPS``: :func:`content_interpolation`, ``STEPS`` clips per row.

        Labels / captions give one condition per clip. ``action``: int or int64 ``[n]`` for
        models with an action code (default: uniform, or per grid column). Options of other
        families (``temperature``, ``prime``, ...) are ignored.

        Raises:
            ConfigError: an unknown grid name, or labels / captions that do not match ``n``.
        """
        g = self.ema_g.module if ema else unwrap(self.G)
        was_training = g.training
        g.eval()
        try:
            cond = self._condition(g, n, labels, captions)
            net = g.net
            if isinstance(action, int):
                action = torch.full((n,), action, dtype=torch.long)
            if grid is not None or interpolate:
                if interpolate:
                    cols = int(interpolate)
                elif isinstance(grid, (tuple, list)):
                    cols = int(grid[1])
                elif grid == "content-motion":
                    cols = math.ceil(math.sqrt(n))
                else:
                    raise ConfigError(f"unknown mocogan grid '{grid}' (valid: content-motion)")
                rows = math.ceil(n / cols)
                cond_full = _pad_rows(cond, rows * cols)
                action_full = _pad_rows(action, rows * cols)
                layout = content_interpolation if interpolate else content_motion_grid
                return layout(net, rows, cols, frames, cond_full, generator, action_full)[:n]
            if action is None:
                action = net.sample_actions(n, generator)
            if action is not None:
                action = action.to(net.device)
            video, _ = net(n, frames, cond=cond, generator=generator, action=action)
            return video
        finally:
            g.train(was_training)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The periodic grid: EMA generator, labels / captions cycling through the data's."""
        labels, captions = self._default_conditions(n)
        return self.generate(n, generator, labels=labels, captions=captions)
