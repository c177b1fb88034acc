"""Audio -> per-frame features aligned with the video frames, and a pooled vector.

The front end is a log-mel spectrogram computed with ``torch.stft`` and a mel filterbank on
Slaney's mel scale with area-normalised triangles (Slaney 1998, "Auditory Toolbox"; the default
of librosa's ``filters.mel``: linear below 1 kHz, logarithmic above; the filters agree with
librosa 0.11.0's ``filters.mel(sr=16000, n_fft=512, n_mels=64)`` to 2e-9). A small 1-D conv stack over
the mel frames follows; its output is averaged into one feature per video frame (frame ``t``
covers samples ``[t * rate / fps, (t + 1) * rate / fps)``), so a click at frame ``t`` shows in
feature ``t``. The per-frame features go to networks that take them (MoCoGAN's motion RNN, the
GAN discriminators' extra input channels) and, with a sinusoidal frame-index embedding, serve as
tokens for cross-attention; their mean is the pooled vector. A learned null stands for missing
or dropped audio, so guidance works as for labels and captions.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from videosynth.conditioning.base import Condition, ConditionConfig, Conditioner
from videosynth.errors import ConfigError

# ----------------------------------------------------------------------------- the mel front end

SLANEY_BREAK_HZ = 1000.0  # the mel scale is linear below this frequency and logarithmic above
SLANEY_LINEAR_STEP = 200.0 / 3  # Hz per mel in the linear part
SLANEY_LOG_STEP = math.log(6.4) / 27.0  # log-frequency per mel above the break
LOG_FLOOR = 1e-5  # added to mel energies before the log: silence maps to log(1e-5) ~ -11.5
# log-mel values of sound in [-1, 1] lie between silence (-11.5) and about +6 (a full-scale tone):
# centred and scaled by these constants they reach the convs near unit range. A fixed scaling (no
# per-clip statistics) keeps each frame's features a function of the sound around that frame alone.
LOG_CENTRE = -3.0
LOG_SCALE = 5.0


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney's mel scale: ``hz / (200/3)`` below 1 kHz, then ``15 + ln(hz / 1000) / (ln 6.4 / 27)``."""
    hz = torch.as_tensor(hz, dtype=torch.float64)
    linear = hz / SLANEY_LINEAR_STEP
    log = SLANEY_BREAK_HZ / SLANEY_LINEAR_STEP + torch.log(hz.clamp_min(1e-9) / SLANEY_BREAK_HZ) / SLANEY_LOG_STEP
    return torch.where(hz < SLANEY_BREAK_HZ, linear, log)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`hz_to_mel`."""
    mel = torch.as_tensor(mel, dtype=torch.float64)
    break_mel = SLANEY_BREAK_HZ / SLANEY_LINEAR_STEP
    return torch.where(mel < break_mel, mel * SLANEY_LINEAR_STEP,
                       SLANEY_BREAK_HZ * torch.exp(SLANEY_LOG_STEP * (mel - break_mel)))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular filters ``float32 [n_mels, n_fft // 2 + 1]`` mapping a power spectrum to mel bands.

    Band ``m`` rises from mel point ``m`` to ``m + 1`` and falls to ``m + 2`` (``n_mels + 2`` points
    evenly spaced in mel between ``f_min`` and ``f_max``), scaled by ``2 / (f[m + 2] - f[m])`` so
    every band has the same area (Slaney normalisation).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ConfigError(f"mel filterbank needs 0 <= f_min < f_max <= rate / 2, got {f_min}, {f_max}, {sample_rate}")
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,) bin centre frequencies
    points = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2,
                                      dtype=torch.float64))  # (M + 2,)
    lower, centre, upper = points[:-2, None], points[1:-1, None], points[2:, None]  # (M, 1) each
    rising = (bins[None] - lower) / (centre - lower)  # (M, F)
    falling = (upper - bins[None]) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return (weights * (2.0 / (upper - lower))).float()


def log_mel(audio: torch.Tensor, sample_rate: int, n_fft: int, hop: int, n_mels: int,
            filterbank: torch.Tensor | None = None) -> torch.Tensor:
    """``audio`` float32 ``[B, S]`` mono in [-1, 1] -> log-mel energies ``[B, n_mels, S // hop + 1]``.

    Hann-windowed, centred frames (frame ``j`` is centred on sample ``j * hop``); power spectrum;
    mel filterbank; ``log(energy + 1e-5)``.
    """
    if audio.dim() != 2:
        raise ConfigError(f"audio must be float [B, S] mono, got shape {tuple(audio.shape)}")
    fb = mel_filterbank(sample_rate, n_fft, n_mels) if filterbank is None else filterbank
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)
    power = spec.real ** 2 + spec.imag ** 2  # (B, F, J)
    mel = torch.einsum("mf,bfj->bmj", fb.to(power), power)  # (B, M, J)
    return torch.log(mel + LOG_FLOOR)


# ----------------------------------------------------------------------------- the encoder


def frame_embedding(frames: int, dim: int, device=None) -> torch.Tensor:
    """Sinusoidal embedding of frame indices 0..frames-1: ``[frames, dim]`` (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / max(half, 1))
    angles = torch.arange(frames, device=device, dtype=torch.float32)[:, None] * freqs[None]  # (T, half)
    emb = torch.cat([angles.sin(), angles.cos()], dim=1)  # (T, 2 * half)
    return F.pad(emb, (0, dim - emb.shape[1]))


class AudioEncoder(nn.Module):
    """Mono audio ``[B, S]`` at ``sample_rate`` -> ``(frames [B, T, dim], pooled [B, dim])``, ``T = S * fps / rate``.

    Args:
        dim: feature size D.
        sample_rate, fps: the audio rate and the video frame rate it is aligned with.
        n_mels, n_fft: the front end (hop = n_fft / 4).
        layers: conv layers over the mel frames (kernel 3, GELU).

    ``forward(audio, is_null)`` puts the learned null where ``is_null`` [B] is True.
    """

    def __init__(self, dim: int, sample_rate: int, fps: float, n_mels: int = 64, n_fft: int = 512,
                 layers: int = 2):
        super().__init__()
        if sample_rate <= 0 or fps <= 0:
            raise ConfigError(f"the audio encoder needs a sample rate and a frame rate, got {sample_rate} Hz, "
                              f"{fps} fps (set data.audio)")
        if n_fft > sample_rate:
            raise ConfigError(f"condition.audio_fft={n_fft} is longer than a second at {sample_rate} Hz")
        self.sample_rate, self.fps, self.n_fft, self.hop = sample_rate, fps, n_fft, n_fft // 4
        self.register_buffer("filterbank", mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)
        convs, width = [], n_mels
        for _ in range(max(1, layers)):
            convs += [nn.Conv1d(width, dim, 3, padding=1), nn.GELU()]
            width = dim
        self.convs = nn.Sequential(*convs)
        self.pool = nn.Linear(dim, dim)
        self.null_frame = nn.Parameter(torch.zeros(dim))
        self.null_pooled = nn.Parameter(torch.zeros(dim))

    def frames_of(self, samples: int) -> int:
        """Video frames ``T`` under ``samples`` audio samples."""
        return max(1, round(samples * self.fps / self.sample_rate))

    def forward(self, audio: torch.Tensor, is_null: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, s = audio.shape
        t = self.frames_of(s)
        mel = log_mel(audio.float(), self.sample_rate, self.n_fft, self.hop, self.filterbank.shape[0],
                      self.filterbank)  # (B, M, J)
        mel = (mel[..., :-1] if mel.shape[-1] > t else mel) - LOG_CENTRE  # the frame centred on sample S is past the clip
        h = self.convs(mel / LOG_SCALE)  # (B, D, J')
        frames = F.adaptive_avg_pool1d(h, t).transpose(1, 2)  # (B, T, D): one feature per video frame
        pooled = self.pool(frames.mean(1))  # (B, D)
        if is_null is not None:
            pick = is_null.to(frames.device).view(b, 1, 1)
            frames = torch.where(pick, self.null_frame.expand_as(frames), frames)
            pooled = torch.where(pick[:, 0], self.null_pooled.expand_as(pooled), pooled)
        return frames, pooled


# ----------------------------------------------------------------------------- the conditioner


class AudioConditioner(Conditioner):
    """Sound, alone or with another condition (``base``: class or caption), under the conditioner contract.

    ``encode(labels, captions, audio)`` gives the sum of both pooled vectors, the base's tokens
    followed by one token per video frame of sound (frame feature + frame-index embedding), and
    the per-frame features themselves. ``audio=None`` (or a row of the null condition) takes the
    learned audio null; condition dropout drops the sound and the base condition independently,
    so guidance can use either.
    """

    def __init__(self, cfg: ConditionConfig, base: Conditioner | None):
        super().__init__(cfg)
        self.base = base
        self.encoder = AudioEncoder(cfg.dim, cfg.audio_rate, cfg.audio_fps, cfg.audio_mels, cfg.audio_fft,
                                    cfg.audio_layers)

    def _audio(self, audio: torch.Tensor | None, n: int, force_null: bool):
        """``(frames [n, T, D], pooled [n, D])`` of ``audio`` [n, S] (None = the null for every clip)."""
        device = self.encoder.null_pooled.device
        if audio is None:
            audio = torch.zeros(n, self.cfg.samples_for(1), device=device)
            is_null = torch.ones(n, dtype=torch.bool, device=device)
        else:
            if audio.dim() != 2 or audio.shape[0] != n:
                raise ConfigError(f"audio must be float [{n}, S] (one mono soundtrack per clip), "
                                  f"got shape {tuple(audio.shape)}")
            audio = audio.to(device)
            is_null = torch.zeros(n, dtype=torch.bool, device=device)
        return self.encoder(audio, self.null_mask(is_null, force_null))

    def encode(self, labels, captions, audio=None, force_null=False, tokens=False) -> Condition:
        n = labels.shape[0]
        frames, pooled = self._audio(audio, n, force_null)  # (n, T, D), (n, D)
        toks = mask = None
        if self.base is not None:
            base = self.base.encode(labels, captions, force_null=force_null, tokens=tokens)
            pooled = pooled + base.pooled
            toks, mask = base.tokens, base.mask
        if tokens:
            sound = frames + frame_embedding(frames.shape[1], frames.shape[2], frames.device)  # (n, T, D)
            sound_mask = torch.ones(sound.shape[:2], dtype=torch.bool, device=sound.device)
            toks = sound if toks is None else torch.cat([toks, sound], dim=1)  # (n, L + T, D)
            mask = sound_mask if mask is None else torch.cat([mask, sound_mask], dim=1)
        return Condition(pooled, toks, mask, frames)

    def forward(self, labels, captions=None, force_null=False, audio=None):
        return self.encode(labels, captions, audio, force_null).pooled

    def pooled_and_tokens(self, labels, captions=None, force_null=False, audio=None):
        c = self.encode(labels, captions, audio, force_null, tokens=True)
        return c.pooled, c.tokens, c.mask
