"""``videosynth demo``: train a small class-conditional generator on built-in data, write videos.

The demo is the toolkit end to end on a laptop CPU in minutes: procedural white bouncing shapes
(no download) -> a class-conditional generator on the shared loop -> a sample video per class, a
grid of all classes, the loss plot and weight-free motion metrics.

Which generator follows the family table (``benchmarks/families.py``, in the README): on this
data and 450 s of a 2-core CPU, latent flow matching (a KL autoencoder + a DiT, the flow recipe,
its tokenizer given a quarter of the time) scored above the two-stage VQ-VAE + autoregressive
Transformer on class accuracy, valid share, bounce correctness and FPD (medians of 2 seeds, one
calibrated run), so it is the default; ``--family``
trains another family's demo (``transformer``: the two-stage AR prior; ``videogan``: the 3D-conv
GAN). A two-stage demo trains its tokenizer first, into ``OUT/tokenizer``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from videosynth.errors import ConfigError

# The demo's data: white circles, squares and triangles bouncing on black, 32x32, 8 frames. One
# colour, so a small model's capacity goes to shape (the class) and motion, not colour.
DEMO_DATA = {"name": "bouncing-shapes", "colour": "white", "size": 32, "frames": 8, "object_size": 12,
             "num_objects": 1, "num_samples": 20000, "seed": 0}


@dataclass(frozen=True)
class Demo:
    """One family's demo: the run trained into ``--out`` and, for two-stage families, its tokenizer."""

    about: str
    config: dict
    tokenizer: dict | None = None  # trained first into OUT/tokenizer


DEMOS = {
    # a short tokenizer run, then most of the budget to the prior (the README gives the times)
    "transformer": Demo(
        "class-conditional VQ-VAE tokens + autoregressive Transformer on procedural bouncing shapes",
        tokenizer={
            "family": "vqvae", "model": {"preset": "shapes-32x32x8", "restart_after": 50}, "data": DEMO_DATA,
            "optim": {"lr": 1.0e-3},
            "train": {"steps": 800, "batch_size": 16, "seed": 0, "log_every": 20, "ckpt_every": 400,
                      "sample_every": 400, "num_samples": 8},
        },
        config={
            "family": "transformer", "model": {"preset": "shapes-32x32x8"}, "data": DEMO_DATA,
            "condition": {"kind": "class", "dim": 128, "dropout": 0.1},
            "optim": {"lr": 1.0e-3, "warmup_steps": 100}, "sample": {"top_k": 16, "guidance_scale": 2.0},
            "train": {"steps": 650, "batch_size": 32, "seed": 0, "log_every": 10, "ckpt_every": 325,
                      "sample_every": 325, "num_samples": 9},
        }),
    # a short KL tokenizer run, then the DiT (configs/flow/shapes-32x32x8.yaml's recipe, shorter)
    "flow": Demo(
        "class-conditional latent flow matching (KL autoencoder + DiT) on procedural bouncing shapes",
        tokenizer={
            "family": "vqvae", "data": DEMO_DATA, "optim": {"lr": 1.0e-3},
            "model": {"preset": "shapes-32x32x8", "bottleneck": "gaussian", "code_dim": 4, "kl_weight": 1.0e-4},
            "train": {"steps": 800, "batch_size": 16, "seed": 0, "log_every": 20, "ckpt_every": 400,
                      "sample_every": 400, "num_samples": 8},
        },
        config={
            "family": "flow", "model": {"preset": "demo-32x32x8"},
            "data": DEMO_DATA, "condition": {"kind": "class", "dim": 64, "dropout": 0.1},
            "optim": {"lr": 1.0e-3, "beta2": 0.95, "warmup_steps": 100, "decay_steps": 900},
            "sample": {"steps": 16, "solver": "heun", "guidance": 2.0},
            "train": {"steps": 3000, "batch_size": 16, "seed": 0, "log_every": 20, "ckpt_every": 1000,
                      "sample_every": 1000, "num_samples": 9, "ema_decay": 0.999, "grad_clip": 1.0},
        }),
    # a projection discriminator plus an AC-GAN class head, so the shapes follow the label; instance
    # noise keeps D from winning outright before G has learnt anything. G learns 5x faster than D
    # (at one rate for both its shapes rounded into blobs and some seeds missed), and mode seeking
    # charges it for making one clip per class whatever its noise
    "videogan": Demo(
        "class-conditional 3D-conv VideoGAN on procedural bouncing shapes",
        config={
            "family": "videogan", "model": {"preset": "demo-32x32x8"}, "data": DEMO_DATA,
            "condition": {"kind": "class", "dim": 32},
            "loss": {"kind": "non-saturating", "instance_noise": 0.1, "instance_noise_steps": 1000,
                     "aux_class_weight": 1.0, "mode_seeking": 0.2},
            "optim": {"lr_g": 1.0e-3},
            "train": {"steps": 2400, "batch_size": 16, "seed": 0, "log_every": 20, "ckpt_every": 800,
                      "sample_every": 800, "num_samples": 16, "ema_decay": 0.995},
        }),
}
DEFAULT_FAMILY = "flow"
TOKENIZER_DIR = "tokenizer"
VIDEOS_DIR = "videos"
METRICS_FILE = "demo-metrics.json"


