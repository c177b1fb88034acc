"""The conditioner contract and config: what every condition kind (class, text, ...) follows.

A conditioner maps a batch's ``label`` (int64 ``[B]``, -1 = none) and ``caption``
(``list[str]``, "" = none) to a pooled vector ``[B, D]`` (``forward``) and, for
cross-attention or prefix use, a token sequence ``[B, L, D]`` with a validity mask
``[B, L]`` (``tokens``). Missing conditions and condition dropout map to a learned null
condition (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance"), so every family can
use classifier-free guidance (``force_null=True`` gives the unconditional branch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn as nn

from videosynth.config import at_least, checked, in_range
from videosynth.errors import ConfigError

# Std of the initial embeddings, as in BERT / GPT-2: small enough that the first
# LayerNorm sees well-scaled inputs.
EMBED_INIT_STD = 0.02
NO_CONDITION = "none"
TEXT_KINDS = ("text", "pretrained-text")


# ----------------------------------------------------------------------------- config


@dataclass
class ConditionConfig:
    """Which condition a model sees and how it is embedded.

    kind: "none" | "class" | "text" | "pretrained-text".
    num_classes: class count for kind "class" (labels 0..num_classes-1; -1 = checked(null)., at_least(0))
    dim: size D of the condition vector and of every condition token.
    dropout: probability, in train() mode only, that a sample's condition is replaced
        by the learned null condition (classifier-free guidance training).
    vocab: word vocabulary for kind "text" (``WordTokenizer.fit``; starts with the
        specials ``<pad>, <unk>, <cls>``).
    max_len: tokens per caption, ``<cls>`` included (kinds "text" and "pretrained-text").
    text_layers, text_heads: size of the learned text encoder (kind "text").
    pretrained_path: local directory holding a Hugging Face encoder + tokenizer
        (kind "pretrained-text"); nothing is downloaded.
    max_vocab: vocabulary size cap used by ``fit_condition_config`` (specials included).
    freeze_pretrained: keep the pretrained encoder frozen (and out of checkpoints).
    audio: also condition on the clip's soundtrack (with any ``kind``; ``none`` = sound alone).
    audio_rate, audio_fps: the soundtrack's sample rate and the frame rate it is aligned with
        (filled from ``data.audio`` / the dataset's frame rate when 0).
    audio_mels, audio_fft, audio_layers: the audio encoder's mel bands, FFT size and conv layers.
    """

    kind: str = "none"
    num_classes: int = checked(0, at_least(0))
    dim: int = checked(128, at_least(1))
    dropout: float = checked(0.0, in_range(0, 1, high_open=True))
    vocab: list[str] = field(default_factory=list)
    max_len: int = checked(24, at_least(1))
    text_layers: int = checked(2, at_least(0))
    text_heads: int = checked(4, at_least(1))
    pretrained_path: str | None = None
    max_vocab: int = checked(10000, at_least(1))
    freeze_pretrained: bool = True
    audio: bool = False
    audio_rate: int = checked(0, in_range(0, 192000))
    audio_fps: float = checked(0.0, in_range(0, 240))
    audio_mels: int = checked(64, at_least(1))
    audio_fft: int = checked(512, at_least(16))
    audio_layers: int = checked(2, at_least(1))

    def samples_for(self, frames: int) -> int:
        """Audio samples under ``frames`` video frames (``audio_rate`` / ``audio_fps``, as filled from the data)."""
        return round(frames * self.audio_rate / self.audio_fps)


# ----------------------------------------------------------------------------- base


class Condition(NamedTuple):
    """One draw of a batch's condition, for every way a network takes it.

    pooled: ``[B, D]``, the vector (adaLN, projection, concatenation to the noise).
    tokens, mask: ``[B, L, D]`` and ``[B, L]`` (True = valid) for cross-attention, or None when not asked for.
    frames: ``[B, T, D]``, one feature per video frame (audio), or None without audio.
    """

    pooled: torch.Tensor
    tokens: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    frames: torch.Tensor | None = None


class Conditioner(nn.Module):
    """Common interface: ``forward(labels, captions, force_null=False) -> FloatTensor[B, dim]``.

    ``tokens(labels, captions, force_null=False)`` returns ``(FloatTensor[B, L, dim],
    BoolTensor[B, L])`` (True = valid token) for cross-attention or prefix use; a null
    condition is one learned token followed by masked padding.

    A sample takes the learned null condition when its label is -1 / caption is "",
    when ``force_null`` is True (every sample), or, in ``train()`` mode, with
    probability ``cfg.dropout``. The dropout draw uses torch's global CPU RNG, so it
    follows ``torch.manual_seed`` and is restored with the RNG state on resume.
    """

    def __init__(self, cfg: ConditionConfig) -> None:
        super().__init__()
        if cfg.dim <= 0:
            raise ConfigError(f"condition.dim={cfg.dim} must be > 0")
        if not 0.0 <= cfg.dropout <= 1.0:
            raise ConfigError(f"condition.dropout={cfg.dropout} must be in [0, 1]")
        self.cfg = cfg
        self.dim = cfg.dim

    def pooled_and_tokens(self, labels: torch.Tensor | None, captions: list[str], force_null: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(pooled [B, D], tokens [B, L, D], mask [B, L])``: ``forward`` and ``tokens`` of one
        condition-dropout draw (for networks that take both, e.g. adaLN plus cross-attention)."""
        raise NotImplementedError

    def encode(self, labels: torch.Tensor, captions: list[str], audio: torch.Tensor | None = None,
               force_null: bool = False, tokens: bool = False) -> Condition:
        """The :class:`Condition` of one dropout draw; ``tokens=True`` also builds the token sequence.

        ``audio`` (float32 ``[B, S]``) is refused here: only conditioners built with
        ``condition.audio: true`` take it.
        """
        if audio is not None:
            raise ConfigError("audio was given but this model was trained without condition.audio")
        if tokens:
            return Condition(*self.pooled_and_tokens(labels, captions, force_null))
        return Condition(self(labels, captions, force_null=force_null))

    def null_mask(self, is_null: torch.Tensor, force_null: bool) -> torch.Tensor:
        """BoolTensor[B] (on ``is_null``'s device): True where the null condition is used."""
        if force_null:
            return torch.ones_like(is_null)
        if self.training and self.cfg.dropout > 0:
            # Global CPU RNG on purpose: seeded by torch.manual_seed, saved with the run's RNG state.
            dropped = torch.rand(is_null.shape[0]) < self.cfg.dropout  # (B,)
            is_null = is_null | dropped.to(is_null.device)
        return is_null


def _null_tokens(
    null: torch.Tensor, batch: int, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The token form of the null condition: ``null`` at position 0, masked zeros after."""
    tokens = null.new_zeros(batch, length, null.shape[-1])  # (B, L, D)
    tokens[:, 0] = null
    mask = torch.zeros(batch, length, dtype=torch.bool, device=null.device)  # (B, L)
    mask[:, 0] = True
    return tokens, mask


def null_tokens_like(
    tokens: torch.Tensor, mask: torch.Tensor, null: torch.Tensor, is_null: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap rows where ``is_null`` [B] is True for the null token sequence."""
    null_tokens, null_mask = _null_tokens(null, tokens.shape[0], tokens.shape[1])
    pick = is_null.view(-1, 1, 1)  # (B, 1, 1)
    tokens = torch.where(pick, null_tokens.to(tokens.dtype), tokens)  # (B, L, D)
    mask = torch.where(pick[:, :, 0], null_mask, mask)  # (B, L)
    return tokens, mask
