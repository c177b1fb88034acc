"""``videosynth eval {fvd,kvd,is,fid,fpd,recon,track,sync,audio-recon,class-acc,text,predict,disentangle,train-probe}``: metrics with pinned protocols.

Each side (REAL, FAKE) is one of

- a statistics file ``*.npz`` written by ``--save-stats`` (refused if its protocol differs),
- a built-in dataset name (``moving-digits``, ``bouncing-shapes``),
- a run directory (``config.yaml`` + ``checkpoints/``): clips are sampled from the model,
- a folder of videos (read with centred clips).

Clips are cut to ``--frames`` frames and resized to ``--size`` pixels before the
detector's own resize rule, so both sides are handed over in the same form.
Examples::

    videosynth eval fvd bouncing-shapes runs/my-run --num 2048 --save-stats ref.npz
    videosynth eval fvd ref.npz runs/my-run --seeds 0 1 2 --json fvd.json
    videosynth eval track bouncing-shapes runs/my-run
    videosynth eval track bouncing-shapes runs/my-run --frames 80 --class-kept
    videosynth eval text runs/my-text-run
    videosynth eval predict runs/my-run --prime-frames 4
    videosynth eval train-probe bouncing-shapes --out ~/.cache/videosynth/weights/probe-bouncing-shapes.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from videosynth.commands.eval_audio import register as register_audio
from videosynth.commands.eval_common import json_folder_made, parse_options, probe_args
from videosynth.commands.eval_conditions import add_class_acc, add_disentangle, add_predict, add_sync, add_text
from videosynth.data.factory import BUILTIN
from videosynth.errors import ConfigError, VideoSynthError

log = logging.getLogger(__name__)

DEFAULT_SIZE = 64
DEFAULT_TRACK_NUM = 256


# ---------------------------------------------------------------------------------------
# Sources: npz / dataset / run directory / folder -> batches of float [B, C, T, H, W] in [-1, 1]
# ---------------------------------------------------------------------------------------


def _conform(batch: torch.Tensor, frames: int, size: int) -> torch.Tensor:
    """Cut clips to ``frames`` and resize frames to ``size × size`` (area when shrinking, bilinear otherwise)."""
    batch = batch[:, :, :frames].float()
    b, c, t, h, w = batch.shape
    if size and (h, w) != (size, size):
        flat = batch.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # (B*T, C, H, W)
        mode = {"mode": "area"} if size < min(h, w) else {"mode": "bilinear", "align_corners": False}
        flat = F.interpolate(flat, size=(size, size), **mode)
        batch = flat.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4)  # (B, C, T, size, size)
    return batch.clamp(-1, 1)


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.yaml").is_file() and (path / "checkpoints").is_dir()


def _dataset_batches(ds, batch_size: int, workers: int) -> Iterator[torch.Tensor]:
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
    for batch in loader:
        yield batch["video"]


def with_progress(batches: Iterator[torch.Tensor], total: int, desc: str, enabled: bool) -> Iterator[torch.Tensor]:
    """``batches`` as they come, counted on a progress bar (on a terminal only)."""
    from videosynth.progress import progress_bar

    with progress_bar(total, desc, enabled=enabled) as bar:
        for batch in batches:
            bar.update(batch.shape[0])
            yield batch


def source_batches(spec: str, args: argparse.Namespace, seed: int, split: str) -> Iterator[torch.Tensor]:
    """Batches ``float [B, C, T, H, W]`` in ``[-1, 1]`` from a dataset name, run directory or video folder.

    Raises:
        VideoSynthError: the spec is none of those, or the sampling/data code is unavailable.
    """
    path = Path(spec).expanduser()
    num = args.num
    if spec in BUILTIN:
        from videosynth.data import DataConfig, build_dataset

        run_data = getattr(args, "run_data", None)
        if run_data is not None and run_data.name == spec:
            # real clips drawn like the run's training data (object size and count, seed), at the eval frames/size
            cfg = dataclasses.replace(run_data, frames=args.frames, size=args.size or DEFAULT_SIZE, num_samples=num)
        else:
            cfg = DataConfig(name=spec, frames=args.frames, size=args.size or DEFAULT_SIZE, num_samples=num,
                             num_objects=args.num_objects, seed=seed)
        batches = _dataset_batches(build_dataset(cfg, split), args.batch_size, args.workers)
    elif is_run_dir(path):
        import videosynth

        pipe = videosynth.load(path, device=args.device)
        longer = args.frames if args.frames and args.frames > pipe.data.frames else None  # sliding windows, where supported
        batches = with_progress(pipe.batches(num, seed, args.batch_size, frames=longer,
                                             **parse_options(getattr(args, "option", []))),
                                num, f"sampling {path}", not getattr(args, "no_progress", False))
    elif path.is_dir():
        from videosynth.data import VideoFolder

        ds = VideoFolder(path, frames=args.frames, size=args.size or DEFAULT_SIZE, stride=args.stride, split="all",
                         train_clip="center", seed=seed, progress=False, max_broken_fraction=args.max_broken_fraction,
                         broken_hint="pass a higher --max-broken-fraction")
        batches = _dataset_batches(ds, args.batch_size, args.workers)
    else:
        raise VideoSynthError(f"'{spec}' is not a .npz statistics file, a built-in dataset ({', '.join(BUILTIN)}), "
                              "a run directory or a folder of videos")
    return (_conform(b, args.frames, args.size) for b in batches)


def make_side(spec: str, args: argparse.Namespace, split: str):
    from videosynth.metrics.pipeline import Side

    if spec.endswith(".npz"):
        return Side(spec, stats_path=spec)
    return Side(spec, batches=lambda seed: source_batches(spec, args, seed, split))


# ---------------------------------------------------------------------------------------
# Sub-commands
# ---------------------------------------------------------------------------------------

# metric -> (detector key, kind, label)
DISTRIBUTION_METRICS = {
    "fvd": ("i3d", "frechet", "FVD"),
    "kvd": ("i3d", "kernel", "KVD"),
    "fid": ("inception", "frechet", "FID (per frame)"),
    "is": ("c3d", "is", "IS (C3D, UCF-101)"),
    "fpd": ("probe", "frechet", "FPD (probe Fréchet distance, built-in data only) — not FVD"),
}


def _common(p: argparse.ArgumentParser, num: int = 2048) -> None:
    p.add_argument("--num", type=int, default=num, help=f"clips per side (default {num})")
    p.add_argument("--frames", type=int, help="frames per clip (default: the run's when a side is a run directory, "
                   "else 16); more than a run's training length samples longer videos where its family can")
    p.add_argument("--stride", type=int, default=1, help="frame step inside clips read from folders")
    p.add_argument("--size", type=int, help="clip side before the detector (default: the run's data size when a side"
                   " is a run directory, else 64)")
    p.add_argument("--num-objects", type=int, default=1, help="objects per clip for built-in datasets")
    p.add_argument("--seed", type=int, default=0, help="seed of the real side and the first fake seed")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for folders/datasets")
    p.add_argument("--max-broken-fraction", type=float, default=0.2,
                   help="share of broken videos a folder side may hold before eval refuses it (default 0.2)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", metavar="OUT", help="also write the result (with its protocol) to this JSON file")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="sampling option for a run side, e.g. --option steps=8 (repeatable; as videosynth sample's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none is shown off a terminal anyway)")


def register(sub) -> None:
    p = sub.add_parser("eval", help="FVD / IS / FID / KVD / reconstruction / weight-free metrics",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    metrics = p.add_subparsers(dest="metric", metavar="METRIC", required=True)
    # --help lists the sub-commands in the order they are added
    _add_distribution(metrics)
    _add_recon(metrics)
    _add_track(metrics)
    add_sync(metrics)
    add_text(metrics)
    add_predict(metrics)
    register_audio(metrics)
    _add_train_probe(metrics)
    add_class_acc(metrics)
    add_disentangle(metrics)


def _add_distribution(metrics) -> None:
    """``eval {fvd,kvd,fid,is,fpd}``: a detector's feature distributions of REAL and FAKE compared."""
    for name, (det, kind, label) in DISTRIBUTION_METRICS.items():
        m = metrics.add_parser(name, help=label)
        if kind != "is":
            m.add_argument("real", help="REAL: .npz stats, built-in dataset, run directory or video folder")
        m.add_argument("fake", help="FAKE: .npz stats, built-in dataset, run directory or video folder")
        _common(m)
        m.add_argument("--weights", help="detector file or folder (default: $VIDEOSYNTH_WEIGHTS, then the cache)")
        m.add_argument("--seeds", type=int, nargs="+", help="several fake seeds: report mean ± std over them")
        if kind != "is":
            m.add_argument("--save-stats", metavar="NPZ", help="write the REAL side's statistics here")
            m.add_argument("--save-fake-stats", metavar="NPZ", help="write the FAKE side's statistics here")
            m.add_argument("--real-split", default="train", help="split of a built-in REAL dataset (default train)")
        if kind == "is":
            m.add_argument("--splits", type=int, default=10)
        if name == "fpd":
            m.add_argument("--dataset", choices=BUILTIN, help="built-in dataset of the probe (default: REAL's name)")
        m.set_defaults(func=json_folder_made(run))


