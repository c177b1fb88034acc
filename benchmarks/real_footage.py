"""Real footage: a small corpus of real video files with real and derived defects, scanned and reconstructed.

The source is a folder of real videos; by default the sample AVIs of Debian's ``opencv-doc``
(``/usr/share/doc/opencv-doc/examples/data``: MPEG-4 Part 2, MS-MPEG4 and Cinepak; one with an
AC-3 track holding an undecodable packet, one whose header claims six times the frames that
decode). ``--install`` installs the package when it is missing (root, apt-get) and times it.
The files are copied into ``--out-dir/corpus`` beside defects derived from them (a truncated copy,
damaged video and audio packets, headers claiming six times the frames: ``tests/media.py``'s
``real_corpus``) and two files with nothing decodable. Then:

- ``videosynth data scan`` on the corpus (a clip of ``--frames`` frames), its seconds;
- a tokenizer reconstruction of each usable file's middle clip (``--frames`` frames, centre crop to
  ``--size``): ``--tokenizer RUN`` (a vqvae run at that clip size), or one trained here on the
  corpus itself for ``--tokenizer-time`` seconds (then the clips were seen in training: a check
  that real files go through, not a held-out score);

printing a table and writing JSON (``--json``, default ``benchmarks/results/real-footage.json``).

    python benchmarks/real_footage.py --install --out-dir /tmp/real
    python benchmarks/real_footage.py --out-dir /tmp/real --tokenizer runs/vq-shapes --json /tmp/real.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from cli_runs import MANY_STEPS, config_of, videosynth  # noqa: E402  (a sibling script)
from media import OPENCV_SAMPLES, real_corpus, real_sources  # noqa: E402  (the tests' media helpers)

PACKAGE = "opencv-doc"


def install() -> dict:
    """``apt-get install opencv-doc`` (after ``apt-get update``): seconds of each and the installed size."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    start = time.perf_counter()
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    updated = time.perf_counter()
    subprocess.run(["apt-get", "install", "-y", "-qq", PACKAGE], check=True, env=env, stdout=subprocess.DEVNULL)
    done = time.perf_counter()
    size = subprocess.run(["dpkg-query", "-W", "-f=${Installed-Size}", PACKAGE], capture_output=True, text=True)
    return {"update_s": updated - start, "install_s": done - updated, "installed_kib": int(size.stdout or 0)}


def train_tokenizer(corpus: Path, out: Path, seconds: float, frames: int, size: int, log: Path) -> Path:
    """A vqvae (``configs/vqvae/shapes-32x32x8.yaml``'s model) trained on the corpus for ``seconds``."""
    import yaml

    cfg = config_of("configs/vqvae/shapes-32x32x8.yaml")
    # the corpus holds its undecodable files on purpose: the tokenizer trains on the rest
    cfg["data"] = {"name": "folder", "root": str(corpus), "frames": frames, "size": size, "max_broken_fraction": 0.5}
    # a handful of files, one random clip each per item: batches of 4
    cfg["train"] = {**cfg["train"], "steps": MANY_STEPS, "time_limit": float(seconds), "sample_every": 0,
                    "ckpt_every": MANY_STEPS, "batch_size": 4}
    path = out / "tokenizer.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    run = out / "tokenizer"
    videosynth("train", "--config", str(path), "--run-dir", str(run), "--no-progress", log=log)
    return run


def reconstruct(corpus: Path, entries: list, tokenizer: Path, frames: int, size: int) -> dict[str, dict]:
    """PSNR / SSIM of each file's middle clip through ``tokenizer``."""
    import videosynth
    from videosynth.data.transforms import resize_crop, to_float
    from videosynth.io import read_clip
    from videosynth.metrics.recon import recon_metrics

    pipe = videosynth.load(tokenizer, device="cpu")
    out = {}
    for entry in entries:
        start = max(0, entry.num_frames // 2 - frames // 2)
        clip = resize_crop(to_float(read_clip(corpus / entry.path, start, frames)), size)[None]  # (1, C, T, H, W)
        with torch.inference_mode():
            out[entry.path] = recon_metrics(clip, pipe.reconstruct(clip))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=OPENCV_SAMPLES, help="folder of real videos (*.avi)")
    ap.add_argument("--install", action="store_true", help=f"apt-get install {PACKAGE} when the source is missing")
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=HERE / "results" / "real-footage.json")
    ap.add_argument("--tokenizer", type=Path, help="a vqvae run trained on --frames x --size clips")
    ap.add_argument("--tokenizer-time", type=float, default=60.0)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args()
    from videosynth.commands.data import scan_report
    from videosynth.data.scan import scan

    result: dict = {"source": str(args.source)}
    if not real_sources(args.source) and args.install:
        result["install"] = install()
    sources = real_sources(args.source)
    if not sources:
        raise SystemExit(f"no *.avi in {args.source}: apt-get install {PACKAGE}, or pass --install (as root)")
    corpus, log = args.out_dir / "corpus", args.out_dir / "log.txt"
    shutil.rmtree(corpus, ignore_errors=True)
    kinds = real_corpus(sources, corpus)
    start = time.perf_counter()
    videosynth("data", "scan", str(corpus), "--frames", str(args.frames), "--no-cache", log=log)
    result["scan_s"] = time.perf_counter() - start
    report = scan_report(corpus, frames=args.frames, use_cache=True)
    entries = scan(corpus, min_frames=args.frames, quiet=True).entries
    tokenizer = args.tokenizer or train_tokenizer(corpus, args.out_dir, args.tokenizer_time, args.frames, args.size, log)
    recon = reconstruct(corpus, entries, tokenizer, args.frames, args.size)
    damaged = {d["path"]: d for d in report["damaged"]}
    rows = []
    for name, what in kinds.items():
        entry = next((e for e in entries if e.path == name), None)
        broken = next((b["reason"] for b in report["broken"] if b["path"] == name), None)
        rows.append({"file": name, "what": what, "bytes": (corpus / name).stat().st_size,
                     "codec": entry.codec if entry else None, "frames": entry.num_frames if entry else None,
                     "header_frames": damaged.get(name, {}).get("header_frames"),
                     "broken": broken, **recon.get(name, {})})
    result.update({"tokenizer": str(tokenizer), "trained_on_corpus": args.tokenizer is None, "frames": args.frames,
                   "size": args.size, "files": rows})
    print(f"{'file':<28}{'what':<30}{'codec':<9}{'frames':>7}{'header':>8}{'PSNR':>7}{'SSIM':>7}  broken")
    for r in rows:
        print(f"{r['file']:<28}{r['what']:<30}{r['codec'] or '-':<9}{r['frames'] or '-':>7}"
              f"{r['header_frames'] or '':>8}{r.get('psnr', float('nan')):>7.2f}{r.get('ssim', float('nan')):>7.3f}"
              f"  {r['broken'] or ''}")
    print(f"scan: {result['scan_s']:.1f} s" + (f"; install: {result['install']}" if "install" in result else ""))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
