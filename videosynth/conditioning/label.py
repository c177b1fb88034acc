"""Class labels -> a learned embedding table with one extra null row."""

from __future__ import annotations

import torch
import torch.nn as nn

from videosynth.conditioning.base import EMBED_INIT_STD, ConditionConfig, Conditioner
from videosynth.errors import ConfigError


class ClassConditioner(Conditioner):
    """Class label -> learned embedding; row ``num_classes`` is the null condition."""

    def __init__(self, cfg: ConditionConfig) -> None:
        super().__init__(cfg)
        if cfg.num_classes <= 0:
            raise ConfigError(
                f"condition.num_classes={cfg.num_classes}: kind 'class' needs the dataset's "
                "class count (set condition.num_classes or use fit_condition_config)"
            )
        self.num_classes = cfg.num_classes
        self.embed = nn.Embedding(cfg.num_classes + 1, cfg.dim)  # last row = null
        nn.init.normal_(self.embed.weight, std=EMBED_INIT_STD)

    def _rows(self, labels: torch.Tensor, force_null: bool) -> torch.Tensor:
        """Labels [B] -> embedding rows [B] (null row for -1 / dropped), range-checked on the host.

        Labels already on an accelerator are not checked here: the check would make every
        training step wait for the device. The loop's labels are in range by construction
        (``fit_condition_config`` refuses a ``num_classes`` below the data's class count).
        """
        if labels.dim() != 1:
            raise ConfigError(f"labels must be a 1-D int64 tensor [B], got shape {tuple(labels.shape)}")
        if labels.device.type == "cpu":
            self._check_range(labels)
        return self._null_rows(labels.to(device=self.embed.weight.device, dtype=torch.long), force_null)

    def _check_range(self, labels: torch.Tensor) -> None:
        bad = (labels < -1) | (labels >= self.num_classes)
        if bad.any():
            label = int(labels[bad][0])
            raise ConfigError(
                f"label {label} outside the valid range [-1, {self.num_classes - 1}] "
                f"(condition.num_classes={self.num_classes}): set num_classes to the dataset's class count"
            )

    def _null_rows(self, labels: torch.Tensor, force_null: bool) -> torch.Tensor:
        is_null = self.null_mask(labels == -1, force_null)  # (B,)
        return torch.where(is_null, torch.full_like(labels, self.num_classes), labels)

    def forward(
        self, labels: torch.Tensor, captions: list[str] | None = None, force_null: bool = False
    ) -> torch.Tensor:
        """labels LongTensor[B] in [-1, num_classes) -> FloatTensor[B, dim]; captions are ignored.

        Raises ConfigError for a label outside [-1, num_classes - 1] (labels given on the CPU).
        """
        return self.embed(self._rows(labels, force_null))  # (B, D)

    def tokens(
        self, labels: torch.Tensor, captions: list[str] | None = None, force_null: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A single token per sample: (FloatTensor[B, 1, dim], BoolTensor[B, 1] all True)."""
        return self.pooled_and_tokens(labels, captions, force_null)[1:]

    def pooled_and_tokens(self, labels: torch.Tensor, captions: list[str] | None = None, force_null: bool = False):
        """``(forward(...), *tokens(...))`` with one condition-dropout draw."""
        vectors = self.forward(labels, captions, force_null)
        mask = torch.ones(vectors.shape[0], 1, dtype=torch.bool, device=vectors.device)  # (B, 1)
        return vectors, vectors.unsqueeze(1), mask  # (B, D), (B, 1, D), (B, 1)
