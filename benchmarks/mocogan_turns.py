"""Where a warped MoCoGAN's clips turn, against where the tracker calls them invalid.

A MoCoGAN with ``model.motion_warp`` and ``model.warp_velocity`` moves each rendered frame by a shift
whose steps are the motion code's velocities, so its own path is known exactly: this script records
that path for each of ``--num`` sampled clips (random classes, seed ``--seed``), finds the turns (a
velocity component changing sign, both sides faster than the tracker's ``min_speed``) and crosses
them with :func:`videosynth.metrics.tracking.clip_physics`'s verdict on the clip — valid share of
the clips that turn and of those that go straight, and which physics checks the invalid ones fail.
Beside it, the share of real val clips of the run's data that turn by the same rule, on their
ground-truth paths.

    python benchmarks/mocogan_turns.py runs/mocogan-velocity --num 256 --json turns.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch


def turns(path: np.ndarray, min_speed: float) -> int:
    """Sign changes of a velocity component along ``path [T, 2]`` (px), both sides faster than ``min_speed``."""
    v = np.diff(path, axis=0)  # (T-1, 2)
    fast = np.abs(v) > min_speed
    return int(((v[:-1] * v[1:] < 0) & fast[:-1] & fast[1:]).sum())


def real_turning_share(run, num: int, min_speed: float) -> float:
    """Share of ``num`` real val clips of the run's data whose object turns, by :func:`turns` on the
    data's own ground-truth path (the first object's centre)."""
    from videosynth.data import build_dataset

    val = build_dataset(run.data, "val")
    n = min(num, len(val))
    return float(np.mean([turns(val.factors(i)["positions"][:, 0], min_speed) > 0 for i in range(n)])) \
        if n else float("nan")


def generated_paths(run, warp, num: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """``num`` clips of ``run`` (random classes when class-conditional) and each one's path as ``warp``
    (the generator's MoCoGAN network) shifted it: ``(videos [N, C, T, H, W], paths [N, T, 2] px)``."""
    shifts = []
    translate = warp.translate
    warp.translate = lambda frames, shift: (shifts.append(shift.detach().clone()), translate(frames, shift))[1]
    labels = torch.randint(len(run.class_names), (num,), generator=torch.Generator().manual_seed(seed)) \
        if run.condition_kind == "class" else None
    try:
        with torch.inference_mode():
            videos = run.generate(num, torch.Generator().manual_seed(seed), labels=labels).float().cpu()
    finally:
        del warp.translate  # the class's own method again
    frames, size = videos.shape[2], videos.shape[-1]
    return videos, (torch.cat(shifts).reshape(num, frames, 2) * size / 2).numpy()  # half-frames -> px


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--num", type=int, default=256)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import videosynth
    from videosynth.data.factory import BUILTIN
    from videosynth.errors import VideoSynthError
    from videosynth.metrics.tracking import TrackingConfig, clip_physics, failed_checks

    try:
        run = videosynth.load(args.run, None, "cpu")
    except VideoSynthError as exc:
        sys.exit(f"error: {exc}")
    if run.family != "mocogan" or run.data.name not in BUILTIN:
        sys.exit(f"error: {args.run} is not a MoCoGAN run on built-in data ({', '.join(BUILTIN)}): its clips have "
                 "no true paths to compare with")
    net = run.generator(True)
    warp = next((m for m in net.modules() if getattr(getattr(m, "cfg", None), "warp_velocity", False)), None)
    if warp is None:
        sys.exit(f"error: {args.run} is not a MoCoGAN with model.motion_warp and model.warp_velocity")
    videos, px = generated_paths(run, warp, args.num, args.seed)
    cfg = TrackingConfig()
    rows = [clip_physics(v, cfg) for v in videos]
    valid = np.array([r["valid"] for r in rows])
    turned = np.array([turns(p, cfg.min_speed) > 0 for p in px])
    failed = Counter(name for r in rows if not r["valid"] and r["tracked"] for name in failed_checks(r, cfg))
    result = {
        "run": str(args.run), "step": run.step, "num": args.num, "seed": args.seed,
        "valid_share": float(valid.mean()),
        "turning_share": float(turned.mean()),
        "valid_if_turning": float(valid[turned].mean()) if turned.any() else float("nan"),
        "valid_if_straight": float(valid[~turned].mean()) if (~turned).any() else float("nan"),
        "untracked": int(sum(not r["tracked"] for r in rows)),
        "failed_checks": dict(failed),
        "real_turning_share": real_turning_share(run, args.num, cfg.min_speed),
    }
    print(f"{args.run} (step {run.step}), {args.num} clips: valid share {result['valid_share']:.3f}")
    print(f"  clips that turn: {result['turning_share']:.3f} "
          f"(real clips that turn: {result['real_turning_share']:.3f})")
    print(f"  valid share of those that turn {result['valid_if_turning']:.3f}, of those that go straight "
          f"{result['valid_if_straight']:.3f}")
    print(f"  checks the invalid clips fail: {dict(failed)}; untracked {result['untracked']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
