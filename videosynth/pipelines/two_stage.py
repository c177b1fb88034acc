"""Inference pipelines of the two-stage family: a tokenizer run, and a prior run over its tokens.

The composition is written out here, in the open (VideoGPT, Yan et al. 2021)::

    tokens = sampling.ar.generate(prior, (t, h, w), n, cond=conditioner(labels, captions))
    clips = tokenizer.decode(tokens)

The prior never loads its tokenizer itself: :class:`TwoStagePipeline` loads both runs (the
tokenizer from the ``tokenizer_run`` the prior's config names) and composes them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import torch

from videosynth.checkpoint import MODEL_FILE, load_weights
from videosynth.config import at_least, field_check
from videosynth.errors import CheckpointError, ConfigError
from videosynth.models.conditioned import Conditioned
from videosynth.models.lora import FinetuneConfig
from videosynth.models.transformer import PriorConfig
from videosynth.models.transformer import build_modules as build_prior_modules
from videosynth.models.vqvae import VQVAE, VQVAEConfig
from videosynth.pipelines.base import Option, Pipeline, resolve_run_path, section
from videosynth.pipelines.finetune import adapted_network, adapter_file
from videosynth.sampling import ar
from videosynth.sampling.ar import ARSampleConfig, decode_tokens
from videosynth.sampling.rollout import check_prime_video, encode_condition, latent_frames, windowed


class TokenizerPipeline(Pipeline):
    """A trained VQ-VAE: ``encode`` clips to token grids and ``decode`` grids to clips (discrete bottleneck),
    ``encode_latents`` / ``decode_latents`` (every bottleneck); it cannot generate."""

    family = "vqvae"
    weight_files = (MODEL_FILE,)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_cfg = section(self.config, "model", VQVAEConfig, str(self.run_dir))
        self.model = self.build(lambda: VQVAE(self.model_cfg))
        self.load_weights({"vqvae": self.model})

    @property
    def weights_sha256(self) -> str | None:
        """Hash of the weights file, recorded by token caches to match them to their tokenizer."""
        return self.meta.get("files", {}).get(MODEL_FILE)

    def latent_shape(self, frames: int, size: int) -> tuple[int, int, int]:
        return self.model.latent_shape(frames, size)

    @torch.inference_mode()
    def encode(self, videos: torch.Tensor) -> torch.Tensor:
        """``float32 [B, C, T, H, W]`` in ``[-1, 1]`` -> token grids ``int64 [B, t, h, w]`` (on the CPU).
        ConfigError for a continuous bottleneck (see :meth:`encode_latents`)."""
        return self.model.encode(videos.to(self.device)).cpu()

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token grids ``int64 [B, t, h, w]`` -> ``float32 [B, C, T, H, W]`` in ``[-1, 1]`` (on the CPU)."""
        return self.model.decode(tokens.to(self.device)).float().cpu()

    @torch.inference_mode()
    def encode_latents(self, videos: torch.Tensor) -> torch.Tensor:
        """``float32 [B, C, T, H, W]`` in ``[-1, 1]`` -> latents ``float32 [B, c, t, h, w]`` (on the CPU): a
        continuous bottleneck's mean latents (not normalised), a discrete one's codes as vectors."""
        return self.model.encode_latents(videos.to(self.device)).cpu()

    @torch.inference_mode()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``float32 [B, c, t, h, w]`` -> ``float32 [B, C, T, H, W]`` in ``[-1, 1]`` (on the CPU)."""
        return self.model.decode_latents(latents.to(self.device)).float().cpu()

    def reconstruct(self, videos: torch.Tensor) -> torch.Tensor:
        """``decode_latents(encode_latents(videos))``, same layout and range as ``videos``."""
        return self.decode_latents(self.encode_latents(videos))

    def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True, **options):
        second = ("a flow model on it (family: flow" if self.model.continuous
                  else "a transformer prior on it (family: transformer")
        raise ConfigError(
            f"{self.run_dir} is a vqvae run, a tokenizer that cannot generate clips: train {second}, "
            "tokenizer_run: <this run>) and sample from that run; use `videosynth reconstruct` to view reconstructions"
        )


def load_tokenizer_run(name: str, checkpoint: str | None, sha256: str | None, continuous: bool,
                       device: torch.device | str = "cpu", run_dir: Path | None = None) -> TokenizerPipeline:
    """The frozen tokenizer a second-stage run trains on or samples with (weights only).

    ``name`` (``tokenizer_run:``) is found by :func:`resolve_run_path`; ``checkpoint``
    (``tokenizer_checkpoint:``, recorded when the run started) is the one loaded, never another;
    ``sha256`` (``tokenizer_sha256:``, recorded with it) must be its weights' hash. ``continuous``:
    the stage needs float latents (flow), else tokens (vq / fsq).

    Raises:
        ConfigError: no ``tokenizer_run``, or a bottleneck of the other kind.
        CheckpointError: the run or its checkpoint is not found, or its weights are not the ones
            the run was trained on.
    """
    kind = "model.bottleneck: gaussian" if continuous else "model.bottleneck: vq | fsq"
    if not name:
        raise ConfigError(f"tokenizer_run is empty: set it to the run directory of a vqvae trained with {kind}")
    path = resolve_run_path(name, run_dir)
    if not (path / "config.yaml").is_file():
        where = f"inside and next to {run_dir}, then as given" if run_dir is not None else "as given"
        raise CheckpointError(f"tokenizer run {name} not found (looked {where}): train the vqvae first, or fix "
                              f"tokenizer_run{f' in {run_dir}/config.yaml' if run_dir is not None else ''}")
    tokenizer = TokenizerPipeline.from_run(path, checkpoint, device)
    if sha256 and tokenizer.weights_sha256 != sha256:
        raise CheckpointError(f"the tokenizer at {tokenizer.checkpoint} is not the one "
                              f"{run_dir or 'this run'} was trained on (its weights differ): put that tokenizer "
                              f"run back, or point tokenizer_run at it")
    if tokenizer.model.continuous != continuous:
        have = "continuous" if tokenizer.model.continuous else "discrete"
        need = "continuous latents" if continuous else "discrete tokens"
        raise ConfigError(f"tokenizer_run {path} has a {have} bottleneck ('{tokenizer.model_cfg.bottleneck}'); this "
                          f"stage needs {need} (train a vqvae with {kind})")
    return tokenizer


# The largest --prime frame read by default (4K UHD): an 8192 x 8192 file of a few hundred KB would
# otherwise take gigabytes to decode; --prime-max-pixels raises it.
PRIME_MAX_PIXELS = 3840 * 2160


def read_prime_video(path: str, prime_frames: int | None, time_downsample: int, data,
                     max_pixels: int | None = None) -> torch.Tensor:
    """The first ``prime_frames`` frames of a video file as ``float32 [C, T0, H, W]`` at ``data.size``.

    ``prime_frames`` defaults to half the training clip (``data.frames``); it is rounded down to a
    multiple of the tokenizer's time downsampling. A file whose frames hold more than ``max_pixels``
    (default :data:`PRIME_MAX_PIXELS`) is refused from its header, before anything is decoded.

    Raises:
        ConfigError: fewer than one latent frame requested, or frames over the size cap;
            DataError: unreadable / short video.
    """
    from videosynth.data.transforms import resize_crop, to_float
    from videosynth.io import read_clip, stored_size

    wanted = prime_frames if prime_frames is not None else data.frames // 2
    wanted -= wanted % time_downsample
    if wanted < time_downsample:
        raise ConfigError(f"--prime-frames must be at least {time_downsample} (one latent frame of the tokenizer)")
    width, height = stored_size(path)
    cap = max_pixels or PRIME_MAX_PIXELS
    if width * height > cap:
        raise ConfigError(f"--prime {path}: its frames are {width}x{height} ({width * height} pixels), over the "
                          f"{cap} read by default; resize it, or raise --prime-max-pixels")
    clip = to_float(read_clip(path, 0, wanted))  # (C, T0, H, W)
    return resize_crop(clip, data.size)


def primed_frames(options: dict, n: int, read) -> torch.Tensor | None:
    """Observed frames ``float32 [n, C, T0, H, W]`` from ``prime`` (a file, via ``read(path, frames)``) or
    ``prime_video`` (a tensor ``[C, T0, H, W]`` or ``[n | 1, C, T0, H, W]``); None without either.
    ``read(path, frames, max_pixels)`` reads a file."""
    prime_video = options.get("prime_video")
    if prime_video is not None and options.get("prime") is not None:
        raise ConfigError("give prime (a video file) or prime_video (a tensor), not both")
    if options.get("prime") is not None:
        prime_video = read(options["prime"], options.get("prime_frames"), options.get("prime_max_pixels"))
    if prime_video is not None and prime_video.dim() == 4:
        prime_video = prime_video.unsqueeze(0)
    if prime_video is not None and prime_video.shape[0] == 1:
        prime_video = prime_video.expand(n, -1, -1, -1, -1)  # (n, C, T0, H, W)
    return prime_video


SETTING = {"guidance": "guidance_scale"}  # sampling options named apart from their sample: field


@torch.inference_mode()
def token_clips(sampler, net: Conditioned, tokenizer: TokenizerPipeline, n: int, generator: torch.Generator | None,
                options, labels: torch.Tensor | None = None, captions: list[str] | None = None,
                audio: torch.Tensor | None = None, frames: int | None = None,
                prime_video: torch.Tensor | None = None) -> torch.Tensor:
    """``tokenizer.decode(sampler(prior, ...))``: ``n`` clips ``float32 [n, C, T, H, W]`` in ``[-1, 1]``.

    ``sampler(prior, (n, t, h, w), cond, generator, options, prime)`` is a token sampler
    (:func:`videosynth.sampling.ar.sample`, :func:`videosynth.sampling.masked.generate`) and
    ``options`` its settings (``guidance_scale`` and ``context_frames`` read here). ``labels``
    int64 ``[n]`` / ``captions`` / ``audio`` ``float32 [n, S]`` condition the clips (null where
    missing); ``frames`` (default: the training length) past the training length rolls out in
    sliding windows; ``prime_video`` ``float32 [n, C, T0, H, W]`` in ``[-1, 1]``: observed frames
    the clips continue (their tokens are kept).

    Raises:
        ConfigError: a frame count the tokenizer cannot make, observed frames of the wrong shape,
            guidance without a condition, or sound of another length.
    """
    prior = net.net
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
        return sampler(prior, (n, length, h, w), part, generator, options, prime=context)

    tokens = windowed(window, total_t, t, options.context_frames, prime)  # (n, total_t, h, w)
    return decode_tokens(tokenizer.model, tokens)  # (n, C, total_t * dt, H, W)


# Videos longer than training: sliding windows, each starting from the last latent frames made so far.
CONTEXT_OPTION = Option("context_frames", int, "latent frames of context per window when sampling past the "
                        "training length (default: half a window)", at_least(0))

# The options of every generator that can continue observed frames (video prediction).
PRIME_OPTIONS = (
    Option("prime", str, "a video whose first frames are continued (video prediction; mocogan: an image too, "
           "animated)"),
    Option("prime_frames", int, "how many frames of --prime to observe (default: half the clip; mocogan: 1)",
           at_least(1)),
    Option("prime_max_pixels", int, f"largest --prime frame read, width x height (default {PRIME_MAX_PIXELS})",
           at_least(1)),
    Option("prime_video", torch.Tensor, "observed frames float32 [num | 1, C, T0, H, W] in [-1, 1]", cli=False),
)


class LatentStagePipeline(Pipeline):
    """A second-stage generator over the latents of the tokenizer run it was trained on.

    Subclasses name the checkpoint key of their network (``net_name``), its config and sampling
    config classes, the model file's ``build_modules`` (which training calls too) and whether it
    models continuous latents. Shared here: the configs, the tokenizer it was trained on
    (:func:`load_tokenizer_run`), the conditioned network loaded once per weight set, the
    guidance/prime checks, prime reading.
    """

    net_name: ClassVar[str] = ""
    model_config_cls: ClassVar[type] = object
    sample_config_cls: ClassVar[type] = object
    joint_options = ("prime_video",)  # one row of observed frames per clip: one batch
    continuous_latents: ClassVar[bool] = False  # the stage models float latents (flow), not tokens

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_cfg = section(self.config, "model", self.model_config_cls, str(self.run_dir))
        self.sample_cfg = section(self.config, "sample", self.sample_config_cls, str(self.run_dir))
        self.tokenizer = load_tokenizer_run(self.config.get("tokenizer_run") or "",
                                            self.config.get("tokenizer_checkpoint"), self.config.get("tokenizer_sha256"),
                                            self.continuous_latents, self.device, self.run_dir)
        self.finetune = section(self.config, "finetune", FinetuneConfig, str(self.run_dir))
        self._nets: dict[bool, Conditioned] = {}

    def net(self, ema: bool = True) -> Conditioned:
        """The conditioned network with the EMA (default) or raw weights, loaded once each; a LoRA
        fine-tune's is its base run's network with the adapter merged in (:mod:`.finetune`)."""
        if ema not in self._nets:
            def factory():
                return type(self).build_modules(self.model_cfg, self.condition)[self.net_name]

            if self.finetune.adapted:
                file = adapter_file(self.meta, ema)
                adapter = load_weights(self.checkpoint, file).get(self.net_name, {})
                net = self.build(lambda: adapted_network(factory, self.finetune, self.net_name, self.run_dir, adapter,
                                                         str(self.checkpoint / file)))
                self._nets[ema] = net.to(self.device).eval().requires_grad_(False)
            else:
                self._nets[ema] = self.load_conditioned(self.net_name, factory, ema)
        return self._nets[ema]

    def check_options(self, options: dict) -> dict:
        options = super().check_options(options)
        self.check_guidance_and_prime(options)
        return options

    def read_prime(self, path: str, prime_frames: int | None = None, max_pixels: int | None = None) -> torch.Tensor:
        """See :func:`read_prime_video` (this run's tokenizer and training clip)."""
        return read_prime_video(path, prime_frames, self.tokenizer.model_cfg.downsample[0], self.data, max_pixels)


class TokenPriorPipeline(LatentStagePipeline):
    """A prior over a tokenizer's tokens with that tokenizer: its ``sampler`` (one token sampler
    signature) composed with the tokenizer by :func:`token_clips`."""

    sampler: ClassVar = None

    def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True, audio=None, **options):
        """Clips ``float32 [n, C, T, H, W]``; ``prime_video`` ``[n | 1, C, T0, H, W]`` observed frames;
        ``audio [n, S]`` the sound of a sound-driven prior (the clip lasts as long as it)."""
        if audio is not None and frames is None:
            frames = round(audio.shape[1] * self.condition.audio_fps / self.audio_rate)
        settings = dataclasses.replace(self.sample_cfg, **{SETTING.get(k, k): v for k, v in options.items()
                                                           if SETTING.get(k, k) in self.setting_names})
        return token_clips(self.sampler, self.net(ema), self.tokenizer, n, generator, settings, labels=labels,
                           captions=captions, audio=audio, frames=frames,
                           prime_video=primed_frames(options, n, self.read_prime))

    @property
    def setting_names(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.sample_config_cls)}


class TwoStagePipeline(TokenPriorPipeline):
    """An autoregressive prior over a tokenizer's tokens, with the tokenizer it was trained on."""

    family = "transformer"
    net_name = "prior"
    model_config_cls = PriorConfig
    sample_config_cls = ARSampleConfig
    options = (
        Option("temperature", float, "softmax temperature (0 = greedy)", field_check(ARSampleConfig, "temperature")),
        Option("top_k", int, "sample among the k most likely tokens", field_check(ARSampleConfig, "top_k")),
        Option("top_p", float, "nucleus sampling: the smallest set of tokens with this probability",
               field_check(ARSampleConfig, "top_p")),
        Option("guidance", float, "classifier-free guidance scale (1 = off; needs condition dropout in training)",
               field_check(ARSampleConfig, "guidance_scale")),
        CONTEXT_OPTION,
        Option("use_cache", bool, "KV-cached decoding (default on; off = the slow reference path)"),
        *PRIME_OPTIONS,
    )

    build_modules = staticmethod(build_prior_modules)

    sampler = staticmethod(ar.sample)
