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

Periodic samples go through :func:`videosynth.sampling.ar.sample_tokens_and_decode` with the
EMA prior and the frozen tokenizer; ``videosynth sample`` uses ``pipelines.TwoStagePipeline``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from videosynth.config import at_least, checked, in_range, positive
from videosynth.checkpoint import unwrap
from videosynth.conditioning import ConditionConfig, build_conditioner
from videosynth.data import DataConfig
from videosynth.data.tokens import TokenDataset
from videosynth.errors import CheckpointError, ConfigError
from videosynth.models.conditioned import Conditioned
from videosynth.models.transformer import PRESETS, Prior, PriorConfig
from videosynth.pipelines import TokenizerPipeline
from videosynth.sampling.ar import ARSampleConfig, sample_tokens_and_decode
from videosynth.train.config import RunConfig, TrainConfig
from videosynth.train.context import Context
from videosynth.train.ema import EMA
from videosynth.train.objective import Objective, adam, conditioned_modules, warmup_lr

log = logging.getLogger("videosynth.train")

EMA_WARMUP = 10  # EMA decay ramps as (1 + step) / (EMA_WARMUP + step) so short runs sample trained weights
LN2 = 0.6931471805599453  # nats per bit


# ----------------------------------------------------------------------------- config


@dataclass
class PriorOptimConfig:
    """AdamW settings (GPT-style: betas (0.9, 0.95), weight decay on matrices only)."""

    lr: float = checked(3e-4, positive())
    beta1: float = checked(0.9, in_range(0, 1, high_open=True))
    beta2: float = checked(0.95, in_range(0, 1, high_open=True))
    weight_decay: float = checked(0.01, at_least(0))
    warmup_steps: int = checked(100, at_least(0))  # linear learning-rate warm-up from 0
    decay_steps: int = checked(0, at_least(0))  # cosine decay to 0 over the last steps of train.steps


