"""The shared training loop: one loop, one objective per model family.

The loop owns everything that has nothing to do with a particular model:
the run directory, atomic checkpoints with exact resume, the data order,
EMA bookkeeping, DDP, mixed precision, the NaN/Inf guard, logging, progress
output, periodic sample videos and clean shutdown on SIGINT/SIGTERM.

Objective interface
-------------------
A family plugs in a subclass of :class:`Objective`::

    class GANObjective(Objective):
        def __init__(self, cfg: VideoGANRunConfig, ctx: Context):
            super().__init__(cfg, ctx)
            self.G = ctx.wrap(Generator(cfg.model))            # DDP-wrapped when distributed
            self.opt_g = torch.optim.Adam(self.G.parameters(), ...)
            self.ema_g = EMA(unwrap(self.G), cfg.train.ema_decay)

        def modules(self):    return {"generator": self.G, ...}     # saved in model.safetensors
        def ema_modules(self): return {"generator": self.ema_g.module}  # saved in ema.safetensors
        def optimizers(self): return {"generator": self.opt_g, ...}    # saved in state.pt
        def train_step(self, batch, step) -> dict[str, float]:
            with self.ctx.autocast():
                loss = ...                                        # compute in fp32 where it matters
            self.ctx.backward_step(loss, self.opt_g, self.G)      # NaN guard, scaler, clipping
            self.ema_g.update(unwrap(self.G))
            return {"loss_g": loss.item(), ...}                   # logged as-is
        @torch.no_grad()
        def sample(self, n, generator) -> Tensor:                 # float [n, C, T, H, W] in [-1, 1]
            ...

        def generate(self, n, generator, labels=None, captions=None, frames=None, ema=True) -> Tensor:
            ...                                                   # used by `videosynth sample`

``generate`` is what ``videosynth sample RUN_DIR`` calls (via ``videosynth.sample.load_run``, which
builds the objective on the run's config and loads the checkpoint's model/EMA weights):
``labels`` int64 [n] (-1 = none) or None, ``captions`` list[str] or None, ``frames`` a requested
clip length (families that can roll out longer clips honour it, others raise ConfigError when it
differs from the trained length), ``ema`` picks the EMA weights when the family has them. It returns
float [n, C, T, H, W] in [-1, 1]. Family-specific sampling controls (content/motion grids, priming,
guidance) take extra keyword arguments; ``sample`` for the periodic grid usually calls ``generate``
with labels cycling through the classes.

``batch`` is ``{"video": float32 [B, C, T, H, W] in [-1, 1] (on ctx.device), "label": int64 [B],
"caption": list[str]}``.  Use the global torch RNG for training noise (it is seeded per rank
and restored on resume) and the given ``generator`` for samples.  ``extra_state()`` /
``load_extra_state()`` carry anything else that must survive a resume (tensors, numbers).

Run directory
-------------
``config.yaml`` (resolved config), ``checkpoints/step-000123/{model,ema}.safetensors``,
``state.pt`` (optimisers, step, RNG; loadable with ``weights_only=True``), ``meta.json``
(config, version, step, file hashes), ``latest`` (name of the newest complete checkpoint),
``samples/step-000123.mp4``, ``log.jsonl``, ``loss.png``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from videosynth.config import from_dict, save_yaml, to_dict
from videosynth.errors import CheckpointError, ConfigError, VideoSynthError

log = logging.getLogger("videosynth.train")

CHECKPOINT_PREFIX = "step-"


# ---------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Loop settings shared by every family (section ``train:`` of a run config)."""

    steps: int = 1000
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" | "mps"
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16"; autocast on CUDA only, loss math stays fp32
    log_every: int = 10
    ckpt_every: int = 500
    sample_every: int = 500
    num_samples: int = 16  # clips in each periodic sample grid
    sample_fps: int = 8
    keep_last: int = 3  # checkpoints kept on disk
    ema_decay: float = 0.999
    grad_clip: float = 0.0  # 0 = off
    max_bad_steps: int = 20  # consecutive non-finite steps before the run stops
    eval_every: int = 0  # 0 = off; weight-free metrics on the built-in data
    eval_num: int = 64
    compile: bool = False  # torch.compile the modules (opt-in)


