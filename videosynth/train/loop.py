"""The shared training loop: one loop for every family, one objective per family.

The loop owns what has nothing to do with a particular model, each concern in its module:
the run config (:mod:`.config`), the context objectives use -- device, DDP, mixed precision,
the NaN/Inf guard (:mod:`.context`), checkpoints with exact resume (:mod:`.checkpointing`),
the data order (:mod:`.data_order`), EMA (:mod:`.ema`), the RNG state (:mod:`.rng`), logs,
the loss plot and sample videos (:mod:`.logs`), TensorBoard events (:mod:`.tensorboard`) and
clean shutdown on SIGINT/SIGTERM (:mod:`.signals`). The objective contract is :mod:`.objective`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from videosynth.checkpoint import (
    CHECKPOINT_PREFIX,
    CLASSES_FILE,
    atomic_write_bytes,
    checkpoint_dirs,
    find_checkpoint,
    prune_checkpoints,
    remove_stale_temps,
    write_run_config,
)
from videosynth.config import to_dict
from videosynth.device import select_device
from videosynth.errors import CheckpointError, ConfigError, Interrupted, VideoSynthError
from videosynth.train import checkpointing
from videosynth.train.config import RunConfig
from videosynth.train.context import Context, SkipWatch, init_distributed
from videosynth.train.data_order import ResumableSampler, batches
from videosynth.train.logs import append_row, learning_rates, to_host, truncate_log, write_loss_plot, write_samples
from videosynth.train.objective import Objective
from videosynth.train.rng import seed_everything
from videosynth.train.run_lock import RunLock
from videosynth.train.signals import StopFlag, agree_stop
from videosynth.train.tensorboard import open_tensorboard

log = logging.getLogger("videosynth.train")


def sample_grid(objective: Objective, n: int, generator: torch.Generator | int) -> torch.Tensor | None:
    """The objective's sample grid, float [n, C, T, H, W] in [-1, 1] (eval mode, no grad); an int seeds it."""
    if isinstance(generator, int):
        generator = torch.Generator(device="cpu").manual_seed(generator)
    objective.set_train(False)
    try:
        with torch.no_grad():
            return objective.sample(n, generator)
    finally:
        objective.set_train(True)


def _check_classes(run_dir: Path, dataset) -> None:
    """A resumed run's data must have the classes it was trained on, in the same order (labels are indices)."""
    try:
        saved = json.loads((run_dir / CLASSES_FILE).read_text())
    except (OSError, ValueError):
        return  # a run from before classes.json, or none written: nothing to compare
    names = list(dataset.class_names)
    if saved and names and names != saved:
        raise ConfigError(f"{run_dir / CLASSES_FILE}: the run was trained on classes {saved}, the data have {names}; "
                          f"resume on the same data, or start a new run")


def train(
    config: RunConfig,
    objective_cls: type[Objective],
    run_dir: str | Path,
    dataset,
    resume: bool = False,
    progress: bool = True,
    eval_fn=None,
    init: str | Path | None = None,
) -> Path:
    """Train ``objective_cls`` on ``dataset`` into ``run_dir``; returns the final checkpoint path.

    With ``resume=True`` the newest valid checkpoint in ``run_dir`` is loaded and training
    continues exactly where it stopped (same data order and RNG). ``eval_fn(objective, step)``,
    if given, is called every ``train.eval_every`` steps on rank 0 and its floats are logged.
    """
    if resume and init is not None:
        raise ConfigError("--init starts a new run from another run's weights; a resumed run keeps its own: "
                          "drop --init")
    if not resume:
        config = objective_cls.prepare_config(config, dataset)
    cfg = config.train
    init_distributed()
    device = select_device(cfg.device, "train.device")
    run_dir = Path(run_dir)
    ctx = Context(cfg, device, run_dir, dataset)
    seed_everything(cfg.seed + ctx.rank)  # per-rank seeds; DDP broadcasts rank 0's initial weights
    objective = objective_cls(config, ctx)  # before anything is written: a bad config leaves no run behind
    with RunLock(run_dir, enabled=ctx.is_main):
        line = objective.adapter_line  # a LoRA fine-tune loaded its base when it was built
        if init is not None and not objective.adapted:
            line = checkpointing.init_from(Path(init), objective, list(dataset.class_names))
        if line and ctx.is_main:
            print(line, file=sys.stderr)
        return _train_locked(config, objective, ctx, run_dir, dataset, resume, progress, eval_fn)


