"""Display orientation: turning decoded pictures the way a player shows them (phones record sideways).

A video stream may carry a display matrix (the mp4/mov ``tkhd`` matrix, Matroska's projection pose,
H.264/HEVC display orientation messages); FFmpeg attaches it to every decoded frame as side data. Its
angle (``av_display_rotation_get``, PyAV's ``frame.rotation``) is counter-clockwise degrees: a phone
held upright writes -90 and players turn its landscape pictures 90 degrees clockwise. The readers
turn frames the same way FFmpeg's own tools do (``ffmpeg``/``ffplay`` autorotate: the angle
``theta = -rotation`` becomes ``transpose=clock`` near 90, ``hflip``/``vflip`` near 180,
``transpose=cclock`` near 270, with the ``*_flip`` variants or a bare ``vflip`` where the matrix
mirrors), with ``np.rot90`` on uint8 ``[T, H, W, 3]`` arrays. Any other angle is logged once per
file and ignored (FFmpeg would resample the picture at that angle).

A file's orientation is learned once, from the first picture decoded from it, and kept for the
process (keyed like the other per-file facts, by path, inode, size and mtime), so every read of a
file, by :func:`~videosynth.io.read_clip`, :class:`~videosynth.io.VideoReader` or
:func:`~videosynth.io.probe`, turns its frames alike.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from videosynth.io.files import _stamp

log = logging.getLogger("videosynth.io")

# Degrees an angle may be off a quarter turn and still count as one (FFmpeg's autorotate uses 1).
ANGLE_TOLERANCE = 1.0
# Files whose orientation is kept; beyond this the oldest are forgotten (and learned again if read).
MAX_KEPT = 100_000


@dataclass(frozen=True)
class Orientation:
    """How decoded pictures become upright: ``turns`` counter-clockwise quarter turns, then, when
    ``mirror``, a left-right flip. Any of the eight display-matrix cases is one of these."""

    turns: int = 0
    mirror: bool = False

    @property
    def upright(self) -> bool:
        return self.turns == 0 and not self.mirror

    def displayed(self, height: int, width: int) -> tuple[int, int]:
        """``(H, W)`` shown for a decoded picture of ``height x width``."""
        return (width, height) if self.turns % 2 else (height, width)

    def coded(self, size: tuple[int, int] | None) -> tuple[int, int] | None:
        """The ``(H, W)`` to scale a decoded picture to so that it is shown at ``size = (H, W)``."""
        return (size[1], size[0]) if size is not None and self.turns % 2 else size

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """uint8 ``[T, H, W, C]`` decoded -> ``[T, H', W', C]`` as shown (H' = W for odd ``turns``).

        Returns a contiguous array (``torch.from_numpy`` refuses negative strides); the input itself
        when upright.
        """
        if self.upright:
            return frames
        out = np.rot90(frames, self.turns, axes=(1, 2))  # (T, H', W', C)
        return np.ascontiguousarray(out[:, :, ::-1] if self.mirror else out)


UPRIGHT = Orientation()


def _display_matrix(frame) -> tuple[int, ...] | None:
    """The frame's display matrix, 9 int32 (16.16 fixed point, 2.30 for the last column), if any."""
    side = frame.side_data.get("DISPLAYMATRIX")
    return None if side is None else tuple(np.frombuffer(bytes(side), dtype=np.int32)[:9].tolist())  # int32_t[9]


def from_matrix(matrix: tuple[int, ...] | None) -> Orientation | float:
    """The :class:`Orientation` FFmpeg's autorotate applies for a display ``matrix``, or the matrix's
    angle (counter-clockwise degrees, as ``frame.rotation``) when that is no quarter turn.

    ``matrix`` is row-major ``[a b u; c d v; x y w]``: a source pixel ``(p, q)`` is shown at
    ``(a p + c q + x, b p + d q + y)``.
    """
    if matrix is None:
        return UPRIGHT
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
    sx, sy = math.hypot(a, c), math.hypot(b, d)
    if sx == 0 or sy == 0:
        return UPRIGHT  # degenerate: FFmpeg reports no angle for it either
    rotation = -math.degrees(math.atan2(b / sy, a / sx))  # av_display_rotation_get
    theta = -rotation - 360 * math.floor(-rotation / 360 + 0.9 / 360)  # clockwise, in [-0.9, 359.1) as ffmpeg's
    if abs(theta - 90) < ANGLE_TOLERANCE:
        return Orientation(3, mirror=c > 0)  # transpose=clock, or cclock_flip
    if abs(theta - 270) < ANGLE_TOLERANCE:
        return Orientation(1, mirror=c < 0)  # transpose=cclock, or clock_flip
    if abs(theta - 180) < ANGLE_TOLERANCE:
        hflip, vflip = a < 0, d < 0
        if hflip and vflip:
            return Orientation(2)
        return Orientation(2 if vflip else 0, mirror=hflip != vflip)  # a vertical flip is a half turn mirrored
    if abs(theta) < ANGLE_TOLERANCE:
        return Orientation(2, mirror=True) if d < 0 else UPRIGHT  # vflip
    return rotation


_KEPT: OrderedDict[tuple, Orientation] = OrderedDict()  # (path, _stamp) -> the file's orientation


def known(path: Path) -> Orientation | None:
    """The orientation already learned for ``path`` (unchanged since) in this process, else None."""
    stamp = _stamp(path)
    return None if stamp is None else _KEPT.get((str(path), stamp))


def of_file(path: Path, frame) -> Orientation:
    """``path``'s orientation: the one learned before, else the one ``frame`` (decoded from it) carries,
    kept for the file. An angle that is no quarter turn is logged once and read as upright."""
    stamp = _stamp(path)
    key = (str(path), stamp)
    if stamp is not None and key in _KEPT:
        return _KEPT[key]
    found = from_matrix(_display_matrix(frame))
    if not isinstance(found, Orientation):
        log.warning("%s: display rotation of %.4g degrees is not a quarter turn; frames are read unrotated "
                    "(re-encode the file upright to read it as players show it)", path, found)
        found = UPRIGHT
    if stamp is not None:
        _KEPT[key] = found
        while len(_KEPT) > MAX_KEPT:
            _KEPT.popitem(last=False)
    return found
