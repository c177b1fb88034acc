"""Captions -> word tokens -> a small learned Transformer encoder, pooled at ``<cls>``.

The encoder follows Vaswani et al. 2017 ("Attention Is All You Need"), pooled through a
leading ``<cls>`` token as in BERT (Devlin et al. 2019). The word-level tokenizer is
deterministic: its vocabulary is fitted on the training captions and stored with the run
(``vocab.json``).
"""

from __future__ import annotations

import re
from collections import Counter

import torch
import torch.nn as nn

from videosynth.conditioning.base import EMBED_INIT_STD, ConditionConfig, Conditioner, null_tokens_like
from videosynth.errors import ConfigError


PAD, UNK, CLS = "<pad>", "<unk>", "<cls>"
SPECIAL_TOKENS = [PAD, UNK, CLS]  # ids 0, 1, 2 in every vocabulary
PAD_ID, UNK_ID, CLS_ID = 0, 1, 2

# A word is a maximal run of letters or digits (any script); everything else separates.
_WORD_RE = re.compile(r"[^\W_]+")


def split_words(caption: str) -> list[str]:
    """Lowercase ``caption`` and split it on non-alphanumerics: "A red-ball!" -> ["a", "red", "ball"]."""
    return _WORD_RE.findall(caption.lower())


