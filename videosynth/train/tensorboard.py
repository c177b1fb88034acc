"""TensorBoard event files for a run, in ``RUN_DIR/tb/`` beside ``log.jsonl`` (rank 0 only).

``tensorboard --logdir runs`` shows each run as one run: one folder of event files, to which a
resumed run adds a file. ``log.jsonl`` stays the source of truth; the events carry the same
values, written at the same moments (log rows, sample grids, evaluations), never per step:

- every number of every log row, as rounded in ``log.jsonl``, at the row's step and wall time;
  tags (:func:`scalar_tag`): ``loss/<key>`` for the keys ``loss.png`` draws
  (:func:`videosynth.plots.loss_group`), ``grad_norm/<name>``, ``lr/<optimizer>``,
  ``eval/<metric>``, ``speed/it_s`` and ``metrics/<key>`` for the rest (psnr, perplexity, ...);
- ``samples``: each periodic sample grid as one image, a row per clip and a column per frame
  (at most :data:`MAX_CLIPS` clips and :data:`MAX_FRAMES` frames, evenly spaced);
- ``config``: the resolved config as YAML (at the step a process starts from);
- hparams: the config's numbers, strings and booleans (flattened, ``train.lr``), with the
  run's loss tags as its metrics (the HParams dashboard shows their last values). The three
  hparams summaries go into this writer's own file: ``SummaryWriter.add_hparams`` would write
  them to a subfolder, which TensorBoard shows as a second run.

A resume from the checkpoint at step ``k`` opens the writer with ``purge_step=k + 1``: events
a stopped process logged after that checkpoint are hidden, rows up to ``k`` stay (as
:func:`~videosynth.train.logs.truncate_log` does for ``log.jsonl``). A new run removes event
files an earlier attempt left before its first checkpoint, as the loop removes its ``log.jsonl``.

A file-system error (a full disk) is a one-line :class:`~videosynth.errors.CheckpointError`,
as for ``log.jsonl``: both live on the same disk, and stopping with the last checkpoint intact
beats a run whose curves silently end. ``train.tensorboard: false`` writes no events.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from pathlib import Path

import torch

from videosynth.checkpoint import split_vocab
from videosynth.errors import CheckpointError, ConfigError
from videosynth.plots import loss_group
from videosynth.train.logs import log_value

log = logging.getLogger("videosynth.train")

TB_DIR = "tb"
MAX_CLIPS = 8  # rows of the sample image
MAX_FRAMES = 16  # columns of the sample image
MAX_QUEUE = 100  # events buffered before a write blocks the loop (a row is ~20 scalars)
ROW_META = ("step", "time")  # row columns that are not series
PREFIX_GROUPS = ("grad_norm", "lr")  # "grad_norm_g" -> "grad_norm/g", "lr_generator" -> "lr/generator"
# Event file names start with the creation time in whole seconds and TensorBoard reads a folder's
# files in name order; a resumed writer must sort after the file it purges, so it waits for the
# next second when one was created within this one (at most this long, for clocks that disagree).
MAX_NAME_WAIT_S = 2.0
EVENT_TIME = re.compile(r"^events\.out\.tfevents\.(\d+)\.")


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a ``log.jsonl`` key: ``group/name``, one tag per key."""
    if "/" in key:  # eval/... rows are grouped already
        return key
    if key == "it_s":
        return "speed/it_s"
    for prefix in PREFIX_GROUPS:
        if key.startswith(prefix + "_"):
            return f"{prefix}/{key[len(prefix) + 1:]}"
    if loss_group(key) is not None:
        return f"loss/{key}"
    return f"metrics/{key}"


