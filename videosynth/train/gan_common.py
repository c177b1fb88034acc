"""What the two GAN objectives (VideoGAN, MoCoGAN) share: the base class and its helpers.

Both alternate discriminator and generator updates, freeze the discriminators' trainable
parameters for the generator update (so DDP expects no gradient sync for them there), draw
fake clips for the real batch's conditions, anneal instance noise, keep an EMA generator, and
may train a classification head on the discriminator (AC-GAN labels / MoCoGAN action codes).
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from videosynth.augment import diff_augment
from videosynth.errors import ConfigError, DataError
from videosynth.losses import add_instance_noise, annealed_noise_std, mode_seeking_loss, r1_penalty
from videosynth.models.conditioned import Conditioned
from videosynth.sampling.gan import standing_labels, standing_statistics
from videosynth.train.objective import Objective, warmup_lr


def class_loss(logits: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """Cross-entropy of a classification head ``logits [B, K]`` in float32; label -1 (unknown) is ignored.

    With no known label in the batch the result is zero but keeps the head in the graph (DDP
    expects a gradient for every parameter).

    Raises:
        DataError: a label >= ``num_classes`` (the head is smaller than the data's class count).
    """
    if num_classes is not None and labels.device.type == "cpu" and int(labels.max()) >= num_classes:
        raise DataError(f"label {int(labels.max())} >= the head's {num_classes} classes: set the model's class / "
                        "action count to the dataset's class count")
    labels = labels.to(logits.device)
    known = (labels >= 0).sum().clamp(min=1)  # the mean over known labels, 0 with none, without a host sync
    return F.cross_entropy(logits.float(), labels, ignore_index=-1, reduction="sum") / known


def with_class_head(model, cfg):
    """``model`` (a GAN's model config) with its AC-GAN head sized to the run's classes when
    ``loss.aux_class_weight > 0``; unchanged otherwise.

    Raises:
        ConfigError: the AC-GAN head asked for without class labels.
    """
    if cfg.loss.aux_class_weight <= 0:
        return model
    cond = cfg.condition
    if cond is None or cond.kind != "class" or cond.num_classes < 1:
        raise ConfigError("loss.aux_class_weight > 0 (AC-GAN) needs condition.kind: class with known classes")
    return dataclasses.replace(model, num_classes=cond.num_classes)


def check_clip_size(channels: int, frames: int, size: int, data) -> None:
    """The one clip-size policy: the model's clip must be the data's, checked once at build.

    Raises:
        ConfigError: ``data.frames`` / ``data.size`` differ from the model's (one line, both values).
    """
    for key, want in (("frames", frames), ("size", size)):
        have = getattr(data, key, None)
        if have is not None and have != want:
            raise ConfigError(f"model.{key}={want} but data.{key}={have}: the model makes {channels}x{frames}x"
                              f"{size}x{size} clips (C, T, H, W); set data.{key}: {want} or pick a model preset "
                              f"of that {key}")


class GANObjectiveBase(Objective):
    """Shared parts of the GAN objectives; subclasses set ``G``, ``ema_g`` and ``d_params``."""

    d_params: list[nn.Parameter]
    diffaug: tuple[str, ...] = ()  # DiffAugment policy on every discriminator input (loss.diffaug)
    _standing: tuple[int, Conditioned] | None = None  # (EMA updates, EMA copy with standing BN stats)

    @property
    def noise_dim(self) -> int:
        """Size of the per-clip noise code standing statistics draw (VideoGAN: z; MoCoGAN: z_C)."""
        raise NotImplementedError

    def standing_ema(self) -> Conditioned:
        """The EMA generator with its own BatchNorm statistics; cached until the EMA is updated."""
        if self._standing is None or self._standing[0] != self.ema_g.updates:
            net = standing_statistics(self.ema_g.module, self.noise_dim, standing_labels(self.cfg.condition))
            self._standing = (self.ema_g.updates, net)
        return self._standing[1]

    def load_extra_state(self, state: dict) -> None:
        self._standing = None  # the EMA weights were replaced

    @contextlib.contextmanager
    def frozen_discriminators(self):
        """The discriminators' trainable parameters frozen for the generator update, then thawed."""
        for p in self.d_params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in self.d_params:
                p.requires_grad_(True)

    def real_d_input(self, real: torch.Tensor, std: float) -> torch.Tensor:
        """Real clips or frames as a discriminator sees them (:meth:`d_input`); with ``loss.r1_gamma``
        a leaf that records its gradient, which the R1 penalty differentiates D's output by."""
        x = self.d_input(real, std)
        return x.detach().requires_grad_(True) if self.cfg.loss.r1_gamma > 0 else x

    def r1(self, d_real: torch.Tensor, real_in: torch.Tensor) -> torch.Tensor | None:
        """R1 (Mescheder et al. 2018) of ``d_real`` at ``real_in`` (from :meth:`real_d_input`);
        None when ``loss.r1_gamma`` is 0."""
        gamma = self.cfg.loss.r1_gamma
        return r1_penalty(d_real, real_in, gamma=gamma) if gamma > 0 else None

    def mode_seeking(self, fake: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        """``loss.mode_seeking`` x :func:`~videosynth.losses.mode_seeking_loss` of the generator's
        clips (pairs of one class under a class condition); None when the weight is 0."""
        weight = self.cfg.loss.mode_seeking
        if weight <= 0:
            return None
        return weight * mode_seeking_loss(fake, labels if self.cfg.condition.kind == "class" else None)

    def base_rates(self) -> dict[str, float]:
        """Each optimiser's configured learning rate, by the name :meth:`optimizers` gives it."""
        raise NotImplementedError

    def decay_rates(self, step: int) -> None:
        """Every optimiser's rate at ``step``: its configured rate, then a cosine to 0 over the last
        ``optim.decay_steps`` of ``train.steps``. A GAN's discriminator and generator keep chasing
        each other at a constant rate, so where a run stops its samples can be mid-swing; the decay
        lets the pair settle. A function of the step alone, so a resumed run gets the same rates."""
        decay = self.cfg.optim.decay_steps
        if decay <= 0:
            return
        factor = warmup_lr(1.0, 0, step, decay, self.cfg.train.steps)
        base = self.base_rates()
        for name, opt in self.optimizers().items():
            for group in opt.param_groups:
                group["lr"] = base[name] * factor

    def noise_std(self, step: int) -> float:
        """Instance-noise std at ``step``: linear from ``loss.instance_noise`` to 0."""
        return annealed_noise_std(self.cfg.loss.instance_noise, self.cfg.loss.instance_noise_steps, step)

    @staticmethod
    def noisy(x: torch.Tensor, std: float) -> torch.Tensor:
        return add_instance_noise(x, std)

    def d_input(self, x: torch.Tensor, std: float) -> torch.Tensor:
        """What a discriminator sees: clips ``(B, C, T, H, W)`` or frames ``(N, C, H, W)`` with
        instance noise, then DiffAugment (``self.diffaug``; frames are augmented as one-frame clips)."""
        x = self.noisy(x, std)
        if x.dim() == 4:
            return diff_augment(x[:, :, None], self.diffaug)[:, :, 0]
        return diff_augment(x, self.diffaug)
