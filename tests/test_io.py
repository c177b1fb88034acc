"""videosynth.io on real files: probe numbers, exact clip frames after seeking, writing, grids, errors."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from media import frame_numbers, numbered_frames, write_broken, write_frame_folder, write_numbered
from PIL import Image

from videosynth import io
from videosynth.io import files, video_read
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
    container = files._open(path)
    try:
        clip, decoded, read = video_read._decode_indices(container, path, [150, 151, 152, 153])
    finally:
        container.close()
    assert frame_numbers(clip) == [150, 151, 152, 153]
    # at most one keyframe interval (x264 may place keyframes earlier) plus the clip, never the whole file
    assert decoded <= read <= 2 * 10 + 4 + 4  # + the decoder's delay (B-frames reordered)


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


def _moving_numbered(num_frames: int, side: int = 64) -> np.ndarray:
    """Numbered frames over a scrolling texture: motion that encoders code as B-frames."""
    frames = numbered_frames(num_frames, side, side).copy()
    texture = np.random.default_rng(0).integers(40, 200, (side, 2 * side, 3), dtype=np.uint8)
    band = slice(side // 2 - 8, side // 2 + 8)  # a strip across the block rows' boundary, left readable
    for t in range(num_frames):
        frames[t, band] = texture[band, t % side:t % side + side]
    return frames


@pytest.mark.parametrize("name,codec,options", [
    ("h264.mp4", None, {"g": "24"}),                    # x264's default: 3 B-frames, B-pyramid
    ("hevc.mp4", "libx265", {"g": "24"}),
    ("mpeg4.mp4", "mpeg4", {"g": "24", "bf": "2"}),
])
def test_frames_before_the_clip_are_skipped_and_the_clip_is_unchanged(tmp_path, monkeypatch, name, codec, options):
    path = tmp_path / name
    try:
        io.write_video(path, _moving_numbered(96), fps=24, codec=codec, options=options)
    except DataError as exc:
        if "not in this FFmpeg build" in str(exc):
            pytest.skip(str(exc))
        raise

    def reads(skipping):
        monkeypatch.setattr(video_read, "SKIPPING_CODECS", video_read.SKIPPING_CODECS if skipping else ())
        out = []
        container = files._open(path)
        try:
            for start in (1, 5, 17, 22, 30, 47, 70, 80):
                out.append(video_read._decode_indices(container, path, video_read._clip_indices(start, 8, 2 if start % 2 else 1)))
        finally:
            container.close()
        return out

    skipped, full = reads(True), reads(False)
    for (a, decoded, read), (b, decoded_all, read_all) in zip(skipped, full):
        assert np.array_equal(a, b)  # bit for bit
        assert read == read_all and decoded <= decoded_all
    assert sum(s[1] for s in skipped) < sum(f[1] for f in full)  # some B-frames before clips were not decoded
    assert frame_numbers(skipped[3][0]) == list(range(22, 30))


@pytest.mark.parametrize("codec,options", [
    ("mpeg4", {"g": "12", "bf": "2"}),  # Xvid/DivX-style, as in UCF-101's AVIs
    ("libx264", {"g": "12"}),           # x264's B-pyramid: the AVI demuxer's pts guesses are wrong
])
def test_avi_with_b_frames_numbers_frames_from_the_first_picture(tmp_path, codec, options):
    """AVI has no presentation times: its packets count from dts 0 and the first picture shows at pts 1."""
    path = tmp_path / "b.avi"
    io.write_video(path, _moving_numbered(48), fps=24, codec=codec, options=options)
    assert frame_numbers(io.read_all(path)) == list(range(48))
    reader = io.VideoReader()
    try:
        for start in (0, 1, 11, 12, 13, 25, 40):
            assert frame_numbers(io.read_clip(path, start, 8)) == list(range(start, start + 8)), start
            assert frame_numbers(reader.read_clip(path, start, 4, stride=2)) == list(range(start, start + 8, 2))
    finally:
        reader.close()
    # the first picture's pts is kept per file: the same path rewritten without B-frames starts at pts 0
    io.write_video(path, _moving_numbered(30), fps=24, codec="mpeg4", options={"g": "12", "qscale": "2"})
    for start in (0, 5, 13):
        assert frame_numbers(io.read_clip(path, start, 8)) == list(range(start, start + 8)), start


def test_a_skipped_frame_held_over_a_pts_gap_is_decoded_after_all(tmp_path, monkeypatch):
    """Pictures 40 and 41 are missing (a gap in a variable-rate file): a clip starting in the gap shows
    the picture before it, which skipping may have dropped; the read is redone without skipping."""
    import av

    path = tmp_path / "gap.mp4"
    frames = _moving_numbered(60)
    shown = [t for t in range(60) if t not in (40, 41)]  # pictures for every frame slot but 40 and 41
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"g": "48", "crf": "18"})
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 24)
        for t in shown:
            frame = av.VideoFrame.from_ndarray(frames[t], format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    skipping = [io.read_clip(path, start, 4) for start in range(30, 48)]
    monkeypatch.setattr(video_read, "SKIPPING_CODECS", ())
    full = [io.read_clip(path, start, 4) for start in range(30, 48)]
    for a, b in zip(skipping, full):
        assert np.array_equal(a, b)
    assert frame_numbers(full[10])[0] == 39  # the clip at frame slot 40 starts with the held-over picture
