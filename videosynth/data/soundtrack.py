"""The soundtrack of the built-in procedural data: exact ground truth from which the motion can be recovered.

Each object hums a tone whose timbre is its class (its harmonics), whose pitch follows its height
(two octaves from the bottom wall to the top one, continuous in phase) and whose loudness follows
its horizontal position (quietest at the left wall, loudest at the right), and a click sounds at
the start of every frame where it bounced off a wall: a high one (3 kHz) off the floor or the
ceiling, a low one (1.2 kHz) off a side wall, so the sound says which way the motion turned.
Frame ``t`` covers ``[t / fps, (t + 1) / fps)`` seconds of the soundtrack. The datasets that sound
their items this way live in :mod:`videosynth.data.synthetic`.
"""

from __future__ import annotations

import numpy as np

from videosynth.data.scene import bounce

LOW_PITCH = 220.0  # Hz of an object at the bottom wall (A3)
PITCH_OCTAVES = 2.0  # octaves up to the top wall (A5, 880 Hz)
TONE_LEVEL = 0.3  # peak of all tones together
LEFT_LOUDNESS = 0.1  # gain of a tone at the left wall (1 at the right wall, 20 dB louder): loudness tells x
CLICK_LEVEL = 0.35  # peak of a bounce click: a side and a floor click with the tones stay within [-1, 1]
CLICK_DECAY = 0.001  # seconds: the click's exponential decay (a few ms long in all)
CLICK_LENGTH = 0.008  # seconds of click written
CLICK_PITCH = 3000.0  # Hz of the ringing of a bounce off the floor or the ceiling (above every fundamental)
SIDE_CLICK_PITCH = 1200.0  # Hz of the ringing of a bounce off a side wall
SHAPE_HARMONICS = {  # relative amplitude of harmonics 1, 2, 3, ... per shape: sine, square-like, triangle-like
    "circle": (1.0,),
    "square": (1.0, 0.0, 1 / 3, 0.0, 1 / 5, 0.0, 1 / 7),
    "triangle": (1.0, 0.0, -1 / 9, 0.0, 1 / 25, 0.0, -1 / 49),
}
DIGIT_OVERTONE = 0.5  # a digit's timbre: the fundamental plus harmonics 2..5 where the bits of digit + 1 are set


def pitch_of(y: np.ndarray, low: float, high: float) -> np.ndarray:
    """Tone frequency (Hz) of an object centred at height ``y`` (pixels, down) moving in ``[low, high]``."""
    height = (high - np.asarray(y, np.float64)) / max(high - low, 1e-9)  # 0 at the bottom wall, 1 at the top
    return LOW_PITCH * 2.0 ** (PITCH_OCTAVES * np.clip(height, 0.0, 1.0))


def loudness_of(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Tone gain of an object centred at ``x`` (pixels) moving in ``[low, high]``: linear in x."""
    across = (np.asarray(x, np.float64) - low) / max(high - low, 1e-9)  # 0 at the left wall, 1 at the right
    return LEFT_LOUDNESS + (1 - LEFT_LOUDNESS) * np.clip(across, 0.0, 1.0)


def click(rate: int, pitch: float = CLICK_PITCH) -> np.ndarray:
    """A bounce click ringing at ``pitch`` Hz and decaying in a few milliseconds, float32 ``[n]``."""
    n = np.arange(max(1, round(CLICK_LENGTH * rate)))
    ring = min(pitch, rate / 4)  # below Nyquist at low rates
    return (CLICK_LEVEL * np.exp(-n / (CLICK_DECAY * rate)) * np.sin(2 * np.pi * ring * n / rate + np.pi / 2)
            ).astype(np.float32)


def sound_of(f: dict[str, np.ndarray], timbres: list[tuple[float, ...]], low: float, high: float, fps: float,
             rate: int) -> np.ndarray:
    """The soundtrack of the objects of factors ``f``: float32 ``[round(T / fps * rate)]`` mono in [-1, 1].

    ``f`` holds ``positions`` and ``velocities`` float32 ``[T, K, 2]`` (pixels, (x, y); per frame) and
    ``classes`` ``[K]``; ``timbres[k]`` is the relative amplitudes of harmonics 1, 2, ... of object
    ``k``'s tone; object centres move in ``[low, high]`` on both axes.
    """
    frames, objects = f["velocities"].shape[:2]
    n = round(frames / fps * rate)
    t = np.arange(n) / rate * fps  # (S,) time in frames
    start, velocity = f["positions"][0].astype(np.float64), f["velocities"][0].astype(np.float64)  # (K, 2)
    out = np.zeros(n, np.float64)
    for k, harmonics in enumerate(timbres):
        # the exact path between frames (bounces mid-frame included), so the pitch glides without steps
        xy = bounce(start[k:k + 1], velocity[k:k + 1], low, high, 1, times=t)[0][:, 0]  # (S, 2)
        phase = 2 * np.pi * np.cumsum(pitch_of(xy[:, 1], low, high)) / rate  # (S,)
        tone = np.zeros(n)
        for h, amp in enumerate(harmonics, start=1):
            if amp and h * LOW_PITCH * 2 ** PITCH_OCTAVES < rate / 2:  # no harmonic above Nyquist
                tone += amp * np.sin(h * phase)
        gain = loudness_of(xy[:, 0], low, high)  # (S,)
        out += TONE_LEVEL / objects * gain * tone / max(np.abs(tone).max(), 1e-9)
    v = f["velocities"]  # (T, K, 2)
    turned = np.zeros((frames, 2), bool)  # (T, 2): some object turned along x / along y at frame t
    turned[1:] = (np.sign(v[1:]) != np.sign(v[:-1])).any(axis=1)
    for axis, pitch in enumerate((SIDE_CLICK_PITCH, CLICK_PITCH)):  # x turns off side walls
        burst = click(rate, pitch)
        for frame in np.flatnonzero(turned[:, axis]):
            at = round(frame / fps * rate)
            end = min(n, at + burst.size)
            out[at:end] += burst[:end - at]
    return np.clip(out, -1.0, 1.0).astype(np.float32)