def _add_recon(metrics) -> None:
    """``eval recon``: per-pair reconstruction metrics."""
    r = metrics.add_parser("recon", help="PSNR / SSIM (and LPIPS) between paired clips")
    r.add_argument("real")
    r.add_argument("fake")
    _common(r, num=256)
    r.add_argument("--lpips", action="store_true", help="also LPIPS-alex (needs its local weights file)")
    r.add_argument("--lpips-weights", help="the lpips_alex.safetensors file or its folder "
                   "(default: $VIDEOSYNTH_WEIGHTS, then the cache)")
    r.set_defaults(func=json_folder_made(run_recon))


def _add_track(metrics) -> None:
    """``eval track``: weight-free physics of REAL and FAKE against the built-in data's ground truth."""
    t = metrics.add_parser("track", help="weight-free physics metrics on built-in data (real vs fake)")
    t.add_argument("real", help="built-in dataset (or any source of real clips)")
    t.add_argument("fake")
    _common(t, num=DEFAULT_TRACK_NUM)
    t.add_argument("--real-split", default="val")
    t.add_argument("--class-kept", action="store_true",
                   help="also the share of clips whose last window (the run's training length) shows the class of "
                        "their first, by the class probe, with its control (another clip's last window)")
    probe_args(t)
    t.set_defaults(func=json_folder_made(run_track))


