"""The latent flow-matching pipeline: noise -> ODE through a DiT's velocity -> latents -> the tokenizer's decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from videosynth.config import field_check
from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, null_inputs
from videosynth.models.dit import DiTConfig, build_modules
from videosynth.models.vqvae import VQVAE
from videosynth.pipelines.base import Option
from videosynth.pipelines.two_stage import CONTEXT_OPTION, PRIME_OPTIONS, LatentStagePipeline, primed_frames
from videosynth.sampling.ar import decode_latents
from videosynth.sampling.flow import SOLVERS, FlowSampleConfig, guided, integrate, keep_known
from videosynth.sampling.rollout import windowed


def check_known(known: torch.Tensor, n: int, cfg: DiTConfig) -> None:
    """Observed latents must be ``[n, c, k, h, w]`` on the model's channels and grid (any ``k >= 1``)."""
    c, (_, h, w) = cfg.latent_channels, cfg.latent_shape
    if known.dim() != 5 or known.shape[0] != n or known.shape[1] != c or tuple(known.shape[3:]) != (h, w) \
            or known.shape[2] < 1:
        raise ConfigError(f"observed latents must be [{n}, {c}, k, {h}, {w}], got {list(known.shape)}")


@torch.no_grad()
def sample_window(net: Conditioned, x0: torch.Tensor, labels: torch.Tensor, captions: list[str], steps: int,
                  solver: str, guidance: float, known: torch.Tensor | None = None,
                  audio: torch.Tensor | None = None) -> torch.Tensor:
    """One window of the model's latent length from noise ``x0 [n, c, t, h, w]``; ``known [n, c, k <= t, h, w]``
    (first latent frames) are held on their path and returned exactly; ``audio [n, S]``: the window's sound."""
    project = None
    if known is not None:
        k = known.shape[2]
        full = torch.zeros_like(x0)
        full[:, :, :k] = known.to(x0.device)
        mask = torch.zeros_like(x0, dtype=torch.bool)
        mask[:, :, :k] = True
        project = keep_known(x0, full, mask)

    def model(x, t, null):
        return net(x, labels=labels, captions=captions, audio=audio, force_null=null, t=t).float()

    return integrate(guided(model, guidance), x0, steps, solver, project)


@torch.no_grad()
def sample_flow_latents(net: Conditioned, n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                        captions: list[str] | None = None, steps: int = 16, solver: str = "heun",
                        guidance: float = 1.0, known: torch.Tensor | None = None, total_t: int | None = None,
                        context_t: int | None = None, audio: torch.Tensor | None = None,
                        samples_per_latent: int = 0) -> torch.Tensor:
    """Normalised latents ``float32 [n, c, total_t, h, w]`` integrated from noise through ``net``'s (guided) velocity.

    ``total_t`` latent frames (default: the model's length ``t``). Past ``t``, by sliding windows:
    each next window of ``t`` frames holds the last ``context_t`` latent frames made so far
    (default ``t // 2``) as observed context and adds ``t - context_t`` new ones; positions restart
    at 0 in every window. Noise for every window is drawn on the CPU from ``generator``, in order.

    ``known`` (normalised latents ``[n, c, k, h, w]``): observed first latent frames, held on their
    path and returned exactly (:func:`~videosynth.sampling.flow.keep_known`); with ``k > t`` the clip
    continues from their last ``context_t`` frames.

    ``audio`` (``[n, S]``, ``samples_per_latent`` samples per latent frame): the clip's sound; each
    window hears the part under its own frames (silence past the end).

    Raises:
        ConfigError: ``context_t`` outside ``[1, t)`` when windows are needed, bad ``known`` shape.
    """
    cfg: DiTConfig = net.net.cfg
    device = next(net.parameters()).device
    t = cfg.latent_shape[0]
    total_t = t if total_t is None else total_t
    context_t = t // 2 if context_t is None else context_t
    if total_t < 1:
        raise ConfigError(f"total_t must be at least 1 latent frame, got {total_t}")
    observed = 0
    if known is not None:
        check_known(known, n, cfg)
        observed = known.shape[2]
        if observed > total_t:
            raise ConfigError(f"{observed} observed latent frames are more than the {total_t} requested")
    if max(total_t, observed) > t and not 1 <= context_t < t:
        raise ConfigError(f"context_frames must be in [1, {t}) latent frames to continue past {t}, got {context_t}")
    labels, captions = null_inputs(n, labels, captions)
    labels = labels.to(device)
    shape = (n, cfg.latent_channels, *cfg.latent_shape)
    was_training = net.training
    net.eval()
    try:
        def sound_at(first: int) -> torch.Tensor | None:
            """The sound under latent frames ``first .. first + t`` ``[n, t * samples_per_latent]``."""
            if audio is None:
                return None
            piece = audio[:, first * samples_per_latent:(first + t) * samples_per_latent].to(device)
            return F.pad(piece, (0, t * samples_per_latent - piece.shape[1]))

        def window(length: int, context: torch.Tensor | None, first: int) -> torch.Tensor:
            x0 = torch.randn(shape, generator=generator).to(device)  # always a whole window of t frames
            return sample_window(net, x0, labels, captions, steps, solver, guidance, context, sound_at(first))

        return windowed(window, total_t, t, context_t, None if known is None else known.to(device), dim=2)
    finally:
        net.train(was_training)


