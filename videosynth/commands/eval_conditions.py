"""``videosynth eval {sync,text,predict,class-acc,disentangle}``: does a run's sample follow what it was given?

Each samples one run on its own data and scores the clips against their conditions (sound, caption,
observed frames, class, content and motion codes), beside a control whose conditions do not match.
Examples::

    videosynth eval sync runs/my-sound-run --json sync.json
    videosynth eval text runs/my-text-run
    videosynth eval predict runs/my-run --prime-frames 4
    videosynth eval class-acc runs/my-class-run --num 64
    videosynth eval disentangle runs/my-mocogan-run --rows 12
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from videosynth.commands.eval_common import json_folder_made, parse_options, probe_args
from videosynth.errors import ConfigError

DEFAULT_SYNC_NUM = 128
DEFAULT_TEXT_NUM = 128


def _run_args(p: argparse.ArgumentParser, num: int) -> None:
    """The arguments of an eval that samples one run against its data's val clips."""
    p.add_argument("--num", type=int, default=num, help=f"val clips scored (default {num})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", metavar="OUT", help="also write the result (with its protocol) to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none is shown off a terminal anyway)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="sampling option for the run, e.g. --option guidance=3 (repeatable; as videosynth sample's)")
    probe_args(p)


def _loaded_run(args: argparse.Namespace):
    """The run of ``args.run`` on ``args.device`` once the common arguments are checked: ``(pipeline, device)``."""
    import videosynth
    from videosynth.device import select_device
    from videosynth.pipelines.base import check_common

    check_common(cli=True, num=args.num, batch_size=args.batch_size, seed=args.seed)
    device = str(select_device(args.device))
    return videosynth.load(args.run, device=device), device


def _write_result(result: dict, args: argparse.Namespace, run: str) -> None:
    if args.json:
        from videosynth.metrics.protocol import jsonable

        out = {**result, "protocol": {**result["protocol"], "run": str(run)}}
        Path(args.json).write_text(json.dumps(jsonable(out), indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json}")


# ---------------------------------------------------------------------------------------
# sync
# ---------------------------------------------------------------------------------------


def add_sync(metrics) -> None:
    """``eval sync``: audio-visual sync of a sound-conditioned or joint audio-video run."""
    sy = metrics.add_parser("sync", help="does the motion follow the sound? real vs matched vs shuffled sound",
                            description="Audio-visual sync of a sound-conditioned run on the clips of its own data's "
                                        "val split: bounce F1 and pitch-height correlation against the exact ground "
                                        "truth of the built-in soundtrack (one object), or the energy-onset "
                                        "heuristic for folders of videos; for real clips, clips made for their "
                                        "sound, and a control made for another clip's sound. On a joint "
                                        "audio-video run: clips made with their own sound, sound made for real "
                                        "clips and clips made for real sounds, each against a shuffled control.")
    sy.add_argument("run", help="a run trained with condition.audio, or a joint audio-video run (joint.audio)")
    sy.add_argument("--num", type=int, default=DEFAULT_SYNC_NUM, help=f"clips per side (default {DEFAULT_SYNC_NUM})")
    sy.add_argument("--seed", type=int, default=0)
    sy.add_argument("--batch-size", type=int, default=16)
    sy.add_argument("--tolerance", type=int, default=1, help="frames an event may be off (default 1)")
    sy.add_argument("--device", default="auto")
    sy.add_argument("--json", metavar="OUT", help="also write the result (with its protocol) to this JSON file")
    sy.add_argument("--no-progress", action="store_true", help="no progress bar (none is shown off a terminal anyway)")
    sy.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="sampling option for the run, e.g. --option guidance=3 (repeatable; as videosynth sample's)")
    sy.add_argument("--spectrograms", metavar="PNG", help="joint audio-video runs: also draw the log-mel spectrograms "
                                                          "of 3 val clips' real sound, the sound made for them and "
                                                          "generated clips' own sound here")
    probe_args(sy)  # class-conditional joint runs: the class-timbre scores see each clip's class with it
    sy.set_defaults(func=json_folder_made(run_sync))


def run_sync(args: argparse.Namespace) -> int:
    """``eval sync``: :func:`videosynth.metrics.sync.sync_protocol`, printed (and written as JSON)."""
    from videosynth.metrics.protocol import jsonable
    from videosynth.metrics.sync import SYNC_SIDES, sync_protocol
    from videosynth.progress import progress_bar

    pipe, device = _loaded_run(args)
    if pipe.generates_sound:
        from videosynth.commands.eval_audio import run_joint_sync

        return run_joint_sync(args, pipe, device)
    if args.spectrograms:
        raise ConfigError(f"--spectrograms draws the sound a joint audio-video run makes; {args.run} makes none")
    options = parse_options(args.option)
    with progress_bar(2 * args.num, f"sampling {args.run}", enabled=not args.no_progress) as bar:
        result = sync_protocol(pipe, args.num, args.seed, args.tolerance, args.batch_size, options,
                               on_progress=bar.update)
    scores = result["scores"]
    print(f"{result['title']}; {args.num} clips of {result['frames']} frames, +-{args.tolerance} frame(s)")
    print(f"{'':22s}" + "".join(f"{side:>10s}" for side in SYNC_SIDES))
    for key in scores["real"]:
        print(f"{key:22s}" + "".join(f"{scores[side][key]:10.3f}" for side in SYNC_SIDES))
    print("matched = clips made for their own sound; shuffled = made for another clip's sound, scored against "
          "the first (a model that ignores its sound scores the same on both)")
    if args.json:
        out = {"metric": result["metric"], "scores": scores, "protocol": {**result["protocol"], "run": str(args.run)}}
        Path(args.json).write_text(json.dumps(jsonable(out), indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json}")
    return 0


# ---------------------------------------------------------------------------------------
# text / predict
# ---------------------------------------------------------------------------------------


def add_text(metrics) -> None:
    """``eval text``: a text-conditioned run's clips against their captions."""
    tx = metrics.add_parser("text", help="does each clip show the shape, colour and direction of its caption? "
                                         "against a shuffled-caption control",
                            description="Text conditioning of a run trained on one-object bouncing-shapes with "
                                        "condition.kind: text: one clip per val caption, scored on shape (class "
                                        "probe), colour and initial direction (tracker) and all three, beside real "
                                        "clips, and clips made for another clip's caption (the control). With "
                                        "data.holdout_combinations the held-out combinations are scored apart.")
    tx.add_argument("run", help="a run trained with condition.kind: text")
    _run_args(tx, DEFAULT_TEXT_NUM)
    tx.set_defaults(func=json_folder_made(run_text))


def run_text(args: argparse.Namespace) -> int:
    """``eval text``: :func:`videosynth.metrics.text.text_protocol`, printed (and written as JSON)."""
    from videosynth.metrics.text import ATTRIBUTES, SIDES, check_text_run, text_protocol
    from videosynth.progress import progress_bar

    pipe, device = _loaded_run(args)
    check_text_run(pipe, args.num)
    sets = 2 if pipe.data.holdout_combinations else 1
    with progress_bar(2 * sets * args.num, f"sampling {args.run}", enabled=not args.no_progress) as bar:
        result = text_protocol(pipe, args.num, args.seed, args.batch_size, parse_options(args.option), args.probe,
                               args.probe_steps, device, on_progress=bar.update)
    keys = (*ATTRIBUTES, "all_three")
    print(f"text conditioning of {args.run} (step {pipe.step}): attribute accuracy of {args.num} val captions")
    for name, table in result["scores"].items():
        title = "every combination" if name == "all" else \
            f"held-out combinations ({len(result['held_out'])} never in training)"
        print(f"  {title}:\n  {'':16s}" + "".join(f"{k:>11s}" for k in keys))
        for side in SIDES:
            print(f"  {side:16s}" + "".join(f"{table[side][k]:11.3f}" for k in keys))
    print("real shuffled = real clips against the caption before theirs (chance); shuffled = clips made for the "
          "caption before, scored against their own (a run that ignores its text scores the same as matched)")
    _write_result(result, args, args.run)
    return 0


def add_predict(metrics) -> None:
    """``eval predict``: a run's continuations of observed frames against the true future."""
    pr = metrics.add_parser("predict", help="continue k real frames of val clips: position error against the true "
                                            "future, beside copy-last-frame and constant-velocity controls",
                            description="Video prediction by a run that continues observed frames (a prime-capable "
                                        "family) on its one-object built-in data: tracked position error per "
                                        "future frame (px), class kept, valid share.")
    pr.add_argument("run", help="a run of a family that continues frames (mocogan, transformer, maskgit, flow)")
    pr.add_argument("--prime-frames", type=int, help="observed frames k (default: half the training clip)")
    _run_args(pr, DEFAULT_TEXT_NUM)
    pr.set_defaults(func=json_folder_made(run_predict))


def run_predict(args: argparse.Namespace) -> int:
    """``eval predict``: :func:`videosynth.metrics.prediction.predict_protocol`, printed (and written as JSON)."""
    from videosynth.metrics.prediction import HORIZON, SIDES, predict_protocol
    from videosynth.progress import progress_bar
    from videosynth.train.families import get_family

    pipe, device = _loaded_run(args)
    if not get_family(pipe.family).can.prime:
        raise ConfigError(f"{args.run} is a {pipe.family} run, which does not continue observed frames; eval "
                          "predict needs a family that does (mocogan, transformer, maskgit, flow)")
    with progress_bar(args.num, f"sampling {args.run}", enabled=not args.no_progress) as bar:
        result = predict_protocol(pipe, args.num, args.seed, args.prime_frames, args.batch_size,
                                  parse_options(args.option), args.probe, args.probe_steps, device,
                                  on_progress=bar.update)
    k, frames = result["prime_frames"], result["frames"]
    print(f"video prediction by {args.run} (step {pipe.step}): {k} of {frames} frames observed, {args.num} val clips")
    head = f"error@{HORIZON}"
    print(f"  {'':18s}{head:>10s}{'class kept':>12s}{'valid':>8s}   error per future frame (px)")
    for side in SIDES:
        row = result["scores"][side]
        per = " ".join(f"{e:.2f}" for e in row["error_per_frame"])
        print(f"  {side:18s}{row[head]:10.2f}{row['class_kept']:12.3f}{row['valid_share']:8.3f}   {per}")
    print("error: tracked centre to the true one (an untracked frame counts as a blind guess); class kept: the "
          "probe on the future frames; chance = another clip's future")
    _write_result(result, args, args.run)
    return 0


# ---------------------------------------------------------------------------------------
# class-acc / disentangle
# ---------------------------------------------------------------------------------------


def add_class_acc(metrics) -> None:
    """``eval class-acc``: a class-conditional run's samples classified by a probe."""
    ca = metrics.add_parser("class-acc", help="conditional accuracy: a probe trained on a class-conditional "
                                              "run's own data classifies the run's samples of each class")
    ca.add_argument("run", help="class-conditional run directory")
    ca.add_argument("--num", type=int, default=64, help="generated clips per class (default 64)")
    ca.add_argument("--seed", type=int, default=0, help="noise seed of class 0 (class k uses seed + k)")
    ca.add_argument("--probe", help="probe .safetensors (default: one kept in $XDG_CACHE_HOME/videosynth/probes, "
                                    "trained on the run's data the first time)")
    ca.add_argument("--probe-steps", type=int, default=600, help="training steps of a new probe (default 600)")
    ca.add_argument("--checkpoint", help="step number or step-NNNNNN folder (default: newest valid)")
    ca.add_argument("--no-ema", action="store_true", help="sample the raw weights instead of the EMA copy")
    ca.add_argument("--device", default="auto")
    ca.add_argument("--json", metavar="OUT", help="also write the result to this JSON file")
    ca.add_argument("--no-progress", action="store_true", help="no progress bar (none is shown off a terminal anyway)")
    ca.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a sampling option of the run's family, e.g. --option steps=8 --option solver=euler "
                         "(the names of `videosynth sample`'s family flags; repeatable)")
    ca.set_defaults(func=json_folder_made(run_class_acc))


def run_class_acc(args: argparse.Namespace) -> int:
    """``eval class-acc``: :func:`videosynth.metrics.class_accuracy.class_accuracy`, printed (and written as JSON)."""
    import videosynth
    from videosynth.device import select_device
    from videosynth.metrics.class_accuracy import class_accuracy
    from videosynth.progress import progress_bar

    device = str(select_device(args.device))
    run = videosynth.load(args.run, args.checkpoint, device)
    total = len(run.class_names) * args.num if run.condition_kind == "class" else 0
    with progress_bar(total, f"sampling {args.run}", enabled=not args.no_progress) as bar:
        result = class_accuracy(run, args.num, args.seed, device, parse_options(args.option), args.probe,
                                args.probe_steps, ema=not args.no_ema, on_progress=bar.update)
    result["run"] = str(args.run)
    print(f"class accuracy of {args.run} (step {run.step}), probe {result['probe']}:")
    print(f"  real validation clips: {result['real_accuracy']:.3f}   chance: {result['chance']:.3f}")
    for name, acc in result["per_class"].items():
        print(f"  {name:>12}: {acc:.3f}")
    print(f"  {'mean':>12}: {result['accuracy']:.3f}  ({args.num} samples per class)")
    print(f"  shuffled-label control: {result['shuffled_accuracy']:.3f} (samples of class k+1 scored as class k; "
          f"real clips against another clip's label: {result['real_shuffled_accuracy']:.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


DEFAULT_DISENTANGLE_ROWS = 12
DISENTANGLE_DOC = """Content/motion disentanglement of a MoCoGAN run on built-in data.

A ROWS x ROWS grid is sampled: every row shares one content code, every column one motion code.
Each clip is measured: its class (the probe of eval class-acc), and from its longest track its size
(median blob area), colour (median blob colour) and displacement (last tracked centre minus first).
Within a group, a measure's agreement is the share of clip pairs that agree: same probe class; both
tracked with areas within 25% of the larger; colours within 40 (uint8 RGB); displacements both at
least 5% of the frame side and at most 45 degrees apart. Groups: content-fixed (the rows),
motion-fixed (the columns) and shuffled (ROWS x ROWS clips of independent codes, ROWS per group:
the level of clips that share nothing). Disentangled: content-fixed class/size/colour near 1 with
trajectory at the shuffled level; motion-fixed trajectory near 1 with class at the shuffled level."""


def add_disentangle(metrics) -> None:
    """``eval disentangle``: a MoCoGAN run's content and motion codes, each held fixed."""
    di = metrics.add_parser("disentangle", help="MoCoGAN: does the content code fix the object and the motion code "
                                                "its path? agreement within content- / motion-fixed groups vs shuffled",
                            description=DISENTANGLE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    di.add_argument("run", help="MoCoGAN run directory trained on built-in data")
    di.add_argument("--rows", type=int, default=DEFAULT_DISENTANGLE_ROWS,
                    help=f"content codes x motion codes of the grid, and clips per group (default "
                         f"{DEFAULT_DISENTANGLE_ROWS}: {DEFAULT_DISENTANGLE_ROWS ** 2} clips per side)")
    di.add_argument("--seed", type=int, default=0, help="seed of the grid's codes (the shuffled clips use seed + 1)")
    probe_args(di)
    di.add_argument("--checkpoint", help="step number or step-NNNNNN folder (default: newest valid)")
    di.add_argument("--no-ema", action="store_true", help="sample the raw weights instead of the EMA copy")
    di.add_argument("--device", default="auto")
    di.add_argument("--json", metavar="OUT", help="also write the result to this JSON file")
    di.set_defaults(func=json_folder_made(run_disentangle))


def run_disentangle(args: argparse.Namespace) -> int:
    """``eval disentangle``: :func:`videosynth.metrics.disentangle.run_disentanglement`, printed (and written as JSON)."""
    import videosynth
    from videosynth.device import select_device
    from videosynth.metrics.disentangle import format_table, run_disentanglement
    from videosynth.pipelines.base import check_common

    check_common(cli=True, seed=args.seed)
    device = str(select_device(args.device))
    run = videosynth.load(args.run, args.checkpoint, device)
    result = run_disentanglement(run, args.rows, args.seed, device, args.probe, args.probe_steps,
                                 ema=not args.no_ema)
    print(f"content/motion disentanglement of {args.run} (step {run.step}), {args.rows} x {args.rows} grid, "
          f"probe {result['probe']}:")
    print(format_table(result))
    tracked = result["tracked"]
    print(f"tracked clips: grid {tracked['grid']:.3f}, shuffled {tracked['shuffled']:.3f}; "
          f"class chance {result['chance']['class']:.3f}")
    moved = result["paths"]
    print("clips whose path has a direction (>= 5% of the frame): " +
          ", ".join(f"{side} {moved[side]['directed']:.3f}" for side in ("grid", "shuffled", "real")) +
          "; median path " + ", ".join(f"{side} {moved[side]['median_px']:.1f} px" for side in ("grid", "real")))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