def flat_hparams(config: dict, prefix: str = "") -> dict[str, int | float | str | bool]:
    """The config's numbers, strings and booleans as ``section.key`` (lists and nulls left out)."""
    out: dict[str, int | float | str | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_hparams(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
    return out


def sample_image(videos: torch.Tensor):
    """A sample grid float ``[n, C, T, H, W]`` in [-1, 1] as one uint8 image ``[H', W', 3]``.

    Row i is clip i (the first :data:`MAX_CLIPS`), column j a frame (:data:`MAX_FRAMES` at most,
    evenly spaced); the float -> uint8 conversion is :func:`videosynth.io.to_uint8`'s.
    """
    from videosynth.io import filmstrip

    clips = videos[:MAX_CLIPS].detach().float().cpu()  # (n, C, T, H, W)
    t = clips.shape[2]
    frames = torch.linspace(0, t - 1, min(t, MAX_FRAMES)).round().long().unique()  # (F,)
    return filmstrip(clips[:, :, frames])  # (n*(H+2)+2, F*(W+2)+2, 3)


def _wait_for_a_later_name(tb_dir: Path) -> None:
    """Sleep until the wall clock's second is past every event file's (see :data:`MAX_NAME_WAIT_S`)."""
    stamps = [int(m.group(1)) for p in tb_dir.glob("events.out.tfevents.*") if (m := EVENT_TIME.match(p.name))]
    if not stamps:
        return
    wait = max(stamps) + 1 - time.time()
    if wait > MAX_NAME_WAIT_S:
        log.warning("%s holds an event file from %.0f s in the future; TensorBoard may read the files "
                    "of this run out of order", tb_dir, wait)
    elif wait > 0:
        time.sleep(wait)


class TensorBoardLog:
    """The run's event writer; the loop calls :meth:`log_row`, :meth:`log_samples`, :meth:`flush`, :meth:`close`."""

    def __init__(self, run_dir: Path, config: dict, step: int, resume: bool):
        import yaml

        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("train.tensorboard: true needs the tensorboard package: pip install "
                              "'tensorboard>=2.10', or set train.tensorboard=false") from None
        self.dir = Path(run_dir) / TB_DIR
        self.config, _ = split_vocab(config)  # config.yaml's form: the vocabulary is vocab.json's
        self.hparams_written = False
        self.closed = False
        self.writer = None
        with self._writes():
            if resume:
                self.dir.mkdir(parents=True, exist_ok=True)
                _wait_for_a_later_name(self.dir)
            else:  # left by an attempt that failed before its first checkpoint, as its log.jsonl
                for path in self.dir.glob("events.out.tfevents.*"):
                    path.unlink()
            self.writer = SummaryWriter(str(self.dir), purge_step=step + 1 if resume else None,
                                        max_queue=MAX_QUEUE)
            text = yaml.safe_dump(self.config, sort_keys=False)
            self.writer.add_text("config", f"```yaml\n{text}```", step)

    @contextlib.contextmanager
    def _writes(self):
        """OSError (raised here or by the writer's thread at the next call) -> a one-line CheckpointError."""
        try:
            yield
        except OSError as exc:
            self.closed = True  # the writer cannot be trusted to flush or close any more
            raise CheckpointError(f"cannot write TensorBoard events to {self.dir}: {exc.strerror or exc}; "
                                  f"free disk space and resume (or set train.tensorboard=false)") from None

    def log_row(self, row: dict) -> None:
        """Every number of a ``log.jsonl`` row (as rounded there; NaN/Inf as NaN/Inf) at ``row['step']``."""
        step, walltime = row["step"], row.get("time")
        with self._writes():
            for key, value in row.items():
                if key in ROW_META or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                logged = log_value(value)
                self.writer.add_scalar(scalar_tag(key), value if logged is None else logged, step, walltime)
            if not self.hparams_written:
                self._write_hparams(row, step)

    def _write_hparams(self, row: dict, step: int) -> None:
        """The hparams summaries, once a row names the loss tags they point at."""
        from torch.utils.tensorboard.summary import hparams

        metrics = {scalar_tag(k): v for k, v in row.items() if k not in ROW_META and loss_group(k) is not None}
        if not metrics:
            return
        for summary in hparams(flat_hparams(self.config), metrics):  # experiment, session start, session end
            self.writer.file_writer.add_summary(summary, step)
        self.hparams_written = True

    def log_samples(self, videos: torch.Tensor | None, step: int) -> None:
        """A periodic sample grid float ``[n, C, T, H, W]`` in [-1, 1] as the ``samples`` image at ``step``."""
        if videos is None:
            return
        with self._writes():
            self.writer.add_image("samples", sample_image(videos), step, dataformats="HWC")

    def flush(self) -> None:
        """Write what is buffered (at checkpoints, so events and checkpoints agree)."""
        if not self.closed:
            with self._writes():
                self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file; a second call does nothing."""
        if self.closed or self.writer is None:
            return
        self.closed = True
        with self._writes():
            self.writer.close()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # already failing: keep that error, do not replace it by a second one from closing
            self.close()
        except CheckpointError as err:
            log.warning("%s", err)


class NoTensorBoard:
    """What the loop talks to when events are off (``train.tensorboard: false``, ranks other than 0)."""

    def log_row(self, row: dict) -> None:
        pass

    def log_samples(self, videos, step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NoTensorBoard:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        pass


def open_tensorboard(run_dir: Path, config: dict, step: int, resume: bool, enabled: bool):
    """The run's :class:`TensorBoardLog` starting at ``step``, or a :class:`NoTensorBoard` when not ``enabled``."""
    return TensorBoardLog(run_dir, config, step, resume) if enabled else NoTensorBoard()
