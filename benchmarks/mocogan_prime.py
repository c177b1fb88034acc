"""MoCoGAN image-to-video quality: does a primed clip start from the given frame, with the same object?

The first frames of ``--num`` held-out clips (the run's own data, validation split) are given to the
run as ``prime_video`` (one frame each; a class-conditional run also gets each clip's label); the run
inverts each to a content code and first motion step and generates the rest. Reported, against the same numbers for unprimed samples of the same seed:

- first-frame PSNR (dB, :func:`videosynth.metrics.recon.psnr`, clips in [-1, 1]) of each generated
  first frame against its given frame: mean, median, lowest, and the share at or above ``--target``;
- class kept: the share of generated clips the class probe of ``eval class-acc`` (trained on the
  run's data, or ``--probe``) gives the class of the real clip whose frame was given.

    python benchmarks/mocogan_prime.py runs/mocogan-demo --num 64
    python benchmarks/mocogan_prime.py runs/mocogan-demo --invert-steps 50 100 300 --json /tmp/prime.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch

DEFAULT_TARGET = 25.0  # dB: the bar for "the first generated frame matches the given one"


def first_frame_psnr(made: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of frame 1 of ``made`` against frame 1 of ``given`` (both ``[n, C, T, H, W]`` in [-1, 1]) -> ``[n]``."""
    from videosynth.metrics.recon import psnr

    return psnr(made[:, :, :1], given[:, :, :1])


def summary(values: torch.Tensor, target: float) -> dict:
    return {"mean": float(values.mean()), "median": float(values.median()), "min": float(values.min()),
            "at_target": float((values >= target).float().mean())}


def clips(pipe, real: torch.Tensor, labels: torch.Tensor, seed: int, **options) -> torch.Tensor:
    """``pipe``'s clips for the real clips ``real [n, C, T, H, W]``: a class-conditional run makes each with
    its real clip's label (``labels`` int64 ``[n]``), class by class, so the condition agrees with the frame."""
    if pipe.condition_kind != "class":
        return pipe(len(real), seed=seed, **options)
    out = torch.empty_like(real)
    for k in labels.unique().tolist():
        rows = (labels == k).nonzero()[:, 0]  # (n_k,)
        per_class = {key: (v[rows] if key == "prime_video" else v) for key, v in options.items()}
        out[rows] = pipe(len(rows), seed=seed + k, label=k, **per_class)
    return out


def main() -> None:
    import videosynth
    from videosynth.data import build_dataset
    from videosynth.metrics.class_accuracy import class_probe, probe_accuracy

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a MoCoGAN run trained on built-in data")
    p.add_argument("--num", type=int, default=64, help="held-out clips whose first frames are given (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--invert-steps", type=int, nargs="+", help="inversion steps to compare (default: the run's)")
    p.add_argument("--target", type=float, default=DEFAULT_TARGET, help=f"PSNR bar (default {DEFAULT_TARGET} dB)")
    p.add_argument("--probe", help="class probe .safetensors (default: eval class-acc's for the run's data)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    pipe = videosynth.load(args.run, device=args.device)
    val = build_dataset(pipe.data, "val")
    items = [val[i] for i in range(args.num)]
    real = torch.stack([item["video"] for item in items])  # (n, C, T, H, W)
    labels = torch.tensor([int(item["label"]) for item in items])  # (n,)
    probe, probe_path = class_probe(pipe.data, val.class_names, args.device, args.probe)
    drawn = clips(pipe, real, labels, args.seed)
    rows = {"unprimed": {"psnr": summary(first_frame_psnr(drawn, real), args.target),
                         "class_kept": probe_accuracy(probe, drawn, labels, args.device)}}
    for steps in args.invert_steps or [None]:
        start = time.perf_counter()
        made = clips(pipe, real, labels, args.seed, prime_video=real[:, :, :1], invert_steps=steps)
        seconds = time.perf_counter() - start
        rows[f"primed, {steps if steps is not None else 'default'} steps"] = {
            "psnr": summary(first_frame_psnr(made, real), args.target),
            "class_kept": probe_accuracy(probe, made, labels, args.device), "seconds": seconds}
    print(f"{args.run} (step {pipe.step}): {args.num} held-out first frames, probe {probe_path}, "
          f"probe on the real clips {probe_accuracy(probe, real, labels, args.device):.3f}")
    print(f"{'':24s}{'PSNR mean':>10s}{'median':>8s}{'min':>8s}{f'>={args.target:g}dB':>9s}{'class kept':>11s}")
    for name, row in rows.items():
        s = row["psnr"]
        print(f"{name:24s}{s['mean']:10.2f}{s['median']:8.2f}{s['min']:8.2f}{s['at_target']:9.3f}"
              f"{row['class_kept']:11.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"run": args.run, "step": pipe.step, "num": args.num, "seed": args.seed,
                       "probe": str(probe_path), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
