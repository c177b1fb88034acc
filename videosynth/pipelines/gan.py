"""Inference pipelines of the GAN families: the (EMA) generator and its conditioner, nothing else.

``G(z | c)`` in the open: a VideoGAN draws ``z`` and renders a clip of its fixed length; a
MoCoGAN draws a content code and a motion sequence and can roll the motion out past its
training length, or lay clips out as a content x motion grid or a content interpolation.
"""

from __future__ import annotations

from videosynth.config import at_least
from videosynth.checkpoint import EMA_FILE, MODEL_FILE
from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, fit_audio_dim, fit_cond_dim
from videosynth.models.mocogan import MoCoGANConfig
from videosynth.models.mocogan import build_generator as build_mocogan_generator
from videosynth.models.videogan import VideoGANConfig
from videosynth.models.videogan import build_generator as build_videogan_generator
from videosynth.pipelines.base import Option, Pipeline, section
from videosynth.sampling.gan import GRIDS, sample_mocogan, sample_videogan, standing_labels, standing_statistics


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
    """MoCoGAN: content + motion codes; any clip length; grids that separate content from motion."""

    family = "mocogan"
    model_config_cls = MoCoGANConfig
    options = (
        Option("grid", str, "rows share content, columns share motion", choices=GRIDS),
        Option("interpolate", int, "clips per row interpolating between two content codes", at_least(1)),
        Option("action", int, "the categorical action code of every clip", at_least(0)),
    )
    joint_options = ("grid", "interpolate")

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
        return options

    def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True, audio=None, **options):
        return sample_mocogan(self.generator(ema), n, generator, labels, captions, frames, audio=audio, **options)