class WordTokenizer:
    """Deterministic word-level tokenizer.

    The vocabulary is ``["<pad>", "<unk>", "<cls>"]`` followed by the fitted words
    sorted by descending frequency, ties broken alphabetically. It is a plain
    ``list[str]`` so it can live in ``ConditionConfig.vocab`` (hence in the run's
    config and checkpoint metadata).
    """

    def __init__(self, vocab: list[str] | None = None) -> None:
        self.vocab: list[str] = list(vocab) if vocab else list(SPECIAL_TOKENS)
        if self.vocab[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise ConfigError(
                f"condition.vocab must start with {SPECIAL_TOKENS}, got {self.vocab[:3]}: "
                "rebuild it with WordTokenizer().fit(captions)"
            )
        self.index = {word: i for i, word in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def fit(self, captions: list[str], max_vocab: int = 10000) -> list[str]:
        """Build the vocabulary from ``captions`` and return it.

        ``max_vocab`` is the total size including the 3 special tokens; rarer words
        beyond it map to ``<unk>``. Raises ConfigError if ``max_vocab`` < 4.
        """
        if max_vocab <= len(SPECIAL_TOKENS):
            raise ConfigError(
                f"condition.max_vocab={max_vocab} leaves no room for words: "
                f"use a value > {len(SPECIAL_TOKENS)}"
            )
        counts = Counter(word for caption in captions for word in split_words(caption))
        words = sorted(counts, key=lambda w: (-counts[w], w))
        words = [w for w in words if w not in SPECIAL_TOKENS]
        self.vocab = SPECIAL_TOKENS + words[: max_vocab - len(SPECIAL_TOKENS)]
        self.index = {word: i for i, word in enumerate(self.vocab)}
        return list(self.vocab)

    def encode(self, captions: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode captions to ``(ids LongTensor[B, max_len], mask BoolTensor[B, max_len])``.

        Each row is ``<cls>`` followed by up to ``max_len - 1`` word ids (longer captions
        are truncated), padded with ``<pad>``; ``mask`` is True on real tokens
        (``<cls>`` included). Unknown words become ``<unk>``. Raises ConfigError if
        ``max_len`` < 1.
        """
        if max_len < 1:
            raise ConfigError(f"condition.max_len={max_len} must be >= 1 (room for <cls>)")
        ids = torch.full((len(captions), max_len), PAD_ID, dtype=torch.long)  # (B, L)
        for row, caption in enumerate(captions):
            words = split_words(caption)[: max_len - 1]
            ids[row, 0] = CLS_ID
            ids[row, 1 : 1 + len(words)] = torch.tensor(
                [self.index.get(w, UNK_ID) for w in words], dtype=torch.long
            )
        return ids, ids != PAD_ID

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Inverse of ``encode`` up to unknown words: LongTensor[B, L] -> captions (specials dropped)."""
        return [
            " ".join(self.vocab[i] for i in row.tolist() if i >= len(SPECIAL_TOKENS))
            for row in ids
        ]


class TextConditioner(Conditioner):
    """Caption -> word tokens -> small Transformer encoder, pooled at ``<cls>``.

    Token states are ``[B, max_len, dim]``; padding positions are masked (and zeroed).
    """

    def __init__(self, cfg: ConditionConfig) -> None:
        super().__init__(cfg)
        if not cfg.vocab:
            raise ConfigError(
                "condition.vocab is empty: fit the tokenizer on the dataset captions first: "
                "cfg = fit_condition_config(cfg, captions, class_names) or "
                "cfg.vocab = WordTokenizer().fit(captions)"
            )
        if cfg.dim % cfg.text_heads != 0:
            raise ConfigError(
                f"condition.dim={cfg.dim} must be divisible by condition.text_heads={cfg.text_heads}"
            )
        self.tokenizer = WordTokenizer(cfg.vocab)
        self.max_len = cfg.max_len
        self.token_embed = nn.Embedding(len(self.tokenizer), cfg.dim, padding_idx=PAD_ID)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.max_len, cfg.dim))  # (1, L, D)
        layer = nn.TransformerEncoderLayer(
            d_model=cfg.dim,
            nhead=cfg.text_heads,
            dim_feedforward=4 * cfg.dim,  # the usual 4x MLP expansion
            dropout=0.0,  # regularisation comes from condition dropout
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, cfg.text_layers, norm=nn.LayerNorm(cfg.dim), enable_nested_tensor=False
        )
        self.null = nn.Parameter(torch.zeros(cfg.dim))  # the learned null condition
        nn.init.normal_(self.token_embed.weight, std=EMBED_INIT_STD)
        nn.init.normal_(self.pos_embed, std=EMBED_INIT_STD)
        nn.init.normal_(self.null, std=EMBED_INIT_STD)

    def _encode(
        self, captions: list[str], force_null: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """captions -> (states [B, L, D], mask [B, L], is_null [B]) before null replacement."""
        device = self.null.device
        ids, mask = self.tokenizer.encode(captions, self.max_len)
        ids, mask = ids.to(device), mask.to(device)  # (B, L)
        is_null = torch.tensor([not c.strip() for c in captions], dtype=torch.bool, device=device)
        is_null = self.null_mask(is_null, force_null)  # (B,)
        x = self.token_embed(ids) + self.pos_embed  # (B, L, D)
        x = self.encoder(x, src_key_padding_mask=~mask)  # (B, L, D)
        x = x * mask.unsqueeze(-1)  # (B, L, D) padding zeroed
        return x, mask, is_null

    def forward(
        self, labels: torch.Tensor | None, captions: list[str], force_null: bool = False
    ) -> torch.Tensor:
        """captions list[str] (len B; "" = null) -> FloatTensor[B, dim] (``<cls>`` state); labels are ignored."""
        states, _, is_null = self._encode(captions, force_null)
        return self._pooled(states, is_null)

    def tokens(
        self, labels: torch.Tensor | None, captions: list[str], force_null: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """captions -> (FloatTensor[B, max_len, dim], BoolTensor[B, max_len] True = valid)."""
        states, mask, is_null = self._encode(captions, force_null)
        return null_tokens_like(states, mask, self.null, is_null)

    def pooled_and_tokens(self, labels: torch.Tensor | None, captions: list[str], force_null: bool = False):
        """``(forward(...), *tokens(...))`` with one encoding and one condition-dropout draw."""
        states, mask, is_null = self._encode(captions, force_null)
        return (self._pooled(states, is_null), *null_tokens_like(states, mask, self.null, is_null))

    def _pooled(self, states: torch.Tensor, is_null: torch.Tensor) -> torch.Tensor:
        """The ``<cls>`` state ``[B, D]``, or the learned null where ``is_null``."""
        return torch.where(is_null.unsqueeze(1), self.null.to(states.dtype), states[:, 0])
