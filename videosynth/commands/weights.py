"""``videosynth weights [--json]``: which metric weights this machine has, where, and their sha256.
``videosynth weights merge-lora RUN --out DIR``: a LoRA fine-tune's adapter folded into its base run's weights.

Lists the I3D (FVD/KVD), C3D (IS) and Inception (FID) TorchScript files and the
probe networks of the built-in datasets (FPD). For each: the file name, where it
was found (explicit → ``$VIDEOSYNTH_WEIGHTS`` → ``$XDG_CACHE_HOME/videosynth/weights``)
with its sha256, or every place searched and where to get it. Nothing is downloaded.

``merge-lora`` writes a plain run (raw and EMA weights, config, classes) that samples the same
clips as the fine-tune and needs neither peft nor the base run: a file to export or share.
"""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("weights", help="list the detector weights found on this machine; merge a LoRA adapter",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    merge = actions.add_parser("merge-lora", help="fold a LoRA fine-tune's adapter into its base weights",
                               description="Write a LoRA fine-tune (finetune.lora_rank > 0) as a plain run whose "
                                           "weights hold the adapter merged into the base run's; it samples the "
                                           "same clips.")
    merge.add_argument("run_dir", help="the LoRA fine-tune's run directory")
    merge.add_argument("--out", required=True, help="the new run directory to write (must not exist, or be empty)")
    merge.add_argument("--checkpoint", help="step number or step-NNNNNN folder (default: newest valid)")
    merge.set_defaults(func=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    import videosynth
    from videosynth.pipelines.finetune import merge_lora_run

    pipe = videosynth.load(args.run_dir, checkpoint=args.checkpoint, device="cpu")
    path = merge_lora_run(pipe, args.out)
    print(f"merged {pipe.checkpoint} onto {pipe.finetune.base_run} -> {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    from videosynth.metrics.weights import describe_weights

    rows = describe_weights()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']:<26} {row['file']}")
        print(f"    {row['description']}")
        if row["found"]:
            print(f"    found ({row['source']}): {row['found']}")
            print(f"    sha256: {row['sha256']}")
        else:
            print(f"    missing; searched: {', '.join(row['searched'])}")
            print(f"    get it from: {row['upstream']}")
    return 0
