"""Inference pipelines of the GAN families: the (EMA) generator and its conditioner, nothing else.

``G(z | c)`` in the open: a VideoGAN draws ``z`` and renders a clip of its fixed length; a
MoCoGAN draws a content code and a motion sequence and can roll the motion out past its
training length, lay clips out as a content x motion grid or a content interpolation, or start
every clip from a given frame (image-to-video: the frame's content code found by inversion).
"""

from __future__ import annotations

import torch

from videosynth.config import at_least
from videosynth.checkpoint import EMA_FILE, MODEL_FILE
from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, fit_audio_dim, fit_cond_dim
from videosynth.models.mocogan import MoCoGANConfig
from videosynth.models.mocogan import build_generator as build_mocogan_generator
from videosynth.models.videogan import VideoGANConfig
from videosynth.models.videogan import build_generator as build_videogan_generator
from videosynth.pipelines.base import Option, Pipeline, section
from videosynth.pipelines.two_stage import PRIME_OPTIONS, primed_frames, read_prime_video
from videosynth.sampling.gan import (GRIDS, INVERT_STEPS, sample_mocogan, sample_videogan, standing_labels,
                                     standing_statistics)


class GANPipeline(Pipeline):
    """A conditioned generator loaded twice at most: the EMA copy (default) and, on demand, the raw one."""

    model_config_cls: type = VideoGANConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_cfg = fit_cond_dim(section(self.config, "model", self.model_config_cls, str(self.run_dir)),
                                      self.condition)
        if hasattr(self.model_cfg, "audio_dim"):
            self.model_cfg = fit_audio_dim(self.model_cfg, self.condition)
        self._generators: dict[bool, Conditioned] = {}

    def make_generator(self) -> Conditioned:
        raise NotImplementedError

    def generator(self, ema: bool = True) -> Conditioned:
        """The generator with the checkpoint's EMA (``ema=True``) or raw weights, built once each."""
        if ema not in self._generators:
            # built outside inference mode even when first asked for inside it: inverting a prime frame
            # differentiates through these weights later
            with torch.inference_mode(False):
                net = self.build(self.make_generator)
                has_ema = EMA_FILE in self.meta.get("files", {})
                self.load_weights({"generator": net}, EMA_FILE if ema and has_ema else MODEL_FILE)
                self._generators[ema] = self.prepare(net, ema)
        return self._generators[ema]

    def prepare(self, net: Conditioned, ema: bool) -> Conditioned:
        if not ema:
            return net
        # the EMA weights need BatchNorm statistics of their own (see standing_statistics);
        # a sound-driven G renders them with the null sound
        return standing_statistics(net, self.noise_dim, standing_labels(self.condition))


class VideoGANPipeline(GANPipeline):
    """VideoGAN / two-stream VGAN: ``G(z | c)`` with fixed-length clips; no sampling options."""

    family = "videogan"
    model_config_cls = VideoGANConfig

    def make_generator(self) -> Conditioned:
        return build_videogan_generator(self.model_cfg, self.condition)

    @property
    def noise_dim(self) -> int:
        return self.model_cfg.z_dim

    def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True, audio=None, **options):
        if frames is not None and frames != self.model_cfg.frames:
            raise ConfigError(f"this VideoGAN generates {self.model_cfg.frames} frames; frames={frames} "
                              "is not possible (the clip length is fixed by the architecture)")
        if audio is not None and audio.shape[1] != self.samples_for(self.model_cfg.frames):
            raise ConfigError(f"this VideoGAN generates {self.model_cfg.frames} frames: give "
                              f"{self.samples_for(self.model_cfg.frames)} samples of sound, got {audio.shape[1]}")
        return sample_videogan(self.generator(ema), n, self.model_cfg.z_dim, generator, labels, captions, audio)


class MoCoGANPipeline(GANPipeline):
    """MoCoGAN: content + motion codes; any clip length; grids that separate content from motion;
    image-to-video (and video prediction): the codes of given first frames found by inversion, the
    motion after them drawn."""

    family = "mocogan"
    model_config_cls = MoCoGANConfig
    options = (
        Option("grid", str, "rows share content, columns share motion", choices=GRIDS),
        Option("interpolate", int, "clips per row interpolating between two content codes", at_least(1)),
        Option("action", int, "the categorical action code of every clip", at_least(0)),
        *PRIME_OPTIONS,
        Option("invert_steps", int, f"Adam steps fitting the codes to the observed frames of --prime (default "
               f"{INVERT_STEPS})", at_least(0)),
    )
    joint_options = ("grid", "interpolate", "prime_video")

    def make_generator(self) -> Conditioned:
        return build_mocogan_generator(self.model_cfg, self.condition)

    @property
    def noise_dim(self) -> int:
        return self.model_cfg.content_dim

    def check_options(self, options: dict) -> dict:
        options = super().check_options(options)
        actions = self.model_cfg.num_actions
        if "action" in options and options["action"] >= actions:
            raise ConfigError(f"--action {options['action']}: this model has "
                              f"{actions} action codes{' (none)' if not actions else ''}")
        if "grid" in options and "interpolate" in options:
            raise ConfigError("give --grid or --interpolate, not both")
        primed = "prime" in options or "prime_video" in options
        if primed and ("grid" in options or "interpolate" in options):
            raise ConfigError("--prime fixes every clip's content: give --prime or --grid / --interpolate, not both")
        if "invert_steps" in options and not primed:
            raise ConfigError("--invert-steps needs --prime IMAGE|VIDEO")
        self.check_guidance_and_prime(options)
        return options

    def read_prime(self, path: str, prime_frames: int | None = None, max_pixels: int | None = None) -> torch.Tensor:
        """The first ``prime_frames`` frames (default 1: image-to-video) of an image or video file as
        ``float32 [C, k, H, W]`` in ``[-1, 1]`` at the run's size (see
        :func:`~videosynth.pipelines.two_stage.read_prime_video`)."""
        return read_prime_video(path, prime_frames or 1, 1, self.data, max_pixels)

    def observed(self, options: dict, n: int) -> torch.Tensor | None:
        """The frames every clip starts from, ``float32 [n, C, k, H, W]`` in ``[-1, 1]``: from ``prime`` (a file)
        or ``prime_video`` (``[C, k, H, W]`` or ``[n | 1, C, k, H, W]``); None without either.

        Raises:
            ConfigError: a ``prime_video`` of another shape than this run's clips.
            DataError: an unreadable or missing file, or one with fewer frames than ``prime_frames``.
        """
        video = primed_frames(options, n, self.read_prime)  # (n, C, k, H, W) or None
        if video is None:
            return None
        c, size = self.model_cfg.channels, self.model_cfg.size
        if video.dim() != 5 or video.shape[0] != n or video.shape[2] < 1 or \
                (video.shape[1], *video.shape[3:]) != (c, size, size):
            raise ConfigError(f"prime_video must be [{n}, {c}, k, {size}, {size}] (k >= 1 frames of this run's "
                              f"clips), got {list(video.shape)}")
        return video.float().to(self.device)

    def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True, audio=None, **options):
        observed = self.observed(options, n)
        options = {k: v for k, v in options.items() if k not in {o.name for o in PRIME_OPTIONS}}
        return sample_mocogan(self.generator(ema), n, generator, labels, captions, frames, audio=audio,
                              prime_video=observed, **options)
