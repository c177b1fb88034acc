"""One-step flow sampling by distillation from a trained flow run (``loss.objective: distill``).

A trained flow model maps noise to a clip by integrating its velocity over many steps; that map is
deterministic, so a second model can learn it directly (knowledge distillation of a sampler,
Luhman & Luhman 2021; the one-step student of rectified flow, Liu et al. 2023). The teacher
(``loss.distill_teacher``, a flow run over the same tokenizer) first integrates
``loss.distill_pairs`` noise draws with its own sampling settings (steps, solver, guidance, shift),
each under a label drawn uniformly from its classes; the pairs (noise, label, clip latents) are
kept in the run directory, so a resumed run trains on the same pairs. The student (best started
from the teacher's weights, ``--init TEACHER``) then learns, at time 0, the velocity that reaches
the teacher's clip in one Euler step: ``v(x0, 0) = x_teacher - x0``. It samples with
``--steps 1 --solver euler`` and no guidance -- the teacher's guidance is in the pairs.

Distillation costs the teacher's sampling of the pairs (its steps times two for guidance, per
pair) and the student's steps; it learns from no data (the loop's batches of the run's data only
set how many pairs a step draws). What it cannot do: make a clip the teacher would
not, or condition on text, sound or first frames (refused).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from videosynth.errors import CheckpointError, ConfigError

PAIRS_FILE = "distill-pairs.safetensors"
PAIR_BATCH = 256  # teacher clips integrated at once


def check_distill(cfg) -> None:
    """What a distillation run needs; one-line errors for what it cannot take.

    Raises:
        ConfigError: no teacher, condition dropout, a condition other than class labels, or a joint run.
    """
    loss = cfg.loss
    if not loss.distill_teacher:
        raise ConfigError("loss.objective: distill needs loss.distill_teacher: the run directory of a trained flow "
                          "run over this run's tokenizer")
    if cfg.joint.audio:
        raise ConfigError("loss.objective: distill learns video clips only: remove joint.audio")
    if loss.frame_times != "shared":
        raise ConfigError("loss.objective: distill learns whole clips from noise: set loss.frame_times: shared")
    c = cfg.condition
    if c is not None and (c.kind not in ("none", "class") or c.audio):
        raise ConfigError(f"loss.objective: distill takes class labels or no condition, not condition.kind "
                          f"'{c.kind}'{' with sound' if c.audio else ''}: distil a class-conditional run")
    if c is not None and c.kind == "class" and c.dropout:
        raise ConfigError("loss.objective: distill learns the teacher's guided clip of each label, never the null "
                          "label: set condition.dropout: 0")


def teacher_pairs(cfg, run_dir: Path | None, tokenizer_sha256: str | None, device: torch.device,
                  is_main: bool = True) -> dict[str, torch.Tensor]:
    """The run's pairs ``{"x0" [N, c, t, h, w], "x1" [N, c, t, h, w], "labels" int64 [N]}`` on the CPU:
    read from ``run_dir`` when an earlier start of this run made them, else made by the teacher (seeded
    by ``train.seed``) and written there (by the main process, atomically; nowhere without a run directory).

    A resumed run reads its pairs and never loads the teacher again. Under DDP every process makes the
    same pairs (one seed) rather than waiting for one to make them.

    Raises:
        CheckpointError: the teacher is missing, not a video flow run, or over another tokenizer; the
            pairs file in the run is of another teacher, count or seed.
    """
    from safetensors.torch import load_file, save_file

    loss = cfg.loss
    stamp = f"{loss.distill_teacher}|{loss.distill_pairs}|{cfg.train.seed}"
    path = None if run_dir is None else run_dir / PAIRS_FILE
    if path is not None and path.exists():
        pairs = load_file(str(path))
        if _stamp_of(pairs) != stamp:
            raise CheckpointError(f"{path} holds pairs of another teacher, count or seed than this run's "
                                  f"(loss.distill_teacher / distill_pairs / train.seed): delete it to make new ones")
        return {k: v for k, v in pairs.items() if k != "stamp"}
    say = (lambda line: print(line, file=sys.stderr)) if is_main else (lambda line: None)
    teacher = _load_teacher(loss.distill_teacher, tokenizer_sha256, device)
    pairs = make_pairs(teacher, loss.distill_pairs, cfg.train.seed, say)
    if is_main and path is not None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        save_file({**pairs, "stamp": torch.tensor(list(stamp.encode()), dtype=torch.uint8)}, str(tmp))
        os.replace(tmp, path)
    return pairs


def _stamp_of(pairs: dict) -> str:
    stamp = pairs.get("stamp")
    return "" if stamp is None else bytes(stamp.tolist()).decode(errors="replace")


def _load_teacher(run: str, tokenizer_sha256: str | None, device: torch.device):
    import videosynth
    from videosynth.pipelines.flow import FlowPipeline

    teacher = videosynth.load(run, device=str(device))
    if not isinstance(teacher, FlowPipeline) or teacher.joint.audio:
        raise CheckpointError(f"loss.distill_teacher {run} is not a video flow run: distil a flow run (family: flow)")
    if tokenizer_sha256 and teacher.config.get("tokenizer_sha256") != tokenizer_sha256:
        raise CheckpointError(f"loss.distill_teacher {run} was trained over another tokenizer than this run's "
                              f"tokenizer_run: the student must share the teacher's latents")
    return teacher


@torch.no_grad()
def make_pairs(teacher, n: int, seed: int, log=lambda line: None) -> dict[str, torch.Tensor]:
    """``n`` (noise, label, teacher clip latents) triples from the teacher's own sampling settings."""
    from videosynth.pipelines.flow import sample_window

    net = teacher.net(True)
    cfg = net.net.cfg
    s = teacher.sample_cfg
    classes = len(teacher.class_names) if teacher.condition_kind == "class" else 0
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn((n, cfg.latent_channels, *cfg.latent_shape), generator=g)  # (N, c, t, h, w)
    labels = torch.randint(classes, (n,), generator=g) if classes else torch.full((n,), -1, dtype=torch.long)
    out = []
    for start in range(0, n, PAIR_BATCH):
        rows = slice(start, min(n, start + PAIR_BATCH))
        given = labels[rows].to(teacher.device) if classes else None
        out.append(sample_window(net, x0[rows].to(teacher.device), given, [""] * (rows.stop - rows.start),
                                 s.steps, s.solver, s.guidance, shift=s.shift).float().cpu())
        log(f"distill: the teacher made {rows.stop} of {n} clips ({s.steps} {s.solver} steps, guidance {s.guidance})")
    return {"x0": x0, "x1": torch.cat(out), "labels": labels}


def distill_loss(net, ctx, pairs: dict[str, torch.Tensor], batch_size: int) -> torch.Tensor:
    """MSE between the student's velocity at time 0 and the one-step velocity to the teacher's clip, on
    ``batch_size`` pairs drawn with the global RNG (restored on resume, so a resumed run draws the same)."""
    idx = torch.randint(pairs["x0"].shape[0], (batch_size,))
    x0, x1 = pairs["x0"][idx].to(ctx.device), pairs["x1"][idx].to(ctx.device)
    labels = pairs["labels"][idx].to(ctx.device)
    t = torch.zeros(batch_size, device=ctx.device)
    with ctx.autocast():
        v = net(x0, labels=labels if labels.min() >= 0 else None, captions=[""] * batch_size, t=t)
    return F.mse_loss(v.float(), x1 - x0)