def register(sub) -> None:
    p = sub.add_parser("demo", help="train a small conditional model on built-in data and write sample videos",
                       description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("--family", choices=list(DEMOS), default=DEFAULT_FAMILY,
                   help=f"which family's demo (default {DEFAULT_FAMILY}: the best samples in the family table)")
    p.add_argument("--steps", type=int, help="training steps of the generator (default: the family's demo)")
    p.add_argument("--tokenizer-steps", type=int, help="training steps of a two-stage demo's tokenizer")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the generator's config, e.g. --set train.batch_size=16 (data.* keys "
                        "go to the tokenizer too)")
    p.add_argument("--tokenizer-set", dest="tokenizer_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the tokenizer's config")
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (none are shown off a terminal anyway)")
    p.add_argument("--fresh", action="store_true", help="delete --out first if it exists")
    p.set_defaults(func=run)


def demo_run_entries(out: Path) -> list[Path]:
    """What ``--fresh`` deletes in ``out``: its entries, when ``out`` holds a demo run and nothing else.

    A demo run is judged by names: every entry of ``out`` (and of ``out/tokenizer``) is one a
    training or the demo writes (:data:`~videosynth.checkpoint.RUN_ENTRIES`, the videos, the
    metrics, temporary files), and a ``config.yaml`` or ``checkpoints/`` says a run was started.

    Raises:
        CheckpointError: ``out`` is a file, or a folder holding anything else (named): it is not deleted.
    """
    from videosynth.checkpoint import CONFIG_FILE, RUN_ENTRIES
    from videosynth.errors import CheckpointError
    from videosynth.io import is_temp

    if not out.is_dir() or out.is_symlink():
        raise CheckpointError(f"--fresh deletes a demo run folder, and {out} is not a folder; give --out a run "
                              "directory or a new folder")
    tok_dir = out / TOKENIZER_DIR
    folders = {out: RUN_ENTRIES | {TOKENIZER_DIR, VIDEOS_DIR, METRICS_FILE}}
    if tok_dir.is_dir() and not tok_dir.is_symlink():
        folders[tok_dir] = RUN_ENTRIES
    entries, foreign = [], []
    for folder, allowed in folders.items():
        for entry in folder.iterdir():
            (entries if entry.name in allowed or is_temp(entry) else foreign).append(entry)
    started = any((folder / name).exists() for folder in folders for name in (CONFIG_FILE, "checkpoints"))
    if foreign or (entries and not started):
        shown = ", ".join(str(p.relative_to(out)) for p in foreign[:3]) or ", ".join(p.name for p in entries[:3])
        raise CheckpointError(f"--fresh deletes only a videosynth demo run, and {out} is not one (it holds {shown}"
                              f"{', ...' if len(foreign) > 3 else ''}); nothing was deleted: give --out a new folder "
                              "or a demo run directory")
    return [p for p in entries if p.parent == out]


def has_checkpoints(run_dir: Path) -> bool:
    return (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())


def train_stage(config: dict, overrides: list[str], run_dir: Path, resume: bool, progress: bool = True) -> None:
    """Train (or continue) one stage of the demo; a finished stage is left as it is."""
    from videosynth.checkpoint import find_checkpoint
    from videosynth.errors import CheckpointError
    from videosynth.train.run import resolve_config, run_training

    if resume and has_checkpoints(run_dir):
        try:
            _, meta = find_checkpoint(run_dir)
        except CheckpointError:
            meta = {}
        loop = [o for o in overrides if o.startswith("train.")]  # what a resume may change
        steps = resolve_config(None, loop, run_dir).train.steps
        if int(meta.get("step", -1)) >= steps:
            print(f"{run_dir}: already trained ({steps} steps)", file=sys.stderr)
            return
        run_training(None, loop, resume=run_dir, progress=progress)
    else:
        run_training(config, overrides, run_dir, progress=progress)