@dataclass
class PriorRunConfig(RunConfig):
    """A prior run (``family: transformer``) over the tokens of the vqvae run ``tokenizer_run``.

    ``data`` must give the clip size the tokenizer was trained on (frames a multiple of its
    time downsampling); ``tokens`` names a cache from ``videosynth tokenize`` (then videos are
    not encoded during training).
    """

    family: str = "transformer"
    tokenizer_run: str = ""
    tokenizer_checkpoint: str | None = None  # step or folder name; default the newest
    tokens: str | None = None
    model: PriorConfig = field(default_factory=lambda: dataclasses.replace(PRESETS["demo-32x32x16"]))
    data: DataConfig = field(default_factory=lambda: DataConfig(frames=16, size=32))
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    optim: PriorOptimConfig = field(default_factory=PriorOptimConfig)
    sample: ARSampleConfig = field(default_factory=ARSampleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    presets: ClassVar[dict] = {"model": PRESETS}


def load_tokenizer(cfg: PriorRunConfig, device: torch.device | str = "cpu") -> TokenizerPipeline:
    """The frozen tokenizer of ``cfg.tokenizer_run`` (an inference pipeline: weights only)."""
    if not cfg.tokenizer_run:
        raise ConfigError("tokenizer_run is empty: set it to the run directory of a trained vqvae")
    path = Path(cfg.tokenizer_run).expanduser()
    if not (path / "config.yaml").is_file():
        raise CheckpointError(f"tokenizer run not found: {path / 'config.yaml'} is missing (train a vqvae first)")
    tokenizer = TokenizerPipeline.from_run(path, cfg.tokenizer_checkpoint, device)
    if tokenizer.model.continuous:
        raise ConfigError(f"tokenizer_run {path} has a continuous bottleneck (float latents, no tokens); the "
                          "autoregressive prior needs a vq or fsq tokenizer (model.bottleneck: vq | fsq)")
    return tokenizer


def check_cache(cache: TokenDataset, tokenizer: TokenizerPipeline, tokenizer_run: str) -> None:
    """A token cache must come from this very tokenizer checkpoint (same weights, same codebook).

    Raises:
        ConfigError: the cache was written with other weights or another codebook size.
    """
    cache.check_written_by(tokenizer.weights_sha256, tokenizer_run)
    if cache.index.get("codebook_size") != tokenizer.model_cfg.codebook_size:
        raise ConfigError(f"token cache {cache.root} has codebook_size {cache.index.get('codebook_size')}, "
                          f"the tokenizer {tokenizer.model_cfg.codebook_size}: re-run `videosynth tokenize`")


# ----------------------------------------------------------------------------- objective


class PriorObjective(Objective):
    """Trains a conditioned :class:`Prior` with AdamW; samples decode through the frozen tokenizer."""

    takes_audio = True  # the sound under each latent frame joins the inputs predicting its tokens

    @classmethod
    def batch_keys_for(cls, cfg: PriorRunConfig) -> tuple[str, ...]:
        keys = ("tokens", "label") if cfg.tokens else ("video", "label")
        return (*keys, "audio") if cfg.condition is not None and cfg.condition.audio else keys

    @classmethod
    def build_dataset(cls, cfg: PriorRunConfig, split: str):
        """The token cache when ``tokens`` is set (the loop reads tokens, never decodes videos), else clips."""
        return TokenDataset(cfg.tokens) if cfg.tokens else super().build_dataset(cfg, split)

    @classmethod
    def prepare_config(cls, cfg: PriorRunConfig, dataset) -> PriorRunConfig:
        """Condition fields from the data, then vocabulary, token grid and condition width from the facts."""
        cfg = super().prepare_config(cfg, dataset)
        tokenizer = load_tokenizer(cfg)
        if cfg.tokens:
            cache = dataset if isinstance(dataset, TokenDataset) else TokenDataset(cfg.tokens)
            check_cache(cache, tokenizer, cfg.tokenizer_run)
            latent = cache.latent_shape
        else:
            latent = tokenizer.latent_shape(cfg.data.frames, cfg.data.size)
        sounding = cfg.condition is not None and cfg.condition.audio
        conditional = cfg.condition is not None and (cfg.condition.kind != "none" or sounding)
        model = dataclasses.replace(cfg.model, vocab_size=tokenizer.model_cfg.codebook_size,
                                    latent_shape=tuple(latent), cond_dim=cfg.condition.dim if conditional else 0,
                                    audio_dim=cfg.condition.dim if sounding else 0,
                                    frames_per_latent=tokenizer.model_cfg.downsample[0])
        return dataclasses.replace(cfg, model=model)

    def __init__(self, cfg: PriorRunConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.tokenizer = load_tokenizer(cfg, ctx.device)
        self.batch_keys = self.batch_keys_for(cfg)
        if cfg.condition is not None and cfg.condition.audio and cfg.tokens:
            raise ConfigError("condition.audio: a token cache holds no sound; train on clips (remove tokens:)")
        conditioner = build_conditioner(cfg.condition) if cfg.condition is not None else None
        self.net = ctx.wrap(Conditioned(Prior(cfg.model), conditioner), find_unused_parameters=conditioner is not None)
        self.opt = adam(self._param_groups(), cfg.optim.lr, (cfg.optim.beta1, cfg.optim.beta2), decoupled=True)
        self.ema = EMA(self.net, cfg.train.ema_decay)

    def _param_groups(self) -> list[dict]:
        """Weight decay on matrices (Linear weights) only, not on biases, norms or embeddings."""
        decay, no_decay = [], []
        for name, p in unwrap(self.net).named_parameters():
            if not p.requires_grad:
                continue
            is_matrix = p.dim() >= 2 and "emb" not in name and not name.startswith("net.pos_")
            (decay if is_matrix else no_decay).append(p)
        return [{"params": decay, "weight_decay": self.cfg.optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    # ---- loop interface --------------------------------------------------------------------

    def modules(self):
        return conditioned_modules(unwrap(self.net), "prior")

    def ema_modules(self):
        return conditioned_modules(self.ema.module, "prior")

    def optimizers(self):
        return {"prior": self.opt}

    def set_train(self, mode: bool) -> None:
        self.net.train(mode)

    def tokens_of(self, batch: dict) -> torch.Tensor:
        """The batch's token grids ``int64 [B, t, h, w]``: cached, or encoded with the frozen tokenizer."""
        if "tokens" in batch:
            return batch["tokens"]
        with torch.no_grad(), self.ctx.autocast():
            return self.tokenizer.model.encode(batch["video"])  # (B, t, h, w)

    def train_step(self, batch: dict, step: int) -> dict:
        for group in self.opt.param_groups:
            group["lr"] = warmup_lr(self.cfg.optim.lr, self.cfg.optim.warmup_steps, step,
                                    self.cfg.optim.decay_steps, self.cfg.train.steps)
        tokens = self.tokens_of(batch).reshape(batch["label"].shape[0], -1)  # (B, N)
        prior = unwrap(self.net).net
        with self.ctx.autocast():
            logits = self.net(prior.shift_right(tokens), labels=batch["label"], captions=list(batch["caption"]),
                              audio=batch.get("audio"))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tokens.reshape(-1))  # nats per token
        self.ctx.backward_step(loss, self.opt, self.net, name="prior")
        self.ema.decay = min(self.cfg.train.ema_decay, (1 + step) / (EMA_WARMUP + step))
        self.ema.update(self.net)
        loss = loss.detach()
        return {"loss": loss, "bits_per_token": loss / LN2}

    # ---- periodic samples ------------------------------------------------------------------

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Periodic grid: EMA prior, labels cycling through the classes, decoded clips."""
        labels, captions = self.default_conditions(n)
        net = self.ema.module
        return sample_tokens_and_decode(net.net, self.tokenizer.model, net.conditioner, n, generator, labels=labels,
                                        captions=captions, audio=self.default_audio(n),
                                        **dataclasses.asdict(self.cfg.sample))
