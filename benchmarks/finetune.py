"""Fine-tuning onto a held-out class: LoRA adapters against a full fine-tune and training from scratch.

On the demo's data (white bouncing shapes, 32x32, 8 frames), through the real CLI:

1. a tokenizer (``configs/vqvae/shapes-32x32x8.yaml``) and a class-conditional AR prior
   (``configs/transformer/shapes-32x32x8.yaml``) are trained on the *old* classes only
   (``data.classes``: circle and square), each for a number of steps (the defaults: 180 s and 300 s
   at the rates this CPU trains them when idle, so this phase may share the machine);
2. three runs of the same step budget then learn the *new* class: (a) LoRA, ``--init BASE --set
   finetune.lora_rank=R`` for each of ``--ranks``; (b) a full fine-tune, ``--init BASE``; (c) from
   scratch on the same tokenizer. ``--data new`` shows them triangle clips only; ``--data all`` clips
   of all three classes (the old ones rehearsed: one adapter serves every class, so a fine-tune on the
   new class alone may overwrite the old);
3. each run is judged by class accuracy (``videosynth.metrics.class_accuracy``: one probe trained
   on real clips of all three classes, ``--num`` clips per class): the new class's accuracy, the
   old classes' (retention), plus the fine-tune's minutes and, for LoRA, the adapter's size
   against the model's. The minutes are wall-clock: time this phase on an idle machine.

    python benchmarks/finetune.py --out-dir /tmp/finetune --json benchmarks/results/finetune-lora.json
    python benchmarks/finetune.py --out-dir /tmp/ft-smoke --tokenizer-steps 20 --base-steps 10 --steps 5 --num 4
    python benchmarks/finetune.py --out-dir /tmp/finetune --reuse --data all --curve 25 --lora-lr 3e-3

``--curve K`` judges every K steps' checkpoint of each fine-tune and times each to the issue's quality
(new class >= 0.9 with the old ones >= 0.95): LoRA against the full fine-tune at equal quality.

Every number is written to the JSON with the settings that made it; ``--reuse`` keeps a tokenizer and
base run already in ``--out-dir`` (same settings) and trains only the fine-tunes; ``--pretrain-only``
stops after the base (train it on a busy machine, then time the fine-tunes with ``--reuse`` on an idle one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_runs import MANY_SECONDS, config_of, fresh, last_step, train  # noqa: E402  (a sibling script)

OLD, NEW = ["circle", "square"], ["triangle"]
TOKENIZER, PRIOR = "configs/vqvae/shapes-32x32x8.yaml", "configs/transformer/shapes-32x32x8.yaml"
# 180 s of the tokenizer and 300 s of the prior at the idle rates the family table timed on this
# 2-core CPU (VQ-VAE 14.0, AR prior 1.84 steps/s)
TOKENIZER_STEPS, BASE_STEPS = 2500, 550
TARGET = {"new": 0.9, "old": 0.95}  # the quality both kinds of fine-tune are timed to (--curve)


def steps_run(cfg: dict, run: Path, log: Path, steps: int, *args: str) -> float:
    """``videosynth train`` of ``cfg`` for ``steps`` steps (seed 0); returns wall seconds."""
    return train(cfg, run, MANY_SECONDS, 0, log, steps=steps, args=args)


def judge(run: Path, num: int, checkpoint: str | None = None) -> dict:
    """Class accuracy of every class of ``run`` (the probe sees all three classes), at its latest checkpoint
    or at ``checkpoint``."""
    import videosynth
    from videosynth.metrics.class_accuracy import class_accuracy

    pipe = videosynth.load(run, checkpoint=checkpoint, device="cpu")
    result = class_accuracy(pipe, num, seed=0, device="cpu", options={})
    per = result["per_class"]
    return {"per_class": per, "new": sum(per[c] for c in NEW) / len(NEW), "old": sum(per[c] for c in OLD) / len(OLD),
            "real_accuracy": result["real_accuracy"]}


def curve(run: Path, num: int, wall_s: float, steps: int) -> dict:
    """Every checkpoint of ``run`` judged (:func:`judge` of each), and the first that reaches :data:`TARGET`
    with the seconds it took (the run's wall time, startup included, in proportion to its steps)."""
    from videosynth.checkpoint import checkpoint_dirs

    points = []
    for ckpt in checkpoint_dirs(run):  # the last is the run's final checkpoint
        step = int(ckpt.name.split("-")[1])
        scores = judge(run, num, ckpt.name)
        points.append({"step": step, **scores})
        print(f"  {run.name} step {step}: new {scores['new']:.3f} old {scores['old']:.3f}", flush=True)
    reached = next((p for p in points if p["new"] >= TARGET["new"] and p["old"] >= TARGET["old"]), None)
    return {"points": points, "target": TARGET, "target_step": reached and reached["step"],
            "target_s": reached and wall_s * reached["step"] / steps}


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
    ap.add_argument("--tokenizer-steps", type=int, default=TOKENIZER_STEPS, help="tokenizer steps (old classes)")
    ap.add_argument("--base-steps", type=int, default=BASE_STEPS, help="base prior steps (old classes)")
    ap.add_argument("--steps", type=int, default=150, help="steps of each fine-tune and of the scratch run")
    ap.add_argument("--data", choices=("new", "all"), default="new",
                    help="what the fine-tunes see: the new class's clips, or every class's")
    ap.add_argument("--ranks", type=int, nargs="+", default=[8, 2], help="LoRA ranks, one run each")
    ap.add_argument("--lr", type=float, default=1e-3, help="learning rate of every fine-tune")
    ap.add_argument("--lora-lr", type=float, help="learning rate of the LoRA runs (default --lr)")
    ap.add_argument("--curve", type=int, default=0, metavar="K",
                    help="judge every K steps' checkpoint and time each fine-tune to new >= 0.9 with old >= 0.95")
    ap.add_argument("--runs", nargs="+", default=["lora", "full", "scratch"], choices=("lora", "full", "scratch"),
                    help="which fine-tunes to train (default all three)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--num", type=int, default=64, help="clips per class judged")
    ap.add_argument("--reuse", action="store_true", help="keep the tokenizer and base runs in --out-dir")
    ap.add_argument("--pretrain-only", action="store_true", help="stop after the tokenizer and base runs")
    args = ap.parse_args()
    out, log = args.out_dir, args.out_dir / "log.txt"
    out.mkdir(parents=True, exist_ok=True)
    tok, base = out / "tokenizer", out / "base"
    result = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "machine": {"platform": platform.platform(), "threads": os.environ.get("OMP_NUM_THREADS")},
              "old_classes": OLD, "new_classes": NEW, "runs": {}}
    if not (args.reuse and (base / "latest").is_file()):
        wall = steps_run(config_of(TOKENIZER, **{"data.classes": OLD}), fresh(tok), log, args.tokenizer_steps)
        result["runs"]["tokenizer"] = {"wall_s": wall, "steps": last_step(tok)}
        wall = steps_run(config_of(PRIOR, tokenizer_run=str(tok), **{"data.classes": OLD}), fresh(base), log,
                         args.base_steps)
        result["runs"]["base"] = {"wall_s": wall, "steps": last_step(base)}
    if args.pretrain_only:
        print(f"pretrained {tok} and {base}; time the fine-tunes with --reuse on an idle machine")
        return
    result["runs"].setdefault("base", {"steps": last_step(base)}).update(judge(base, args.num))
    classes = NEW if args.data == "new" else OLD + NEW
    tuned = config_of(PRIOR, tokenizer_run=str(tok), **{"data.classes": classes, "optim.lr": args.lr,
                                                         "optim.warmup_steps": args.warmup})
    lora_lr = ("--set", f"optim.lr={args.lora_lr}") if args.lora_lr else ()
    runs = [(f"lora-{r}", ("--init", str(base), "--set", f"finetune.lora_rank={r}", *lora_lr)) for r in args.ranks
            if "lora" in args.runs]
    runs += [(name, extra) for name, extra in (("full", ("--init", str(base))), ("scratch", ())) if name in args.runs]
    every = ("--set", f"train.ckpt_every={args.curve}", "--set", "train.keep_last=0") if args.curve else ()
    for name, extra in runs:
        run = fresh(out / f"{name}-{args.data}")  # a folder left by an interrupted sitting is trained again
        wall = steps_run(tuned, run, log, args.steps, *extra, *every)
        steps = last_step(run)
        timed = curve(run, args.num, wall, steps) if args.curve else None
        final = {k: v for k, v in timed["points"][-1].items() if k != "step"} if timed else judge(run, args.num)
        result["runs"][name] = {"wall_s": wall, "minutes": wall / 60, "steps": steps, **final}
        if timed:
            result["runs"][name]["curve"] = timed
        print(name, json.dumps(result["runs"][name]), flush=True)
    for name, _ in runs:
        if name.startswith("lora-"):
            result["runs"][name]["size"] = sizes(base, out / f"{name}-{args.data}")
    full = result["runs"].get("full", {}).get("curve", {}).get("target_s")
    for name, _ in runs:
        reached = result["runs"][name].get("curve", {}).get("target_s")
        if name.startswith("lora-") and full and reached:
            result["runs"][name]["curve"]["time_vs_full"] = reached / full
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
