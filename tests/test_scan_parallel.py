"""The scan across worker processes: exactly the serial scan's entries and broken files, in order."""

from __future__ import annotations

import logging
import shutil

import pytest
from media import write_broken, write_frame_folder, write_numbered

from videosynth.data import scan as scan_mod
from videosynth.data.scan import find_videos, scan


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """Good videos (copies under many names), a frame folder, and one file of each kind of breakage."""
    monkeypatch.setattr(scan_mod, "PARALLEL_MIN_FILES", 4)  # parallel on a folder small enough for a test
    root = tmp_path / "videos"
    good = [write_numbered(root / "src.mp4", 12), write_numbered(root / "src.webm", 12)]
    for c in range(3):
        (root / f"c{c}").mkdir()
    for i in range(24):
        shutil.copy(good[i % 2], root / f"c{i % 3}" / f"copy{i}{good[i % 2].suffix}")
    write_frame_folder(root / "frames", 12)
    expected = write_broken(root / "junk")
    return root, expected


def test_parallel_scan_equals_serial_scan(folder, caplog):
    root, expected = folder
    with caplog.at_level(logging.WARNING, logger="videosynth.data"):
        serial = scan(root, min_frames=4, use_cache=False, workers=1)
    serial_log = caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="videosynth.data"):
        parallel = scan(root, min_frames=4, use_cache=False, workers=3)
    assert parallel.entries == serial.entries and parallel.broken == serial.broken
    assert len(serial.entries) == 27 and len(serial.broken) == len(expected)
    for path, reason in serial.broken:
        assert expected[path.split("/")[-1]] in reason
    assert caplog.text == serial_log  # the same warnings, one per broken file
    # the same order as the file listing
    listed = [p.relative_to(root).as_posix() for p in find_videos(root)]
    names = [e.path for e in parallel.entries]
    assert names == [n for n in listed if n in set(names)]


def test_parallel_scan_is_cached_like_the_serial_one(folder, tmp_path):
    root, _ = folder
    cache = tmp_path / "cache"
    first = scan(root, min_frames=4, cache_dir=cache, workers=2)
    again = scan(root, min_frames=4, cache_dir=cache, workers=1)
    assert not first.from_cache and again.from_cache
    assert again.entries == first.entries and again.broken == first.broken


def test_missing_listed_paths_are_broken_in_parallel_too(folder):
    root, _ = folder
    paths = find_videos(root) + [root / "gone.mp4"]
    result = scan(root, paths, min_frames=4, use_cache=False, workers=2)
    assert result.broken[-1] == ("gone.mp4", "file not found")


def test_a_dead_worker_leaves_the_rest_to_this_process(folder, monkeypatch, caplog):
    root, _ = folder
    serial = scan(root, min_frames=4, use_cache=False, workers=1, quiet=True)

    class DeadPool:  # a pool whose worker died: every result raises BrokenProcessPool
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, *args):
            from concurrent.futures import Future

            future = Future()
            future.set_exception(scan_mod.BrokenProcessPool("a worker died"))
            return future

    monkeypatch.setattr(scan_mod, "ProcessPoolExecutor", DeadPool)
    with caplog.at_level(logging.WARNING, logger="videosynth.data"):
        result = scan(root, min_frames=4, use_cache=False, workers=2, quiet=True)
    assert "worker process died" in caplog.text
    assert result.entries == serial.entries and result.broken == serial.broken


def test_progress_bar_only_on_a_terminal(folder, capsys, monkeypatch):
    root, _ = folder
    scan(root, min_frames=4, use_cache=False, workers=2, quiet=True)
    assert "scanning" not in capsys.readouterr().err  # stderr is not a terminal under pytest
    monkeypatch.setattr(scan_mod.sys.stderr, "isatty", lambda: True, raising=False)
    scan(root, min_frames=4, use_cache=False, workers=2, quiet=True)
    err = capsys.readouterr().err
    assert "scanning" in err and "/32" in err  # 27 good files and 5 broken ones
