"""Fine-tuning with LoRA adapters on the shared loop (``--init RUN --set finetune.lora_rank=8``).

A LoRA run starts from the run ``--init`` names, which becomes its ``finetune.base_run`` (with the
checkpoint and weights hash recorded when the run starts, as a second stage records its
tokenizer). Its objective builds the network, loads the base run's weights into it -- the EMA
copy, the weights the base samples with; class rows follow class names as ``--init`` does -- puts
the adapters on it (:mod:`videosynth.models.lora`) and trains the adapter alone; its checkpoints
hold the adapter alone (:mod:`.checkpointing`). A resumed run loads the same base again, then its
adapter: the resume is exact.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from videosynth.checkpoint import load_module_state, read_class_names
from videosynth.models.lora import add_adapters, is_adapter_key
from videosynth.pipelines.base import resolve_run_path
from videosynth.pipelines.finetune import base_checkpoint, base_weights
from videosynth.train.checkpointing import class_rows, remap_classes


def with_base_run(cfg, init: str | Path | None):
    """``cfg`` (of a family that takes LoRA adapters) with ``finetune.base_run`` set to ``init`` where the
    run is a LoRA fine-tune: ``--init RUN`` names the base an adapter sits on."""
    if init is None or not cfg.finetune.adapted:
        return cfg
    return dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, base_run=str(init),
                                                                 base_checkpoint=None, base_sha256=None))


def record_base(cfg):
    """A new LoRA run's config with the base checkpoint and weights hash it starts from recorded
    (``finetune.base_checkpoint``, ``finetune.base_sha256``): every later load uses those or refuses.

    Raises:
        ConfigError: a LoRA rank without a base run. CheckpointError: see
            :func:`videosynth.pipelines.finetune.base_checkpoint`.
    """
    if not cfg.finetune.adapted:
        return cfg
    ckpt, meta, file = base_checkpoint(cfg.finetune, None)
    return dataclasses.replace(cfg, finetune=dataclasses.replace(
        cfg.finetune, base_checkpoint=ckpt.name, base_sha256=meta["files"][file]))


def adapt(net: nn.Module, name: str, cfg, run_dir: Path, class_names: list[str]) -> str:
    """Load the base run's network ``name`` into ``net`` (class rows by name) and put the adapters of
    ``cfg.finetune`` on it, the rest frozen; returns one line saying what trains.

    Raises:
        CheckpointError: the base is missing, other weights than recorded, or another architecture
            (keys named). ConfigError: peft missing, or LoRA targets naming no layer.
    """
    finetune = cfg.finetune
    saved, where = base_weights(finetune, name, run_dir)
    old_names = read_class_names(resolve_run_path(finetune.base_run, run_dir))
    state = remap_classes(saved, net.state_dict(), class_rows(old_names, class_names), len(old_names))
    load_module_state(net, state, f"finetune.base_run {where} [{name}]")
    add_adapters(net, finetune, net.net.lora_targets)
    total = sum(p.numel() for p in net.parameters())
    trained = sum(p.numel() for k, p in net.named_parameters() if is_adapter_key(k))
    layers = sum(1 for k, _ in net.named_parameters() if k.endswith("lora_A.default.weight"))
    line = (f"LoRA rank {finetune.lora_rank} on {layers} layers of {where}: {trained:,} of {total:,} parameters "
            f"train ({100 * trained / total:.1f} %, the conditioner included)")
    new = [n for n in class_names if n not in old_names]
    return line + (f"; new classes: {', '.join(new)}" if old_names and new else "")
