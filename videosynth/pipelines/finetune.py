"""A LoRA fine-tune's network for inference: the base run's weights, the adapter on them, merged.

A run trained with ``finetune.lora_rank > 0`` keeps only its adapter (``adapter.safetensors`` and
``adapter-ema.safetensors`` in each checkpoint, see :mod:`videosynth.models.lora`) and names the run
it adapts in ``finetune.base_run`` with the checkpoint and weights hash it started from. Loading
finds that run by the rule every run reference follows (inside the run's folder, next to it, then
as given), refuses other weights in one line, and folds the adapter into the base weights, so the
network samples at the base network's cost. :func:`merge_lora_run` writes the merged weights as a
plain run that samples the same clips and needs neither peft nor the base run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from videosynth.checkpoint import (
    ADAPTER_EMA_FILE,
    ADAPTER_FILE,
    CLASSES_FILE,
    EMA_FILE,
    MODEL_FILE,
    find_checkpoint,
    load_module_state,
    load_weights,
    module_tensors,
    save_checkpoint,
    split_vocab,
    write_run_config,
)
from videosynth.config import to_dict
from videosynth.errors import CheckpointError, ConfigError
from videosynth.models.lora import FinetuneConfig, add_adapters, load_adapter, merge_adapters, with_adapter
from videosynth.pipelines.base import resolve_run_path


def base_checkpoint(cfg: FinetuneConfig, run_dir: Path | None) -> tuple[Path, dict, str]:
    """``(checkpoint folder, meta, weights file)`` of the base run a LoRA fine-tune adapts: the checkpoint
    ``cfg.base_checkpoint`` (default: the newest valid one) and its EMA weights where it keeps them.

    ``run_dir``: the fine-tune's folder (the base is looked for inside it, next to it, then as given);
    None for a run being started (as given).

    Raises:
        ConfigError: no ``finetune.base_run``.
        CheckpointError: the base run or checkpoint is not found, is itself a LoRA run, or its weights'
            hash is not ``cfg.base_sha256`` (the weights the adapter was trained on).
    """
    if not cfg.base_run:
        raise ConfigError(f"finetune.lora_rank={cfg.lora_rank} adapts a trained run: start the run with "
                          "--init RUN (the run to adapt)")
    path = resolve_run_path(cfg.base_run, run_dir)
    if not (path / "config.yaml").is_file():
        where = f"inside and next to {run_dir}, then as given" if run_dir is not None else "as given"
        raise CheckpointError(f"finetune.base_run {cfg.base_run} not found (looked {where}): put the base run "
                              f"back, or fix finetune.base_run{f' in {run_dir}/config.yaml' if run_dir else ''}")
    ckpt, meta = find_checkpoint(path, cfg.base_checkpoint, files=(MODEL_FILE, EMA_FILE))
    files = meta.get("files", {})
    if ADAPTER_FILE in files:
        raise CheckpointError(f"{path} is itself a LoRA fine-tune: merge it first (videosynth weights merge-lora "
                              f"{path} --out DIR) and adapt the merged run")
    file = EMA_FILE if EMA_FILE in files else MODEL_FILE
    if cfg.base_sha256 and files.get(file) != cfg.base_sha256:
        raise CheckpointError(f"finetune.base_run {ckpt / file} is not the base this adapter was trained on (sha256 "
                              f"{str(files.get(file))[:12]}..., recorded {cfg.base_sha256[:12]}...): point "
                              "finetune.base_run at that run")
    return ckpt, meta, file


def base_weights(cfg: FinetuneConfig, name: str, run_dir: Path | None) -> tuple[dict[str, torch.Tensor], str]:
    """The base run's tensors of the network ``name`` (see :func:`base_checkpoint`) and where they are from."""
    ckpt, _, file = base_checkpoint(cfg, run_dir)
    weights = load_weights(ckpt, file)
    if name not in weights:
        raise CheckpointError(f"finetune.base_run {ckpt / file} has no '{name}' network: the base must be a run "
                              "of this family")
    return weights[name], str(ckpt / file)


def adapted_network(build: Callable[[], nn.Module], cfg: FinetuneConfig, name: str, run_dir: Path,
                    adapter: dict[str, torch.Tensor], what: str) -> nn.Module:
    """``build()`` with the base run's weights, the ``adapter`` tensors on them, merged (a plain network).

    Raises:
        CheckpointError: see :func:`base_checkpoint`; an adapter that does not fit (named).
        ConfigError: peft is not installed.
    """
    base, where = base_weights(cfg, name, run_dir)
    net = build()
    load_module_state(net, with_adapter(base, adapter), f"{where} [{name}] with the adapter {what}")
    add_adapters(net, cfg, net.net.lora_targets)
    load_adapter(net, adapter, what)
    return merge_adapters(net)


def adapter_file(meta: dict, ema: bool) -> str:
    """The adapter file a checkpoint of a LoRA run samples with: the EMA one (default, where saved) or raw."""
    return ADAPTER_EMA_FILE if ema and ADAPTER_EMA_FILE in meta.get("files", {}) else ADAPTER_FILE


def merge_lora_run(pipe, out: str | Path) -> Path:
    """Write a LoRA fine-tune (``pipe``: its loaded pipeline) as a plain run in the new folder ``out``:
    the adapter folded into the base weights (raw and EMA), its config with ``finetune`` reset, its
    classes and vocabulary, the tokenizer named by its resolved path. The merged run samples the same
    clips as the fine-tune and needs neither peft nor the base run; it has no optimiser state (start a
    new run from it with ``--init``). Returns the checkpoint folder written.

    Raises:
        ConfigError: ``pipe`` is not a LoRA fine-tune, or ``out`` exists and is not empty.
    """
    out = Path(out)
    if not pipe.finetune.adapted:
        raise ConfigError(f"{pipe.run_dir} is not a LoRA fine-tune (finetune.lora_rank is 0): nothing to merge")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder; choose a new folder")
    name = pipe.net_name
    weights = module_tensors({name: pipe.net(ema=False)})
    ema = module_tensors({name: pipe.net(ema=True)})
    config = dict(pipe.config)
    config["finetune"] = to_dict(FinetuneConfig())
    if config.get("tokenizer_run"):
        config["tokenizer_run"] = str(pipe.tokenizer.run_dir.resolve())
    meta_config, _ = split_vocab(config)
    out.mkdir(parents=True, exist_ok=True)
    write_run_config(out, config)
    if (pipe.run_dir / CLASSES_FILE).is_file():
        shutil.copyfile(pipe.run_dir / CLASSES_FILE, out / CLASSES_FILE)
    return save_checkpoint(out, pipe.step, pipe.family, meta_config, weights, ema, None, keep_last=0)


__all__ = ["adapted_network", "adapter_file", "base_checkpoint", "base_weights", "merge_lora_run"]
