"""Reading the built-in soundtrack's events back from a waveform: clicks, pitch and loudness per video frame.

The built-in audio-visual data (:mod:`videosynth.data.synthetic`) sound a tone whose pitch follows
the object's height and whose loudness follows its x, and a click at the start of every frame
where it bounced. These weight-free analysers recover those three per video frame from any sound
of that kind -- the real soundtrack, one rebuilt from log-mel frames by a vocoder, or a generated
one -- so sound can be scored against the data's ground truth or against the motion of a video:

- **clicks**: a click is a burst of energy above 1 kHz (it rings at 1.2 or 3 kHz and dies in a
  few ms) at a frame's start. Short frames (16 ms, 4 ms apart) are compared, band by band in log
  magnitude above 1 kHz, with the median of the frames around the start (a steady tone changes
  little there); the frame's score is the largest mean rise near its start (the first frame's
  start is the clip's own onset and scores 0: no bounce can fall on it). On the built-in
  soundtrack (16 kHz) click frames score 4 to 6 and the others below 0.6; the threshold sits between.
- **pitch**: the strongest spectral peak between 0.8x the lowest and 1.25x the highest tone (every
  timbre's fundamental is its strongest partial), interpolated on a parabola of log magnitudes,
  in a Hann window over the middle half of each frame (away from clicks); the pitch at a frame's
  start is the mean of the log-pitches of the middles around it (extrapolated for the first frame).
- **loudness**: the RMS of the same middle half of the frame (linear in the tone's gain for one
  timbre; timbres differ in RMS by their harmonics, so pooled correlations stay a little below 1).

:func:`truth_scores` scores sounds against the data's ground truth (bounce F1 of the clicks, the
pitch-height and loudness-x correlations); :mod:`videosynth.metrics.joint_sync` scores them
against a video's tracked motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from videosynth.data.synthetic import LOW_PITCH, PITCH_OCTAVES
from videosynth.errors import ConfigError
from videosynth.metrics.sync import DEFAULT_TOLERANCE, Counts, _pooled_corr, match_events

CLICK_BAND_HZ = 1000.0  # clicks ring at 1.2 and 3 kHz; tones' fundamentals stay below 880 Hz
CLICK_WINDOW_S = 0.016  # short frames resolve a click in time
CLICK_HOP_S = 0.004
CLICK_NEAR_S = 0.016  # a click's rise is looked for this close to a frame's start (a vocoder smears it)
CLICK_REFERENCE_S = 0.064  # the reference: frames this close to the start, but not near it
CLICK_THRESHOLD = 1.5  # mean log-magnitude rise above 1 kHz (nats) that makes a click
MAGNITUDE_FLOOR = 1e-3  # added before the log: silence does not make rises out of rounding
PITCH_RANGE = (0.8 * LOW_PITCH, 1.25 * LOW_PITCH * 2 ** PITCH_OCTAVES)  # Hz searched for the fundamental
PITCH_ZERO_PAD = 4  # the spectrum is sampled 4x finer than the window's bins before interpolation


def _waveform(audio) -> torch.Tensor:
    x = torch.as_tensor(audio.detach().cpu() if isinstance(audio, torch.Tensor) else np.asarray(audio),
                        dtype=torch.float32)
    if x.dim() != 1:
        raise ConfigError(f"a soundtrack must be mono [S], got shape {tuple(x.shape)}")
    return x


def _frames_in(samples: int, rate: int, fps: float) -> tuple[int, int]:
    """``(samples per frame, frames)`` of a soundtrack; one-line error where it is not whole frames."""
    per_frame = rate / fps
    if per_frame != int(per_frame) or samples % int(per_frame) or samples == 0:
        raise ConfigError(f"a soundtrack of {samples} samples at {rate} Hz is not a whole number of frames at "
                          f"{fps:g} fps")
    return int(per_frame), samples // int(per_frame)


def click_scores(audio, rate: int, fps: float) -> np.ndarray:
    """Per video frame, the rise of the energy above 1 kHz at its start, float ``[T]`` (see the module docstring).

    ``audio``: mono ``[S]`` in [-1, 1], ``S`` a whole number of frames at ``rate`` / ``fps``."""
    x = _waveform(audio)
    per_frame, frames = _frames_in(x.shape[0], rate, fps)
    fft = max(16, int(2 ** round(np.log2(CLICK_WINDOW_S * rate))))
    hop = max(1, round(CLICK_HOP_S * rate))
    spec = torch.stft(x, fft, hop, window=torch.hann_window(fft), center=True, pad_mode="constant",
                      return_complex=True).abs()  # (F, J)
    high = torch.arange(spec.shape[0]) * rate / fft >= CLICK_BAND_HZ
    level = torch.log(spec[high] + MAGNITUDE_FLOOR)  # (F', J)
    near, far = round(CLICK_NEAR_S * rate / hop), round(CLICK_REFERENCE_S * rate / hop)
    out = np.zeros(frames)
    for t in range(1, frames):  # the first frame starts with the clip: its onset is no click
        s = t * per_frame // hop  # the short frame centred on the frame's first sample
        lo, hi = max(0, s - far), min(level.shape[1], s + far + 1)
        around = [j for j in range(lo, hi) if abs(j - s) > near + 2]
        if not around:
            continue
        reference = level[:, around].median(dim=1).values  # (F',)
        rise = torch.relu(level[:, max(0, s - near):s + near + 1] - reference[:, None]).mean(0)  # (near frames,)
        out[t] = float(rise.max())
    return out


def click_frames(audio, rate: int, fps: float, threshold: float = CLICK_THRESHOLD) -> np.ndarray:
    """Frames whose start holds a click, int array."""
    return np.flatnonzero(click_scores(audio, rate, fps) > threshold).astype(np.int64)


def _middles(x: torch.Tensor, per_frame: int, frames: int) -> tuple[torch.Tensor, int]:
    """The middle half of every frame, Hann-windowed: ``([T, n], n)``."""
    n = 1 << int(np.log2(max(per_frame // 2, 8)))
    starts = torch.arange(frames) * per_frame + (per_frame - n) // 2
    return x[starts[:, None] + torch.arange(n)[None]], n  # (T, n)


def middle_spectra(audio, rate: int, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(spectrum [T, F], freqs [F], log2 pitch [T])``: the magnitude spectrum of the middle half of every video
    frame (zero-padded :data:`PITCH_ZERO_PAD` times) and the tone's pitch there (see the module docstring)."""
    x = _waveform(audio)
    per_frame, frames = _frames_in(x.shape[0], rate, fps)
    middles, n = _middles(x, per_frame, frames)
    size = PITCH_ZERO_PAD * n
    spectrum = torch.fft.rfft(middles * torch.hann_window(n, periodic=False), n=size).abs().numpy()  # (T, F)
    freqs = np.fft.rfftfreq(size, 1 / rate)
    band = np.flatnonzero((freqs >= PITCH_RANGE[0]) & (freqs <= min(PITCH_RANGE[1], rate / 2 * 0.95)))
    if len(band) < 3:
        raise ConfigError(f"a sample rate of {rate} Hz cannot hold the built-in soundtrack's tones")
    log_pitch = np.zeros(frames)
    for t in range(frames):
        i = int(band[np.argmax(spectrum[t, band])])
        i = min(max(i, 1), len(freqs) - 2)
        a, b, c = np.log(spectrum[t, i - 1:i + 2] + 1e-12)
        curve = a - 2 * b + c
        offset = 0.5 * (a - c) / curve if curve < 0 else 0.0  # the parabola's vertex, within half a bin
        log_pitch[t] = np.log2(max((i + float(np.clip(offset, -0.5, 0.5))) * rate / size, 1e-6))
    return spectrum, freqs, log_pitch


