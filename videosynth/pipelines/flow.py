"""The latent flow-matching pipeline: noise -> ODE through a DiT's velocity -> latents -> the tokenizer's decoder."""

from __future__ import annotations

from pathlib import Path

import torch

from videosynth.checkpoint import EMA_FILE, MODEL_FILE
from videosynth.conditioning import build_conditioner
from videosynth.config import field_check
from videosynth.errors import CheckpointError, ConfigError
from videosynth.models.conditioned import Conditioned, null_inputs
from videosynth.models.dit import DiT, DiTConfig
from videosynth.models.vqvae import VQVAE
from videosynth.pipelines.base import Option, Pipeline, section
from videosynth.pipelines.two_stage import TokenizerPipeline, resolve_run_path
from videosynth.sampling.flow import SOLVERS, FlowSampleConfig, guided, integrate


def load_latent_tokenizer(name: str, checkpoint: str | None = None, device: torch.device | str = "cpu",
                          relative_to: Path | None = None) -> TokenizerPipeline:
    """The frozen continuous tokenizer a flow run is trained on (weights only).

    Raises:
        CheckpointError: the run is not found. ConfigError: its bottleneck is not continuous.
    """
    if not name:
        raise ConfigError("tokenizer_run is empty: set it to a vqvae run with model.bottleneck: continuous")
    path = resolve_run_path(name, relative_to) if relative_to is not None else Path(name).expanduser()
    if not (path / "config.yaml").is_file():
        raise CheckpointError(f"tokenizer run not found: {path / 'config.yaml'} is missing "
                              "(train a vqvae with model.bottleneck: continuous first)")
    tokenizer = TokenizerPipeline.from_run(path, checkpoint, device)
    if not tokenizer.model.continuous:
        raise ConfigError(f"tokenizer_run {path} has a '{tokenizer.model_cfg.bottleneck}' bottleneck; flow matching "
                          "needs continuous latents (train a vqvae with model.bottleneck: continuous)")
    return tokenizer


@torch.no_grad()
def sample_flow(net: Conditioned, tokenizer: VQVAE, n: int, generator: torch.Generator,
                labels: torch.Tensor | None = None, captions: list[str] | None = None, steps: int = 16,
                solver: str = "heun", guidance: float = 1.0) -> torch.Tensor:
    """``n`` clips ``float32 [n, C, T, H, W]`` in ``[-1, 1]``: noise drawn on the CPU from ``generator``,
    integrated from t = 0 to 1 through ``net``'s velocity, denormalised and decoded."""
    cfg: DiTConfig = net.net.cfg
    device = next(net.parameters()).device
    x0 = torch.randn(n, cfg.latent_channels, *cfg.latent_shape, generator=generator).to(device)
    labels, captions = null_inputs(n, labels, captions)
    labels = labels.to(device)
    was_training = net.training
    net.eval()
    try:
        def model(x, t, null):
            return net(x, labels=labels, captions=captions, force_null=null, t=t).float()

        latents = integrate(guided(model, guidance), x0, steps, solver)
    finally:
        net.train(was_training)
    return tokenizer.decode(tokenizer.quantizer.denormalize(latents)).float().clamp(-1, 1)


class FlowPipeline(Pipeline):
    """A DiT trained with flow matching on a continuous tokenizer's latents, with that tokenizer."""

    family = "flow"
    options = (
        Option("steps", int, "ODE steps from noise to data (default: the run's sample.steps)",
               field_check(FlowSampleConfig, "steps")),
        Option("solver", str, "ODE solver", choices=SOLVERS),
        Option("guidance", float, "classifier-free guidance scale (1 = off; needs condition dropout in training)",
               field_check(FlowSampleConfig, "guidance")),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_cfg = section(self.config, "model", DiTConfig, str(self.run_dir))
        self.sample_cfg = section(self.config, "sample", FlowSampleConfig, str(self.run_dir))
        name = self.config.get("tokenizer_run") or ""
        if not name:
            raise CheckpointError(f"{self.run_dir}/config.yaml names no tokenizer_run")
        try:
            self.tokenizer = load_latent_tokenizer(name, self.config.get("tokenizer_checkpoint"), self.device,
                                                   relative_to=self.run_dir)
        except CheckpointError:
            raise CheckpointError(f"the tokenizer run {name} of {self.run_dir} is not found (looked in the working "
                                  f"directory and next to {self.run_dir}); copy it back or fix tokenizer_run in "
                                  f"{self.run_dir}/config.yaml") from None
        self._nets: dict[bool, Conditioned] = {}

    def net(self, ema: bool = True) -> Conditioned:
        """The conditioned DiT with the EMA (default) or raw weights, loaded once each."""
        if ema not in self._nets:
            net = self.build(lambda: Conditioned(DiT(self.model_cfg), build_conditioner(self.condition)))
            modules = {"dit": net.net}
            if net.conditioner is not None:
                modules["conditioner"] = net.conditioner
            has_ema = EMA_FILE in self.meta.get("files", {})
            self.load_weights(modules, EMA_FILE if ema and has_ema else MODEL_FILE)
            self._nets[ema] = net.eval()
        return self._nets[ema]

    def check_options(self, options: dict) -> dict:
        options = super().check_options(options)
        if options.get("guidance", 1.0) != 1.0 and self.condition_kind == "none":
            raise ConfigError(f"--guidance needs a conditional model; {self.run_dir} has condition.kind: none")
        return options

    def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True, **options):
        trained = self.data.frames
        if frames is not None and frames != trained:
            raise ConfigError(f"this flow run generates {trained} frames; --frames {frames} (longer videos by "
                              "sliding windows) is not available for flow runs yet")
        s = self.sample_cfg
        return sample_flow(self.net(ema), self.tokenizer.model, n, generator, labels, captions,
                           steps=options.get("steps", s.steps), solver=options.get("solver", s.solver),
                           guidance=options.get("guidance", s.guidance))
