"""Weight-free audio-visual sync metrics: does the motion in a clip follow its sound?

For the built-in audio-visual data (one object; see :mod:`videosynth.data.synthetic`) the
sound's events are known exactly: a click at the start of every frame where the object bounced,
and a tone whose pitch follows the object's height. A clip is scored against the ground truth of
the soundtrack it was made for:

- **bounce F1**: the object is tracked (:mod:`videosynth.metrics.tracking`); a *tracked bounce*
  is a frame where a component of its displacement changes sign (the turning point). Tracked
  bounces are matched one to one to the sound's click frames within ``tolerance`` frames
  (default ±1: a wall hit between two frames turns the path at either); precision, recall and
  F1 follow, pooled over all clips.
- **pitch-height correlation**: Pearson correlation, pooled over every tracked frame of every
  clip, between the sound's pitch (log2 Hz) and the object's height (-y); likewise
  **loudness-x correlation** between the tone's gain and the object's horizontal position.

Reported for real clips (their own sound: the metric's ceiling), for generated clips with their
sound, and for a *shuffled-sound control*: the same model given another clip's sound, scored
against the first clip's — a model that ignores its sound scores the same with both.

For users' own videos, :func:`onset_alignment` is a **heuristic** in the spirit of AV-Align
(Yariv et al. 2024): onsets of the audio energy (spectral flux peaks) against peaks of the
motion energy (mean absolute frame difference), F1 within ±1 frame. It needs no ground truth
and no weights, and is only a rough signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from videosynth.errors import VideoSynthError
from videosynth.metrics.pipeline import clips_for
from videosynth.metrics.tracking import TrackingConfig, clip_frames, detect_blobs, track_blobs

DEFAULT_TOLERANCE = 1  # frames a tracked bounce may sit from its click


@dataclass
class Counts:
    """Matched events, pooled over clips: true positives, predicted, expected."""

    hits: int = 0
    predicted: int = 0
    expected: int = 0

    def add(self, other: "Counts") -> None:
        self.hits += other.hits
        self.predicted += other.predicted
        self.expected += other.expected

    def scores(self) -> dict[str, float]:
        precision = self.hits / self.predicted if self.predicted else (1.0 if not self.expected else 0.0)
        recall = self.hits / self.expected if self.expected else (1.0 if not self.predicted else 0.0)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"bounce_precision": precision, "bounce_recall": recall, "bounce_f1": f1}


def match_events(predicted: np.ndarray, expected: np.ndarray, tolerance: int = DEFAULT_TOLERANCE) -> Counts:
    """One-to-one matches of predicted to expected event frames (int arrays) within ``tolerance`` frames.

    Greedy by distance, which is optimal for events on a line when the tolerance is below half
    the spacing of the expected events and close to it otherwise.
    """
    pairs = sorted((abs(int(p) - int(e)), i, j) for i, p in enumerate(predicted) for j, e in enumerate(expected)
                   if abs(int(p) - int(e)) <= tolerance)
    used_p, used_e = set(), set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_e:
            used_p.add(i)
            used_e.add(j)
    return Counts(len(used_p), len(predicted), len(expected))


def object_path(clip: torch.Tensor | np.ndarray, cfg: TrackingConfig | None = None) -> np.ndarray:
    """Centre ``(x, y)`` per frame of the longest-tracked object, float ``[T, 2]`` (NaN where it was not seen).

    ``clip``: ``float [C, T, H, W]`` in ``[-1, 1]``.
    """
    cfg = cfg or TrackingConfig()
    frames = clip_frames(clip)  # (T, H, W, 3) in [0, 1]
    t, h, w = frames.shape[:3]
    tracks = track_blobs([detect_blobs(f, cfg)[0] for f in frames], cfg.max_jump * max(h, w))
    path = np.full((t, 2), np.nan)
    if tracks:
        best = max(tracks, key=lambda tr: len(tr.blobs))
        for frame, blob in zip(best.frames, best.blobs):
            path[frame] = blob.centre
    return path


MIN_STEP = 0.3  # px per frame: slower motion along an axis has no visible direction


def turning_frames(path: np.ndarray, min_step: float = MIN_STEP) -> np.ndarray:
    """The path's turning points: frames where a component of the motion reverses, int array.

    ``path``: ``[T, 2]`` (NaN = unseen). Steps shorter than ``min_step`` px have no direction and
    are stepped over, since a wall hit between two frames can leave one step of almost no net
    motion; the turning frame is the extreme position between the last step one way and the
    first step back.
    """
    turns = set()
    step = np.diff(path, axis=0)  # (T-1, 2): step[t] moves from frame t to t + 1
    for axis in range(2):
        moving = [t for t in range(len(step)) if np.isfinite(step[t, axis]) and abs(step[t, axis]) > min_step]
        for a, b in zip(moving, moving[1:]):
            if step[a, axis] * step[b, axis] < 0 and np.isfinite(path[a + 1:b + 1, axis]).all():
                span = path[a + 1:b + 1, axis]  # the frames between the two steps
                turns.add(a + 1 + int(np.argmin(span) if step[a, axis] < 0 else np.argmax(span)))
    return np.array(sorted(turns), dtype=np.int64)


def visible_bounces(bounces: np.ndarray, velocities: np.ndarray | None, min_step: float = MIN_STEP) -> np.ndarray:
    """Which true bounces ``bool [T]`` a tracker can see: not in frame 1 or the last frame (a wall hit just
    after the first frame or just before the last leaves no step of the path on one side of it in the
    clip) and, with ``velocities [T, 2]``, on an axis moving at least ``min_step`` px per frame."""
    visible = np.asarray(bounces, bool).copy()
    visible[:2] = False
    visible[-1:] = False
    if velocities is not None:
        v = np.asarray(velocities, np.float64)
        for t in np.flatnonzero(visible):
            flipped = np.sign(v[t]) != np.sign(v[t - 1])  # (2,) the axes that turned
            visible[t] = bool((np.abs(v[t])[flipped] >= min_step).any())
    return visible


def clip_sync(clip, bounces: np.ndarray, pitch: np.ndarray, tolerance: int = DEFAULT_TOLERANCE,
              cfg: TrackingConfig | None = None, velocities: np.ndarray | None = None,
              loudness: np.ndarray | None = None) -> tuple[Counts, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One clip against the ground truth of a sound: ``bounces`` bool ``[T]`` (a click at frame t) and
    ``pitch`` float ``[T]`` (Hz); ``velocities [T, 2]`` of the sound's object mark the bounces no
    tracker could see. Returns ``(bounce counts, log2 pitch, height, loudness, x)`` of the tracked
    frames (the last two empty without ``loudness [T]``).

    Bounces a tracker cannot see (:func:`visible_bounces`) are left out of both sides: they are not
    expected, and a turning point within ``tolerance`` of one is not counted as predicted.
    """
    path = object_path(clip, cfg)
    if len(path) != len(bounces):
        raise VideoSynthError(f"the clip has {len(path)} frames, its sound {len(bounces)}")
    visible = visible_bounces(bounces, velocities)
    hidden = np.flatnonzero(np.asarray(bounces, bool) & ~visible)
    turns = [t for t in turning_frames(path) if not (np.abs(hidden - t) <= tolerance).any()]
    counts = match_events(np.array(turns, dtype=np.int64), np.flatnonzero(visible), tolerance)
    seen = np.isfinite(path[:, 1])
    gain = np.zeros(0) if loudness is None else np.asarray(loudness, np.float64)[seen]
    across = np.zeros(0) if loudness is None else path[seen, 0]
    return counts, np.log2(np.asarray(pitch, np.float64)[seen]), -path[seen, 1], gain, across


