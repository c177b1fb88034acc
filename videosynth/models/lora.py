"""LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") on a
conditioned network's linear layers, through ``peft`` (an optional extra: ``pip install
'videosynth[lora]'``).

A fine-tune with ``finetune.lora_rank > 0`` keeps a trained run's network frozen and learns, beside
each targeted ``nn.Linear`` ``W``, two small matrices ``A [r, in]`` and ``B [out, r]`` (``B`` starts
at zero, so training starts from the base run's behaviour exactly); the layer computes
``W x + (alpha / r) B A x``. The network's conditioner trains too: it is small (for class labels,
one row per class plus the null row) and holds the rows of classes the base run never saw. What
trains is the *adapter*: the LoRA matrices (keys with ``lora_``) and the conditioner's tensors (keys
outside ``net.``), saved apart from the base weights.

For sampling the adapter is merged into the base weights (``W + (alpha / r) B A``, peft's merge), so
an adapted network runs at the base network's cost and through its fast paths (the AR prior's
KV-cached decoder reads the weight tensors directly), and a merged export samples the same clips.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from videosynth.config import at_least, checked, in_range
from videosynth.errors import CheckpointError, ConfigError

ADAPTER_NAME = "default"  # peft's name of the one adapter a network carries
LORA_KEY = "lora_"  # in the state-dict key of every LoRA matrix (lora_A / lora_B)
BACKBONE = "net."  # state-dict keys of a Conditioned network's frozen part; the rest is its conditioner


@dataclass
class FinetuneConfig:
    """Section ``finetune:`` of a run that adapts another run (``videosynth train --init RUN``).

    ``lora_rank`` 0: no adapter (an ``--init`` run then trains every weight). ``lora_alpha``: the
    adapter's scale is ``alpha / rank`` (0: the rank, a scale of 1). ``lora_targets``: suffixes of the
    names of the linear layers that get an adapter (``[]``: the model's attention and MLP layers).
    ``base_run`` / ``base_checkpoint`` / ``base_sha256``: the run the adapter sits on, its checkpoint
    and the hash of the weights file loaded, recorded when the run starts (from ``--init``); every
    later load uses that checkpoint and refuses other weights.
    """

    lora_rank: int = checked(0, at_least(0))
    lora_alpha: float = checked(0.0, at_least(0))
    lora_dropout: float = checked(0.0, in_range(0, 1, high_open=True))
    lora_targets: list[str] = checked(factory=list)
    base_run: str = ""
    base_checkpoint: str | None = None
    base_sha256: str | None = None

    @property
    def adapted(self) -> bool:
        return self.lora_rank > 0


def require_peft():
    """The ``peft`` package, or a one-line ConfigError saying how to install it."""
    try:
        import peft
    except ImportError:
        raise ConfigError("finetune.lora_rank needs the peft package: pip install 'videosynth[lora]' "
                          "(or pip install peft)") from None
    return peft


def add_adapters(net: nn.Module, cfg: FinetuneConfig, default_targets: tuple[str, ...]) -> None:
    """Put LoRA adapters of ``cfg`` on ``net.net``'s targeted linear layers (in place) and freeze
    everything but the adapter (LoRA matrices and ``net.conditioner``). Draws the ``A`` matrices'
    initial values from the global RNG.

    Raises:
        ConfigError: peft missing, or ``finetune.lora_targets`` naming no layer of the network.
    """
    peft = require_peft()
    targets = list(cfg.lora_targets or default_targets)
    config = peft.LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha or cfg.lora_rank,
                             lora_dropout=cfg.lora_dropout, target_modules=targets, bias="none")
    try:
        peft.inject_adapter_in_model(config, net.net, adapter_name=ADAPTER_NAME)
    except ValueError as exc:
        raise ConfigError(f"finetune.lora_targets {targets} names no linear layer of the {type(net.net).__name__} "
                          f"({str(exc).splitlines()[0]}); leave it empty for the model's attention and MLP "
                          "layers") from None
    for name, p in net.named_parameters():
        p.requires_grad_(is_adapter_key(name))


def is_adapter_key(key: str) -> bool:
    """Whether a state-dict key of an adapted network is part of its adapter (LoRA matrix or conditioner)."""
    return LORA_KEY in key or not key.startswith(BACKBONE)


def adapter_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's tensors of an adapted network, by state-dict key (the frozen backbone left out)."""
    return {k: v for k, v in net.state_dict().items() if is_adapter_key(k)}


def load_adapter(net: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load adapter tensors into an adapted network (same keys and shapes as :func:`adapter_state`).

    Raises:
        CheckpointError: missing, unexpected or differently shaped tensors (named, one line), or
            non-finite values.
    """
    own = adapter_state(net)
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{label} {keys[:3]}{'...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong))
                 if keys]
        raise CheckpointError(f"{what} does not match this adapter ({'; '.join(parts)}): was it written with other "
                              "finetune.lora_* settings?")
    bad = [k for k, v in state.items() if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{what} holds non-finite values in '{bad[0]}': load an earlier checkpoint")
    net.load_state_dict(state, strict=False)


def merge_adapters(net: nn.Module) -> nn.Module:
    """Fold every LoRA adapter of ``net`` into its base layer (``W + (alpha / r) B A``) and put the plain
    layer back (in place); returns ``net``, whose state-dict keys are then the unadapted network's."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(net.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, child, module.get_base_layer())
    return net


def merged_copy(net: nn.Module) -> nn.Module:
    """A copy of an adapted network with its adapters merged (:func:`merge_adapters`); ``net`` is left as it is."""
    return merge_adapters(copy.deepcopy(net))


def with_adapter(base: dict[str, torch.Tensor], adapter: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The unadapted network's state from a base run's tensors and an adapter's: the backbone as in
    ``base``, the conditioner (which trains with the adapter, class rows and all) as in ``adapter``."""
    out = {k: v for k, v in base.items() if k.startswith(BACKBONE)}
    out.update({k: v for k, v in adapter.items() if LORA_KEY not in k})
    return out
