"""Flow-matching recipe ablations on the family table's budget: which settings make the DiT converge on a CPU.

Every variant is the flow family of ``families.py`` (the demo's data: class-conditional white
bouncing shapes, 32x32, 8 frames; a KL tokenizer for ``--share`` of ``--budget`` seconds, the
DiT for the rest, both through the real CLI) with some config keys changed. The tokenizer is
trained once per (seed, tokenizer settings, share) and shared by the variants that use it.
Each run is judged like the table, on fewer clips (class accuracy of the shared probe on
``--class-num`` clips per class; valid share and bounce correctness of ``eval track`` on
``--track-num`` clips).

The budget is seconds of an idle machine turned into steps: each distinct network (DiT size,
batch, objective; the tokenizer) is first timed for ``--calib-seconds`` and its best rate of a
log interval (steps per second) is kept in the JSON; a stage then trains for rate x its seconds
steps. So a variant's result does not depend on what else the machine ran meanwhile, and a
variant whose steps are cheaper gets more of them, as it would in the family table's
wall-clock budget. ``optim.decay_steps`` variants decay over a share of those steps.

Variants run interleaved per seed; the JSON is written after every run and ``--resume`` keeps
what it already holds (same budget), so the ablation can be built over several sittings.

    python benchmarks/flow_recipe.py --out-dir /tmp/flow-recipe --json benchmarks/results/flow-recipe.json
    python benchmarks/flow_recipe.py --variants base small-fast --seeds 0 1 2 --out-dir /tmp/fr --json fr.json --resume
    python benchmarks/flow_recipe.py --list
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cli_runs import Budget, config_of, fresh, last_step, median, videosynth  # noqa: E402

TOKENIZER = "configs/vqvae/shapes-kl-32x32x8.yaml"
FLOW = "configs/flow/shapes-32x32x8.yaml"
FORCING = "configs/flow/forcing-32x32x8.yaml"
SHORTCUT = "configs/flow/shortcut-32x32x8.yaml"
# The recipe the ablations start from (the flow config as it shipped before them), spelled out so a
# variant means the same whatever the shipped config says today.
BASE = {"model.width": 192, "model.depth": 6, "model.heads": 6, "optim.lr": 3e-4, "optim.beta2": 0.999,
        "optim.decay_steps": 0, "train.grad_clip": 0.0, "model.preset": "shapes-32x32x8"}
FAST = {"optim.lr": 1e-3, "optim.beta2": 0.95, "train.grad_clip": 1.0}
SMALL = {"model.width": 128, "model.depth": 4, "model.heads": 4}
DECAY = {"optim.decay_share": 0.3}
RECIPE = {**SMALL, "model.width": 96, **FAST, **DECAY}  # the best of the ablations (see the README)

# name -> (what it tests, flow config changes, tokenizer config changes, tokenizer share or None = --share)
VARIANTS: dict[str, tuple[str, dict, dict, float | None]] = {
    "base": ("the flow recipe before these ablations (width 192, depth 6, 6 heads, lr 3e-4)", {}, {}, None),
    "fast": ("lr 1e-3, AdamW beta2 0.95, gradient clip 1", FAST, {}, None),
    "small": ("width 128, depth 4, 4 heads", SMALL, {}, None),
    "small-fast": ("small + fast", {**SMALL, **FAST}, {}, None),
    "smaller-fast": ("width 96, depth 4, 4 heads + fast", {**SMALL, "model.width": 96, **FAST}, {}, None),
    "small-fast-b32": ("small + fast, batch 32", {**SMALL, **FAST, "train.batch_size": 32}, {}, None),
    "small-fast-b8": ("small + fast, batch 8", {**SMALL, **FAST, "train.batch_size": 8}, {}, None),
    "small-fast-tok25": ("small + fast, tokenizer 25 % of the budget", {**SMALL, **FAST}, {}, 0.25),
    "small-fast-mean05": ("small + fast, logit-normal location 0.5 (more steps near the data)",
                          {**SMALL, **FAST, "loss.logit_mean": 0.5}, {}, None),
    "small-fast-meanm05": ("small + fast, logit-normal location -0.5 (more steps near the noise)",
                           {**SMALL, **FAST, "loss.logit_mean": -0.5}, {}, None),
    "small-fast-ema99": ("small + fast, EMA decay 0.99", {**SMALL, **FAST, "train.ema_decay": 0.99}, {}, None),
    "small-fast-kl1e-3": ("small + fast, tokenizer KL weight 1e-3 (a smoother latent)",
                          {**SMALL, **FAST}, {"model.kl_weight": 1e-3}, None),
    "small-fast-lr2e-3": ("small, lr 2e-3, beta2 0.95, clip 1", {**SMALL, **FAST, "optim.lr": 2e-3}, {}, None),
    "small-fast-decay": ("small + fast, cosine decay over the last 30 % of the steps", {**SMALL, **FAST, **DECAY},
                         {}, None),
    "smaller-fast-decay": ("width 96, depth 4, 4 heads + fast + decay", RECIPE, {}, None),
    "w64-fast-decay": ("width 64, depth 4, 4 heads + fast + decay", {**RECIPE, "model.width": 64}, {}, None),
    "recipe-tok25": ("smaller-fast-decay, tokenizer 25 % of the budget (more DiT steps)", RECIPE, {}, 0.25),
    "recipe-ema99": ("smaller-fast-decay, EMA decay 0.99", {**RECIPE, "train.ema_decay": 0.99}, {}, None),
    "recipe-tok25-kl1e-3": ("recipe-tok25 on a tokenizer of KL weight 1e-3 (a smoother latent)", RECIPE,
                            {"model.kl_weight": 1e-3}, 0.25),
    "recipe-tok25-meanm05": ("recipe-tok25, logit-normal location -0.5 (more steps near the noise)",
                             {**RECIPE, "loss.logit_mean": -0.5}, {}, 0.25),
    "recipe-tok25-ema99": ("recipe-tok25, EMA decay 0.99", {**RECIPE, "train.ema_decay": 0.99}, {}, 0.25),
    # the mechanisms of the flow issue at the recipe, with the scores they are for
    "recipe-forcing": ("smaller-fast-decay with per-frame times (the forcing config); + long videos and priming",
                       RECIPE, {}, None),
    "recipe-shortcut": ("smaller-fast-decay with the shortcut objective (the shortcut config); + 1, 2, 4, 128 steps",
                        RECIPE, {}, None),
}
CONFIGS = {"recipe-forcing": FORCING, "recipe-shortcut": SHORTCUT}  # default: FLOW
LONG = (24, 80)  # frames: 3x and 10x the training length (forcing runs)
FEW_STEPS = (1, 2, 4, 128)  # shortcut runs: Euler steps; 128 = its smallest step, the instantaneous velocity


def tokenizer_key(seed: int, share: float, tok_changes: dict) -> str:
    """What makes two variants' tokenizers the same run: seed, share of the budget, config changes."""
    changes = ",".join(f"{k}={v}" for k, v in sorted(tok_changes.items()))
    return f"seed={seed},share={share}" + (f",{changes}" if changes else "")