def _train_locked(config: RunConfig, objective: Objective, ctx: Context, run_dir: Path, dataset, resume: bool,
                  progress: bool, eval_fn) -> Path:
    """The loop proper, with the objective built and the run's lock held (on rank 0)."""
    cfg = config.train
    device = ctx.device
    step = 0
    log_path = run_dir / "log.jsonl"
    if ctx.is_main:
        for path in remove_stale_temps(run_dir):
            log.warning("removed %s, left by a killed writer", path)
    if resume:
        _check_classes(run_dir, dataset)
        path, _ = find_checkpoint(run_dir)
        step = checkpointing.load(path, objective)
        if step > cfg.steps:
            raise ConfigError(f"train.steps={cfg.steps}: {run_dir} is already at step {step}; give more steps "
                              f"to continue it (e.g. --steps {step + cfg.steps})")
        if ctx.is_main:
            prune_checkpoints(run_dir, cfg.keep_last, keep=path)
            dropped = truncate_log(log_path, step)
            write_run_config(run_dir, to_dict(config))  # only once the checkpoint has loaded into this config
            print(f"resumed from {path} (step {step})" + (f"; dropped {dropped} log rows past it" if dropped else ""),
                  file=sys.stderr)
    elif ctx.is_main:
        if checkpoint_dirs(run_dir):
            raise CheckpointError(f"{run_dir} already holds checkpoints: use --resume {run_dir} or another --run-dir")
        write_run_config(run_dir, to_dict(config))
        atomic_write_bytes(run_dir / CLASSES_FILE, json.dumps(list(dataset.class_names)).encode())
        log_path.unlink(missing_ok=True)  # left by an earlier attempt that failed before its first checkpoint
    if ctx.is_main:
        print(f"run directory: {run_dir}", file=sys.stderr)
    objective.set_train(True)

    sampler = ResumableSampler(len(dataset), cfg.batch_size, cfg.seed, ctx.rank, ctx.world_size)
    num_workers = getattr(config.data, "num_workers", 0) if config.data is not None else 0
    data = batches(dataset, sampler, cfg, step, device, objective.batch_keys, num_workers)
    sample_seed = cfg.seed + 12345
    bar = None
    if ctx.is_main and progress and sys.stderr.isatty():  # off a terminal, log.jsonl is the record
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="it", dynamic_ncols=True, mininterval=0.5)
    last_saved = step if resume else -1
    skips = SkipWatch(device)
    t_last, steps_since = time.perf_counter(), 0
    deadline = t_last + cfg.time_limit if cfg.time_limit > 0 else None
    out_of_time = False
    # closed however the loop ends: finished, interrupted, or an error
    with open_tensorboard(run_dir, to_dict(config), step, resume, ctx.is_main and cfg.tensorboard) as tb:
        with StopFlag() as stopper:
            while step < cfg.steps and not out_of_time:
                # ---- one optimisation step -------------------------------------------------
                batch = next(data)
                ctx.skips = {}
                metrics = objective.train_step(batch, step)
                skips.add(ctx.skips)  # on the device: a skipped update is known to the host at log steps
                step += 1
                steps_since += 1
                # ranks agree on stopping every step alone, every log_every steps under DDP (a sync)
                log_step = step % cfg.log_every == 0 or step == cfg.steps
                check = not ctx.distributed or log_step
                if deadline is not None and check:  # every rank stops at the same step
                    out_of_time = agree_stop(ctx.distributed, ctx.device, time.perf_counter() >= deadline)
                last = step == cfg.steps or out_of_time
                log_step = log_step or last
                # ---- logging: the only place logged values reach the host ---------------------
                if log_step:  # on every rank: all raise together
                    counts, longest = skips.read()
                    skipped = [name for name, n in counts.items() if n]
                    if skipped:
                        metrics["skipped"] = ",".join(skipped)
                        log.warning("step %d: non-finite loss in %s; update skipped (%s since the last log)",
                                    step, ", ".join(skipped), ", ".join(f"{n}: {counts[n]}" for n in skipped))
                    if longest >= cfg.max_bad_steps:
                        if bar:
                            bar.close()
                        raise VideoSynthError(
                            f"{longest} steps in a row had a non-finite loss (by step {step}); their updates were"
                            f" skipped and the checkpoints in {run_dir / 'checkpoints'} are intact: lower the"
                            f" learning rate or check the data"
                        )
                if ctx.is_main and log_step:
                    now = time.perf_counter()
                    values = {**to_host(metrics), **learning_rates(objective.optimizers())}
                    row = {"step": step, "time": round(time.time(), 3),
                           "it_s": round(steps_since / (now - t_last), 4), **values}
                    append_row(log_path, row)
                    tb.log_row(row)
                    t_last, steps_since = now, 0
                    if bar:
                        shown = {k: f"{v:.3g}" for k, v in values.items()
                                 if isinstance(v, float) and k.startswith("loss")}
                        bar.set_postfix(shown, refresh=False)
                if bar:
                    bar.update(1)
                # ---- periodic evaluation, samples and checkpoints -----------------------------
                if eval_fn is not None and cfg.eval_every > 0 and step % cfg.eval_every == 0 and ctx.is_main:
                    scores = eval_fn(objective, step)
                    row = {"step": step, "time": round(time.time(), 3), **{f"eval/{k}": v for k, v in scores.items()}}
                    append_row(log_path, row)
                    tb.log_row(row)
                if ctx.is_main and cfg.sample_every > 0 and step % cfg.sample_every == 0:
                    grid = sample_grid(objective, cfg.num_samples, sample_seed)
                    write_samples(grid, run_dir, step, cfg.sample_fps)
                    tb.log_samples(grid, step)
                stop = agree_stop(ctx.distributed, ctx.device, stopper.stop) if check else False
                if step % cfg.ckpt_every == 0 or last or stop:
                    if ctx.is_main:
                        checkpointing.save(run_dir, step, objective, config, cfg.keep_last)
                        write_loss_plot(log_path, run_dir / "loss.png")
                        tb.flush()
                    last_saved = step
                    if ctx.distributed:
                        dist.barrier()
                if stop:
                    if bar:
                        bar.close()
                    raise Interrupted(f"interrupted at step {step} of {cfg.steps} (saved to {run_dir / 'checkpoints'});"
                                      f" resume with: videosynth train --resume {run_dir}", stopper.exit_code, step)
        if bar:
            bar.close()
        if out_of_time and ctx.is_main:
            print(f"train.time_limit of {cfg.time_limit:g} s reached at step {step} of {cfg.steps}; "
                  f"continue with: videosynth train --resume {run_dir}", file=sys.stderr)
        if last_saved != step and ctx.is_main:
            checkpointing.save(run_dir, step, objective, config, cfg.keep_last)
        if ctx.is_main and cfg.sample_every > 0 and step % cfg.sample_every != 0:
            grid = sample_grid(objective, cfg.num_samples, sample_seed)
            write_samples(grid, run_dir, step, cfg.sample_fps)
            tb.log_samples(grid, step)
    return run_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{step:06d}"
