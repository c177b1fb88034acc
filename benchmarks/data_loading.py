"""Data-loading benchmark: random 16-frame clips from 320x240 H.264 files.

Compares, in one run and on the same files:

* ``loader``  -- :class:`videosynth.data.VideoFolder`: seek to the keyframe before the
  clip, decode forward to its last frame scaled to cover 64x64, crop; its reader keeps the
  (few) files open between clips, as a DataLoader worker does for recently read files;
* ``reopen``  -- the same, but every clip opens its file (a dataset of many files, where the
  next clip is rarely from a file still open);
* ``naive``   -- decode the whole video, slice the clip, same transform;
* ``raw``     -- PyAV sequential decode of whole files without conversion, one decoder
  thread as the loader's (the decoder's ceiling in frames/s).

The loader's efficiency is its rate through the files, frames read per second (packets
demuxed: each is one frame, decoded or, before a clip, skipped when no other frame needs
it), over the raw decode rate; frames actually decoded per second are reported beside it.

Each phase runs in a fresh process so its peak RSS (``ru_maxrss``) is its own;
the Python-heap peak (``tracemalloc``, includes numpy buffers) is reported too, from an
extra untimed pass (tracing slows the timed code unevenly).
The phases run ``--rounds`` times, interleaved (order reversed every other round), each
with ``--repeats`` passes; the rate ratios are taken within a round and their median
reported, so a busy machine slows both sides of a ratio alike.  Usage::

    python benchmarks/data_loading.py [--dir DIR] [--videos 6] [--seconds 12] [--clips 60] \\
        [--repeats 3] [--rounds 3] [--out benchmarks/results/data_loading.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 320, 240
FPS = 25
GOP_SECONDS = 2  # keyframe every 2 s, a common camera/export setting
CLIP_FRAMES = 16
CLIP_SIZE = 64
NUM_SQUARES = 4  # moving objects drawn over the scrolling texture
TEXTURE_CELL = 8  # pixels per random texture cell (smooth, compressible like real footage)


# ----------------------------------------------------------------------------- test media


def _make_video(path: Path, seconds: float, seed: int) -> None:
    """A scrolling smooth texture with moving coloured squares: realistic bit-rate, deterministic."""
    from videosynth import io

    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    cells = rng.integers(40, 200, (HEIGHT // TEXTURE_CELL + 2, 2 * WIDTH // TEXTURE_CELL + 2, 3), dtype=np.uint8)
    texture = np.kron(cells, np.ones((TEXTURE_CELL, TEXTURE_CELL, 1), np.uint8))  # (H', 2W', 3)
    pos = rng.uniform(0, [WIDTH - 40, HEIGHT - 40], (NUM_SQUARES, 2))
    vel = rng.uniform(-4, 4, (NUM_SQUARES, 2))
    colours = rng.integers(0, 256, (NUM_SQUARES, 3))
    frames = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(n):
        shift = t % WIDTH
        frames[t] = texture[:HEIGHT, shift:shift + WIDTH]
        for (x, y), c in zip((pos + vel * t) % [WIDTH - 40, HEIGHT - 40], colours):
            frames[t, int(y):int(y) + 40, int(x):int(x) + 40] = c
    io.write_video(path, frames, fps=FPS, options={"g": str(GOP_SECONDS * FPS)})


def make_videos(folder: Path, count: int, seconds: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"clip{i:03d}.mp4"
        if not path.exists():
            _make_video(path, seconds, seed=i)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- phases (child processes)


def _phase_loader(folder: str, clips: int, repeats: int, cache: str, reopen: bool = False) -> dict:
    from videosynth.data import VideoFolder
    from videosynth.io import video_read

    decoded, read = [0], [0]
    original = video_read._decode_indices

    def counting(*args, **kwargs):  # count the frames the loader reads and those it decodes
        out, n, packets = original(*args, **kwargs)
        decoded[0] += n  # B-frames before the clip that were skipped are not counted
        read[0] += packets
        return out, n, packets

    video_read._decode_indices = counting
    ds = VideoFolder(folder, frames=CLIP_FRAMES, size=CLIP_SIZE, split="all", cache_dir=cache, progress=False)
    rng = np.random.default_rng(0)
    rates, read_rates, decode_rates, per_clip = [], [], [], []
    for r in range(repeats):
        ds.set_epoch(r)
        order = rng.integers(0, len(ds), clips)
        decoded[0] = read[0] = 0
        t0 = time.perf_counter()
        for i in order:
            if reopen:
                ds._reader.close()
            ds[int(i)]
        dt = time.perf_counter() - t0
        rates.append(clips / dt)
        read_rates.append(read[0] / dt)
        decode_rates.append(decoded[0] / dt)
        per_clip.append(decoded[0] / clips)
    return {"clips_per_s": rates, "read_frames_per_s": read_rates, "decoded_frames_per_s": decode_rates,
            "decoded_frames_per_clip": per_clip}


def _phase_reopen(folder: str, clips: int, repeats: int, cache: str) -> dict:
    return _phase_loader(folder, clips, repeats, cache, reopen=True)


def _phase_naive(folder: str, clips: int, repeats: int, cache: str) -> dict:
    import torch

    from videosynth import io
    from videosynth.data.transforms import ClipTransform

    paths = sorted(Path(folder).glob("*.mp4"))
    transform = ClipTransform(CLIP_SIZE, crop="random")
    rng = np.random.default_rng(0)
    rates = []
    for r in range(repeats):
        order = rng.integers(0, len(paths), clips)
        g = torch.Generator().manual_seed(r)
        t0 = time.perf_counter()
        for i in order:
            frames = io.read_all(paths[int(i)])  # (N, H, W, 3): every frame decoded and converted
            start = int(rng.integers(0, len(frames) - CLIP_FRAMES + 1))
            transform(frames[start:start + CLIP_FRAMES], g)
        rates.append(clips / (time.perf_counter() - t0))
    return {"clips_per_s": rates, "decoded_frames_per_clip": [float(len(frames))]}


def _phase_raw(folder: str, clips: int, repeats: int, cache: str) -> dict:
    import av

    paths = sorted(Path(folder).glob("*.mp4"))
    rates = []
    for _ in range(repeats):
        n = 0
        t0 = time.perf_counter()
        for p in paths:
            with av.open(str(p)) as container:
                container.streams.video[0].codec_context.thread_count = 1  # as the loader's decoders
                for _frame in container.decode(video=0):
                    n += 1
        rates.append(n / (time.perf_counter() - t0))
    return {"read_frames_per_s": rates, "decoded_frames_per_s": rates}


PHASES = {"loader": _phase_loader, "reopen": _phase_reopen, "naive": _phase_naive, "raw": _phase_raw}


def _child(name: str, args: tuple, queue) -> None:
    import torch

    torch.set_num_threads(1)  # one core per phase: the numbers compare decoding, not thread counts
    result = PHASES[name](*args)
    # the heap peak from one more pass: tracing every allocation slows Python-heavy phases (the loader
    # ~20 %, raw decoding hardly), so it stays out of the timed passes
    folder, clips, _, cache = args
    tracemalloc.start()
    PHASES[name](folder, clips, 1, cache)
    result["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    queue.put(result)


def run_phase(name: str, *args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="folder for the test videos (kept); default: a temporary folder")
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--clips", type=int, default=60, help="random clips per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all phases")
    parser.add_argument("--out", default="benchmarks/results/data_loading.json")
    args = parser.parse_args(argv)

    results: dict[str, dict[str, list]] = {name: {} for name in PHASES}
    ratios: dict[str, list[float]] = {"loader": [], "reopen": []}  # frames read/s over raw, within each round
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir) if args.dir else Path(tmp) / "videos"
        t0 = time.perf_counter()
        paths = make_videos(folder, args.videos, args.seconds)
        print(f"{len(paths)} videos of {args.seconds:g} s, {WIDTH}x{HEIGHT} H.264 @ {FPS} fps, keyframe every "
              f"{GOP_SECONDS} s, in {folder} ({time.perf_counter() - t0:.1f} s to write)", file=sys.stderr)
        cache = str(Path(tmp) / "cache")
        for r in range(args.rounds):
            names = list(PHASES) if r % 2 == 0 else list(PHASES)[::-1]
            this_round = {name: run_phase(name, str(folder), args.clips, args.repeats, cache) for name in names}
            raw_rate = statistics.median(this_round["raw"]["read_frames_per_s"])
            for name in ratios:
                ratios[name].append(statistics.median(this_round[name]["read_frames_per_s"]) / raw_rate)
            for name, res in this_round.items():
                for k, v in res.items():
                    results[name].setdefault(k, []).extend(v if isinstance(v, list) else [v])

    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}
    loader, reopen, naive, raw = med["loader"], med["reopen"], med["naive"], med["raw"]
    speedup = loader["clips_per_s"] / naive["clips_per_s"]
    ratio = {name: statistics.median(v) for name, v in ratios.items()}
    rows = [
        ("loader (open files reused, seek + decode)", loader, f"{ratio['loader']:.2f}"),
        ("loader, every clip opens its file", reopen, f"{ratio['reopen']:.2f}"),
        ("naive (decode all, slice, transform)", naive, "-"),
        ("raw PyAV sequential decode (ceiling)", raw, "1"),
    ]
    print(f"\n{'phase':44s} {'clips/s':>8s} {'read fr/s':>10s} {'/ raw':>6s} {'dec fr/s':>9s} {'dec/clip':>9s} "
          f"{'RSS MB':>7s} {'heap MB':>8s}")
    for label, m, rel in rows:
        clips = f"{m['clips_per_s']:.1f}" if "clips_per_s" in m else "-"
        rd = f"{m['read_frames_per_s']:.0f}" if "read_frames_per_s" in m else "-"
        dec = f"{m['decoded_frames_per_s']:.0f}" if "decoded_frames_per_s" in m else "-"
        per = f"{m['decoded_frames_per_clip']:.1f}" if "decoded_frames_per_clip" in m else "-"
        print(f"{label:44s} {clips:>8s} {rd:>10s} {rel:>6s} {dec:>9s} {per:>9s} {m['max_rss_mb']:7.0f} "
              f"{m['tracemalloc_peak_mb']:8.1f}")
    print(f"\nloader / naive: {speedup:.1f}x clips/s (target >= 3x); loader frames read/s over raw decode: "
          f"{ratio['loader']:.2f} (target >= 0.80), {ratio['reopen']:.2f} when every clip opens its file; "
          f"medians of {args.rounds} interleaved rounds")

    report = {
        "setup": {"videos": args.videos, "seconds": args.seconds, "width": WIDTH, "height": HEIGHT, "fps": FPS,
                  "gop_frames": GOP_SECONDS * FPS, "clip_frames": CLIP_FRAMES, "clip_size": CLIP_SIZE,
                  "clips_per_repeat": args.clips, "repeats": args.repeats, "rounds": args.rounds,
                  "torch_threads": 1, "python": platform.python_version(), "machine": platform.machine()},
        "median": med, "raw": results, "speedup_loader_over_naive": speedup,
        "read_rate_over_raw": ratio, "read_rate_over_raw_per_round": ratios,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
