"""Load VideoGPT's own modules from a checkout, for the benchmarks that run it beside ours.

VideoGPT (Yan et al. 2021, github.com/wilson1yan/VideoGPT) is never vendored or imported by
the package: the user fetches a checkout and passes its path (``--videogpt PATH``). Its timed
code (``videogpt/vqvae.py``, ``gpt.py``, ``attention.py``) needs only torch (and tqdm, which
``gpt.py`` imports), but its modules import things that code never touches, which are stubbed
here and nowhere else:

- ``pytorch_lightning``: ``LightningModule`` becomes ``torch.nn.Module`` with a no-op
  ``save_hyperparameters`` (Lightning only drives its training loop and checkpoints);
- ``skvideo.io``: imported by ``utils.py`` for writing sample grids, an empty module;
- the package's ``__init__``, which imports its data and download modules (h5py, gdown): the
  ``videogpt`` package is registered with its ``__path__`` so ``__init__`` does not run;
- ``videogpt.download`` (requests, gdown), imported by ``VideoGPT.__init__`` to fetch a
  pretrained VQ-VAE by name: a module whose ``load_vqvae`` raises; :func:`gpt` passes an
  existing path instead and patches ``VQVAE.load_from_checkpoint`` to return the VQ-VAE given.
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


def _no_download(name: str):
    raise RuntimeError(f"videogpt_peer: VideoGPT tried to download the pretrained VQ-VAE {name!r}; "
                       "benchmarks build their own")


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
    _stub("videogpt.download", load_vqvae=_no_download)
    for name in ("vqvae", "gpt"):  # each registers itself on the package
        importlib.import_module(f"videogpt.{name}")
    return package


# The tokenizer hyper-parameters both sides are compared at, in our names (``VQVAEConfig``), on
# clips of FRAMES x SIZE x SIZE: VideoGPT's scale, at 64 hidden channels and 512 codes.
FRAMES, SIZE = 16, 64
SHARED_VQVAE = dict(hidden=64, n_res_blocks=2, downsample=(4, 4, 4), codebook_size=512, code_dim=64)


def vqvae(package: types.ModuleType) -> nn.Module:
    """VideoGPT's VQ-VAE (``package.vqvae.VQVAE``) at :data:`SHARED_VQVAE` on FRAMES x SIZE x SIZE clips;
    its other arguments are its own defaults."""
    s, model_class = SHARED_VQVAE, package.vqvae.VQVAE
    return model_class(defaults(model_class, n_hiddens=s["hidden"], n_res_layers=s["n_res_blocks"],
                                n_codes=s["codebook_size"], embedding_dim=s["code_dim"],
                                downsample=tuple(s["downsample"]), sequence_length=FRAMES, resolution=SIZE))


def defaults(model_class: type, **overrides) -> argparse.Namespace:
    """``model_class``'s own ``add_model_specific_args`` defaults, with ``overrides`` set on top."""
    parser = model_class.add_model_specific_args(argparse.ArgumentParser(add_help=False))
    args = parser.parse_args([])
    vars(args).update(overrides)
    return args


def gpt(package: types.ModuleType, vqvae: nn.Module, **overrides) -> nn.Module:
    """VideoGPT's prior (``VideoGPT``) on top of ``vqvae`` (a ``package.vqvae.VQVAE``).

    Its arguments are its own defaults (dropout 0.2, attention dropout 0.3, full attention,
    unconditional) with ``overrides`` on top. Its constructor loads the VQ-VAE from
    ``args.vqvae``; that path is set to the checkout and ``VQVAE.load_from_checkpoint`` is
    patched, for the construction only, to return ``vqvae``.
    """
    model_class = package.gpt.VideoGPT
    args = defaults(model_class, vqvae=str(Path(package.__path__[0])), class_cond_dim=None, **overrides)
    vq_class = package.vqvae.VQVAE
    vq_class.load_from_checkpoint = classmethod(lambda cls, path: vqvae)
    try:
        return model_class(args)
    finally:
        del vq_class.load_from_checkpoint
