"""Undecodable packets: skipped and counted by every read, refused only beyond a share of a read.

Real files carry damaged packets (a broken AC-3 frame in an AVI soundtrack, a bad JPEG in an
MJPEG stream). FFmpeg's own tools skip such a packet and go on; so do the readers here: the
lost samples become silence at their own timestamps (later samples stay aligned) and a lost
picture keeps the previous one on screen. A read in which more than ``MAX_PACKET_ERROR_SHARE``
of the packets fail is a :class:`~videosynth.errors.DataError`: the file (or that part of it)
is not worth using. Packets are counted as the demuxer delivers them: a parser that loses a
frame's sync word (AC-3 in AVI) merges it into the packet before, and the pair counts as one.
Skipped packets are tallied per file for this process (:func:`skipped_packets`) and logged
once per file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from videosynth.errors import DataError

log = logging.getLogger("videosynth.io")

# A read may lose up to this share of the packets it demuxes (undecodable ones); more is an error.
MAX_PACKET_ERROR_SHARE = 0.5

_SKIPPED: dict[tuple[str, str], int] = {}  # (path, "audio" | "video") -> packets skipped in this process


@dataclass
class PacketTally:
    """Packets one read demuxed (``packets``, empty ones not counted) and those that failed to decode
    (``errors``, with the first failure's ``reason``)."""

    packets: int = 0
    errors: int = 0
    reason: str = ""

    def failed(self, reason: str) -> None:
        self.errors += 1
        self.reason = self.reason or reason


def settle(tally: PacketTally, path: Path, kind: str) -> None:
    """Record a finished read's skipped packets; raise when they exceed the share a read may lose.

    Raises:
        DataError: more than ``MAX_PACKET_ERROR_SHARE`` of the read's packets failed to decode.
    """
    if not tally.errors:
        return
    if tally.errors > MAX_PACKET_ERROR_SHARE * max(tally.packets, 1):
        raise DataError(f"{path}: {kind} decode failed in {tally.errors} of {tally.packets} packets read "
                        f"({tally.reason}); re-encode the file or remove it from the dataset")
    key = (str(path), kind)
    if key not in _SKIPPED:
        log.warning("%s: skipped %d undecodable %s packet(s) (%s); the gap is filled (%s)", path, tally.errors,
                    kind, tally.reason, "silence" if kind == "audio" else "previous frame held")
    _SKIPPED[key] = _SKIPPED.get(key, 0) + tally.errors


def skipped_packets(path: str | Path, kind: str | None = None) -> int:
    """Undecodable packets of ``path`` skipped by reads in this process (``kind``: "audio", "video" or both)."""
    kinds = ("audio", "video") if kind is None else (kind,)
    return sum(_SKIPPED.get((str(path), k), 0) for k in kinds)
