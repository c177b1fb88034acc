"""What an objective may use from the loop: device, DDP wrapping, mixed precision, guarded steps."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from videosynth.errors import ConfigError
from videosynth.train.config import TrainConfig

AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def init_distributed() -> bool:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    return True


class Context:
    """Device, rank, DDP wrapping, autocast and the NaN/Inf-guarded optimiser step."""

    def __init__(self, cfg: TrainConfig, device: torch.device, run_dir: Path | None, dataset: Any = None):
        self.cfg = cfg
        self.device = device
        self.run_dir = run_dir
        self.dataset = dataset
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.is_main = self.rank == 0
        self.skips: dict[str, torch.Tensor] = {}  # this step's optimiser name -> updates skipped (on the device)
        if cfg.precision not in AMP_DTYPES:
            raise ConfigError(f"'train.precision: {cfg.precision}' is not one of {', '.join(AMP_DTYPES)}")
        self.amp_dtype = AMP_DTYPES[cfg.precision] if device.type == "cuda" else None
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

    def non_finite(self, loss: torch.Tensor) -> torch.Tensor:
        """float32 0-d on the device: 1 when ``loss`` is NaN/Inf on any rank, else 0 (no host sync)."""
        bad = (~torch.isfinite(loss.detach()).all()).float()
        if self.distributed:  # ranks must agree to stay in step; an all-reduce queues on the device
            bad = bad.to(self.device if dist.get_backend() == "nccl" else "cpu").reshape(1)
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
            bad = bad.to(self.device).reshape(())
        return bad

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, module: nn.Module | None = None,
                      name: str = "") -> torch.Tensor | None:
        """Backward + (clip) + step, or no update when the loss is NaN/Inf on any rank.

        With a fused optimiser (see :func:`~videosynth.train.objective.adam`) the verdict stays on
        the device: the fused kernel takes it as ``found_inf`` and leaves weights, moments and step
        count as they were, so a step needs no host sync. Other optimisers and fp16 loss scaling
        wait for the verdict before the backward pass (one sync). Either way the verdict goes into
        :attr:`skips` under ``name``, and the gradient norm before clipping comes back as a 0-d
        tensor on the device (NaN on a skipped fused step, ``None`` on another skipped step).
        """
        key = name or "optimizer"
        optimizer.zero_grad(set_to_none=True)
        bad = self.non_finite(loss)
        self.skips[key] = self.skips[key] + bad if key in self.skips else bad  # e.g. several critic updates
        if self.scaler is None and fused_update(optimizer):
            loss.backward()
            norm = self._clip(optimizer)
            optimizer.found_inf = bad
            try:
                optimizer.step()
            finally:
                optimizer.found_inf = None
            return norm
        if bool(bad.item() > 0):  # the one host sync of such a step
            return None
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(optimizer)
        else:
            loss.backward()
        norm = self._clip(optimizer)
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        return norm

    def _clip(self, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """Clip to ``train.grad_clip`` (when > 0); the norm before clipping, 0-d on the device."""
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.zeros((), device=self.device)
        return norm.detach()


def fused_update(optimizer: torch.optim.Optimizer) -> bool:
    """True for an Adam/AdamW whose every group runs torch's fused kernel (which takes ``found_inf``)."""
    return isinstance(optimizer, torch.optim.Adam) and all(g.get("fused") for g in optimizer.param_groups)


class SkipWatch:
    """Skipped updates, counted on the device and read by the host only when the loop logs.

    :meth:`add` takes a step's :attr:`Context.skips` (optimiser name -> updates skipped, on the device);
    :meth:`read` brings back, in one transfer, the updates skipped per optimiser since the last
    read and the longest run of steps with a skip that ended since then (or goes on).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.counts: dict[str, torch.Tensor] = {}
        self.run = torch.zeros((), device=device)  # steps in a row, up to now, with a skipped update
        self.longest = torch.zeros((), device=device)

    def add(self, flags: dict[str, torch.Tensor]) -> None:
        if not flags:
            return
        for name, flag in flags.items():
            self.counts[name] = self.counts.get(name, 0) + flag
        any_bad = (torch.stack([f.reshape(()) for f in flags.values()]).amax() > 0).float()
        self.run = (self.run + 1) * any_bad
        self.longest = torch.maximum(self.longest, self.run)

    def read(self) -> tuple[dict[str, int], int]:
        names = list(self.counts)
        values = torch.stack([self.counts[n].to(self.device).reshape(()) for n in names] + [self.longest])
        host = [int(v) for v in values.cpu().tolist()]
        self.counts = {}
        self.longest = self.run.clone()
        return dict(zip(names, host[:-1])), host[-1]
