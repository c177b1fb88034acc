"""Display matrices: a phone's sideways-coded video is read upright, at the size players show.

The files are written landscape with a bright block in the top-left corner, then their mp4 ``tkhd``
matrix is overwritten the way phones write it. Where the block must appear follows from the matrix
(a viewer's view); the frames must also equal what FFmpeg's autorotate filters make of the decoded
picture (``transpose``, ``hflip``, ``vflip``, as ``ffmpeg`` picks them for the matrix).
"""

from __future__ import annotations

import logging
import struct
from fractions import Fraction

import av
import numpy as np
import pytest

from videosynth import io
from videosynth.data import VideoFolder, to_uint8
from videosynth.data.scan import scan
from videosynth.io import orientation

H, W = 32, 48  # coded landscape
BLOCK = (8, 12)  # the bright block's height and width, at the top-left of the coded picture
DARK, BRIGHT = 20, 235
ONE = 1 << 16  # 1.0 in the matrix's 16.16 fixed point
W_ONE = 1 << 30  # 1.0 in 2.30, the matrix's last column

# name: (a, b, c, d of the tkhd matrix, frame.rotation PyAV reports or None where mirrored,
#        where a viewer sees the block, shown (H, W), the filters ffmpeg's autorotate inserts)
CASES = {
    "phone-90": ((0, ONE, -ONE, 0), -90, "top right", (W, H), [("transpose", "clock")]),
    "ccw90": ((0, -ONE, ONE, 0), 90, "bottom left", (W, H), [("transpose", "cclock")]),
    "half-turn": ((-ONE, 0, 0, -ONE), 180, "bottom right", (H, W), [("hflip", None), ("vflip", None)]),
    "mirror": ((-ONE, 0, 0, ONE), None, "top right", (H, W), [("hflip", None)]),
    "transpose": ((0, ONE, ONE, 0), None, "top left", (W, H), [("transpose", "cclock_flip")]),
}


def _frames(num_frames: int = 3) -> np.ndarray:
    """uint8 [T, H, W, 3]: dark, a bright block in the top-left corner."""
    frames = np.full((num_frames, H, W, 3), DARK, np.uint8)
    frames[:, :BLOCK[0], :BLOCK[1]] = BRIGHT
    return frames


def set_tkhd_matrix(path, a: int, b: int, c: int, d: int) -> None:
    """Overwrite the (only) track's ``tkhd`` matrix ``[a b 0; c d 0; 0 0 1]`` in an mp4 file.

    tkhd after its type: version (1 byte), flags (3), creation and modification times, track id,
    a reserved word, duration (times and duration 4 bytes each in version 0, 8 in version 1),
    8 reserved bytes, layer, alternate group, volume, 2 reserved bytes, then the 3x3 matrix
    (big-endian int32: 16.16 for a, b, u... but 2.30 for the last column).
    """
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    assert at > 0 and data.find(b"tkhd", at + 4) < 0, "one track expected"
    version = data[at + 4]
    matrix = at + 4 + 4 + (4 + 4 + 4 + 4 + 4 if version == 0 else 8 + 8 + 4 + 4 + 8) + 8 + 8
    struct.pack_into(">9i", data, matrix, a, b, 0, c, d, 0, 0, 0, W_ONE)
    path.write_bytes(bytes(data))


def write_rotated(path, a: int, b: int, c: int, d: int, num_frames: int = 3):
    io.write_video(path, _frames(num_frames), fps=10)
    set_tkhd_matrix(path, a, b, c, d)
    return path


