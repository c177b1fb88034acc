"""What the two GAN objectives (VideoGAN, MoCoGAN) share: the base class and its helpers.

Both alternate discriminator and generator updates, freeze the discriminators' trainable
parameters for the generator update (so DDP expects no gradient sync for them there), draw
fake clips for the real batch's conditions, anneal instance noise, keep an EMA generator, and
may train a classification head on the discriminator (AC-GAN labels / MoCoGAN action codes).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from videosynth.errors import ConfigError, DataError
from videosynth.losses import add_instance_noise, annealed_noise_std
from videosynth.train.objective import Objective


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

    def noise_std(self, step: int) -> float:
        """Instance-noise std at ``step``: linear from ``loss.instance_noise`` to 0."""
        return annealed_noise_std(self.cfg.loss.instance_noise, self.cfg.loss.instance_noise_steps, step)

    @staticmethod
    def noisy(x: torch.Tensor, std: float) -> torch.Tensor:
        return add_instance_noise(x, std)
