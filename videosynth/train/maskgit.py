"""Masked-token prior over a tokenizer's tokens (MaskGIT, Chang et al. 2022), on the shared loop.

Each step masks a share ``cos(pi/2 * r)``, ``r ~ U(0, 1)``, of every clip's tokens (at least one),
chosen at random, and trains the bidirectional prior to predict the masked tokens (cross-entropy
on masked positions only, as MaskGIT does). With probability ``loss.prefix_share`` a clip also
keeps a random number of its leading latent frames unmasked, so the prior learns to continue
clean observed frames, which priming and the sliding-window rollout give it (MAGVIT's
frame-prediction task). Tokenizer, token cache, conditioning, AdamW, EMA and warm-up are the
token-prior base's (:mod:`videosynth.train.latent_stage`); samples decode through the frozen
tokenizer (:func:`videosynth.pipelines.two_stage.token_clips`).

Logged: ``loss`` (nats per masked token), ``bits_per_token``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from videosynth.checkpoint import unwrap
from videosynth.config import checked, in_range
from videosynth.models.maskgit import PRESETS, MaskedPriorConfig, build_modules
from videosynth.pipelines.two_stage import token_clips
from videosynth.sampling import masked
from videosynth.sampling.masked import MaskedSampleConfig, mask_schedule
from videosynth.train.latent_stage import TokenPriorObjective, TokenRunConfig


@dataclass
class MaskedLossConfig:
    """Section ``loss:``: how training masks are drawn."""

    prefix_share: float = checked(0.2, in_range(0, 1))  # clips that keep leading latent frames unmasked


@dataclass
class MaskedRunConfig(TokenRunConfig):
    """A masked-prior run (``family: maskgit``) over the tokens of the vqvae run ``tokenizer_run``."""

    family: str = "maskgit"
    model: MaskedPriorConfig = field(default_factory=lambda: dataclasses.replace(PRESETS["shapes-32x32x8"]))
    loss: MaskedLossConfig = field(default_factory=MaskedLossConfig)
    sample: MaskedSampleConfig = field(default_factory=MaskedSampleConfig)

    presets: ClassVar[dict] = {"model": PRESETS}


def draw_mask(b: int, n: int, frame_tokens: int, prefix_share: float, device) -> torch.Tensor:
    """Training masks ``bool [b, n]`` (True = masked) from the global RNG (restored on resume).

    A clip masks ``ceil(cos(pi/2 r) * m)`` of its ``m`` maskable positions, at least one, at
    random; with probability ``prefix_share`` its first ``k ~ U{1, .., t - 1}`` latent frames are
    not maskable (``m = n - k * frame_tokens``).
    """
    t = n // frame_tokens
    prefix = torch.zeros(b, dtype=torch.long)
    if t > 1 and prefix_share > 0:
        keep = torch.rand(b) < prefix_share  # (b,)
        prefix = torch.where(keep, torch.randint(1, t, (b,)), prefix) * frame_tokens  # (b,) leading tokens kept
    maskable = n - prefix  # (b,)
    count = (mask_schedule(torch.rand(b)) * maskable).ceil().long().clamp(min=1)  # (b,)
    scores = torch.rand(b, n)  # (b, n); the positions with the lowest scores among the maskable are masked
    scores[torch.arange(n)[None, :] < prefix[:, None]] = 2.0  # never chosen
    rank = scores.argsort(1).argsort(1)  # (b, n) rank of each position's score
    return (rank < count[:, None]).to(device)  # (b, n)


class MaskedObjective(TokenPriorObjective):
    """Masked-token cross-entropy of a conditioned :class:`MaskedPrior`."""

    build_modules = staticmethod(build_modules)

    def loss(self, tokens: torch.Tensor, batch: dict) -> torch.Tensor:
        prior = unwrap(self.net).net
        b, n = tokens.shape
        mask = draw_mask(b, n, prior.frame_tokens, self.cfg.loss.prefix_share, tokens.device)  # (B, N)
        inputs = tokens.masked_fill(mask, prior.mask_id)  # (B, N)
        with self.ctx.autocast():
            logits = self.net(inputs, labels=batch["label"], captions=list(batch["caption"]),
                              audio=batch.get("audio"))  # (B, N, V)
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tokens.reshape(-1), reduction="none")
        weights = mask.reshape(-1).float()  # (B*N,)
        return (losses * weights).sum() / weights.sum()  # nats per masked token

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Periodic grid: EMA prior, labels cycling through the classes, decoded clips."""
        labels, captions = self.default_conditions(n)
        return token_clips(masked.generate, self.sampling_net(), self.tokenizer, n, generator, self.cfg.sample,
                           labels=labels, captions=captions, audio=self.default_audio(n))
