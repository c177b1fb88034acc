"""A joint audio-video flow run at inference: noise -> both streams -> the tokenizer's decoder and the vocoder.

The composition in the open::

    latents, mel = sampling.joint.sample_streams(joint_dit, noise_video, noise_sound, ...)
    clips, sound = tokenizer.decode(latents), MelCodec(...).decode(mel)

A given video (video-to-audio) is encoded by the tokenizer and held clean; a given sound
(audio-to-video) is encoded to log-mel frames and held clean; the given stream is returned as it
was given. :class:`~videosynth.pipelines.flow.FlowPipeline` calls these for runs with
``joint.audio: true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from videosynth.conditioning.melcodec import MelCodec
from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, cat_conditions, null_inputs
from videosynth.models.vqvae import VQVAE
from videosynth.pipelines.base import Option
from videosynth.sampling.ar import decode_latents
from videosynth.sampling.joint import StreamVelocity, sample_streams


class AVClips(NamedTuple):
    """Clips with their sound: ``video float32 [N, C, T, H, W]`` in [-1, 1], ``audio float32 [N, S]`` mono in [-1, 1]."""

    video: torch.Tensor
    audio: torch.Tensor


JOINT_OPTIONS = (
    Option("video", str, "joint audio-video runs: a video whose first frames get a generated soundtrack "
           "(video-to-audio; its frames are kept as they are)"),
    Option("given_video", torch.Tensor, "joint runs: frames float32 [num | 1, C, T, H, W] in [-1, 1] to make sound "
           "for", cli=False),
)
VIDEO_OPTIONS = ("video", "given_video")
# options of video-only flow runs that a joint run (clips of its training length from noise or one given
# stream) does not take
NOT_JOINT = ("prime", "prime_frames", "prime_video", "context_frames", "context", "context_noise",
             "history_guidance")


def check_joint_options(run_dir: Path, joint: bool, options: dict) -> None:
    """One-line errors for options a joint run or a video-only run does not take.

    Raises:
        ConfigError: ``video`` on a video-only run, a continuation option on a joint run, or both
            a video file and frames.
    """
    given = [name for name in VIDEO_OPTIONS if name in options]
    flag = lambda name: "--" + name.replace("_", "-")  # noqa: E731
    if given and not joint:
        raise ConfigError(f"{flag(given[0])} makes sound for a given video, but {run_dir} generates video only "
                          "(train a joint run with joint.audio: true)")
    if len(given) > 1:
        raise ConfigError("give video (a file) or given_video (frames), not both")
    refused = [name for name in NOT_JOINT if name in options]
    if joint and refused:
        raise ConfigError(f"{flag(refused[0])} does not apply to joint audio-video runs ({run_dir} makes clips "
                          "of its training length with their sound)")


def joint_models(net: Conditioned, labels: torch.Tensor, captions: list[str],
                 guidance: float) -> tuple[StreamVelocity, StreamVelocity | None]:
    """The joint model under the condition of ``labels`` / ``captions`` (encoded once): ``(conditional,
    paired)``, ``paired`` the conditional and null rows in one forward (None without guidance)."""
    inner = net.net
    n = labels.shape[0]
    c = net.condition(labels, captions, n, False, None, tokens=inner.takes_context)
    single = net.net_inputs(c)

    def conditional(xv, tv, xa, ta):
        return tuple(v.float() for v in inner(xv, tv, xa, ta, **single))

    if guidance == 1.0 or c is None:
        return conditional, None
    pair = net.net_inputs(cat_conditions(c, net.condition(labels, captions, n, True, None, tokens=inner.takes_context)))

    def paired(xv, tv, xa, ta):
        return tuple(v.float() for v in inner(xv, tv, xa, ta, **pair))

    return conditional, paired


@torch.no_grad()
def sample_joint(net: Conditioned, tokenizer: VQVAE, codec: MelCodec, n: int, generator: torch.Generator,
                 labels: torch.Tensor | None = None, captions: list[str] | None = None, steps: int = 16,
                 solver: str = "heun", guidance: float = 1.0, shift: float = 1.0,
                 video: torch.Tensor | None = None, sound: torch.Tensor | None = None) -> AVClips:
    """``n`` clips with their sound from a :class:`~videosynth.models.joint_dit.JointDiT`.

    ``video`` ``float32 [n, C, T, H, W]`` in [-1, 1] (video-to-audio) or ``sound`` ``float32 [n, S]``
    (audio-to-video): a given stream, held clean and returned as given. The noise of both streams
    is drawn from ``generator`` whichever is given (video first), so one seed gives one draw.

    Raises:
        ConfigError: a given video or sound of another length or size than the run's clips, or both.
    """
    cfg = net.net.cfg
    device = next(net.parameters()).device
    labels, captions = null_inputs(n, labels, captions)
    noise_video = torch.randn((n, cfg.latent_channels, *cfg.latent_shape), generator=generator).to(device)
    noise_sound = torch.randn((n, cfg.sound_mels, cfg.sound_frames), generator=generator).to(device)
    known_video = known_sound = None
    if video is not None:
        known_video = tokenizer.quantizer.normalize(tokenizer.encode_latents(video.to(device)).float())
        if known_video.shape != noise_video.shape:
            raise ConfigError(f"the given video {list(video.shape)} does not make this run's latents "
                              f"{list(noise_video.shape)}: give {cfg.clip_frames} frames at the run's size")
    if sound is not None:
        if sound.dim() != 2 or sound.shape[0] != n or sound.shape[1] != codec.samples_per_frame * cfg.clip_frames:
            raise ConfigError(f"the given sound must be float32 [{n}, {codec.samples_per_frame * cfg.clip_frames}] "
                              f"({cfg.clip_frames} frames at {codec.rate} Hz), got {list(sound.shape)}")
        known_sound = codec.encode(sound.to(device))
    was_training = net.training
    net.eval()
    try:
        conditional, paired = joint_models(net, labels.to(device), captions, guidance)
        latents, mel = sample_streams(conditional, paired, guidance, noise_video, noise_sound, steps, solver, shift,
                                      known_video, known_sound)
    finally:
        net.train(was_training)
    clips = video.float().to(device) if video is not None else \
        decode_latents(tokenizer, tokenizer.quantizer.denormalize(latents)).float().clamp(-1, 1)
    audio = sound.float().to(device) if sound is not None else codec.decode(mel)
    return AVClips(clips, audio)


def given_frames(options: dict, n: int, read) -> torch.Tensor | None:
    """The video of ``video`` (a file, via ``read(path)``) or ``given_video`` (``[C, T, H, W]`` or ``[n | 1, C, T, H,
    W]``) as ``float32 [n, C, T, H, W]``; None without either."""
    clip = read(options["video"]) if "video" in options else options.get("given_video")
    if clip is None:
        return None
    clip = clip[None] if clip.dim() == 4 else clip
    return clip.expand(n, -1, -1, -1, -1) if clip.shape[0] == 1 else clip  # (n, C, T, H, W)


class JointSound:
    """What a flow pipeline does for a joint audio-video run (``joint.audio: true``): clips with their own
    sound (:meth:`with_sound`, :meth:`stream_with_sound`), sound for a given video, clips for a given sound.

    Mixed into :class:`~videosynth.pipelines.flow.FlowPipeline`, whose ``joint`` section, tokenizer,
    network and sampling defaults it uses.
    """

    @property
    def generates_sound(self) -> bool:
        return self.joint.audio

    @property
    def codec(self) -> MelCodec:
        if getattr(self, "_codec", None) is None:
            self._codec = MelCodec.from_config(self.joint).to(self.device)
        return self._codec

    def with_sound(self, num: int = 1, seed: int = 0, label=None, text=None, frames: int | None = None,
                   ema: bool = True, batch_size: int = 16, audio=None, **options) -> AVClips:
        """``num`` clips with their sound (:class:`AVClips`, on the CPU), deterministic by ``seed``; arguments as
        :meth:`~videosynth.pipelines.base.Pipeline.__call__`, plus ``video`` (a file) or ``given_video`` (frames):
        sound for that video. ``audio``: a sound the clips are made for (returned as their sound).

        Raises:
            ConfigError: a video-only run, or what :meth:`__call__` refuses.
        """
        parts = list(self.stream_with_sound(num, seed, label, text, frames, ema, batch_size, audio, **options))
        return AVClips(torch.cat([p.video for p in parts]), torch.cat([p.audio for p in parts]))

    def stream_with_sound(self, num: int = 1, seed: int = 0, label=None, text=None, frames: int | None = None,
                          ema: bool = True, batch_size: int = 16, audio=None, **options):
        """The clips of :meth:`with_sound` in batches of :class:`AVClips` as they are made."""
        from videosynth.pipelines.base import check_finite_clips

        if not self.joint.audio:
            raise ConfigError(f"{self.run_dir} generates video only, without sound (train with joint.audio: true)")

        def make(*args, **kwargs) -> AVClips:
            av = self.generate_with_sound(*args, **kwargs)
            return AVClips(*(check_finite_clips(x.float().cpu(), self.describe()) for x in av))

        return self.checked_stream(make, num, seed, label, text, frames, ema, batch_size, audio, options)

    def generate_with_sound(self, n, generator, labels=None, captions=None, frames=None, ema=True, audio=None,
                            **options) -> AVClips:
        """One batch of a joint run: :func:`sample_joint` with the run's sampling defaults and ``options``."""
        if frames is not None and frames != self.data.frames:
            raise ConfigError(f"frames={frames}: a joint audio-video run makes clips of its training length, "
                              f"{self.data.frames} frames")
        s = self.sample_cfg
        video = given_frames(options, n, lambda path: self.read_prime(path, self.data.frames,
                                                                      options.get("prime_max_pixels")))
        return sample_joint(self.net(ema), self.tokenizer.model, self.codec, n, generator, labels, captions,
                            steps=options.get("steps", s.steps), solver=options.get("solver", s.solver),
                            guidance=options.get("guidance", s.guidance), shift=options.get("shift", s.shift),
                            video=video, sound=audio)

    def sound(self, audio, num: int, frames: int | None) -> torch.Tensor | None:
        """As :meth:`~videosynth.pipelines.base.Pipeline.sound`; a joint run refuses a sound file shorter than its
        clips (silence would stand for the rest) and resamples one at another rate."""
        if self.joint.audio and isinstance(audio, (str, Path)):
            from videosynth.io import probe_audio

            info = probe_audio(audio)
            need = self.data.frames / self.joint.fps
            if info is not None and 0 < info.duration < need - 0.5 / self.joint.rate:
                raise ConfigError(f"{audio} holds {info.duration:.3f} s of sound; {self.run_dir} makes clips of "
                                  f"{self.data.frames} frames at {self.joint.fps:g} fps ({need:.3f} s): give a sound at "
                                  "least that long")
        return super().sound(audio, num, frames)
