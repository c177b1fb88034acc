"""The latent flow-matching pipeline: noise -> ODE through a DiT's velocity -> latents -> the tokenizer's decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from videosynth.conditioning.melcodec import JointAudioConfig
from videosynth.config import field_check
from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, cat_conditions, null_inputs
from videosynth.models.dit import DiTConfig
from videosynth.models.joint_dit import build_modules
from videosynth.models.vqvae import VQVAE
from videosynth.pipelines.base import Option, section
from videosynth.pipelines.joint import JOINT_OPTIONS, JointSound, check_joint_options
from videosynth.pipelines.two_stage import CONTEXT_OPTION, PRIME_OPTIONS, LatentStagePipeline, primed_frames
from videosynth.sampling.ar import decode_latents
from videosynth.sampling.flow import (CONTEXT, SOLVERS, FlowSampleConfig, Velocity, guided, hold_context, integrate,
                                     keep_known, path)
from videosynth.sampling.rollout import windowed


def check_known(known: torch.Tensor, n: int, cfg: DiTConfig) -> None:
    """Observed latents must be ``[n, c, k, h, w]`` on the model's channels and grid (any ``k >= 1``)."""
    c, (_, h, w) = cfg.latent_channels, cfg.latent_shape
    if known.dim() != 5 or known.shape[0] != n or known.shape[1] != c or tuple(known.shape[3:]) != (h, w) \
            or known.shape[2] < 1:
        raise ConfigError(f"observed latents must be [{n}, {c}, k, {h}, {w}], got {list(known.shape)}")


def check_shortcut(cfg: DiTConfig, steps: int, solver: str, shift: float) -> int | None:
    """The step level ``log2(steps)`` of a shortcut model (None for a model without step sizes).

    Raises:
        ConfigError: a step count that is not a power of two the model was trained on, another solver
            than Euler, or a shifted grid (a shortcut's steps are its trained sizes, uniform).
    """
    if not cfg.step_levels:
        return None
    level = steps.bit_length() - 1
    if steps != 1 << level or level >= cfg.step_levels:
        sizes = ", ".join(str(1 << k) for k in range(cfg.step_levels))
        raise ConfigError(f"a shortcut run samples in {sizes} steps; got --steps {steps}")
    if solver != "euler":
        raise ConfigError(f"a shortcut run takes its learned steps with --solver euler, got '{solver}'")
    if shift != 1.0:
        raise ConfigError(f"a shortcut run steps on a uniform grid: --shift must be 1, got {shift}")
    return level


def flow_velocity(net: Conditioned, labels: torch.Tensor, captions: list[str], guidance: float,
                  audio: torch.Tensor | None = None, level: int | None = None) -> Velocity:
    """``(x, t) -> v``: ``net``'s velocity under the condition of ``labels`` / ``captions`` / ``audio``
    (encoded once), classifier-free guided with the conditional and null rows in one forward; ``t``
    ``[B]`` or per latent frame ``[B, t]``; ``level``: a shortcut model's step level."""
    inner = net.net
    n = labels.shape[0]
    tokens = inner.takes_context

    def step_of(x: torch.Tensor) -> dict:
        return {} if level is None else {"step": torch.full((x.shape[0],), level, dtype=torch.long, device=x.device)}

    c = net.condition(labels, captions, n, False, audio, tokens=tokens)
    single = net.net_inputs(c)
    paired = None
    if guidance != 1.0 and c is not None:
        pair = net.net_inputs(cat_conditions(c, net.condition(labels, captions, n, True, audio, tokens=tokens)))
        paired = lambda x, t: inner(x, t, **pair, **step_of(x)).float()  # noqa: E731 - (2B, ...)
    return guided(lambda x, t: inner(x, t, **single, **step_of(x)).float(), paired, guidance)


