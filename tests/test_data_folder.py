"""VideoFolder on real files: labels, manifests, splits, clip sampling, scan cache, broken files, workers."""

import json
import logging
import os

import av
import pytest
import torch
from media import frame_numbers, numbered_frames, write_broken, write_frame_folder, write_numbered

from videosynth.data import DataConfig, VideoFolder, build_dataset, to_uint8
from videosynth.data.manifest import read_manifest
from videosynth.data.scan import check_video
from videosynth.data.video_folder import _split_of_path
from videosynth.errors import DataError

NUM_FRAMES = 20


@pytest.fixture
def root(tmp_path):
    """root/{cat,dog}/... : 3 mp4s per class, one frame folder under dog, one webm at the top."""
    root = tmp_path / "videos"
    for cls in ("cat", "dog"):
        for i in range(3):
            write_numbered(root / cls / f"{cls}{i}.mp4", NUM_FRAMES)
    write_frame_folder(root / "dog" / "frames0", NUM_FRAMES)
    write_numbered(root / "loose.webm", NUM_FRAMES)
    return root


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _frames_of(item):
    return frame_numbers(to_uint8(item["video"]))


def test_labels_from_subfolders_and_items(root):
    before = _listing(root)
    ds = VideoFolder(root, frames=4, size=32, stride=2, split="all")
    assert ds.class_names == ["cat", "dog"] and len(ds) == 8 and not ds.broken
    labels = {e.path: lab for e, lab in zip(ds.entries, ds.labels)}
    assert labels["cat/cat0.mp4"] == 0 and labels["dog/frames0"] == 1 and labels["loose.webm"] == -1
    item = ds[0]
    assert item["video"].shape == (3, 4, 32, 32) and item["label"].dtype == torch.int64 and item["caption"] == ""
    frames = _frames_of(item)
    assert frames == list(range(frames[0], frames[0] + 8, 2))  # consecutive clip at stride 2
    assert _listing(root) == before  # nothing written into the dataset folder


def test_hash_split_is_deterministic_and_disjoint(root):
    kwargs = dict(frames=4, size=32, val_fraction=0.5)
    train, val, everything = (VideoFolder(root, split=s, **kwargs) for s in ("train", "val", "all"))
    names = lambda ds: {e.path for e in ds.entries}  # noqa: E731
    assert names(train) | names(val) == names(everything) and not names(train) & names(val)
    assert names(val) == {p for p in names(everything) if _split_of_path(p, 0.5) == "val"}
    assert names(VideoFolder(root, split="val", seed=7, **kwargs)) == names(val)  # the seed does not move videos