def decoded(path) -> tuple[av.VideoFrame, np.ndarray]:
    """The first frame by plain PyAV (no rotation applied) and its RGB picture."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame, frame.to_ndarray(format="rgb24")


def autorotated(picture: np.ndarray, filters) -> np.ndarray:
    """uint8 [H, W, 3] through FFmpeg's own filters (those ffmpeg's autorotate inserts)."""
    graph = av.filter.Graph()
    source = graph.add_buffer(width=picture.shape[1], height=picture.shape[0], format="rgb24",
                              time_base=Fraction(1, 10))
    graph.link_nodes(source, *[graph.add(name, arg) for name, arg in filters], graph.add("buffersink")).configure()
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
    frame.pts = 0
    graph.push(frame)
    return graph.pull().to_ndarray(format="rgb24")


def bright_corner(frames: np.ndarray) -> str:
    """Which corner of uint8 [T, H, W, 3] frames holds the bright block (checked on every frame)."""
    # inside the block in any orientation and scale, clear of its blurred edge
    side = min(BLOCK) * min(frames.shape[1:3]) // min(H, W) - 2
    corners = {"top left": (slice(0, side), slice(0, side)), "top right": (slice(0, side), slice(-side, None)),
               "bottom left": (slice(-side, None), slice(0, side)),
               "bottom right": (slice(-side, None), slice(-side, None))}
    found = {name for name, (rows, cols) in corners.items() if (frames[:, rows, cols] > 128).all()}
    assert len(found) == 1, found
    return found.pop()


@pytest.mark.parametrize("name", list(CASES))
def test_display_matrix_reads_upright(tmp_path, name):
    (a, b, c, d), rotation, corner, shown, filters = CASES[name]
    path = write_rotated(tmp_path / f"{name}.mp4", a, b, c, d)
    frame, picture = decoded(path)
    # the patched file carries the matrix: FFmpeg hands it to decoded frames
    matrix = np.frombuffer(bytes(frame.side_data["DISPLAYMATRIX"]), dtype=np.int32).tolist()
    assert matrix == [a, b, 0, c, d, 0, 0, 0, W_ONE]
    if rotation is not None:
        assert frame.rotation % 360 == rotation % 360
    assert picture.shape == (H, W, 3) and bright_corner(picture[None]) == "top left"  # coded as written

    info = io.probe(path)
    assert (info.height, info.width) == shown
    frames = io.read_all(path)
    assert frames.shape == (3, *shown, 3) and frames.flags["C_CONTIGUOUS"]
    assert bright_corner(frames) == corner
    np.testing.assert_array_equal(frames[0], autorotated(picture, filters))
    np.testing.assert_array_equal(io.read_clip(path, 1, 2), frames[1:])
    reader = io.VideoReader()
    np.testing.assert_array_equal(reader.read_clip(path, 0, 3), frames)
    np.testing.assert_array_equal(reader.read_clip(path, 2, 1), frames[2:])
    reader.close()
    half = (shown[0] // 2, shown[1] // 2)  # a size is the shown one
    small = io.read_clip(path, 0, 2, size=half)
    assert small.shape == (2, *half, 3) and bright_corner(small) == corner


def test_scan_and_dataset_use_the_shown_size(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    write_rotated(root / "phone.mp4", *CASES["phone-90"][0], num_frames=4)
    write_rotated(root / "level.mp4", ONE, 0, 0, ONE, num_frames=4)
    result = scan(root, cache_dir=tmp_path / "cache", progress=False)
    sizes = {e.path: (e.width, e.height) for e in result.entries}
    assert sizes == {"phone.mp4": (H, W), "level.mp4": (W, H)}
    # the dataset decodes at the size that covers its clips, from the shown size (portrait here)
    ds = VideoFolder(root, frames=2, size=16, split="train", val_fraction=0.0, train_clip="center",
                     cache_dir=tmp_path / "cache", progress=False)
    assert [to_uint8(ds[i]["video"]).shape for i in range(len(ds))] == [(2, 16, 16, 3)] * 2


def test_odd_angle_warns_once_and_reads_unrotated(tmp_path, caplog):
    cos = round(ONE * np.cos(np.pi / 4))  # 45 degrees counter-clockwise
    path = write_rotated(tmp_path / "tilted.mp4", cos, -cos, cos, cos)
    assert decoded(path)[0].rotation == 45
    with caplog.at_level(logging.WARNING, logger="videosynth.io"):
        info = io.probe(path)
        frames = io.read_all(path)
        io.read_clip(path, 1, 2)
        io.VideoReader().read_clip(path, 0, 1)
    assert (info.height, info.width) == (H, W) and frames.shape == (3, H, W, 3)
    assert bright_corner(frames) == "top left"
    warned = [r.getMessage() for r in caplog.records if "quarter turn" in r.getMessage()]
    assert len(warned) == 1 and str(path) in warned[0] and "45 degrees" in warned[0]


def test_orientation_is_learned_once_per_file(tmp_path):
    path = write_rotated(tmp_path / "phone.mp4", *CASES["phone-90"][0])
    assert orientation.known(path) is None
    io.probe(path)
    assert orientation.known(path) == orientation.Orientation(turns=3)
    path.touch()  # a changed file is looked at again
    assert orientation.known(path) is None
