"""Conditioning: class labels, captions and sound -> condition embeddings for every family.

- :mod:`~videosynth.conditioning.base`: the contract (:class:`Conditioner`) and :class:`ConditionConfig`;
- :mod:`~videosynth.conditioning.label`: ``class`` -- a learned embedding table with a null row;
- :mod:`~videosynth.conditioning.text`: ``text`` -- a word tokenizer and a small Transformer encoder;
- :mod:`~videosynth.conditioning.pretrained`: ``pretrained-text`` -- a local Hugging Face encoder;
- :mod:`~videosynth.conditioning.audio`: ``condition.audio`` -- a log-mel front end giving per-frame
  sound features, alone or combined with one of the above.

:func:`build_conditioner` picks the class for ``condition.kind``; :func:`fit_condition_config`
fills what the training data decides (class count, vocabulary).
"""

from __future__ import annotations

import dataclasses

from videosynth.conditioning.audio import AudioConditioner
from videosynth.conditioning.base import NO_CONDITION, TEXT_KINDS, Condition, ConditionConfig, Conditioner
from videosynth.conditioning.label import ClassConditioner
from videosynth.conditioning.pretrained import PretrainedTextConditioner
from videosynth.conditioning.text import TextConditioner, WordTokenizer
from videosynth.config import choice_hint
from videosynth.errors import ConfigError


CONDITIONERS: dict[str, type[Conditioner]] = {
    "class": ClassConditioner,
    "text": TextConditioner,
    "pretrained-text": PretrainedTextConditioner,
}


def build_conditioner(cfg: ConditionConfig) -> Conditioner | None:
    """Build the conditioner for ``cfg.kind``; None for kind "none".

    Raises ConfigError for an unknown kind (naming the valid kinds and the closest
    match) or invalid settings; MissingWeightsError / VideoSynthError for kind
    "pretrained-text" when the local directory or the ``transformers`` package is missing.
    """
    if cfg.kind != NO_CONDITION and cfg.kind not in CONDITIONERS:
        valid = [NO_CONDITION, *CONDITIONERS]
        raise ConfigError(f"condition.kind '{cfg.kind}' is unknown ({choice_hint(cfg.kind, valid)}): "
                          f"valid kinds are {', '.join(valid)}")
    base = None if cfg.kind == NO_CONDITION else CONDITIONERS[cfg.kind](cfg)
    return AudioConditioner(cfg, base) if cfg.audio else base


def fit_condition_config(
    cfg: ConditionConfig, captions: list[str], class_names: list[str], audio_rate: int = 0, fps: float = 0.0
) -> ConditionConfig:
    """Return a copy of ``cfg`` with dataset-dependent fields filled where unset.

    kind "class": ``num_classes = len(class_names)`` when it is 0 (fewer is refused).
    kind "text": ``vocab = WordTokenizer().fit(captions, cfg.max_vocab)`` when empty.
    ``audio: true``: ``audio_rate`` / ``audio_fps`` from the data's (``audio_rate``, ``fps``) when 0.
    Other kinds are returned unchanged (as a copy). Raises ConfigError when the
    dataset has no classes / no non-empty captions / no sound for the requested condition.
    """
    cfg = dataclasses.replace(cfg, vocab=list(cfg.vocab))
    if cfg.audio:
        if not (cfg.audio_rate or audio_rate):
            raise ConfigError("condition.audio is true but the data carry no sound: set data.audio to a sample "
                              "rate (e.g. 16000)")
        cfg.audio_rate = cfg.audio_rate or audio_rate
        cfg.audio_fps = cfg.audio_fps or fps
    if cfg.kind == "class" and cfg.num_classes == 0:
        if not class_names:
            raise ConfigError(
                "condition.kind is 'class' but the dataset has no class names: "
                "use condition.kind 'none' or a dataset with class subfolders / labels"
            )
        cfg.num_classes = len(class_names)
    if cfg.kind == "class" and 0 < cfg.num_classes < len(class_names):
        raise ConfigError(f"condition.num_classes={cfg.num_classes} but the data have {len(class_names)} classes: "
                          f"set it to {len(class_names)} or 0 (taken from the data)")
    if cfg.kind == "text" and not cfg.vocab:
        if not any(c.strip() for c in captions):
            raise ConfigError(
                "condition.kind is 'text' but the dataset has no captions: "
                "add a manifest with captions or use condition.kind 'class' / 'none'"
            )
        cfg.vocab = WordTokenizer().fit(captions, max_vocab=cfg.max_vocab)
    return cfg


__all__ = ["CONDITIONERS", "NO_CONDITION", "TEXT_KINDS", "AudioConditioner", "ClassConditioner", "Condition",
           "ConditionConfig", "Conditioner",
           "PretrainedTextConditioner", "TextConditioner", "WordTokenizer", "build_conditioner",
           "fit_condition_config"]
