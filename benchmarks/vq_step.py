"""Training-step time and peak memory of the tokenizer (VQ-VAE) and prior (Transformer) presets.

Each (family, preset) is measured in a fresh subprocess so peak memory is its own:
peak CUDA allocation on a GPU, else the process's peak resident set size (which
includes the Python/torch baseline, reported separately as ``baseline_rss_mb``).
One step = forward + backward + Adam step on random data of the preset's clip size
(tokenizer) or token grid (prior). Prints a table, writes JSON.

    python benchmarks/vq_step.py                         # tiny + demo presets, CPU-friendly
    python benchmarks/vq_step.py --presets tiny demo-32x32x16 ucf-64x64x16 --batch 4
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from videosynth.models.transformer import PRESETS as PRIOR_PRESETS
from videosynth.models.transformer import Prior
from videosynth.models.vqvae import PRESETS as VQ_PRESETS
from videosynth.models.vqvae import VQVAE

# clip (frames, size) each tokenizer preset is meant for
CLIP_SIZE = {"tiny": (4, 16), "demo-32x32x16": (16, 32), "ucf-64x64x16": (16, 64)}
FAMILIES = ("vqvae", "transformer")
KIB_PER_MB = 1024  # ru_maxrss is in KiB on Linux


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(family: str, preset: str, batch: int, steps: int, device: torch.device) -> dict:
    """Median seconds per training step of one preset, and peak memory (see module docstring)."""
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MB
    torch.manual_seed(0)
    if family == "vqvae":
        frames, size = CLIP_SIZE[preset]
        model = VQVAE(VQ_PRESETS[preset]).to(device).train()
        x = torch.rand(batch, 3, frames, size, size, device=device) * 2 - 1  # (B, C, T, H, W)
        loss_fn = lambda: model(x).loss  # noqa: E731
        shape = [batch, 3, frames, size, size]
    else:
        cfg = PRIOR_PRESETS[preset]
        model = Prior(cfg).to(device).train()
        tokens = torch.randint(0, cfg.vocab_size, (batch, *cfg.latent_shape), device=device)  # (B, t, h, w)
        loss_fn = lambda: model.loss(tokens)  # noqa: E731
        shape = [batch, *cfg.latent_shape]
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(steps + 1):  # the first step warms up and is not timed
        _sync(device)
        start = time.perf_counter()
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i:
            times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MB)
    return {
        "family": family, "preset": preset, "input": shape, "batch": batch, "steps": steps,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "step_s_median": statistics.median(times), "step_s_all": times,
        "peak_mb": peak, "peak_kind": "cuda_allocated" if device.type == "cuda" else "process_rss",
        "baseline_rss_mb": baseline_rss, "device": str(device), "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "demo-32x32x16"])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default="benchmarks/results/vq_step.json")
    p.add_argument("--one", nargs=2, metavar=("FAMILY", "PRESET"), help=argparse.SUPPRESS)  # child process
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.batch, args.steps, torch.device(args.device))))
        return 0

    rows = []
    print(f"{'family':12s} {'preset':16s} {'input':22s} {'params':>8s} {'step s':>9s} {'peak MB':>9s}")
    for family in args.families:
        for preset in args.presets:
            cmd = [sys.executable, __file__, "--one", family, preset, "--batch", str(args.batch),
                   "--steps", str(args.steps), "--threads", str(args.threads), "--device", args.device]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"{family:12s} {preset:16s} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{family:12s} {preset:16s} {str(row['input']):22s} {row['params_m']:7.2f}M "
                  f"{row['step_s_median']:9.3f} {row['peak_mb']:9.0f}", flush=True)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "vq-train-step", "torch": torch.__version__, "rows": rows}, indent=2))
    print(f"wrote {out} (peak: {rows[0]['peak_kind'] if rows else '-'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