@dataclass
class RunConfig:
    """Base of every family's run config: ``family`` plus the shared sections.

    Families subclass it, giving the shared sections their types and adding ``model`` and
    objective-specific sections, and list the presets a section may name with ``preset: NAME``::

        @dataclass
        class VideoGANRunConfig(RunConfig):
            family: str = "videogan"
            model: VideoGANConfig = field(default_factory=VideoGANConfig)
            data: DataConfig = field(default_factory=DataConfig)
            condition: ConditionConfig = field(default_factory=ConditionConfig)
            loss: GANLossConfig = field(default_factory=GANLossConfig)
            presets: ClassVar[dict] = {"model": PRESETS}

    The entry point (``videosynth.train.run.run_training``) builds the dataset, fills
    ``condition.num_classes`` / ``condition.vocab`` from it, and calls :func:`train`.
    Tests may call ``train(config, Objective, run_dir, dataset)`` directly.
    """

    family: str = ""
    data: Any = None
    condition: Any = None
    train: TrainConfig = field(default_factory=TrainConfig)

    presets: ClassVar[dict[str, dict[str, Any]]] = {}


def resolve_presets(cls: type[RunConfig], data: dict) -> dict:
    """Replace ``section: {preset: NAME, ...}`` by the preset's fields updated with the rest."""
    from videosynth.config import merge

    data = dict(data)
    for section, table in cls.presets.items():
        value = data.get(section)
        if isinstance(value, dict) and "preset" in value:
            value = dict(value)
            name = value.pop("preset")
            if name not in table:
                import difflib

                hint = difflib.get_close_matches(str(name), list(table), n=1)
                tip = f"did you mean '{hint[0]}'?" if hint else f"valid: {', '.join(table)}"
                raise ConfigError(f"unknown preset '{section}.preset: {name}' ({tip})")
            data[section] = merge(to_dict(table[name]), value)
    return data


def build_run_config(cls: type[RunConfig], data: dict) -> RunConfig:
    """Typed run config from a YAML dict: presets resolved, unknown keys refused."""
    return from_dict(cls, resolve_presets(cls, data))


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def unwrap(module: nn.Module) -> nn.Module:
    """The bare module under DDP / torch.compile wrappers."""
    while True:
        if isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module


def normalize_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip ``module.`` / ``_orig_mod.`` prefixes left by DDP and torch.compile."""
    out = {}
    for key, value in state.items():
        parts = [p for p in key.split(".") if p not in ("module", "_orig_mod")]
        out[".".join(parts)] = value
    return out


def load_module_state(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``module`` strictly, reporting mismatched names in one line."""
    state = normalize_keys(state)
    own = unwrap(module).state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if wrong:
            parts.append(
                "shape mismatch "
                + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:3])
            )
        raise CheckpointError(f"{what} does not match the model ({'; '.join(parts)}): was it written by another config?")
    unwrap(module).load_state_dict(state, strict=True)


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied).

    ``module`` is the shadow copy used for sampling; ``update(src)`` after each optimiser step.
    """

    def __init__(self, src: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(unwrap(src)).eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, src: nn.Module) -> None:
        src = unwrap(src)
        for ema_p, p in zip(self.module.parameters(), src.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - self.decay)
        for ema_b, b in zip(self.module.buffers(), src.buffers()):
            ema_b.copy_(b)


def select_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else MPS, else CPU; an unavailable device is a ConfigError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) if dist.is_initialized() else 0)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}' for 'train.device' (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"'train.device: {name}' but CUDA is not available here (use --device auto or cpu)")
    return device


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        _fsync_write(tmp, data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------
# context handed to objectives
# ---------------------------------------------------------------------------


class Context:
    """What an objective may use from the loop: device, DDP wrapping, guarded optimiser steps."""

    def __init__(self, cfg: TrainConfig, device: torch.device, run_dir: Path | None, dataset: Any = None):
        self.cfg = cfg
        self.device = device
        self.run_dir = run_dir
        self.dataset = dataset
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.is_main = self.rank == 0
        self.skipped: list[str] = []  # optimiser names skipped in the current step (non-finite loss)
        amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
        if cfg.precision not in amp:
            raise ConfigError(f"'train.precision: {cfg.precision}' is not one of {', '.join(amp)}")
        self.amp_dtype = amp[cfg.precision] if device.type == "cuda" else None
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None

    def wrap(self, module: nn.Module, **ddp_kwargs) -> nn.Module:
        """Move to the device; wrap in DDP when distributed; ``torch.compile`` if configured."""
        module = module.to(self.device)
        if self.distributed and any(p.requires_grad for p in module.parameters()):
            ids = [self.device.index] if self.device.type == "cuda" else None
            module = nn.parallel.DistributedDataParallel(module, device_ids=ids, **ddp_kwargs)
        if self.cfg.compile:
            module = torch.compile(module)
        return module

    def autocast(self):
        """bf16/fp16 autocast on CUDA when ``train.precision`` asks for it; a no-op otherwise."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def all_finite(self, loss: torch.Tensor) -> bool:
        """True when ``loss`` is finite on every rank (ranks must agree to stay in step)."""
        ok = torch.isfinite(loss.detach()).all().float().reshape(1)
        if self.distributed:
            ok = ok.to(self.device if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item() > 0)

    def backward_step(
        self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, module: nn.Module | None = None, name: str = ""
    ) -> float | None:
        """Backward + (clip) + step, or skip the update when the loss is NaN/Inf on any rank.

        Returns the gradient norm before clipping (``None`` when the step was skipped).
        """
        optimizer.zero_grad(set_to_none=True)
        if not self.all_finite(loss):
            self.skipped.append(name or "optimizer")
            return None
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(optimizer)
        else:
            loss.backward()
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.zeros(())
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        return float(norm)


