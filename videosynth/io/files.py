"""Naming and opening media files: suffixes, frame folders, containers, file stamps, temporary names.

A *video* is either a file any bundled FFmpeg demuxer reads (mp4, mov, mkv,
webm, avi, gif, ...) or a *frame folder*: a directory of jpg/png images whose
names sort naturally (``frame_2.png`` before ``frame_10.png``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import av

from videosynth.errors import DataError


VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".mpeg",
    ".wmv", ".flv", ".ts", ".mts", ".m2ts", ".3gp", ".ogv",
)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
AUDIO_EXTENSIONS = (".wav", ".mp3", ".aac", ".m4a", ".flac", ".ogg", ".oga", ".opus", ".wma", ".aif", ".aiff")
# A frame folder's soundtrack is a file of this name (any audio suffix) inside the folder.
SOUNDTRACK_STEM = "audio"


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: ``f2.png`` < ``f10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frames(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, naturally sorted (hidden files skipped)."""
    folder = Path(folder)
    try:
        names = [e.name for e in os.scandir(folder)
                 if e.is_file() and not e.name.startswith(".")
                 and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS]
    except OSError as exc:
        raise DataError(f"{folder}: cannot list frame folder ({exc.strerror or exc})") from None
    return [folder / n for n in sorted(names, key=natural_key)]


def _describe(exc: BaseException) -> str:
    """One-line reason from an FFmpeg/OS error."""
    text = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    return str(text).splitlines()[0]


def _open(path: Path):
    """``path`` opened for reading, its decoders set to one thread each.

    One thread: a decoder with a thread pool that a forked process inherits (a DataLoader or scan
    worker) hangs it when it is freed there, joining threads the child does not have; and on
    short random clips the pool did not pay (the same clips/s with and without it, 320x240 H.264).
    """
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable video ({_describe(exc)})") from None
    for stream in (*container.streams.video, *container.streams.audio):
        stream.codec_context.thread_count = 1
    return container


# Marks the temporary files written next to their destination and renamed into place; a file
# whose name starts with "." and holds this mark is a leftover of a killed writer.
TEMP_MARK = ".tmp-"


def temp_path(path: str | Path) -> Path:
    """``dir/.name.tmp-PID.ext``: where ``path`` is written before it is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.stem}{TEMP_MARK}{os.getpid()}{path.suffix}")


def is_temp(path: str | Path) -> bool:
    """Whether ``path`` is a leftover temporary file of :func:`temp_path` (or a checkpoint temp folder)."""
    name = Path(path).name
    return name.startswith(".") and TEMP_MARK in name


def _stamp(path: Path) -> tuple | None:
    """What identifies the file's contents for reuse: inode, size, mtime (None when it cannot be stat'ed)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
