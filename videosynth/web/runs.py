"""The runs a web server offers: what each can be asked for, its model loaded once, one generation.

Nothing here imports Gradio: the page (:mod:`videosynth.web.app`) is a thin layer over
:class:`ServedRun` and :func:`generate`, which the tests call directly too.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from videosynth.checkpoint import find_checkpoint, read_run_config, run_class_names
from videosynth.conditioning import TEXT_KINDS
from videosynth.errors import CheckpointError, ConfigError

# The families a page can generate from, and what a run of another family is for instead.
# Sampling options the page has a control for; the rest stay on the command line.
PAGE_OPTIONS = ("guidance", "steps", "solver", "temperature", "top_k", "top_p", "prime", "prime_frames")
METRICS_SUFFIX = "metrics.json"  # e.g. the demo's demo-metrics.json
BATCH_SIZE = 4  # clips per sampling batch: the progress bar moves at least once per four clips


@dataclass(frozen=True)
class Limits:
    """What one request may ask for, so that one request cannot exhaust the server's memory."""

    max_clips: int = 16
    max_frames: int = 64

    def check(self, num: int, frames: int) -> None:
        if num > self.max_clips:
            raise ConfigError(f"clips {num} is above this server's limit of {self.max_clips} "
                              f"(videosynth serve --max-clips)")
        if frames > self.max_frames:
            raise ConfigError(f"frames {frames} is above this server's limit of {self.max_frames} "
                              f"(videosynth serve --max-frames)")


@dataclass
class Request:
    """One Generate click: the common arguments and the family options the page sets (None = the run's default)."""

    num: int = 4
    seed: int = 0
    frames: int | None = None
    label: str | None = None
    text: str | None = None
    audio: str | None = None  # a sound file (or a video with sound) for sound-driven runs
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    grid: Path  # all clips tiled in one mp4
    clips: list[Path]  # one mp4 per clip
    info: str


class ServedRun:
    """A run directory the server offers: its config and controls at once, its pipeline on first use.

    Raises:
        CheckpointError: not a run directory, a family the page cannot generate from, no valid checkpoint.
    """

    def __init__(self, run_dir: str | Path, device: str = "auto"):
        from videosynth.train.families import FAMILIES

        self.run_dir = Path(run_dir)
        self.config = read_run_config(self.run_dir)
        self.family = str(self.config.get("family"))
        if self.family not in FAMILIES:
            raise CheckpointError(f"{self.run_dir}/config.yaml has family '{self.family}', which no pipeline serves")
        if not FAMILIES[self.family].can.generative:
            raise CheckpointError(f"{self.run_dir} is a {self.family} run ({FAMILIES[self.family].summary}), not a "
                                  "generator: serve a run trained on it")
        find_checkpoint(self.run_dir)  # refuse a run without a valid checkpoint now, not at the first click
        self.pipeline_cls = FAMILIES[self.family].pipeline
        self.device = device
        condition = self.config.get("condition") or {}
        self.condition_kind = str(condition.get("kind", "none"))
        n_classes = int(condition.get("num_classes", 0) or 0) if self.condition_kind == "class" else 0
        self.class_names = run_class_names(self.run_dir, n_classes)
        self.frames = int((self.config.get("data") or {}).get("frames", 16))
        # a joint audio-video run takes a sound too (and makes a clip for it)
        self.takes_audio = bool(condition.get("audio", False)) or bool((self.config.get("joint") or {}).get("audio"))
        self.options = {o.name: o for o in self.pipeline_cls.options if o.name in PAGE_OPTIONS}
        self._pipeline = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return str(self.run_dir)

    @property
    def takes_text(self) -> bool:
        return self.condition_kind in TEXT_KINDS

    def pipeline(self):
        """The run's pipeline, loaded on first use and reused by every later request."""
        with self._lock:
            if self._pipeline is None:
                from videosynth.train.families import load

                self._pipeline = load(self.run_dir, device=self.device)
            return self._pipeline

    # ---- the side panel ------------------------------------------------------------------

    def config_yaml(self) -> str:
        return yaml.safe_dump(self.config, sort_keys=False)

    def loss_plot(self) -> Path | None:
        path = self.run_dir / "loss.png"
        return path if path.is_file() else None

    def metrics(self) -> dict:
        """The run's metrics: the last logged row, the last evaluation row and any ``*metrics.json`` beside it."""
        out: dict[str, Any] = {}
        log = self.run_dir / "log.jsonl"
        if log.is_file():
            last = last_eval = None
            for line in log.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line half-written by a running trainer
                if not isinstance(row, dict):
                    continue
                if any(k.startswith("eval/") for k in row):
                    last_eval = row
                else:
                    last = row
            if last is not None:
                out["last logged step"] = last
            if last_eval is not None:
                out["last evaluation"] = last_eval
        for path in sorted(self.run_dir.glob(f"*{METRICS_SUFFIX}")):
            try:
                out[path.name] = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                out[path.name] = f"unreadable: {exc}"
        return out


def generate(run: ServedRun, request: Request, limits: Limits, out_dir: Path, fps: int = 8,
             progress: Callable[[int, int], None] | None = None) -> Result:
    """Sample ``request.num`` clips from ``run`` into ``out_dir``: one grid mp4 and one mp4 per clip.

    ``progress(done, total)`` is called after each batch of clips. The clips are the ones
    ``videosynth sample`` writes for the same arguments (same seed, same noise stream).

    Raises:
        ConfigError: a request over the limits or one the run cannot honour (one line, shown in the page).
    """
    from videosynth.io import write_av_samples, write_samples
    from videosynth.pipelines.base import check_common

    frames = request.frames if request.frames is not None else run.frames
    check_common(num=request.num, frames=frames, seed=request.seed)
    limits.check(request.num, frames)
    label = request.label or None
    text = (request.text or "").strip() or None
    if text is not None and not run.takes_text:
        text = None  # the text box is hidden for this run; a value left in it from another run is not a request
    options = {k: v for k, v in request.options.items() if k in run.options and v not in (None, "")}
    pipe = run.pipeline()
    out_dir.mkdir(parents=True, exist_ok=True)
    sound = pipe.sound(request.audio, 1, frames) if request.audio and run.takes_audio else None  # (1, S)
    own_sound = pipe.generates_sound and sound is None  # a joint run makes each clip's sound
    if sound is not None or own_sound:
        fps = pipe.audio_fps  # the rate the sound lines up with
    stream = pipe.stream_with_sound if own_sound else pipe.stream
    batches = stream(request.num, request.seed, label, text, request.frames, True, BATCH_SIZE, audio=sound, **options)
    if progress is not None:
        progress(0, request.num)
    files = dict(grid=out_dir / "grid.mp4", clip_path=lambda i: out_dir / f"clip-{i:03d}.mp4",
                 sample_rate=pipe.audio_rate,
                 on_batch=None if progress is None else (lambda done: progress(done, request.num)))
    if own_sound:
        written = write_av_samples(batches, fps, **files)
    else:
        written = write_samples(batches, fps, audio=None if sound is None else sound[0], **files)
    t, h, w = written.shape
    what = f"class {label}" if label else (f"'{text}'" if text else "")
    if sound is not None:
        what = (what + ", " if what else "") + f"driven by {Path(request.audio).name}"
    info = (f"{request.num} clips, {t} frames, {h}x{w}, seed {request.seed}"
            f"{', ' + what if what else ''}; {run.family} run {run.name} at step {pipe.step}")
    return Result(grid=written.grid, clips=written.clips, info=info)

