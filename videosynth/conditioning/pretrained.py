"""Captions -> a local Hugging Face encoder (frozen by default) -> mean pool -> a trainable projection."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from videosynth.conditioning.base import EMBED_INIT_STD, ConditionConfig, Conditioner, null_tokens_like
from videosynth.errors import ConfigError, MissingWeightsError, VideoSynthError


_PRETRAINED_CONTENTS = (
    "config.json, the weights (model.safetensors) and the tokenizer files "
    "(tokenizer.json or vocab.txt + tokenizer_config.json), as written by "
    "model.save_pretrained(dir) and tokenizer.save_pretrained(dir)"
)


def _import_transformers():
    """Import the optional ``transformers`` package or explain how to install it."""
    try:
        import transformers
    except ImportError as err:
        raise VideoSynthError(
            "condition.kind 'pretrained-text' needs the optional package 'transformers': "
            "pip install 'videosynth[text]'"
        ) from err
    return transformers


class PretrainedTextConditioner(Conditioner):
    """Caption -> local Hugging Face encoder -> mask-aware mean pool -> trainable Linear to ``dim``.

    The encoder and tokenizer are read from ``cfg.pretrained_path`` only
    (``local_files_only=True``); nothing is downloaded. Encoder-decoder models use their
    encoder; dual models with a ``text_model`` (CLIP-like) use that.

    Checkpoints: with ``cfg.freeze_pretrained`` (default) the encoder's weights are not
    part of ``state_dict()`` (only the projection and the
    null condition are), and ``load_state_dict`` keeps the encoder weights already
    loaded from ``pretrained_path``. So a run directory stays small and the encoder is
    always re-read from the local directory.
    """

    ENCODER_PREFIX = "encoder."

    def __init__(self, cfg: ConditionConfig) -> None:
        super().__init__(cfg)
        transformers = _import_transformers()
        if not cfg.pretrained_path:
            raise ConfigError(
                "condition.pretrained_path is not set: kind 'pretrained-text' needs a local "
                f"directory holding {_PRETRAINED_CONTENTS}"
            )
        path = Path(cfg.pretrained_path).expanduser()
        if not path.is_dir() or not (path / "config.json").is_file():
            raise MissingWeightsError(
                f"pretrained text encoder not found at '{path}': the directory must hold "
                f"{_PRETRAINED_CONTENTS}"
            )
        try:
            model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
            self.hf_tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(path), local_files_only=True
            )
        except (OSError, ValueError, KeyError) as err:
            raise MissingWeightsError(
                f"cannot load the pretrained text encoder from '{path}' ({err}): the directory "
                f"must hold {_PRETRAINED_CONTENTS}"
            ) from err
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()
        elif hasattr(model, "text_model"):
            model = model.text_model
        self.encoder = model
        hidden = getattr(self.encoder.config, "hidden_size", None) or self.encoder.config.d_model
        self.max_len = cfg.max_len
        self.frozen = cfg.freeze_pretrained
        self.proj = nn.Linear(hidden, cfg.dim)
        self.null = nn.Parameter(torch.zeros(cfg.dim))  # the learned null condition
        nn.init.normal_(self.null, std=EMBED_INIT_STD)
        if self.frozen:
            self.encoder.requires_grad_(False)
            self.encoder.eval()
            self.register_state_dict_post_hook(_drop_frozen_encoder)
            self.register_load_state_dict_pre_hook(_fill_frozen_encoder)

    def train(self, mode: bool = True) -> PretrainedTextConditioner:
        """Switch mode; a frozen encoder stays in eval() (no internal dropout)."""
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def _encode(
        self, captions: list[str], force_null: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """captions -> (hidden states [B, L, H], mask [B, L], is_null [B])."""
        device = self.null.device
        batch = self.hf_tokenizer(
            list(captions),
            padding="max_length",
            truncation=True,
            max_length=self.max_len,
            return_tensors="pt",
        )
        ids = batch["input_ids"].to(device)  # (B, L)
        mask = batch["attention_mask"].to(device)  # (B, L)
        is_null = torch.tensor([not c.strip() for c in captions], dtype=torch.bool, device=device)
        is_null = self.null_mask(is_null, force_null)  # (B,)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, H)
        return hidden.float(), mask.bool(), is_null

    def _pooled(self, hidden: torch.Tensor, mask: torch.Tensor, is_null: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, H)
        pooled = self.proj(mean)  # (B, D)
        return torch.where(is_null.unsqueeze(1), self.null.to(pooled.dtype), pooled)  # (B, D)

    def _tokens(self, hidden: torch.Tensor, mask: torch.Tensor, is_null: torch.Tensor):
        states = self.proj(hidden) * mask.unsqueeze(-1)  # (B, L, D) padding zeroed
        return null_tokens_like(states, mask, self.null, is_null)

    def forward(
        self, labels: torch.Tensor | None, captions: list[str], force_null: bool = False
    ) -> torch.Tensor:
        """captions list[str] (len B; "" = null) -> FloatTensor[B, dim]; labels are ignored."""
        return self._pooled(*self._encode(captions, force_null))

    def tokens(
        self, labels: torch.Tensor | None, captions: list[str], force_null: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """captions -> (FloatTensor[B, max_len, dim], BoolTensor[B, max_len] True = valid)."""
        return self._tokens(*self._encode(captions, force_null))

    def pooled_and_tokens(self, labels: torch.Tensor | None, captions: list[str], force_null: bool = False):
        """``(forward(...), *tokens(...))`` with one encoding and one condition-dropout draw."""
        encoded = self._encode(captions, force_null)
        return (self._pooled(*encoded), *self._tokens(*encoded))


def _drop_frozen_encoder(module, state_dict, prefix, local_metadata) -> None:
    """state_dict post-hook: leave the frozen encoder's weights out of checkpoints."""
    for key in [k for k in state_dict if k.startswith(prefix + module.ENCODER_PREFIX)]:
        del state_dict[key]


def _fill_frozen_encoder(
    module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
) -> None:
    """load_state_dict pre-hook: keep the encoder weights read from ``pretrained_path``."""
    for name, tensor in module.encoder.state_dict().items():
        state_dict.setdefault(prefix + module.ENCODER_PREFIX + name, tensor)