@torch.no_grad()
def sample_window(net: Conditioned, x0: torch.Tensor, labels: torch.Tensor, captions: list[str], steps: int,
                  solver: str, guidance: float, known: torch.Tensor | None = None,
                  audio: torch.Tensor | None = None, shift: float = 1.0, context: str = "project",
                  context_time: torch.Tensor | None = None, history: float = 1.0) -> torch.Tensor:
    """One window of the model's latent length from noise ``x0 [n, c, t, h, w]``; ``known [n, c, k <= t, h, w]``
    (first latent frames) are returned exactly; ``audio [n, S]``: the window's sound.

    ``context``: ``project`` holds ``known`` on its path (:func:`keep_known`); ``clean`` gives it to the
    model at the times ``context_time [k]`` (default 1: clean), noised to them with ``x0``'s own noise,
    and integrates the other frames (:func:`hold_context`; ``history``: its history-guidance weight,
    ``x0``'s noise standing in for the context where it is unseen).

    Raises:
        ConfigError: a shortcut model asked for steps it does not take; ``clean`` context of latent
            frames that split a token (``model.patch[0] > 1``).
    """
    cfg: DiTConfig = net.net.cfg
    velocity = flow_velocity(net, labels, captions, guidance, audio, check_shortcut(cfg, steps, solver, shift))
    if known is None:
        return integrate(velocity, x0, steps, solver, None, shift)
    k = known.shape[2]
    known = known.to(x0.device)
    if context == "project":
        if history != 1.0:
            raise ConfigError("history guidance weighs clean context against none: use context clean")
        full = torch.zeros_like(x0)
        full[:, :, :k] = known
        mask = torch.zeros_like(x0, dtype=torch.bool)
        mask[:, :, :k] = True
        return integrate(velocity, x0, steps, solver, keep_known(x0, full, mask), shift)
    if k % cfg.patch[0]:
        raise ConfigError(f"clean context of {k} latent frames splits the model's tokens of {cfg.patch[0]} "
                          "frames: choose context_frames (or the primed frames) as a multiple of it")
    context_time = torch.ones(k, device=x0.device) if context_time is None else context_time.to(x0.device)
    start = x0.clone()
    start[:, :, :k] = path(x0[:, :, :k], known, context_time.expand(x0.shape[0], k))[0]  # (n, c, k, h, w)
    out = integrate(hold_context(velocity, k, context_time, history, x0[:, :, :k]), start, steps, solver, None,
                    shift)
    out[:, :, :k] = known
    return out


