"""Built-in procedural datasets: determinism, ranges, captions, factors that match the pixels."""

import numpy as np
import pytest
import torch

from videosynth.config import from_dict
from videosynth.data import DATASETS, BouncingShapes, DataConfig, MovingDigits, build_dataset
from videosynth.data.synthetic import PALETTE, bounce, direction_words
from videosynth.errors import ConfigError


@pytest.mark.parametrize("cls", [MovingDigits, BouncingShapes])
def test_items_follow_the_contract_and_are_deterministic(cls):
    ds = cls(num_samples=6, frames=5, size=32, num_objects=2, seed=3)
    item = ds[4]
    assert item["video"].shape == (3, 5, 32, 32) and item["video"].dtype == torch.float32
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    assert item["video"].min() == -1  # black background
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0
    assert 0 <= int(item["label"]) < len(ds.class_names)
    assert isinstance(item["caption"], str) and " moves " in item["caption"]
    again = cls(num_samples=6, frames=5, size=32, num_objects=2, seed=3)[4]
    assert torch.equal(item["video"], again["video"]) and item["caption"] == again["caption"]
    other_seed = cls(num_samples=6, frames=5, size=32, num_objects=2, seed=4)[4]
    assert not torch.equal(item["video"], other_seed["video"])
    val = cls(num_samples=6, frames=5, size=32, num_objects=2, seed=3, split="val")[4]
    assert not torch.equal(item["video"], val["video"])


def test_shapes_factors_match_rendered_pixels():
    ds = BouncingShapes(num_samples=8, frames=12, size=48, num_objects=1, seed=0)
    for i in range(8):
        f = ds.factors(i)
        frames = ds.render(i)
        assert f["positions"].shape == (12, 1, 2) and f["velocities"].shape == (12, 1, 2)
        assert f["classes"].shape == (1,) and f["colours"].shape == (1, 3) and f["sizes"].shape == (1,)
        assert tuple(int(c) for c in f["colours"][0]) in PALETTE.values()
        for t in range(12):
            x, y = f["positions"][t, 0]
            centre = frames[t, int(y), int(x)].astype(int)
            np.testing.assert_allclose(centre, f["colours"][0], atol=2)  # object colour at its centre
            r = f["sizes"][0] / 2 + 2
            far = frames[t].copy()
            far[max(0, int(y - r)):int(y + r) + 1, max(0, int(x - r)):int(x + r) + 1] = 0
            assert far.max() == 0  # nothing drawn outside the object's box
        assert int(ds[i]["label"]) == int(f["classes"][0])


def test_digits_are_white_and_inside_their_box():
    ds = MovingDigits(num_samples=4, frames=6, size=64, num_objects=1)
    for i in range(4):
        f, frames = ds.factors(i), ds.render(i)
        assert (frames[..., 0] == frames[..., 2]).all()  # white on black
        for t in range(6):
            ys, xs = np.nonzero(frames[t, ..., 0] > 128)
            x, y = f["positions"][t, 0]
            half = f["sizes"][0] / 2 + 1
            assert xs.size > 20
            assert abs(xs.mean() - x) < half / 2 and abs(ys.mean() - y) < half / 2
            assert np.all(np.abs(xs + 0.5 - x) <= half) and np.all(np.abs(ys + 0.5 - y) <= half)
        assert ds.caption(i) == f"the digit {f['classes'][0]} moves {direction_words(*f['velocities'][0, 0])}"


def test_motion_is_straight_between_elastic_bounces():
    pos, vel = bounce(np.array([[5.0, 5.0]]), np.array([[3.0, -1.5]]), 2.0, 20.0, 40)
    assert (pos >= 2.0).all() and (pos <= 20.0).all()
    np.testing.assert_allclose(np.abs(vel), np.broadcast_to([[3.0, 1.5]], vel.shape))  # speed kept
    steps = np.diff(pos, axis=0)  # (T-1, K, 2)
    flips = np.sign(vel[1:]) != np.sign(vel[:-1])
    straight = ~flips.any(-1)
    np.testing.assert_allclose(steps[straight], vel[:-1][straight], atol=1e-9)


def test_captions_cover_vocabulary():
    ds = BouncingShapes(num_samples=3, frames=2, size=32)
    caps = ds.captions()
    words = {w for c in caps for w in c.split()}
    assert {"red", "circle", "triangle", "left", "up", "and"} <= words
    assert ds.caption(0) in caps


def test_factory_and_config_errors():
    cfg = from_dict(DataConfig, {"name": "moving-digits", "num_samples": 4, "frames": 3, "size": 32}, "data")
    ds = build_dataset(cfg, "val")
    assert len(ds) == 4 and ds.class_names == [str(d) for d in range(10)]
    assert set(DATASETS) == {"moving-digits", "bouncing-shapes", "folder", "ucf101", "kinetics", "bair"}
    with pytest.raises(ConfigError, match="moving-digits"):
        build_dataset(DataConfig(name="mnist"), "train")
    with pytest.raises(ConfigError, match="root"):
        build_dataset(DataConfig(name="folder"), "train")
    with pytest.raises(ConfigError, match="object_size"):
        BouncingShapes(size=16, object_size=20)
    batch = next(iter(torch.utils.data.DataLoader(build_dataset(cfg, "train"), batch_size=2)))
    assert batch["video"].shape == (2, 3, 3, 32, 32) and batch["label"].shape == (2,)
    assert isinstance(batch["caption"], list)


def test_shapes_in_one_fixed_colour():
    ds = BouncingShapes(num_samples=6, frames=2, size=32, object_size=12, colour="white")
    for i in range(len(ds)):
        item = ds[i]
        video = item["video"]  # (3, T, H, W) in [-1, 1]
        assert torch.equal(video[0], video[1]) and torch.equal(video[1], video[2])  # grey levels only
        assert video.max() == 1.0  # full white inside the object
        assert item["caption"].startswith(f"a white {ds.class_names[int(item['label'])]}")
    assert set(map(tuple, ds.factors(0)["colours"].tolist())) == {(255, 255, 255)}
    assert all(c.startswith("a white ") for c in ds.captions())
    with pytest.raises(ConfigError, match="did you mean 'white'"):
        BouncingShapes(colour="whte")
    with pytest.raises(ConfigError, match="bouncing-shapes only"):
        build_dataset(DataConfig(name="moving-digits", colour="red"), "train")


def test_data_classes_draws_some_classes_and_keeps_the_labels():
    from videosynth.data import DataConfig, build_dataset

    ds = BouncingShapes(num_samples=12, frames=2, size=32, classes=("triangle",))
    assert ds.class_names == ["circle", "square", "triangle"]
    assert {int(ds[i]["label"]) for i in range(12)} == {2}
    two = BouncingShapes(num_samples=40, frames=2, size=32, classes=("circle", "square"))
    assert {int(two[i]["label"]) for i in range(40)} == {0, 1}
    assert [int(BouncingShapes(num_samples=6, frames=2, size=32)[i]["label"]) for i in range(6)] == \
        [int(BouncingShapes(num_samples=6, frames=2, size=32, classes=())[i]["label"]) for i in range(6)]
    with pytest.raises(ConfigError, match="'hexagon' is not a class"):
        BouncingShapes(classes=("hexagon",))
    with pytest.raises(ConfigError, match="data.classes applies to the built-in datasets"):
        build_dataset(DataConfig(name="folder", root="/nowhere", classes=["a"]))
