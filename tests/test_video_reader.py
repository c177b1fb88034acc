"""VideoReader: clips and sound read through kept-open containers equal fresh reads, never stale,
and safe across DataLoader worker forks."""

from __future__ import annotations

import copy
import os

import av
import numpy as np
import pytest
import torch
from media import frame_numbers, numbered_frames, write_frame_folder, write_numbered

from videosynth import io
from videosynth.data import VideoFolder, to_uint8
from videosynth.errors import DataError

NUM_FRAMES = 40
RATE = 16000


def tone(seconds: float, rate: int = 44100) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 97 * t)).astype(np.float32)


@pytest.fixture
def videos(tmp_path):
    """Numbered 64x48 videos of several containers/codecs (short GOPs: seeks land on many keyframes)."""
    sound = {"audio": tone(NUM_FRAMES / 10), "sample_rate": 44100}
    paths = [
        write_numbered(tmp_path / "a.mp4", NUM_FRAMES, 48, 64, options={"g": "8"}, **sound),
        write_numbered(tmp_path / "b.mkv", NUM_FRAMES, 48, 64, options={"g": "7"}, **sound),
        write_numbered(tmp_path / "c.webm", NUM_FRAMES, 48, 64, **sound),
        write_numbered(tmp_path / "d.avi", NUM_FRAMES, 48, 64),
        write_numbered(tmp_path / "e.gif", NUM_FRAMES, 48, 64),
        write_numbered(tmp_path / "f.mkv", NUM_FRAMES, 48, 64, codec="ffv1"),
        write_frame_folder(tmp_path / "g", NUM_FRAMES, 48, 64),
    ]
    return paths


