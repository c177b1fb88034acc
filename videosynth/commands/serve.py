"""``videosynth serve RUN_DIR [RUN_DIR ...]``: a web page to sample trained runs (optional extra ``web``)."""

from __future__ import annotations

import argparse
import socket
import sys

from videosynth.errors import ConfigError

LOCALHOST = "127.0.0.1"


def register(sub) -> None:
    p = sub.add_parser("serve", help="a web page to sample trained runs (needs the 'web' extra: Gradio)",
                       description="Serve a page where a trained run's clips are generated on demand: pick a run, "
                                   "its class / caption / first frames and sampler settings, click Generate.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by `videosynth train`")
    p.add_argument("--host", default=LOCALHOST,
                   help=f"address to bind (default {LOCALHOST}: this machine only; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--max-clips", type=int, default=16, help="most clips one request may ask for (default 16)")
    p.add_argument("--max-frames", type=int, default=64, help="most frames per clip one request may ask for (default 64)")
    p.add_argument("--fps", type=int, default=8, help="frame rate of the videos written (default 8)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from videosynth.pipelines.base import check_common
    from videosynth.web.app import build_app, import_gradio
    from videosynth.web.runs import Limits

    check_common(cli=True, fps=args.fps)
    for flag, value in (("--max-clips", args.max_clips), ("--max-frames", args.max_frames)):
        if value < 1:
            raise ConfigError(f"{flag} {value}: must be at least 1")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: must be in 1..65535")
    import_gradio()  # the install hint before any model is read
    _check_port(args.host, args.port)
    runs = served_runs(args.run_dirs, args.device)
    if len({r.name for r in runs}) < len(runs):
        raise ConfigError("a run directory is named twice")
    if args.host != LOCALHOST:
        print(f"warning: serving on {args.host}: anyone who can reach this machine can use the page", file=sys.stderr)
    app = build_app(runs, Limits(args.max_clips, args.max_frames), fps=args.fps)
    print(f"serving {len(runs)} run(s) on http://{args.host}:{args.port} (Ctrl-C stops)", file=sys.stderr, flush=True)
    app.launch(server_name=args.host, server_port=args.port, share=False, inbrowser=False, ssr_mode=False,
               show_error=False, quiet=True, footer_links=[])
    return 0


def served_runs(run_dirs: list[str], device: str) -> list:
    """The runs the page offers; one that cannot be served (no checkpoint, a damaged config, another
    family) is skipped with a warning on stderr, so one bad folder does not take the others down.

    Raises:
        VideoSynthError: no run can be served (the first run's reason).
    """
    from videosynth.errors import VideoSynthError, one_line
    from videosynth.web.runs import ServedRun

    runs, skipped = [], []
    for path in run_dirs:
        try:
            runs.append(ServedRun(path, device))
        except VideoSynthError as exc:
            skipped.append((path, exc))
    if not runs:
        raise skipped[0][1]
    for path, exc in skipped:
        print(f"warning: skipping {path}: {one_line(exc)}", file=sys.stderr)
    return runs


def _check_port(host: str, port: int) -> None:
    """A one-line error now for a port that is taken, before the models load and the server starts."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot serve on {host}:{port} ({exc.strerror or exc}); pick another --port") from None