def pitch_track(audio, rate: int, fps: float) -> np.ndarray:
    """The tone's pitch at the start of every video frame (Hz), float ``[T]`` (see the module docstring)."""
    log_pitch = middle_spectra(audio, rate, fps)[2]
    frames = len(log_pitch)
    start = np.empty(frames)
    start[1:] = (log_pitch[1:] + log_pitch[:-1]) / 2
    start[0] = log_pitch[0] - (log_pitch[1] - log_pitch[0]) / 2 if frames > 1 else log_pitch[0]
    return 2.0 ** start


def loudness_track(audio, rate: int, fps: float) -> np.ndarray:
    """RMS of the middle half of every video frame, float ``[T]``."""
    x = _waveform(audio)
    per_frame, frames = _frames_in(x.shape[0], rate, fps)
    middles, _ = _middles(x, per_frame, frames)
    return middles.pow(2).mean(1).sqrt().numpy().astype(np.float64)


@dataclass
class SoundEvents:
    """What a soundtrack says per video frame: click frames (int array), pitch (Hz ``[T]``), loudness ``[T]``."""

    clicks: np.ndarray
    pitch: np.ndarray
    loudness: np.ndarray


def sound_events(audio, rate: int, fps: float) -> SoundEvents:
    """:func:`click_frames`, :func:`pitch_track` and :func:`loudness_track` of one soundtrack ``[S]``."""
    return SoundEvents(click_frames(audio, rate, fps), pitch_track(audio, rate, fps), loudness_track(audio, rate, fps))


def truth_scores(sounds, truths: list[dict[str, np.ndarray]], rate: int, fps: float,
                 tolerance: int = DEFAULT_TOLERANCE) -> dict[str, float]:
    """Sounds ``[N, S]`` (or a list of ``[S]``) read back against the ground truth of the clips they belong to.

    ``truths[i]``: ``bounces`` bool ``[T]`` (a click at frame t) and ``positions`` float ``[T, 2]`` (the
    object's (x, y), pixels). Returns bounce precision / recall / F1 of the detected clicks (within
    ``tolerance`` frames), the pooled correlations of the read pitch (log2 Hz) with the true height
    (-y) and of the read loudness with the true x, the median pitch error against the truth's own
    pitch where ``truths[i]`` has ``pitch`` (octaves), and the clip count.
    """
    total = Counts()
    series: dict[str, list[np.ndarray]] = {"pitch": [], "height": [], "loudness": [], "x": [], "error": []}
    for sound, truth in zip(sounds, truths):
        events = sound_events(sound, rate, fps)
        total.add(match_events(events.clicks, np.flatnonzero(np.asarray(truth["bounces"], bool)), tolerance))
        positions = np.asarray(truth["positions"], np.float64)
        series["pitch"].append(np.log2(events.pitch))
        series["height"].append(-positions[:, 1])
        series["loudness"].append(events.loudness)
        series["x"].append(positions[:, 0])
        if truth.get("pitch") is not None:
            series["error"].append(np.abs(np.log2(events.pitch) - np.log2(np.asarray(truth["pitch"], np.float64))))
    out = total.scores()
    out["pitch_height_corr"] = _pooled_corr(series["pitch"], series["height"])
    out["loudness_x_corr"] = _pooled_corr(series["loudness"], series["x"])
    if series["error"]:
        out["pitch_error_octaves"] = float(np.median(np.concatenate(series["error"])))
    out["num_clips"] = float(len(truths))
    return out
