"""Autoencoder bottlenecks, one per file behind one interface (``base.py``), and their one registry.

``model.bottleneck`` names one of :data:`BOTTLENECKS` (or an alias of one in :data:`ALIASES`);
this file is the only place that reads the name. A new bottleneck (e.g. lookup-free quantisation)
is a new file with a :class:`~videosynth.models.bottlenecks.base.DiscreteBottleneck` or
:class:`~videosynth.models.bottlenecks.base.ContinuousBottleneck` subclass and one entry here.
"""

from __future__ import annotations

from videosynth.errors import ConfigError
from videosynth.models.bottlenecks.base import (Bottleneck, BottleneckOutput, ContinuousBottleneck, DiscreteBottleneck,
                                                QuantizerOutput, TokenizerFields)
from videosynth.models.bottlenecks.fsq import FSQ
from videosynth.models.bottlenecks.gaussian import GaussianBottleneck, GaussianOutput
from videosynth.models.bottlenecks.vq import VectorQuantizer, VectorQuantizerOutput

BOTTLENECKS: dict[str, type[Bottleneck]] = {
    "vq": VectorQuantizer,
    "fsq": FSQ,
    "gaussian": GaussianBottleneck,
}
# older names still read from configs and saved runs
ALIASES: dict[str, str] = {"continuous": "gaussian"}


def canonical_name(name: str) -> str:
    """The registry name for ``name`` (an alias resolved).

    Raises:
        ConfigError: no bottleneck has that name.
    """
    name = ALIASES.get(name, name)
    if name not in BOTTLENECKS:
        raise ConfigError(f"vqvae.bottleneck must be one of {[*BOTTLENECKS, *ALIASES]}, got '{name}'")
    return name


def bottleneck_class(name: str) -> type[Bottleneck]:
    """The class registered as ``name`` (or an alias of it); raises ConfigError for an unknown name."""
    return BOTTLENECKS[canonical_name(name)]


def build_bottleneck(cfg: TokenizerFields) -> Bottleneck:
    """The bottleneck ``cfg.bottleneck`` names, built from the tokenizer config."""
    return bottleneck_class(cfg.bottleneck).from_config(cfg)


__all__ = ["ALIASES", "BOTTLENECKS", "FSQ", "Bottleneck", "BottleneckOutput", "ContinuousBottleneck",
           "DiscreteBottleneck", "GaussianBottleneck", "GaussianOutput", "QuantizerOutput", "VectorQuantizer",
           "VectorQuantizerOutput", "bottleneck_class", "build_bottleneck", "canonical_name"]