def run(args: argparse.Namespace) -> int:
    import shutil

    import videosynth
    from videosynth.checkpoint import read_run_config
    from videosynth.errors import CheckpointError, Interrupted
    from videosynth.io import write_grid
    from videosynth.models.bottlenecks import canonical_name
    from videosynth.train.run_lock import LOCK_FILE, RunLock

    demo = DEMOS[args.family]
    out = Path(args.out)
    tok_dir = out / TOKENIZER_DIR
    common = [f"train.device={args.device}"]
    overrides = list(args.overrides) + common + ([f"train.steps={args.steps}"] if args.steps is not None else [])
    tok_overrides = [o for o in args.overrides if o.startswith("data.")] + list(args.tokenizer_overrides) + common
    if args.tokenizer_steps is not None:
        tok_overrides.append(f"train.steps={args.tokenizer_steps}")
    if demo.tokenizer is None and (args.tokenizer_overrides or args.tokenizer_steps is not None):
        raise ConfigError(f"the {args.family} demo has no tokenizer: drop --tokenizer-steps / --tokenizer-set")
    if args.fresh and (out.exists() or out.is_symlink()):
        demo_run_entries(out)  # refuses a folder that is not a demo run before the lock writes into it
        with RunLock(out):  # never delete a run another process is writing
            for child in demo_run_entries(out):
                if child.name != LOCK_FILE:
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    started = has_checkpoints(out) or has_checkpoints(tok_dir)
    if started and not args.resume:
        raise CheckpointError(f"{out} already holds a demo run: add --resume to continue it, --fresh to start over, or --out DIR")
    if started:  # a resume continues the same family's demo
        if (out / "config.yaml").is_file():
            have = read_run_config(out).get("family")
        else:  # stopped during the tokenizer: which demo's tokenizer is it?
            bottleneck = canonical_name(read_run_config(tok_dir).get("model", {}).get("bottleneck", "vq"))
            have = next((name for name, d in DEMOS.items() if d.tokenizer is not None
                         and canonical_name(d.tokenizer["model"].get("bottleneck", "vq")) == bottleneck), None)
        if have != args.family:
            raise ConfigError(f"{out} holds a {have} demo; continue it with --family {have} --resume, "
                              "or start over with --fresh")
    t0 = time.perf_counter()
    print(f"videosynth demo: {demo.about} (CPU is fine)", file=sys.stderr)
    try:
        if demo.tokenizer is not None:
            print(f"stage 1 of 2: the tokenizer, into {tok_dir}", file=sys.stderr)
            train_stage(copy.deepcopy(demo.tokenizer), tok_overrides, tok_dir, args.resume, not args.no_progress)
            print(f"stage 2 of 2: the {args.family} model over its latents, into {out}", file=sys.stderr)
            config = {**copy.deepcopy(demo.config), "tokenizer_run": str(tok_dir)}
        else:
            config = copy.deepcopy(demo.config)
        train_stage(config, overrides, out, args.resume, not args.no_progress)
    except Interrupted as exc:  # stopped by Ctrl-C / SIGTERM: the loop saved; don't sample a half-trained model
        raise Interrupted(f"demo interrupted at step {exc.step} (saved); continue with: videosynth demo --resume "
                          f"--family {args.family} --out {out}  (or: make demo ARGS=\"--resume --family {args.family}\")",
                          exc.exit_code, exc.step) from None
    minutes = (time.perf_counter() - t0) / 60

    # ---- one video per class, and a grid of all classes --------------------------------------
    pipe = videosynth.load(out, device=args.device)
    names = pipe.class_names
    per_class = 8
    videos_dir = out / VIDEOS_DIR
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
        (out / METRICS_FILE).write_text(json.dumps(scores, indent=2))

    stages = f"a tokenizer ({tok_dir}) and " if demo.tokenizer is not None else ""
    print(f"\ntrained {stages}{pipe.step} steps of {args.family} in {minutes:.1f} min; run directory: {out}")
    print(f"  videos per class : {', '.join(str(videos_dir / (n + '.mp4')) for n in names)}")
    print(f"  all classes      : {videos_dir / 'all-classes.mp4'} (and .gif)")
    print(f"  loss plot        : {out / 'loss.png'}")
    if (out / "tb").is_dir():
        print(f"  TensorBoard      : tensorboard --logdir {out}")
    print(f"  training samples : {out / 'samples'}")
    if scores:
        print(f"  weight-free metrics (generated vs real): {out / METRICS_FILE}")
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
