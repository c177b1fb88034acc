"""Peak memory of ``videosynth sample`` as ``--num`` grows: streamed per-clip files vs one grid.

Each measurement is a fresh ``videosynth sample`` process; its peak resident set size comes
from ``os.wait4`` (the kernel's ``ru_maxrss`` of that one child). ``--each --no-grid`` streams
clips to disk batch by batch, so its peak should not grow with ``--num``; the grid path holds
every clip (and the tiled grid) at once and is shown beside it for comparison, up to the grid
limit. Rounds are interleaved; the table shows medians.

    python benchmarks/sample_memory.py RUN_DIR [--nums 64 1024] [--rounds 2] [--json out.json]

Without RUN_DIR the tiny VideoGAN run of the test fixtures is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIXTURE_RUN = Path(__file__).parents[1] / "tests" / "fixtures" / "runs-v0" / "videogan"
GRID_LIMIT = 256  # videosynth.commands.sample.MAX_GRID_CLIPS


def measure(run: Path, num: int, streamed: bool, batch_size: int) -> dict:
    """Peak RSS (MB) and wall time of one ``videosynth sample`` process."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "videosynth.cli", "sample", str(run), "--num", str(num),
                "--batch-size", str(batch_size), "--out", str(Path(tmp) / "s.mp4")]
        if streamed:
            args += ["--each", "--no-grid"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err = proc.stderr.read().decode()
        proc.stderr.close()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"sample failed: {err.strip()[-500:]}")
        files = len(list(Path(tmp).iterdir()))
    return {"num": num, "mode": "streamed (--each --no-grid)" if streamed else "grid", "peak_rss_mb":
            usage.ru_maxrss / 1024, "wall_s": wall, "files": files}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", default=str(FIXTURE_RUN))
    p.add_argument("--nums", type=int, nargs="+", default=[64, 1024])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", default="benchmarks/results/sample_memory.json")
    args = p.parse_args()
    cases = [(n, True) for n in args.nums] + [(n, False) for n in args.nums if n <= GRID_LIMIT]
    rows: dict[tuple, list[dict]] = {c: [] for c in cases}
    for _ in range(args.rounds):  # interleaved rounds
        for num, streamed in cases:
            rows[(num, streamed)].append(measure(Path(args.run), num, streamed, args.batch_size))
    table = []
    for (num, streamed), runs in rows.items():
        table.append({**runs[0], "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
                      "wall_s": statistics.median(r["wall_s"] for r in runs), "rounds": len(runs)})
    print(f"{'mode':<28} {'--num':>7} {'peak RSS MB':>12} {'wall s':>8} {'files':>6}")
    for r in table:
        print(f"{r['mode']:<28} {r['num']:>7} {r['peak_rss_mb']:>12.0f} {r['wall_s']:>8.1f} {r['files']:>6}")
    streamed = sorted((r for r in table if r["mode"].startswith("streamed")), key=lambda r: r["num"])
    if len(streamed) >= 2:
        growth = streamed[-1]["peak_rss_mb"] / streamed[0]["peak_rss_mb"]
        print(f"streamed peak RSS at --num {streamed[-1]['num']} / at --num {streamed[0]['num']}: {growth:.2f}x")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"run": args.run, "batch_size": args.batch_size, "machine": platform.platform(),
                               "python": platform.python_version(), "rows": table}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
