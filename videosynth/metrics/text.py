"""Text conditioning scored: does a clip show the shape, colour and direction its caption names?

The built-in ``bouncing-shapes`` captions name three attributes of their one object ("a red
circle moves up and to the left"), and the data know each exactly. A clip is scored on each:

- **shape** by the class probe (:mod:`videosynth.metrics.class_accuracy`, trained on the run's
  data with every combination shown);
- **colour** by the tracker (:mod:`videosynth.metrics.tracking`): the median colour of the
  longest-tracked object, named by the nearest colour the data can draw;
- **direction** by the tracker: the object's first steps (up to :data:`INITIAL_STEPS`, cut at
  the first reversal, which is a bounce) in the caption's eight 45-degree sectors;

and **all three** at once. Reported for real val clips with their own captions (the ceiling: a
caption whose object bounces within its first frame step names a direction no clip shows), real
clips against the caption before theirs (chance), clips made for their caption (``matched``) and a
**shuffled-caption control**: clips made for the caption before, scored against their own: a run
that ignores its text scores the same on both. With a compositional split
(``data.holdout_combinations``) the val clips whose (shape, colour, direction) the training split
never showed are scored again on their own: that is what text conditioning is for.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from videosynth.errors import ConfigError
from videosynth.metrics.pipeline import clips_for
from videosynth.metrics.tracking import TrackingConfig, clip_frames, detect_blobs, track_blobs

ATTRIBUTES = ("shape", "colour", "direction")
SIDES = ("real", "real shuffled", "matched", "shuffled")
INITIAL_STEPS = 3  # frame steps the initial direction is averaged over (fewer where the object turns)
SCAN_LIMIT = 20000  # val items looked through for clips of held-out combinations


def clip_colour_direction(clip: torch.Tensor, colours: dict[str, tuple[int, int, int]],
                          cfg: TrackingConfig | None = None) -> tuple[str | None, int]:
    """The colour name (nearest of ``colours``) and initial direction index (of
    :data:`~videosynth.data.synthetic.DIRECTIONS`, -1 when unseen) of the longest-tracked object of
    ``clip`` (``float [C, T, H, W]`` in ``[-1, 1]``); ``(None, -1)`` when nothing is tracked."""
    from videosynth.data.synthetic import direction_index

    cfg = cfg or TrackingConfig()
    frames = clip_frames(clip)  # (T, H, W, 3) in [0, 1]
    h, w = frames.shape[1:3]
    tracks = track_blobs([detect_blobs(f, cfg)[0] for f in frames], cfg.max_jump * max(h, w))
    if not tracks:
        return None, -1
    best = max(tracks, key=lambda tr: (len(tr.blobs), -tr.frames[0]))
    rgb = np.median(np.stack([b.colour for b in best.blobs]), axis=0)  # (3,) uint8 units
    names = list(colours)
    palette = np.array([colours[n] for n in names], np.float64)  # (P, 3)
    colour = names[int(np.argmin(np.linalg.norm(palette - rgb, axis=1)))]
    centres = np.stack([b.centre for b in best.blobs[:INITIAL_STEPS + 1]])  # (<= S + 1, 2)
    steps = np.diff(centres, axis=0)  # (S, 2)
    if not len(steps):
        return colour, -1
    n = 1
    while n < len(steps) and (np.sign(steps[n]) == np.sign(steps[0])).all():
        n += 1
    return colour, direction_index(*steps[:n].mean(0))


def attribute_hits(clips: torch.Tensor, truths: list[tuple[int, str, int]], probe, colours: dict,
                   device: str, cfg: TrackingConfig | None = None) -> np.ndarray:
    """bool ``[N, 3]``: does clip ``i`` (``float [N, C, T, H, W]`` in ``[-1, 1]``) show the shape, colour
    and direction of ``truths[i]`` (class index, colour name, direction index)?"""
    from videosynth.metrics.class_accuracy import probe_predictions

    shapes = probe_predictions(probe, clips, device).numpy()  # (N,)
    hits = np.zeros((len(truths), len(ATTRIBUTES)), bool)
    for i, (clip, (cls, colour, direction)) in enumerate(zip(clips, truths)):
        seen_colour, seen_direction = clip_colour_direction(clip, colours, cfg)
        hits[i] = (shapes[i] == cls, seen_colour == colour, seen_direction == direction)
    return hits


def attribute_scores(hits: np.ndarray) -> dict[str, float]:
    """Accuracy per attribute and of all three at once, from :func:`attribute_hits`."""
    out = {name: float(hits[:, j].mean()) for j, name in enumerate(ATTRIBUTES)}
    out["all_three"] = float(hits.all(axis=1).mean())
    out["num_clips"] = float(len(hits))
    return out


def _val_items(ds, num: int, want: Callable[[tuple], bool]) -> list[int]:
    """The first ``num`` val indices whose (class, colour, direction) ``want`` accepts."""
    out = []
    for i in range(min(len(ds), SCAN_LIMIT)):
        if want(ds.combination_of(ds.factors(i))):
            out.append(i)
            if len(out) == num:
                break
    return out


def check_text_run(pipe, num: int) -> None:
    """ConfigError unless ``pipe`` is a text run on one-object bouncing shapes and ``num`` is at least 2."""
    from videosynth.conditioning import TEXT_KINDS

    if num < 2:
        raise ConfigError(f"--num {num}: the shuffled control needs at least 2 clips")
    if pipe.condition_kind not in TEXT_KINDS:
        raise ConfigError(f"{pipe.run_dir} has condition.kind '{pipe.condition_kind}': eval text needs a run "
                          "trained with condition.kind: text")
    if pipe.data.name != "bouncing-shapes" or pipe.data.num_objects != 1:
        raise ConfigError(f"eval text scores captions of one-object bouncing-shapes (shape, colour, direction); "
                          f"{pipe.run_dir} was trained on {pipe.data.name} with {pipe.data.num_objects} object(s)")


def text_protocol(pipe, num: int, seed: int, batch_size: int = 16, options: dict | None = None,
                  probe_path=None, probe_steps: int = 600, device: str = "cpu",
                  on_progress: Callable[[int], None] | None = None) -> dict:
    """Attribute accuracy of a text run (``pipe``) on the captions of its data's val split.

    Scores ``num`` val clips (``all``) and, with a compositional split, ``num`` val clips of held-out
    combinations (``held_out``) on every side of :data:`SIDES`; clip ``i`` of a batch starting at
    ``start`` uses seed ``seed + start``. Returns ``{"metric", "scores": {set: {side: scores}},
    "held_out": [captions], "probe", "protocol"}``.

    Raises:
        ConfigError: see :func:`check_text_run`; a val split without ``num`` held-out clips.
    """
    from videosynth.data import build_dataset
    from videosynth.data.synthetic import COLOURS, DIRECTIONS, SHAPES
    from videosynth.metrics.class_accuracy import class_probe

    check_text_run(pipe, num)
    options = dict(options or {})
    data = pipe.data
    shown = dataclasses.replace(data, holdout_combinations=0)  # the judge sees every combination
    probe, path = class_probe(shown, list(SHAPES), device, probe_path, probe_steps)
    ds = build_dataset(dataclasses.replace(data, num_samples=max(data.num_samples, SCAN_LIMIT)), "val")
    colours = {name: COLOURS[name] for name in ds.colour_names()}
    sets = {"all": _val_items(ds, num, lambda combo: True)}
    if ds.held_out:
        sets["held_out"] = _val_items(ds, num, lambda combo: combo in ds.held_out)
        if len(sets["held_out"]) < num:
            raise ConfigError(f"--num {num}: the first {SCAN_LIMIT} val clips hold {len(sets['held_out'])} of "
                              "held-out combinations; lower --num")
    scores = {}
    for name, indices in sets.items():
        items = [ds[i] for i in indices]
        real = torch.stack([it["video"] for it in items])  # (N, C, T, H, W)
        captions = [it["caption"] for it in items]
        truths = [ds.combination_of(ds.factors(i)) for i in indices]
        clips = {"real": real, "real shuffled": real.roll(1, dims=0)}  # clip i shows caption i-1's object
        for side, texts in (("matched", captions), ("shuffled", captions[-1:] + captions[:-1])):
            clips[side] = clips_for(pipe, "text", texts, seed, batch_size, options, on_progress)
        scores[name] = {side: attribute_scores(attribute_hits(clips[side], truths, probe, colours, device))
                        for side in SIDES}
    held = sorted(ds.held_out)
    return {"metric": "text", "scores": scores, "probe": str(path),
            "held_out": [f"a {c} {SHAPES[s]} moves {DIRECTIONS[d]}" for s, c, d in held],
            "protocol": {"step": pipe.step, "num": num, "seed": seed, "split": "val", "options": options,
                         "data": dataclasses.asdict(data), "initial_steps": INITIAL_STEPS}}