def sync_scores(clips, truths: list[dict[str, np.ndarray]], tolerance: int = DEFAULT_TOLERANCE,
                cfg: TrackingConfig | None = None) -> dict[str, float]:
    """Bounce precision / recall / F1 and pitch-height correlation of ``clips`` (``[N, C, T, H, W]`` or a
    list of clips) against ``truths[i] = {"bounces": bool [T], "pitch": float [T], "velocities": [T, 2]}``
    (one object; ``velocities`` optional, see :func:`clip_sync`)."""
    total, tracked = Counts(), 0
    series: dict[str, list[np.ndarray]] = {"pitch": [], "height": [], "loudness": [], "x": []}
    for clip, truth in zip(clips, truths):
        counts, *values = clip_sync(clip, truth["bounces"], truth["pitch"], tolerance, cfg, truth.get("velocities"),
                                    truth.get("loudness"))
        total.add(counts)
        for key, value in zip(series, values):
            series[key].append(value)
        tracked += len(values[1]) > 0
    out = total.scores()
    out["pitch_height_corr"] = _pooled_corr(series["pitch"], series["height"])
    if any(truth.get("loudness") is not None for truth in truths):
        out["loudness_x_corr"] = _pooled_corr(series["loudness"], series["x"])
    out["tracked_share"] = tracked / max(len(truths), 1)
    out["num_clips"] = float(len(truths))
    return out


