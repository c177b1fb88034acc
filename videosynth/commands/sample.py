"""``videosynth sample RUN_DIR --num 16 --seed 0 [--label L | --text "..."] --out samples.mp4``."""

from __future__ import annotations

import argparse
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
    p.add_argument("--audio", metavar="FILE",
                   help="a sound file or a video whose soundtrack drives every clip (sound-conditioned runs; on a "
                        "joint audio-video run: video for that sound); mp4/webm/mkv outputs carry it")
    p.add_argument("--frames", type=int, help="clip length; longer than training where the family supports it")
    p.add_argument("--out", default="samples.mp4", help="grid video: .mp4, .gif or .png (default samples.mp4)")
    p.add_argument("--each", action="store_true", help="also write one file per clip next to --out")
    p.add_argument("--no-grid", action="store_true",
                   help="with --each: no grid video; clips are written as they are made (memory stays flat)")
    p.add_argument("--fps", type=int, help="frame rate of the files written (default 8; a sound-driven run's own)")
    p.add_argument("--checkpoint", help="step number or step-NNNNNN folder (default: newest valid)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA copy")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none is shown off a terminal anyway)")
    fam = p.add_argument_group("family options (refused by runs they do not apply to)")
    from videosynth.train.families import FAMILIES, sampling_options

    for opt in sampling_options().values():
        families = ", ".join(f for f, rec in FAMILIES.items() if any(o.name == opt.name for o in rec.pipeline.options))
        kwargs = {"choices": list(opt.choices)} if opt.choices else {}
        if opt.type is bool:
            fam.add_argument(opt.flag, dest=opt.name, action=argparse.BooleanOptionalAction, default=None,
                             help=f"{families}: {opt.help}")
        else:
            fam.add_argument(opt.flag, dest=opt.name, type=opt.type, help=f"{families}: {opt.help}", **kwargs)
    p.set_defaults(option_names=list(sampling_options()))
    p.set_defaults(func=run)


DEFAULT_FPS = 8
# The most clips one grid video holds (every frame of the grid holds one frame of each clip).
MAX_GRID_CLIPS = 256


def run(args: argparse.Namespace) -> int:
    import videosynth
    from videosynth.io import write_av_samples, write_samples
    from videosynth.io.audio_write import AUDIO_ENCODERS
    from videosynth.pipelines.base import check_common
    from videosynth.progress import progress_bar

    out = Path(args.out)
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f"--out {out}: use one of {', '.join(VIDEO_SUFFIXES)}")
    check_common(cli=True, num=args.num, batch_size=args.batch_size, frames=args.frames, seed=args.seed, fps=args.fps)
    fps = args.fps or DEFAULT_FPS
    if args.label is not None and args.text is not None:
        raise ConfigError("give --label or --text, not both")
    if args.no_grid and not args.each:
        raise ConfigError("--no-grid writes no grid video, so it needs --each (one file per clip)")
    if not args.no_grid and args.num > MAX_GRID_CLIPS:
        raise ConfigError(f"--num {args.num} is too many clips for one grid video (at most {MAX_GRID_CLIPS}); "
                          "add --each --no-grid to write one file per clip as they are made")
    if out.exists() and out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name such as {out / 'samples.mp4'}")
    pipe = videosynth.load(args.run_dir, args.checkpoint, args.device)
    options = {name: getattr(args, name) for name in args.option_names}
    sound = pipe.sound(args.audio, 1, args.frames)  # (1, S) at the run's rate, or None
    own_sound = pipe.generates_sound and sound is None  # a joint run makes each clip's sound
    if sound is not None or own_sound:
        aligned = pipe.audio_fps
        if args.fps is not None and args.fps != aligned:
            raise ConfigError(f"--fps {args.fps}: {args.run_dir} lines its sound up with {aligned:g} frames per "
                              "second; leave --fps out to write them in sync")
        fps = aligned
    stream = pipe.stream_with_sound if own_sound else pipe.stream
    batches = stream(args.num, args.seed, args.label, args.text, args.frames, not args.no_ema, args.batch_size,
                     audio=sound, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix if out.suffix != ".png" else ".mp4"
    bar = progress_bar(args.num, f"sampling {args.run_dir}", enabled=not args.no_progress)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        bar.update(count - done)
        done = count

    files = dict(grid=None if args.no_grid else out, sample_rate=pipe.audio_rate, nrow=options.get("interpolate"),
                 clip_path=(lambda i: out.with_name(f"{out.stem}-{i:03d}{suffix}")) if args.each else None,
                 on_batch=advance)
    if own_sound:
        written = write_av_samples(batches, fps, **files)
    else:
        written = write_samples(batches, fps, audio=None if sound is None else sound[0], **files)
    bar.close()
    ema = ", EMA" if not args.no_ema else ""
    t, h, w = written.shape
    info = f"{args.num} clips, {t} frames, {h}x{w}, step {pipe.step}{ema}"
    if written.grid is not None:
        sounding = (sound is not None or own_sound) and out.suffix.lower() in AUDIO_ENCODERS
        which = ", with the sound made for clip 0" if own_sound and args.num > 1 else ", with its sound"
        print(f"wrote {out} ({info}{which if sounding else ''})")
    if args.each:
        own = ", each with its own sound" if own_sound and suffix.lower() in AUDIO_ENCODERS else ""
        print(f"wrote {written.count} files {out.stem}-000{suffix} ... next to {out}"
              + ("" if written.grid is not None else f" ({info})") + own)
    return 0
