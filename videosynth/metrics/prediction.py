"""First frames scored: given ``k`` real frames of a held-out clip, does the continuation go where the object goes?

On the built-in data (one object) the future is known exactly: the object's tracked centre in
every frame (:meth:`~videosynth.data.synthetic.BouncingObjects.centroids`, what the tracker of
:mod:`videosynth.metrics.tracking` measures on a real clip, to a thousandth of a pixel). A run
observes the first ``k`` frames of a val clip and makes the rest; each clip is scored on:

- **position error** per future frame: pixels between the tracked centre and the true one
  (a frame where no object is tracked counts as a blind guess: the mean distance from the true
  centre to every pixel of the frame); ``error@4`` is its mean over the first four future frames;
- **class kept**: the class probe gives the future frames the clip's true class;
- **valid share** of the whole clip: the tracker's physics checks (:func:`~videosynth.metrics.tracking.clip_physics`).

Beside the run: the real clip (the ceiling), two controls that know nothing of the data's
physics, **the last observed frame copied** and **constant-velocity extrapolation** of the
observed track (exact until the first bounce), and **chance**: the future of another clip.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import torch

from videosynth.errors import ConfigError
from videosynth.metrics.sync import object_path
from videosynth.metrics.tracking import TrackingConfig, clip_physics

SIDES = ("real", "run", "last frame copied", "constant velocity", "chance")
HORIZON = 4  # future frames of the headline error


def blind_error(truth: np.ndarray, size: int) -> np.ndarray:
    """Mean distance (px) from each point of ``truth [F, 2]`` to every pixel centre of a ``size``-pixel frame."""
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).reshape(-1, 2)  # (size², 2) (x, y)
    return np.linalg.norm(truth[:, None] - grid[None], axis=2).mean(1)  # (F,)


def position_errors(path: np.ndarray, truth: np.ndarray, size: int) -> np.ndarray:
    """Per frame, pixels from ``path [F, 2]`` (NaN = not tracked) to ``truth [F, 2]``; untracked frames
    count as :func:`blind_error`."""
    error = np.linalg.norm(path - truth, axis=1)  # (F,) NaN where untracked
    return np.where(np.isfinite(error), error, blind_error(truth, size))


def constant_velocity(observed: np.ndarray, future: int) -> np.ndarray:
    """``future`` centres ``[F, 2]`` continuing the last step of the observed track ``[k, 2]`` in a straight
    line (NaN where the last two observed centres are not both tracked)."""
    step = observed[-1] - observed[-2]  # (2,)
    return observed[-1] + step * np.arange(1, future + 1)[:, None]  # (F, 2)


def check_prime_frames(k: int, frames: int) -> None:
    if not 2 <= k < frames:
        raise ConfigError(f"--prime-frames {k}: must be at least 2 (the constant-velocity control needs two "
                          f"observed frames) and below the clip's {frames} frames")


def future_errors(paths: np.ndarray, truths: np.ndarray, k: int, size: int) -> dict:
    """Position errors of future tracks ``paths [N, F, 2]`` (NaN = not tracked) against the true centres
    ``truths [N, T, 2]`` after ``k`` observed frames: ``error_per_frame`` (list of F), ``error@4`` (px)
    and ``num_clips``."""
    errors = np.stack([position_errors(p, t[k:], size) for p, t in zip(paths, truths)])  # (N, F)
    per_frame = errors.mean(0)
    return {"error_per_frame": [float(e) for e in per_frame], f"error@{HORIZON}": float(per_frame[:HORIZON].mean()),
            "num_clips": float(len(errors))}


def prediction_scores(clips: torch.Tensor, truths: np.ndarray, labels: torch.Tensor, k: int, probe, device: str,
                      cfg: TrackingConfig | None = None) -> dict:
    """Scores of continuations ``clips`` float ``[N, C, T, H, W]`` in ``[-1, 1]`` (the first ``k`` frames
    observed) against true centres ``truths [N, T, 2]`` and classes ``labels`` int64 ``[N]``: those of
    :func:`future_errors`, ``class_kept`` (the probe on the future frames) and ``valid_share``."""
    from videosynth.metrics.class_accuracy import probe_predictions

    paths = np.stack([object_path(clip, cfg)[k:] for clip in clips])  # (N, F, 2): tracked over the whole clip
    out = future_errors(paths, truths, k, clips.shape[-1])
    out["class_kept"] = float((probe_predictions(probe, clips[:, :, k:], device) == labels).float().mean())
    out["valid_share"] = float(np.mean([clip_physics(c, cfg)["valid"] for c in clips]))
    return out


def continued(pipe, observed: torch.Tensor, labels: torch.Tensor, seed: int, options: dict) -> torch.Tensor:
    """``pipe``'s continuations of ``observed [n, C, k, H, W]``; a class-conditional run continues each clip
    under its own class (one call per class present, in the clips' order), as a user who knows what the
    observed object is would ask -- any other label asks the model to change the object."""
    if pipe.condition_kind != "class":
        return pipe(len(observed), seed=seed, prime_video=observed, batch_size=len(observed), **options)
    out = torch.empty(0)
    for c in labels.unique().tolist():
        rows = (labels == c).nonzero().flatten()
        clips = pipe(len(rows), seed=seed + c, label=int(c), prime_video=observed[rows], batch_size=len(rows),
                     **options)
        if out.numel() == 0:
            out = clips.new_zeros((len(observed), *clips.shape[1:]))
        out[rows] = clips
    return out


def predict_protocol(pipe, num: int, seed: int, prime_frames: int | None = None, batch_size: int = 16,
                     options: dict | None = None, probe_path=None, probe_steps: int = 600, device: str = "cpu",
                     on_progress: Callable[[int], None] | None = None) -> dict:
    """Continuations by ``pipe`` (a run that takes ``prime_video``) of ``num`` val clips of its one-object
    built-in data, observed for ``prime_frames`` frames (default half the clip), scored on every side of
    :data:`SIDES`. Batch ``i`` uses seed ``seed + start`` (plus the class, for a class-conditional run:
    :func:`continued`). Returns ``{"metric", "scores": {side: ...},
    "prime_frames", "frames", "probe", "protocol"}``.

    Raises:
        ConfigError: not one-object built-in data, ``num`` below 2, a bad ``prime_frames``.
    """
    from videosynth.data import build_dataset
    from videosynth.data.factory import BUILTIN
    from videosynth.metrics.class_accuracy import class_probe

    data = pipe.data
    if data.name not in BUILTIN or data.num_objects != 1:
        raise ConfigError(f"eval predict scores the future of one object of the built-in data; {pipe.run_dir} "
                          f"was trained on {data.name} with {data.num_objects} object(s)")
    if num < 2:
        raise ConfigError(f"--num {num}: the chance control needs at least 2 clips")
    k = data.frames // 2 if prime_frames is None else prime_frames
    check_prime_frames(k, data.frames)
    options = dict(options or {})
    ds = build_dataset(dataclasses.replace(data, num_samples=max(data.num_samples, num)), "val")
    probe, path = class_probe(dataclasses.replace(data, holdout_combinations=0), ds.class_names, device,
                              probe_path, probe_steps)
    items = [ds[i] for i in range(num)]
    real = torch.stack([it["video"] for it in items])  # (N, C, T, H, W)
    labels = torch.stack([it["label"] for it in items])  # (N,)
    truths = np.stack([ds.centroids(ds.factors(i))[:, 0] for i in range(num)])  # (N, T, 2)
    made = []
    for start in range(0, num, batch_size):
        part = real[start:start + batch_size, :, :k]  # (n, C, k, H, W): the observed frames
        made.append(continued(pipe, part, labels[start:start + batch_size], seed + start, options))
        if on_progress is not None:
            on_progress(len(part))
    copied = torch.cat([real[:, :, :k], real[:, :, k - 1:k].expand(-1, -1, data.frames - k, -1, -1)], dim=2)
    observed = np.stack([object_path(clip[:, :k]) for clip in real])  # (N, k, 2)
    straight = np.stack([constant_velocity(o, data.frames - k) for o in observed])  # (N, F, 2)
    scores = {"real": prediction_scores(real, truths, labels, k, probe, device),
              "run": prediction_scores(torch.cat(made)[:, :, :data.frames], truths, labels, k, probe, device),
              "last frame copied": prediction_scores(copied, truths, labels, k, probe, device),
              "constant velocity": {**future_errors(straight, truths, k, data.size),
                                    "class_kept": math.nan, "valid_share": math.nan},
              "chance": prediction_scores(real.roll(1, dims=0), truths, labels, k, probe, device)}
    scores["chance"]["valid_share"] = math.nan  # another real clip: its physics are the data's, not a score
    return {"metric": "predict", "scores": scores, "prime_frames": k, "frames": data.frames, "probe": str(path),
            "protocol": {"step": pipe.step, "num": num, "seed": seed, "split": "val", "options": options,
                         "horizon": HORIZON, "data": dataclasses.asdict(data)}}
