"""MoCoGAN training-step time and peak memory, next to the VideoGAN demo preset.

Each case builds a family's objective exactly as ``videosynth train`` does (model presets
from ``videosynth/models/mocogan.py`` and ``videosynth/models/videogan.py``, the shared
loop's ``Context``), feeds it random clips of the preset's size (no data loading, so only
the step is timed) and reports the median ``train_step`` wall time over repeats, clips/s
and peak memory. A MoCoGAN step = one image-D, one video-D and one generator update; a
VideoGAN step = one D and one G update. Every case runs in a fresh subprocess so the CPU
peak (``ru_maxrss``) belongs to it alone; on CUDA the peak is ``max_memory_allocated``.

    python benchmarks/mocogan_step.py                       # all cases, batch 8, CPU or GPU
    python benchmarks/mocogan_step.py --cases mocogan/demo-32x32x16 videogan/demo-32x32x16
    python benchmarks/mocogan_step.py --json out.json --repeats 10
    python benchmarks/mocogan_step.py --threads 1 --rounds 3   # a shared CPU: interleave the cases

With ``--rounds R`` every case runs R times, round-robin (case A, B, ..., A, B, ...), and the
reported time is the median of the R per-round medians, so load from other processes spreads
evenly over the cases being compared.

Prints a table; writes JSON (default ``benchmarks/results/mocogan_step.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

# family/preset -> resolution; VideoGAN's demo preset is the baseline at 32x32x16, and the
# 64x64 MoCoGAN sits next to a 16-frame variant of VideoGAN's seed network.
CASES = {
    "videogan/demo-32x32x16": ("videogan", "demo-32x32x16", {}),
    "mocogan/demo-32x32x16": ("mocogan", "demo-32x32x16", {}),
    "mocogan/paper-32x32x16": ("mocogan", "paper-32x32x16", {}),
    "videogan/seed-64x64x16": ("videogan", "seed-64x64x32", {"frames": 16}),
    "mocogan/paper-64x64x16": ("mocogan", "paper-64x64x16", {}),
}
KIB_PER_MIB = 1024
BYTES_PER_MIB = 1024 ** 2


def _objective(family: str, preset: str, overrides: dict, batch: int, device: torch.device):
    """The family's objective on a shared-loop Context, built like ``videosynth train`` does."""
    from videosynth.data import DataConfig
    from videosynth.train.context import Context
    from videosynth.train.config import TrainConfig

    if family == "mocogan":
        from videosynth.models.mocogan import PRESETS
        from videosynth.train.mocogan import MoCoGANObjective as Objective, MoCoGANRunConfig as RunConfig
    else:
        from videosynth.models.videogan import PRESETS
        from videosynth.train.gan import GANObjective as Objective, VideoGANRunConfig as RunConfig
    model = dataclasses.replace(PRESETS[preset], **overrides)
    train = TrainConfig(batch_size=batch, device=str(device), sample_every=0)
    cfg = RunConfig(model=model, data=DataConfig(frames=model.frames, size=model.size), train=train)
    torch.manual_seed(0)
    objective = Objective(cfg, Context(train, device, None))
    objective.set_train(True)
    return objective, model


def _params(objective) -> dict[str, int]:
    return {name: sum(p.numel() for p in m.parameters()) for name, m in objective.modules().items()}


def run_case(name: str, batch: int, repeats: int, warmup: int, device: torch.device) -> dict:
    """Time ``repeats`` training steps of one case (after ``warmup``); returns one result row."""
    family, preset, overrides = CASES[name]
    objective, model = _objective(family, preset, overrides, batch, device)
    g = torch.Generator().manual_seed(0)
    video = (torch.rand(batch, model.channels, model.frames, model.size, model.size, generator=g) * 2 - 1).to(device)
    batch_dict = {"video": video, "label": torch.full((batch,), -1, dtype=torch.long, device=device),
                  "caption": [""] * batch}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        objective.train_step(batch_dict, i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    row = {
        "case": name, "family": family, "preset": preset, "overrides": overrides,
        "size": model.size, "frames": model.frames, "batch": batch, "device": str(device),
        "step_ms_median": round(step_s * 1000, 2), "step_ms_min": round(min(times) * 1000, 2),
        "clips_per_s": round(batch / step_s, 3), "repeats": repeats, "params": _params(objective),
    }
    if device.type == "cuda":
        row["peak_mem_mib"] = round(torch.cuda.max_memory_allocated() / BYTES_PER_MIB, 1)
        row["peak_mem_kind"] = "cuda max_memory_allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB
        row["peak_mem_mib"] = round(peak, 1)
        row["peak_mem_kind"] = "process peak RSS"
        row["rss_before_steps_mib"] = round(rss_before, 1)
    return row


def _in_subprocess(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--one", name, "--batch", str(args.batch), "--repeats", str(args.repeats),
           "--warmup", str(args.warmup), "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"case": name, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _merge_rounds(results: list[dict]) -> dict:
    """One row per case: the median over rounds of the step time, the max of the peak memory."""
    good = [r for r in results if "error" not in r]
    if not good:
        return results[0]
    row = dict(good[0])
    row["failed_rounds"] = [r["error"] for r in results if "error" in r]
    row["step_ms_rounds"] = [r["step_ms_median"] for r in good]
    row["step_ms_median"] = round(statistics.median(row["step_ms_rounds"]), 2)
    row["step_ms_min"] = min(r["step_ms_min"] for r in good)
    row["clips_per_s"] = round(row["batch"] / (row["step_ms_median"] / 1000), 3)
    row["peak_mem_mib"] = max(r["peak_mem_mib"] for r in good)
    return row


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1, help="round-robin repetitions of every case (median taken)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--json", default="benchmarks/results/mocogan_step.json")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case, print one JSON line
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run_case(args.one, args.batch, args.repeats, args.warmup, _device(args.device))))
        return 0

    runs: dict[str, list[dict]] = {name: [] for name in args.cases}
    for _ in range(args.rounds):
        for name in args.cases:
            runs[name].append(_in_subprocess(name, args))
    rows = [_merge_rounds(results) for results in runs.values()]
    baselines = {r["size"]: r for r in rows if r.get("family") == "videogan" and "error" not in r}
    print(f"{'case':28s} {'step ms':>9s} {'clips/s':>8s} {'peak MiB':>9s} {'vs VideoGAN':>11s} {'params G / D':>22s}")
    for r in rows:
        if "error" in r:
            print(f"{r['case']:28s} error: {r['error']}")
            continue
        base = baselines.get(r["size"])
        r["step_time_vs_videogan"] = round(r["step_ms_median"] / base["step_ms_median"], 3) if base else None
        ratio = f"{r['step_time_vs_videogan']:.2f}x" if base else "-"
        g = r["params"].get("generator", 0)
        d = sum(v for k, v in r["params"].items() if k != "generator")
        print(f"{r['case']:28s} {r['step_ms_median']:9.1f} {r['clips_per_s']:8.2f} {r['peak_mem_mib']:9.1f} "
              f"{ratio:>11s} {g / 1e6:9.2f}M / {d / 1e6:7.2f}M")
    result = {
        "benchmark": "mocogan_step",
        "batch": args.batch, "repeats": args.repeats, "warmup": args.warmup, "rounds": args.rounds,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.platform(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": str(_device(args.device)),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "rows": rows,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