def _pooled_corr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Pearson correlation of the concatenated series (NaN when either is constant or too short)."""
    x, y = (np.concatenate(a), np.concatenate(b)) if a else (np.zeros(0), np.zeros(0))
    return float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and x.std() > 0 and y.std() > 0 else math.nan


# ----------------------------------------------------------------------------- the heuristic


def audio_onsets(audio: np.ndarray, rate: int, fps: float, frames: int, n_fft: int = 512) -> np.ndarray:
    """Frames where the sound's energy rises sharply (half-wave rectified spectral flux, peak-picked), int array."""
    hop = n_fft // 4
    x = torch.as_tensor(np.asarray(audio, np.float32))[None]
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True).abs()[0]
    log = torch.log1p(spec * 10)  # (F, J): compressed magnitudes
    flux = torch.relu(log[:, 1:] - log[:, :-1]).sum(0).numpy()  # (J-1,)
    per_frame = np.zeros(frames)
    for j, value in enumerate(flux, start=1):
        t = int(j * hop / rate * fps)
        if t < frames:
            per_frame[t] = max(per_frame[t], value)
    return _peaks(per_frame)


def motion_peaks(clip: torch.Tensor | np.ndarray) -> np.ndarray:
    """Frames where the motion energy (mean absolute difference to the previous frame) peaks, int array."""
    x = clip.detach().float().cpu().numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip, np.float32)
    energy = np.zeros(x.shape[1])
    energy[1:] = np.abs(np.diff(x, axis=1)).mean(axis=(0, 2, 3))  # (T,)
    # a change of direction shows as a dip of the energy between two peaks as much as a peak: use the
    # second difference's magnitude, which is large at both
    accel = np.zeros_like(energy)
    accel[1:-1] = np.abs(energy[2:] - 2 * energy[1:-1] + energy[:-2])
    return _peaks(accel)


def _peaks(values: np.ndarray, spread: float = 1.0) -> np.ndarray:
    """Local maxima above ``mean + spread * std``, int array."""
    if len(values) < 3 or values.std() == 0:
        return np.zeros(0, dtype=np.int64)
    cut = values.mean() + spread * values.std()
    return np.array([t for t in range(len(values)) if values[t] > cut
                     and values[t] >= values[max(t - 1, 0)] and values[t] >= values[min(t + 1, len(values) - 1)]],
                    dtype=np.int64)


def onset_alignment(clips, sounds, rate: int, fps: float, tolerance: int = DEFAULT_TOLERANCE) -> dict[str, float]:
    """The energy-onset heuristic over clips ``[C, T, H, W]`` and their sounds ``[S]``: F1 of motion peaks
    against audio onsets within ``tolerance`` frames, pooled (see the module docstring)."""
    total = Counts()
    for clip, sound in zip(clips, sounds):
        frames = clip.shape[1]
        total.add(match_events(motion_peaks(clip), audio_onsets(np.asarray(sound), rate, fps, frames), tolerance))
    scores = total.scores()
    return {"onset_precision": scores["bounce_precision"], "onset_recall": scores["bounce_recall"],
            "onset_f1": scores["bounce_f1"]}


