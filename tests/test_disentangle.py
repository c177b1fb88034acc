"""Content/motion disentanglement: ground-truth sweeps of the built-in data score near 1, shuffled groups
near chance; pair rules at their edges; ``eval disentangle`` end to end."""

from __future__ import annotations

import json
import math
import numpy as np
import pytest
import torch

from videosynth.data.synthetic import BouncingShapes
from videosynth.data.transforms import to_float
from videosynth.errors import VideoSynthError
from videosynth.metrics.disentangle import (ClipMeasures, agreement, disentanglement, format_table, grid_groups,
                                            measure_clips, paths)

from test_hostile_files import FIXTURES, one_line_error, run_cli

K = 6  # content codes x motion codes of the ground-truth grid
MOTION_BASE = 100  # items whose paths the grid borrows (apart from the items whose objects it shows)


@pytest.fixture(scope="module")
def sweeps():
    """A K x K ground-truth grid (row r: the object of item r; column c: the path of item MOTION_BASE + c),
    K * K independent items, and an oracle classifier (each clip's true class) for both."""
    ds = BouncingShapes(num_samples=400, frames=8, size=32, split="val")
    grid = torch.stack([to_float(ds.render_mixed(r, MOTION_BASE + c)) for r in range(K) for c in range(K)])
    items = range(2 * MOTION_BASE, 2 * MOTION_BASE + K * K)
    shuffled = torch.stack([to_float(ds.render(i)) for i in items])
    grid_classes = torch.tensor([ds.label(r) for r in range(K) for _ in range(K)])
    shuffled_classes = torch.tensor([ds.label(i) for i in items])
    return (measure_clips(grid, lambda v: grid_classes), measure_clips(shuffled, lambda v: shuffled_classes))


def test_render_mixed_takes_the_object_of_one_item_and_the_path_of_another():
    ds = BouncingShapes(num_samples=8, frames=6, size=32, seed=3)
    assert np.array_equal(ds.render_mixed(2, 2), ds.render(2))
    a, b = ds.factors(0), ds.factors(1)
    assert a["colours"].tolist() != b["colours"].tolist()
    frames = ds.render_mixed(0, 1)  # (T, H, W, 3): item 0's object where item 1's object is
    for t in (0, 5):
        x, y = b["positions"][t, 0]
        assert frames[t, int(y), int(x)].tolist() == a["colours"][0].tolist()


def test_ground_truth_sweeps_agree_where_a_factor_is_fixed_and_at_chance_where_not(sweeps):
    grid, shuffled = sweeps
    result = disentanglement(grid, shuffled, K, K)
    table = result["agreement"]
    assert result["tracked"] == {"grid": 1.0, "shuffled": 1.0}
    # real paths: nearly every clip's object travels far enough to have a direction
    assert result["paths"]["grid"]["directed"] >= 0.9 and result["paths"]["shuffled"]["directed"] >= 0.9
    assert result["paths"]["shuffled"]["median_px"] > 0.05 * 32
    # one object per row: class, size and colour agree across its motions
    assert table["content-fixed"]["class"] == table["content-fixed"]["size"] == table["content-fixed"]["colour"] == 1.0
    # one path per column: the same displacement whatever the object
    assert table["motion-fixed"]["trajectory"] >= 0.95
    # what is not fixed agrees about as often as in clips that share nothing
    assert table["shuffled"]["class"] < 0.5 and table["shuffled"]["trajectory"] < 0.4
    assert table["content-fixed"]["trajectory"] < 0.4 and table["motion-fixed"]["class"] < 0.5
    assert table["motion-fixed"]["colour"] < 0.4 and table["shuffled"]["colour"] < 0.4
    assert table["content-fixed"]["pairs"] == K * K * (K - 1) / 2
    lines = format_table(result).splitlines()
    assert lines[0].split() == ["agreement", "content-fixed", "motion-fixed", "shuffled"] and len(lines) == 6


def _measures(classes=(0, 0), areas=(50.0, 50.0), colours=((200, 0, 0), (200, 0, 0)),
              moves=((10.0, 0.0), (10.0, 0.0)), side=32) -> ClipMeasures:
    return ClipMeasures(np.array(classes), np.array(areas, float), np.array(colours, float),
                        np.array(moves, float), side)


