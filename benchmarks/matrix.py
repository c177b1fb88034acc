"""The capability matrix: every generative family × every condition it declares, trained and scored against its control.

For each generative family of the registry (``videosynth.train.families``) and each condition
its capabilities declare, one *cell* trains on the built-in data through the real CLI
(``videosynth train`` with ``train.time_limit``: the same budget for every cell) and is scored
with its metric **and its control**:

=============  ==============================================  =====================================================
condition      score (``videosynth eval ...``)                   control
=============  ==============================================  =====================================================
class          class accuracy (``class-acc``, probe)             samples of another class scored as this one
text           all-three attribute accuracy on held-out          clips made for another caption (shuffled captions)
               (shape, colour, direction) combinations
               (``text``; data.holdout_combinations)
sound          bounce F1 (``sync``)                              clips made for another clip's sound
first frames   position error over the next 4 frames, px         constant-velocity extrapolation of the observed
               (``predict``, half the clip observed)             track (lower is better for both)
long           valid share at 10x the training length            real clips of that length
               (``track --frames``; 1x and 3x, class kept in
               the JSON)
=============  ==============================================  =====================================================

Class, first-frames and long cells train on the demo's data (white shapes); text cells on
palette colours with a compositional split; sound cells on the demo's data with its soundtrack.
First-frames and long cells train unconditional runs (flow's with per-frame noise levels, the
forcing config's loss, so it continues clean context as trained). Two-stage families (tokens or latents, then
a prior) **share one tokenizer per (tokenizer kind, data, seed)** across their cells: it is
trained once, for ``--tokenizer-budget`` seconds, outside the cells' budget (both are stated in
the JSON and the table). Each cell is trained for every seed (``train.seed``; the data are the
same), and the table shows medians.

``--calibrated`` spends every budget as steps at the network's rate timed once on this machine
(``cli_runs.Budget``, the rates kept in the JSON) instead of wall-clock, so a sitting on a busy
machine gives the results an idle one would, only later. Every network of the sitting's cells is
timed first, together (a two-stage cell's prior on a tokenizer trained for a few steps: its rate
does not depend on the tokenizer's weights); keep the machine idle until the line "every network
timed" (``--calibrate-only`` stops there), then the rest may share it.

Cells are independent: ``--cells transformer:class flow:text`` runs some, ``--resume`` keeps every
(cell, seed) the JSON already holds (same budget) and trains only the rest, so the matrix can be
built over several sittings; the JSON is written after every cell. The markdown table (cell =
score / control, a dash with the reason where a family does not take a condition by design) and
the figure are drawn from the JSON alone (``--plot-only``).

    python benchmarks/matrix.py --out-dir /tmp/matrix --json benchmarks/results/matrix.json
    python benchmarks/matrix.py --out-dir /tmp/matrix --json benchmarks/results/matrix.json --resume --cells flow:text
    python benchmarks/matrix.py --plot-only --json benchmarks/results/matrix.json   # table + matrix.png
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cli_runs import (Budget, MANY_SECONDS, config_of, figure_for, fresh, last_step, median, read_results,  # noqa: E402
                      train, videosynth)

CONDITIONS = ("class", "text", "sound", "prime", "long")
TITLES = {"class": "class", "text": "text (held-out)", "sound": "sound", "prime": "first frames", "long": "long (10x)"}
# (what the score is, what the control is, higher is better)
LEGEND = {
    "class": ("class accuracy", "samples of the next class scored as this one", True),
    "text": ("all-three attribute accuracy on held-out combinations", "shuffled captions", True),
    "sound": ("bounce F1", "shuffled sound", True),
    "prime": ("position error over the next 4 frames, px (lower is better)", "constant-velocity extrapolation",
              False),
    "long": ("valid share at 10x the training length", "real clips of that length", True),
}
LENGTHS = (1, 3, 10)  # long cells: multiples of the training length scored
FIGURE_HEADROOM = 1.15  # room above the tallest bar


# ---------------------------------------------------------------------------------------
# What is trained: per scale, the families' configs and the data of each condition
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """The configs of one matrix size: ``full`` (the 32x32x8 demo data and configs) or ``tiny`` (the
    registry's tiny configs: for tests and smoke runs)."""

    name: str
    data: dict
    text_data: dict  # changes to ``data`` for text cells
    sound_data: dict  # changes to ``data`` for sound cells
    condition: dict = field(default_factory=dict)  # added to every condition section
    sound_condition: dict = field(default_factory=dict)  # added to sound cells' condition section
    eval_num: int = 128
    long_num: int = 64
    probe_steps: int = 600


def _full_configs() -> dict[str, tuple[dict, dict | None]]:
    """family -> (its class-conditional config at 32x32x8, its tokenizer's config or None)."""
    from videosynth.commands.demo import DEMO_DATA, DEMOS

    mocogan = config_of("configs/mocogan/demo-32x32x8.yaml", data=dict(DEMO_DATA))
    maskgit = config_of("configs/maskgit/shapes-32x32x8.yaml", data=dict(DEMO_DATA))
    maskgit.pop("tokenizer_run")
    return {"videogan": (DEMOS["videogan"].config, None), "mocogan": (mocogan, None),
            "transformer": (DEMOS["transformer"].config, DEMOS["transformer"].tokenizer),
            "maskgit": (maskgit, DEMOS["transformer"].tokenizer),
            "flow": (DEMOS["flow"].config, DEMOS["flow"].tokenizer)}


def _tiny_configs() -> dict[str, tuple[dict, dict | None]]:
    from videosynth.train.families import FAMILIES, tiny_config

    out = {}
    for name, fam in FAMILIES.items():
        cfg = tiny_config(name, "plain", "unused")
        cfg.pop("tokenizer_run", None)
        out[name] = (cfg, tiny_config("vqvae", fam.tokenizer) if fam.tokenizer else None)
    return out


def scales() -> dict[str, tuple[Scale, dict]]:
    from videosynth.commands.demo import DEMO_DATA
    from videosynth.train.families import TINY_DATA, TINY_SOUND

    full = Scale("full", dict(DEMO_DATA), {"colour": "", "holdout_combinations": 24}, {"audio": 16000},
                 condition={"dropout": 0.1})
    tiny = Scale("tiny", dict(TINY_DATA), {"colour": "", "holdout_combinations": 12}, {"audio": 8000},
                 condition={"dim": 8, "text_heads": 2, "dropout": 0.2},
                 sound_condition={k: v for k, v in TINY_SOUND.items() if k != "audio"},
                 eval_num=4, long_num=2, probe_steps=2)
    return {"full": (full, _full_configs), "tiny": (tiny, _tiny_configs)}


# family-specific changes a condition needs (a flow model hears text and sound by cross-attention, and
# continues observed frames and its own windows with per-frame times: the forcing config's loss)
FORCING_LOSS = {"loss": {"frame_times": "independent", "context_share": 0.25, "full_share": 0.25}}
FAMILY_CHANGES = {
    ("flow", "text"): {"model": {"cross_attention": True}},
    ("flow", "sound"): {"model": {"cross_attention": True, "frame_sound": True}},
    ("flow", "prime"): FORCING_LOSS,
    ("flow", "long"): FORCING_LOSS,
}
CLASS_ONLY_LOSS = ("aux_class_weight",)  # loss keys that need class labels
GUIDANCE_KEYS = ("guidance", "guidance_scale")  # sample keys of classifier-free guidance


def declared(family) -> dict[str, str | None]:
    """condition -> None where the family takes it, else the reason it does not (by design)."""
    can = family.can
    return {"class": None, "text": None,
            "sound": None if can.sound else "takes no sound",
            "prime": None if can.prime else "draws whole clips from noise, continues no frames",
            "long": None if can.long else "makes clips of its training length only"}


def generative_families() -> dict:
    from videosynth.train.families import FAMILIES

    return {name: fam for name, fam in FAMILIES.items() if fam.can.generative}


def all_cells() -> list[str]:
    return [f"{name}:{cond}" for name, fam in generative_families().items()
            for cond, why in declared(fam).items() if why is None]


def _merge(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def cell_data(scale: Scale, cond: str) -> dict:
    if cond == "text":
        return {**scale.data, **scale.text_data}
    if cond == "sound":
        return {**scale.data, **scale.sound_data}
    return dict(scale.data)


def cell_config(family: str, cond: str, scale: Scale, configs: dict) -> tuple[dict, dict | None]:
    """The run config of a cell and its tokenizer's config (None for one-stage families)."""
    base, tokenizer = configs[family]
    cfg = copy.deepcopy(base)
    cfg["data"] = cell_data(scale, cond)
    kind = {"class": "class", "text": "text"}.get(cond, "none")
    cfg["condition"] = {**cfg.get("condition", {}), **scale.condition, "kind": kind}
    if cond == "sound":
        cfg["condition"].update(audio=True, **scale.sound_condition)
    if kind != "class" and "loss" in cfg:
        cfg["loss"] = {k: v for k, v in cfg["loss"].items() if k not in CLASS_ONLY_LOSS}
    if kind == "none" and cond != "sound" and "sample" in cfg:  # nothing to guide an unconditional run by
        cfg["sample"] = {k: v for k, v in cfg["sample"].items() if k not in GUIDANCE_KEYS}
    cfg = _merge(cfg, FAMILY_CHANGES.get((family, cond), {}))
    if tokenizer is not None:
        tokenizer = {**copy.deepcopy(tokenizer), "data": {k: v for k, v in cfg["data"].items() if k != "audio"}}
    return cfg, tokenizer


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------------------
# Training and scoring one cell
# ---------------------------------------------------------------------------------------


def trained(cfg: dict, run: Path, seconds: float, seed: int, args, log: Path) -> dict:
    """Train ``cfg`` into ``run`` unless an earlier sitting finished it: ``{"wall_s", "steps"}``.

    A finished training leaves ``<run>.trained.json`` beside the run, so a sitting stopped while
    scoring keeps its training; a run folder without it was cut short and is trained again.
    """
    done = run.parent / f"{run.name}.trained.json"
    if done.is_file():
        return json.loads(done.read_text())
    if run.exists():
        print(f"{run}: training was cut short in an earlier sitting; training it again", file=sys.stderr)
        shutil.rmtree(run)
    if args.calibrated:
        wall = Budget(True, args.rates, Path(args.out_dir) / "calibrate").train(cfg, run, seconds, seed, log)
    else:
        wall = train(cfg, run, seconds, seed, log, args.steps)
    record = {"wall_s": wall, "steps": last_step(run)}
    done.write_text(json.dumps(record))
    return record


def shared_tokenizer(tok_cfg: dict, seed: int, args, state: dict, log: Path) -> str:
    """The run directory of the tokenizer of ``tok_cfg`` (kind and data) for ``seed``: trained the first
    time a cell asks for it (``state["tokenizers"]`` records it), then shared by every cell that needs it."""
    key = f"{digest(tok_cfg)}-seed{seed}"
    run = Path(args.out_dir) / "tokenizers" / key
    record = trained(tok_cfg, run, args.tokenizer_budget, seed, args, log)
    state["tokenizers"][key] = {"run": str(run), **record, "seed": seed, "data": tok_cfg["data"],
                                "bottleneck": tok_cfg.get("model", {}).get("bottleneck", "vq")}
    return str(run)


def probe_for(data: dict, args) -> str:
    """One class probe per data config (sound and holdout aside), trained by the first eval that needs it."""
    shown = {k: v for k, v in data.items() if k not in ("audio", "holdout_combinations")}
    return str(Path(args.out_dir) / "probes" / f"class-{digest(shown)}.safetensors")


def _eval(log: Path, out: Path, *argv: str) -> dict:
    videosynth("eval", *argv, "--json", str(out), log=log)
    return json.loads(out.read_text())


def score_cell(cond: str, run: str, data: dict, scale: Scale, args, where: Path, log: Path) -> dict:
    """``{"score", "control", "detail"}`` of a trained cell, by its eval command."""
    probe = ["--probe", probe_for(data, args), "--probe-steps", str(args.probe_steps)]
    num = ["--num", str(args.eval_num)]
    if cond == "class":
        r = _eval(log, where / "class-acc.json", "class-acc", run, *num, *probe)
        return {"score": r["accuracy"], "control": r["shuffled_accuracy"],
                "detail": {k: r[k] for k in ("per_class", "real_accuracy", "real_shuffled_accuracy", "chance")}}
    if cond == "text":
        r = _eval(log, where / "text.json", "text", run, *num, *probe)
        held = r["scores"]["held_out"]
        return {"score": held["matched"]["all_three"], "control": held["shuffled"]["all_three"],
                "detail": {"scores": r["scores"], "held_out": r["held_out"]}}
    if cond == "sound":
        r = _eval(log, where / "sync.json", "sync", run, *num)
        return {"score": r["scores"]["matched"]["bounce_f1"], "control": r["scores"]["shuffled"]["bounce_f1"],
                "detail": r["scores"]}
    if cond == "prime":
        r = _eval(log, where / "predict.json", "predict", run, *num, *probe)
        return {"score": r["scores"]["run"]["error@4"], "control": r["scores"]["constant velocity"]["error@4"],
                "detail": {"scores": r["scores"], "prime_frames": r["prime_frames"]}}
    per_length = {}
    for m in LENGTHS:
        r = _eval(log, where / f"track-{m}x.json", "track", data["name"], run, "--num", str(args.long_num),
                  "--frames", str(m * data["frames"]), "--class-kept", *probe)
        per_length[f"{m}x"] = r["comparison"] | {"class_kept_shuffled": {"real": r["real"]["class_kept_shuffled"],
                                                                          "fake": r["fake"]["class_kept_shuffled"]}}
    last = per_length[f"{LENGTHS[-1]}x"]["valid_share"]
    return {"score": last["fake"], "control": last["real"], "detail": per_length}


CALIBRATION_TOKENIZER_STEPS = 2  # enough for a prior's latents or tokens to have their shape


def calibrate(cells: list[str], scale: Scale, configs: dict, args, state: dict, json_path: str | None) -> None:
    """Time every network of ``cells`` (kept in ``state["rates"]``) before any cell trains, so that
    only this first part of a calibrated sitting needs an idle machine."""
    out = Path(args.out_dir)
    log = out / "commands.log"
    budget = Budget(True, args.rates, out / "calibrate")
    for cell in cells:
        cfg, tok_cfg = cell_config(*cell.split(":"), scale, configs)
        if tok_cfg is not None:
            tok_run = out / "calibrate" / f"tokenizer-{digest(tok_cfg)}"
            if not (tok_run.parent / f"{tok_run.name}.trained.json").is_file():
                budget.rate(tok_cfg, log)
                train(tok_cfg, fresh(tok_run), MANY_SECONDS, 0, log, steps=CALIBRATION_TOKENIZER_STEPS)
                (tok_run.parent / f"{tok_run.name}.trained.json").write_text("{}")
            cfg["tokenizer_run"] = str(tok_run)
        budget.rate(cfg, log)
        if json_path:  # timings survive an interrupted sitting
            Path(json_path).parent.mkdir(parents=True, exist_ok=True)
            Path(json_path).write_text(json.dumps(state, indent=1))
    print(f"every network timed ({len(args.rates)} rates); the machine may now be shared", file=sys.stderr,
          flush=True)


def run_cell(cell: str, seed: int, scale: Scale, configs: dict, args, state: dict) -> dict:
    family, cond = cell.split(":")
    out = Path(args.out_dir)
    log = out / "commands.log"
    cfg, tok_cfg = cell_config(family, cond, scale, configs)
    result = {"cell": cell, "seed": seed}
    if tok_cfg is not None:
        cfg["tokenizer_run"] = result["tokenizer_run"] = shared_tokenizer(tok_cfg, seed, args, state, log)
    run = out / f"seed{seed}" / cell.replace(":", "-")
    record = trained(cfg, run, args.budget, seed, args, log)
    result["train_wall_s"], result["steps"] = record["wall_s"], record["steps"]
    start = time.perf_counter()
    where = out / f"seed{seed}" / f"{cell.replace(':', '-')}-eval"
    where.mkdir(parents=True, exist_ok=True)
    result.update(score_cell(cond, str(run), cfg["data"], scale, args, where, log))
    result["eval_wall_s"] = time.perf_counter() - start
    result["run"] = str(run)
    return result


# ---------------------------------------------------------------------------------------
# The table and the figure, from the JSON alone
# ---------------------------------------------------------------------------------------


def cell_summary(rows: list[dict]) -> dict:
    return {"score": median([r["score"] for r in rows]), "control": median([r["control"] for r in rows]),
            "seeds": [r["seed"] for r in rows], "steps": median([r["steps"] for r in rows]),
            "wall_s": median([r["train_wall_s"] + r["eval_wall_s"] for r in rows])}


def markdown_table(data: dict) -> str:
    """The README table of the JSON ``data``: a row per family, a column per condition, cell = score / control."""
    fams = generative_families()
    lines = ["| family | " + " | ".join(TITLES[c] for c in CONDITIONS) + " |",
             "|---|" + "---|" * len(CONDITIONS)]
    for name, fam in fams.items():
        cells = []
        for cond, why in declared(fam).items():
            rows = [r for r in data["results"] if r["cell"] == f"{name}:{cond}"]
            if why is not None:
                cells.append(f"— ({why})")
            elif not rows:
                cells.append("not run yet")
            else:
                s = cell_summary(rows)
                cells.append(f"{s['score']:.3g} / {s['control']:.3g}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    walls = [r["train_wall_s"] + r["eval_wall_s"] for r in data["results"]]
    tok = data.get("tokenizers", {})
    lines += ["", f"Cell = median score / median control over seeds {data.get('seeds')} ({data.get('scale')} scale); "
              f"each cell trained {data['budget_s']:g} s (train.time_limit), two-stage families on a shared tokenizer "
              f"per data config trained {data['tokenizer_budget_s']:g} s ({len(tok)} tokenizer run(s)); "
              f"wall time per cell and seed, training and scoring: median {median(walls):.0f} s."]
    lines += [f"- **{TITLES[c]}**: {LEGEND[c][0]} / {LEGEND[c][1]}" for c in CONDITIONS]
    return "\n".join(lines)


def matrix_figure(data: dict):
    """One panel per condition: a bar per family at its median score, a hatched bar at its control, a dot per seed."""
    from videosynth.plots import new_figure, palette

    fams = [name for name in generative_families()]
    fig, axes = new_figure(len(CONDITIONS), f"capability matrix ({data.get('scale')} scale): {data['budget_s']:g} s "
                                            f"per cell, seeds {', '.join(map(str, data.get('seeds', [])))}")
    colours = palette(len(fams))
    for ax, cond in zip(axes, CONDITIONS):
        top = 0.0
        for i, (name, colour) in enumerate(zip(fams, colours)):
            rows = [r for r in data["results"] if r["cell"] == f"{name}:{cond}"]
            if not rows:
                continue
            s = cell_summary(rows)
            top = max(top, s["control"], *(r["score"] for r in rows))
            ax.bar(i - 0.2, s["score"], width=0.4, color=colour, alpha=0.7)
            ax.bar(i + 0.2, s["control"], width=0.4, color="white", edgecolor=colour, hatch="//")
            ax.scatter([i - 0.2] * len(rows), [r["score"] for r in rows], color="black", s=10, zorder=3)
        ax.set_ylim(0, top * FIGURE_HEADROOM if top > 0 else 1)
        ax.set_xticks(range(len(fams)), fams, fontsize="small")
        ax.set_title(f"{TITLES[cond]}: {LEGEND[cond][0]}", fontsize="small")
        ax.grid(True, axis="y", alpha=0.3)
    fig.supxlabel("solid: median score (dots: each seed); hatched: its control", fontsize="x-small", alpha=0.7)
    return fig


def report(data: dict, figure: Path | None) -> None:
    print(markdown_table(data))
    if figure is not None and data["results"]:
        from videosynth.plots import save_figure

        print(f"wrote {save_figure(matrix_figure(data), figure)}")


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", nargs="+", metavar="FAMILY:CONDITION", help="cells to run (default: every declared "
                   f"one); conditions: {', '.join(CONDITIONS)}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--budget", type=float, default=300.0, help="training seconds per cell (default 300)")
    p.add_argument("--tokenizer-budget", type=float, default=150.0,
                   help="training seconds of each shared tokenizer (default 150)")
    p.add_argument("--scale", choices=("full", "tiny"), default="full",
                   help="full: the 32x32x8 demo data and configs; tiny: the registry's tiny configs (smoke runs)")
    p.add_argument("--steps", type=int, default=10**6, help="also stop each training run at this many steps")
    p.add_argument("--eval-num", type=int, help="clips per eval (default: the scale's)")
    p.add_argument("--probe-steps", type=int, help="training steps of each class probe (default: the scale's)")
    p.add_argument("--calibrated", action="store_true",
                   help="spend each budget as steps at the network's calibrated idle rate (cli_runs.Budget): results "
                        "that do not depend on what else the machine runs")
    p.add_argument("--calibrate-only", action="store_true",
                   help="with --calibrated: time every network of the cells, then stop (on an idle machine)")
    p.add_argument("--resume", action="store_true", help="keep the (cell, seed) results --json already holds")
    p.add_argument("--out-dir", help="folder for the runs, configs, probes, logs (required unless --plot-only)")
    p.add_argument("--json", help="write the results here (with --plot-only: read them from here)")
    p.add_argument("--figure", help="the figure (.png, .pdf, .svg); default: the --json path as .png")
    p.add_argument("--plot-only", action="store_true", help="print the table and draw the figure from --json")
    return p.parse_args(argv)


def load_state(args, scale: Scale) -> dict:
    state = {"scale": scale.name, "budget_s": args.budget, "tokenizer_budget_s": args.tokenizer_budget,
             "calibrated": args.calibrated, "seeds": args.seeds, "tokenizers": {}, "rates": {}, "results": []}
    if args.resume and args.json and Path(args.json).is_file():
        previous = json.loads(Path(args.json).read_text())
        for key in ("scale", "budget_s", "tokenizer_budget_s", "calibrated"):
            if previous.get(key, False if key == "calibrated" else None) != state[key]:
                raise SystemExit(f"--resume: {args.json} holds {key} {previous.get(key)}, not {state[key]}")
        state["tokenizers"], state["results"] = previous.get("tokenizers", {}), previous.get("results", [])
        state["rates"] = previous.get("rates", {})
        state["seeds"] = sorted(set(previous.get("seeds", [])) | set(args.seeds))
        print(f"resuming: {len(state['results'])} finished cell(s) in {args.json}", file=sys.stderr)
    return state


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figure = figure_for(args)
    if args.plot_only:
        report(read_results(args), figure)
        return 0
    if not args.out_dir:
        raise SystemExit("--out-dir is required (the folder for the runs), unless --plot-only")
    scale, configs_of = scales()[args.scale]
    args.eval_num = args.eval_num or scale.eval_num
    args.long_num = min(scale.long_num, args.eval_num)
    args.probe_steps = args.probe_steps or scale.probe_steps
    cells = args.cells or all_cells()
    unknown = [c for c in cells if c not in all_cells()]
    if unknown:
        raise SystemExit(f"--cells {' '.join(unknown)}: not a declared cell; declared: {' '.join(all_cells())}")
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    state = load_state(args, scale)
    args.rates = state["rates"]  # calibrated step rates, filled as networks are first timed
    configs = configs_of()
    if args.calibrate_only and not args.calibrated:
        raise SystemExit("--calibrate-only times networks for --calibrated; add --calibrated")
    if args.calibrated:
        calibrate(cells, scale, configs, args, state, args.json)
        if args.calibrate_only:
            return 0
    for seed in args.seeds:
        for cell in cells:
            if any(r["cell"] == cell and r["seed"] == seed for r in state["results"]):
                continue
            print(f"[seed {seed}] {cell}: training {args.budget:g} s, then scoring ...", file=sys.stderr, flush=True)
            state["results"].append(run_cell(cell, seed, scale, configs, args, state))
            if args.json:  # partial results survive an interrupted matrix
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(state, indent=1))
    state["table"] = {cell: cell_summary([r for r in state["results"] if r["cell"] == cell])
                      for cell in sorted({r["cell"] for r in state["results"]})}
    state["host"] = {"processor": platform.processor() or platform.machine()}
    if args.json:
        Path(args.json).write_text(json.dumps(state, indent=1))
        print(f"wrote {args.json}")
    report(state, figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
