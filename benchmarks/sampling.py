"""Tokens/s of KV-cached vs uncached autoregressive sampling on one prior, in one process.

Both paths sample the same model with the same seed and must return identical tokens;
the uncached path recomputes the whole prefix at every step (O(N^2) work), the cached
path feeds one token per step against the KV cache. Reports the median of ``--repeats``
timed runs (interleaved cached / uncached, after a short warm-up) and writes JSON.

    python benchmarks/sampling.py                      # latent 4x16x16 = 1024 tokens
    python benchmarks/sampling.py --latent 2 8 8 --repeats 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from videosynth.models.transformer import Prior, PriorConfig
from videosynth.sampling.ar import generate

TOP_K = 100  # a typical sampling filter, so the per-step sampling cost is included
TARGET_SPEEDUP = 10.0  # what the cached path should reach at >= 1024 tokens


def timed(fn) -> tuple[float, torch.Tensor]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latent", type=int, nargs=3, default=[4, 16, 16], metavar=("T", "H", "W"))
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--embd", type=int, default=256)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default="benchmarks/results/sampling.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = PriorConfig(vocab_size=args.vocab, latent_shape=tuple(args.latent), n_layer=args.layers,
                      n_head=args.heads, n_embd=args.embd)
    prior = Prior(cfg).to(device).eval()
    shape = tuple(args.latent)
    n_tokens = cfg.seq_len * args.batch

    def run(use_cache: bool, frames: int = shape[0]) -> torch.Tensor:
        g = torch.Generator(device=device).manual_seed(0)
        return generate(prior, (frames, *shape[1:]), args.batch, generator=g, use_cache=use_cache, top_k=TOP_K)

    modes = {"cached": True, "uncached": False}
    for use_cache in modes.values():
        run(use_cache, frames=1)  # warm-up on one latent frame
    times: dict[str, list[float]] = {name: [] for name in modes}
    tokens = {}
    for _ in range(args.repeats):  # interleaved, so load changes on a shared machine hit both paths alike
        for name, use_cache in modes.items():
            seconds, tokens[name] = timed(lambda: run(use_cache))
            times[name].append(seconds)
    results = {}
    for name in modes:
        med = statistics.median(times[name])
        results[name] = {"seconds_median": med, "seconds_all": times[name], "tokens_per_s": n_tokens / med}
        print(f"{name:9s} {n_tokens / med:10.1f} tokens/s   median {med:.3f}s of {args.repeats}", flush=True)

    identical = torch.equal(tokens["cached"], tokens["uncached"])
    speedup = results["uncached"]["seconds_median"] / results["cached"]["seconds_median"]
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    report = {
        "benchmark": "ar-sampling-kv-cache",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
        "model": {"n_layer": args.layers, "n_head": args.heads, "n_embd": args.embd, "vocab": args.vocab,
                  "params": sum(p.numel() for p in prior.parameters())},
        "latent_shape": list(shape), "seq_len": cfg.seq_len, "batch": args.batch, "repeats": args.repeats,
        **results, "speedup": speedup, "identical_tokens": identical, "target_speedup": TARGET_SPEEDUP,
        "peak_cuda_bytes": peak,
    }
    print(f"speedup {speedup:.1f}x (target >= {TARGET_SPEEDUP:.0f}x), identical tokens: {identical}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
