"""One writer per run directory: an OS file lock on ``RUN_DIR/.lock``.

``fcntl.flock`` is held by the open file, so the kernel releases it whatever way the process
ends (normal exit, exception, SIGKILL, a crash): a lock left by a killed run never blocks the
next one. The file holds the writer's PID, host and command line so a refused second writer
can say who holds the run. Readers (``sample``, ``eval``, pipelines) take no lock.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from videosynth.errors import CheckpointError

LOCK_FILE = ".lock"


class RunLock:
    """``with RunLock(run_dir):`` -- create ``run_dir`` if needed and hold its writer lock.

    Raises:
        CheckpointError: another process holds the lock (its PID, host and start time named),
            or the folder cannot be created.
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._file = None

    def __enter__(self) -> "RunLock":
        if not self.enabled:
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot create run directory {self.run_dir}: {exc.strerror or exc}") from None
        path = self.run_dir / LOCK_FILE
        if os.name != "posix":  # no flock: best effort, the run still trains
            return self
        import fcntl

        f = open(path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = _describe(f.read())
            f.close()
            raise CheckpointError(f"{self.run_dir} is in use by another training ({holder}); wait for it to "
                                  "finish or stop it, or train into another --run-dir") from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[1:]}) + "\n")
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()  # closing the file releases the lock
            self._file = None


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"PID {info['pid']} on host {info['host']}, started {info['started']}"
    except (ValueError, KeyError, TypeError):
        return "a process that left no details"
