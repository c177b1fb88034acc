"""``videosynth data scan|preview``: check a folder of videos, look at a dataset.

``scan ROOT`` probes every video (cached), prints counts, classes, frame/fps/size
summaries and the broken files with reasons, and can write a manifest.
``preview DATASET_OR_ROOT --out grid.gif`` tiles the first clips of a built-in
dataset, a folder, or a standard layout (``ucf101``, ``kinetics``, ``bair`` with
``--root`` and ``--set`` data keys) into one video or image.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from videosynth.errors import DataError

DEFAULT_FRAMES = 16
DEFAULT_SIZE = 64
DEFAULT_PREVIEW_CLIPS = 16
MAX_PRINTED_BROKEN = 50  # the text report lists this many broken files; --json lists all


def register(subparsers) -> None:
    """Add ``data scan`` and ``data preview`` to the CLI."""
    parser = subparsers.add_parser("data", help="scan a folder of videos, preview datasets",
                                   description="Inspect video data before training on it.")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    scan = sub.add_parser("scan", help="probe every video under ROOT, report broken files, write a manifest")
    scan.add_argument("root", help="folder searched recursively for videos and frame folders")
    scan.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="clip length that must fit (default 16)")
    scan.add_argument("--stride", type=int, default=1, help="frame step of a clip (default 1)")
    scan.add_argument("--manifest-out", metavar="FILE", help="write path,caption,label rows (.csv or .jsonl)")
    scan.add_argument("--json", action="store_true", help="print the report as JSON")
    scan.add_argument("--no-cache", action="store_true", help="probe again even if the scan is cached")
    scan.set_defaults(func=run_scan)

    preview = sub.add_parser("preview", help="write a grid of clips from a dataset or folder")
    preview.add_argument("source", metavar="DATASET_OR_ROOT",
                         help="moving-digits, bouncing-shapes, ucf101, kinetics, bair (with --root), "
                              "or a folder of videos")
    preview.add_argument("--root", help="the dataset folder of ucf101, kinetics or bair")
    preview.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="data key, e.g. --set split_file=2 or --set annotations=train.csv (repeatable)")
    preview.add_argument("--out", required=True, help="output file: .gif, .mp4, .webm or .png (filmstrip)")
    preview.add_argument("--num", type=int, default=DEFAULT_PREVIEW_CLIPS, help="number of clips (default 16)")
    preview.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames per clip (default 16)")
    preview.add_argument("--size", type=int, default=DEFAULT_SIZE, help="clip height and width (default 64)")
    preview.add_argument("--stride", type=int, default=1, help="frame step for folders (default 1)")
    preview.add_argument("--num-objects", type=int, default=1, help="objects per clip for built-in data")
    preview.add_argument("--nrow", type=int, default=0, help="clips per grid row (default: square grid)")
    preview.add_argument("--fps", type=float, help="frames per second of the output (default 8; with --audio the "
                         "data's own)")
    preview.add_argument("--audio", type=int, default=0, metavar="RATE",
                         help="also read the clips' sound at RATE Hz; an mp4/webm/mkv output carries the first clip's")
    preview.add_argument("--seed", type=int, default=0)
    preview.set_defaults(func=run_preview)


# ----------------------------------------------------------------------------- scan


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": float(np.min(values)), "median": float(np.median(values)), "max": float(np.max(values))}


def scan_report(root: str | Path, frames: int = DEFAULT_FRAMES, stride: int = 1, use_cache: bool = True) -> dict:
    """Scan ``root`` and summarise it as a JSON-ready dict (see ``videosynth data scan``).

    Raises:
        DataError: ``root`` is not a folder.
    """
    from videosynth.data.scan import scan
    from videosynth.data.video_folder import find_split_folders

    root = Path(root).expanduser()
    if frames < 1 or stride < 1:
        raise DataError(f"--frames and --stride must be positive, got {frames}, {stride}")
    result = scan(root, min_frames=(frames - 1) * stride + 1, use_cache=use_cache, quiet=True)
    split_dirs = find_split_folders(root)
    split_names = {d.name: s for s, d in split_dirs.items()} if split_dirs else {}
    rows = []
    for e in result.entries:
        parts = e.path.split("/")
        split = split_names.get(parts[0], "") if split_names else ""
        if split_names:
            parts = parts[1:]
        rows.append({"path": e.path, "label": parts[0] if len(parts) >= 2 else "", "split": split})
    classes = Counter(r["label"] for r in rows if r["label"])
    return {
        "root": str(root),
        "videos": len(result.entries) + len(result.broken),
        "usable": len(result.entries),
        "clip_frames": (frames - 1) * stride + 1,
        "classes": dict(sorted(classes.items())),
        "unlabelled": sum(1 for r in rows if not r["label"]),
        "splits": dict(Counter(r["split"] for r in rows if r["split"])),
        "frames": _summary([e.num_frames for e in result.entries]),
        "fps": _summary([e.fps for e in result.entries]),
        "width": _summary([e.width for e in result.entries]),
        "height": _summary([e.height for e in result.entries]),
        "codecs": dict(Counter(e.codec for e in result.entries).most_common()),
        "broken": [{"path": p, "reason": r} for p, r in result.broken],
        "damaged": [{"path": e.path, "skipped_packets": e.skipped_packets,
                     **({"header_frames": e.header_frames, "frames": e.num_frames} if e.header_frames else {})}
                    for e in result.entries if e.skipped_packets or e.header_frames],
        "rows": rows,
    }


def _print_files(title: str, lines: list[str]) -> None:
    """``title`` and up to ``MAX_PRINTED_BROKEN`` lines, the rest counted (nothing when there are none)."""
    if not lines:
        return
    print(title)
    for line in lines[:MAX_PRINTED_BROKEN]:
        print(f"  {line}")
    if len(lines) > MAX_PRINTED_BROKEN:
        print(f"  ... and {len(lines) - MAX_PRINTED_BROKEN} more (see --json)")


def _damage_line(damaged: dict) -> str:
    """One line of the scan's list of usable damaged files: what was skipped, what the header overstated."""
    parts = [f"{damaged['skipped_packets']} packet(s) skipped"] if damaged["skipped_packets"] else []
    if damaged.get("header_frames"):
        parts.append(f"the header claims {damaged['header_frames']} frames, {damaged['frames']} decode")
    return f"{damaged['path']}: {'; '.join(parts)}"


