"""``videosynth demo``: train a small class-conditional VideoGAN on built-in data, write videos.

The demo is the toolkit end to end on a laptop CPU in minutes: procedural white bouncing shapes
(no download) -> class-conditional 3D-conv GAN (projection discriminator plus an AC-GAN class
head) on the shared loop -> a sample video per class, a grid of all classes, the loss plot and
(where available) weight-free motion metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# The demo run config: about 8 minutes on an idle 2-core CPU (~5.2 steps/s), sampling included.
# White shapes: with a random colour per object, 2400 steps gave single-colour blobs whose shape
# did not follow the class; with one colour the generator's capacity goes to shape and motion.
# The AC-GAN class head then makes the shapes follow the label (circle/square/triangle).
DEMO_CONFIG = {
    "family": "videogan",
    "model": {"preset": "demo-32x32x8"},
    "data": {"name": "bouncing-shapes", "colour": "white", "size": 32, "frames": 8, "object_size": 12,
             "num_objects": 1, "num_samples": 20000, "seed": 0},
    "condition": {"kind": "class", "dim": 32},
    # instance noise keeps the discriminator from winning outright in the first few hundred steps
    "loss": {"kind": "non-saturating", "instance_noise": 0.1, "instance_noise_steps": 1000,
             "aux_class_weight": 1.0},
    "train": {
        "steps": 2400,
        "batch_size": 16,
        "seed": 0,
        "log_every": 20,
        "ckpt_every": 800,
        "sample_every": 800,
        "num_samples": 16,
        "ema_decay": 0.995,
    },
}


def register(sub) -> None:
    p = sub.add_parser("demo", help="train a small conditional model on built-in data and write sample videos",
                       description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("--steps", type=int, help=f"training steps (default {DEMO_CONFIG['train']['steps']})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a demo config key, e.g. --set train.batch_size=16")
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo run in --out")
    p.add_argument("--fresh", action="store_true", help="delete --out first if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil

    import videosynth
    from videosynth.errors import CheckpointError, Interrupted
    from videosynth.train.run_lock import LOCK_FILE, RunLock
    from videosynth.io import write_grid
    from videosynth.train.run import run_training

    out = Path(args.out)
    overrides = list(args.overrides) + [f"train.device={args.device}"]
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.fresh and out.exists():
        with RunLock(out):  # never delete a run another process is writing
            for child in out.iterdir():
                if child.name != LOCK_FILE:
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    has_ckpt = (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir())
    if has_ckpt and not args.resume:
        raise CheckpointError(f"{out} already holds a demo run: add --resume to continue it, --fresh to start over, or --out DIR")
    t0 = time.perf_counter()
    print("videosynth demo: class-conditional VideoGAN on procedural bouncing shapes (CPU is fine)", file=sys.stderr)
    try:
        if args.resume and has_ckpt:
            run_training(None, [o for o in overrides if o.startswith("train.")], resume=out)
        else:
            run_training(DEMO_CONFIG, overrides, out)
    except Interrupted as exc:  # stopped by Ctrl-C / SIGTERM: the loop saved; don't sample a half-trained model
        raise Interrupted(f"demo interrupted at step {exc.step} (saved); continue with: videosynth demo --resume "
                          f"--out {out}  (or: make demo ARGS=--resume)", exc.exit_code, exc.step) from None
    minutes = (time.perf_counter() - t0) / 60

    # ---- one video per class, and a grid of all classes --------------------------------------
    pipe = videosynth.load(out, device=args.device)
    names = pipe.class_names
    per_class = 8
    videos_dir = out / "videos"
    videos_dir.mkdir(exist_ok=True)
    written = []
    for index, name in enumerate(names):
        clips = pipe(per_class, seed=index, label=index)
        for suffix in (".mp4", ".gif"):
            path = videos_dir / f"{name}{suffix}"
            write_grid(path, clips, nrow=4, fps=8)
            written.append(path)
    grid = pipe(4 * len(names), seed=100)  # clip i has class i mod K: columns are classes
    write_grid(videos_dir / "all-classes.mp4", grid, nrow=len(names), fps=8)
    write_grid(videos_dir / "all-classes.gif", grid, nrow=len(names), fps=8)
    written += [videos_dir / "all-classes.mp4", videos_dir / "all-classes.gif"]

    # ---- weight-free metrics on the built-in data, where the metrics module provides them ----
    scores = _weight_free_scores(pipe)
    if scores:
        (out / "demo-metrics.json").write_text(json.dumps(scores, indent=2))

    print(f"\ntrained {pipe.step} steps in {minutes:.1f} min; run directory: {out}")
    print(f"  videos per class : {', '.join(str(videos_dir / (n + '.mp4')) for n in names)}")
    print(f"  all classes      : {videos_dir / 'all-classes.mp4'} (and .gif)")
    print(f"  loss plot        : {out / 'loss.png'}")
    print(f"  training samples : {out / 'samples'}")
    if scores:
        print(f"  weight-free metrics (generated vs real): {out / 'demo-metrics.json'}")
        for key, value in scores.items():
            if isinstance(value, (int, float)):
                print(f"    {key}: {value:.4g}")
    print(f"more samples: videosynth sample {out} --label {names[0] if names else 0} --out samples.mp4")
    return 0


def _weight_free_scores(pipe) -> dict:
    from videosynth.metrics import evaluate_during_training

    def gen(n, generator):
        return pipe(n, seed=int(generator.initial_seed()))

    return evaluate_during_training(gen, pipe.data.name, 64, 0, data_config=pipe.data)
