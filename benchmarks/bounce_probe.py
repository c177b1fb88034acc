"""Is a bounce legible in a tokenizer's latents? An MLP probe from a clip's latents to its bounce frames.

The built-in data's soundtrack clicks at every wall bounce, and a joint audio-video run must place
those clicks from the video's latents. This asks whether the latents hold the bounce at all: a
two-layer MLP is trained on the normalised latents of ``--train`` clips to say at which video
frames the object bounced (the data's ground truth), then scored on ``--val`` held-out clips by
AUC; the same probe on the clips' pixels is the reference. No run is changed.

    python benchmarks/bounce_probe.py runs/joint-av --json probe.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch


def clips(pipe, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(pixels [n, C, T, H, W], latents [n, c, t, h, w], bounces [n, T])`` of ``n`` clips of ``split``."""
    from videosynth.data import build_dataset

    ds = build_dataset(dataclasses.replace(pipe.data, num_samples=max(pipe.data.num_samples, n), audio=0), split)
    video = torch.stack([ds[i]["video"] for i in range(n)])
    bounces = torch.tensor(np.stack([ds.factors(i)["bounces"][:, 0] for i in range(n)])).float()
    model = pipe.tokenizer.model
    with torch.no_grad():
        latents = torch.cat([model.quantizer.normalize(model.encode_latents(video[i:i + 64]).float())
                             for i in range(0, n, 64)])
    return video, latents, bounces


def auc(score: torch.Tensor, truth: torch.Tensor) -> float:
    """The chance that a bounce frame scores above a frame without one."""
    pos, neg = score[truth > 0], score[truth == 0]
    return float((pos[:, None] > neg[None, :]).float().mean())


def probe(x_train, y_train, x_val, y_val, steps: int) -> float:
    """Val AUC of an MLP trained (BCE, AdamW) from standardised features to per-frame bounces."""
    x_train, x_val = x_train.flatten(1), x_val.flatten(1)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-4
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    net = torch.nn.Sequential(torch.nn.Linear(x_train.shape[1], 256), torch.nn.GELU(), torch.nn.Linear(256, 256),
                              torch.nn.GELU(), torch.nn.Linear(256, y_train.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-2)
    for _ in range(steps):
        idx = torch.randint(0, len(x_train), (128,))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return auc(net(x_val), y_val)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a flow run (its tokenizer and data are used)")
    ap.add_argument("--train", type=int, default=4096, help="training clips")
    ap.add_argument("--val", type=int, default=512, help="held-out clips")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import videosynth

    torch.manual_seed(0)
    pipe = videosynth.load(args.run, device="cpu")
    video_t, latents_t, y_t = clips(pipe, "train", args.train)
    video_v, latents_v, y_v = clips(pipe, "val", args.val)
    result = {"run": args.run, "train": args.train, "val": args.val, "steps": args.steps,
              "latent_shape": list(latents_t.shape[1:]), "bounce_rate": float(y_t.mean()),
              "latents_auc": probe(latents_t, y_t, latents_v, y_v, args.steps),
              "pixels_auc": probe(video_t, y_t, video_v, y_v, args.steps)}
    print(f"bounce frames from latents {result['latent_shape']}: val AUC {result['latents_auc']:.3f}; "
          f"from pixels: {result['pixels_auc']:.3f} ({args.val} val clips, bounce rate {result['bounce_rate']:.3f})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