def test_split_folders(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            write_numbered(tmp_path / split / ("a" if i % 2 else "b") / f"{i}.mp4", NUM_FRAMES)
    train = VideoFolder(tmp_path, frames=4, size=16, split="train")
    val = VideoFolder(tmp_path, frames=4, size=16, split="val")
    assert (len(train), len(val)) == (3, 2) and train.class_names == val.class_names == ["a", "b"]


def test_random_clips_reproducible_per_epoch_and_val_centred(root):
    ds = VideoFolder(root, frames=4, size=32, split="all")
    first = [_frames_of(ds[i]) for i in range(len(ds))]
    assert first == [_frames_of(ds[i]) for i in range(len(ds))]
    ds.set_epoch(1)
    assert first != [_frames_of(ds[i]) for i in range(len(ds))]
    val = VideoFolder(root, frames=4, size=32, split="all", train_clip="center")
    centre = (NUM_FRAMES - 4) // 2
    assert all(_frames_of(val[i]) == list(range(centre, centre + 4)) for i in range(len(val)))


def test_clips_per_video_draws_several_random_clips_of_each_training_video(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            write_numbered(tmp_path / split / f"{i}.mp4", NUM_FRAMES)
    cfg = DataConfig(name="folder", root=str(tmp_path), frames=4, size=32, clips_per_video=5)
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert (len(train), len(val)) == (15, 10)
    starts = [_frames_of(train[i])[0] for i in range(len(train))]
    # item i is video i % 3; a video's items are clips of it, drawn apart
    assert [starts[i] for i in (0, 3, 6, 9, 12)] != [starts[0]] * 5
    # held-out videos: 5 clips each from the first frame to the last, the same every epoch
    assert [_frames_of(val[i])[0] for i in range(0, 10, 2)] == [0, 4, 8, 12, 16]
    val.set_epoch(3)
    assert [_frames_of(val[i])[0] for i in range(1, 10, 2)] == [0, 4, 8, 12, 16]
    assert repr(train).count("videos=3")
    with pytest.raises(IndexError, match="15 items"):
        train[15]
    with pytest.raises(Exception, match="data.clips_per_video applies to datasets on disk"):
        build_dataset(DataConfig(name="bouncing-shapes", clips_per_video=2))


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_manifest_captions_labels_and_split(root, kind):
    rows = [("cat/cat0.mp4", "a cat, sitting", "cat", "train"), ("dog/dog1.mp4", "a dog runs", "dog", "val"),
            ("dog/frames0", "frames of a dog", "dog", "train"), ("missing.mp4", "gone", "cat", "train")]
    path = root.parent / f"manifest.{kind}"
    if kind == "csv":
        path.write_text("path,caption,label,split\n" + "".join(f'{p},"{c}",{lab},{s}\n' for p, c, lab, s in rows))
    else:
        lines = [json.dumps(dict(path=p, caption=c, label=lab, split=s)) for p, c, lab, s in rows]
        path.write_text("\n".join(lines) + "\n")
    ds = VideoFolder(root, frames=4, size=16, split="train", manifest=path, max_broken_fraction=0.5)
    assert [e.path for e in ds.entries] == ["cat/cat0.mp4", "dog/frames0"]
    assert ds.class_names == ["cat", "dog"] and ds.labels == [0, 1]
    assert ds.captions() == ["a cat, sitting", "frames of a dog"]
    assert ds[0]["caption"] == "a cat, sitting"
    assert [p for p, _ in ds.broken] == [str(root / "missing.mp4")]
    val = VideoFolder(root, frames=4, size=16, split="val", manifest=path, max_broken_fraction=0.5)
    assert [e.path for e in val.entries] == ["dog/dog1.mp4"]


def test_manifest_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("file,caption\nx.mp4,hi\n")
    with pytest.raises(DataError, match="'path' column"):
        read_manifest(bad)
    bad.write_text("path,caption\nx.mp4,hi,extra\n")
    with pytest.raises(DataError, match="m.csv:2"):
        read_manifest(bad)
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"path": "a.mp4"}\n{oops\n')
    with pytest.raises(DataError, match="m.jsonl:2"):
        read_manifest(bad)


def test_scan_cache_reused_and_invalidated(root, tmp_path):
    cache = tmp_path / "cache"
    kwargs = dict(frames=4, size=16, split="all", cache_dir=cache)
    assert not VideoFolder(root, **kwargs).from_cache
    assert VideoFolder(root, **kwargs).from_cache
    assert len(list(cache.glob("*.json"))) == 1
    assert not VideoFolder(root, frames=5, size=16, split="all", cache_dir=cache).from_cache  # clip params
    target = root / "cat" / "cat0.mp4"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # mtime only
    assert not VideoFolder(root, **kwargs).from_cache
    assert VideoFolder(root, **kwargs).from_cache
    write_numbered(target, NUM_FRAMES - 2)  # new content and size
    ds = VideoFolder(root, **kwargs)
    assert not ds.from_cache and next(e for e in ds.entries if e.path == "cat/cat0.mp4").num_frames == NUM_FRAMES - 2
    write_numbered(root / "cat" / "new.mp4", NUM_FRAMES)  # a new file
    assert len(VideoFolder(root, **kwargs)) == 9


def test_default_cache_location_is_user_cache(root, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    VideoFolder(root, frames=4, size=16, split="all")
    assert list((tmp_path / "xdg" / "videosynth" / "index").glob("*.json"))


def test_broken_files_reported_not_raised(root, caplog):
    reasons = write_broken(root / "junk")
    with caplog.at_level(logging.WARNING, logger="videosynth.data"):
        ds = VideoFolder(root, frames=4, size=16, split="all", max_broken_fraction=0.5)
    broken = {os.path.basename(p): r for p, r in ds.broken}
    assert set(broken) == set(reasons)
    for name, keyword in reasons.items():
        assert keyword in broken[name], (name, broken[name])
        assert name in caplog.text
    assert len(ds) == 8
    with pytest.raises(DataError, match="max_broken_fraction"):
        VideoFolder(root, frames=4, size=16, split="all", max_broken_fraction=0.2)


def test_too_short_for_clip_is_broken(root):
    with pytest.raises(DataError, match="a clip needs 22"):
        VideoFolder(root, frames=8, size=16, stride=3, split="all", max_broken_fraction=1.0)
    ds = VideoFolder(root, frames=10, size=32, stride=2, split="all")  # needs 19 of 20 frames: fine
    assert len(ds) == 8
    first = _frames_of(ds[0])[0]
    assert _frames_of(ds[0]) == list(range(first, first + 19, 2))


def test_read_failure_draws_another_clip(root, caplog):
    ds = VideoFolder(root, frames=4, size=16, split="all")
    bad = next(i for i, e in enumerate(ds.entries) if e.path.endswith(".mp4"))
    ds.path(bad).write_bytes(b"garbage after the scan")
    with caplog.at_level(logging.WARNING, logger="videosynth.data"):
        item = ds[bad]
    assert item["video"].shape == (3, 4, 16, 16)
    assert "drawing another" in caplog.text and ds.entries[bad].path in caplog.text


def test_all_reads_failing_raises_data_error(root):
    ds = VideoFolder(root, frames=4, size=16, split="all", verify=False)
    for i in range(len(ds)):
        path = ds.path(i)
        if path.is_file():
            path.write_bytes(b"x")
        else:
            for f in path.iterdir():
                f.write_bytes(b"x")
    with pytest.raises(DataError, match="failed to decode"):
        ds[0]


def test_dataloader_with_two_workers_over_broken_files(root):
    write_broken(root / "junk")
    ds = build_dataset(DataConfig(name="folder", root=str(root), frames=4, size=16, max_broken_fraction=0.5), "train")
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    seen = sum(batch["video"].shape[0] for batch in loader)
    assert seen == len(ds)


def test_missing_root_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        VideoFolder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no videos found"):
        VideoFolder(tmp_path / "empty")


def test_header_longer_than_stream_is_truncation(tmp_path):
    """A cut mkv (frames counted from packets) is too short for the clip."""
    path = write_numbered(tmp_path / "ok.mkv", 30)
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    assert isinstance(check_video(cut, min_frames=25), str)
    assert not isinstance(check_video(path, min_frames=25), str)


def test_symlink_loop_is_walked_once(root):
    (root / "cat" / "loop").symlink_to(root, target_is_directory=True)
    ds = VideoFolder(root, frames=4, size=16, split="all")
    assert len(ds) == 8


def test_truncated_faststart_mp4_found_at_scan(tmp_path):
    """moov-first mp4 (a cut download): the header is intact, the frames are not."""
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=10, options={"g": "10"})
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for frame in numbered_frames(60):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    assert not isinstance(check_video(path, 16), str)
    assert isinstance(check_video(cut, 16), str)
