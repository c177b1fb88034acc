"""``videosynth sample RUN_DIR --num 16 --seed 0 [--label L | --text "..."] --out samples.mp4``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from videosynth.errors import ConfigError

VIDEO_SUFFIXES = (".mp4", ".gif", ".png", ".webm", ".mkv", ".avi")


def register(sub) -> None:
    p = sub.add_parser("sample", help="write sample videos from a trained run",
                       description="Sample clips from a run directory (EMA weights by default) into a grid video.")
    p.add_argument("run_dir", help="run directory written by `videosynth train`")
    p.add_argument("--num", type=int, default=16, help="number of clips (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", help="class index or name (class-conditional runs); default: cycle through classes")
    p.add_argument("--text", help="caption (text-conditional runs)")
    p.add_argument("--frames", type=int, help="clip length; longer than training where the family supports it")
    p.add_argument("--out", default="samples.mp4", help="grid video: .mp4, .gif or .png (default samples.mp4)")
    p.add_argument("--each", action="store_true", help="also write one file per clip next to --out")
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--checkpoint", help="step number or step-NNNNNN folder (default: newest valid)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA copy")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=16)
    fam = p.add_argument_group("family options (refused by runs they do not apply to)")
    from videosynth.pipelines import PIPELINES, sampling_options

    for opt in sampling_options().values():
        families = ", ".join(f for f, pipe in PIPELINES.items() if any(o.name == opt.name for o in pipe.options))
        kwargs = {"choices": list(opt.choices)} if opt.choices else {}
        if opt.type is bool:
            fam.add_argument(opt.flag, dest=opt.name, action=argparse.BooleanOptionalAction, default=None,
                             help=f"{families}: {opt.help}")
        else:
            fam.add_argument(opt.flag, dest=opt.name, type=opt.type, help=f"{families}: {opt.help}", **kwargs)
    p.set_defaults(option_names=list(sampling_options()))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import videosynth
    from videosynth.io import write_grid, write_video

    out = Path(args.out)
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f"--out {out}: use one of {', '.join(VIDEO_SUFFIXES)}")
    if args.num < 1:
        raise ConfigError("--num must be at least 1")
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if args.fps < 1:
        raise ConfigError("--fps must be at least 1")
    if args.label is not None and args.text is not None:
        raise ConfigError("give --label or --text, not both")
    pipe = videosynth.load(args.run_dir, args.checkpoint, args.device)
    options = {name: getattr(args, name) for name in args.option_names}
    videos = pipe(args.num, args.seed, args.label, args.text, args.frames, not args.no_ema, args.batch_size, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    nrow = options.get("interpolate") or int(math.ceil(math.sqrt(videos.shape[0])))
    write_grid(out, videos, nrow=nrow, fps=args.fps)
    print(f"wrote {out} ({videos.shape[0]} clips, {videos.shape[2]} frames, {videos.shape[3]}x{videos.shape[4]}, "
          f"step {pipe.step}{', EMA' if not args.no_ema else ''})")
    if args.each:
        from videosynth.data.transforms import to_uint8

        suffix = out.suffix if out.suffix != ".png" else ".mp4"
        for i, clip in enumerate(videos):
            path = out.with_name(f"{out.stem}-{i:03d}{suffix}")
            write_video(path, to_uint8(clip), fps=args.fps)
        print(f"wrote {videos.shape[0]} files {out.stem}-000{suffix} ... next to it")
    return 0
