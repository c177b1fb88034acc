"""VQ-VAE tokenizer training objective on the shared loop.

van den Oord et al. 2017 ("Neural Discrete Representation Learning"), trained on
video as in VideoGPT (Yan et al. 2021). One step: reconstruct the batch, update
the codebook (EMA or loss mode, see ``videosynth.models.vqvae``), take one Adam
step on reconstruction + commitment (+ codebook) loss.

Logged every step: ``loss``, ``loss_recon``, ``loss_commit``, ``loss_codebook``,
``psnr`` (dB, [-1, 1] range), ``perplexity``, ``usage`` (share of codes the
batch used), ``restarted`` (dead codes replaced). A collapsed codebook is
reported with a warning. The periodic sample grid shows original | reconstruction
side by side for fixed clips of the training set.

:func:`load_tokenizer` rebuilds a trained tokenizer from its run directory; the
prior objective, ``videosynth tokenize`` and ``videosynth reconstruct`` use it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from videosynth.data import DataConfig
from videosynth.errors import CheckpointError, ConfigError
from videosynth.models.vqvae import PRESETS, VQVAE, VQVAEConfig
from videosynth.train.loop import Context, Objective, RunConfig, TrainConfig, unwrap

log = logging.getLogger("videosynth.train")

VALUE_RANGE = 2.0  # videos live in [-1, 1]: peak-to-peak 2 for PSNR
COLLAPSE_WARN_EVERY = 100  # steps between repeated collapse warnings


# ----------------------------------------------------------------------------- config


@dataclass
class VQOptimConfig:
    """Adam settings (VideoGPT trains its VQ-VAE with Adam at 3e-4)."""

    lr: float = 3e-4
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear learning-rate warm-up from 0


@dataclass
class VQVAERunConfig(RunConfig):
    """A tokenizer run (``family: vqvae``); ``model: {preset: NAME, ...}`` picks a preset."""

    family: str = "vqvae"
    model: VQVAEConfig = field(default_factory=lambda: dataclasses.replace(PRESETS["demo-32x32x16"]))
    data: DataConfig = field(default_factory=lambda: DataConfig(frames=16, size=32))
    optim: VQOptimConfig = field(default_factory=VQOptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    presets: ClassVar[dict] = {"model": PRESETS}


def warmup_lr(base: float, warmup_steps: int, step: int) -> float:
    """Linear warm-up: ``base * (step + 1) / warmup_steps`` for the first steps, then ``base``.

    A pure function of the step, so resuming restores it without extra state.
    """
    if warmup_steps <= 0:
        return base
    return base * min(1.0, (step + 1) / warmup_steps)


def _scalar(t: torch.Tensor) -> float:
    return float(t.detach())


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error measured in the [-1, 1] range."""
    return 10.0 * math.log10(VALUE_RANGE**2 / mse) if mse > 0 else float("inf")


# ----------------------------------------------------------------------------- objective


class VQVAEObjective(Objective):
    """One VQ-VAE with one Adam optimiser; no EMA of the weights (the codebook has its own)."""

    def __init__(self, cfg: VQVAERunConfig, ctx: Context):
        super().__init__(cfg, ctx)
        model = VQVAE(cfg.model)
        if cfg.data is not None and hasattr(cfg.data, "frames"):
            model.latent_shape(cfg.data.frames, cfg.data.size)  # ConfigError early when sizes don't fit
        # codebook statistics are synchronised by the quantiser itself; DDP needn't broadcast buffers
        self.model = ctx.wrap(model, broadcast_buffers=False)
        o = cfg.optim
        self.opt = torch.optim.Adam(self.model.parameters(), o.lr, (o.beta1, o.beta2), weight_decay=o.weight_decay)
        self._last_warning = -COLLAPSE_WARN_EVERY

    @property
    def vqvae(self) -> VQVAE:
        return unwrap(self.model)

    def modules(self):
        return {"vqvae": self.model}

    def optimizers(self):
        return {"vqvae": self.opt}

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        for group in self.opt.param_groups:
            group["lr"] = warmup_lr(self.cfg.optim.lr, self.cfg.optim.warmup_steps, step)
        x = batch["video"]  # (B, C, T, H, W) in [-1, 1]
        with self.ctx.autocast():
            out = self.model(x)
        self.ctx.backward_step(out.loss, self.opt, self.model, name="vqvae")
        mse = _scalar(out.recon_loss)
        metrics = {
            "loss": _scalar(out.loss),
            "loss_recon": mse,
            "loss_commit": _scalar(out.commit_loss),
            "loss_codebook": _scalar(out.codebook_loss),
            "psnr": psnr_from_mse(mse),
            "perplexity": _scalar(out.perplexity),
            "usage": _scalar(out.usage),
            "restarted": float(out.restarted),
        }
        if self.vqvae.usage_collapsed(out) and step - self._last_warning >= COLLAPSE_WARN_EVERY:
            self._last_warning = step
            log.warning(
                "step %d: VQ-VAE codebook usage collapsed (%.1f%% of %d codes, perplexity %.1f); "
                "lower model.restart_after or optim.lr",
                step, 100 * metrics["usage"], self.cfg.model.codebook_size, metrics["perplexity"],
            )
        return metrics

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Original | reconstruction, side by side along the width: ``[n, C, T, H, 2W]`` in [-1, 1]."""
        dataset = self.ctx.dataset
        if dataset is None or len(dataset) == 0:
            return None
        n = min(n, len(dataset))
        idx = torch.linspace(0, len(dataset) - 1, n).long().tolist()  # fixed clips spread over the set
        x = torch.stack([dataset[i]["video"] for i in idx]).to(self.ctx.device)  # (n, C, T, H, W)
        model = self.vqvae
        recon = model.decode(model.encode(x))  # (n, C, T, H, W)
        return torch.cat([x, recon], dim=-1)  # (n, C, T, H, 2W)

    def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True, **options):
        raise ConfigError(
            "a vqvae run is a tokenizer and cannot generate clips: train a transformer prior on it "
            "(family: transformer, tokenizer_run: <this run>) and sample from that run; "
            "use `videosynth reconstruct` to view reconstructions"
        )


# ----------------------------------------------------------------------------- loading


def load_tokenizer(run_dir: str | Path, checkpoint: str | None = None,
                   device: str | torch.device = "cpu") -> tuple[VQVAE, VQVAERunConfig, dict]:
    """A trained tokenizer from its run directory, in eval mode with frozen weights.

    Returns ``(model, run config, checkpoint meta)``; ``meta["files"]["model.safetensors"]``
    is the sha256 of the weights (recorded by token caches).

    Raises:
        CheckpointError: no run directory / valid checkpoint, not a vqvae run, or weights
            that do not match the config.
    """
    from videosynth.train.loop import find_checkpoint, load_module_state, load_weights
    from videosynth.train.run import resolve_config

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"tokenizer run not found: {run_dir / 'config.yaml'} is missing (train a vqvae first)")
    cfg = resolve_config(None, [], resume_dir=run_dir)
    if cfg.family != "vqvae":
        raise CheckpointError(f"{run_dir} is a '{cfg.family}' run, not a vqvae tokenizer run")
    path, meta = find_checkpoint(run_dir, checkpoint)
    model = VQVAE(cfg.model)
    weights = load_weights(path)
    if "vqvae" not in weights:
        raise CheckpointError(f"{path / 'model.safetensors'} holds no 'vqvae' weights")
    load_module_state(model, weights["vqvae"], f"{path / 'model.safetensors'} [vqvae]")
    model.to(device).eval().requires_grad_(False)
    return model, cfg, meta
