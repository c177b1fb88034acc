"""``videosynth weights [--json]``: which metric weights this machine has, where, and their sha256.

Lists the I3D (FVD/KVD), C3D (IS) and Inception (FID) TorchScript files and the
probe networks of the built-in datasets (FPD). For each: the file name, where it
was found (explicit → ``$VIDEOSYNTH_WEIGHTS`` → ``$XDG_CACHE_HOME/videosynth/weights``)
with its sha256, or every place searched and where to get it. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("weights", help="list the detector weights found on this machine", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


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
