"""Audio-reading benchmark: the sound under a random 16-frame clip against the clip's frames.

On the same 320x240 H.264 + AAC files (written here, deterministic), for the same random clip
starts, in interleaved rounds:

* ``frames`` -- :func:`videosynth.io.read_clip`: open the file, seek to the keyframe before the
  clip, decode to its last frame;
* ``audio``  -- :func:`videosynth.io.read_clip_audio`: open the file again, seek near the clip's
  start, decode and resample its window to mono 16 kHz;
* ``reader`` -- how :class:`videosynth.data.VideoFolder` reads a clip with its sound: a
  :class:`videosynth.io.VideoReader` that has no file open (as for a clip of a large dataset)
  reads the frames (scaled while converting to just cover 64x64, as ``data.size: 64`` reads
  them), then the sound from the container the frames opened. Its frame and sound
  times are taken apart.

Reports the median time per clip of each and the sound/frames ratio of both ways (target: the
reader's sound <= 20 % of its frames) as a table and JSON. Usage::

    python benchmarks/audio_io.py [--videos 4] [--seconds 12] [--clips 40] [--rounds 5] \\
        [--out benchmarks/results/audio_io.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS = 320, 240, 25
CLIP_FRAMES = 16
CLIP_SIZE = 64  # VideoFolder's default data.size: it decodes frames scaled to just cover it
RATE = 16000  # the rate clips' sound is read at
SOURCE_RATE = 44100  # the files' own rate (so reading resamples, as for real videos)
TARGET = 0.20


def make_video(path: Path, seconds: float, seed: int) -> None:
    """Smooth moving texture with a chord and clicks as its soundtrack (stereo-free AAC at 44.1 kHz)."""
    from videosynth import io

    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    base = rng.integers(0, 255, (HEIGHT // 8 + 2, WIDTH // 8 + 2, 3), dtype=np.uint8)
    texture = np.kron(base, np.ones((8, 8, 1), np.uint8))
    frames = np.stack([texture[t % 8:t % 8 + HEIGHT, (2 * t) % 8:(2 * t) % 8 + WIDTH] for t in range(n)])
    t = np.arange(int(seconds * SOURCE_RATE)) / SOURCE_RATE
    sound = 0.2 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 330 * t))
    sound[::SOURCE_RATE // 3] += 0.5  # clicks three times a second
    io.write_video(path, frames, fps=FPS, audio=sound.astype(np.float32), sample_rate=SOURCE_RATE,
                   options={"g": str(2 * FPS)})


def main(argv: list[str] | None = None) -> int:
    import torch

    from videosynth import io
    from videosynth.data.transforms import cover_size

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--clips", type=int, default=40, help="clips per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/audio_io.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"v{i}.mp4" for i in range(args.videos)]
        for i, path in enumerate(paths):
            make_video(path, args.seconds, i)
        infos = [io.probe(path) for path in paths]
        rng = np.random.default_rng(0)
        times = {"frames": [], "audio": [], "reader_frames": [], "reader_audio": []}
        for r in range(args.rounds):
            picks = [(int(rng.integers(len(paths))), None) for _ in range(args.clips)]
            picks = [(v, int(rng.integers(0, infos[v].num_frames - CLIP_FRAMES))) for v, _ in picks]
            order = ("frames", "audio", "reader") if r % 2 == 0 else ("reader", "audio", "frames")  # interleaved
            for kind in order:
                if kind == "reader":
                    spent = [0.0, 0.0]
                    for v, first in picks:
                        reader = io.VideoReader()
                        t0 = time.perf_counter()
                        reader.read_clip(paths[v], first, CLIP_FRAMES, size=cover_size(HEIGHT, WIDTH, CLIP_SIZE))
                        t1 = time.perf_counter()
                        reader.read_audio(paths[v], RATE, *io.clip_window(first, CLIP_FRAMES, 1, infos[v].fps))
                        spent[0] += t1 - t0
                        spent[1] += time.perf_counter() - t1
                        reader.close()
                    times["reader_frames"].append(spent[0] / args.clips)
                    times["reader_audio"].append(spent[1] / args.clips)
                    continue
                start = time.perf_counter()
                for v, first in picks:
                    if kind == "frames":
                        io.read_clip(paths[v], first, CLIP_FRAMES)
                    else:
                        io.read_clip_audio(paths[v], first, CLIP_FRAMES, 1, infos[v].fps, RATE)
                times[kind].append((time.perf_counter() - start) / args.clips)
    ms = {kind: statistics.median(v) * 1000 for kind, v in times.items()}
    old_ratio = ms["audio"] / ms["frames"]
    ratio = ms["reader_audio"] / ms["reader_frames"]
    print(f"random {CLIP_FRAMES}-frame clips of {WIDTH}x{HEIGHT} H.264 + AAC {SOURCE_RATE} Hz, {args.rounds} "
          f"interleaved rounds of {args.clips}, median per clip")
    print(f"{'read':52s}{'ms / clip':>10s}{'sound / frames':>16s}")
    print(f"{'frames (read_clip, opens the file)':52s}{ms['frames']:10.2f}")
    print(f"{'sound (read_clip_audio, opens the file again)':52s}{ms['audio']:10.2f}{old_ratio:16.3f}")
    print(f"{'frames (VideoReader, opens the file)':52s}{ms['reader_frames']:10.2f}")
    print(f"{'sound (VideoReader, the container the frames opened)':52s}{ms['reader_audio']:10.2f}{ratio:16.3f}")
    print(f"sound / frames as VideoFolder reads them: {ratio:.3f}, target <= {TARGET:.2f}: "
          f"{'met' if ratio <= TARGET else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"ms": ms, "ratio": ratio, "ratio_reopening": old_ratio, "target": TARGET,
                               "rounds": {k: [round(v * 1000, 3) for v in vals] for k, vals in times.items()},
                               "settings": vars(args), "python": sys.version.split()[0],
                               "machine": platform.machine()}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
