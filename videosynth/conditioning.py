"""Conditioning: class labels and captions -> one condition embedding for every family.

A conditioner maps a batch's ``label`` (int64 ``[B]``, -1 = none) and ``caption``
(``list[str]``, "" = none) to a pooled vector ``[B, D]`` and, for cross-attention or
prefix use, a token sequence ``[B, L, D]`` with a validity mask ``[B, L]``.

Missing conditions and condition dropout map to a learned null condition, as in
Ho & Salimans, "Classifier-Free Diffusion Guidance" (2022), so every family can use
classifier-free guidance (``force_null=True`` gives the unconditional branch).

Kinds:
- ``class``: a learned embedding table with one extra null row.
- ``text``: a word-level tokenizer and a small Transformer encoder (Vaswani et al.,
  "Attention Is All You Need", 2017) pooled through a leading ``<cls>`` token as in
  BERT (Devlin et al., 2019).
- ``pretrained-text``: a Hugging Face encoder loaded from a local directory, frozen by
  default, mask-aware mean-pooled and projected to ``dim`` by a trainable linear layer.

Contents, in reading order: WordTokenizer -> ConditionConfig -> Conditioner (base) ->
ClassConditioner -> TextConditioner -> PretrainedTextConditioner -> build_conditioner
-> fit_condition_config.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from videosynth.errors import ConfigError, MissingWeightsError, VideoSynthError

# ----------------------------------------------------------------------------- tokenizer

PAD, UNK, CLS = "<pad>", "<unk>", "<cls>"
SPECIAL_TOKENS = [PAD, UNK, CLS]  # ids 0, 1, 2 in every vocabulary
PAD_ID, UNK_ID, CLS_ID = 0, 1, 2

# A word is a maximal run of letters or digits (any script); everything else separates.
_WORD_RE = re.compile(r"[^\W_]+")

# Std of the initial embeddings, as in BERT / GPT-2: small enough that the first
# LayerNorm sees well-scaled inputs.
EMBED_INIT_STD = 0.02


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


# ----------------------------------------------------------------------------- config


@dataclass
class ConditionConfig:
    """Which condition a model sees and how it is embedded.

    kind: "none" | "class" | "text" | "pretrained-text".
    num_classes: class count for kind "class" (labels 0..num_classes-1; -1 = null).
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
    """

    kind: str = "none"
    num_classes: int = 0
    dim: int = 128
    dropout: float = 0.0
    vocab: list[str] = field(default_factory=list)
    max_len: int = 24
    text_layers: int = 2
    text_heads: int = 4
    pretrained_path: str | None = None
    max_vocab: int = 10000
    freeze_pretrained: bool = True


PRESETS = {
    "none": ConditionConfig(),
    "class": ConditionConfig(kind="class", dim=128, dropout=0.1),
    "text-small": ConditionConfig(kind="text", dim=128, dropout=0.1, text_layers=2, text_heads=4),
    "pretrained-text": ConditionConfig(kind="pretrained-text", dim=256, dropout=0.1),
}


# ----------------------------------------------------------------------------- base


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

    def null_mask(self, is_null: torch.Tensor, force_null: bool) -> torch.Tensor:
        """BoolTensor[B] (on ``is_null``'s device): True where the null condition is used."""
        if force_null:
            return torch.ones_like(is_null)
        if self.training and self.cfg.dropout > 0:
            # Global CPU RNG on purpose: seeded by torch.manual_seed, saved with the run's RNG state.
            dropped = torch.rand(is_null.shape[0]) < self.cfg.dropout  # (B,)
            is_null = is_null | dropped.to(is_null.device)
        return is_null

    def persistent_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors a training checkpoint must hold (all of them for learned conditioners)."""
        return self.state_dict()


def _null_tokens(
    null: torch.Tensor, batch: int, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The token form of the null condition: ``null`` at position 0, masked zeros after."""
    tokens = null.new_zeros(batch, length, null.shape[-1])  # (B, L, D)
    tokens[:, 0] = null
    mask = torch.zeros(batch, length, dtype=torch.bool, device=null.device)  # (B, L)
    mask[:, 0] = True
    return tokens, mask


def _replace_null_tokens(
    tokens: torch.Tensor, mask: torch.Tensor, null: torch.Tensor, is_null: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap rows where ``is_null`` [B] is True for the null token sequence."""
    null_tokens, null_mask = _null_tokens(null, tokens.shape[0], tokens.shape[1])
    pick = is_null.view(-1, 1, 1)  # (B, 1, 1)
    tokens = torch.where(pick, null_tokens.to(tokens.dtype), tokens)  # (B, L, D)
    mask = torch.where(pick[:, :, 0], null_mask, mask)  # (B, L)
    return tokens, mask


# ----------------------------------------------------------------------------- class labels


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
        """Validated labels [B] -> embedding rows [B] (null row for -1 / dropped)."""
        if labels.dim() != 1:
            raise ConfigError(f"labels must be a 1-D int64 tensor [B], got shape {tuple(labels.shape)}")
        labels = labels.to(device=self.embed.weight.device, dtype=torch.long)
        bad = (labels < -1) | (labels >= self.num_classes)
        if bad.any():
            label = int(labels[bad][0])
            raise ConfigError(
                f"label {label} outside the valid range [-1, {self.num_classes - 1}] "
                f"(condition.num_classes={self.num_classes}): set num_classes to the dataset's class count"
            )
        is_null = self.null_mask(labels == -1, force_null)  # (B,)
        return torch.where(is_null, torch.full_like(labels, self.num_classes), labels)

    def forward(
        self, labels: torch.Tensor, captions: list[str] | None = None, force_null: bool = False
    ) -> torch.Tensor:
        """labels LongTensor[B] in [-1, num_classes) -> FloatTensor[B, dim]; captions are ignored.

        Raises ConfigError for a label outside [-1, num_classes - 1].
        """
        return self.embed(self._rows(labels, force_null))  # (B, D)

    def tokens(
        self, labels: torch.Tensor, captions: list[str] | None = None, force_null: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A single token per sample: (FloatTensor[B, 1, dim], BoolTensor[B, 1] all True)."""
        vectors = self.forward(labels, captions, force_null)
        mask = torch.ones(vectors.shape[0], 1, dtype=torch.bool, device=vectors.device)  # (B, 1)
        return vectors.unsqueeze(1), mask  # (B, 1, D)


# ----------------------------------------------------------------------------- learned text encoder


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
        pooled = states[:, 0]  # (B, D) the <cls> position
        return torch.where(is_null.unsqueeze(1), self.null.to(pooled.dtype), pooled)  # (B, D)

    def tokens(
        self, labels: torch.Tensor | None, captions: list[str], force_null: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """captions -> (FloatTensor[B, max_len, dim], BoolTensor[B, max_len] True = valid)."""
        states, mask, is_null = self._encode(captions, force_null)
        return _replace_null_tokens(states, mask, self.null, is_null)


# ----------------------------------------------------------------------------- pretrained text encoder

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
    part of ``state_dict()`` / ``persistent_state_dict()`` (only the projection and the
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

    def persistent_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trained tensors (projection, null; the encoder too if not frozen)."""
        return self.state_dict()

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

    def forward(
        self, labels: torch.Tensor | None, captions: list[str], force_null: bool = False
    ) -> torch.Tensor:
        """captions list[str] (len B; "" = null) -> FloatTensor[B, dim]; labels are ignored."""
        hidden, mask, is_null = self._encode(captions, force_null)
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, H)
        pooled = self.proj(mean)  # (B, D)
        return torch.where(is_null.unsqueeze(1), self.null.to(pooled.dtype), pooled)  # (B, D)

    def tokens(
        self, labels: torch.Tensor | None, captions: list[str], force_null: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """captions -> (FloatTensor[B, max_len, dim], BoolTensor[B, max_len] True = valid)."""
        hidden, mask, is_null = self._encode(captions, force_null)
        states = self.proj(hidden) * mask.unsqueeze(-1)  # (B, L, D) padding zeroed
        return _replace_null_tokens(states, mask, self.null, is_null)


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


# ----------------------------------------------------------------------------- factory

CONDITIONERS: dict[str, type[Conditioner]] = {
    "class": ClassConditioner,
    "text": TextConditioner,
    "pretrained-text": PretrainedTextConditioner,
}
NO_CONDITION = "none"


def build_conditioner(cfg: ConditionConfig) -> Conditioner | None:
    """Build the conditioner for ``cfg.kind``; None for kind "none".

    Raises ConfigError for an unknown kind (naming the valid kinds and the closest
    match) or invalid settings; MissingWeightsError / VideoSynthError for kind
    "pretrained-text" when the local directory or the ``transformers`` package is missing.
    """
    if cfg.kind == NO_CONDITION:
        return None
    if cfg.kind not in CONDITIONERS:
        valid = [NO_CONDITION, *CONDITIONERS]
        close = difflib.get_close_matches(cfg.kind, valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"condition.kind '{cfg.kind}' is unknown{hint}: valid kinds are {', '.join(valid)}"
        )
    return CONDITIONERS[cfg.kind](cfg)


def fit_condition_config(
    cfg: ConditionConfig, captions: list[str], class_names: list[str]
) -> ConditionConfig:
    """Return a copy of ``cfg`` with dataset-dependent fields filled where unset.

    kind "class": ``num_classes = len(class_names)`` when it is 0.
    kind "text": ``vocab = WordTokenizer().fit(captions, cfg.max_vocab)`` when empty.
    Other kinds are returned unchanged (as a copy). Raises ConfigError when the
    dataset has no classes / no non-empty captions for the requested kind.
    """
    cfg = dataclasses.replace(cfg, vocab=list(cfg.vocab))
    if cfg.kind == "class" and cfg.num_classes == 0:
        if not class_names:
            raise ConfigError(
                "condition.kind is 'class' but the dataset has no class names: "
                "use condition.kind 'none' or a dataset with class subfolders / labels"
            )
        cfg.num_classes = len(class_names)
    if cfg.kind == "text" and not cfg.vocab:
        if not any(c.strip() for c in captions):
            raise ConfigError(
                "condition.kind is 'text' but the dataset has no captions: "
                "add a manifest with captions or use condition.kind 'class' / 'none'"
            )
        cfg.vocab = WordTokenizer().fit(captions, max_vocab=cfg.max_vocab)
    return cfg
