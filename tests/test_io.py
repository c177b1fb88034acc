"""videosynth.io on real files: probe numbers, exact clip frames after seeking, writing, grids, errors."""

import numpy as np
import pytest
import torch
from media import frame_numbers, numbered_frames, write_broken, write_frame_folder, write_numbered
from PIL import Image

from videosynth import io
from videosynth.errors import DataError

# (file name, write_video kwargs, minimum frame size the encoder accepts)
CODECS = [
    ("h264.mp4", {}, 32),
    ("hevc.mp4", {"codec": "libx265"}, 32),
    ("vp9.webm", {}, 32),
    ("mjpeg.avi", {}, 32),
    ("h264.mov", {}, 32),
    ("h264.mkv", {}, 32),
    ("ffv1.mkv", {"codec": "ffv1"}, 32),
    ("mpeg4.mp4", {"codec": "mpeg4"}, 32),
    ("av1.mp4", {"codec": "libsvtav1"}, 64),
    ("anim.gif", {}, 32),
]
# A short keyframe interval so that clips deep in the file exercise the seek path.
GOP = {"g": "10"}


def _write(tmp_path, name, kwargs, side, num_frames=40):
    opts = {} if name.endswith((".gif", ".avi")) or kwargs.get("codec") == "ffv1" else {"options": GOP}
    try:
        return write_numbered(tmp_path / name, num_frames, side, side, **kwargs, **opts)
    except DataError as exc:
        if "not in this FFmpeg build" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.mark.parametrize("name,kwargs,side", CODECS, ids=[c[0] for c in CODECS])
def test_codecs_probe_and_clip(tmp_path, name, kwargs, side):
    path = _write(tmp_path, name, kwargs, side)
    info = io.probe(path)
    assert (info.num_frames, info.width, info.height) == (40, side, side)
    assert info.fps == pytest.approx(10.0, rel=0.05)
    assert info.duration == pytest.approx(4.0, rel=0.05)
    clip = io.read_clip(path, 27, 4, stride=3)
    assert clip.shape == (4, side, side, 3) and clip.dtype == np.uint8
    assert frame_numbers(clip) == [27, 30, 33, 36]
    assert frame_numbers(io.read_clip(path, 0, 3)) == [0, 1, 2]
    assert frame_numbers(io.read_clip(path, 39, 1)) == [39]
    assert frame_numbers(io.read_all(path)) == list(range(40))


def test_seek_decodes_only_what_is_needed(tmp_path):
    path = write_numbered(tmp_path / "long.mp4", 200, options=GOP)
    container = io._open(path)
    try:
        clip, decoded = io._decode_indices(container, path, [150, 151, 152, 153])
    finally:
        container.close()
    assert frame_numbers(clip) == [150, 151, 152, 153]
    # at most one keyframe interval (x264 may place keyframes earlier) plus the clip, never the whole file
    assert decoded <= 2 * 10 + 4


def test_odd_size_is_padded_for_420_and_kept_otherwise(tmp_path):
    mp4 = write_numbered(tmp_path / "odd.mp4", 12, height=33, width=31)
    assert (io.probe(mp4).height, io.probe(mp4).width) == (34, 32)
    assert frame_numbers(io.read_clip(mp4, 5, 3)) == [5, 6, 7]
    for name, kwargs in [("odd.gif", {}), ("odd.mkv", {"codec": "ffv1"})]:
        path = write_numbered(tmp_path / name, 12, height=33, width=31, **kwargs)
        clip = io.read_clip(path, 5, 3)
        assert clip.shape == (3, 33, 31, 3)
        assert frame_numbers(clip) == [5, 6, 7]


@pytest.mark.parametrize("codec", ["libx264", "ffv1"])
def test_grayscale_video_reads_as_rgb(tmp_path, codec):
    path = write_numbered(tmp_path / f"gray-{codec}.mkv", 12, gray=True, codec=codec)
    clip = io.read_clip(path, 2, 4, stride=2)
    assert clip.shape == (4, 32, 32, 3)
    assert np.abs(clip[..., 0].astype(int) - clip[..., 2]).max() <= 2
    assert frame_numbers(clip) == [2, 4, 6, 8]


def test_frame_folder_natural_order(tmp_path):
    folder = write_frame_folder(tmp_path / "frames", 12, height=20, width=24)
    info = io.probe(folder)
    assert (info.num_frames, info.width, info.height, info.codec) == (12, 24, 20, "frames")
    # frame_10.png must follow frame_9.png, not frame_1.png
    assert frame_numbers(io.read_clip(folder, 7, 4)) == [7, 8, 9, 10]
    assert frame_numbers(io.read_all(folder)) == list(range(12))


def test_broken_inputs_raise_data_error_naming_the_file(tmp_path):
    reasons = write_broken(tmp_path)
    for name in ("empty.mp4", "noise.mp4", "text.mp4", "truncated.mp4"):
        with pytest.raises(DataError, match=name):
            io.probe(tmp_path / name)
        with pytest.raises(DataError, match=name):
            io.read_clip(tmp_path / name, 0, 2)
    assert reasons["short.mp4"] == "frames"
    with pytest.raises(DataError, match="short.mp4"):
        io.read_clip(tmp_path / "short.mp4", 1, 4)
    with pytest.raises(DataError, match="not found"):
        io.probe(tmp_path / "missing.mp4")
    with pytest.raises(ValueError):
        io.read_clip(tmp_path / "short.mp4", 0, 2, stride=0)


def test_write_video_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        io.write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(DataError, match=".xyz"):
        io.write_video(tmp_path / "x.xyz", np.zeros((2, 8, 8, 3), np.uint8))
    assert not list(tmp_path.iterdir())  # no temporary file left behind


def test_lossless_round_trip(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    path = io.write_video(tmp_path / "rgb.mkv", frames, codec="ffv1", pix_fmt="bgr0")
    np.testing.assert_array_equal(io.read_all(path), frames)


def test_write_grid_formats(tmp_path):
    videos = torch.rand(5, 3, 4, 16, 16) * 2 - 1  # (N, C, T, H, W) in [-1, 1]
    grid = io.make_grid(videos, nrow=3, pad=2)
    assert grid.shape == (4, 2 * 18 + 2, 3 * 18 + 2, 3)
    for name in ("grid.mp4", "grid.gif"):
        path = io.write_grid(tmp_path / name, videos, nrow=3, fps=8)
        info = io.probe(path)
        assert info.num_frames == 4 and info.width >= 3 * 18 + 2
    png = io.write_grid(tmp_path / "grid.png", videos, pad=1)
    with Image.open(png) as im:
        assert im.size == (4 * 17 + 1, 5 * 17 + 1)  # one row per clip, frames side by side
    # uint8 I/O layout [N, T, H, W, 3] gives the same tiles as float input
    u8 = np.stack([numbered_frames(4, 16, 16)] * 2)
    tiled = io.make_grid(u8, nrow=2, pad=0)
    np.testing.assert_array_equal(tiled[:, :, :16], u8[0])
