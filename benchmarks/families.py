"""Family against family on equal wall-clock: VideoGAN (the demo), MoCoGAN, two-stage AR, masked-token and latent flow.

Every family trains on the demo's data (class-conditional white bouncing circles, squares and
triangles, 32x32, 8 frames) for the same wall-clock budget on this machine, through the real
CLI (``videosynth train`` with ``train.time_limit``). For the two-stage families the budget
includes the tokenizer: the tokenizer gets ``--tokenizer-share`` of it, the second stage what
is left once the tokenizer's process has exited (its start-up counted). Then each run is
judged the same way:

- class accuracy (``videosynth eval class-acc``, one probe trained once on the run data and
  shared by every run), 64 clips per class;
- the weight-free physics metrics (``videosynth eval track``): valid share, bounce
  correctness, tracked share, 256 clips;
- FPD (``videosynth eval fpd``, the same probe's features), 512 clips;
- sampling seconds per clip (64 clips in batches of 16 after a warm-up) and parameters used
  at sampling time (the tokenizer's included for two-stage families);
- for flow, class accuracy and seconds per clip at each of ``--flow-steps`` (Heun and Euler);
- for the masked-token prior, class accuracy, valid share and seconds per clip at each of
  ``--maskgit-steps`` parallel decoding steps.

``--calibrated`` spends the budget as steps instead: each network is first timed on this machine
and trains for its best measured rate x its seconds (``cli_runs.Budget``; the rates are kept in
the JSON), so on an idle machine it spends what the wall-clock budget does, and a busy machine
(another benchmark, a test run) no longer changes the results, only how long they take.

``--config FAMILY=PATH`` trains a family (a two-stage family's second stage) from another config,
recorded per run: a recipe ablation judged exactly as the table is.

Families run interleaved per seed (``train.seed``; the data is the same). The table shows the
median over seeds and writes everything to JSON after every run; ``--resume`` keeps the runs a
JSON already holds (same budget) and trains only the missing (family, seed) pairs, so the table
can be built over several sittings.

The figure beside the JSON (``families.png``: each score per family, the median as a bar and
every seed as a dot, and flow's class accuracy against its sampling steps) is drawn from the
JSON alone, so ``--plot-only`` redraws it without training anything.

    python benchmarks/families.py --out-dir /tmp/families --json benchmarks/results/families.json
    python benchmarks/families.py --budget 60 --seeds 0 --families flow --out-dir /tmp/fam-smoke
    python benchmarks/families.py --calibrated --families ar flow --out-dir /tmp/fam-cal --json fam-cal.json
    python benchmarks/families.py --families ar maskgit --out-dir /tmp/fam --json benchmarks/results/maskgit.json --resume
    python benchmarks/families.py --calibrated --families mocogan --config mocogan=my-recipe.yaml --out-dir /tmp/fam-mine
    python benchmarks/families.py --plot-only --json benchmarks/results/families.json   # -> families.png
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cli_runs import Budget, config_of, figure_for, fresh, last_step, median, read_results, videosynth  # noqa: E402

FAMILIES = ("gan", "mocogan", "ar", "maskgit", "flow")
LABELS = {"gan": "VideoGAN (GAN demo)", "mocogan": "MoCoGAN", "ar": "VQ-VAE + AR Transformer",
          "maskgit": "VQ-VAE + masked (MaskGIT)",
          "flow": "KL-AE + DiT flow matching"}
SPEED_CLIPS = 64


STAGE_CONFIGS = {  # family -> (its tokenizer's config or None, its (second-stage) config; None: the demo's)
    "gan": (None, None),
    "mocogan": (None, "configs/mocogan/demo-32x32x8.yaml"),
    "ar": ("configs/vqvae/shapes-32x32x8.yaml", "configs/transformer/shapes-32x32x8.yaml"),
    "maskgit": ("configs/vqvae/shapes-32x32x8.yaml", "configs/maskgit/shapes-32x32x8.yaml"),
    "flow": ("configs/vqvae/shapes-kl-32x32x8.yaml", "configs/flow/shapes-32x32x8.yaml"),
}


def train_family(family: str, out: Path, budget: float, share: float, seed: int, log: Path, spend: Budget,
                 config: str | None = None) -> dict:
    """Train one family within ``budget`` seconds (as ``spend`` spends them), from ``config`` (its own
    or its second stage's, default :data:`STAGE_CONFIGS`); returns the run directory and steps made."""
    from videosynth.commands.demo import DEMOS

    tok_cfg, stage_cfg = STAGE_CONFIGS[family]
    stage_cfg = config or stage_cfg
    if tok_cfg is None:
        run = fresh(out / family)
        cfg = config_of(stage_cfg) if stage_cfg else DEMOS["videogan"].config
        wall = spend.train(cfg, run, budget, seed, log)
        return {"run": str(run), "wall_s": wall, "steps": {family: last_step(run)}}
    tok, run = fresh(out / f"{family}-tokenizer"), fresh(out / family)
    tok_wall = spend.train(config_of(tok_cfg), tok, budget * share, seed, log)
    stage_wall = spend.train(config_of(stage_cfg, tokenizer_run=str(tok)), run, budget - tok_wall, seed, log)
    return {"run": str(run), "tokenizer_run": str(tok), "wall_s": tok_wall + stage_wall, "tokenizer_wall_s": tok_wall,
            "steps": {"tokenizer": last_step(tok), family: last_step(run)}}


def sampling_speed(run: str, options: dict) -> tuple[float, float]:
    """(seconds per clip, parameters in millions) of sampling ``run`` with ``options``."""
    import videosynth

    pipe = videosynth.load(run, device="cpu")
    pipe(4, seed=99, label=0, **options)  # warm-up (and builds the nets)
    start = time.perf_counter()
    for clips in pipe.stream(SPEED_CLIPS, seed=0, label=0, batch_size=16, **options):
        assert clips.shape[0] > 0
    per_clip = (time.perf_counter() - start) / SPEED_CLIPS
    modules = [pipe.generator(True)] if hasattr(pipe, "generator") else [pipe.net(True), pipe.tokenizer.model]
    params = {id(p): p.numel() for m in modules for p in m.parameters()}
    return per_clip, sum(params.values()) / 1e6


def evaluate(result: dict, out: Path, probe: Path, flow_steps: list[int], maskgit_steps: list[int], log: Path) -> dict:
    run = result["run"]
    scores = {}
    acc_json, track_json, fpd_json = out / "class-acc.json", out / "track.json", out / "fpd.json"
    videosynth("eval", "class-acc", run, "--probe", str(probe), "--num", "64", "--json", str(acc_json), log=log)
    scores["class_acc"] = json.loads(acc_json.read_text())["accuracy"]
    videosynth("eval", "track", "bouncing-shapes", run, "--num", "256", "--json", str(track_json), log=log)
    table = json.loads(track_json.read_text())["comparison"]
    for key in ("valid_share", "bounce_correct", "tracked_share"):
        scores[key] = table[key]["fake"]
        scores[f"real_{key}"] = table[key]["real"]
    videosynth("eval", "fpd", "bouncing-shapes", run, "--weights", str(probe), "--num", "512", "--json", str(fpd_json),
               log=log)
    scores["fpd"] = json.loads(fpd_json.read_text())["value"]
    scores["sec_per_clip"], scores["params_m"] = sampling_speed(run, {})
    if result["family"] == "flow":
        sweep = {}
        for solver in ("euler", "heun"):
            for steps in flow_steps:
                path = out / f"class-acc-{solver}-{steps}.json"
                videosynth("eval", "class-acc", run, "--probe", str(probe), "--num", "64", "--json", str(path),
                           "--option", f"steps={steps}", "--option", f"solver={solver}", log=log)
                sec, _ = sampling_speed(run, {"steps": steps, "solver": solver})
                sweep[f"{solver}-{steps}"] = {"class_acc": json.loads(path.read_text())["accuracy"], "sec_per_clip": sec}
        scores["flow_sweep"] = sweep
    if result["family"] == "maskgit":
        sweep = {}
        for steps in maskgit_steps:
            acc_path, track_path = out / f"class-acc-steps-{steps}.json", out / f"track-steps-{steps}.json"
            videosynth("eval", "class-acc", run, "--probe", str(probe), "--num", "64", "--json", str(acc_path),
                       "--option", f"steps={steps}", log=log)
            videosynth("eval", "track", "bouncing-shapes", run, "--num", "256", "--json", str(track_path),
                       "--option", f"steps={steps}", log=log)
            sec, _ = sampling_speed(run, {"steps": steps})
            sweep[str(steps)] = {"class_acc": json.loads(acc_path.read_text())["accuracy"],
                                 "valid_share": json.loads(track_path.read_text())["comparison"]["valid_share"]["fake"],
                                 "sec_per_clip": sec}
        scores["maskgit_sweep"] = sweep
    return scores


def summarise(results: list[dict], families: list[str], flow_steps: list[int],
              maskgit_steps: list[int] = ()) -> tuple[str, dict]:
    keys = ("class_acc", "valid_share", "bounce_correct", "tracked_share", "fpd", "sec_per_clip", "params_m")
    table, lines = {}, []
    head = f"{'family':<28}{'seeds':>6}{'class acc':>10}{'valid':>8}{'bounce':>8}{'tracked':>8}{'FPD':>9}" \
           f"{'s/clip':>9}{'params M':>9}  steps"
    lines += [head, "-" * len(head)]
    for fam in families:
        rows = [r for r in results if r["family"] == fam]
        if not rows:
            continue
        med = {k: median([float(r["scores"][k]) for r in rows]) for k in keys}  # JSON writes NaN as "nan"
        steps = {name: int(median([r["steps"][name] for r in rows])) for name in rows[0]["steps"]}
        table[fam] = {**med, "seeds": [r["seed"] for r in rows], "median_steps": steps}
        lines.append(f"{LABELS[fam]:<28}{len(rows):>6}{med['class_acc']:>10.3f}{med['valid_share']:>8.3f}"
                     f"{med['bounce_correct']:>8.3f}{med['tracked_share']:>8.3f}{med['fpd']:>9.2f}"
                     f"{med['sec_per_clip']:>9.4f}{med['params_m']:>9.2f}  "
                     + ", ".join(f"{k} {v}" for k, v in steps.items()))
    real = results[0]["scores"]
    lines.append(f"{'real clips':<28}{'':>6}{'':>10}{real['real_valid_share']:>8.3f}{real['real_bounce_correct']:>8.3f}"
                 f"{real['real_tracked_share']:>8.3f}")
    flows = [r for r in results if r["family"] == "flow"]
    if flows:
        lines += ["", f"flow sampling steps (median over {len(flows)} seed(s)): class acc / seconds per clip"]
        lines.append(f"{'solver':<8}" + "".join(f"{s:>16}" for s in flow_steps))
        for solver in ("euler", "heun"):
            cells = []
            for s in flow_steps:
                acc = median([r["scores"]["flow_sweep"][f"{solver}-{s}"]["class_acc"] for r in flows])
                sec = median([r["scores"]["flow_sweep"][f"{solver}-{s}"]["sec_per_clip"] for r in flows])
                table.setdefault("flow_sweep", {})[f"{solver}-{s}"] = {"class_acc": acc, "sec_per_clip": sec}
                cells.append(f"{acc:.3f} / {sec:.4f}")
            lines.append(f"{solver:<8}" + "".join(f"{c:>16}" for c in cells))
    masked = [r for r in results if r["family"] == "maskgit" and "maskgit_sweep" in r["scores"]]
    if masked:
        lines += ["", f"masked-token decoding steps (median over {len(masked)} seed(s)): "
                      "class acc / valid share / seconds per clip"]
        ar_sec = [r["scores"]["sec_per_clip"] for r in results if r["family"] == "ar"]
        for s in maskgit_steps:
            cell = {k: median([r["scores"]["maskgit_sweep"][str(s)][k] for r in masked])
                    for k in ("class_acc", "valid_share", "sec_per_clip")}
            table.setdefault("maskgit_sweep", {})[str(s)] = cell
            speed = f"  ({median(ar_sec) / cell['sec_per_clip']:.1f}x the AR prior's speed)" if ar_sec else ""
            lines.append(f"{s:>3} steps  {cell['class_acc']:.3f} / {cell['valid_share']:.3f} / "
                         f"{cell['sec_per_clip']:.4f}{speed}")
    return "\n".join(lines), table


# (score key, panel title, higher is better, the real clips' key drawn as a reference line)
FIGURE_PANELS = (
    ("class_acc", "class accuracy (probe)", True, None),
    ("valid_share", "valid share (physics)", True, "real_valid_share"),
    ("bounce_correct", "bounce correctness", True, "real_bounce_correct"),
    ("fpd", "FPD (probe features)", False, None),
    ("sec_per_clip", "sampling seconds per clip (CPU)", False, None),
)
SHORT_LABELS = {"gan": "VideoGAN", "mocogan": "MoCoGAN", "ar": "VQ-VAE + AR", "maskgit": "VQ-VAE + masked", "flow": "KL-AE + DiT flow"}
FIGURE_HEADROOM = 1.15  # room above the tallest bar for its value
LOG_HEADROOM = 2.0  # the same on a log axis, and below the shortest bar so it shows


def family_figure(data: dict):
    """The benchmark JSON ``data`` (its ``results``: one entry per family and seed) as a matplotlib Figure.

    One panel per score of :data:`FIGURE_PANELS`: a bar per family at the median over seeds and
    a dot per seed (the real clips' value as a dashed line where the metric has one); a last
    panel has flow's class accuracy against its sampling steps, one line per solver.
    """
    from videosynth.plots import new_figure, palette, use_log_scale

    results = data.get("results") or []
    if not results:
        raise SystemExit("the benchmark JSON has no results to draw")
    families = [f for f in FAMILIES if any(r["family"] == f for r in results)]
    sweeps = [r["scores"]["flow_sweep"] for r in results if "flow_sweep" in r.get("scores", {})]
    seeds = sorted({r["seed"] for r in results})
    title = "families on equal wall-clock"
    if "budget_s" in data:
        title += f": {data['budget_s']:g} s of training each (tokenizer {data.get('tokenizer_share', 0):.0%} of it)"
    fig, axes = new_figure(len(FIGURE_PANELS) + bool(sweeps), f"{title}, seeds {', '.join(map(str, seeds))}")
    colours = palette(len(families))
    for ax, (key, name, higher, real_key) in zip(axes, FIGURE_PANELS):
        values = []
        for i, (fam, colour) in enumerate(zip(families, colours)):
            per_seed = [float(r["scores"][key]) for r in results if r["family"] == fam and key in r["scores"]]
            per_seed = [v for v in per_seed if v == v]  # NaN: not measured
            if not per_seed:
                continue
            ax.bar(i, median(per_seed), color=colour, alpha=0.6, width=0.6)
            ax.scatter([i] * len(per_seed), per_seed, color="black", s=14, zorder=3)
            ax.annotate(f"{median(per_seed):.3g}", (i, max(per_seed + [median(per_seed)])), xytext=(0, 4),
                        textcoords="offset points", ha="center", va="bottom", fontsize="small")
            values += per_seed
        real = float(results[0]["scores"].get(real_key, 0)) if real_key else 0.0
        if use_log_scale(values):
            ax.set_yscale("log")
            ax.set_ylim(min(values) / LOG_HEADROOM, max(values) * LOG_HEADROOM)
        elif values:
            ax.set_ylim(0, max(values + [real]) * FIGURE_HEADROOM)
        if real_key is not None and real_key in results[0]["scores"]:
            ax.axhline(real, color="grey", linestyle="--", linewidth=1, label="real clips")
            ax.legend(fontsize="small", loc="lower right")
        ax.set_xticks(range(len(families)), [SHORT_LABELS[f] for f in families], fontsize="small")
        ax.set_title(f"{name}, {'higher' if higher else 'lower'} is better", fontsize="medium")
        ax.grid(True, axis="y", alpha=0.3)
    if sweeps:
        ax = axes[len(FIGURE_PANELS)]
        for solver in ("euler", "heun"):
            steps = sorted({int(k.split("-")[1]) for k in sweeps[0] if k.startswith(solver + "-")})
            acc = [median([s[f"{solver}-{n}"]["class_acc"] for s in sweeps]) for n in steps]
            ax.plot(steps, acc, marker="o", label=solver)
        ax.set_xscale("log", base=2)
        ax.set_xticks(steps, [str(n) for n in steps])
        ax.set_ylabel("class accuracy")
        ax.set_xlabel("sampling steps")
        ax.set_title("flow: class accuracy by sampling steps (median)", fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.supxlabel("bars: median over seeds; dots: each seed", fontsize="x-small", alpha=0.7)
    return fig


def write_figure(data: dict, out: Path) -> Path:
    """:func:`family_figure` of ``data`` written to ``out`` (.png, .pdf or .svg)."""
    from videosynth.plots import save_figure

    return save_figure(family_figure(data), out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=450.0, help="wall-clock seconds of training per family (default 450)")
    p.add_argument("--tokenizer-share", type=float, default=0.4, help="share of the budget for a tokenizer")
    p.add_argument("--family-share", action="append", default=[], metavar="FAMILY=SHARE",
                   help="a two-stage family's own tokenizer share, part of its recipe (e.g. flow=0.25; repeatable)")
    p.add_argument("--config", action="append", default=[], metavar="FAMILY=PATH",
                   help="a family's config (a two-stage family's second stage) in place of its recipe's, recorded "
                        "per run: a recipe ablation on the same judges (repeatable)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    p.add_argument("--flow-steps", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--maskgit-steps", type=int, nargs="+", default=[8, 12, 16])
    p.add_argument("--calibrated", action="store_true",
                   help="spend the budget as steps at each network's calibrated idle rate (cli_runs.Budget), so a "
                        "busy machine does not change the results")
    p.add_argument("--resume", action="store_true", help="keep the (family, seed) runs --json already holds")
    p.add_argument("--out-dir", help="folder for the runs, configs, logs and per-run JSON (required unless --plot-only)")
    p.add_argument("--json", help="write the results here (with --plot-only: read them from here)")
    p.add_argument("--figure", help="the figure to write (.png, .pdf, .svg); default: the --json path as .png")
    p.add_argument("--plot-only", action="store_true", help="redraw the figure from --json without training")
    args = p.parse_args()
    figure = figure_for(args)
    if args.plot_only:
        print(f"wrote {write_figure(read_results(args), figure)}")
        return 0
    if not args.out_dir:
        raise SystemExit("--out-dir is required (the folder for the runs), unless --plot-only")
    shares = {fam: args.tokenizer_share for fam in FAMILIES}
    for item in args.family_share:
        fam, _, value = item.partition("=")
        if fam not in FAMILIES:
            raise SystemExit(f"--family-share {item}: the family must be one of {', '.join(FAMILIES)}")
        try:
            shares[fam] = float(value)
        except ValueError:
            raise SystemExit(f"--family-share {item}: the share must be a number, e.g. {fam}=0.25") from None
    configs = {}
    for item in args.config:
        fam, _, path = item.partition("=")
        if fam not in FAMILIES or not path:
            raise SystemExit(f"--config {item}: give FAMILY=PATH with FAMILY one of {', '.join(FAMILIES)}")
        if not Path(path).is_file():
            raise SystemExit(f"--config {item}: no such file {path}")
        configs[fam] = str(Path(path).resolve())
    if not all(0 < v < 1 for v in shares.values()):
        raise SystemExit("--tokenizer-share and --family-share must be between 0 and 1")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    probe = out / "probe-class-acc.safetensors"  # trained by the first class-acc call, then shared
    results, rates = [], {}
    if args.resume and args.json and Path(args.json).is_file():
        previous = json.loads(Path(args.json).read_text())
        if previous.get("budget_s", args.budget) != args.budget:
            raise SystemExit(f"--resume: {args.json} holds runs of {previous['budget_s']:g} s, not {args.budget:g} s")
        if previous.get("calibrated", False) != args.calibrated:
            raise SystemExit(f"--resume: {args.json} was measured {'with' if previous.get('calibrated') else 'without'}"
                             " --calibrated; resume it the same way")
        results, rates = previous.get("results") or [], previous.get("rates", {})
        print(f"resuming: {len(results)} run(s) in {args.json}", file=sys.stderr)
    spend = Budget(args.calibrated, rates, out)
    for i, seed in enumerate(args.seeds):
        order = args.families if i % 2 == 0 else list(reversed(args.families))  # interleaved
        for fam in order:
            if any(r["family"] == fam and r["seed"] == seed for r in results):
                continue
            where = out / f"seed{seed}"
            print(f"[seed {seed}] training {fam} for {args.budget:g} s ...", file=sys.stderr, flush=True)
            result = {"family": fam, "seed": seed, "tokenizer_share": shares[fam],
                      "config": configs.get(fam) or STAGE_CONFIGS[fam][1] or "the demo's",
                      **train_family(fam, where, args.budget, shares[fam], seed, log, spend, configs.get(fam))}
            print(f"[seed {seed}] evaluating {fam} ({result['steps']}, {result['wall_s']:.0f} s) ...", file=sys.stderr,
                  flush=True)
            result["scores"] = evaluate(result, where / f"{fam}-eval", probe, args.flow_steps, args.maskgit_steps, log)
            results.append(result)
            if args.json:  # partial results survive an interrupted benchmark
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps({"budget_s": args.budget, "calibrated": args.calibrated,
                                                       "rates": rates, "results": results}, indent=1))
    text, table = summarise(results, [f for f in FAMILIES if any(r["family"] == f for r in results)],
                            args.flow_steps, args.maskgit_steps)
    print(f"\nfamilies on equal wall-clock: {args.budget:g} s of training each "
          f"(tokenizer {args.tokenizer_share:.0%} of it), seeds {args.seeds}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}\n")
    print(text)
    data = {"budget_s": args.budget, "calibrated": args.calibrated, "rates": rates,
            "tokenizer_share": args.tokenizer_share, "seeds": args.seeds,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "table": table, "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
        print(f"\nwrote {args.json}")
    if figure is not None:
        print(f"wrote {write_figure(data, figure)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
