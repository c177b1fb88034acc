"""Scan benchmark: probing a folder of N small videos, in this process against a pool of workers.

Writes a few tiny H.264 files (64x48, 2 s) and copies them under N distinct names in class
folders, plus a few broken files (one in a hundred: noise, empty, truncated), then times
:func:`videosynth.data.scan.scan` without its cache, serial (``workers=1``) and parallel
(``workers`` = the CPU count, or ``--workers``), in interleaved repeats.  Each scan really
opens every file (probe + first and last frame).  Checks that both find the same entries and
broken files, and reports the median seconds, files/s, CPU seconds (this process and its
workers: equal CPU and a speedup short of the worker count mean the cores were busy with other
work) and the speedup as a table and JSON.
Usage::

    python benchmarks/scan.py [--files 10000] [--workers N] [--repeats 2] [--dir DIR] \\
        [--out benchmarks/results/scan.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SOURCES = 4  # distinct tiny videos the copies are made of
CLASSES = 10  # class folders the copies are spread over
BROKEN_EVERY = 100  # one broken file per this many
WIDTH, HEIGHT, FPS, SECONDS = 64, 48, 10, 2.0
MIN_FRAMES = 16  # the clip length the scan checks for


def make_folder(root: Path, files: int) -> int:
    """``files`` videos under ``root``: copies of ``SOURCES`` tiny ones, every ``BROKEN_EVERY``-th broken.

    Returns the number of broken files written.
    """
    from videosynth import io

    sources = []
    for s in range(SOURCES):
        rng = np.random.default_rng(s)
        frames = rng.integers(0, 256, (int(SECONDS * FPS), HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
        frames = np.kron(frames, np.ones((1, 8, 8, 1), np.uint8))  # (T, H, W, 3) blocky, compressible
        sources.append(io.write_video(root / f".source{s}.mp4", frames, fps=FPS))
    data = sources[0].read_bytes()
    broken_kinds = [b"", np.random.default_rng(0).bytes(4096), data[: len(data) // 2]]  # empty, noise, truncated
    broken = 0
    for i in range(files):
        folder = root / f"class{i % CLASSES:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"video{i:05d}.mp4"
        if i % BROKEN_EVERY == BROKEN_EVERY - 1:
            path.write_bytes(broken_kinds[broken % len(broken_kinds)])
            broken += 1
        else:
            shutil.copyfile(sources[i % SOURCES], path)
    for source in sources:
        source.unlink()
    return broken


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the scan's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_scan(root: Path, workers: int):
    """``(wall seconds, CPU seconds, result)`` of one uncached scan."""
    from videosynth.data.scan import scan

    t0, c0 = time.perf_counter(), _cpu_seconds()
    result = scan(root, min_frames=MIN_FRAMES, use_cache=False, progress=False, quiet=True, workers=workers)
    return time.perf_counter() - t0, _cpu_seconds() - c0, result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=10000)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes of the parallel scan")
    p.add_argument("--repeats", type=int, default=2, help="interleaved repeats of each scan")
    p.add_argument("--dir", help="folder for the test files (kept, reused when it holds them); default: temporary")
    p.add_argument("--out", default="benchmarks/results/scan.json")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.dir) if args.dir else Path(tmp) / "videos"
        marker = root / f".made-{args.files}"
        t0 = time.perf_counter()
        if not marker.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            marker.write_text(str(make_folder(root, args.files)))
        broken = int(marker.read_text())
        print(f"{args.files} files ({broken} broken) of {WIDTH}x{HEIGHT} H.264, {SECONDS:g} s, in {root} "
              f"({time.perf_counter() - t0:.1f} s to write)", file=sys.stderr)
        seconds: dict[str, list[float]] = {"serial": [], "parallel": []}
        cpu: dict[str, list[float]] = {"serial": [], "parallel": []}
        results = {}
        for r in range(args.repeats):
            order = ("serial", "parallel") if r % 2 == 0 else ("parallel", "serial")
            for kind in order:
                dt, busy, results[kind] = timed_scan(root, 1 if kind == "serial" else args.workers)
                seconds[kind].append(dt)
                cpu[kind].append(busy)
                print(f"  {kind}: {dt:.1f} s, {busy:.1f} CPU s, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    same = (results["serial"].entries == results["parallel"].entries
            and results["serial"].broken == results["parallel"].broken)
    med = {kind: statistics.median(v) for kind, v in seconds.items()}
    med_cpu = {kind: statistics.median(v) for kind, v in cpu.items()}
    speedup = med["serial"] / med["parallel"]
    print(f"\nscan of {args.files} files (probe + first/last frame each, no cache), median of {args.repeats}")
    print(f"{'scan':24s}{'workers':>8s}{'seconds':>9s}{'files/s':>9s}{'CPU s':>8s}")
    for kind, workers in (("serial", 1), ("parallel", args.workers)):
        print(f"{kind:24s}{workers:8d}{med[kind]:9.1f}{args.files / med[kind]:9.0f}{med_cpu[kind]:8.1f}")
    # equal CPU seconds and a speedup short of the worker count: the cores were busy with other work
    print(f"speedup {speedup:.2f}x on {os.cpu_count()} CPUs; {len(results['parallel'].entries)} usable, "
          f"{len(results['parallel'].broken)} broken; parallel == serial: {same}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"files": args.files, "broken": broken, "workers": args.workers,
                               "cpus": os.cpu_count(), "median_s": med, "seconds": seconds, "median_cpu_s": med_cpu,
                               "cpu_seconds": cpu, "speedup": speedup,
                               "same_result": same, "python": platform.python_version(),
                               "machine": platform.machine()}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
