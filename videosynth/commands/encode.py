"""``videosynth encode RUN_DIR DATA --out cache/``: encode a dataset once with a trained tokenizer.

Writes a latent cache (``index.json`` + ``shard-NNNNN.safetensors``, see ``videosynth.data.tokens``):
token grids for a vq / fsq tokenizer, which a transformer run reads with ``tokens: DIR``; float
mean latents for a continuous tokenizer, which a flow run reads with ``latents: DIR``. Either
way the second stage trains without decoding or encoding videos. ``videosynth tokenize`` is the
same command under its older name.

``DATA`` is a built-in dataset name (``moving-digits``, ``bouncing-shapes``), a
folder of videos, or a YAML file holding a data section (a run config's
``data:`` or the data keys themselves). Clip size and other unset keys come
from the tokenizer run's own ``data:`` section.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from videosynth.errors import ConfigError

DEFAULT_SHARD_SIZE = 4096  # clips per shard file


def resolve_data(spec: str, base, overrides: list[str] = ()):
    """A ``DataConfig`` from a CLI ``DATA`` argument, filled from ``base`` (the tokenizer run's data).

    Raises:
        ConfigError: unknown keys in the YAML / overrides, or a dataset name that does not exist.
    """
    from videosynth.config import apply_overrides, from_dict, load_yaml, merge, to_dict
    from videosynth.data import DATASETS, DataConfig
    from videosynth.data.factory import DATASET_KEYS

    data = to_dict(base) if base is not None else {}
    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml"):
        given = load_yaml(path)
        given = given.get("data", given) if isinstance(given.get("data"), dict) else given
    elif path.is_dir():
        given = {"name": "folder", "root": str(path), "manifest": None}
    elif spec in DATASETS:
        given = {"name": spec, "root": None, "manifest": None}
    else:
        raise ConfigError(f"DATA '{spec}' is neither a folder, a .yaml file nor a dataset name ({', '.join(DATASETS)})")
    if given.get("name", data.get("name")) != data.get("name"):
        data = {k: v for k, v in data.items() if k not in DATASET_KEYS}  # the base dataset's own keys do not carry over
    data = merge(data, given)
    data = apply_overrides({"data": data}, [o if o.startswith("data.") else f"data.{o}" for o in overrides])["data"]
    return from_dict(DataConfig, data, "data")


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="tokenizer run directory (family: vqvae)")
    p.add_argument("data", help="dataset name, folder of videos, or YAML with a data section")
    p.add_argument("--split", default="train", help="train | val | all (default train)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="data key override, e.g. --set num_samples=500 (repeatable)")
    p.add_argument("--checkpoint", help="step number or step-NNNNNN folder (default: newest valid)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")


def register(sub) -> None:
    p = sub.add_parser("encode", aliases=["tokenize"], help="encode a dataset once: tokens or float latents",
                       description="Encode every clip of a dataset with a trained tokenizer into a cache: token "
                       "grids (vq, fsq bottleneck) or float latents (gaussian bottleneck).")
    add_data_arguments(p)
    p.add_argument("--out", required=True, help="output folder for index.json and the shards")
    p.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="clips per shard file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none is shown off a terminal anyway)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from videosynth.config import to_dict
    from videosynth.data import build_dataset
    from videosynth.data.tokens import check_cache_target, write_token_cache
    from videosynth.pipelines import TokenizerPipeline
    from videosynth.progress import progress_bar

    if args.batch_size < 1 or args.shard_size < 1:
        raise ConfigError("--batch-size and --shard-size must be at least 1")
    check_cache_target(args.out)  # before the encoding work, not after it
    tokenizer = TokenizerPipeline.from_run(args.run_dir, args.checkpoint, args.device)
    kind = "latents" if tokenizer.model.continuous else "tokens"
    encode = tokenizer.encode_latents if tokenizer.model.continuous else tokenizer.encode
    data_cfg = resolve_data(args.data, tokenizer.data, args.overrides)
    latent = tokenizer.latent_shape(data_cfg.frames, data_cfg.size)
    dataset = build_dataset(data_cfg, args.split)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=False,
                                         num_workers=args.workers)
    shards, pending, labels, captions = [], [], [], []
    done = 0
    bar = progress_bar(len(dataset), f"encoding {args.data}", enabled=not args.no_progress)
    with torch.inference_mode():
        for batch in loader:
            pending.append(encode(batch["video"]).cpu())  # (B, t, h, w) tokens or (B, c, t, h, w) latents
            labels.append(batch["label"].long())
            captions.extend(batch["caption"])
            done += len(batch["label"])
            while sum(len(p) for p in pending) >= args.shard_size:  # a batch may fill several shards
                values, lab = torch.cat(pending), torch.cat(labels)
                shards.append({kind: values[:args.shard_size], "labels": lab[:args.shard_size]})
                pending, labels = [values[args.shard_size:]], [lab[args.shard_size:]]
            bar.update(len(batch["label"]))
    bar.close()
    if pending and sum(len(p) for p in pending):
        shards.append({kind: torch.cat(pending), "labels": torch.cat(labels)})
    cfg = tokenizer.model_cfg
    index = write_token_cache(args.out, shards, {
        "kind": kind,
        "tokenizer_run": str(Path(args.run_dir).resolve()),
        "checkpoint": str(tokenizer.step),
        "tokenizer_sha256": tokenizer.weights_sha256,
        "bottleneck": cfg.bottleneck,
        "codebook_size": None if tokenizer.model.continuous else cfg.codebook_size,
        "channels": cfg.code_dim if tokenizer.model.continuous else None,
        "latent_shape": list(latent),
        "data": to_dict(dataclasses.replace(data_cfg)),
        "split": args.split,
        "class_names": list(getattr(dataset, "class_names", [])),
        "captions": captions,
    })
    use = f"tokens: {index.parent}" if kind == "tokens" else f"latents: {index.parent}"
    what = "token grids" if kind == "tokens" else f"latents of {cfg.code_dim} channels"
    print(f"wrote {done} {what} {list(latent)} in {len(shards)} shard(s) to {index.parent} (use with: {use})")
    return 0
