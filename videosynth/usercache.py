"""The user cache: files a later command may reuse, never needed for a correct result.

Everything here lives under ``$XDG_CACHE_HOME/videosynth`` (default ``~/.cache/videosynth``):
the scan index of video folders, the class-accuracy probes. A run directory or a dataset folder
is never written by a reader. Because a cache only saves time, a write that fails (an unwritable
or full cache folder, ``XDG_CACHE_HOME`` naming a file) is one warning per folder, and the
command goes on without it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("videosynth.cache")

_warned: set[str] = set()  # folders whose failed write was reported already (one warning each)


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/videosynth``, else ``~/.cache/videosynth``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "videosynth"


def write_cache_file(path: str | Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically (temp name beside it, fsync, rename); False when it failed.

    A failure is logged once per folder and leaves no temporary file behind; it never raises.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return True
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:  # never created (the folder is missing or a file), or already gone
            pass
        folder = str(path.parent)
        if folder not in _warned:
            _warned.add(folder)
            log.warning("could not write to the cache folder %s (%s); going on without it (set XDG_CACHE_HOME to "
                        "a writable folder to keep it)", folder, exc.strerror or exc)
        return False