def _add_train_probe(metrics) -> None:
    """``eval train-probe``: the probe network that is fpd's detector."""
    tp = metrics.add_parser("train-probe", help="train the FPD probe network on a built-in dataset")
    tp.add_argument("dataset", choices=BUILTIN)
    tp.add_argument("--out", required=True, help="output .safetensors file")
    tp.add_argument("--steps", type=int, default=300)
    tp.add_argument("--batch-size", type=int, default=16)
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--preset", default="tiny", help="probe size preset (tiny, test)")
    tp.add_argument("--data-size", type=int, default=DEFAULT_SIZE, help="frame side of the training clips")
    tp.add_argument("--num-samples", type=int, default=10000, help="training-split length")
    tp.add_argument("--num-objects", type=int, default=1)
    tp.set_defaults(func=run_train_probe)


def _load(metric: str, args: argparse.Namespace):
    from videosynth.metrics.detectors import load_detector

    det_name = DISTRIBUTION_METRICS[metric][0]
    if det_name != "probe":
        return load_detector(det_name, args.weights, args.device)
    from videosynth.metrics.probe_net import load_probe_detector

    dataset = args.dataset or (args.real if args.real in BUILTIN else None)
    if dataset is None:
        raise ConfigError("fpd needs --dataset (moving-digits or bouncing-shapes) when REAL is not a built-in name")
    from videosynth.device import select_device

    return load_probe_detector(dataset, args.weights, str(select_device(args.device)))


def _emit(result, args: argparse.Namespace) -> None:
    print(result.format())
    if args.json:
        result.write_json(args.json)
        print(f"wrote {args.json}")


def _adopt_run_data(args: argparse.Namespace) -> None:
    """Fill ``--frames``/``--size`` from a run directory side's data config when not given.

    A run's generator makes clips of a fixed length and size; comparing them with real clips of
    another length or size (or with other object sizes) would measure the mismatch, not the model.
    """
    args.run_data = None
    for spec in (getattr(args, "real", None), getattr(args, "fake", None)):
        if spec and is_run_dir(Path(spec).expanduser()):
            from videosynth.checkpoint import read_run_config
            from videosynth.config import from_dict
            from videosynth.data import DataConfig

            data = read_run_config(Path(spec).expanduser()).get("data")
            if isinstance(data, dict):
                args.run_data = from_dict(DataConfig, data, "data")
                break
    if args.frames is None:
        args.frames = args.run_data.frames if args.run_data is not None else 16
    if args.size is None:
        args.size = args.run_data.size if args.run_data is not None else DEFAULT_SIZE


