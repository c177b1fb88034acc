"""Sound a generator can produce: log-mel frames aligned with the video frames, and back to a waveform.

**Encoding.** Mono audio ``[B, S]`` at ``rate`` Hz becomes log-mel energies ``[B, mels, T * K]``
with ``K = mels_per_frame`` mel frames per video frame: centred Hann frames of ``fft`` samples
every ``hop = rate / fps / K`` samples, so video frame ``t`` owns mel frames ``t*K .. (t+1)*K - 1``
and the first of them is centred on the frame's first sample (where a bounce click starts). The
mel front end is the one the sound conditioner uses (:func:`~videosynth.conditioning.audio.log_mel`:
Slaney filters, ``log(energy + 1e-5)``); fixed constants centre and scale it to about unit spread
on the built-in soundtrack (:data:`MEL_CENTRE`, :data:`MEL_SCALE`), so a flow model sees its
sound tokens on the scale of its normalised video latents.

**Decoding (the vocoder).** No training: mel energies go back to a linear power spectrum by
non-negative least squares through the filterbank (multiplicative updates, Lee & Seung 2001),
whose square root is the magnitude; the phase comes from fast Griffin-Lim (Griffin & Lim 1984,
with the momentum of Perraudin, Balazs & Soendergaard 2013), then ``istft``. A learned vocoder
would sound cleaner; Griffin-Lim keeps what the built-in soundtrack's truth is read from -- a tone's
pitch and level, a click's frame -- and needs nothing but ``torch.stft``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from videosynth.conditioning.audio import LOG_FLOOR, log_mel, mel_filterbank
from videosynth.config import at_least, checked, in_range
from videosynth.errors import ConfigError

# log-mel values of the built-in soundtrack lie between the floor (log 1e-5 = -11.5, bands without
# sound) and about +5 (the loudest tone's fundamental); these put its bands' mean near 0 and their
# spread near 1, as the flow's normalised video latents are.
MEL_CENTRE = -10.0
MEL_SCALE = 3.5
NNLS_ITERS = 40  # multiplicative updates from mel energies back to a linear power spectrum
GRIFFIN_LIM_MOMENTUM = 0.99  # Perraudin et al.'s "fast" Griffin-Lim
TINY = 1e-10


@dataclass
class JointAudioConfig:
    """Section ``joint:`` of a flow run: generate the clip's sound as log-mel frames with its frames.

    audio: on (a joint audio-video run) or off (video only, every run before this section).
    mels, fft, mels_per_frame: the log-mel representation (bands, window, frames per video frame).
    vocoder_iters: Griffin-Lim iterations when sound is made from generated mel frames.
    rate, fps: the soundtrack's sample rate and the video frame rate (from ``data.audio`` and the data).
    """

    audio: bool = False
    mels: int = checked(128, at_least(4))
    fft: int = checked(1024, at_least(16))
    mels_per_frame: int = checked(8, at_least(1))
    vocoder_iters: int = checked(64, at_least(0))
    rate: int = checked(0, in_range(0, 192000))
    fps: float = checked(0.0, in_range(0, 240))

    def samples_for(self, frames: int) -> int:
        """Audio samples under ``frames`` video frames."""
        return round(frames * self.rate / self.fps)


def check_codec(rate: int, fps: float, fft: int, mels_per_frame: int, where: str = "joint") -> int:
    """The hop (samples between mel frames) of a codec; one-line errors where the frames cannot line up.

    Raises:
        ConfigError: no rate or fps, a frame of sound that is not a whole number of samples or of hops,
            or a window longer than a second.
    """
    if rate <= 0 or fps <= 0:
        raise ConfigError(f"{where}: the sound needs a sample rate and a frame rate, got {rate} Hz and {fps} fps "
                          "(set data.audio to a sample rate, e.g. 16000)")
    per_frame = rate / fps
    hop = per_frame / mels_per_frame
    if per_frame != int(per_frame) or hop != int(hop):
        raise ConfigError(f"{where}.mels_per_frame={mels_per_frame}: a video frame holds {per_frame:g} samples at "
                          f"{rate} Hz and {fps:g} fps, which must split into whole hops; choose mels_per_frame "
                          "dividing it")
    if fft > rate:
        raise ConfigError(f"{where}.fft={fft} is longer than a second at {rate} Hz")
    if fft < hop:
        raise ConfigError(f"{where}.fft={fft} is shorter than the hop of {int(hop)} samples: the frames would not "
                          "overlap (Griffin-Lim needs them to); raise fft or mels_per_frame")
    return int(hop)


class MelCodec:
    """Mono audio ``float32 [B, S]`` in [-1, 1] <-> normalised log-mel frames ``float32 [B, mels, T * K]``.

    ``S = T * rate / fps`` samples for ``T`` video frames. Stateless apart from the filterbank; move
    it with :meth:`to`.
    """

    def __init__(self, rate: int, fps: float, mels: int = 128, fft: int = 1024, mels_per_frame: int = 8,
                 vocoder_iters: int = 64, where: str = "joint"):
        self.hop = check_codec(rate, fps, fft, mels_per_frame, where)
        self.rate, self.fps, self.mels, self.fft, self.k = rate, fps, mels, fft, mels_per_frame
        self.vocoder_iters = vocoder_iters
        self.filterbank = mel_filterbank(rate, fft, mels)  # (M, F)
        if bool((self.filterbank.sum(1) == 0).any()):
            raise ConfigError(f"{where}.mels={mels} is too many bands for fft={fft} at {rate} Hz (some bands hold "
                              "no frequency bin); use fewer mels or a longer fft")

    @classmethod
    def from_config(cls, cfg: JointAudioConfig) -> "MelCodec":
        return cls(cfg.rate, cfg.fps, cfg.mels, cfg.fft, cfg.mels_per_frame, cfg.vocoder_iters)

    def to(self, device) -> "MelCodec":
        self.filterbank = self.filterbank.to(device)
        return self

    @property
    def samples_per_frame(self) -> int:
        return self.hop * self.k

    def frames_of(self, samples: int) -> int:
        """Video frames ``T`` under ``samples`` audio samples (a whole number of frames is required).

        Raises:
            ConfigError: a length that is not a whole number of video frames.
        """
        if samples % self.samples_per_frame or samples == 0:
            raise ConfigError(f"the sound holds {samples} samples, not a whole number of video frames of "
                              f"{self.samples_per_frame} samples ({self.rate} Hz at {self.fps:g} fps)")
        return samples // self.samples_per_frame

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Raw log-mel energies ``[B, mels, T * K]`` of ``audio [B, S]`` (see the module docstring)."""
        t = self.frames_of(audio.shape[-1])
        mel = log_mel(audio.float(), self.rate, self.fft, self.hop, self.mels, self.filterbank.to(audio.device))
        return mel[..., :t * self.k]  # the last centred frame sits on the sample after the clip

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio float32 [B, S]`` -> normalised log-mel ``[B, mels, T * K]`` (about unit scale)."""
        return (self.log_mel(audio) - MEL_CENTRE) / MEL_SCALE

    def decode(self, mel: torch.Tensor, iters: int | None = None, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Normalised log-mel ``[B, mels, J]`` (``J = T * K``) -> audio ``float32 [B, T * rate / fps]`` in [-1, 1].

        ``iters`` Griffin-Lim iterations (default the codec's); ``generator`` draws the initial phase
        (default: zero phase, deterministic).

        Raises:
            ConfigError: a band count other than the codec's, or frames that are not whole video frames.
        """
        if mel.dim() != 3 or mel.shape[1] != self.mels or mel.shape[2] % self.k:
            raise ConfigError(f"mel frames must be [B, {self.mels}, T * {self.k}], got {list(mel.shape)}")
        energy = (mel.float() * MEL_SCALE + MEL_CENTRE).exp() - LOG_FLOOR  # (B, M, J)
        power = self.power_from_mel(energy.clamp_min(0))  # (B, F, J)
        # the frame centred on the sample after the clip: repeat the last, so istft covers every sample
        magnitude = torch.cat([power, power[..., -1:]], dim=-1).sqrt()  # (B, F, J + 1)
        length = mel.shape[2] * self.hop
        audio = self.griffin_lim(magnitude, length, self.vocoder_iters if iters is None else iters, generator)
        return audio.clamp(-1, 1)

    def power_from_mel(self, energy: torch.Tensor) -> torch.Tensor:
        """Mel energies ``[B, M, J]`` -> the non-negative linear power spectrum ``[B, F, J]`` whose mel
        energies come closest to them (least squares through the filterbank, multiplicative updates)."""
        fb = self.filterbank.to(energy)  # (M, F)
        target = torch.einsum("mf,bmj->bfj", fb, energy)  # (B, F, J): fb^T m
        # start from each band's energy spread over its bins (positive wherever a band has energy)
        power = target / (fb.sum(0)[None, :, None] ** 2 + TINY)  # (B, F, J)
        for _ in range(NNLS_ITERS):
            approx = torch.einsum("mf,bmj->bfj", fb, torch.einsum("mf,bfj->bmj", fb, power))  # fb^T fb p
            power = power * target / (approx + TINY)  # stays >= 0; a fixed point solves fb^T fb p = fb^T m
        return power

    def griffin_lim(self, magnitude: torch.Tensor, length: int, iters: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """A waveform ``[B, length]`` whose STFT magnitude comes close to ``magnitude [B, F, J + 1]``."""
        window = torch.hann_window(self.fft, device=magnitude.device, dtype=magnitude.dtype)
        stft = dict(n_fft=self.fft, hop_length=self.hop, window=window, center=True)
        if generator is None:
            phase = torch.ones_like(magnitude, dtype=torch.complex64)
        else:
            angles = torch.rand(magnitude.shape, generator=generator).to(magnitude.device) * 2 * math.pi
            phase = torch.polar(torch.ones_like(angles), angles)
        previous = torch.zeros_like(phase)
        for _ in range(iters):
            audio = torch.istft(magnitude * phase, length=length, **stft)
            rebuilt = torch.stft(audio, pad_mode="constant", return_complex=True, **stft)  # (B, F, J + 1)
            accelerated = rebuilt - GRIFFIN_LIM_MOMENTUM / (1 + GRIFFIN_LIM_MOMENTUM) * previous
            previous = rebuilt
            phase = accelerated / (accelerated.abs() + TINY)
        return torch.istft(magnitude * phase, length=length, **stft)


def spectral_convergence(reference: torch.Tensor, other: torch.Tensor, fft: int, hop: int) -> float:
    """``|| |STFT(ref)| - |STFT(other)| ||_F / || |STFT(ref)| ||_F`` over a batch ``[B, S]`` (Arik et al. 2019):
    0 for the same magnitudes, 1 for silence against sound."""
    window = torch.hann_window(fft, dtype=torch.float32)
    mags = [torch.stft(x.float(), fft, hop, window=window, center=True, pad_mode="constant",
                       return_complex=True).abs() for x in (reference, other)]
    return float(torch.linalg.norm(mags[0] - mags[1]) / (torch.linalg.norm(mags[0]) + TINY))
