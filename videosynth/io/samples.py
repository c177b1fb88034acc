"""Generated clips to files as they are made: one file per clip and/or one grid, with a soundtrack
wherever the format carries one. ``videosynth sample`` and the web page both write through here,
so the same clips give the same files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from videosynth.io.audio_write import AUDIO_ENCODERS
from videosynth.io.convert import to_uint8
from videosynth.io.grids import write_grid
from videosynth.io.video_write import write_video


@dataclass
class Written:
    """What :func:`write_samples` wrote: the grid (or None), the per-clip files, the clips' ``(T, H, W)``."""

    grid: Path | None = None
    clips: list[Path] = field(default_factory=list)
    count: int = 0
    shape: tuple[int, int, int] | None = None


def soundtrack_for(path: Path, audio: torch.Tensor | None, sample_rate: int) -> dict:
    """``write_video`` / ``write_grid`` arguments carrying ``audio`` (mono ``float32 [S]``) into ``path``;
    none for formats without sound (GIFs, stills)."""
    if audio is None or Path(path).suffix.lower() not in AUDIO_ENCODERS:
        return {}
    return {"audio": audio, "sample_rate": sample_rate}


def write_samples(batches: Iterable[torch.Tensor], fps: float, grid: Path | None = None,
                  clip_path: Callable[[int], Path] | None = None, audio: torch.Tensor | None = None,
                  sample_rate: int = 0, nrow: int | None = None,
                  on_batch: Callable[[int], None] | None = None) -> Written:
    """Write clips as they come: ``clip_path(i)`` for clip ``i`` (None: no per-clip files) and, at the
    end, all of them tiled into ``grid`` (None: no grid, and nothing kept in memory).

    ``batches``: float ``[B, C, T, H, W]`` in ``[-1, 1]``; ``audio``: mono ``float32 [S]`` at
    ``sample_rate``, the soundtrack of every file that can carry one; ``nrow``: clips per grid row
    (default: a square); ``on_batch(clips_done)`` after each batch.

    Raises:
        DataError: a file that cannot be written (encoder failure, unsupported suffix).
    """
    return _write(((clips, None) for clips in batches), fps, grid, clip_path, audio, sample_rate, nrow, on_batch)


def write_av_samples(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], fps: float, grid: Path | None = None,
                     clip_path: Callable[[int], Path] | None = None, sample_rate: int = 0, nrow: int | None = None,
                     on_batch: Callable[[int], None] | None = None) -> Written:
    """:func:`write_samples` for clips with their own sound: ``batches`` of ``(clips [B, C, T, H, W], sounds
    float32 [B, S])``; each clip's file carries its sound, the grid the first clip's."""
    return _write(batches, fps, grid, clip_path, None, sample_rate, nrow, on_batch)


def _write(pairs, fps: float, grid: Path | None, clip_path: Callable[[int], Path] | None,
           audio: torch.Tensor | None, sample_rate: int, nrow: int | None,
           on_batch: Callable[[int], None] | None) -> Written:
    """``pairs`` of ``(clips, per-clip sounds or None)``; ``audio``: the sound of every file where there are none."""
    out, kept = Written(), []
    for clips, sounds in pairs:
        out.shape = tuple(clips.shape[2:])
        if audio is None and sounds is not None:
            audio = sounds[0]  # the grid's soundtrack: the first clip's
        if grid is not None:
            kept.append(clips)
        if clip_path is not None:
            for i, clip in enumerate(clips):
                path = clip_path(out.count)
                sound = audio if sounds is None else sounds[i]
                write_video(path, to_uint8(clip), fps=fps, **soundtrack_for(path, sound, sample_rate))
                out.clips.append(path)
                out.count += 1
        else:
            out.count += clips.shape[0]
        if on_batch is not None:
            on_batch(out.count)
    if grid is not None and kept:
        videos = torch.cat(kept)  # (N, C, T, H, W)
        nrow = nrow or int(math.ceil(math.sqrt(videos.shape[0])))
        out.grid = write_grid(grid, videos, nrow=nrow, fps=fps, **soundtrack_for(grid, audio, sample_rate))
    return out