def decode_all(path) -> np.ndarray:
    """Every frame by plain PyAV, converted the way read_clip did before VideoReader: uint8 [T, H, W, 3]."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def random_clips(rng, paths, n):
    for _ in range(n):
        path = paths[int(rng.integers(len(paths)))]
        frames, stride = int(rng.integers(1, 6)), int(rng.integers(1, 3))
        start = int(rng.integers(0, NUM_FRAMES - (frames - 1) * stride))
        yield path, start, frames, stride


def test_kept_containers_give_the_frames_of_fresh_reads(videos):
    reader = io.VideoReader(max_open=3)  # fewer than the files: evictions and reopens happen too
    reference = {p: decode_all(p) for p in videos if p.is_file()}
    rng = np.random.default_rng(0)
    for path, start, frames, stride in random_clips(rng, videos, 150):
        clip = reader.read_clip(path, start, frames, stride)
        assert np.array_equal(clip, io.read_clip(path, start, frames, stride)), (path.name, start, frames, stride)
        if path in reference:
            assert np.array_equal(clip, reference[path][start:start + (frames - 1) * stride + 1:stride])
        assert frame_numbers(clip) == list(range(start, start + frames * stride, stride))
        assert len(reader._held) <= 3


def test_scaled_reads_match_and_keep_the_frame_numbers(videos):
    reader = io.VideoReader()
    for path in videos:
        clip = reader.read_clip(path, 9, 4, 2, size=(32, 40))
        assert clip.shape == (4, 32, 40, 3)
        assert np.array_equal(clip, io.read_clip(path, 9, 4, 2, size=(32, 40)))
        assert frame_numbers(clip) == [9, 11, 13, 15]


def test_kept_containers_give_the_sound_of_fresh_reads(videos):
    reader = io.VideoReader()
    rng = np.random.default_rng(1)
    with_sound = [p for p in videos if p.suffix in (".mp4", ".mkv", ".webm") and io.probe_audio(p)]
    assert len(with_sound) == 3
    for _ in range(60):
        path = with_sound[int(rng.integers(len(with_sound)))]
        if rng.random() < 0.5:  # frames between the sound reads: the demuxer's index grows in between
            reader.read_clip(path, int(rng.integers(0, NUM_FRAMES - 4)), 4)
        start = float(rng.choice([0.0, 0.05, float(rng.uniform(0, 3.8))]))
        duration = None if rng.random() < 0.2 else 0.64
        sound = reader.read_audio(path, RATE, start, duration)
        assert np.array_equal(sound, io.read_audio(path, RATE, start, duration)), (path.name, start, duration)
    # the window past the end is padded with silence, as by read_audio
    tail = reader.read_audio(with_sound[0], RATE, 3.9, 0.64)
    assert len(tail) == round(0.64 * RATE) and not tail[-RATE // 4:].any()


def test_rewritten_file_is_not_served_from_the_cache(tmp_path):
    path = write_numbered(tmp_path / "v.mp4", NUM_FRAMES, options={"g": "8"})
    reader = io.VideoReader()
    assert frame_numbers(reader.read_clip(path, 10, 3)) == [10, 11, 12]
    # replaced by a new file (a new inode) whose frame k shows number 39 - k
    io.write_video(path, numbered_frames(NUM_FRAMES)[::-1].copy(), fps=10, options={"g": "8"})
    assert frame_numbers(reader.read_clip(path, 10, 3)) == [29, 28, 27]
    # overwritten in place with garbage (same inode)
    stat = path.stat()
    path.write_bytes(os.urandom(stat.st_size // 2))
    with pytest.raises(DataError, match=f"{path}: not a readable video") as err:
        reader.read_clip(path, 10, 3)
    assert "\n" not in str(err.value)
    assert str(path) not in reader._held  # a failed read keeps nothing open


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    reader = io.VideoReader()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(DataError, match=f"^{bad}: not a readable video"):
        reader.read_clip(bad, 0, 2)
    with pytest.raises(DataError, match="file not found"):
        reader.read_clip(tmp_path / "gone.mp4", 0, 2)
    short = write_numbered(tmp_path / "short.mp4", 5)
    with pytest.raises(DataError, match=f"^{short}: clip needs frame 5"):
        reader.read_clip(short, 4, 4)
    assert frame_numbers(reader.read_clip(short, 1, 3)) == [1, 2, 3]  # the failed read left nothing broken
    silent = write_numbered(tmp_path / "silent.mp4", 5)
    with pytest.raises(DataError, match="contains no audio stream"):
        reader.read_audio(silent, RATE, 0.2, 0.1)


def test_copies_start_empty_and_fork_closes_the_parents_containers(videos):
    reader = io.VideoReader()
    reader.read_clip(videos[0], 5, 2)
    twin = copy.deepcopy(reader)  # what pickling for a spawned worker does
    assert not twin._held and twin.max_open == reader.max_open
    assert frame_numbers(twin.read_clip(videos[0], 5, 2)) == [5, 6]
    assert len(reader._held) == 1
    pid = os.fork()
    if pid == 0:  # the child: it got no open container, and reads work
        ok = not reader._held and frame_numbers(reader.read_clip(videos[0], 7, 2)) == [7, 8]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not reader._held  # closed in the parent before the fork


def test_containers_of_another_process_are_stranded_not_closed(videos):
    reader = io.VideoReader()
    reader.read_clip(videos[0], 5, 2)
    (_, held), = reader._held.values()
    reader._pid = -1  # as in a child of a fork that bypassed os.register_at_fork
    reader.close()  # closing would join decoder threads this process does not have
    assert reader._stranded == [held] and not reader._held
    assert frame_numbers(reader.read_clip(videos[0], 5, 2)) == [5, 6]


def test_dataloader_workers_after_reads_in_the_main_process(tmp_path):
    for i in range(3):
        write_numbered(tmp_path / f"v{i}.mp4", NUM_FRAMES, options={"g": "8"}, audio=tone(NUM_FRAMES / 10),
                       sample_rate=44100)
    ds = VideoFolder(tmp_path, frames=4, size=32, split="all", audio_rate=RATE)
    expected = [ds[i] for i in range(len(ds))]  # the main process now holds open containers
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, multiprocessing_context="fork")
    for item, batch in zip(expected, loader):
        assert torch.equal(batch["video"][0], item["video"])
        assert torch.equal(batch["audio"][0], item["audio"])


def test_folder_decodes_at_cover_size_close_to_resizing_afterwards(tmp_path):
    path = write_numbered(tmp_path / "v.mp4", NUM_FRAMES, 48, 64, options={"g": "8"})
    ds = VideoFolder(tmp_path, frames=4, size=32, split="all", train_clip="center")
    start = ds.clip_start(0)
    scaled = ds.read_frames(0, start)
    assert scaled.shape == (4, 32, 43, 3)  # the shorter side is the size; the transform only crops
    old = ds.transform(io.read_clip(path, start, 4))  # full-size decode, resized by the transform
    item = ds[0]["video"]
    assert item.shape == old.shape == (3, 4, 32, 32)
    assert (item - old).abs().mean() < 0.05  # FFmpeg's bilinear against torch's: same picture
    assert frame_numbers(to_uint8(item)) == frame_numbers(to_uint8(old)) == list(range(start, start + 4))