def _fmt(summary: dict | None, unit: str = "") -> str:
    if summary is None:
        return "-"
    return "  ".join(f"{k} {summary[k]:g}{unit}" for k in ("min", "median", "max"))


def run_scan(args: argparse.Namespace) -> int:
    from videosynth.data.manifest import ManifestRow, write_manifest

    report = scan_report(args.root, args.frames, args.stride, use_cache=not args.no_cache)
    if args.manifest_out:
        rows = [ManifestRow(r["path"], "", r["label"], r["split"]) for r in report["rows"]]
        write_manifest(args.manifest_out, rows)
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=2))
        return 0
    print(f"{report['root']}: {report['videos']} videos, {report['usable']} usable, {len(report['broken'])} broken "
          f"(a clip needs {report['clip_frames']} frames)")
    classes = ", ".join(f"{name} ({n})" for name, n in report["classes"].items()) or "none (no class subfolders)"
    print(f"classes ({len(report['classes'])}): {classes}")
    if report["unlabelled"] and report["classes"]:
        print(f"unlabelled: {report['unlabelled']} videos directly under the root")
    if report["splits"]:
        print("splits: " + ", ".join(f"{s} ({n})" for s, n in report["splits"].items()))
    print(f"frames:  {_fmt(report['frames'])}")
    print(f"fps:     {_fmt(report['fps'])}")
    print(f"width:   {_fmt(report['width'], ' px')}")
    print(f"height:  {_fmt(report['height'], ' px')}")
    print("codecs:  " + (", ".join(f"{c} ({n})" for c, n in report["codecs"].items()) or "-"))
    _print_files("usable, damaged (undecodable packets skipped, the gaps filled: silence, or the previous frame "
                 "held; a header claiming more frames than decode: cut to those that do):",
                 [_damage_line(d) for d in report["damaged"]])
    _print_files("broken:", [f"{b['path']}: {b['reason']}" for b in report["broken"]])
    if args.manifest_out:
        print(f"wrote {args.manifest_out} ({len(report['rows'])} rows)")
    return 0


