"""A network together with the conditioner it owns: the one conditioning mechanism of every family.

Each conditioned network (a GAN generator, a projection discriminator, a token prior) learns
its own embedding of the condition, as a projection discriminator does (Miyato & Koyama 2018),
so it is checkpointed as one module with stable state-dict keys ``net.*`` and
``conditioner.*``. The condition is embedded once per forward and handed to the network as
``cond`` (``[B, D]``), so several inputs judged in one forward (real and fake clips) share one
draw of the condition dropout and DDP sees one forward per backward.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from videosynth.conditioning import ConditionConfig, build_conditioner
from videosynth.conditioning.base import Condition
from videosynth.errors import ConfigError


def null_inputs(n: int, labels: torch.Tensor | None, captions: list[str] | None) -> tuple[torch.Tensor, list[str]]:
    """``(labels int64 [n], captions [n])`` with the null condition (-1 / "") where none was given.

    Raises:
        ConfigError: labels or captions for another number of clips than ``n``.
    """
    labels = torch.full((n,), -1, dtype=torch.long) if labels is None else labels.long()
    captions = [""] * n if captions is None else list(captions)
    if labels.shape[0] != n or len(captions) != n:
        raise ConfigError(f"got {labels.shape[0]} labels and {len(captions)} captions for {n} clips")
    return labels, captions


class ConditionedNet(nn.Module):
    """Base of every network a :class:`Conditioned` wraps: what of the condition it takes besides
    the pooled vector ``cond [B, D]``. Subclasses set these per instance from their config.

    takes_context: the condition's token sequence, ``context [B, L, D]`` and ``context_mask [B, L]``
    (cross-attention). takes_cond_frames: the sound's per-frame features, ``cond_frames [B, T, D]``.
    lora_targets: the layers :func:`videosynth.models.lora.add_adapters` adapts when none are named.
    """

    takes_context: bool = False
    takes_cond_frames: bool = False
    # suffixes of the names of the linear layers a LoRA fine-tune adapts by default (models/lora.py)
    lora_targets: tuple[str, ...] = ()


class Conditioned(nn.Module):
    """``net`` and its ``conditioner`` (or None): ``forward(*inputs, labels=, captions=, audio=, **kw)``.

    Returns ``net(x, cond=cond, **kw)`` for one input, or a tuple of those for several. A
    :class:`ConditionedNet` with ``takes_context = True`` also gets the condition's token sequence,
    ``context=[B, L, D]`` and ``context_mask=[B, L]`` (True = valid), from the same draw; one
    with ``takes_cond_frames = True`` gets the per-frame features of a sound condition,
    ``cond_frames=[B, T, D]`` (None without sound). ``labels`` int64 ``[B]`` (-1 = none),
    ``captions`` (``""`` = none) and ``audio`` float32 ``[B, S]`` may be omitted: they default
    to the null condition for ``B`` = the first input's batch size (or the ``int`` the first
    input is, for generators that take a clip count).
    """

    def __init__(self, net: ConditionedNet, conditioner: nn.Module | None):
        super().__init__()
        self.net = net
        self.conditioner = conditioner

    def condition(self, labels: torch.Tensor | None = None, captions: list[str] | None = None,
                  n: int | None = None, force_null: bool = False, audio: torch.Tensor | None = None,
                  tokens: bool = False):
        """The :class:`~videosynth.conditioning.base.Condition` of ``n`` clips (None for an unconditional network)."""
        if self.conditioner is None:
            if audio is not None:
                raise ConfigError("audio was given but this model was trained without condition.audio")
            return None
        if n is None:
            n = labels.shape[0] if labels is not None else len(captions) if captions is not None else audio.shape[0]
        labels, captions = null_inputs(n, labels, captions)
        return self.conditioner.encode(labels, captions, audio=audio, force_null=force_null, tokens=tokens)

    def net_inputs(self, c: Condition | None) -> dict:
        """The keyword arguments through which the network takes the condition ``c``: ``cond``, and
        ``context`` / ``context_mask`` / ``cond_frames`` where it takes those."""
        kwargs = {"cond": None if c is None else c.pooled}
        if c is not None and self.net.takes_context:
            kwargs.update(context=c.tokens, context_mask=c.mask)
        if self.net.takes_cond_frames:
            kwargs["cond_frames"] = None if c is None else c.frames
        return kwargs

    def forward(self, *inputs, labels: torch.Tensor | None = None, captions: list[str] | None = None,
                audio: torch.Tensor | None = None, force_null: bool = False, condition: Condition | None = None,
                **kwargs):
        """``condition``: a draw made before (:meth:`condition`, ``tokens`` as the network takes them), used
        instead of a new one -- for a forward that must see the condition other forwards saw."""
        first = inputs[0]
        n = first if isinstance(first, int) else first.shape[0]
        # one condition draw for every input: pooled vector, tokens for cross-attention, per-frame features
        c = condition if condition is not None else self.condition(labels, captions, n, force_null, audio,
                                                                   tokens=self.net.takes_context)
        kwargs = {**kwargs, **self.net_inputs(c)}
        outs = tuple(self.net(x, **kwargs) for x in inputs)
        return outs[0] if len(outs) == 1 else outs


def cat_conditions(a: Condition, b: Condition) -> Condition:
    """Two draws of a condition of ``B`` clips as one of ``2B`` (``a``'s rows first): token sequences of
    different lengths are padded (masked), one per-frame feature standing for every frame is repeated."""
    def cat_tokens(x, y, pad):
        if x is None:
            return None
        length = max(x.shape[1], y.shape[1])
        fill = [0, 0] * (x.dim() - 2)
        x, y = (torch.nn.functional.pad(z, (*fill, 0, length - z.shape[1]), value=pad) for z in (x, y))
        return torch.cat([x, y])

    def cat_frames(x, y):
        if x is None:
            return None
        frames = max(x.shape[1], y.shape[1])
        return torch.cat([x.expand(-1, frames, -1), y.expand(-1, frames, -1)])  # (2B, T, D)

    return Condition(torch.cat([a.pooled, b.pooled]), cat_tokens(a.tokens, b.tokens, 0.0),
                     cat_tokens(a.mask, b.mask, False), cat_frames(a.frames, b.frames))


def conditioner_of(condition: ConditionConfig | None) -> nn.Module | None:
    """The conditioner ``condition`` describes; None for no section or ``kind: none`` without sound."""
    return build_conditioner(condition) if condition is not None else None


def conditioned(make_net: Callable[[], nn.Module], condition: ConditionConfig | None) -> Conditioned:
    """The network ``make_net()`` builds with the conditioner ``condition`` describes (none for
    ``kind: none`` without sound, or no section).

    Every family's ``build_modules`` builds its checkpointed networks through this, so the
    objective that trains them and the pipeline that loads them build the same modules. The
    conditioner is built first, then the network: the order of their draws from the global RNG,
    which fixes a seeded run's initial weights.
    """
    conditioner = conditioner_of(condition)
    return Conditioned(make_net(), conditioner)


def fit_cond_dim(model_cfg, condition_cfg):
    """The model config with ``cond_dim`` following the conditioner's ``dim`` (0 without a condition).

    A model config leaves ``cond_dim`` at 0 to follow the condition section; any other value
    must agree with it.

    Raises:
        ConfigError: ``model.cond_dim`` disagrees with ``condition.dim`` or with ``condition.kind: none``.
    """
    conditional = condition_cfg is not None and (condition_cfg.kind != "none" or condition_cfg.audio)
    if conditional and model_cfg.cond_dim == 0:
        return dataclasses.replace(model_cfg, cond_dim=condition_cfg.dim)
    if conditional and model_cfg.cond_dim != condition_cfg.dim:
        raise ConfigError(f"model.cond_dim={model_cfg.cond_dim} differs from condition.dim={condition_cfg.dim}; "
                          "leave model.cond_dim at 0 to follow the conditioner")
    if not conditional and model_cfg.cond_dim != 0:
        raise ConfigError(f"model.cond_dim={model_cfg.cond_dim} but condition.kind is none; "
                          "set model.cond_dim: 0 or choose a condition kind")
    return model_cfg


def fit_audio_dim(model_cfg, condition_cfg):
    """The model config with ``audio_dim`` (per-frame sound features) following ``condition.audio``.

    Raises:
        ConfigError: ``model.audio_dim`` set by hand to disagree with the condition section.
    """
    wanted = condition_cfg.dim if condition_cfg is not None and condition_cfg.audio else 0
    if model_cfg.audio_dim not in (0, wanted):
        raise ConfigError(f"model.audio_dim={model_cfg.audio_dim} differs from the sound condition "
                          f"({'condition.dim=' + str(wanted) if wanted else 'condition.audio is false'}); leave it at 0")
    return dataclasses.replace(model_cfg, audio_dim=wanted)