@torch.no_grad()
def sample_flow_latents(net: Conditioned, n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                        captions: list[str] | None = None, steps: int = 16, solver: str = "heun",
                        guidance: float = 1.0, known: torch.Tensor | None = None, total_t: int | None = None,
                        context_t: int | None = None, audio: torch.Tensor | None = None,
                        samples_per_latent: int = 0, shift: float = 1.0, context: str = "project",
                        context_noise: float = 0.0, history_guidance: float = 1.0) -> torch.Tensor:
    """Normalised latents ``float32 [n, c, total_t, h, w]`` integrated from noise through ``net``'s (guided) velocity.

    ``total_t`` latent frames (default: the model's length ``t``). Past ``t``, by sliding windows:
    each next window of ``t`` frames holds the last ``context_t`` latent frames made so far
    (default ``t // 2``) as observed context and adds ``t - context_t`` new ones; positions restart
    at 0 in every window. Noise for every window is drawn on the CPU from ``generator``, in order.

    ``known`` (normalised latents ``[n, c, k, h, w]``): observed first latent frames, returned exactly;
    with ``k > t`` the clip continues from their last ``context_t`` frames. ``context`` says how a
    window keeps its context (:func:`sample_window`): ``project`` (on its path) or ``clean`` (given as
    it is: observed frames at time 1, frames the rollout made itself at the noise level ``context_noise``;
    ``history_guidance``: the weight of the context against none, see :func:`~videosynth.sampling.flow.hold_context`).

    ``audio`` (``[n, S]``, ``samples_per_latent`` samples per latent frame): the clip's sound; each
    window hears the part under its own frames (silence past the end). ``shift``: the time grid's
    shift (:func:`~videosynth.sampling.flow.time_grid`).

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
    if context not in CONTEXT:
        raise ConfigError(f"context must be one of {list(CONTEXT)}, got '{context}'")
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

        def window(length: int, context_frames: torch.Tensor | None, first: int) -> torch.Tensor:
            x0 = torch.randn(shape, generator=generator).to(device)  # always a whole window of t frames
            times = None
            if context_frames is not None:  # observed frames are clean, the rollout's own at context_noise
                made = torch.arange(first, first + context_frames.shape[2], device=device) >= observed
                times = 1 - made.float() * context_noise  # (k,)
            return sample_window(net, x0, labels, captions, steps, solver, guidance, context_frames,
                                 sound_at(first), shift, context, times,
                                 history_guidance if context_frames is not None else 1.0)

        return windowed(window, total_t, t, context_t, None if known is None else known.to(device), dim=2)
    finally:
        net.train(was_training)


@torch.no_grad()
def encode_prime(tokenizer: VQVAE, prime_video: torch.Tensor, window: int = 0) -> torch.Tensor:
    """The latents ``[n, c, T0 / dt, h, w]`` of observed frames ``prime_video [n, C, T0, H, W]``.

    The encoder looks across time, so the latents of a few frames encoded alone are not those of the
    same frames at the start of a clip (its time padding stands where the clip goes on): on the demo's
    data the last latent frame of 4 frames encoded alone differed from the whole clip's by 0.47 mean
    absolute (latents of magnitude 0.7), 0.11 with the last frame held. With ``window`` frames (a
    flow model's clip, which its clean context was encoded from in training) a shorter prime is held
    at its last frame to that length, encoded, and cut back.
    """
    device = next(tokenizer.parameters()).device
    frames = prime_video.shape[2]
    video = prime_video.to(device)
    if frames >= window:
        return tokenizer.encode_latents(video)
    held = torch.cat([video, video[:, :, -1:].expand(-1, -1, window - frames, -1, -1)], dim=2)
    return tokenizer.encode_latents(held)[:, :, :frames // tokenizer.cfg.downsample[0]]


@torch.no_grad()
def sample_flow(net: Conditioned, tokenizer: VQVAE, n: int, generator: torch.Generator,
                labels: torch.Tensor | None = None, captions: list[str] | None = None, steps: int = 16,
                solver: str = "heun", guidance: float = 1.0, prime_video: torch.Tensor | None = None,
                frames: int | None = None, context_frames: int | None = None, audio: torch.Tensor | None = None,
                samples_per_frame: int = 0, shift: float = 1.0, context: str = "project",
                context_noise: float = 0.0, history_guidance: float = 1.0) -> torch.Tensor:
    """``n`` clips ``float32 [n, C, T, H, W]`` in ``[-1, 1]`` (:func:`sample_flow_latents`, denormalised, decoded).

    ``frames``: clip length (a multiple of the tokenizer's time downsampling; default the model's);
    longer than training by sliding windows of ``context_frames`` latent frames of context.
    ``prime_video`` ``float32 [n, C, T0, H, W]`` in ``[-1, 1]``: observed first frames (``T0`` a multiple
    of the time downsampling, at most ``frames``), encoded and kept as the first latent frames; with
    ``context="clean"`` a prime shorter than the model's window is encoded as the start of a whole
    window, its last frame held to the window's end (:func:`encode_prime`).
    ``audio`` ``float32 [n, S]`` (``samples_per_frame`` samples per frame): the sound a sound-driven
    model follows, heard through its cross-attention. ``shift``, ``context``, ``context_noise``,
    ``history_guidance``: see :func:`sample_flow_latents`.

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
        window = net.net.cfg.latent_shape[0] * dt if context == "clean" else 0
        known = tokenizer.quantizer.normalize(encode_prime(tokenizer, prime_video, window))  # (n, c, k, h, w)
    latents = sample_flow_latents(net, n, generator, labels, captions, steps, solver, guidance, known, total_t,
                                  context_frames, audio, samples_per_frame * dt, shift, context, context_noise,
                                  history_guidance)
    return decode_latents(tokenizer, tokenizer.quantizer.denormalize(latents)).float().clamp(-1, 1)


class FlowPipeline(JointSound, LatentStagePipeline):
    """A DiT trained with flow matching on a continuous tokenizer's latents, with that tokenizer; a joint
    audio-video run (``joint.audio: true``) makes each clip's sound too (:class:`~videosynth.pipelines.joint.JointSound`)."""

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
        Option("shift", float, "shift the time grid towards the noise end (> 1: smaller steps there; 1 = uniform)",
               field_check(FlowSampleConfig, "shift")),
        CONTEXT_OPTION,
        Option("context", str, "how observed and earlier frames are kept: project (on their noise path) | clean "
               "(given as they are; default for runs trained with loss.frame_times: independent)", choices=CONTEXT),
        Option("context_noise", float, "with --context clean: the noise level (0..1) of a rollout's own frames "
               "as context in later windows (stabilised rollout; 0 = clean)",
               field_check(FlowSampleConfig, "context_noise")),
        Option("history_guidance", float, "with --context clean: weight of the context against none (history "
               "guidance, twice the model calls where there is context; 1 = off)",
               field_check(FlowSampleConfig, "history_guidance")),
        *PRIME_OPTIONS,
        *JOINT_OPTIONS,
    )
    joint_options = ("prime_video", "given_video")  # one row of given frames per clip: one batch

    build_modules = staticmethod(build_modules)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.joint = section(self.config, "joint", JointAudioConfig, str(self.run_dir))  # off for older runs

    @property
    def takes_audio(self) -> bool:
        return self.joint.audio or super().takes_audio  # a joint run makes clips for a given sound too

    @property
    def audio_rate(self) -> int:
        return self.joint.rate if self.joint.audio else super().audio_rate

    @property
    def audio_fps(self) -> float:
        return self.joint.fps if self.joint.audio else super().audio_fps

    def samples_for(self, frames: int) -> int:
        return self.joint.samples_for(frames) if self.joint.audio else super().samples_for(frames)

    def check_options(self, options: dict) -> dict:
        options = super().check_options(options)
        check_joint_options(self.run_dir, self.joint.audio, options)
        return options

    def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True, audio=None, **options):
        if self.joint.audio:
            return self.generate_with_sound(n, generator, labels, captions, frames, ema, audio, **options).video
        s = self.sample_cfg
        if audio is not None and frames is None:
            frames = round(audio.shape[1] * self.condition.audio_fps / self.audio_rate)  # as long as the sound
        context = options.get("context", s.context or "project")
        if options.get("context_noise") and context != "clean":
            raise ConfigError("--context-noise is the noise level of clean context: add --context clean")
        if options.get("history_guidance", s.history_guidance) != 1.0 and context != "clean":
            raise ConfigError("--history-guidance weighs clean context against none: add --context clean (a run "
                              "trained with loss.frame_times: independent)")
        return sample_flow(self.net(ema), self.tokenizer.model, n, generator, labels, captions,
                           steps=options.get("steps", s.steps), solver=options.get("solver", s.solver),
                           guidance=options.get("guidance", s.guidance),
                           prime_video=primed_frames(options, n, self.read_prime), frames=frames,
                           context_frames=options.get("context_frames", s.context_frames), audio=audio,
                           samples_per_frame=self.samples_for(1) if audio is not None else 0,
                           shift=options.get("shift", s.shift), context=context,
                           context_noise=options.get("context_noise", s.context_noise),
                           history_guidance=options.get("history_guidance", s.history_guidance))