# ----------------------------------------------------------------------------- preview


def _preview_dataset(args: argparse.Namespace):
    from videosynth.config import apply_overrides, from_dict
    from videosynth.data import DATASETS, DataConfig, VideoFolder, build_dataset
    from videosynth.data.factory import ON_DISK

    layouts = [n for n in ON_DISK if n != "folder"]
    if (args.root or args.overrides) and args.source not in layouts:
        raise DataError(f"--root and --set apply to the layouts {', '.join(layouts)}, not to '{args.source}'")
    if args.source in DATASETS and args.source not in ON_DISK:
        cfg = DataConfig(name=args.source, frames=args.frames, size=args.size, num_objects=args.num_objects,
                         num_samples=max(args.num, 1), seed=args.seed, audio=args.audio)
        return build_dataset(cfg, "train")
    if args.source in layouts:
        if not args.root:
            raise DataError(f"data preview {args.source} needs --root, the dataset folder")
        # every listed video, broken ones skipped: the preview shows the data as it is
        data = {"name": args.source, "root": args.root, "frames": args.frames, "size": args.size,
                "stride": args.stride, "seed": args.seed, "max_broken_fraction": 1.0, "audio": args.audio}
        data = apply_overrides({"data": data}, [o if o.startswith("data.") else f"data.{o}" for o in args.overrides])
        return build_dataset(from_dict(DataConfig, data["data"], "data"), "all")
    if Path(args.source).expanduser().is_dir():
        # every file, centred clips: the preview shows the data, not an augmentation
        return VideoFolder(args.source, frames=args.frames, size=args.size, stride=args.stride, split="all",
                           seed=args.seed, train_clip="center", max_broken_fraction=1.0, audio_rate=args.audio)
    names = ", ".join(n for n in DATASETS if n != "folder")
    raise DataError(f"'{args.source}' is neither a dataset name ({names}) nor a folder of videos")


def run_preview(args: argparse.Namespace) -> int:
    from videosynth.io import write_grid

    from videosynth.io import AUDIO_ENCODERS

    if args.num < 1:
        raise DataError(f"--num must be at least 1, got {args.num}")
    if args.audio < 0:
        raise DataError(f"--audio must be a sample rate in Hz, got {args.audio}")
    dataset = _preview_dataset(args)
    n = min(args.num, len(dataset))
    items = [dataset[i] for i in range(n)]
    videos = torch.stack([it["video"] for it in items])  # (N, C, T, H, W)
    nrow = args.nrow or math.ceil(math.sqrt(n))
    fps = args.fps or 8.0
    sound = {}
    if args.audio and Path(args.out).suffix.lower() in AUDIO_ENCODERS:
        if args.fps is not None and args.fps != dataset.fps:
            raise DataError(f"--fps {args.fps:g}: the sound lines up with the data's {dataset.fps:g} frames per "
                            "second; leave --fps out")
        fps = dataset.fps
        sound = {"audio": items[0]["audio"], "sample_rate": args.audio}
    out = write_grid(args.out, videos, nrow=nrow, fps=fps, **sound)
    names = list(dataset.class_names)
    print(f"wrote {out}: {n} clips of {videos.shape[2]} frames at {videos.shape[3]}x{videos.shape[4]}"
          + (", with the first clip's sound" if sound else ""))
    for i, it in enumerate(items):
        label = int(it["label"])
        name = names[label] if 0 <= label < len(names) else "-"
        print(f"  {i}: {name}" + (f"  \"{it['caption']}\"" if it["caption"] else ""))
    return 0
