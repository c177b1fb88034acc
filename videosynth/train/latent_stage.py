"""What every prior over a frozen tokenizer's tokens shares in training: the base objective.

A token prior (the autoregressive Transformer, the masked-token prior) trains on the token grids
``int64 [B, t, h, w]`` of the vq/fsq tokenizer run named by ``tokenizer_run``: read from a token
cache written by ``videosynth encode`` (``tokens: DIR``) or encoded on the fly from the batch's
clips. The base here resolves and checks the tokenizer and the cache, fills the model's
vocabulary, grid and condition widths from them before the run's config is written, builds the
conditioned network with AdamW (weight decay on matrices only) and an EMA copy, and applies the
learning-rate and EMA warm-up; a family adds its loss (:meth:`TokenPriorObjective.loss`) and
its periodic samples.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
from torch import nn

from videosynth.checkpoint import unwrap
from videosynth.conditioning import ConditionConfig
from videosynth.config import at_least, checked, in_range, positive
from videosynth.data import DataConfig
from videosynth.data.tokens import TokenDataset
from videosynth.errors import ConfigError
from videosynth.models.lora import FinetuneConfig, merged_copy
from videosynth.pipelines import TokenizerPipeline
from videosynth.pipelines.two_stage import load_tokenizer_run
from videosynth.train.config import RunConfig, TrainConfig
from videosynth.train.context import Context
from videosynth.train.ema import EMA
from videosynth.train.finetune import adapt, record_base
from videosynth.train.objective import Objective, adam, conditioned_modules, ema_decay_at, set_lr

LN2 = 0.6931471805599453  # nats per bit


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
class TokenRunConfig(RunConfig):
    """The sections every token-prior run has: the tokenizer run, an optional token cache, the data
    (the clip size the tokenizer was trained on), the condition, AdamW and the loop."""

    tokenizer_run: str = ""
    tokenizer_checkpoint: str | None = None  # step or folder name; recorded when the run starts (default: newest)
    tokenizer_sha256: str | None = None  # its weights' hash, recorded when the run starts and checked on load
    tokens: str | None = None
    data: DataConfig = field(default_factory=lambda: DataConfig(frames=16, size=32))
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    optim: PriorOptimConfig = field(default_factory=PriorOptimConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def with_tokenizer_identity(cfg, tokenizer: TokenizerPipeline):
    """``cfg`` with the checkpoint and weights hash of the tokenizer a new run starts on recorded
    (``tokenizer_checkpoint``, ``tokenizer_sha256``): a resumed or sampled run loads that one, or refuses."""
    return dataclasses.replace(cfg, tokenizer_checkpoint=tokenizer.checkpoint.name,
                               tokenizer_sha256=tokenizer.weights_sha256)


def check_cache(cache: TokenDataset, tokenizer: TokenizerPipeline, tokenizer_run: str) -> None:
    """A token cache must come from this very tokenizer checkpoint (same weights, same codebook).

    Raises:
        ConfigError: the cache was written with other weights or another codebook size.
    """
    cache.check_written_by(tokenizer.weights_sha256, tokenizer_run)
    if cache.index.get("codebook_size") != tokenizer.model_cfg.codebook_size:
        raise ConfigError(f"token cache {cache.root} has codebook_size {cache.index.get('codebook_size')}, "
                          f"the tokenizer {tokenizer.model_cfg.codebook_size}: re-run `videosynth encode`")


class TokenPriorObjective(Objective):
    """Trains a conditioned token prior (``build_net``) with AdamW and an EMA copy.

    Subclasses give ``net_name`` (the checkpoint key of the network), ``build_modules`` (its model
    file's, which the pipeline calls too) and :meth:`loss`; everything else a token prior's
    training needs is here.
    """

    takes_audio = True  # the sound under each latent frame joins the inputs of its tokens
    net_name = "prior"
    build_modules: ClassVar[Callable[..., dict[str, nn.Module]]]

    @classmethod
    def batch_keys_for(cls, cfg: TokenRunConfig) -> tuple[str, ...]:
        keys = ("tokens", "label") if cfg.tokens else ("video", "label")
        return (*keys, "audio") if cfg.condition is not None and cfg.condition.audio else keys

    @classmethod
    def build_dataset(cls, cfg: TokenRunConfig, split: str):
        """The token cache when ``tokens`` is set (the loop reads tokens, never decodes videos), else clips."""
        return TokenDataset(cfg.tokens) if cfg.tokens else super().build_dataset(cfg, split)

    @classmethod
    def prepare_config(cls, cfg: TokenRunConfig, dataset) -> TokenRunConfig:
        """Condition fields from the data, then vocabulary, token grid and condition widths from the facts."""
        cfg = super().prepare_config(cfg, dataset)
        tokenizer = load_tokenizer_run(cfg.tokenizer_run, cfg.tokenizer_checkpoint, cfg.tokenizer_sha256, False)
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
        return record_base(with_tokenizer_identity(dataclasses.replace(cfg, model=model), tokenizer))

    def __init__(self, cfg: TokenRunConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.tokenizer = load_tokenizer_run(cfg.tokenizer_run, cfg.tokenizer_checkpoint, cfg.tokenizer_sha256, False,
                                            ctx.device, ctx.run_dir)
        self.batch_keys = self.batch_keys_for(cfg)
        if cfg.condition is not None and cfg.condition.audio and cfg.tokens:
            raise ConfigError("condition.audio: a token cache holds no sound; train on clips (remove tokens:)")
        net = type(self).build_modules(cfg.model, cfg.condition)[self.net_name]
        if cfg.finetune.adapted:
            self.adapted = True
            self.adapter_line = adapt(net, self.net_name, cfg, ctx.run_dir, list(ctx.dataset.class_names))
        self.net = ctx.wrap(net, find_unused_parameters=net.conditioner is not None)
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
        return conditioned_modules(unwrap(self.net), self.net_name)

    def ema_modules(self):
        return conditioned_modules(self.ema.module, self.net_name)

    def optimizers(self):
        return {self.net_name: self.opt}

    def set_train(self, mode: bool) -> None:
        self.net.train(mode)

    def sampling_net(self) -> nn.Module:
        """The EMA network that samples the periodic grids (a LoRA fine-tune's with its adapter merged:
        the AR prior's cached decoder reads weight tensors directly)."""
        return merged_copy(self.ema.module) if self.adapted else self.ema.module

    def tokens_of(self, batch: dict) -> torch.Tensor:
        """The batch's token grids ``int64 [B, t, h, w]``: cached, or encoded with the frozen tokenizer."""
        if "tokens" in batch:
            return batch["tokens"]
        with torch.no_grad(), self.ctx.autocast():
            return self.tokenizer.model.encode(batch["video"])  # (B, t, h, w)

    def loss(self, tokens: torch.Tensor, batch: dict) -> torch.Tensor:
        """The family's loss (a 0-d tensor, nats per token) on flat token grids ``int64 [B, N]``."""
        raise NotImplementedError

    def train_step(self, batch: dict, step: int) -> dict:
        set_lr(self.opt, self.cfg.optim, step, self.cfg.train.steps)
        tokens = self.tokens_of(batch).reshape(batch["label"].shape[0], -1)  # (B, N)
        loss = self.loss(tokens, batch)
        self.ctx.backward_step(loss, self.opt, self.net, name=self.net_name)
        self.ema.decay = ema_decay_at(self.cfg.train.ema_decay, step)
        self.ema.update(self.net)
        loss = loss.detach()
        return {"loss": loss, "bits_per_token": loss / LN2}