def run_variant(variant: str, seed: int, args, state: dict, probe: Path, log: Path) -> dict:
    """Train (the tokenizer if no variant before trained the same one) and judge one variant at one seed."""
    _, changes, tok_changes, tok_share = VARIANTS[variant]
    share = tok_share if tok_share is not None else args.share
    key = tokenizer_key(seed, share, tok_changes)
    tokenizers, budget = state["tokenizers"], Budget(True, state["rates"], Path(args.out_dir), args.calib_seconds)
    if key not in tokenizers or not (Path(tokenizers[key]["run"]) / "latest").is_file():  # new, or its folder gone
        tok = fresh(Path(args.out_dir) / f"tokenizer-{hashlib.sha256(key.encode()).hexdigest()[:8]}-seed{seed}")
        seconds = budget.train(config_of(TOKENIZER, **tok_changes), tok, args.budget * share, seed, log)
        tokenizers[key] = {"run": str(tok), "wall_s": seconds, "steps": last_step(tok)}
    tok = tokenizers[key]
    run = fresh(Path(args.out_dir) / f"{variant}-seed{seed}")
    config = config_of(CONFIGS.get(variant, FLOW), tokenizer_run=tok["run"], **{**BASE, **changes})
    seconds = budget.train(config, run, args.budget - tok["wall_s"], seed, log)
    acc_json, track_json = run.parent / f"{run.name}-class-acc.json", run.parent / f"{run.name}-track.json"
    videosynth("eval", "class-acc", str(run), "--probe", str(probe), "--num", str(args.class_num),
               "--json", str(acc_json), log=log)
    videosynth("eval", "track", "bouncing-shapes", str(run), "--num", str(args.track_num), "--json", str(track_json),
               log=log)
    table = json.loads(track_json.read_text())["comparison"]
    scores = {"class_acc": json.loads(acc_json.read_text())["accuracy"],
              "valid_share": table["valid_share"]["fake"], "bounce_correct": table["bounce_correct"]["fake"],
              "real_valid_share": table["valid_share"]["real"]}
    if CONFIGS.get(variant) == FORCING:
        scores.update(long_and_primed(run, args, probe, log))
    if CONFIGS.get(variant) == SHORTCUT:
        for steps in FEW_STEPS:
            path = run.parent / f"{run.name}-class-acc-{steps}.json"
            videosynth("eval", "class-acc", str(run), "--probe", str(probe), "--num", str(args.class_num),
                       "--json", str(path), "--option", f"steps={steps}", log=log)
            scores[f"class_acc_{steps}_steps"] = json.loads(path.read_text())["accuracy"]
    return {"variant": variant, "seed": seed, "wall_s": tok["wall_s"] + seconds, "tokenizer_wall_s": tok["wall_s"],
            "steps": {"tokenizer": tok["steps"], "flow": last_step(run)}, "scores": scores}


