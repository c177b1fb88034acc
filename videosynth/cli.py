"""The ``videosynth`` command: parse -> build -> run.

Sub-commands live in ``videosynth/commands/<name>.py`` and register themselves; this file only
wires them up and turns library errors into one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from videosynth._version import __version__
from videosynth.errors import Interrupted, VideoSynthError, one_line

# module name -> one-line description (imported lazily so `videosynth --help` stays fast)
COMMANDS = {
    "demo": "train a small conditional model on built-in data and write sample videos",
    "train": "train a model from a YAML config (or --resume a run)",
    "sample": "write sample videos from a trained run",
    "data": "scan a folder of videos, preview datasets",
    "eval": "FVD / IS / FID / KVD / reconstruction / weight-free metrics",
    "weights": "list the detector weights found on this machine; merge a LoRA adapter into its base run",
    "encode": "encode a dataset once: tokens (vq, fsq) or float latents (continuous); alias tokenize",
    "reconstruct": "VQ-VAE reconstructions side by side, with PSNR/SSIM",
    "serve": "a web page to sample trained runs (needs the 'web' extra)",
    "plot": "training curves of runs side by side (log.jsonl -> png/pdf/svg)",
}


def error_line(message: str) -> str:
    return f"error: {one_line(message)}"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: ...`` and where to look), exit code 2 as before."""

    def error(self, message: str):
        hint = " (a negative number is written --flag=-1)" if "expected one argument" in message else ""
        self.exit(2, error_line(f"{self.prog}: {message}{hint}; see {self.prog} --help") + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="videosynth", description="Classic video generation toolkit.")
    parser.add_argument("--version", action="version", version=f"videosynth {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"videosynth.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("videosynth.commands"):
                continue  # command not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except Interrupted as exc:  # saved and stopped: say how to continue, exit 130 / 143
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except VideoSynthError as exc:
        if args.debug or os.environ.get("VIDEOSYNTH_DEBUG"):
            raise
        print(error_line(str(exc)), file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused a path the user gave (missing folder, permissions, full disk)
        if args.debug or os.environ.get("VIDEOSYNTH_DEBUG"):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(error_line(f"{where}{exc.strerror or exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