def _check_counts(args: argparse.Namespace) -> None:
    _adopt_run_data(args)
    if args.num < 2:
        raise ConfigError("--num must be at least 2")
    if args.frames < 1 or args.size < 0:
        raise ConfigError("--frames must be ≥ 1 and --size ≥ 0")


def run(args: argparse.Namespace) -> int:
    from videosynth.metrics.pipeline import frechet_metric, inception_score_metric, kernel_metric
    from videosynth.metrics.protocol import Protocol

    _check_counts(args)
    det_name, kind, label = DISTRIBUTION_METRICS[args.metric]
    detector = _load(args.metric, args)
    protocol = Protocol(args.metric, detector.name, detector.sha256, frames=args.frames, stride=args.stride,
                        size=args.size, resize=detector.resize, num_samples=args.num, seed=args.seed)
    seeds = args.seeds or [args.seed]
    fake = make_side(args.fake, args, "val")
    if kind == "is":
        result = inception_score_metric(detector, fake, protocol, seeds, args.batch_size, args.splits, label)
    else:
        real = make_side(args.real, args, args.real_split)
        fn = frechet_metric if kind == "frechet" else kernel_metric
        result = fn(detector, real, fake, protocol, seeds, args.batch_size, args.save_stats, args.save_fake_stats,
                    label=label)
    _emit(result, args)
    return 0