class Objective:
    """Base class of a family's training objective; see the module docstring."""

    def __init__(self, cfg: RunConfig, ctx: Context):
        self.cfg = cfg
        self.ctx = ctx

    def modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def ema_modules(self) -> dict[str, nn.Module]:
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Videos for the periodic sample grid, float [n, C, T, H, W] in [-1, 1]; None = none."""
        return None

    def generate(self, n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                 captions: list[str] | None = None, frames: int | None = None, ema: bool = True,
                 **options) -> torch.Tensor:
        """Clips for ``videosynth sample``: float [n, C, T, H, W] in [-1, 1] (see module docstring)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement generate()")

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def set_train(self, mode: bool) -> None:
        for m in self.modules().values():
            m.train(mode)


# ---------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------


def _tensors(modules: dict[str, nn.Module], persistent: bool = True) -> dict[str, torch.Tensor]:
    out = {}
    for name, module in modules.items():
        bare = unwrap(module)
        state = bare.persistent_state_dict() if hasattr(bare, "persistent_state_dict") else bare.state_dict()
        for key, value in state.items():
            # clone: safetensors refuses tensors that share storage (tied weights)
            out[f"{name}.{key}"] = value.detach().to("cpu").contiguous().clone()
    return out


def _split(tensors: dict[str, torch.Tensor], names: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    out: dict[str, dict[str, torch.Tensor]] = {n: {} for n in names}
    for key, value in tensors.items():
        head, _, rest = key.partition(".")
        if head in out:
            out[head][rest] = value
    return out


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete-looking checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)]
    return sorted(dirs, key=lambda p: p.name)


