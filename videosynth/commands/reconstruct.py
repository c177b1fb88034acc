"""``videosynth reconstruct RUN_DIR DATA --out recon.mp4 [--num 8]``: VQ-VAE reconstructions.

Encodes and decodes ``--num`` clips of ``DATA`` (as for ``videosynth tokenize``)
with a trained tokenizer, writes original | reconstruction side by side and
prints PSNR and SSIM (``videosynth.metrics.recon``; per frame, averaged).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from videosynth.commands.encode import add_data_arguments, resolve_data
from videosynth.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("reconstruct", help="VQ-VAE reconstructions side by side, with PSNR/SSIM",
                       description="Write original | reconstruction clips of a tokenizer run and print PSNR/SSIM.")
    add_data_arguments(p)
    p.set_defaults(split="val")
    p.add_argument("--out", default="recon.mp4", help="grid video (.mp4, .gif, .png); default recon.mp4")
    p.add_argument("--num", type=int, default=8, help="clips (default 8), spread evenly over the split")
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--json", help="also write the scores to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from videosynth.data import build_dataset
    from videosynth.io import write_grid
    from videosynth.metrics.recon import psnr, ssim
    from videosynth.pipelines import TokenizerPipeline
    from videosynth.pipelines.base import check_finite_clips

    if args.num < 1 or args.batch_size < 1:
        raise ConfigError("--num and --batch-size must be at least 1")
    tokenizer = TokenizerPipeline.from_run(args.run_dir, args.checkpoint, args.device)
    data_cfg = resolve_data(args.data, tokenizer.data, args.overrides)
    tokenizer.latent_shape(data_cfg.frames, data_cfg.size)  # ConfigError when the clip size does not fit
    dataset = build_dataset(data_cfg, args.split)
    if len(dataset) == 0:
        raise ConfigError(f"split '{args.split}' of {args.data} is empty; try --split train")
    num = min(args.num, len(dataset))
    idx = torch.linspace(0, len(dataset) - 1, num).long().tolist()  # (num,) spread over the split
    x = torch.stack([dataset[i]["video"] for i in idx])  # (num, C, T, H, W) in [-1, 1]
    recon = []
    for start in range(0, num, args.batch_size):
        recon.append(tokenizer.reconstruct(x[start:start + args.batch_size]))  # (b, C, T, H, W)
    recon = check_finite_clips(torch.cat(recon), tokenizer.describe())
    scores = {"psnr": float(psnr(x, recon).mean()), "ssim": float(ssim(x, recon).mean()), "num": num,
              "step": tokenizer.step, "frames": data_cfg.frames, "size": data_cfg.size, "split": args.split}
    out = Path(args.out)
    side_by_side = torch.cat([x, recon], dim=-1)  # (num, C, T, H, 2W): original | reconstruction
    write_grid(out, side_by_side, nrow=max(1, int(math.ceil(math.sqrt(num)))), fps=args.fps)
    print(f"PSNR {scores['psnr']:.2f} dB  SSIM {scores['ssim']:.4f}  ({num} clips of {args.data} [{args.split}], "
          f"{data_cfg.frames}x{data_cfg.size}x{data_cfg.size}, step {scores['step']})")
    print(f"wrote {out} (original | reconstruction)")
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=2))
    return 0