SYNC_SIDES = ("real", "matched", "shuffled")
MAX_TOLERANCE = 8  # frames


def check_request(num: int, tolerance: int) -> None:
    """One-line errors for a sync protocol's clip count (the shuffled control needs 2) and tolerance (0..8 frames)."""
    from videosynth.errors import ConfigError

    if num < 2:
        raise ConfigError(f"--num {num}: the shuffled control needs at least 2 clips")
    if not 0 <= tolerance <= MAX_TOLERANCE:
        raise ConfigError(f"--tolerance {tolerance}: must be in 0..{MAX_TOLERANCE} frames")


def sync_protocol(pipe, num: int, seed: int, tolerance: int = 1, batch_size: int = 16, options: dict | None = None,
                  on_progress=None) -> dict:
    """Sync scores of a sound-driven run (``pipe``, its pipeline) on the val split of the data it was trained on.

    ``num`` val clips give their sound; the run makes one clip for each (``matched``) and one for the
    sound of the clip before it (``shuffled``, a derangement: the control); the real clips are the
    ceiling. On built-in one-object data the scores are :func:`sync_scores` against the soundtrack's
    ground truth, elsewhere the :func:`onset_alignment` heuristic. Clip ``i`` of a batch starting at
    ``start`` uses seed ``seed + start``. Returns ``{"metric", "title", "scores": {side: {score: value}},
    "frames", "protocol"}``.

    Raises:
        ConfigError: fewer than 2 clips, a tolerance outside 0..8, a run without sound, or a val split
            smaller than ``num``.
    """
    import dataclasses

    import torch

    from videosynth.data import build_dataset
    from videosynth.data.factory import BUILTIN as BUILTIN_DATA
    from videosynth.errors import ConfigError

    options = dict(options or {})
    check_request(num, tolerance)
    if not pipe.takes_audio:
        raise ConfigError(f"{pipe.run_dir} was trained without condition.audio: there is no sound to follow")
    data = pipe.data
    exact = data.name in BUILTIN_DATA and data.num_objects == 1
    built = dataclasses.replace(data, num_samples=max(data.num_samples, num)) if data.name in BUILTIN_DATA else data
    ds = build_dataset(built, "val")
    if len(ds) < num:
        raise ConfigError(f"--num {num}: the val split of {pipe.run_dir}'s data holds {len(ds)} clips")
    items = [ds[i] for i in range(num)]
    real = torch.stack([it["video"] for it in items])  # (N, C, T, H, W)
    sound = torch.stack([it["audio"] for it in items])  # (N, S)
    clips = {"real": real}
    for side, audio in (("matched", sound), ("shuffled", sound.roll(1, dims=0))):  # clip i hears clip i-1's sound
        clips[side] = clips_for(pipe, "audio", audio, seed, batch_size, options, on_progress)
    if exact:
        truths = [{k: ds.factors(i)[k][:, 0] for k in ("bounces", "pitch", "velocities", "loudness")}
                  for i in range(num)]
        scores = {side: sync_scores(clips[side], truths, tolerance) for side in SYNC_SIDES}
        title = "audio-visual sync against the soundtrack's ground truth (bounce clicks, pitch = height)"
    else:
        scores = {side: onset_alignment(clips[side], sound.numpy(), pipe.audio_rate, pipe.condition.audio_fps,
                                        tolerance) for side in SYNC_SIDES}
        title = "audio-visual sync, energy-onset HEURISTIC (audio onsets vs motion-energy peaks; no ground truth)"
    protocol = {"step": pipe.step, "num": num, "seed": seed, "tolerance": tolerance, "split": "val",
                "options": options, "data": dataclasses.asdict(data)}
    return {"metric": "sync" if exact else "onset-heuristic", "title": title, "scores": scores,
            "frames": real.shape[2], "protocol": protocol}
