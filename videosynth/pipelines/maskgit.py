"""The masked-token pipeline: a masked prior's parallel decoding -> token grids -> the tokenizer's decoder.

The composition, in the open (MaskGIT, Chang et al. 2022; MAGVIT, Yu et al. 2023)::

    cond = encode_condition(net.conditioner, n, labels, captions, audio, guided)
    tokens = windowed(lambda t, prime, first: masked.generate(net.net, (n, t, h, w), cond.window(...), g,
                                                              options, prime), total_t, t, context, prime)
    clips = tokenizer.decode(tokens)
"""

from __future__ import annotations

import dataclasses

import torch

from videosynth.config import field_check
from videosynth.models.conditioned import Conditioned
from videosynth.models.maskgit import MaskedPrior, MaskedPriorConfig, build_modules
from videosynth.pipelines.base import Option
from videosynth.pipelines.two_stage import CONTEXT_OPTION, PRIME_OPTIONS, LatentStagePipeline, TokenizerPipeline, \
    primed_frames
from videosynth.sampling import masked
from videosynth.sampling.masked import MaskedSampleConfig
from videosynth.sampling.rollout import check_prime_video, encode_condition, latent_frames, windowed


@torch.inference_mode()
def sample_clips(net: Conditioned, tokenizer: TokenizerPipeline, n: int, generator: torch.Generator | None,
                 options: MaskedSampleConfig, labels: torch.Tensor | None = None, captions: list[str] | None = None,
                 audio: torch.Tensor | None = None, frames: int | None = None,
                 prime_video: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` clips ``float32 [n, C, T, H, W]`` in ``[-1, 1]`` from a conditioned masked prior and its tokenizer.

    ``labels`` int64 ``[n]`` / ``captions`` / ``audio`` ``float32 [n, S]`` condition the clips (null
    where missing); ``frames`` (default: the training length) past the training length rolls out
    in sliding windows; ``prime_video`` ``float32 [n, C, T0, H, W]`` in ``[-1, 1]``: observed frames
    the clips continue (their tokens are kept).

    Raises:
        ConfigError: a frame count the tokenizer cannot make, observed frames of the wrong shape,
            guidance without a condition, or sound of another length.
    """
    prior: MaskedPrior = net.net
    device = prior.head.weight.device
    dt = tokenizer.model_cfg.downsample[0]
    t, h, w = prior.cfg.latent_shape
    total_t = latent_frames(frames, dt, t)
    prime = None
    if prime_video is not None:
        check_prime_video(prime_video, n, total_t * dt, dt)
        prime = tokenizer.encode(prime_video).to(device)  # (n, t0, h, w)
    cond = encode_condition(net.conditioner, n, labels, captions, audio, options.guidance_scale != 1.0, device,
                            frames=total_t * dt)

    def window(length: int, context: torch.Tensor | None, first: int) -> torch.Tensor:
        part = None if cond is None else cond.window(first, length, prior.cfg.frames_per_latent)
        return masked.generate(prior, (n, length, h, w), part, generator, options, prime=context)

    tokens = windowed(window, total_t, t, options.context_frames, prime)  # (n, total_t, h, w)
    return tokenizer.decode(tokens)  # (n, C, total_t * dt, H, W)


class MaskedPipeline(LatentStagePipeline):
    """A masked-token prior over a tokenizer's tokens, with the tokenizer it was trained on."""

    family = "maskgit"
    net_name = "prior"
    model_config_cls = MaskedPriorConfig
    sample_config_cls = MaskedSampleConfig
    options = (
        Option("steps", int, "parallel decoding steps per window", field_check(MaskedSampleConfig, "steps")),
        Option("temperature", float, "softmax temperature of the token draw (0 = the most likely token)",
               field_check(MaskedSampleConfig, "temperature")),
        Option("top_k", int, "draw among the k most likely tokens", field_check(MaskedSampleConfig, "top_k")),
        Option("guidance", float, "classifier-free guidance scale (1 = off; needs condition dropout in training)",
               field_check(MaskedSampleConfig, "guidance_scale")),
        CONTEXT_OPTION,
        *PRIME_OPTIONS,
    )

    build_modules = staticmethod(build_modules)

    def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True, audio=None, **options):
        """Clips ``float32 [n, C, T, H, W]``; ``prime_video`` ``[n | 1, C, T0, H, W]`` observed frames;
        ``audio [n, S]`` the sound of a sound-driven prior (the clip lasts as long as it)."""
        if audio is not None and frames is None:
            frames = round(audio.shape[1] * self.condition.audio_fps / self.audio_rate)
        renamed = {"guidance": "guidance_scale"}
        settings = dataclasses.replace(self.sample_cfg, **{renamed.get(k, k): v for k, v in options.items()
                                                           if k in ("steps", "temperature", "top_k", "guidance",
                                                                    "context_frames")})
        return sample_clips(self.net(ema), self.tokenizer, n, generator, settings, labels=labels, captions=captions,
                            audio=audio, frames=frames, prime_video=primed_frames(options, n, self.read_prime))
