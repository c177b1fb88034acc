"""Autoregressive Transformer prior over VQ-VAE tokens, on the shared loop.

Second stage of VideoGPT (Yan et al. 2021): a frozen tokenizer (a ``vqvae`` run, named by
``tokenizer_run``) turns clips into token grids; the prior learns next-token prediction over
them. Tokens come either from a token cache written by ``videosynth tokenize`` (``tokens: DIR``,
see ``videosynth.data.tokens``) or are encoded on the fly from the batch's videos.

Conditioning: the prior owns a conditioner (``Conditioned(prior, conditioner)``) whose pooled
vector joins the prior's BOS token; it trains with the prior, and its condition dropout
(``condition.dropout``) trains the null condition for classifier-free guidance.
``model.vocab_size``, ``model.latent_shape`` and ``model.cond_dim`` are taken from the tokenizer,
the clip size and ``condition.dim`` before the run's config is written (:meth:`prepare_config`).

Periodic samples go through :func:`videosynth.pipelines.two_stage.token_clips` with the EMA prior,
the frozen tokenizer and :func:`videosynth.sampling.ar.sample`, as ``videosynth sample`` does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from videosynth.checkpoint import unwrap
from videosynth.models.transformer import PRESETS, PriorConfig, build_modules
from videosynth.pipelines.two_stage import token_clips
from videosynth.sampling import ar
from videosynth.sampling.ar import ARSampleConfig
from videosynth.train.latent_stage import TokenPriorObjective, TokenRunConfig


@dataclass
class PriorRunConfig(TokenRunConfig):
    """A prior run (``family: transformer``) over the tokens of the vqvae run ``tokenizer_run``.

    ``data`` must give the clip size the tokenizer was trained on (frames a multiple of its
    time downsampling); ``tokens`` names a cache from ``videosynth encode`` (then videos are
    not encoded during training).
    """

    family: str = "transformer"
    model: PriorConfig = field(default_factory=lambda: dataclasses.replace(PRESETS["demo-32x32x16"]))
    sample: ARSampleConfig = field(default_factory=ARSampleConfig)

    presets: ClassVar[dict] = {"model": PRESETS}


class PriorObjective(TokenPriorObjective):
    """Next-token cross-entropy of a conditioned :class:`Prior`; samples decode through the frozen tokenizer."""

    build_modules = staticmethod(build_modules)

    def loss(self, tokens: torch.Tensor, batch: dict) -> torch.Tensor:
        prior = unwrap(self.net).net
        with self.ctx.autocast():
            logits = self.net(prior.shift_right(tokens), labels=batch["label"], captions=list(batch["caption"]),
                              audio=batch.get("audio"))  # (B, N, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tokens.reshape(-1))  # nats per token

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Periodic grid: EMA prior, labels cycling through the classes, decoded clips."""
        labels, captions = self.default_conditions(n)
        return token_clips(ar.sample, self.sampling_net(), self.tokenizer, n, generator, self.cfg.sample, labels=labels,
                           captions=captions, audio=self.default_audio(n))
