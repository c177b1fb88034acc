"""VQ-VAE tokenizer training objective on the shared loop.

van den Oord et al. 2017 ("Neural Discrete Representation Learning"), trained on
video as in VideoGPT (Yan et al. 2021). One step: reconstruct the batch, update
the codebook (EMA or loss mode, see ``videosynth.models.vqvae``), take one Adam
step on reconstruction + commitment (+ codebook) loss.

Logged every step: ``loss``, ``loss_recon``, ``psnr`` (dB, [-1, 1] range) and what
the bottleneck reports: ``loss_commit``, ``loss_codebook``, ``perplexity``, ``usage``
(share of codes the batch used), ``restarted`` (dead codes replaced) for ``vq``;
``perplexity``, ``usage`` for ``fsq``; ``loss_kl`` for ``gaussian``. A collapsed
codebook is reported with a warning. The periodic sample grid shows original |
reconstruction side by side for fixed clips of the training set.

Inference (encode, decode, reconstruct) loads a trained tokenizer through
``videosynth.pipelines.TokenizerPipeline``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from videosynth.config import at_least, checked, in_range, positive
from videosynth.checkpoint import unwrap
from videosynth.data import DataConfig
from videosynth.metrics.recon import psnr_of_mse
from videosynth.models.vqvae import PRESETS, VQVAE, VQVAEConfig
from videosynth.train.config import RunConfig, TrainConfig
from videosynth.train.context import Context
from videosynth.train.objective import Objective, adam, set_lr

log = logging.getLogger("videosynth.train")

COLLAPSE_WARN_EVERY = 100  # steps between codebook-collapse checks (and warnings)


# ----------------------------------------------------------------------------- config


@dataclass
class VQOptimConfig:
    """Adam settings (VideoGPT trains its VQ-VAE with Adam at 3e-4)."""

    lr: float = checked(3e-4, positive())
    beta1: float = checked(0.9, in_range(0, 1, high_open=True))
    beta2: float = checked(0.999, in_range(0, 1, high_open=True))
    weight_decay: float = checked(0.0, at_least(0))
    warmup_steps: int = checked(0, at_least(0))  # linear learning-rate warm-up from 0
    decay_steps: int = checked(0, at_least(0))  # cosine decay to 0 over the last steps of train.steps


@dataclass
class VQVAERunConfig(RunConfig):
    """A tokenizer run (``family: vqvae``); ``model: {preset: NAME, ...}`` picks a preset."""

    family: str = "vqvae"
    model: VQVAEConfig = field(default_factory=lambda: dataclasses.replace(PRESETS["demo-32x32x16"]))
    data: DataConfig = field(default_factory=lambda: DataConfig(frames=16, size=32))
    optim: VQOptimConfig = field(default_factory=VQOptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    presets: ClassVar[dict] = {"model": PRESETS}


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
        self.opt = adam(self.model.parameters(), o.lr, (o.beta1, o.beta2), o.weight_decay)

    @property
    def vqvae(self) -> VQVAE:
        return unwrap(self.model)

    def modules(self):
        return {"vqvae": self.model}

    def optimizers(self):
        return {"vqvae": self.opt}

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        set_lr(self.opt, self.cfg.optim, step, self.cfg.train.steps)
        x = batch["video"]  # (B, C, T, H, W) in [-1, 1]
        with self.ctx.autocast():
            out = self.model(x)
        self.ctx.backward_step(out.loss, self.opt, self.model, name="vqvae")
        mse = out.recon_loss.detach().float()
        metrics = {
            "loss": out.loss.detach(),
            "loss_recon": mse,
            "psnr": psnr_of_mse(mse),  # dB; inf for a perfect reconstruction
            **out.bottleneck.metrics(),  # its own regulariser and code statistics
        }
        if step % COLLAPSE_WARN_EVERY == 0 and self.vqvae.usage_collapsed(out):  # a host sync: not every step
            q = out.bottleneck  # a quantiser's output: only a codebook collapses
            log.warning(
                "step %d: VQ-VAE codebook usage collapsed (%.1f%% of %d codes, perplexity %.1f); "
                "lower model.restart_after or optim.lr",
                step, 100 * float(q.usage), self.cfg.model.codebook_size, float(q.perplexity),
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
        recon = model.decode_latents(model.encode_latents(x))  # (n, C, T, H, W)
        return torch.cat([x, recon], dim=-1)  # (n, C, T, H, 2W)
