"""Sync scores of a joint audio-video run: do the sound and the picture it makes belong together?

On built-in one-object data with a soundtrack (:mod:`videosynth.data.synthetic`) a joint run is
scored three ways on the val clips of the data it was trained on, each with a shuffled control:

- **joint** (clips made with their own sound): the clicks, pitch and loudness read from each
  generated sound (:mod:`videosynth.metrics.sound`) stand for the truth a sync score needs, and the
  generated clip is scored against them by :func:`~videosynth.metrics.sync.sync_scores` (bounce F1
  of its tracked turning points against the clicks, pitch-height and loudness-x correlations).
  ``real``: real clips against what the analysers read from their real sound (the chain's
  ceiling); ``shuffled``: each generated clip against the sound generated with the clip before it.
- **video-to-audio** (sound made for a real val clip): the sound is read back against that clip's
  ground truth (:func:`~videosynth.metrics.sound.truth_scores`); ``real``: its real sound;
  ``shuffled``: the sound made for the clip before it.
- **audio-to-video** (a clip made for a real val sound): the clip against the sound's ground truth,
  as ``eval sync`` scores a sound-driven run; ``real``: the real clip; ``shuffled``: the clip made
  for the sound before it.

Clips of a class-conditional run are made with their val clip's class (joint clips cycle through
the classes). Shuffled controls pair clip ``i`` with clip ``i - 1``'s partner: a model that ignores
the other stream scores the same both ways.

Given a class probe (a class-conditional run), each mode also scores **class-timbre**: the class
the probe sees in a clip against the class a :class:`~videosynth.metrics.timbre.TimbreProbe` (fitted
on the train split's real soundtracks) hears in its sound -- joint: the generated clip against its
own generated sound; video-to-audio: the sound made for a val clip against that clip's class;
audio-to-video: the clip made for a val sound against the sound's class -- each with the same
shuffled control; ``real`` rows score the real clips and sounds (the probes' ceiling). Joint rows
add ``class_accuracy``, the probe's class of each generated clip against the class it was made for.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from videosynth.errors import ConfigError
from videosynth.metrics.class_accuracy import probe_predictions
from videosynth.metrics.sound import sound_events, truth_scores
from videosynth.metrics.sync import check_request, sync_scores

JOINT_MODES = ("joint", "video_to_audio", "audio_to_video")
JOINT_SIDES = {"joint": ("real", "generated", "shuffled"), "video_to_audio": ("real", "matched", "shuffled"),
               "audio_to_video": ("real", "matched", "shuffled")}


def heard_truths(sounds: torch.Tensor, rate: int, fps: float) -> list[dict[str, np.ndarray]]:
    """What each sound ``[S]`` of ``sounds [N, S]`` says, in the form of a clip's truth for
    :func:`~videosynth.metrics.sync.sync_scores`: ``bounces`` (a click at frame t), ``pitch``, ``loudness``."""
    out = []
    for sound in sounds:
        events = sound_events(sound, rate, fps)
        bounces = np.zeros(len(events.pitch), bool)
        bounces[events.clicks] = True
        out.append({"bounces": bounces, "pitch": events.pitch, "loudness": events.loudness})
    return out


def made_for(pipe, key: str, values: torch.Tensor, labels: torch.Tensor | None, seed: int, batch_size: int,
             options: dict, on_progress: Callable[[int], None] | None = None):
    """``pipe.with_sound`` with ``key=values[i]`` for every ``i`` (``given_video`` frames or ``audio``), each with
    its class ``labels[i]`` (None: the run takes no class); ``(video [N, C, T, H, W], audio [N, S])`` in order."""
    video, audio = [None] * len(values), [None] * len(values)
    groups = [(None, torch.arange(len(values)))] if labels is None else \
        [(int(k), torch.nonzero(labels == k).flatten()) for k in torch.unique(labels)]
    for label, index in groups:
        for start in range(0, len(index), batch_size):
            part = index[start:start + batch_size]
            av = pipe.with_sound(len(part), seed=seed + int(part[0]), label=label, batch_size=len(part),
                                 **{key: values[part]}, **options)
            for j, i in enumerate(part.tolist()):
                video[i], audio[i] = av.video[j], av.audio[j]
            if on_progress is not None:
                on_progress(len(part))
    return torch.stack(video), torch.stack(audio)


def joint_sync_protocol(pipe, num: int, seed: int, tolerance: int = 1, batch_size: int = 16,
                        options: dict | None = None, on_progress: Callable[[int], None] | None = None,
                        probe=None, device: str = "cpu") -> tuple[dict, dict[str, torch.Tensor]]:
    """The three scores of the module docstring for a joint run (``pipe``, its pipeline) on ``num`` val clips.

    Returns ``({"metric": "joint-sync", "scores": {mode: {side: {score: value}}}, "frames", "protocol"}, sounds)``
    with ``sounds`` ``{"real", "joint", "video_to_audio"}`` -> ``float32 [num, S]`` (the val clips' own, the
    generated clips', the ones made for the val clips), to listen to or draw. ``probe``: the class probe of
    ``eval class-acc`` on ``device``; with it, a class-conditional run is also scored for class-timbre.

    Raises:
        ConfigError: fewer than 2 clips, a tolerance outside 0..8, a run that makes no sound, data other
            than built-in one-object clips, or a val split smaller than ``num``.
    """
    from videosynth.data import build_dataset
    from videosynth.data.factory import BUILTIN

    options = dict(options or {})
    check_request(num, tolerance)
    if not pipe.generates_sound:
        raise ConfigError(f"{pipe.run_dir} makes no sound (not a joint audio-video run)")
    data = pipe.data
    if data.name not in BUILTIN or data.num_objects != 1:
        raise ConfigError(f"{pipe.run_dir} was trained on '{data.name}' with {data.num_objects} object(s): joint sync "
                          "is scored against the built-in one-object soundtrack's ground truth")
    ds = build_dataset(dataclasses.replace(data, num_samples=max(data.num_samples, num)), "val")
    if len(ds) < num:
        raise ConfigError(f"--num {num}: the val split of {pipe.run_dir}'s data holds {len(ds)} clips")
    items = [ds[i] for i in range(num)]
    real = torch.stack([it["video"] for it in items])  # (N, C, T, H, W)
    sound = torch.stack([it["audio"] for it in items])  # (N, S)
    labels = torch.stack([it["label"] for it in items]) if pipe.condition_kind == "class" else None
    truths = [{k: ds.factors(i)[k][:, 0] for k in ("bounces", "pitch", "velocities", "loudness", "positions")}
              for i in range(num)]
    rate, fps = pipe.audio_rate, pipe.audio_fps
    made, joint_labels = [], []
    for start in range(0, num, batch_size):  # joint: clips with their own sound, classes cycling
        made.append(pipe.with_sound(min(batch_size, num - start), seed=seed + start, batch_size=batch_size, **options))
        joint_labels.append(pipe.cycled_labels(0, made[-1].video.shape[0]))  # each call's draw starts the cycle
        if on_progress is not None:
            on_progress(made[-1].video.shape[0])
    joint_video, joint_sound = (torch.cat([m[i] for m in made]) for i in (0, 1))
    v2a_sound = made_for(pipe, "given_video", real, labels, seed, batch_size, options, on_progress)[1]
    a2v_video = made_for(pipe, "audio", sound, labels, seed, batch_size, options, on_progress)[0]
    heard = heard_truths(joint_sound, rate, fps)
    scores = {
        "joint": {"real": sync_scores(real, heard_truths(sound, rate, fps), tolerance),
                  "generated": sync_scores(joint_video, heard, tolerance),
                  "shuffled": sync_scores(joint_video, heard[-1:] + heard[:-1], tolerance)},
        "video_to_audio": {side: truth_scores(s, truths, rate, fps, tolerance)
                           for side, s in (("real", sound), ("matched", v2a_sound),
                                           ("shuffled", v2a_sound.roll(1, dims=0)))},
        "audio_to_video": {side: sync_scores(v, truths, tolerance)
                           for side, v in (("real", real), ("matched", a2v_video),
                                           ("shuffled", a2v_video.roll(1, dims=0)))},
    }
    if probe is not None and labels is not None:
        from videosynth.metrics.timbre import fit_on_data

        timbre = fit_on_data(dataclasses.replace(data, classes=[]), len(pipe.class_names), rate, fps)  # every class
        add_class_timbre(scores, {"real": timbre.predict(sound), "joint": timbre.predict(joint_sound),
                                  "video_to_audio": timbre.predict(v2a_sound)},
                         {"real": probe_predictions(probe, real, device),
                          "joint": probe_predictions(probe, joint_video, device),
                          "audio_to_video": probe_predictions(probe, a2v_video, device)},
                         labels, torch.cat(joint_labels))
    protocol = {"step": pipe.step, "num": num, "seed": seed, "tolerance": tolerance, "split": "val",
                "options": options, "data": dataclasses.asdict(data), "class_timbre": probe is not None}
    sounds = {"real": sound, "joint": joint_sound, "video_to_audio": v2a_sound}
    return {"metric": "joint-sync", "scores": scores, "frames": real.shape[2], "protocol": protocol}, sounds


def add_class_timbre(scores: dict, heard: dict[str, torch.Tensor], seen: dict[str, torch.Tensor],
                     labels: torch.Tensor, joint_labels: torch.Tensor) -> None:
    """Add ``class_timbre`` to every side of ``scores`` (and ``class_accuracy`` to the joint sides) from the
    classes ``heard`` in sounds (``real``, ``joint``, ``video_to_audio``) and ``seen`` in clips (``real``,
    ``joint``, ``audio_to_video``), int64 ``[N]`` each; ``labels``: the val clips' classes, ``joint_labels``:
    the classes the joint clips were made for. Shuffled sides pair clip ``i`` with partner ``i - 1``."""
    def agree(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a == b).float().mean())

    joint, v2a, a2v = scores["joint"], scores["video_to_audio"], scores["audio_to_video"]
    joint["real"]["class_timbre"] = agree(seen["real"], heard["real"])
    joint["generated"]["class_timbre"] = agree(seen["joint"], heard["joint"])
    joint["shuffled"]["class_timbre"] = agree(seen["joint"], heard["joint"].roll(1))
    joint["real"]["class_accuracy"] = agree(seen["real"], labels)
    joint["generated"]["class_accuracy"] = agree(seen["joint"], joint_labels)
    joint["shuffled"]["class_accuracy"] = agree(seen["joint"], joint_labels.roll(1))
    for side, classes in (("real", heard["real"]), ("matched", heard["video_to_audio"]),
                          ("shuffled", heard["video_to_audio"].roll(1))):
        v2a[side]["class_timbre"] = agree(classes, labels)
    for side, classes in (("real", seen["real"]), ("matched", seen["audio_to_video"]),
                          ("shuffled", seen["audio_to_video"].roll(1))):
        a2v[side]["class_timbre"] = agree(classes, labels)