def long_and_primed(run: Path, args, probe: Path, log: Path) -> dict:
    """Long videos (``eval track --frames`` 3x and 10x, with the class kept) and priming (``eval predict``,
    4 real frames observed) of a per-frame-times run."""
    scores = {}
    for frames in LONG:
        path = run.parent / f"{run.name}-track-{frames}.json"
        videosynth("eval", "track", "bouncing-shapes", str(run), "--frames", str(frames), "--num", str(args.track_num),
                   "--class-kept", "--probe", str(probe), "--json", str(path), log=log)
        result = json.loads(path.read_text())
        for key in ("valid_share", "bounce_correct", "tracked_share"):
            scores[f"{key}_{frames}"] = result["comparison"][key]["fake"]
        scores[f"class_kept_{frames}"] = result["comparison"]["class_kept"]["fake"]
    path = run.parent / f"{run.name}-predict.json"
    videosynth("eval", "predict", str(run), "--prime-frames", "4", "--num", str(args.track_num), "--probe", str(probe),
               "--json", str(path), log=log)
    scores["predict"] = json.loads(path.read_text())
    return scores


def summarise(results: list[dict], variants: list[str]) -> str:
    head = f"{'variant':<20}{'seeds':>6}{'class acc':>10}{'valid':>8}{'bounce':>8}  per seed (acc / valid){'':<8}steps"
    lines = [head, "-" * (len(head) + 10)]
    for name in variants:
        rows = sorted((r for r in results if r["variant"] == name), key=lambda r: r["seed"])
        if not rows:
            continue
        med = {k: median([r["scores"][k] for r in rows]) for k in ("class_acc", "valid_share", "bounce_correct")}
        per_seed = " ".join(f"{r['scores']['class_acc']:.3f}/{r['scores']['valid_share']:.3f}" for r in rows)
        steps = ", ".join(f"{r['steps']['tokenizer']}+{r['steps']['flow']}" for r in rows)
        lines.append(f"{name:<20}{len(rows):>6}{med['class_acc']:>10.3f}{med['valid_share']:>8.3f}"
                     f"{med['bounce_correct']:>8.3f}  {per_seed:<30}{steps}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=["base", "fast", "small", "small-fast"], choices=sorted(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--budget", type=float, default=450.0, help="wall seconds per variant, tokenizer included")
    ap.add_argument("--share", type=float, default=0.4, help="the tokenizer's share of the budget")
    ap.add_argument("--calib-seconds", type=float, default=40.0, help="timing run per distinct network")
    ap.add_argument("--class-num", type=int, default=32, help="clips per class for class accuracy")
    ap.add_argument("--track-num", type=int, default=128, help="clips for the physics metrics")
    ap.add_argument("--out-dir")
    ap.add_argument("--json", help="results file (written after every run)")
    ap.add_argument("--resume", action="store_true", help="keep the runs --json already holds at this budget")
    ap.add_argument("--list", action="store_true", help="print the variants and exit")
    args = ap.parse_args()
    if args.list:
        for name, (what, *_rest) in VARIANTS.items():
            print(f"{name:<20}{what}")
        return
    if not args.out_dir:
        ap.error("--out-dir is required (where the runs go)")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    data = {"budget_s": args.budget, "tokenizer_share": args.share, "class_num": args.class_num,
            "track_num": args.track_num, "torch": torch.__version__, "machine": platform.machine(),
            "threads": torch.get_num_threads(), "variants": {k: VARIANTS[k][0] for k in VARIANTS},
            "results": [], "tokenizers": {}, "rates": {}}
    if args.resume and args.json and Path(args.json).is_file():
        old = json.loads(Path(args.json).read_text())
        if old.get("budget_s") != args.budget:
            raise SystemExit(f"--resume: {args.json} holds runs of a {old.get('budget_s')} s budget, not {args.budget}")
        data["results"], data["tokenizers"], data["rates"] = old["results"], old["tokenizers"], old["rates"]
    done = {(r["variant"], r["seed"]) for r in data["results"]}
    probe = out / "probe-class-acc.safetensors"  # trained by the first class-acc call, then shared
    for seed in args.seeds:
        for name in args.variants:
            if (name, seed) in done:
                continue
            print(f"[seed {seed}] {name}: {VARIANTS[name][0]}", flush=True)
            data["results"].append(run_variant(name, seed, args, data, probe, log))
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(data, indent=1))
            print(summarise(data["results"], list(VARIANTS)), flush=True)
    print(summarise(data["results"], list(VARIANTS)))


if __name__ == "__main__":
    main()
