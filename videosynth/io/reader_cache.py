"""Open containers kept between reads (:class:`VideoReader`) and the fork hook that keeps that safe."""

from __future__ import annotations

import gc
import os
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np

from videosynth.io import audio_read, video_read
from videosynth.io.files import _open, _stamp


# Open files one VideoReader keeps: a clip's sound after its frames and the next clip of a recent file
# skip the open, at the cost of a demuxer and decoder state per file held.
MAX_OPEN_CONTAINERS = 8


class VideoReader:
    """:func:`read_clip` and :func:`read_audio` through a small LRU of open containers, for one process.

    A read reuses the container of its file when the file is unchanged (same inode, size and
    mtime; else it is reopened) and the read starts with a seek (seeking resets the demuxer and
    the decoders; a read from the very start takes a fresh container, as the plain functions do),
    so results equal the plain functions': frames exactly (upright: a file's display orientation is
    learned once and kept for the process, see :mod:`~videosynth.io.orientation`), sound exactly
    but for AAC, whose FFmpeg decoder comes out an ulp apart after other reads (and, in bands coded
    as noise, with other noise), as it does in :func:`read_audio`, which shares decoders
    (``SHARED_AUDIO_DECODERS``).
    A read that fails closes its container.  The least recently used container beyond
    ``max_open`` is closed.

    Safe with DataLoader workers: a fork closes every reader's containers in the parent first (the
    child would otherwise inherit FFmpeg state whose decoder threads it lacks), a pickled reader
    (spawned workers) arrives empty, and a reader that finds itself in another process than the one
    that opened its containers (a fork that bypassed Python) drops them without closing them.
    Not for concurrent use by several threads.
    """

    def __init__(self, max_open: int = MAX_OPEN_CONTAINERS) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be >= 1, got {max_open}")
        self.max_open = max_open
        self._held: OrderedDict[str, tuple[tuple | None, object]] = OrderedDict()  # path -> (stamp, container)
        self._pid = os.getpid()
        self._stranded: list = []  # containers of another process: never closed here (see class doc)
        _READERS.add(self)

    def read_clip(self, path: str | Path, start: int, num_frames: int, stride: int = 1,
                  size: tuple[int, int] | None = None) -> np.ndarray:
        """:func:`read_clip`: uint8 ``[num_frames, H, W, 3]``, the same frames; same errors."""
        path = Path(path)
        indices = video_read._clip_indices(start, num_frames, stride)
        if path.is_dir():
            return video_read._read_folder(path, indices, size)
        return self._read(path, lambda c: video_read._clip_seeks(c, indices),
                          lambda c: video_read._decode_indices(c, path, indices, size)[0])

    def read_audio(self, path: str | Path, sample_rate: int, start: float = 0.0,
                   duration: float | None = None) -> np.ndarray:
        """:func:`read_audio`: float32 ``[S]`` mono in ``[-1, 1]``, the same samples; same errors."""
        audio_read._check_window(sample_rate, duration)
        source = audio_read._soundtrack_of(Path(path))
        return self._read(source, lambda c: audio_read._audio_seeks(c, start),
                          lambda c: audio_read._decode_audio(c, source, sample_rate, start, duration))

    def close(self) -> None:
        """Close every container held (the reader stays usable)."""
        self._claim()
        while self._held:
            self._held.popitem()[1][1].close()

    def _claim(self) -> None:
        """In a process other than the one that opened the held containers, strand them (never close them)."""
        if self._pid != os.getpid():
            self._stranded.extend(container for _, container in self._held.values())
            self._held.clear()
            self._pid = os.getpid()

    def _read(self, path: Path, seeks, read):
        """``read(container)`` on a held container of ``path`` where ``seeks(container)``, else a new one."""
        self._claim()
        stamp = _stamp(path)
        held = self._held.pop(str(path), None)
        container = None
        if held is not None:
            if held[0] == stamp and seeks(held[1]):
                container = held[1]
            else:
                held[1].close()
        if container is None:
            container = _open(path)
        try:
            out = read(container)
        except BaseException:
            container.close()
            raise
        self._held[str(path)] = (stamp, container)
        while len(self._held) > self.max_open:
            self._held.popitem(last=False)[1][1].close()
        return out

    def __getstate__(self) -> dict:
        return {"max_open": self.max_open}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_open"])


_READERS: weakref.WeakSet[VideoReader] = weakref.WeakSet()


def _close_readers() -> None:
    """Before a fork: close the readers' containers and free them, and any other PyAV garbage, here.

    Containers and their streams form reference cycles, so a closed one lives until the cyclic GC
    runs; run in a child, freeing one whose codec had threads (an encoder, a decoder not opened by
    :func:`_open`) would hang it.
    """
    for reader in list(_READERS):
        reader.close()
    audio_read.clear_shared_decoders()
    gc.collect()


os.register_at_fork(before=_close_readers)