@torch.no_grad()
def sample_flow(net: Conditioned, tokenizer: VQVAE, n: int, generator: torch.Generator,
                labels: torch.Tensor | None = None, captions: list[str] | None = None, steps: int = 16,
                solver: str = "heun", guidance: float = 1.0, prime_video: torch.Tensor | None = None,
                frames: int | None = None, context_frames: int | None = None, audio: torch.Tensor | None = None,
                samples_per_frame: int = 0) -> torch.Tensor:
    """``n`` clips ``float32 [n, C, T, H, W]`` in ``[-1, 1]`` (:func:`sample_flow_latents`, denormalised, decoded).

    ``frames``: clip length (a multiple of the tokenizer's time downsampling; default the model's);
    longer than training by sliding windows of ``context_frames`` latent frames of context.
    ``prime_video`` ``float32 [n, C, T0, H, W]`` in ``[-1, 1]``: observed first frames (``T0`` a multiple
    of the time downsampling, at most ``frames``), encoded and kept as the first latent frames.
    ``audio`` ``float32 [n, S]`` (``samples_per_frame`` samples per frame): the sound a sound-driven
    model follows, heard through its cross-attention.

    Raises:
        ConfigError: a frame count that is not a multiple of the time downsampling, a prime longer
            than the clip.
    """
    dt = tokenizer.cfg.downsample[0]
    total_t = None
    if frames is not None:
        if frames % dt:
            raise ConfigError(f"frames={frames} is not a multiple of the tokenizer's time downsampling {dt}")
        total_t = frames // dt
    known = None
    if prime_video is not None:
        if prime_video.shape[2] % dt:
            raise ConfigError(f"prime_video has {prime_video.shape[2]} frames, not a multiple of {dt}")
        device = next(tokenizer.parameters()).device
        known = tokenizer.quantizer.normalize(tokenizer.encode_latents(prime_video.to(device)))  # (n, c, k, h, w)
    latents = sample_flow_latents(net, n, generator, labels, captions, steps, solver, guidance, known, total_t,
                                  context_frames, audio, samples_per_frame * dt)
    return decode_latents(tokenizer, tokenizer.quantizer.denormalize(latents)).float().clamp(-1, 1)


class FlowPipeline(LatentStagePipeline):
    """A DiT trained with flow matching on a continuous tokenizer's latents, with that tokenizer."""

    family = "flow"
    net_name = "dit"
    continuous_latents = True
    model_config_cls = DiTConfig
    sample_config_cls = FlowSampleConfig
    options = (
        Option("steps", int, "ODE steps from noise to data (default: the run's sample.steps)",
               field_check(FlowSampleConfig, "steps")),
        Option("solver", str, "ODE solver", choices=SOLVERS),
        Option("guidance", float, "classifier-free guidance scale (1 = off; needs condition dropout in training)",
               field_check(FlowSampleConfig, "guidance")),
        CONTEXT_OPTION,
        *PRIME_OPTIONS,
    )


    build_modules = staticmethod(build_modules)

    def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True, audio=None, **options):
        s = self.sample_cfg
        if audio is not None and frames is None:
            frames = round(audio.shape[1] * self.condition.audio_fps / self.audio_rate)  # as long as the sound
        return sample_flow(self.net(ema), self.tokenizer.model, n, generator, labels, captions,
                           steps=options.get("steps", s.steps), solver=options.get("solver", s.solver),
                           guidance=options.get("guidance", s.guidance),
                           prime_video=primed_frames(options, n, self.read_prime), frames=frames,
                           context_frames=options.get("context_frames", s.context_frames), audio=audio,
                           samples_per_frame=self.samples_for(1) if audio is not None else 0)
