"""The measuring of the capability matrix: compositional split, text, prediction, class kept, shuffled labels.

Each metric scores the built-in data's own ground truth (real clips with their true captions, true
futures, true labels) near perfect and its controls (shuffled versions) near chance. The shape is
judged by a geometric stand-in for the class probe, so no probe has to be trained here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from videosynth.data import DataConfig, build_dataset
from videosynth.data.synthetic import COLOURS, DIRECTIONS, PALETTE, BouncingShapes, sub_combinations
from videosynth.errors import ConfigError


class ShapeByFill(torch.nn.Module):
    """Stand-in for the class probe: circle, square or triangle by the share of its bounding box the object
    of the first frame fills (pi / 4, 1, 1 / 2). Returns ``(None, logits [B, 3], None)`` as the probe does."""

    FILL = torch.tensor([math.pi / 4, 1.0, 0.5])

    def forward(self, videos: torch.Tensor):
        mask = (videos[:, :, 0].max(dim=1).values + 1) / 2 > 0.5  # (B, H, W): the object of the first frame
        fills = []
        for m in mask:
            ys, xs = torch.nonzero(m, as_tuple=True)
            box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1) if len(ys) else 1
            fills.append(m.sum() / box)
        return None, -(torch.stack(fills)[:, None] - self.FILL).abs(), None


DATA = DataConfig(name="bouncing-shapes", frames=8, size=32, object_size=12, num_samples=20000)


def real_items(split="val", num=120, data=DATA):
    ds = build_dataset(data, split)
    items = [ds[i] for i in range(num)]
    return ds, torch.stack([it["video"] for it in items]), torch.stack([it["label"] for it in items])


# ---- the compositional split -----------------------------------------------------------------------------------


def test_no_held_out_combination_in_the_whole_train_split_and_every_pair_still_trained():
    cfg = DataConfig(name="bouncing-shapes", frames=1, size=16, num_samples=4000, holdout_combinations=24)
    train = build_dataset(cfg, "train")
    held = train.held_out
    assert len(held) == 24 and held <= set(train.combinations())
    seen = {train.combination_of(train.factors(i)) for i in range(len(train))}  # the whole train split
    assert not seen & held
    assert len(seen) == 3 * len(PALETTE) * len(DIRECTIONS) - 24  # everything else is still trained on
    kept_pairs = {p for combo in seen for p in sub_combinations(combo, [0, 1, 2])}
    assert all(p in kept_pairs for combo in held for p in sub_combinations(combo, [0, 1, 2]))  # only the triple is new
    val = build_dataset(cfg, "val")
    assert val.held_out == held  # the same set in every split, drawn from data.seed
    assert sum(val.combination_of(val.factors(i)) in held for i in range(400)) > 20  # val keeps them


def test_holdout_is_deterministic_by_seed_and_leaves_other_items_alone():
    plain = BouncingShapes(num_samples=50, frames=3, size=16)
    a = BouncingShapes(num_samples=50, frames=3, size=16, holdout_combinations=10)
    b = BouncingShapes(num_samples=50, frames=3, size=16, holdout_combinations=10)
    other = BouncingShapes(num_samples=50, frames=3, size=16, holdout_combinations=10, seed=1)
    assert a.held_out == b.held_out != other.held_out
    redrawn = 0
    for i in range(50):
        fp, fa = plain.factors(i), a.factors(i)
        if plain.combination_of(fp) in a.held_out:
            redrawn += 1
            assert a.combination_of(fa) not in a.held_out
        else:  # a clip not held out is the clip it always was
            np.testing.assert_array_equal(fp["positions"], fa["positions"])
    assert redrawn > 0
    white = BouncingShapes(num_samples=10, frames=2, size=16, colour="white", holdout_combinations=3)
    assert {c for _, c, _ in white.combinations()} == {"white"} and len(white.held_out) == 3


def test_holdout_errors_are_one_line():
    with pytest.raises(ConfigError, match="at most .* can be held out"):
        build_dataset(DataConfig(holdout_combinations=160), "train")
    with pytest.raises(ConfigError, match="holdout_combinations applies to the built-in"):
        build_dataset(DataConfig(name="folder", root="/nonexistent", holdout_combinations=2), "train")


# ---- text: shape, colour and direction of a caption ---------------------------------------------------------------


def test_text_attributes_of_real_clips_near_perfect_and_of_shuffled_captions_near_chance():
    from videosynth.metrics.text import attribute_hits, attribute_scores

    ds, real, _ = real_items(num=150)
    truths = [ds.combination_of(ds.factors(i)) for i in range(150)]
    colours = {n: COLOURS[n] for n in ds.colour_names()}
    true = attribute_scores(attribute_hits(real, truths, ShapeByFill(), colours, "cpu"))
    assert true["shape"] > 0.95 and true["colour"] > 0.97 and true["direction"] > 0.9  # a bounce in the first
    assert true["all_three"] > 0.85  # frame step turns a clip away from its caption's direction
    shuffled = attribute_scores(attribute_hits(real.roll(1, dims=0), truths, ShapeByFill(), colours, "cpu"))
    assert shuffled["shape"] < 0.5 and shuffled["colour"] < 0.3 and shuffled["direction"] < 0.3  # 1/3, 1/7, 1/8
    assert shuffled["all_three"] < 0.03


def test_text_colour_and_direction_from_the_tracker_by_hand():
    from videosynth.metrics.text import clip_colour_direction

    clip = -torch.ones(3, 4, 16, 16)
    for t in range(4):  # a blue 4x4 square moving 2 px up per frame (y grows downwards)
        clip[:, t, 10 - 2 * t:14 - 2 * t, 6:10] = torch.tensor(PALETTE["blue"]).view(3, 1, 1) / 127.5 - 1
    assert clip_colour_direction(clip, {n: COLOURS[n] for n in PALETTE}) == ("blue", DIRECTIONS.index("up"))
    assert clip_colour_direction(-torch.ones(3, 4, 16, 16), PALETTE) == (None, -1)


# ---- prediction: the future of observed frames ------------------------------------------------------------------


def test_blind_error_and_untracked_frames_by_hand():
    from videosynth.metrics.prediction import blind_error, constant_velocity, position_errors

    assert blind_error(np.array([[0.5, 0.5]]), 2) == pytest.approx(math.sqrt(0.5))  # 4 pixel centres around it
    truth = np.array([[3.0, 4.0], [0.5, 0.5]])
    errors = position_errors(np.array([[0.0, 0.0], [np.nan, np.nan]]), truth, 2)
    np.testing.assert_allclose(errors, [5.0, math.sqrt(0.5)])
    np.testing.assert_allclose(constant_velocity(np.array([[0.0, 0.0], [1.0, 2.0]]), 2), [[2, 4], [3, 6]])


def test_prediction_of_the_true_future_near_perfect_and_of_another_clips_near_chance():
    from videosynth.metrics.prediction import constant_velocity, future_errors, prediction_scores
    from videosynth.metrics.sync import object_path

    ds, real, labels = real_items(num=60)
    truths = np.stack([ds.centroids(ds.factors(i))[:, 0] for i in range(60)])  # (N, T, 2)
    k = 4
    true = prediction_scores(real, truths, labels, k, ShapeByFill(), "cpu")
    assert true["error@4"] < 0.05 and true["class_kept"] > 0.95 and true["valid_share"] > 0.95
    chance = prediction_scores(real.roll(1, dims=0), truths, labels, k, ShapeByFill(), "cpu")
    assert chance["error@4"] > 8 and chance["class_kept"] < 0.6  # about a third of the 32 px frame; 1/3
    straight = np.stack([constant_velocity(object_path(c[:, :k]), 8 - k) for c in real])
    cv = future_errors(straight, truths, k, 32)
    assert true["error@4"] < cv["error@4"] < 1.5  # exact until a bounce
    assert cv["error_per_frame"][0] < cv["error_per_frame"][-1]  # more bounces the further it looks


# ---- class kept over long clips; the shuffled-label control -------------------------------------------------------


def test_class_kept_over_long_real_clips_and_its_control():
    from videosynth.metrics.class_accuracy import class_kept, window_classes

    _, real, _ = real_items(num=90, data=dataclasses.replace(DATA, frames=80))  # 10x the training length
    scores = class_kept(*window_classes(ShapeByFill(), real, 8, "cpu"))
    assert scores["class_kept"] > 0.95 and 0.15 < scores["class_kept_shuffled"] < 0.55


class ClassRun:
    """A class-conditional 'run' that draws real val clips of the asked class (or ignores it)."""

    condition_kind, class_names, run_dir, step = "class", ["circle", "square", "triangle"], "fake", 0

    def __init__(self, follows: bool):
        self.data = DATA
        self.ds, self.real, self.labels = real_items(num=150)
        self.follows = follows

    def __call__(self, num, seed, label, ema, **options):
        pool = self.real[self.labels == label] if self.follows else self.real[seed * num:]
        return pool[:num]


@pytest.mark.parametrize("follows", [True, False])
def test_class_acc_shuffled_label_control(follows, monkeypatch):
    from videosynth.metrics import class_accuracy as ca

    monkeypatch.setattr(ca, "class_probe", lambda *args: (ShapeByFill(), "stand-in"))
    result = ca.class_accuracy(ClassRun(follows), 20, 0, "cpu", {})
    assert result["real_accuracy"] > 0.95 and 0.15 < result["real_shuffled_accuracy"] < 0.55
    if follows:
        assert result["accuracy"] > 0.95 and result["shuffled_accuracy"] < 0.05
    else:  # a run that ignores its label scores about the same on both
        assert abs(result["accuracy"] - result["shuffled_accuracy"]) < 0.2


# ---- the commands, end to end ------------------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "runs-v0"


def test_eval_predict_and_track_class_kept_on_a_prior(tmp_path):
    from test_cli import videosynth

    out = tmp_path / "predict.json"
    res = videosynth("eval", "predict", FIXTURES / "transformer", "--num", 4, "--probe-steps", 2, "--json", out)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["prime_frames"] == 2 and set(result["scores"]) == {"real", "run", "last frame copied",
                                                                     "constant velocity", "chance"}
    assert all(len(side["error_per_frame"]) == 2 for side in result["scores"].values())
    assert result["scores"]["real"]["error@4"] < 0.1 and "constant velocity" in res.stdout
    out = tmp_path / "track.json"
    res = videosynth("eval", "track", "bouncing-shapes", FIXTURES / "transformer", "--frames", 12, "--num", 4,
                     "--class-kept", "--json", out)  # 3x the training length, by sliding windows
    assert res.returncode == 0, res.stderr[-3000:]
    track = json.loads(out.read_text())
    assert "class_kept" in track["comparison"] and 0 <= track["fake"]["class_kept_shuffled"] <= 1
    assert "class kept over the last 4-frame window" in res.stdout


@pytest.mark.slow
def test_eval_text_end_to_end_with_a_compositional_split(tmp_path):
    import videosynth as vs
    from test_cli import videosynth

    run = tmp_path / "text"
    res = videosynth("train", "--config", "configs/transformer/shapes-32x32x8.yaml", "--run-dir", run,
                     "--set", f"tokenizer_run={FIXTURES / 'vqvae'}", "--set", "model.preset=tiny",
                     "--set", "data.size=16", "--set", "data.frames=4", "--set", "data.colour=",
                     "--set", "data.object_size=0", "--set", "data.num_samples=16",
                     "--set", "data.holdout_combinations=12", "--set", "condition.kind=text",
                     "--set", "condition.dim=8", "--set", "train.steps=2", "--set", "train.batch_size=4",
                     "--set", "train.sample_every=0")
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "text.json"
    res = videosynth("eval", "text", run, "--num", 4, "--probe-steps", 2, "--json", out)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["scores"]) == {"all", "held_out"} and len(result["held_out"]) == 12
    for table in result["scores"].values():
        assert set(table) == {"real", "real shuffled", "matched", "shuffled"}
        assert all(side["num_clips"] == 4 for side in table.values())
    assert "held-out combinations (12 never in training)" in res.stdout
    pipe = vs.load(run, device="cpu")
    caption = "a red circle moves left"
    assert torch.equal(pipe(2, seed=3, text=[caption] * 2), pipe(2, seed=3, text=caption))  # one caption per clip
    other = "a blue square moves up"
    mixed = pipe(2, seed=3, text=[caption, other])  # row i is made for caption i, with row i's draws
    assert torch.equal(mixed[1], pipe(2, seed=3, text=other)[1]) and torch.equal(mixed[0], pipe(2, seed=3, text=caption)[0])
    with pytest.raises(ConfigError, match="3 captions for 2 clips"):
        pipe(2, text=[caption] * 3)


def test_eval_text_and_predict_refuse_runs_that_cannot_take_them():
    from test_cli import one_line_error, videosynth

    assert "does not continue observed frames" in one_line_error(
        videosynth("eval", "predict", FIXTURES / "videogan", "--num", 4))
    assert "needs a run trained with condition.kind: text" in one_line_error(
        videosynth("eval", "text", FIXTURES / "transformer", "--num", 4))


class _RecordingPipe:
    """A stand-in pipeline that returns each observed clip's first frame held, tagged with the label it got."""

    def __init__(self, kind: str):
        self.condition_kind, self.calls = kind, []

    def __call__(self, n, seed=0, label=None, prime_video=None, batch_size=16, **options):
        self.calls.append((n, label))
        out = prime_video[:, :, :1].repeat(1, 1, 8, 1, 1).clone()
        out[:, 0, -1] = -1.0 if label is None else float(label)  # the label, read back below
        return out


def test_a_class_conditional_run_continues_each_clip_under_its_own_class():
    from videosynth.metrics.prediction import continued

    observed = torch.rand(6, 3, 4, 8, 8)
    labels = torch.tensor([2, 0, 2, 1, 0, 2])
    pipe = _RecordingPipe("class")
    out = continued(pipe, observed, labels, seed=0, options={})
    assert pipe.calls == [(2, 0), (1, 1), (3, 2)]  # one call per class present: (clips, label)
    assert torch.equal(out[:, 0, -1, 0, 0], labels.float())  # every clip continued under its own class
    assert torch.equal(out[:, 1, 0], observed[:, 1, 0])  # ... and back in the clips' order
    plain = _RecordingPipe("none")
    assert torch.equal(continued(plain, observed, labels, seed=0, options={})[:, 0, -1, 0, 0], torch.full((6,), -1.0))
    assert plain.calls == [(6, None)]
