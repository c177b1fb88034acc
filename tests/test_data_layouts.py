"""Standard layouts on real files with their real names: UCF-101 split lists, Kinetics CSVs, BAIR frame folders."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from media import frame_numbers, numbered_frames, write_numbered
from PIL import Image

from videosynth.config import from_dict
from videosynth.data import DataConfig, VideoFolder, build_dataset, to_uint8
from videosynth.data.layouts import kinetics_layout, ucf101_layout
from videosynth.errors import ConfigError, DataError

FRAMES = 12  # frames per UCF / BAIR test video
FPS = 10.0
# classInd.txt order on purpose not alphabetical: labels must follow it
UCF_CLASSES = ("YoYo", "ApplyEyeMakeup", "Basketball")


def _frames_of(item) -> list[int]:
    return frame_numbers(to_uint8(item["video"]))


def _names(ds) -> list[str]:
    return [e.path for e in ds.entries]


def _ucf(cls: str, group: int) -> str:
    return f"{cls}/v_{cls}_g{group:02d}_c01.avi"


# ----------------------------------------------------------------------------- UCF-101


def _write_ucf(base: Path, lists: Path | None = None, skip: tuple[str, ...] = ()) -> Path:
    """``base/UCF-101/<Class>/v_<Class>_gXX_c01.avi`` (groups 1-3, mpeg4 avi) and the split lists.

    Split 1: train = groups 2, 3 (trainlist01 with CRLF endings and the class index), test = group 1.
    Split 2: train = groups 1, 3, test = group 2.  Lists go to ``lists`` (default: the sibling
    ``ucfTrainTestlist/`` of a real download).  Videos in ``skip`` are listed but not written.
    """
    root = base / "UCF-101"
    for cls in UCF_CLASSES:
        for group in (1, 2, 3):
            if _ucf(cls, group) not in skip:
                write_numbered(root / _ucf(cls, group), FRAMES, fps=FPS, codec="mpeg4")
    lists = base / "ucfTrainTestlist" if lists is None else lists
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, start=1)))
    for n, train_groups, test_group in ((1, (2, 3), 1), (2, (1, 3), 2)):
        train = "".join(f"{_ucf(c, g)} {i}\r\n" for i, c in enumerate(UCF_CLASSES, start=1) for g in train_groups)
        (lists / f"trainlist{n:02d}.txt").write_bytes((train + "\r\n\r\n").encode())  # CRLF, trailing blank lines
        (lists / f"testlist{n:02d}.txt").write_text("".join(f"{_ucf(c, test_group)}\n" for c in UCF_CLASSES))
    return root


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    return _write_ucf(tmp_path_factory.mktemp("ucf"))


def _ucf_cfg(root, **kw) -> DataConfig:
    return DataConfig(name="ucf101", root=str(root), frames=4, size=32, **kw)


def test_ucf101_splits_are_the_lists_and_labels_follow_class_ind(ucf):
    train = build_dataset(_ucf_cfg(ucf), "train")
    assert train.class_names == list(UCF_CLASSES) and not train.broken
    assert sorted(_names(train)) == sorted(_ucf(c, g) for c in UCF_CLASSES for g in (2, 3))
    assert {p: lab for p, lab in zip(_names(train), train.labels)} == {
        _ucf(c, g): i for i, c in enumerate(UCF_CLASSES) for g in (2, 3)}
    item = train[_names(train).index(_ucf("YoYo", 2))]
    assert item["label"].item() == 0 and item["video"].shape == (3, 4, 32, 32)
    val = build_dataset(_ucf_cfg(ucf), "val")
    assert val.from_cache  # train and val share one scan of every listed video
    assert sorted(_names(val)) == sorted(_ucf(c, 1) for c in UCF_CLASSES) and val.class_names == list(UCF_CLASSES)
    assert val[_names(val).index(_ucf("Basketball", 1))]["label"].item() == 2
    assert len(build_dataset(_ucf_cfg(ucf), "all")) == 9


def test_ucf101_split_file_2_reads_the_other_lists(ucf):
    train = build_dataset(_ucf_cfg(ucf, split_file=2), "train")
    val = build_dataset(_ucf_cfg(ucf, split_file=2), "val")
    assert sorted(_names(train)) == sorted(_ucf(c, g) for c in UCF_CLASSES for g in (1, 3))
    assert sorted(_names(val)) == sorted(_ucf(c, 2) for c in UCF_CLASSES)


@pytest.mark.parametrize("where", ["root", "root/ucfTrainTestlist", "elsewhere"])
def test_ucf101_split_files_found_where_downloads_put_them(tmp_path, where):
    lists = {"root": tmp_path / "UCF-101", "root/ucfTrainTestlist": tmp_path / "UCF-101" / "ucfTrainTestlist",
             "elsewhere": tmp_path / "splits"}[where]
    root = _write_ucf(tmp_path, lists=lists)
    split_dir = str(lists) if where == "elsewhere" else None
    if split_dir:
        with pytest.raises(DataError, match="set data.split_dir"):
            ucf101_layout(root)
    layout = ucf101_layout(root, 1, split_dir)
    assert len(layout.listing) == 9 and layout.class_names == list(UCF_CLASSES)
    assert {x.split for x in layout.listing} == {"train", "val"}


def test_ucf101_missing_video_is_broken_not_fatal(tmp_path):
    gone = _ucf("ApplyEyeMakeup", 3)
    root = _write_ucf(tmp_path, skip=(gone,))
    train = build_dataset(_ucf_cfg(root), "train")
    assert gone not in _names(train) and len(train) == 5
    assert train.broken == [(str(root / gone), "file not found")]
    with pytest.raises(DataError, match="max_broken_fraction"):
        build_dataset(_ucf_cfg(root, max_broken_fraction=0.1), "train")


def test_ucf101_list_errors_name_file_and_line(tmp_path):
    root = _write_ucf(tmp_path)
    lists = tmp_path / "ucfTrainTestlist"
    with open(lists / "testlist01.txt", "a") as f:
        f.write("JumpRope/v_JumpRope_g01_c01.avi\n")
    with pytest.raises(DataError, match=r"testlist01.txt:4: class 'JumpRope' .* is not in .*classInd.txt"):
        ucf101_layout(root)
    (lists / "testlist01.txt").write_text(f"{_ucf('YoYo', 1)} 2\n")  # YoYo is class 1
    with pytest.raises(DataError, match=r"testlist01.txt:1: expected '.* 1' \(YoYo is class 1"):
        ucf101_layout(root)
    (lists / "classInd.txt").write_text("1 YoYo\n3 Basketball\n")
    with pytest.raises(DataError, match="classInd.txt: class indices must run 1..2"):
        ucf101_layout(root)


def test_ucf101_missing_split_files_say_where_and_what_to_set(tmp_path):
    root = _write_ucf(tmp_path)
    with pytest.raises(DataError, match="trainlist03.txt not found: data.split_file=3"):
        build_dataset(_ucf_cfg(root, split_file=3), "train")
    bare = tmp_path / "elsewhere" / "UCF-101"  # no split files in it, under it or beside it
    (bare / "YoYo").mkdir(parents=True)
    with pytest.raises(DataError) as exc:
        build_dataset(_ucf_cfg(bare), "train")
    message = str(exc.value)
    assert "\n" not in message and "classInd.txt" in message and "ucfTrainTestlist" in message
    assert "set data.split_dir" in message
    with pytest.raises(DataError, match="data.split_dir must name"):
        build_dataset(_ucf_cfg(root, split_dir=str(tmp_path / "nowhere")), "train")


def test_layout_keys_are_checked_and_refused_elsewhere(ucf, tmp_path):
    with pytest.raises(ConfigError, match=r"data.split_file=4: must be in \[1, 3\]"):
        from_dict(DataConfig, {"name": "ucf101", "split_file": 4}, "data")
    with pytest.raises(ConfigError, match="data.split_file applies to data.name ucf101 only"):
        build_dataset(DataConfig(name="folder", root=str(ucf), split_file=2))
    with pytest.raises(ConfigError, match="data.annotations applies to data.name kinetics only"):
        build_dataset(_ucf_cfg(ucf, annotations="train.csv"))
    with pytest.raises(ConfigError, match="data.manifest applies to data.name folder only"):
        build_dataset(_ucf_cfg(ucf, manifest="m.csv"))
    with pytest.raises(ConfigError, match="data.root must name the UCF101 folder"):
        build_dataset(DataConfig(name="ucf101"))
    with pytest.raises(ConfigError, match="data.annotations must name the Kinetics CSV"):
        build_dataset(DataConfig(name="kinetics", root=str(tmp_path)))
    with pytest.raises(ConfigError, match="ucf101, kinetics, bair"):
        build_dataset(DataConfig(name="hmdb51"))


# ----------------------------------------------------------------------------- Kinetics

KINETICS_HEADER = "label,youtube_id,time_start,time_end,split"
FULL_ID, TRIMMED_ID, SHORT_ID, GONE_ID = "--07WQ2iBlw", "-0Ml2QpJ1lo", "0aHNaCO1ntU", "zzzzzzzzzzz"
FULL_FRAMES = 60  # the full video: 6 s at 10 fps
WINDOW = (2, 4)  # its annotated segment in seconds: frames 20..39


def _write_kinetics(base: Path) -> Path:
    """A full-length video (``raw/<id>.mp4``), trimmed segments named with and without times, the CSVs."""
    root = base / "kinetics"
    write_numbered(root / "raw" / f"{FULL_ID}.mp4", FULL_FRAMES, fps=FPS)
    write_numbered(root / "train" / "playing guitar" / f"{TRIMMED_ID}_000010_000012.mp4", 20, fps=FPS)
    write_numbered(root / "val" / f"{SHORT_ID}.mp4", 20, fps=FPS)  # 2 s: the segment [30, 32] s itself
    rows = [f"abseiling,{FULL_ID},{WINDOW[0]},{WINDOW[1]},train",
            f'"playing guitar",{TRIMMED_ID},10,12,train',
            f'"passing American football (in game)",{SHORT_ID},30.0,32.0,validate',
            f"\"massaging person's head\",{GONE_ID},0,10,train"]
    (base / "annotations.csv").write_text("\r\n".join([KINETICS_HEADER, *rows]) + "\r\n\r\n")
    return root


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    base = tmp_path_factory.mktemp("kinetics")
    return _write_kinetics(base), base / "annotations.csv"


def _kinetics_cfg(root, annotations, **kw) -> DataConfig:
    kw = {"frames": 4, "size": 32, "max_broken_fraction": 0.5, **kw}
    return DataConfig(name="kinetics", root=str(root), annotations=str(annotations), **kw)


def test_kinetics_labels_files_and_missing_video(kinetics):
    root, csv_path = kinetics
    train = build_dataset(_kinetics_cfg(root, csv_path), "train")
    assert train.class_names == ["abseiling", "massaging person's head", "passing American football (in game)",
                                 "playing guitar"]
    assert dict(zip(_names(train), train.labels)) == {
        f"raw/{FULL_ID}.mp4": 0, f"train/playing guitar/{TRIMMED_ID}_000010_000012.mp4": 3}
    (path, reason), = train.broken
    assert path == str(root / "train" / "massaging person's head" / f"{GONE_ID}_000000_000010.mp4")
    assert f"no video named {GONE_ID}_000000_000010.* or {GONE_ID}.*" in reason
    val = build_dataset(_kinetics_cfg(root, csv_path), "val")
    assert _names(val) == [f"val/{SHORT_ID}.mp4"] and val.labels == [2]
    with pytest.raises(DataError, match="max_broken_fraction"):
        build_dataset(_kinetics_cfg(root, csv_path, max_broken_fraction=0.2), "train")


def test_kinetics_clips_of_a_full_video_lie_inside_its_window(kinetics):
    root, csv_path = kinetics
    train = build_dataset(_kinetics_cfg(root, csv_path), "train")
    full = _names(train).index(f"raw/{FULL_ID}.mp4")
    first, end = int(WINDOW[0] * FPS), int(WINDOW[1] * FPS)  # frames 20..39
    starts = set()
    for epoch in range(12):
        train.set_epoch(epoch)
        frames = _frames_of(train[full])
        assert frames == list(range(frames[0], frames[0] + 4)) and first <= frames[0] and frames[-1] < end, frames
        starts.add(frames[0])
    assert len(starts) > 3  # random starts, all inside the window
    centred = VideoFolder(root, frames=8, stride=2, size=32, split="all", train_clip="center",
                          layout=kinetics_layout(root, csv_path), max_broken_fraction=0.5)
    i = _names(centred).index(f"raw/{FULL_ID}.mp4")
    room = end - first - centred.span + 1
    assert _frames_of(centred[i]) == list(range(first + (room - 1) // 2, first + (room - 1) // 2 + 15, 2))


def test_kinetics_trimmed_files_are_used_whole(kinetics):
    root, csv_path = kinetics
    ds = build_dataset(_kinetics_cfg(root, csv_path), "all")
    for name in (f"train/playing guitar/{TRIMMED_ID}_000010_000012.mp4", f"val/{SHORT_ID}.mp4"):
        i = _names(ds).index(name)
        assert ds.frame_ranges[i] == (0, 20)  # whole file, though its window is at 10-12 s / 30-32 s
        seen = set()
        for epoch in range(8):
            ds.set_epoch(epoch)
            seen.update(_frames_of(ds[i]))
        assert min(seen) < 10  # frames from the start of the file, not the annotated seconds


def test_kinetics_window_too_short_for_a_clip_is_broken(kinetics, tmp_path):
    root, _ = kinetics
    csv_path = tmp_path / "short.csv"
    csv_path.write_text(f"{KINETICS_HEADER},is_cc\nabseiling,{FULL_ID},1,1.5,train,0\n"
                        f"'playing guitar',{TRIMMED_ID},10,12,train,1\n".replace("'", '"'))
    ds = build_dataset(_kinetics_cfg(root, csv_path, frames=8), "train")
    assert _names(ds) == [f"train/playing guitar/{TRIMMED_ID}_000010_000012.mp4"]
    (path, reason), = ds.broken
    assert path.endswith(f"{FULL_ID}.mp4") and "5 frames lie in its window 1-1.5 s" in reason
    assert "a clip needs 8" in reason


def test_kinetics_annotations_folder_one_file_per_split(kinetics, tmp_path):
    root, _ = kinetics
    folder = tmp_path / "kinetics400"
    folder.mkdir()
    (folder / "train.csv").write_text(f"{KINETICS_HEADER}\nabseiling,{FULL_ID},2,4,train\n")
    (folder / "validate.csv").write_text(f'{KINETICS_HEADER}\n"playing guitar",{TRIMMED_ID},10,12,val\n')
    (folder / "test.csv").write_text(f"youtube_id,time_start,time_end,split\n{SHORT_ID},30,32,test\n")
    train = build_dataset(_kinetics_cfg(root, folder), "train")
    val = build_dataset(_kinetics_cfg(root, folder), "val")
    assert _names(train) == [f"raw/{FULL_ID}.mp4"] and len(val) == 1 and not train.broken
    assert train.class_names == val.class_names == ["abseiling", "playing guitar"] and val.labels == [1]


def test_kinetics_csv_errors_name_file_and_line(kinetics, tmp_path):
    root, _ = kinetics
    bad = tmp_path / "bad.csv"
    bad.write_text("path,caption,label\nx.mp4,hi,cat\n")
    with pytest.raises(DataError, match=r"bad.csv: a Kinetics CSV has the columns .*unknown \['path', 'caption'\]"):
        kinetics_layout(root, bad)
    bad.write_text(f"{KINETICS_HEADER}\nabseiling,{FULL_ID},2,4,train\nabseiling,{FULL_ID},four,6,train\n")
    with pytest.raises(DataError, match="bad.csv:3: time_start and time_end must be seconds"):
        kinetics_layout(root, bad)
    bad.write_text(f"{KINETICS_HEADER}\nabseiling,{FULL_ID},6,4,train\n")
    with pytest.raises(DataError, match="bad.csv:2: need a youtube_id and 0 <= time_start < time_end"):
        kinetics_layout(root, bad)
    with pytest.raises(DataError, match="Kinetics annotations not found"):
        kinetics_layout(root, tmp_path / "nope.csv")


def test_kinetics_without_split_column_uses_the_hash_split(kinetics, tmp_path):
    root, _ = kinetics
    csv_path = tmp_path / "nosplit.csv"
    csv_path.write_text(f"label,youtube_id,time_start,time_end\nabseiling,{FULL_ID},2,4\n"
                        f'"playing guitar",{TRIMMED_ID},10,12\n')
    train, val = (build_dataset(_kinetics_cfg(root, csv_path, val_fraction=0.5), s) for s in ("train", "val"))
    assert sorted(_names(train) + _names(val)) == sorted(
        [f"raw/{FULL_ID}.mp4", f"train/playing guitar/{TRIMMED_ID}_000010_000012.mp4"])


# ----------------------------------------------------------------------------- BAIR


def _write_bair(root: Path, name: str = "{}.png") -> Path:
    """``root/{train,test}/traj_<N>_to_<M>/<i>/`` of ``FRAMES`` PNGs whose blocks spell their index."""
    frames = numbered_frames(FRAMES)
    for split, traj, count in (("train", "traj_0_to_255", 2), ("test", "traj_256_to_511", 1)):
        for i in range(count):
            folder = root / split / traj / str(i)
            folder.mkdir(parents=True)
            for k, frame in enumerate(frames):
                Image.fromarray(frame).save(folder / name.format(k))
    return root


@pytest.mark.parametrize("name", ["{}.png", "aux1_image_{}.png"])
def test_bair_trajectories_in_numeric_frame_order(tmp_path, name):
    root = _write_bair(tmp_path / "bair", name)
    cfg = DataConfig(name="bair", root=str(root), frames=FRAMES, size=32)
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert _names(train) == ["train/traj_0_to_255/0", "train/traj_0_to_255/1"]
    assert _names(val) == ["test/traj_256_to_511/0"]
    assert train.class_names == [] and train.labels == [-1, -1] and train[0]["label"].item() == -1
    assert _frames_of(train[1]) == list(range(FRAMES))  # 2 before 10: not 0, 1, 10, 11, 2, ...


def test_bair_needs_its_split_folders(tmp_path):
    _write_bair(tmp_path / "bair")
    with pytest.raises(DataError, match="a BAIR root holds train/ and test/"):
        build_dataset(DataConfig(name="bair", root=str(tmp_path / "bair" / "train"), frames=4, size=32))


# ----------------------------------------------------------------------------- CLI


def test_preview_a_layout(ucf, tmp_path, capsys):
    from videosynth.commands import data as data_cmd
    from videosynth.io import probe

    parser = argparse.ArgumentParser()
    data_cmd.register(parser.add_subparsers())
    out = tmp_path / "ucf.gif"
    args = parser.parse_args(["data", "preview", "ucf101", "--root", str(ucf), "--set", "split_file=2",
                              "--out", str(out), "--num", "2", "--frames", "3", "--size", "32"])
    assert args.func(args) == 0
    assert probe(out).num_frames == 3
    printed = capsys.readouterr().out
    assert "0: YoYo" in printed and "1: YoYo" in printed  # trainlist02's first videos, classInd's names
    with pytest.raises(DataError, match="needs --root"):
        args = parser.parse_args(["data", "preview", "bair", "--out", str(out)])
        args.func(args)


def test_train_on_ucf101_through_the_cli(ucf, tmp_path):
    cfg = Path(__file__).parents[1] / "configs" / "videogan" / "demo-32x32x16.yaml"
    run = tmp_path / "run"
    sets = ["data.name=ucf101", f"data.root={ucf}", "data.split_file=1", "data.size=16", "data.frames=4",
            "model.preset=tiny", "condition.kind=class", "train.batch_size=2", "train.sample_every=0",
            "train.device=cpu"]
    res = subprocess.run([sys.executable, "-m", "videosynth.cli", "train", "--config", str(cfg), "--steps", "2",
                          "--run-dir", str(run), "--no-progress", *[a for s in sets for a in ("--set", s)]],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((run / "classes.json").read_text()) == list(UCF_CLASSES)
    assert (run / "checkpoints" / "step-000002" / "model.safetensors").is_file()


def test_encode_on_another_dataset_drops_the_layout_keys(ucf, tmp_path):
    from videosynth.commands.encode import resolve_data

    base = DataConfig(name="ucf101", root=str(ucf), split_file=2, size=32)
    cfg = resolve_data("moving-digits", base)
    assert (cfg.name, cfg.split_file, cfg.root, cfg.size) == ("moving-digits", None, None, 32)
    assert len(build_dataset(cfg, "val")) > 0  # not refused for a split_file it does not read
    assert resolve_data(str(tmp_path), base).split_file is None
    assert resolve_data("ucf101", base, ["root=" + str(ucf)]).split_file == 2  # same dataset: kept
