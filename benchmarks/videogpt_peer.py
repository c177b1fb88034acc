"""Load VideoGPT's own modules from a checkout, for the benchmarks that run it beside ours.

VideoGPT (Yan et al. 2021, github.com/wilson1yan/VideoGPT) is never vendored or imported by
the package: the user fetches a checkout and passes its path (``--videogpt PATH``). Its timed
code (``videogpt/vqvae.py``, ``gpt.py``, ``attention.py``) needs only torch, but its modules
import three things that code never touches, which are stubbed here and nowhere else:

- ``pytorch_lightning``: ``LightningModule`` becomes ``torch.nn.Module`` with a no-op
  ``save_hyperparameters`` (Lightning only drives its training loop and checkpoints);
- ``skvideo.io``: imported by ``utils.py`` for writing sample grids, an empty module;
- the package's ``__init__``, which imports its data and download modules (h5py, gdown): the
  ``videogpt`` package is registered with its ``__path__`` so ``__init__`` does not run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
from pathlib import Path

import torch.nn as nn


def _stub(name: str, **attrs) -> None:
    if name not in sys.modules:
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module


def load(path: str | Path) -> types.ModuleType:
    """The ``videogpt`` package of the checkout at ``path`` (its ``vqvae`` and ``gpt`` imported).

    Raises:
        SystemExit: ``path`` holds no ``videogpt/vqvae.py``.
    """
    root = Path(path).expanduser().resolve()
    if not (root / "videogpt" / "vqvae.py").is_file():
        raise SystemExit(f"--videogpt {path}: no videogpt/vqvae.py there; pass a checkout of "
                         "github.com/wilson1yan/VideoGPT")

    class LightningModule(nn.Module):
        def save_hyperparameters(self, *args, **kwargs) -> None:
            pass

    _stub("pytorch_lightning", LightningModule=LightningModule)
    _stub("skvideo")
    _stub("skvideo.io")
    sys.modules["skvideo"].io = sys.modules["skvideo.io"]
    package = types.ModuleType("videogpt")
    package.__path__ = [str(root / "videogpt")]
    sys.modules["videogpt"] = package
    for name in ("vqvae", "gpt"):  # each registers itself on the package
        importlib.import_module(f"videogpt.{name}")
    return package


def vqvae_args(frames: int, size: int, hidden: int, res_blocks: int, codes: int, code_dim: int,
               downsample: tuple[int, int, int]) -> argparse.Namespace:
    """VideoGPT's VQ-VAE arguments (its ``add_model_specific_args`` names) for these hyper-parameters."""
    return argparse.Namespace(embedding_dim=code_dim, n_codes=codes, n_hiddens=hidden, n_res_layers=res_blocks,
                              downsample=tuple(downsample), sequence_length=frames, resolution=size)
