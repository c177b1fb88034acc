"""Device selection, one policy for training, sampling and evaluation."""

from __future__ import annotations

import os

import torch

from videosynth.errors import ConfigError


def select_device(name: str = "auto", key: str = "--device") -> torch.device:
    """``auto`` -> CUDA if available (this rank's GPU under torchrun), else MPS, else CPU.

    ``key`` names the setting in error messages (``train.device``, ``--device``).

    Raises:
        ConfigError: an unknown device name, or CUDA asked for where there is none.
    """
    if name == "auto":
        if torch.cuda.is_available():
            import torch.distributed as dist

            rank = int(os.environ.get("LOCAL_RANK", 0)) if dist.is_available() and dist.is_initialized() else 0
            return torch.device("cuda", rank)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device '{name}' for {key} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key} {name}, but CUDA is not available here (use auto or cpu)")
    return device
