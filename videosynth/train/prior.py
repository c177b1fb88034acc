"""Autoregressive Transformer prior over VQ-VAE tokens, on the shared loop.

Second stage of VideoGPT (Yan et al. 2021): a frozen tokenizer (a ``vqvae`` run,
named by ``tokenizer_run``) turns clips into token grids; the prior learns
next-token prediction over them. Tokens come either from a token cache written
by ``videosynth tokenize`` (``tokens: DIR``) or are encoded on the fly from the
batch's videos.

Conditioning: the shared conditioner embeds labels / captions into one vector
that joins the prior's BOS token; it trains with the prior, and its condition
dropout (``condition.dropout``) trains the null condition for classifier-free
guidance. ``model.vocab_size``, ``model.latent_shape`` and ``model.cond_dim`` are
taken from the tokenizer, the clip size and ``condition.dim``.

Sampling (periodic grid and ``videosynth sample``) goes through
:func:`videosynth.sample_ar.sample_tokens_and_decode`: generate or roll out
tokens with the EMA prior, decode them with the tokenizer.

This file also defines the token cache format (:func:`write_token_cache`,
:class:`TokenDataset`): ``index.json`` plus ``shard-NNNNN.safetensors`` files
holding ``tokens`` int16/int32 ``[n, t, h, w]`` and ``labels`` int64 ``[n]``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn as nn

from videosynth.conditioning import ConditionConfig, build_conditioner
from videosynth.data import DataConfig
from videosynth.errors import ConfigError, DataError
from videosynth.models.transformer import PRESETS, Prior, PriorConfig
from videosynth.train.loop import EMA, Context, Objective, RunConfig, TrainConfig, unwrap
from videosynth.train.vqvae import load_tokenizer, warmup_lr

log = logging.getLogger("videosynth.train")

TOKEN_FORMAT = "videosynth-tokens"
TOKEN_FORMAT_VERSION = 1
INT16_MAX_VOCAB = 2**15  # codebooks up to this size are stored as int16
EMA_WARMUP = 10  # EMA decay ramps as (1 + step) / (EMA_WARMUP + step) so short runs sample trained weights


# ----------------------------------------------------------------------------- token cache


def write_token_cache(out: str | Path, shards: list[dict[str, torch.Tensor]], meta: dict) -> Path:
    """Write token shards and ``index.json`` (last, atomically) into ``out``; returns the index path.

    ``shards``: dicts with ``tokens`` int64 ``[n, t, h, w]`` and ``labels`` int64 ``[n]``;
    ``meta``: JSON-able facts (tokenizer run, hash, data config, captions, class names, ...).
    """
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dtype = torch.int16 if meta["codebook_size"] <= INT16_MAX_VOCAB else torch.int32
    entries, total = [], 0
    for i, shard in enumerate(shards):
        name = f"shard-{i:05d}.safetensors"
        tmp = out / f".{name}.tmp-{os.getpid()}"
        save_file({"tokens": shard["tokens"].to(dtype).contiguous(), "labels": shard["labels"].long().contiguous()},
                  str(tmp))
        os.replace(tmp, out / name)
        n = int(shard["tokens"].shape[0])
        entries.append({"file": name, "start": total, "count": n})
        total += n
    index = {"format": TOKEN_FORMAT, "version": TOKEN_FORMAT_VERSION, **meta, "num": total, "shards": entries}
    tmp = out / f".index.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / "index.json")
    return out / "index.json"


class TokenDataset(torch.utils.data.Dataset):
    """A token cache as a dataset.

    Items: ``{"tokens": int64 [t, h, w], "video": float32 [0] (no video), "label": int64 scalar,
    "caption": str}``; exposes ``class_names``, ``captions()``, ``latent_shape`` and ``index``.

    Raises:
        DataError: missing / unreadable index or shard, or a foreign format.
    """

    def __init__(self, root: str | Path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        self.root = Path(root)
        path = self.root / "index.json"
        try:
            self.index = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"token cache index {path} is missing or unreadable ({exc}); run `videosynth tokenize`") from None
        if self.index.get("format") != TOKEN_FORMAT:
            raise DataError(f"{path} is not a videosynth token cache (format {self.index.get('format')!r})")
        tokens, labels = [], []
        for entry in self.index["shards"]:
            try:
                shard = load_file(str(self.root / entry["file"]))
            except (OSError, SafetensorError) as exc:
                raise DataError(f"token shard {self.root / entry['file']} is unreadable ({exc}); re-run tokenize") from None
            tokens.append(shard["tokens"])
            labels.append(shard["labels"])
        self.tokens = torch.cat(tokens) if tokens else torch.zeros(0, *self.index["latent_shape"], dtype=torch.int16)
        self.labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
        self._captions = list(self.index.get("captions") or [""] * len(self.tokens))
        self.class_names = list(self.index.get("class_names", []))
        self.latent_shape = tuple(self.index["latent_shape"])
        if len(self._captions) != len(self.tokens) or len(self.labels) != len(self.tokens):
            raise DataError(f"token cache {self.root} is inconsistent (counts differ); re-run tokenize")

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict:
        return {"tokens": self.tokens[i].long(), "video": torch.zeros(0), "label": self.labels[i],
                "caption": self._captions[i]}

    def captions(self) -> list[str]:
        return sorted(set(self._captions))


# ----------------------------------------------------------------------------- config


@dataclass
class PriorOptimConfig:
    """AdamW settings (GPT-style: betas (0.9, 0.95), weight decay on matrices only)."""

    lr: float = 3e-4
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.01
    warmup_steps: int = 100  # linear learning-rate warm-up from 0


@dataclass
class PriorSampleConfig:
    """Defaults for periodic samples and ``videosynth sample`` (each overridable per call)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    guidance_scale: float = 1.0  # > 1 needs condition.dropout > 0 in training
    context_frames: int | None = None  # latent frames re-primed per rollout window (default t // 2)


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
    sample: PriorSampleConfig = field(default_factory=PriorSampleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    presets: ClassVar[dict] = {"model": PRESETS}


def _fit_model_config(cfg: PriorRunConfig, tokenizer, latent_shape: tuple[int, int, int]) -> PriorConfig:
    """``cfg.model`` with vocabulary, token grid and condition width taken from the facts."""
    conditional = cfg.condition is not None and cfg.condition.kind != "none"
    return dataclasses.replace(
        cfg.model,
        vocab_size=tokenizer.cfg.codebook_size,
        latent_shape=tuple(latent_shape),
        cond_dim=cfg.condition.dim if conditional else 0,
    )


# ----------------------------------------------------------------------------- objective


class PriorWithCondition(nn.Module):
    """The trainable pair (prior, conditioner) as one module, so DDP and EMA see both."""

    def __init__(self, prior: Prior, conditioner: nn.Module | None):
        super().__init__()
        self.prior = prior
        self.conditioner = conditioner

    def condition(self, labels: torch.Tensor, captions: list[str], force_null: bool = False) -> torch.Tensor | None:
        if self.conditioner is None:
            return None
        return self.conditioner(labels, captions, force_null=force_null)  # (B, D)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor, captions: list[str]) -> torch.Tensor:
        """Mean next-token cross-entropy of ``tokens [B, t, h, w]``."""
        return self.prior.loss(tokens, self.condition(labels, captions))


class PriorObjective(Objective):
    """Trains a :class:`Prior` (+ conditioner) with AdamW; samples decode through the frozen tokenizer."""

    def __init__(self, cfg: PriorRunConfig, ctx: Context):
        super().__init__(cfg, ctx)
        if not cfg.tokenizer_run:
            raise ConfigError("tokenizer_run is empty: set it to the run directory of a trained vqvae")
        self.tokenizer, tok_cfg, self.tokenizer_meta = load_tokenizer(
            cfg.tokenizer_run, cfg.tokenizer_checkpoint, ctx.device)
        self.token_cache = TokenDataset(cfg.tokens) if cfg.tokens else None
        if self.token_cache is not None:
            self._check_cache(self.token_cache)
            latent = self.token_cache.latent_shape
        else:
            latent = self.tokenizer.latent_shape(cfg.data.frames, cfg.data.size)
        cfg.model = _fit_model_config(cfg, self.tokenizer, latent)  # the saved config tells the truth
        if ctx.run_dir is not None and ctx.is_main and (ctx.run_dir / "config.yaml").exists():
            from videosynth.config import save_yaml

            save_yaml(cfg, ctx.run_dir / "config.yaml")

        conditioner = build_conditioner(cfg.condition) if cfg.condition is not None else None
        self.net = ctx.wrap(PriorWithCondition(Prior(cfg.model), conditioner),
                            find_unused_parameters=conditioner is not None)
        self.opt = torch.optim.AdamW(self._param_groups(), cfg.optim.lr, (cfg.optim.beta1, cfg.optim.beta2))
        self.ema = EMA(self.net, cfg.train.ema_decay)
        self._warned_cache = False

    def _check_cache(self, cache: TokenDataset) -> None:
        have = cache.index.get("tokenizer_sha256")
        want = self.tokenizer_meta.get("files", {}).get("model.safetensors")
        if have and want and have != want:
            raise ConfigError(
                f"token cache {cache.root} was written with another tokenizer checkpoint than "
                f"{self.cfg.tokenizer_run}: re-run `videosynth tokenize` or point tokens: elsewhere"
            )
        if cache.index.get("codebook_size") != self.tokenizer.cfg.codebook_size:
            raise ConfigError(f"token cache {cache.root} has codebook_size {cache.index.get('codebook_size')}, "
                              f"the tokenizer {self.tokenizer.cfg.codebook_size}: re-run `videosynth tokenize`")

    def _param_groups(self) -> list[dict]:
        """Weight decay on matrices (Linear weights) only, not on biases, norms or embeddings."""
        decay, no_decay = [], []
        for name, p in unwrap(self.net).named_parameters():
            if not p.requires_grad:
                continue
            is_matrix = p.dim() >= 2 and "emb" not in name and not name.startswith("prior.pos_")
            (decay if is_matrix else no_decay).append(p)
        return [{"params": decay, "weight_decay": self.cfg.optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    # ---- loop interface --------------------------------------------------------------------

    @staticmethod
    def build_dataset(cfg: PriorRunConfig, split: str):
        """The token cache as the training set when ``tokens`` is set, else None (use ``cfg.data``).

        For the training entry point: a cache makes the loop read tokens, not decode videos.
        """
        return TokenDataset(cfg.tokens) if cfg.tokens else None

    def modules(self):
        mods = {"prior": unwrap(self.net).prior}
        if unwrap(self.net).conditioner is not None:
            mods["conditioner"] = unwrap(self.net).conditioner
        return mods

    def ema_modules(self):
        mods = {"prior": self.ema.module.prior}
        if self.ema.module.conditioner is not None:
            mods["conditioner"] = self.ema.module.conditioner
        return mods

    def optimizers(self):
        return {"prior": self.opt}

    def set_train(self, mode: bool) -> None:
        self.net.train(mode)
        self.tokenizer.eval()  # frozen, always

    def tokens_of(self, batch: dict) -> torch.Tensor:
        """The batch's token grids ``int64 [B, t, h, w]``: cached, or encoded with the frozen tokenizer."""
        if "tokens" in batch:
            return batch["tokens"].to(self.ctx.device)
        if self.token_cache is not None and not self._warned_cache:
            self._warned_cache = True
            log.warning("tokens: %s is set but the batches hold videos; encoding them on the fly", self.cfg.tokens)
        with torch.no_grad(), self.ctx.autocast():
            return self.tokenizer.encode(batch["video"])  # (B, t, h, w)

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        for group in self.opt.param_groups:
            group["lr"] = warmup_lr(self.cfg.optim.lr, self.cfg.optim.warmup_steps, step)
        tokens = self.tokens_of(batch)  # (B, t, h, w)
        labels = batch["label"].to(self.ctx.device)
        with self.ctx.autocast():
            loss = self.net(tokens, labels, list(batch["caption"]))
        self.ctx.backward_step(loss, self.opt, self.net, name="prior")
        self.ema.decay = min(self.cfg.train.ema_decay, (1 + step) / (EMA_WARMUP + step))
        self.ema.update(self.net)
        loss = float(loss.detach())
        return {"loss": loss, "bits_per_token": loss / torch.log(torch.tensor(2.0)).item()}

    # ---- sampling --------------------------------------------------------------------------

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Periodic grid: EMA prior, labels cycling through the classes, decoded clips."""
        labels = None
        if self.cfg.condition is not None and self.cfg.condition.kind == "class" and self.cfg.condition.num_classes:
            labels = torch.arange(n) % self.cfg.condition.num_classes
        captions = None
        dataset = self.ctx.dataset
        if self.cfg.condition is not None and "text" in self.cfg.condition.kind and hasattr(dataset, "captions"):
            pool = [c for c in dataset.captions() if c] or [""]
            captions = [pool[i % len(pool)] for i in range(n)]
        return self.generate(n, generator, labels=labels, captions=captions)

    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                 captions: list[str] | None = None, frames: int | None = None, ema: bool = True,
                 prime_video: torch.Tensor | None = None, **options) -> torch.Tensor:
        """Clips ``float32 [n, C, T, H, W]`` in [-1, 1] (see ``sample_ar.sample_tokens_and_decode``).

        ``prime_video`` float ``[n, C, T0, H, W]`` (or ``[C, T0, H, W]``, shared) continues observed
        frames. ``options``: ``temperature``, ``top_k``, ``top_p``, ``guidance_scale`` (or ``guidance``),
        ``context_frames``, ``use_cache`` (defaults from the ``sample:`` section); ``prime`` (a video
        path) with ``prime_frames`` (default: half the clip) as the CLI passes them. Options of other
        families are ignored.
        """
        from videosynth.sample_ar import sample_tokens_and_decode

        if "guidance" in options:
            options["guidance_scale"] = options.pop("guidance")
        if options.get("prime") is not None and prime_video is None:
            prime_video = self.read_prime(options["prime"], options.get("prime_frames"))
        if prime_video is not None and prime_video.dim() == 4:
            prime_video = prime_video.unsqueeze(0).expand(n, -1, -1, -1, -1)  # (n, C, T0, H, W)
        known = {f.name for f in dataclasses.fields(PriorSampleConfig)} | {"use_cache"}
        chosen = {k: v for k, v in options.items() if k in known and v is not None}
        settings = {**dataclasses.asdict(self.cfg.sample), **chosen}
        net = self.ema.module if ema else unwrap(self.net)
        return sample_tokens_and_decode(
            net.prior, self.tokenizer, net.conditioner, n, generator, labels=labels, captions=captions,
            frames=frames, prime_video=prime_video, **settings)

    def read_prime(self, path: str, prime_frames: int | None = None) -> torch.Tensor:
        """The first ``prime_frames`` frames of a video file as ``float32 [C, T0, H, W]`` at the data size.

        ``prime_frames`` defaults to half the training clip; it is rounded down to a multiple of the
        tokenizer's time downsampling.

        Raises:
            ConfigError: fewer than one latent frame requested; DataError: unreadable / short video.
        """
        from videosynth.data.transforms import resize_crop, to_float
        from videosynth.io import read_clip

        dt = self.tokenizer.cfg.downsample[0]
        wanted = prime_frames if prime_frames is not None else self.cfg.data.frames // 2
        wanted -= wanted % dt
        if wanted < dt:
            raise ConfigError(f"--prime-frames must be at least {dt} (one latent frame of the tokenizer)")
        clip = to_float(read_clip(path, 0, wanted))  # (C, T0, H, W)
        return resize_crop(clip, self.cfg.data.size)