def run_recon(args: argparse.Namespace) -> int:
    import math

    from videosynth.metrics.protocol import MetricResult, Protocol
    from videosynth.metrics.lpips import load_lpips
    from videosynth.metrics.recon import lpips_distance, psnr, ssim

    _check_counts(args)
    lpips_net, lpips_found = load_lpips(args.lpips_weights) if args.lpips else (None, None)
    real = source_batches(args.real, args, args.seed, "val")
    fake = source_batches(args.fake, args, args.seed, "val")
    values: dict[str, list[float]] = {"psnr": [], "ssim": []}
    if args.lpips:
        values["lpips"] = []
    for a, b in zip(real, fake):
        n = min(a.shape[0], b.shape[0])
        if a.shape[1:] != b.shape[1:]:
            raise VideoSynthError(f"recon needs clips of one shape, got {tuple(a.shape[1:])} and {tuple(b.shape[1:])}")
        values["psnr"] += psnr(a[:n], b[:n]).tolist()
        values["ssim"] += ssim(a[:n], b[:n]).tolist()
        if args.lpips:
            values["lpips"] += lpips_distance(a[:n], b[:n], lpips_net).tolist()
        if len(values["psnr"]) >= args.num:
            break
    n = len(values["psnr"])
    if n < args.num:  # a mean over fewer pairs than asked for would be printed as if it were the asked-for one
        raise ConfigError(f"recon: {args.real} and {args.fake} gave {n} clip pair(s), --num asks for {args.num}; "
                          f"give sources with at least {args.num} clips or lower --num (at least 2)")
    detector = ("lpips", lpips_found.sha256) if lpips_found else ("none", "-")
    protocol = Protocol("recon", *detector, frames=args.frames, stride=args.stride, size=args.size,
                        resize="per frame, mean over frames", num_samples=n, seed=args.seed)
    results = []
    for key, vals in values.items():
        vals = vals[: args.num]
        finite = [v for v in vals if math.isfinite(v)]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite)) if finite and math.isfinite(mean) else None
        results.append(MetricResult(key, mean, protocol, std, n, n, [],
                                    {"identical_pairs": len(vals) - len(finite)} if key == "psnr" else {}))
    for res in results:
        print(res.format())
    if args.json:
        Path(args.json).write_text(json.dumps({r.metric: r.to_dict() for r in results}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _class_tap(args: argparse.Namespace):
    """``tap(batches, sink)``: the batches unchanged, the probe's classes of each one's first and last window
    (the run's training length) appended to ``sink`` on the way."""
    from videosynth.data import DataConfig, build_dataset
    from videosynth.device import select_device
    from videosynth.metrics.class_accuracy import class_probe, window_classes

    data = args.run_data or DataConfig(name=args.real, frames=args.frames, size=args.size,
                                       num_objects=args.num_objects)
    data = dataclasses.replace(data, holdout_combinations=0)
    if data.frames > args.frames:
        raise ConfigError(f"--class-kept: the window ({data.frames} frames, the run's training length) is longer "
                          f"than --frames {args.frames}")
    args.class_window = data.frames
    device = str(select_device(args.device))
    names = build_dataset(dataclasses.replace(data, num_samples=1), "val").class_names
    probe, _ = class_probe(data, names, device, args.probe, args.probe_steps)

    def tap(batches, sink: list):
        for batch in batches:
            sink.append(window_classes(probe, batch, data.frames, device))
            yield batch

    return tap


def run_track(args: argparse.Namespace) -> int:
    from videosynth.metrics.tracking import TrackingConfig, compare_physics, format_comparison, physics_stats

    _check_counts(args)
    # The physics are checked against what the built-in data's generator guarantees (one object of
    # constant size and velocity between bounces, on black); real footage has no such ground truth,
    # so its rows would be NaN or near 0 and read as a score.
    if args.real not in BUILTIN:
        raise ConfigError(f"eval track compares against the ground truth of the built-in data ({', '.join(BUILTIN)}); "
                          f"REAL '{args.real}' has none: give a built-in dataset as REAL, or use a metric for any "
                          "data (eval fvd, fid, fpd)")
    if args.run_data is not None and args.run_data.name not in BUILTIN:
        raise ConfigError(f"eval track: the run {args.fake} was trained on '{args.run_data.name}', not on built-in "
                          "data, so its clips have no ground truth to be tracked against; use eval fvd or fid")
    cfg = TrackingConfig()
    real_batches = source_batches(args.real, args, args.seed, args.real_split)
    fake_batches = source_batches(args.fake, args, args.seed, "val")
    windows = {"real": [], "fake": []}  # per side: the probe's (first, last) window classes of each batch
    if args.class_kept:
        tap = _class_tap(args)
        real_batches, fake_batches = tap(real_batches, windows["real"]), tap(fake_batches, windows["fake"])
    real = physics_stats(real_batches, cfg, limit=args.num)
    fake = physics_stats(fake_batches, cfg, limit=args.num)
    if args.class_kept:
        from videosynth.metrics.class_accuracy import class_kept

        for side, stats in (("real", real), ("fake", fake)):
            first, last = (torch.cat([w[i] for w in windows[side]])[: args.num] for i in (0, 1))
            stats.update(class_kept(first, last))
    table = compare_physics(real, fake)
    print(f"weight-free physics metrics (built-in data), {int(real['num_clips'])} real / "
          f"{int(fake['num_clips'])} fake clips of {args.frames} frames at {args.size}px")
    print(format_comparison(table))
    if args.class_kept:
        table["class_kept"] = {"real": real["class_kept"], "fake": fake["class_kept"],
                               "gap": fake["class_kept"] - real["class_kept"]}
        print(f"class kept over the last {args.class_window}-frame window: real {real['class_kept']:.4f}, fake "
              f"{fake['class_kept']:.4f}; control (another clip's last window): real "
              f"{real['class_kept_shuffled']:.4f}, fake {fake['class_kept_shuffled']:.4f}")
    if args.json:
        out = {"metric": "track", "real": real, "fake": fake, "comparison": table,
               "tracking_config": dataclasses.asdict(cfg),
               "protocol": {"frames": args.frames, "size": args.size, "num_samples": args.num, "seed": args.seed,
                            "real": args.real, "fake": args.fake, "options": parse_options(args.option)}}
        from videosynth.metrics.protocol import jsonable

        Path(args.json).write_text(json.dumps(jsonable(out), indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json}")
    return 0


def run_train_probe(args: argparse.Namespace) -> int:
    import copy

    from videosynth.data import DataConfig, build_dataset
    from videosynth.metrics.probe_net import PRESETS, save_probe, train_probe
    from videosynth.metrics.weights import sha256_file

    if args.preset not in PRESETS:
        raise ConfigError(f"unknown probe preset '{args.preset}'; choose one of {', '.join(PRESETS)}")
    cfg = copy.deepcopy(PRESETS[args.preset])
    data_cfg = DataConfig(name=args.dataset, frames=cfg.frames, size=args.data_size, num_samples=args.num_samples,
                          num_objects=args.num_objects, seed=0)
    ds = build_dataset(data_cfg, "train")
    cfg.num_classes = len(ds.class_names)
    net = train_probe(ds, cfg, steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    meta = {"dataset": args.dataset, "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
            "data": dataclasses.asdict(data_cfg)}
    save_probe(net, args.out, meta)
    print(f"wrote {args.out} (sha256 {sha256_file(args.out)})")
    return 0
