"""The run directory's file format: atomic writes, checkpoint folders, weights, the run config.

Shared by training (which writes runs) and inference pipelines (which only read them), so it
knows nothing about objectives or optimisers: it moves dicts of tensors and JSON-able state.

A run directory holds ``config.yaml`` (the resolved run config), ``vocab.json`` (the fitted
word vocabulary of text-conditioned runs, kept out of ``config.yaml``), ``classes.json``
(class names), ``checkpoints/step-000123/`` with ``model.safetensors`` (``"<module>.<key>"``
tensors), ``ema.safetensors`` where the family keeps an EMA copy, ``state.pt`` (optimisers,
step, RNG; loadable with ``weights_only=True``) and ``meta.json`` (step, family, version,
file hashes, config), and a ``latest`` file naming the newest complete checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

import torch
from torch import nn

from videosynth._version import __version__
from videosynth.config import dump_yaml, load_yaml
from videosynth.errors import CheckpointError
from videosynth.io import is_temp, temp_path

log = logging.getLogger("videosynth.checkpoint")

CHECKPOINT_PREFIX = "step-"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
# A LoRA fine-tune's checkpoints hold its adapter alone (raw and EMA), apart from the base run's weights
ADAPTER_FILE = "adapter.safetensors"
ADAPTER_EMA_FILE = "adapter-ema.safetensors"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
CONFIG_FILE = "config.yaml"
VOCAB_FILE = "vocab.json"
CLASSES_FILE = "classes.json"
# Every name a training writes at the top of a run directory (the loop's log, loss plot, periodic
# samples, TensorBoard events and lock included): what makes a folder a run, for commands that
# may only delete runs.
RUN_ENTRIES = frozenset({CONFIG_FILE, VOCAB_FILE, CLASSES_FILE, "checkpoints", "latest", "log.jsonl", "loss.png",
                         "samples", "tb", ".lock"})

# ---------------------------------------------------------------------------------- atomic I/O


def fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never half."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        fsync_write(tmp, data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------- state dicts


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


def _listed(keys: list[str]) -> str:
    return f"{keys[:5]}{'...' if len(keys) > 5 else ''}"


def check_finite(state: dict[str, torch.Tensor], what: str) -> None:
    """Refuse weights holding NaN or Inf: a model built from them makes black or NaN clips without a word.

    Raises:
        CheckpointError: naming ``what``, the first non-finite tensor and how many there are.
    """
    bad = [k for k, v in state.items() if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise CheckpointError(f"{what} holds non-finite weights (NaN or Inf) in '{bad[0]}'{more}: the checkpoint "
                              "is damaged; load an earlier one (--checkpoint STEP) or train again")


def load_module_state(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``module`` strictly, reporting mismatched names in one line.

    Raises:
        CheckpointError: missing, unexpected or differently shaped tensors (named), or non-finite weights.
    """
    state = normalize_keys(state)
    check_finite(state, what)
    own = unwrap(module).state_dict()
    if own and all(k.startswith("net.") for k in own) and not any(k.startswith("net.") for k in state):
        # an unconditional prior or flow network saved in the older layout, bare: now inside its Conditioned
        state = {f"net.{k}": v for k, v in state.items()}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected {_listed(unexpected)}")
        if wrong:
            parts.append("shape mismatch "
                         + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:3]))
        raise CheckpointError(f"{what} does not match the model ({'; '.join(parts)}): was it written by another config?")
    unwrap(module).load_state_dict(state, strict=True)


def module_tensors(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """``{"<name>.<key>": tensor}`` on the CPU for a safetensors file (shared storage cloned apart)."""
    out = {}
    for name, module in modules.items():
        for key, value in unwrap(module).state_dict().items():
            # clone: safetensors refuses tensors that share storage (tied weights)
            out[f"{name}.{key}"] = value.detach().to("cpu").contiguous().clone()
    return out


# ---------------------------------------------------------------------------------- folders


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete-looking checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)]
    return sorted(dirs, key=lambda p: p.name)


