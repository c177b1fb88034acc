"""SIGINT / SIGTERM during training: finish the step, save, stop (all ranks together)."""

from __future__ import annotations

import signal

import torch
import torch.distributed as dist

# Exit codes of a run stopped by a signal: the shell's 128 + signal number.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopFlag:
    """SIGINT/SIGTERM -> ``stop`` becomes True and ``signal`` records which; a second signal
    stops at once (KeyboardInterrupt for SIGINT, ``SystemExit(143)`` for SIGTERM)."""

    def __init__(self):
        self.stop = False
        self.signal: int | None = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.stop:  # second signal: the user insists
            if signum == signal.SIGTERM:
                raise SystemExit(EXIT_CODES[signal.SIGTERM])
            raise KeyboardInterrupt
        self.stop = True
        self.signal = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal, EXIT_CODES[signal.SIGINT])

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def agree_stop(distributed: bool, device: torch.device, stop: bool) -> bool:
    """True on every rank when any rank was asked to stop."""
    if not distributed:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0], device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)
