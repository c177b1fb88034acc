"""The token cache: a dataset's clips encoded once by a trained tokenizer, read back as a dataset.

Written by ``videosynth tokenize``, read by a transformer run with ``tokens: DIR``: ``index.json``
(format, version, tokenizer run and weights hash, data config, class names, captions, shards)
plus ``shard-NNNNN.safetensors`` files holding ``tokens`` int16/int32 ``[n, t, h, w]`` and
``labels`` int64 ``[n]``. The index is written last, atomically, so a half-written cache has none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from videosynth.errors import DataError

TOKEN_FORMAT = "videosynth-tokens"
TOKEN_FORMAT_VERSION = 1
INT16_MAX_VOCAB = 2**15  # codebooks up to this size are stored as int16


def write_token_cache(out: str | Path, shards: list[dict[str, torch.Tensor]], meta: dict) -> Path:
    """Write token shards and ``index.json`` (last, atomically) into ``out``; returns the index path.

    ``shards``: dicts with ``tokens`` int64 ``[n, t, h, w]`` and ``labels`` int64 ``[n]``;
    ``meta``: JSON-able facts (tokenizer run, hash, data config, captions, class names, ...).
    """
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dtype = torch.int16 if meta["codebook_size"] <= INT16_MAX_VOCAB else torch.int32
    entries, total = [], 0
    for i, shard in enumerate(shards):
        name = f"shard-{i:05d}.safetensors"
        tmp = out / f".{name}.tmp-{os.getpid()}"
        save_file({"tokens": shard["tokens"].to(dtype).contiguous(), "labels": shard["labels"].long().contiguous()},
                  str(tmp))
        os.replace(tmp, out / name)
        n = int(shard["tokens"].shape[0])
        entries.append({"file": name, "start": total, "count": n})
        total += n
    index = {"format": TOKEN_FORMAT, "version": TOKEN_FORMAT_VERSION, **meta, "num": total, "shards": entries}
    tmp = out / f".index.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / "index.json")
    return out / "index.json"


class TokenDataset(torch.utils.data.Dataset):
    """A token cache as a dataset.

    Items: ``{"tokens": int64 [t, h, w], "label": int64 scalar, "caption": str}`` (no ``video``:
    a prior trained on a cache never decodes clips); exposes ``class_names``, ``captions()``, ``latent_shape`` and ``index``.

    Raises:
        DataError: missing / unreadable index or shard, or a foreign format.
    """

    def __init__(self, root: str | Path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        self.root = Path(root)
        path = self.root / "index.json"
        try:
            self.index = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"token cache index {path} is missing or unreadable ({exc}); run `videosynth tokenize`") from None
        if self.index.get("format") != TOKEN_FORMAT:
            raise DataError(f"{path} is not a videosynth token cache (format {self.index.get('format')!r})")
        tokens, labels = [], []
        for entry in self.index["shards"]:
            try:
                shard = load_file(str(self.root / entry["file"]))
            except (OSError, SafetensorError) as exc:
                raise DataError(f"token shard {self.root / entry['file']} is unreadable ({exc}); re-run tokenize") from None
            tokens.append(shard["tokens"])
            labels.append(shard["labels"])
        self.tokens = torch.cat(tokens) if tokens else torch.zeros(0, *self.index["latent_shape"], dtype=torch.int16)
        self.labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
        self._captions = list(self.index.get("captions") or [""] * len(self.tokens))
        self.class_names = list(self.index.get("class_names", []))
        self.latent_shape = tuple(self.index["latent_shape"])
        if len(self._captions) != len(self.tokens) or len(self.labels) != len(self.tokens):
            raise DataError(f"token cache {self.root} is inconsistent (counts differ); re-run tokenize")

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict:
        return {"tokens": self.tokens[i].long(), "label": self.labels[i], "caption": self._captions[i]}

    def captions(self) -> list[str]:
        return sorted(set(self._captions))
