"""Training: the shared loop (``loop.py``) and one objective per model family.

``FAMILIES`` maps the ``family:`` key of a run config to a loader returning the family's
``(RunConfig subclass, Objective subclass)``; imports are lazy so ``videosynth --help`` stays fast.
"""

from __future__ import annotations

import difflib
from typing import Callable

from videosynth.errors import ConfigError


def _videogan():
    from videosynth.train.gan import GANObjective, VideoGANRunConfig

    return VideoGANRunConfig, GANObjective


def _mocogan():
    from videosynth.train.mocogan import MoCoGANObjective, MoCoGANRunConfig

    return MoCoGANRunConfig, MoCoGANObjective


def _vqvae():
    from videosynth.train.vqvae import VQVAEObjective, VQVAERunConfig

    return VQVAERunConfig, VQVAEObjective


def _prior():
    from videosynth.train.prior import PriorObjective, PriorRunConfig

    return PriorRunConfig, PriorObjective


FAMILIES: dict[str, Callable[[], tuple[type, type]]] = {
    "videogan": _videogan,
    "mocogan": _mocogan,
    "vqvae": _vqvae,
    "transformer": _prior,
}


def get_family(name: str) -> tuple[type, type]:
    """``(RunConfig class, Objective class)`` for a family name; unknown -> ConfigError."""
    if name not in FAMILIES:
        hint = difflib.get_close_matches(str(name), list(FAMILIES), n=1)
        tip = f"did you mean '{hint[0]}'?" if hint else f"valid: {', '.join(FAMILIES)}"
        raise ConfigError(f"unknown 'family: {name}' ({tip})")
    return FAMILIES[name]()
