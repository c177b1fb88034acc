"""Which class a built-in soundtrack's tone sounds like: harmonic features and a nearest-centroid timbre probe.

The built-in soundtrack gives each object a tone whose timbre is its class
(:data:`~videosynth.data.soundtrack.SHAPE_HARMONICS`: a circle hums a sine, a square odd harmonics at
1/3, 1/5, 1/7, a triangle odd harmonics at 1/9, 1/25, 1/49; a digit the harmonics of its bits), whatever
its pitch and loudness. :func:`timbre_features` reads, in the middle half of every video frame (away
from clicks), the magnitude at each harmonic ``k * f0`` of the frame's fundamental relative to the
fundamental's, in log; the clip's feature is the median over frames, so pitch glides and loudness
cancel out. :class:`TimbreProbe` classifies such features by the nearest class centroid in
standardised units, the centroids fitted on real soundtracks of the data's train split -- the sound's
counterpart of the class probe that judges clips, without weights to train or ship.
"""

from __future__ import annotations

import numpy as np
import torch

from videosynth.errors import ConfigError
from videosynth.metrics.sound import middle_spectra

HARMONICS = (2, 3, 4, 5, 6, 7)  # read relative to the fundamental; the data's timbres live in 2..7
HARMONIC_TOLERANCE = 0.03  # the peak is looked for this far (relative) around k * f0: pitch is read, not known
RATIO_FLOOR = 1e-3  # of the fundamental's magnitude: an absent harmonic reads log(1e-3), not -inf
FIT_CLIPS_PER_CLASS = 32
SCAN_FACTOR = 10  # clips read per clip wanted before giving up on a class the split does not hold


def timbre_features(audio, rate: int, fps: float) -> np.ndarray:
    """``float64 [len(HARMONICS)]``: per harmonic, the median over frames of log(|X(k f0)| / |X(f0)|)."""
    spectrum, freqs, log_pitch = middle_spectra(audio, rate, fps)
    step = freqs[1] - freqs[0]
    rows = []
    for t, lp in enumerate(log_pitch):
        f0 = 2.0 ** lp
        fundamental = _peak(spectrum[t], f0, step)
        if fundamental <= 0:
            continue  # a silent frame says nothing about timbre
        rows.append([np.log(max(_peak(spectrum[t], k * f0, step) / fundamental, RATIO_FLOOR))
                     if k * f0 < freqs[-1] else np.log(RATIO_FLOOR) for k in HARMONICS])
    if not rows:
        return np.full(len(HARMONICS), np.log(RATIO_FLOOR))
    return np.median(np.asarray(rows), axis=0)


def _peak(spectrum: np.ndarray, f: float, step: float) -> float:
    """The largest magnitude within :data:`HARMONIC_TOLERANCE` of frequency ``f``."""
    lo = max(int(np.floor(f * (1 - HARMONIC_TOLERANCE) / step)), 0)
    hi = min(int(np.ceil(f * (1 + HARMONIC_TOLERANCE) / step)) + 1, len(spectrum))
    return float(spectrum[lo:hi].max()) if hi > lo else 0.0


def features_of(sounds, rate: int, fps: float) -> np.ndarray:
    """:func:`timbre_features` of each of ``sounds`` (``[N, S]`` or a list of ``[S]``): ``[N, len(HARMONICS)]``."""
    return np.stack([timbre_features(s, rate, fps) for s in sounds])


class TimbreProbe:
    """Nearest class centroid of :func:`timbre_features`, in units of the fitted features' spread."""

    def __init__(self, centroids: np.ndarray, scale: np.ndarray, rate: int, fps: float):
        self.centroids, self.scale, self.rate, self.fps = centroids, scale, rate, fps

    @classmethod
    def fit(cls, sounds, labels, num_classes: int, rate: int, fps: float) -> TimbreProbe:
        """Centroids of ``sounds`` ``[N, S]`` by their ``labels`` (int ``[N]``, ``0 .. num_classes - 1``).

        Raises:
            ConfigError: a class with no sound to fit.
        """
        feats = features_of(sounds, rate, fps)
        labels = np.asarray(labels)
        missing = [k for k in range(num_classes) if not (labels == k).any()]
        if missing:
            raise ConfigError(f"the timbre probe has no sound of class {missing[0]} to fit; give more clips")
        scale = feats.std(axis=0) + 1e-3  # a harmonic no class has (an even one) weighs nothing
        centroids = np.stack([feats[labels == k].mean(axis=0) for k in range(num_classes)])
        return cls(centroids, scale, rate, fps)

    def predict(self, sounds) -> torch.Tensor:
        """The class each of ``sounds`` (``[N, S]``) sounds like: int64 ``[N]``."""
        feats = features_of(sounds, self.rate, self.fps) / self.scale
        dist = ((feats[:, None] - (self.centroids / self.scale)[None]) ** 2).sum(-1)  # (N, K)
        return torch.from_numpy(dist.argmin(1)).long()


def fit_on_data(data, num_classes: int, rate: int, fps: float, per_class: int = FIT_CLIPS_PER_CLASS) -> TimbreProbe:
    """A :class:`TimbreProbe` fitted on up to ``per_class`` soundtracks of each class of ``data``'s train split."""
    from videosynth.data import build_dataset

    train = build_dataset(data, "train")
    sounds, labels, counts = [], [], [0] * num_classes
    for i in range(min(len(train), SCAN_FACTOR * per_class * num_classes)):  # a class the data lacks: not all of it
        item = train[i]
        k = int(item["label"])
        if 0 <= k < num_classes and counts[k] < per_class:
            sounds.append(item["audio"])
            labels.append(k)
            counts[k] += 1
        if min(counts) >= per_class:
            break
    return TimbreProbe.fit(sounds, labels, num_classes, rate, fps)


__all__ = ["HARMONICS", "timbre_features", "features_of", "TimbreProbe", "fit_on_data"]
