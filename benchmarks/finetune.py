"""Fine-tuning onto a held-out class: LoRA adapters against a full fine-tune and training from scratch.

On the demo's data (white bouncing shapes, 32x32, 8 frames), through the real CLI:

1. a tokenizer (``configs/vqvae/shapes-32x32x8.yaml``) and a class-conditional AR prior
   (``configs/transformer/shapes-32x32x8.yaml``) are trained on the *old* classes only
   (``data.classes``: circle and square), each for a wall-clock budget;
2. three runs of the same step budget then learn the *new* class (triangle clips only):
   (a) LoRA: ``--init BASE --set finetune.lora_rank=R`` for each of ``--ranks``; (b) a full fine-tune: ``--init BASE``;
   (c) from scratch on the same tokenizer;
3. each run is judged by class accuracy (``videosynth.metrics.class_accuracy``: one probe trained
   on real clips of all three classes, ``--num`` clips per class): the new class's accuracy, the
   old classes' (retention), plus the fine-tune's minutes and, for LoRA, the adapter's size
   against the model's.

    python benchmarks/finetune.py --out-dir /tmp/finetune --json benchmarks/results/finetune-lora.json
    python benchmarks/finetune.py --out-dir /tmp/ft-smoke --tokenizer-time 20 --base-time 20 --steps 5 --num 4

Every number is written to the JSON with the settings that made it; ``--reuse`` keeps a tokenizer and
base run already in ``--out-dir`` (same settings) and trains only the fine-tunes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from families import MANY_STEPS, config_of, last_step, videosynth  # noqa: E402  (a sibling script)

OLD, NEW = ["circle", "square"], ["triangle"]
TOKENIZER, PRIOR = "configs/vqvae/shapes-32x32x8.yaml", "configs/transformer/shapes-32x32x8.yaml"


def write_config(cfg: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def train(cfg: dict, run: Path, log: Path, *args: str, seconds: float = 0, steps: int = 0) -> float:
    """``videosynth train`` of ``cfg`` (``steps`` steps, or ``seconds`` of loop time); returns wall seconds."""
    cfg = {**cfg, "train": {**cfg.get("train", {}), "steps": steps or MANY_STEPS, "time_limit": float(seconds),
                            "sample_every": 0, "ckpt_every": MANY_STEPS, "eval_every": 0}}
    path = write_config(cfg, run.parent / f"{run.name}.yaml")
    return videosynth("train", "--config", str(path), "--run-dir", str(run), "--no-progress", *args, log=log)


def judge(run: Path, num: int) -> dict:
    """Class accuracy of every class of ``run`` (the probe sees all three classes)."""
    import videosynth
    from videosynth.metrics.class_accuracy import class_accuracy

    result = class_accuracy(videosynth.load(run, device="cpu"), num, seed=0, device="cpu", options={})
    per = result["per_class"]
    return {"per_class": per, "new": sum(per[c] for c in NEW) / len(NEW), "old": sum(per[c] for c in OLD) / len(OLD),
            "real_accuracy": result["real_accuracy"]}


def sizes(base: Path, lora: Path) -> dict:
    """Bytes of the base's EMA weights and of the LoRA run's adapter; parameters of each."""
    from safetensors.torch import load_file

    from videosynth.checkpoint import find_checkpoint

    model = find_checkpoint(base)[0] / "ema.safetensors"
    adapter = find_checkpoint(lora)[0] / "adapter-ema.safetensors"
    count = lambda p: sum(t.numel() for t in load_file(str(p)).values())  # noqa: E731
    return {"model_bytes": model.stat().st_size, "adapter_bytes": adapter.stat().st_size,
            "model_params": count(model), "adapter_params": count(adapter),
            "adapter_share": adapter.stat().st_size / model.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--tokenizer-time", type=float, default=180, help="tokenizer seconds (old classes)")
    ap.add_argument("--base-time", type=float, default=300, help="base prior seconds (old classes)")
    ap.add_argument("--steps", type=int, default=150, help="steps of each fine-tune and of the scratch run")
    ap.add_argument("--ranks", type=int, nargs="+", default=[8, 2], help="LoRA ranks, one run each")
    ap.add_argument("--lr", type=float, default=1e-3, help="learning rate of every fine-tune")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--num", type=int, default=64, help="clips per class judged")
    ap.add_argument("--reuse", action="store_true", help="keep the tokenizer and base runs in --out-dir")
    args = ap.parse_args()
    out, log = args.out_dir, args.out_dir / "log.txt"
    out.mkdir(parents=True, exist_ok=True)
    tok, base = out / "tokenizer", out / "base"
    result = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "machine": {"platform": platform.platform(), "threads": os.environ.get("OMP_NUM_THREADS")},
              "old_classes": OLD, "new_classes": NEW, "runs": {}}
    if not (args.reuse and (base / "latest").is_file()):
        wall = train(config_of(TOKENIZER, **{"data.classes": OLD}), tok, log, seconds=args.tokenizer_time)
        result["runs"]["tokenizer"] = {"wall_s": wall, "steps": last_step(tok)}
        wall = train(config_of(PRIOR, tokenizer_run=str(tok), **{"data.classes": OLD}), base, log,
                     seconds=args.base_time)
        result["runs"]["base"] = {"wall_s": wall, "steps": last_step(base)}
    result["runs"].setdefault("base", {}).update(judge(base, args.num))
    tuned = config_of(PRIOR, tokenizer_run=str(tok), **{"data.classes": NEW, "optim.lr": args.lr,
                                                         "optim.warmup_steps": args.warmup})
    lora = [(f"lora-{r}", ("--init", str(base), "--set", f"finetune.lora_rank={r}")) for r in args.ranks]
    for name, extra in (*lora, ("full", ("--init", str(base))), ("scratch", ())):
        run = out / name
        start = time.perf_counter()
        wall = train(tuned, run, log, *extra, steps=args.steps)
        result["runs"][name] = {"wall_s": wall, "minutes": (time.perf_counter() - start) / 60, "steps": last_step(run),
                                **judge(run, args.num)}
        print(name, json.dumps(result["runs"][name]), flush=True)
    for r in args.ranks:
        result["runs"][f"lora-{r}"]["size"] = sizes(base, out / f"lora-{r}")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
