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


def steps_run(cfg: dict, run: Path, log: Path, steps: int, *args: str) -> float:
    """``videosynth train`` of ``cfg`` for ``steps`` steps (seed 0); returns wall seconds."""
    return train(cfg, run, MANY_SECONDS, 0, log, steps=steps, args=args)


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
    ap.add_argument("--tokenizer-steps", type=int, default=TOKENIZER_STEPS, help="tokenizer steps (old classes)")
    ap.add_argument("--base-steps", type=int, default=BASE_STEPS, help="base prior steps (old classes)")
    ap.add_argument("--steps", type=int, default=150, help="steps of each fine-tune and of the scratch run")
    ap.add_argument("--data", choices=("new", "all"), default="new",
                    help="what the fine-tunes see: the new class's clips, or every class's")
    ap.add_argument("--ranks", type=int, nargs="+", default=[8, 2], help="LoRA ranks, one run each")
    ap.add_argument("--lr", type=float, default=1e-3, help="learning rate of every fine-tune")
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
    lora = [(f"lora-{r}", ("--init", str(base), "--set", f"finetune.lora_rank={r}")) for r in args.ranks]
    for name, extra in (*lora, ("full", ("--init", str(base))), ("scratch", ())):
        run = fresh(out / f"{name}-{args.data}")  # a folder left by an interrupted sitting is trained again
        wall = steps_run(tuned, run, log, args.steps, *extra)
        result["runs"][name] = {"wall_s": wall, "minutes": wall / 60, "steps": last_step(run), **judge(run, args.num)}
        print(name, json.dumps(result["runs"][name]), flush=True)
    for r in args.ranks:
        result["runs"][f"lora-{r}"]["size"] = sizes(base, out / f"lora-{r}-{args.data}")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
