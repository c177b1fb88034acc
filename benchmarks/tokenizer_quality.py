"""Tokenizer quality per CPU-second: validation PSNR / SSIM after a fixed training budget.

Each tokenizer trains on the same built-in clips (coloured bouncing shapes, 16 frames of
64x64, one object) with Adam at 3e-4 and batch 4, for the same budget of training time (the
forward, backward and optimiser step; drawing the batch and evaluating are not counted), then
reconstructs the same held-out clips. Every tokenizer runs in its own fresh process, one after
another, so they do not share cores; run it on an idle machine (``--clock cpu`` counts the
process's CPU seconds per thread instead of wall seconds, steadier on a busy one).

Tokenizers (``--models``), all at the same hyper-parameters (hidden 64, 2 residual blocks,
512 codes of dim 64, downsampling 4x4x4) unless named after a preset:

- ``vq``: our VQ-VAE in its default layout (downsampling straight from RGB);
- ``vq-full``: the same in the ``full`` layout (64 channels at full resolution; runs made
  before layouts existed);
- ``vq-narrow``: the default layout with 32 channels at the half-resolution level;
- ``fsq``: finite scalar quantisation to levels [8, 8, 8] (512 codes);
- ``kl``: the continuous (KL) bottleneck with 8 latent channels (not discrete: no codes);
- ``preset:NAME``: a preset of :data:`videosynth.models.vqvae.PRESETS` as it is;
- ``videogpt``: VideoGPT's own VQ-VAE (with ``--videogpt PATH``, a checkout of its public
  repository; see ``benchmarks/videogpt_peer.py``), trained with its own loss (MSE / 0.06 +
  commitment) on the same clips scaled to its [-0.5, 0.5] range.

``--real DIR``: real footage instead -- a folder of videos with ``train/`` and ``val/`` subfolders
(the val videos held out: their clips are never trained on): ``--train-clips`` random clips drawn
from the training videos (spread evenly over them), and ``--val-clips`` clips spread evenly from the
start to the end of each held-out video, all cut to 16 frames of 64x64 as the folder recipe
(``configs/vqvae/folder-kl-64x64x16.yaml``) cuts them. ``benchmarks/own_videos.py`` builds such a folder.

PSNR and SSIM are :mod:`videosynth.metrics.recon`'s, on clips in [-1, 1] (VideoGPT's
reconstructions are scaled back), in eval mode, at 50 % and 100 % of the budget.

    python benchmarks/tokenizer_quality.py --videogpt /path/to/VideoGPT           # 150 s each
    python benchmarks/tokenizer_quality.py --budget 20 --models vq fsq --json /tmp/tq.json
    python benchmarks/tokenizer_quality.py --real /tmp/own/videos --models kl vq videogpt --videogpt PATH \
        --clock cpu --json benchmarks/results/tokenizer_quality-real.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import videogpt_peer  # noqa: E402 — beside this script

FRAMES, SIZE = videogpt_peer.FRAMES, videogpt_peer.SIZE
BATCH, LR = 4, 3e-4
MODELS = ("vq", "vq-full", "vq-narrow", "fsq", "kl", "videogpt")
EVAL_AT = (0.5, 1.0)  # shares of the budget at which the validation clips are reconstructed
KIB_PER_MB = 1024


def clips(n: int, split: str, seed: int) -> torch.Tensor:
    """``n`` built-in clips ``uint8 [n, 3, T, H, W]`` (stored small; scaled to [-1, 1] per batch)."""
    from videosynth.data.synthetic import BouncingShapes

    return clips_of(BouncingShapes(num_samples=n, frames=FRAMES, size=SIZE, seed=seed, split=split), n)


def real_clips(root: str, n: int, split: str, seed: int) -> torch.Tensor:
    """``n`` clips ``uint8 [n, 3, T, H, W]`` of the videos under ``root/<split>``: random ones of the training
    videos (each video's share alike), or ones spread evenly over each held-out video (``val``)."""
    from videosynth.data import DataConfig, build_dataset

    videos = len(build_dataset(DataConfig(name="folder", root=root, frames=FRAMES, size=SIZE), split))
    per_video = -(-n // videos)  # ceil: item i is video i % videos, so the first n items share them out
    cfg = DataConfig(name="folder", root=root, frames=FRAMES, size=SIZE, seed=seed, clips_per_video=per_video)
    return clips_of(build_dataset(cfg, split), n)


def clips_of(dataset, n: int) -> torch.Tensor:
    """The first ``n`` clips of ``dataset`` (items ``{"video": float32 [3, T, H, W] in [-1, 1]}``) as
    ``uint8 [n, 3, T, H, W]``."""
    return torch.stack([((dataset[i]["video"] + 1) * 127.5).round().to(torch.uint8) for i in range(n)])


def to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1  # (B, 3, T, H, W) in [-1, 1]


def build(name: str, videogpt: str | None):
    """``(model, loss(x), reconstruct(x))`` for clips ``x`` in [-1, 1]."""
    if name == "videogpt":
        if not videogpt:
            raise SystemExit("model videogpt needs --videogpt PATH (a checkout of github.com/wilson1yan/VideoGPT)")
        model = videogpt_peer.vqvae(videogpt_peer.load(videogpt))

        def loss(x):
            recon_loss, _, out = model(x / 2)  # its range is [-0.5, 0.5]
            return recon_loss + out["commitment_loss"]

        return model, loss, lambda x: model(x / 2)[1] * 2

    from videosynth.models.vqvae import PRESETS, VQVAE, VQVAEConfig

    if name.startswith("preset:"):
        cfg = PRESETS[name.split(":", 1)[1]]
    else:
        extra = {"vq": {}, "vq-full": {"layout": "full"}, "vq-narrow": {"level_channels": [32]},
                 "fsq": {"bottleneck": "fsq", "levels": [8, 8, 8]},
                 "kl": {"bottleneck": "continuous", "code_dim": 8}}
        if name not in extra:
            raise SystemExit(f"unknown model {name!r}: use one of {list(MODELS)} or preset:NAME")
        cfg = VQVAEConfig(**{**videogpt_peer.SHARED_VQVAE, **extra[name]})
    model = VQVAE(cfg)
    return model, lambda x: model(x).loss, lambda x: model(x).recon


@torch.no_grad()
def evaluate(model, reconstruct, val: torch.Tensor) -> dict:
    from videosynth.metrics.recon import psnr, ssim

    model.eval()
    p, s = [], []
    for i in range(0, len(val), 8):
        x = to_float(val[i:i + 8])
        r = reconstruct(x).float().clamp(-1, 1)
        p.append(psnr(r, x))
        s.append(ssim(r, x))
    model.train()
    return {"psnr": float(torch.cat(p).mean()), "ssim": float(torch.cat(s).mean())}


def worker(name: str, args) -> dict:
    torch.set_num_threads(args.threads)
    if args.real:
        train, val = (real_clips(args.real, n, split, args.seed)
                      for n, split in ((args.train_clips, "train"), (args.val_clips, "val")))
    else:
        train, val = clips(args.train_clips, "train", args.seed), clips(args.val_clips, "val", args.seed)
    torch.manual_seed(args.seed)
    model, loss_fn, reconstruct = build(name, args.videogpt)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    run = train_budget(model, loss_fn, reconstruct, opt, train, val, args.budget, budget_clock(args.clock, args.threads),
                       BATCH, args.seed)
    return {"model": name, "params_m": sum(p.numel() for p in model.parameters()) / 1e6, **run,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MB}


def budget_clock(kind: str, threads: int):
    """The clock a budget is counted on: ``wall`` seconds, or ``cpu``: the process's CPU seconds per thread."""
    if kind == "cpu":
        return lambda: time.process_time() / threads
    return time.perf_counter


def train_budget(model, loss_fn, reconstruct, opt, train: torch.Tensor, val: torch.Tensor, budget: float, clock,
                 batch: int, seed: int) -> dict:
    """Train ``model`` on random batches of the ``uint8`` clips ``train`` until ``budget`` seconds of ``clock``
    went into its steps (forward, backward, optimiser; drawing batches and evaluating are not counted),
    reconstructing ``val`` at the shares :data:`EVAL_AT` of the budget: ``{step_s, steps, evals, final}``."""
    model.train()
    order = torch.Generator().manual_seed(seed)
    spent, steps, evals, marks = 0.0, 0, [], [share * budget for share in EVAL_AT]
    while marks:
        x = to_float(train[torch.randint(0, len(train), (batch,), generator=order)])
        start = clock()
        loss = loss_fn(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        spent += clock() - start
        steps += 1
        if spent >= marks[0]:
            marks.pop(0)
            evals.append({"train_s": spent, "steps": steps, **evaluate(model, reconstruct, val)})
    return {"step_s": spent / steps, "steps": steps, "evals": evals, "final": evals[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"tokenizers to train (default: {' '.join(MODELS[:-1])}, and videogpt with --videogpt)")
    parser.add_argument("--videogpt", default=None, help="path to a checkout of github.com/wilson1yan/VideoGPT")
    parser.add_argument("--budget", type=float, default=150.0, help="training seconds per tokenizer")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-clips", type=int, default=512)
    parser.add_argument("--val-clips", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", default=None, metavar="DIR",
                        help="real footage: a folder of videos with train/ and val/ (held-out) subfolders")
    parser.add_argument("--json", default=str(HERE / "results" / "tokenizer_quality.json"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    models = args.models or [m for m in MODELS if m != "videogpt" or args.videogpt]
    if args.videogpt is None:
        print("videogpt: skipped (no --videogpt PATH given)")
    rows = []
    for name in models:
        cmd = [sys.executable, __file__, "--worker", name, *sys.argv[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name} failed:\n{done.stderr.strip()}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"  {name}: {r['steps']} steps, {r['final']['psnr']:.2f} dB", flush=True)

    half = f"PSNR@{EVAL_AT[0]:.0%}"
    data = f"real footage of {args.real} (val: held-out videos)" if args.real else "bouncing shapes"
    print(f"\n{args.budget:g} s ({args.clock}) of training each, batch {BATCH}, {FRAMES}x{SIZE}x{SIZE} "
          f"{data}, {args.val_clips} validation clips, {args.threads} threads")
    print(f"{'model':<22}{'params':>8}{'s/step':>8}{'steps':>7}{half:>11}{'PSNR':>8}{'SSIM':>7}")
    for r in rows:
        print(f"{r['model']:<22}{r['params_m']:>7.2f}M{r['step_s']:>8.3f}{r['steps']:>7}"
              f"{r['evals'][0]['psnr']:>11.2f}{r['final']['psnr']:>8.2f}{r['final']['ssim']:>7.3f}")
    peer = next((r for r in rows if r["model"] == "videogpt"), None)
    if peer is not None:
        for r in rows:
            if r is not peer:
                r["psnr_minus_videogpt_db"] = r["final"]["psnr"] - peer["final"]["psnr"]
                r["step_ratio_to_videogpt"] = r["step_s"] / peer["step_s"]
        best = max((r for r in rows if r is not peer), key=lambda r: r["final"]["psnr"])
        print(f"best of ours: {best['model']} {best['psnr_minus_videogpt_db']:+.2f} dB against VideoGPT, "
              f"step {best['step_ratio_to_videogpt']:.2f}x its time")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"budget_s": args.budget, "clock": args.clock, "threads": args.threads,
                               "batch": BATCH, "clip": [FRAMES, SIZE, SIZE], "lr": LR, "seed": args.seed,
                               "real": args.real,
                               "torch": torch.__version__, "python": platform.python_version(),
                               "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
