"""The latent flow-matching pipeline: noise -> ODE through a DiT's velocity -> latents -> the tokenizer's decoder."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from videosynth.config import field_check
from videosynth.errors import CheckpointError, ConfigError
from videosynth.models.conditioned import Conditioned, null_inputs
from videosynth.models.dit import DiT, DiTConfig
from videosynth.models.vqvae import VQVAE
from videosynth.pipelines.base import Option
from videosynth.pipelines.two_stage import PRIME_OPTIONS, LatentStagePipeline, TokenizerPipeline, primed_frames
from videosynth.sampling.flow import SOLVERS, FlowSampleConfig, guided, integrate, keep_known


def load_latent_tokenizer(name: str, checkpoint: str | None = None, device: torch.device | str = "cpu") -> TokenizerPipeline:
    """The frozen continuous tokenizer a flow run is trained on (weights only).

    Raises:
        CheckpointError: the run is not found. ConfigError: its bottleneck is not continuous.
    """
    if not name:
        raise ConfigError("tokenizer_run is empty: set it to a vqvae run with model.bottleneck: continuous")
    path = Path(name).expanduser()
    if not (path / "config.yaml").is_file():
        raise CheckpointError(f"tokenizer run not found: {path / 'config.yaml'} is missing "
                              "(train a vqvae with model.bottleneck: continuous first)")
    tokenizer = TokenizerPipeline.from_run(path, checkpoint, device)
    if not tokenizer.model.continuous:
        raise ConfigError(f"tokenizer_run {path} has a '{tokenizer.model_cfg.bottleneck}' bottleneck; flow matching "
                          "needs continuous latents (train a vqvae with model.bottleneck: continuous)")
    return tokenizer


@torch.no_grad()
def sample_flow_latents(net: Conditioned, n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                        captions: list[str] | None = None, steps: int = 16, solver: str = "heun",
                        guidance: float = 1.0, known: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised latents ``float32 [n, c, t, h, w]``: noise drawn on the CPU from ``generator`` and
    integrated from t = 0 to 1 through ``net``'s (guided) velocity.

    ``known`` (normalised latents ``[n, c, k, h, w]``, ``k <= t``) are observed first latent frames,
    held on their path and returned exactly (:func:`~videosynth.sampling.flow.keep_known`).
    """
    cfg: DiTConfig = net.net.cfg
    device = next(net.parameters()).device
    x0 = torch.randn(n, cfg.latent_channels, *cfg.latent_shape, generator=generator).to(device)
    project = None
    if known is not None:
        k = known.shape[2]
        if known.dim() != 5 or known.shape[0] != n or tuple(known.shape[3:]) != cfg.latent_shape[1:] or \
                known.shape[1] != cfg.latent_channels or k > cfg.latent_shape[0]:
            raise ConfigError(f"observed latents must be [{n}, {cfg.latent_channels}, k<={cfg.latent_shape[0]}, "
                              f"{cfg.latent_shape[1]}, {cfg.latent_shape[2]}], got {list(known.shape)}")
        full = torch.zeros_like(x0)
        full[:, :, :k] = known.to(device)
        mask = torch.zeros_like(x0, dtype=torch.bool)
        mask[:, :, :k] = True
        project = keep_known(x0, full, mask)
    labels, captions = null_inputs(n, labels, captions)
    labels = labels.to(device)
    was_training = net.training
    net.eval()
    try:
        def model(x, t, null):
            return net(x, labels=labels, captions=captions, force_null=null, t=t).float()

        return integrate(guided(model, guidance), x0, steps, solver, project)
    finally:
        net.train(was_training)


@torch.no_grad()
def sample_flow(net: Conditioned, tokenizer: VQVAE, n: int, generator: torch.Generator,
                labels: torch.Tensor | None = None, captions: list[str] | None = None, steps: int = 16,
                solver: str = "heun", guidance: float = 1.0, prime_video: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` clips ``float32 [n, C, T, H, W]`` in ``[-1, 1]`` (:func:`sample_flow_latents`, denormalised, decoded).

    ``prime_video`` ``float32 [n, C, T0, H, W]`` in ``[-1, 1]``: observed first frames (``T0`` a multiple
    of the tokenizer's time downsampling), encoded and kept as the first latent frames.
    """
    known = None
    if prime_video is not None:
        device = next(tokenizer.parameters()).device
        known = tokenizer.quantizer.normalize(tokenizer.encode(prime_video.to(device)))  # (n, c, k, h, w)
    latents = sample_flow_latents(net, n, generator, labels, captions, steps, solver, guidance, known)
    return tokenizer.decode(tokenizer.quantizer.denormalize(latents)).float().clamp(-1, 1)


class FlowPipeline(LatentStagePipeline):
    """A DiT trained with flow matching on a continuous tokenizer's latents, with that tokenizer."""

    family = "flow"
    net_name = "dit"
    model_config_cls = DiTConfig
    sample_config_cls = FlowSampleConfig
    options = (
        Option("steps", int, "ODE steps from noise to data (default: the run's sample.steps)",
               field_check(FlowSampleConfig, "steps")),
        Option("solver", str, "ODE solver", choices=SOLVERS),
        Option("guidance", float, "classifier-free guidance scale (1 = off; needs condition dropout in training)",
               field_check(FlowSampleConfig, "guidance")),
        *PRIME_OPTIONS,
    )

    def load_tokenizer(self, path: Path, checkpoint: str | None) -> TokenizerPipeline:
        return load_latent_tokenizer(str(path), checkpoint, self.device)

    def make_net(self) -> nn.Module:
        return DiT(self.model_cfg)

    def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True, **options):
        trained = self.data.frames
        if frames is not None and frames != trained:
            raise ConfigError(f"this flow run generates {trained} frames; --frames {frames} (longer videos by "
                              "sliding windows) is not available for flow runs yet")
        s = self.sample_cfg
        return sample_flow(self.net(ema), self.tokenizer.model, n, generator, labels, captions,
                           steps=options.get("steps", s.steps), solver=options.get("solver", s.solver),
                           guidance=options.get("guidance", s.guidance),
                           prime_video=primed_frames(options, n, self.read_prime))