def save_checkpoint(run_dir: str | Path, step: int, family: str, config: dict, weights: dict[str, torch.Tensor],
                    ema: dict[str, torch.Tensor] | None, state: dict | None, keep_last: int,
                    files: tuple[str, str] = (MODEL_FILE, EMA_FILE)) -> Path:
    """Write ``checkpoints/step-NNNNNN`` atomically (temp folder + fsync + rename), update ``latest``.

    ``weights`` / ``ema``: flat ``"<module>.<key>"`` tensors, written to the two names of ``files``
    (a LoRA fine-tune's adapter: :data:`ADAPTER_FILE`, :data:`ADAPTER_EMA_FILE`); ``state``:
    optimisers, step, RNG (plain tensors and containers only, so it loads with ``weights_only=True``;
    None: a checkpoint that samples but cannot resume); ``config``: the run config dict.

    Raises:
        CheckpointError: the disk is full or not writable (the previous checkpoint is left intact).
    """
    from safetensors.torch import save_file

    root = Path(run_dir) / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{step:06d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        model_file, ema_file = files
        written = {}
        save_file(weights, str(tmp / model_file))
        written[model_file] = None
        if ema:
            save_file(ema, str(tmp / ema_file))
            written[ema_file] = None
        if state is not None:
            torch.save(state, tmp / STATE_FILE)
            written[STATE_FILE] = None
        for name in written:
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
            written[name] = sha256(tmp / name)
        meta = {"step": step, "family": family, "version": __version__, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "files": written, "config": config}
        fsync_write(tmp / META_FILE, json.dumps(meta, indent=2).encode())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        atomic_write_bytes(Path(run_dir) / "latest", (final.name + "\n").encode())
    except (OSError, RuntimeError) as exc:  # safetensors and torch.save report a full disk as RuntimeError
        freed = _tree_size(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        try:
            reason += f"; {shutil.disk_usage(root).free / 1e6:.0f} MB free on its disk"
        except OSError:
            pass
        previous = "the previous checkpoint is intact" if checkpoint_dirs(run_dir) else "no checkpoint was saved yet"
        raise CheckpointError(
            f"could not write checkpoint {final} (the write failed: {reason}); removed the partial {tmp.name} "
            f"({freed / 1e6:.1f} MB freed); {previous}: free disk space, then resume with "
            f"videosynth train --resume {run_dir}"
        ) from None
    prune_checkpoints(run_dir, keep_last)
    return final


def _tree_size(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prune_checkpoints(run_dir: str | Path, keep_last: int, keep: Path | None = None) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoint folders (0 = keep all), never ``keep``."""
    removed = []
    for old in checkpoint_dirs(run_dir)[:-keep_last] if keep_last > 0 else []:
        if keep is not None and old.resolve() == Path(keep).resolve():
            continue
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed


def remove_stale_temps(run_dir: str | Path) -> list[Path]:
    """Delete what killed writers left in a run: ``checkpoints/.tmp-*`` folders and ``.*.tmp-*`` files.

    Call it only while holding the run's lock (no other writer can own them then).
    """
    run_dir = Path(run_dir)
    removed = []
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "samples"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if is_temp(path):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def verify_checkpoint(path: str | Path, files: tuple[str, ...] | None = None) -> dict:
    """Read ``meta.json`` of one checkpoint folder and check the hashes of its files; returns meta.

    ``files`` limits the check to those names (inference reads the weights alone, and a run
    copied without ``state.pt`` still samples); ``None`` checks every file meta lists.

    Raises:
        CheckpointError: meta missing or unreadable, a file missing or corrupt.
    """
    meta_path = Path(path) / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{meta_path} is missing or unreadable ({exc})") from None
    for name, digest in meta.get("files", {}).items():
        if files is not None and name not in files:
            continue
        file = Path(path) / name
        if not file.is_file():
            raise CheckpointError(f"{file} is missing")
        if sha256(file) != digest:
            raise CheckpointError(f"{file} is corrupt (hash mismatch)")
    return meta


def find_checkpoint(run_dir: str | Path, which: str | int | None = None,
                    files: tuple[str, ...] | None = None) -> tuple[Path, dict]:
    """The checkpoint to load: ``which`` (a step number or folder name) or the newest valid one.

    A corrupt or partial newest checkpoint is skipped with a warning and the previous one used.
    ``files`` as in :func:`verify_checkpoint`.

    Raises:
        CheckpointError: no run directory, no checkpoint, or the requested one is invalid.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory not found: {run_dir}")
    if which is not None:
        which = str(which).strip()
        match = re.fullmatch(rf"(?:{CHECKPOINT_PREFIX})?([0-9]+)", which)
        if match is None:
            raise CheckpointError(f"checkpoint {which!r} is neither a step number nor a {CHECKPOINT_PREFIX}NNNNNN folder")
        name = f"{CHECKPOINT_PREFIX}{int(match.group(1)):06d}"
        path = run_dir / "checkpoints" / name
        if not path.is_dir():
            have = ", ".join(p.name for p in checkpoint_dirs(run_dir)) or "none"
            raise CheckpointError(f"checkpoint {path} not found (available: {have})")
        return path, verify_checkpoint(path, files)
    candidates = checkpoint_dirs(run_dir)
    latest = run_dir / "latest"
    if latest.is_file():
        name = latest.read_text().strip()
        candidates = [p for p in candidates if p.name <= name] or candidates
    for path in reversed(candidates):
        try:
            return path, verify_checkpoint(path, files)
        except CheckpointError as exc:
            log.warning("skipping checkpoint: %s; using the previous one", exc)
    raise CheckpointError(f"no valid checkpoint in {run_dir / 'checkpoints'} (train first, or check the path)")


def load_weights(path: str | Path, file: str = MODEL_FILE) -> dict[str, dict[str, torch.Tensor]]:
    """Tensors of one checkpoint file, grouped by module name (``{"generator": {...}}``).

    Raises:
        CheckpointError: the file is missing or not a safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    target = Path(path) / file
    try:
        tensors = load_file(str(target))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"cannot read {target}: {exc}") from None
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        head, _, rest = key.partition(".")
        out.setdefault(head, {})[rest] = value
    return nest_conditioner(out)


OLD_CONDITIONER_GROUP = "conditioner"  # where older prior and flow runs kept their network's conditioner


def nest_conditioner(groups: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, torch.Tensor]]:
    """Weights saved in the older layout of a prior or flow run -- the network as ``NAME.*`` and its
    conditioner beside it as ``conditioner.*`` -- in the one layout every family saves now:
    ``NAME.net.*`` and ``NAME.conditioner.*`` (as GAN runs always did). Other layouts pass unchanged."""
    if OLD_CONDITIONER_GROUP not in groups:
        return groups
    others = [name for name in groups if name != OLD_CONDITIONER_GROUP]
    if len(others) != 1 or any(k.startswith("net.") for k in groups[others[0]]):
        return groups
    name = others[0]
    nested = {f"net.{k}": v for k, v in groups[name].items()}
    nested.update({f"conditioner.{k}": v for k, v in groups[OLD_CONDITIONER_GROUP].items()})
    return {name: nested}


def load_modules(path: str | Path, modules: dict[str, nn.Module], file: str = MODEL_FILE) -> None:
    """Load the named modules from one checkpoint file; a module absent from the file is an error."""
    weights = load_weights(path, file)
    for name, module in modules.items():
        if name not in weights:
            raise CheckpointError(f"{Path(path) / file} has no weights for '{name}'")
        load_module_state(module, weights[name], f"{Path(path) / file} [{name}]")


# ---------------------------------------------------------------------------------- run config


def read_run_config(run_dir: str | Path) -> dict:
    """A run's ``config.yaml`` as a dict, with the vocabulary from ``vocab.json`` put back in place.

    Raises:
        CheckpointError: no ``config.yaml`` (not a run directory), or an unreadable ``vocab.json``.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} not found (is {run_dir} a run directory?)")
    data = load_yaml(path)
    _upgrade(data)
    vocab_path = run_dir / VOCAB_FILE
    condition = data.get("condition")
    if isinstance(condition, dict) and not condition.get("vocab") and vocab_path.is_file():
        try:
            condition["vocab"] = json.loads(vocab_path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{vocab_path} is unreadable ({exc}); copy it again from where the run was trained")
    return data


def _upgrade(data: dict) -> None:
    """Fill in, in place, what a run saved by an earlier version meant by a key it did not write.

    Tokenizers saved before ``model.layout`` existed are the ``"full"`` layout (the default is
    now ``"rgb"``); without this their weights would not fit the model built from the config.
    """
    model = data.get("model")
    if data.get("family") == "vqvae" and isinstance(model, dict) and "layout" not in model:
        model["layout"] = "full"


def split_vocab(config: dict) -> tuple[dict, list[str] | None]:
    """``(config without condition.vocab, vocab)``: the vocabulary is written once, to ``vocab.json``."""
    condition = config.get("condition")
    if not isinstance(condition, dict) or not condition.get("vocab"):
        return config, None
    config = dict(config)
    config["condition"] = {**condition, "vocab": []}
    return config, list(condition["vocab"])


def write_run_config(run_dir: str | Path, config: dict) -> None:
    """Write ``config.yaml`` (and ``vocab.json`` when the config carries a vocabulary), atomically."""
    run_dir = Path(run_dir)
    config, vocab = split_vocab(config)
    if vocab is not None:
        atomic_write_bytes(run_dir / VOCAB_FILE, json.dumps(vocab).encode())
    text = dump_yaml(config)
    atomic_write_bytes(run_dir / CONFIG_FILE, text.encode())


def run_class_names(run_dir: str | Path, num_classes: int) -> list[str]:
    """The names of a class-conditional run's ``num_classes`` classes: ``classes.json`` when it lists that many,
    else the indices as strings (``[]`` for ``num_classes == 0``)."""
    names = read_class_names(run_dir)
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def read_class_names(run_dir: str | Path) -> list[str]:
    """Class names saved with a run (``classes.json``); ``[]`` when there are none."""
    try:
        names = json.loads((Path(run_dir) / CLASSES_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [str(n) for n in names] if isinstance(names, list) else []
