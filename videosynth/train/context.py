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
        self.skipped: list[str] = []  # optimiser names skipped in the current step (non-finite loss)
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

    def all_finite(self, loss: torch.Tensor) -> bool:
        """True when ``loss`` is finite on every rank (ranks must agree to stay in step).

        This is the one host sync of a step: whether to apply an update must be known before it
        is applied. Logged values stay on the device until ``train.log_every``.
        """
        ok = torch.isfinite(loss.detach()).all().float().reshape(1)
        if self.distributed:
            ok = ok.to(self.device if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item() > 0)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, module: nn.Module | None = None,
                      name: str = "") -> torch.Tensor | None:
        """Backward + (clip) + step, or skip the update when the loss is NaN/Inf on any rank.

        Returns the gradient norm before clipping as a 0-d tensor on the device (``None`` when
        the step was skipped); it is not synchronised to the host here.
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
        return norm.detach()
