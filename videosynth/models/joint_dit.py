"""One diffusion transformer over a clip's video latents and its sound's log-mel frames together.

Joint audio-video generation as two token streams in one DiT (the single-transformer design of
MM-DiT, Esser et al. 2024, and of joint audio-video models such as Ovi; MM-Diffusion, Ruan et al.
2023, couples two networks instead): the video latents are cut into patches as in
:class:`~videosynth.models.dit.DiT`, the normalised log-mel frames
(:mod:`~videosynth.conditioning.melcodec`) into tokens of ``sound_patch`` mel frames; each stream
has its own input and output projections, learned positions and a learned stream embedding, and
all tokens attend to each other in every block (joint self-attention), so a click can find the
bounce it belongs to anywhere in the clip. One transformer rather than twin branches with
cross-attention: the streams share every weight but their ends, which suits the small budgets
this toolkit trains on, and joint attention is one ``scaled_dot_product_attention`` call.

Both streams carry a shared *clock*: a learned map of sinusoidal features of the time (in video
frames) at the centre of the span each token covers, so the tokens of one moment start out alike
whatever their stream. Each stream has its own flow time: the adaLN conditioning is one vector per
stream (time embedding + condition + a learned stream offset), broadcast over that stream's tokens.
Holding one stream clean (time 1) and integrating the other is video-to-audio or audio-to-video
with the same weights; training shares out such rows (``loss.video_to_audio_share`` /
``loss.audio_to_video_share``) beside joint rows with one time for both.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from videosynth.errors import ConfigError
from videosynth.models.conditioned import Conditioned, conditioned
from videosynth.models.dit import DiT, DiTConfig, modulate, per_token

CLOCK_FEATURES = 64  # sinusoidal features of a token's time in video frames
CLOCK_PERIOD = 1000.0  # frames: the longest period of the clock's sinusoids


def clock_features(times: torch.Tensor, dim: int = CLOCK_FEATURES) -> torch.Tensor:
    """Times in video frames ``float [N]`` -> sinusoidal features ``[N, dim]`` (periods 2pi .. 2pi * CLOCK_PERIOD)."""
    half = dim // 2
    freqs = torch.exp(-math.log(CLOCK_PERIOD) * torch.arange(half, dtype=torch.float32) / half)
    angles = times.float()[:, None] * freqs[None]  # (N, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (N, dim)


def check_joint(cfg: DiTConfig) -> None:
    """The settings a joint model needs; one-line errors for those it cannot take.

    Raises:
        ConfigError: no mel frames or clip length, a mel length that is not whole frames,
            factorised attention, per-frame sound features or shortcut steps.
    """
    if not (cfg.sound_frames and cfg.clip_frames):
        raise ConfigError("a joint model needs model.sound_frames and model.clip_frames (set from the data and joint:)")
    if cfg.sound_frames % cfg.clip_frames:
        raise ConfigError(f"model.sound_frames {cfg.sound_frames} is not a whole number of mel frames per each of "
                          f"the {cfg.clip_frames} video frames")
    for flag, why in ((cfg.attention != "full", "model.attention: factorised splits tokens by video frame"),
                      (cfg.frame_sound, "model.frame_sound hears a given sound"),
                      (cfg.step_levels, "shortcut steps (loss.objective: shortcut)")):
        if flag:
            raise ConfigError(f"joint.audio: {why}, which a joint audio-video model does not take; leave it out")


class JointDiT(DiT):
    """Velocities of both streams: ``(video [B, C, t, h, w], sound [B, M, J])`` from their noisy values,
    each with its own time ``[B]``, and the pooled condition ``[B, D]``."""

    def __init__(self, cfg: DiTConfig):
        check_joint(cfg)
        super().__init__(cfg)
        w, p = cfg.width, cfg.sound_patch
        self.sound_embed = nn.Linear(cfg.sound_mels * p, w)
        self.sound_pos = nn.Parameter(torch.randn(1, cfg.sound_frames // p, w) * 0.02)
        self.stream_embed = nn.Parameter(torch.randn(2, w) * 0.02)  # video, sound
        self.stream_time = nn.Parameter(torch.zeros(2, w))  # per-stream offsets of the adaLN input
        self.clock = nn.Linear(CLOCK_FEATURES, w)
        self.sound_out = nn.Linear(w, cfg.sound_mels * p)
        nn.init.zeros_(self.sound_out.weight)  # starts at zero velocity, as the video output does
        nn.init.zeros_(self.sound_out.bias)
        frames_per_token = cfg.clip_frames / cfg.grid[0]  # video frames under one token frame
        video_times = (torch.arange(cfg.grid[0]) + 0.5) * frames_per_token  # (gt,)
        sound_times = (torch.arange(cfg.sound_frames // p) + 0.5) * p * cfg.clip_frames / cfg.sound_frames  # (Na,)
        per_frame = cfg.grid[1] * cfg.grid[2]
        self.register_buffer("video_clock", clock_features(video_times.repeat_interleave(per_frame)), persistent=False)
        self.register_buffer("sound_clock", clock_features(sound_times), persistent=False)

    @property
    def counts(self) -> tuple[int, int]:
        """Tokens of each stream: ``(video, sound)``."""
        return self.cfg.num_tokens, self.cfg.sound_frames // self.cfg.sound_patch

    def forward(self, x: torch.Tensor, t: torch.Tensor, sound: torch.Tensor, sound_t: torch.Tensor,
                cond: torch.Tensor | None = None, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(velocity of x [B, C, t, h, w], velocity of sound [B, M, J])``; ``t``, ``sound_t``: flow times ``[B]``
        (1 = the stream is given clean); ``context`` / ``context_mask``: the condition's tokens (cross-attention)."""
        cfg = self.cfg
        b = x.shape[0]
        if x.dim() != 5 or tuple(x.shape[1:]) != (cfg.latent_channels, *cfg.latent_shape):
            raise ConfigError(f"JointDiT expects latents [B, {cfg.latent_channels}, "
                              f"{', '.join(map(str, cfg.latent_shape))}], got {list(x.shape)}")
        if tuple(sound.shape) != (b, cfg.sound_mels, cfg.sound_frames):
            raise ConfigError(f"JointDiT expects mel frames [{b}, {cfg.sound_mels}, {cfg.sound_frames}], "
                              f"got {list(sound.shape)}")
        video = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, Nv, W)
        video = video + self.stream_embed[0] + self.clock(self.video_clock)
        audio = self.sound_embed(self.patch_sound(sound)) + self.sound_pos  # (B, Na, W)
        audio = audio + self.stream_embed[1] + self.clock(self.sound_clock)
        tokens = torch.cat([video, audio], dim=1)  # (B, Nv + Na, W)
        c = torch.stack([self.conditioning(t, b, cond, None), self.conditioning(sound_t, b, cond, None)], dim=1)
        c = c + self.stream_time  # (B, 2, W): one adaLN input per stream
        counts = self.counts
        for block in self.blocks:
            tokens = block(tokens, c, cfg.grid, context, context_mask, counts)
        shift, scale = (per_token(m, tokens.shape[1], counts) for m in self.ada_out(c).chunk(2, dim=-1))
        h = modulate(self.norm_out(tokens), shift, scale)  # (B, Nv + Na, W)
        video_v = self.unpatchify(self.out(h[:, :counts[0]]))  # (B, C, t, h, w)
        sound_v = self.unpatch_sound(self.sound_out(h[:, counts[0]:]))  # (B, M, J)
        return video_v, sound_v

    def patch_sound(self, sound: torch.Tensor) -> torch.Tensor:
        """Mel frames ``[B, M, J]`` -> tokens ``[B, J / p, p * M]`` of ``p = sound_patch`` frames each."""
        b, m, j = sound.shape
        p = self.cfg.sound_patch
        return sound.view(b, m, j // p, p).permute(0, 2, 3, 1).reshape(b, j // p, p * m)

    def unpatch_sound(self, tokens: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`patch_sound`: ``[B, J / p, p * M]`` -> ``[B, M, J]``."""
        b, n, _ = tokens.shape
        p, m = self.cfg.sound_patch, self.cfg.sound_mels
        return tokens.view(b, n, p, m).permute(0, 3, 1, 2).reshape(b, m, n * p)


def build_modules(cfg: DiTConfig, condition) -> dict[str, Conditioned]:
    """The networks a flow checkpoint holds: ``{"dit": JointDiT or DiT with its conditioner}`` -- a joint
    model where the config has a sound stream (``sound_mels``), else the video-only DiT every older run holds."""
    make = (lambda: JointDiT(cfg)) if cfg.sound_mels else (lambda: DiT(cfg))
    return {"dit": conditioned(make, condition)}