@pytest.mark.parametrize("change, measure, agrees", [
    ({}, "trajectory", True),
    ({"moves": ((10.0, 0.0), (10.0, 9.9))}, "trajectory", True),  # 44.7 degrees apart
    ({"moves": ((10.0, 0.0), (10.0, 10.1))}, "trajectory", False),  # 45.3 degrees
    ({"moves": ((10.0, 0.0), (1.5, 0.0))}, "trajectory", False),  # under 5% of 32 px: no direction
    ({"moves": ((10.0, 0.0), (math.nan, math.nan))}, "trajectory", False),  # untracked
    ({"areas": (50.0, 38.0)}, "size", True),
    ({"areas": (50.0, 37.0)}, "size", False),
    ({"areas": (50.0, math.nan)}, "size", False),
    ({"colours": ((200, 0, 0), (200, 39, 0))}, "colour", True),
    ({"colours": ((200, 0, 0), (200, 41, 0))}, "colour", False),
    ({"classes": (0, 2)}, "class", False),
])
def test_pair_rules_at_their_edges(change, measure, agrees):
    shares = agreement(_measures(**change), np.array([[0, 1]]))
    assert shares[measure] == float(agrees) and shares["pairs"] == 1


def test_paths_count_the_clips_whose_object_travels_far_enough_to_have_a_direction():
    m = _measures(classes=(0, 0, 0, 0), areas=(50.0,) * 4, colours=((0, 0, 0),) * 4,
                  moves=((10.0, 0.0), (1.5, 0.0), (0.0, -1.7), (math.nan, math.nan)))
    assert paths(m) == {"directed": 0.5, "median_px": 1.7}  # 1.5 px is under 5% of 32, the untracked clip counts
    assert math.isnan(paths(_measures(moves=((math.nan,) * 2,) * 2))["median_px"])


def test_agreement_counts_pairs_within_groups_only():
    m = _measures(classes=(0, 0, 1, 1), areas=(50,) * 4, colours=((0, 0, 0),) * 4, moves=((10.0, 0.0),) * 4)
    assert agreement(m, np.array([[0, 1], [2, 3]]))["class"] == 1.0
    assert agreement(m, np.array([[0, 2], [1, 3]]))["class"] == 0.0
    assert agreement(m, np.array([[0, 1, 2, 3]]))["class"] == pytest.approx(2 / 6)
    with pytest.raises(VideoSynthError, match="at least 2"):
        agreement(m, np.array([[0], [1]]))
    groups = grid_groups(2, 3)
    assert groups["content-fixed"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert groups["motion-fixed"].tolist() == [[0, 3], [1, 4], [2, 5]]


def test_eval_disentangle_prints_the_table_and_writes_json(tmp_path, capsys):
    from videosynth.metrics.probe_net import PRESETS, ProbeNet, save_probe

    torch.manual_seed(0)
    cfg = PRESETS["test"]
    cfg.num_classes = 3
    probe = tmp_path / "probe.safetensors"
    save_probe(ProbeNet(cfg), probe)
    out = tmp_path / "d" / "dis.json"
    args = ["eval", "disentangle", FIXTURES / "mocogan", "--rows", "3", "--probe", probe, "--device", "cpu"]
    code, printed, err = run_cli([*args, "--json", out], capsys)
    assert code == 0, err
    assert "content-fixed" in printed and "shuffled" in printed and "median path" in printed
    result = json.loads(out.read_text())
    assert set(result["agreement"]) == {"content-fixed", "motion-fixed", "shuffled"}
    assert result["agreement"]["content-fixed"]["pairs"] == 9 and result["protocol"]["rows"] == 3
    assert set(result["paths"]) == {"grid", "shuffled", "real"} and result["paths"]["real"]["directed"] >= 0.5
    assert all(0.0 <= v <= 1.0 for g in result["agreement"].values() for k, v in g.items() if k != "pairs")
    assert run_cli([*args, "--json", tmp_path / "again.json"], capsys)[0] == 0
    assert json.loads((tmp_path / "again.json").read_text())["agreement"] == result["agreement"]


@pytest.mark.parametrize("run, extra, words", [
    ("videogan", [], "needs a MoCoGAN run"),
    ("mocogan", ["--rows", "1"], "--rows 1"),
])
def test_eval_disentangle_refuses_in_one_line(run, extra, words, capsys):
    assert words in one_line_error(*run_cli(["eval", "disentangle", FIXTURES / run, *extra, "--device", "cpu"],
                                            capsys)[::2])