def save_checkpoint(run_dir: Path, step: int, objective: Objective, config: RunConfig, keep_last: int) -> Path:
    """Write ``checkpoints/step-NNNNNN`` atomically (temp folder + fsync + rename), update ``latest``.

    Raises:
        CheckpointError: the disk is full or not writable (the previous checkpoint is left intact).
    """
    from safetensors.torch import save_file

    from videosynth import __version__

    root = Path(run_dir) / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{step:06d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        files = {}
        save_file(_tensors(objective.modules()), str(tmp / "model.safetensors"))
        files["model.safetensors"] = None
        ema = objective.ema_modules()
        if ema:
            save_file(_tensors(ema), str(tmp / "ema.safetensors"))
            files["ema.safetensors"] = None
        state = {
            "step": step,
            "optimizers": {k: o.state_dict() for k, o in objective.optimizers().items()},
            "rng": _rng_state(),
            "extra": objective.extra_state(),
        }
        torch.save(state, tmp / "state.pt")
        files["state.pt"] = None
        for name in files:
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
            files[name] = _sha256(tmp / name)
        meta = {
            "step": step,
            "family": config.family,
            "version": __version__,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "files": files,
            "config": to_dict(config),
        }
        _fsync_write(tmp / "meta.json", json.dumps(meta, indent=2).encode())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        atomic_write_bytes(Path(run_dir) / "latest", (final.name + "\n").encode())
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"could not write checkpoint {final} ({exc.strerror or exc}); free disk space or choose another --run-dir;"
            " the previous checkpoint is intact"
        ) from None
    for old in checkpoint_dirs(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def verify_checkpoint(path: Path) -> dict:
    """Read and check ``meta.json`` and the file hashes of one checkpoint folder; returns meta."""
    meta_path = Path(path) / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{meta_path} is missing or unreadable ({exc})") from None
    for name, digest in meta.get("files", {}).items():
        file = Path(path) / name
        if not file.is_file():
            raise CheckpointError(f"{file} is missing")
        if _sha256(file) != digest:
            raise CheckpointError(f"{file} is corrupt (hash mismatch)")
    return meta


def find_checkpoint(run_dir: Path, which: str | None = None) -> tuple[Path, dict]:
    """The checkpoint to load: ``which`` (a step number or folder name) or the newest valid one.

    A corrupt or partial newest checkpoint is skipped with a warning and the previous one used.

    Raises:
        CheckpointError: no run directory, no checkpoint, or the requested one is invalid.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory not found: {run_dir}")
    if which is not None:
        name = which if str(which).startswith(CHECKPOINT_PREFIX) else f"{CHECKPOINT_PREFIX}{int(which):06d}"
        path = run_dir / "checkpoints" / name
        if not path.is_dir():
            have = ", ".join(p.name for p in checkpoint_dirs(run_dir)) or "none"
            raise CheckpointError(f"checkpoint {path} not found (available: {have})")
        return path, verify_checkpoint(path)
    candidates = checkpoint_dirs(run_dir)
    latest = run_dir / "latest"
    if latest.is_file():
        name = latest.read_text().strip()
        candidates = [p for p in candidates if p.name <= name] or candidates
    for path in reversed(candidates):
        try:
            return path, verify_checkpoint(path)
        except CheckpointError as exc:
            log.warning("skipping checkpoint: %s; using the previous one", exc)
    raise CheckpointError(f"no valid checkpoint in {run_dir / 'checkpoints'} (train first, or check the path)")


def load_weights(path: Path, file: str = "model.safetensors") -> dict[str, dict[str, torch.Tensor]]:
    """Tensors of one checkpoint file, grouped by module name (``{"generator": {...}}``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    target = Path(path) / file
    try:
        tensors = load_file(str(target))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"cannot read {target}: {exc}") from None
    names = sorted({k.partition(".")[0] for k in tensors})
    return _split(tensors, names)


def load_model_weights(path: Path, objective: Objective) -> None:
    """Load a checkpoint's ``model.safetensors`` (and ``ema.safetensors``) into the objective's modules."""
    weights = load_weights(path)
    for name, module in objective.modules().items():
        if name not in weights:
            raise CheckpointError(f"{path / 'model.safetensors'} has no weights for '{name}'")
        _load_maybe_partial(module, weights[name], f"{path / 'model.safetensors'} [{name}]")
    ema = objective.ema_modules()
    if ema:
        ema_weights = load_weights(path, "ema.safetensors")
        for name, module in ema.items():
            _load_maybe_partial(module, ema_weights.get(name, {}), f"{path / 'ema.safetensors'} [{name}]")


def load_checkpoint(path: Path, objective: Objective) -> int:
    """Restore modules, EMA, optimisers, RNG and extra state; returns the step."""
    load_model_weights(path, objective)
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointError(f"cannot read {path / 'state.pt'}: {exc}") from None
    for name, opt in objective.optimizers().items():
        opt.load_state_dict(state["optimizers"][name])
    _set_rng_state(state["rng"])
    objective.load_extra_state(state.get("extra", {}))
    return int(state["step"])


def _load_maybe_partial(module: nn.Module, state: dict, what: str) -> None:
    bare = unwrap(module)
    if hasattr(bare, "persistent_state_dict"):
        expected = set(bare.persistent_state_dict())
        got = set(normalize_keys(state))
        if got != expected:
            raise CheckpointError(f"{what} does not match the model (keys differ: {sorted(got ^ expected)[:5]})")
        bare.load_state_dict(normalize_keys(state), strict=False)
    else:
        load_module_state(module, state, what)


# ---------------------------------------------------------------------------
# data order
# ---------------------------------------------------------------------------


class ResumableSampler(torch.utils.data.Sampler):
    """Seeded shuffled indices per epoch, sharded over ranks, startable mid-epoch.

    Epoch ``e`` uses the permutation of ``seed + e``; rank ``r`` takes every ``world``-th index
    (like ``DistributedSampler``) so ``step -> (epoch, batch)`` is a pure function of the step.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.start_batch = 0, 0
        self.batches_per_epoch = n // (batch_size * world)
        if self.batches_per_epoch == 0:
            raise ConfigError(
                f"dataset has {n} clips, fewer than one batch of train.batch_size={batch_size} x {world} rank(s);"
                " lower train.batch_size or add data"
            )

    def set_position(self, epoch: int, start_batch: int) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(self.n, generator=g)[: self.batches_per_epoch * self.batch_size * self.world]
        mine = perm[self.rank :: self.world]
        return iter(mine[self.start_batch * self.batch_size :].tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


def _batches(dataset, sampler: ResumableSampler, cfg: TrainConfig, step: int, device,
             num_workers: int = 0) -> Iterator[dict]:
    """Batches from ``step`` on, forever, epoch after epoch, in a resume-exact order."""
    while True:
        epoch, start = divmod(step, sampler.batches_per_epoch)
        sampler.set_position(epoch, start)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=sampler,
            num_workers=num_workers,
            drop_last=True,
            pin_memory=device.type == "cuda",
            # an own generator: creating an iterator must not consume the global RNG
            generator=torch.Generator().manual_seed(cfg.seed * 1000003 + epoch),
            persistent_workers=False,
        )
        for batch in loader:
            batch["video"] = batch["video"].to(device, non_blocking=True)
            batch["label"] = batch["label"].to(device, non_blocking=True)
            yield batch
            step += 1


# ---------------------------------------------------------------------------
# logging
# ---------------------------------------------------------------------------


def write_loss_plot(log_path: Path, out: Path) -> None:
    """Plot every ``loss*`` series of ``log.jsonl`` into a PNG (PIL only, no matplotlib)."""
    from PIL import Image, ImageDraw

    series: dict[str, list[tuple[int, float]]] = {}
    if not log_path.is_file():
        return
    for line in log_path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        for key, value in row.items():
            if key.startswith("loss") and isinstance(value, (int, float)) and math.isfinite(value):
                series.setdefault(key, []).append((row["step"], float(value)))
    width, height, margin = 800, 420, 50
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([margin, 20, width - 20, height - margin], outline="black")
    points = [p for s in series.values() for p in s]
    if points:
        x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
        y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1e-6)
        colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

        def xy(p):
            return (
                margin + (p[0] - x0) / (x1 - x0) * (width - margin - 20),
                height - margin - (p[1] - y0) / (y1 - y0) * (height - margin - 20),
            )

        for i, (name, pts) in enumerate(sorted(series.items())):
            colour = colours[i % len(colours)]
            if len(pts) > 1:
                draw.line([xy(p) for p in pts], fill=colour, width=2)
            draw.text((margin + 10, 25 + 14 * i), name, fill=colour)
        draw.text((margin, height - margin + 8), f"step {x0}", fill="black")
        draw.text((width - 120, height - margin + 8), f"step {x1}", fill="black")
        draw.text((4, 20), f"{y1:.3g}", fill="black")
        draw.text((4, height - margin - 12), f"{y0:.3g}", fill="black")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    img.save(tmp, format="PNG")
    os.replace(tmp, out)


def _jsonable(value):
    """Floats rounded for the log; NaN/Inf become null (JSON has no NaN)."""
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


class _StopFlag:
    """SIGINT/SIGTERM -> finish the current step, save, exit cleanly."""

    def __init__(self):
        self.stop = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.stop:  # second signal: the user insists
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _agree_stop(ctx: Context, stop: bool) -> bool:
    if not ctx.distributed:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0], device=ctx.device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def write_samples(objective: Objective, run_dir: Path, step: int, cfg: TrainConfig) -> Path | None:
    """The objective's fixed-seed sample grid as ``samples/step-NNNNNN.mp4``."""
    from videosynth.io import write_grid

    g = torch.Generator(device="cpu").manual_seed(cfg.seed + 12345)
    objective.set_train(False)
    try:
        with torch.no_grad():
            videos = objective.sample(cfg.num_samples, g)
    finally:
        objective.set_train(True)
    if videos is None:
        return None
    out = Path(run_dir) / "samples" / f"step-{step:06d}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_grid(out, videos.float().cpu(), nrow=int(math.ceil(math.sqrt(videos.shape[0]))), fps=cfg.sample_fps)
    return out


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------


def init_distributed() -> bool:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    return True


def train(
    config: RunConfig,
    objective_cls: type[Objective],
    run_dir: str | Path,
    dataset,
    resume: bool = False,
    progress: bool = True,
    eval_fn=None,
) -> Path:
    """Train ``objective_cls`` on ``dataset`` into ``run_dir``; returns the final checkpoint path.

    With ``resume=True`` the newest valid checkpoint in ``run_dir`` is loaded and training
    continues exactly where it stopped (same data order and RNG). ``eval_fn(objective, step)``,
    if given, is called every ``train.eval_every`` steps on rank 0 and its floats are logged.
    """
    cfg = config.train
    init_distributed()
    device = select_device(cfg.device)
    run_dir = Path(run_dir)
    ctx = Context(cfg, device, run_dir, dataset)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(config, run_dir / "config.yaml")
    # per-rank seeds; DDP broadcasts rank 0's initial weights
    torch.manual_seed(cfg.seed + ctx.rank)
    np.random.seed((cfg.seed + ctx.rank) % 2**32)
    random.seed(cfg.seed + ctx.rank)

    objective = objective_cls(config, ctx)
    step = 0
    if resume:
        path, meta = find_checkpoint(run_dir)
        step = load_checkpoint(path, objective)
        if ctx.is_main:
            print(f"resumed from {path} (step {step})", file=sys.stderr)
    objective.set_train(True)

    sampler = ResumableSampler(len(dataset), cfg.batch_size, cfg.seed, ctx.rank, ctx.world_size)
    num_workers = getattr(config.data, "num_workers", 0) if config.data is not None else 0
    batches = _batches(dataset, sampler, cfg, step, device, num_workers)
    log_path = run_dir / "log.jsonl"
    bar = None
    if ctx.is_main and progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="it", dynamic_ncols=True,
                   mininterval=0.5 if sys.stderr.isatty() else 10.0)
    last_saved = step if resume else -1
    bad_in_row = 0
    t_last, steps_since = time.perf_counter(), 0
    with _StopFlag() as stopper:
        while step < cfg.steps:
            # ---- one optimisation step -------------------------------------------------
            batch = next(batches)
            ctx.skipped = []
            metrics = objective.train_step(batch, step)
            step += 1
            steps_since += 1
            if ctx.skipped:
                bad_in_row += 1
                metrics["skipped"] = ",".join(ctx.skipped)
                log.warning("step %d: non-finite loss in %s; update skipped", step, ", ".join(ctx.skipped))
                if bad_in_row >= cfg.max_bad_steps:
                    if bar:
                        bar.close()
                    raise VideoSynthError(
                        f"{bad_in_row} steps in a row had a non-finite loss (last at step {step}); the last good"
                        f" checkpoint in {run_dir / 'checkpoints'} is intact: lower the learning rate or check the data"
                    )
            else:
                bad_in_row = 0
            # ---- logging ------------------------------------------------------------------
            if ctx.is_main and (step % cfg.log_every == 0 or step == cfg.steps or ctx.skipped):
                now = time.perf_counter()
                row = {"step": step, "time": round(time.time(), 3), "it_s": round(steps_since / (now - t_last), 4)}
                row.update({k: _jsonable(v) for k, v in metrics.items()})
                with open(log_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                t_last, steps_since = now, 0
                if bar:
                    shown = {k: f"{v:.3g}" for k, v in metrics.items() if isinstance(v, float) and k.startswith("loss")}
                    bar.set_postfix(shown, refresh=False)
            if bar:
                bar.update(1)
            # ---- periodic evaluation, samples and checkpoints -----------------------------
            if eval_fn is not None and cfg.eval_every > 0 and step % cfg.eval_every == 0 and ctx.is_main:
                scores = eval_fn(objective, step)
                with open(log_path, "a") as f:
                    f.write(json.dumps({"step": step, **{f"eval/{k}": _jsonable(v) for k, v in scores.items()}}) + "\n")
            if ctx.is_main and cfg.sample_every > 0 and step % cfg.sample_every == 0:
                write_samples(objective, run_dir, step, cfg)
            stop = _agree_stop(ctx, stopper.stop)
            if step % cfg.ckpt_every == 0 or step == cfg.steps or stop:
                if ctx.is_main:
                    save_checkpoint(run_dir, step, objective, config, cfg.keep_last)
                    write_loss_plot(log_path, run_dir / "loss.png")
                last_saved = step
                if ctx.distributed:
                    dist.barrier()
            if stop:
                if bar:
                    bar.close()
                if ctx.is_main:
                    print(
                        f"interrupted: saved step {step} to {run_dir / 'checkpoints'}; resume with:"
                        f" videosynth train --resume {run_dir}",
                        file=sys.stderr,
                    )
                return run_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{step:06d}"
    if bar:
        bar.close()
    if last_saved != step and ctx.is_main:
        save_checkpoint(run_dir, step, objective, config, cfg.keep_last)
    if ctx.is_main and cfg.sample_every > 0 and step % cfg.sample_every != 0:
        write_samples(objective, run_dir, step, cfg)
    return run_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{step:06d}"
