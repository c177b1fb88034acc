"""The latent cache: a dataset's clips encoded once by a trained tokenizer, read back as a dataset.

Written by ``videosynth encode`` (or its older name ``videosynth tokenize``): ``index.json``
(format, version, kind, tokenizer run and weights hash, data config, class names, captions,
shards) plus ``shard-NNNNN.safetensors`` files holding ``labels`` int64 ``[n]`` and either

- ``tokens`` int16/int32 ``[n, t, h, w]`` (kind ``tokens``: a vq / fsq tokenizer), read by a
  transformer run with ``tokens: DIR`` (:class:`TokenDataset`), or
- ``latents`` float32 ``[n, c, t, h, w]`` (kind ``latents``: a continuous tokenizer's mean
  latents, not normalised), read by a flow run with ``latents: DIR`` (:class:`LatentDataset`).

A cache is written whole beside its folder and renamed into place (a failed write leaves the old
one); the index records each shard's count and sha256, checked on reading. Caches written before
``kind`` existed hold tokens; those written before the hashes are checked by count only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from videosynth.data.base import ClipDataset
from videosynth.errors import DataError

TOKEN_FORMAT = "videosynth-tokens"
TOKEN_FORMAT_VERSION = 1
INT16_MAX_VOCAB = 2**15  # codebooks up to this size are stored as int16
KINDS = ("tokens", "latents")


def _is_cache_folder(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but a latent cache (or is empty): the only folder a write may replace."""
    for entry in folder.iterdir():
        if entry.name == "index.json" or (entry.name.startswith(".") and ".tmp-" in entry.name):
            continue
        if not (entry.name.startswith("shard-") and entry.name.endswith(".safetensors") and entry.is_file()):
            return False
    return True


def check_cache_target(out: str | Path) -> None:
    """Refuse an ``--out`` that a cache write would clobber: a file, or a folder holding other files.

    Raises:
        DataError: naming ``out`` and the fix.
    """
    out = Path(out)
    if out.exists() and not (out.is_dir() and _is_cache_folder(out)):
        raise DataError(f"{out} exists and is not a latent cache (it holds other files); "
                        "give encode an empty or new --out folder")


def write_token_cache(out: str | Path, shards: list[dict[str, torch.Tensor]], meta: dict) -> Path:
    """Write token shards and ``index.json`` as the cache ``out``; returns the index path.

    The cache is written whole into a folder beside ``out`` and renamed into place, so ``out``
    holds the old cache or the new one, never a mixture; a write that fails (a full disk) removes
    its folder and leaves ``out`` as it was. ``index.json`` records each shard's count and sha256,
    which the reader checks.

    ``shards``: dicts with ``labels`` int64 ``[n]`` and ``tokens`` int64 ``[n, t, h, w]`` (``meta["kind"]``
    ``tokens``, the default) or ``latents`` float ``[n, c, t, h, w]`` (kind ``latents``);
    ``meta``: JSON-able facts (tokenizer run, hash, data config, captions, class names, ...).

    Raises:
        DataError: ``out`` is a file or a folder holding other files than a cache, or the write failed.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from videosynth.checkpoint import fsync_write, sha256

    out = Path(out)
    check_cache_target(out)
    kind = meta.setdefault("kind", "tokens")
    if kind == "tokens":
        dtype = torch.int16 if meta["codebook_size"] <= INT16_MAX_VOCAB else torch.int32
    else:
        dtype = torch.float32
    stage = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        entries, total = [], 0
        for i, shard in enumerate(shards):
            name = f"shard-{i:05d}.safetensors"
            save_file({kind: shard[kind].to(dtype).contiguous(), "labels": shard["labels"].long().contiguous()},
                      str(stage / name))
            with open(stage / name, "rb") as f:
                os.fsync(f.fileno())
            n = int(shard[kind].shape[0])
            entries.append({"file": name, "start": total, "count": n, "sha256": sha256(stage / name)})
            total += n
        index = {"format": TOKEN_FORMAT, "version": TOKEN_FORMAT_VERSION, **meta, "num": total, "shards": entries}
        fsync_write(stage / "index.json", json.dumps(index, indent=1).encode())
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(stage, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, out)
    except (OSError, RuntimeError, SafetensorError) as exc:  # safetensors reports a full disk as SafetensorError
        shutil.rmtree(stage, ignore_errors=True)
        reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        before = "still holds the cache it held before" if (out / "index.json").is_file() else "was not written"
        raise DataError(f"could not write the cache {out} ({reason}); the partial write was removed and {out} "
                        f"{before}: free disk space (or pick another --out) and encode again") from None
    return out / "index.json"


class _Cache(ClipDataset):
    """A cache of one ``kind`` read whole into memory (the shared reader of both dataset classes)."""

    kind = ""
    reader = ""  # how a run reads this kind, for messages

    def __init__(self, root: str | Path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        self.root = Path(root)
        path = self.root / "index.json"
        try:
            self.index = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"cache index {path} is missing or unreadable ({exc}); run `videosynth encode`") from None
        if self.index.get("format") != TOKEN_FORMAT:
            raise DataError(f"{path} is not a videosynth latent cache (format {self.index.get('format')!r})")
        kind = self.index.get("kind", "tokens")
        if kind != self.kind:
            raise DataError(f"{self.root} is a cache of {kind}, not {self.kind}; {self.reader} "
                            f"(re-encode with the matching tokenizer)")
        from videosynth.checkpoint import sha256
        from videosynth.data.scan import check_inside

        values, labels = [], []
        for entry in self.index["shards"]:
            file = self.root / str(entry.get("file", ""))
            check_inside(self.root, file, str(path))
            try:
                # a shard that is not the one the index describes (rewritten by another encode) is refused
                if "sha256" in entry and sha256(file) != entry["sha256"]:
                    raise DataError(f"cache shard {file} does not match {path} (another encode wrote over it?); "
                                    "re-run encode into an empty folder")
                shard = load_file(str(file))
                values.append(shard[kind])
                labels.append(shard["labels"])
            except (OSError, SafetensorError, KeyError) as exc:
                raise DataError(f"cache shard {file} is unreadable ({exc}); re-run encode") from None
            if len(values[-1]) != entry.get("count") or len(labels[-1]) != entry.get("count"):
                raise DataError(f"cache shard {file} holds {len(values[-1])} clips, {path} says {entry.get('count')}; "
                                "re-run encode into an empty folder")
        self.values = torch.cat(values) if values else torch.zeros(0, *self.index["latent_shape"])
        self.labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
        self._captions = list(self.index.get("captions") or [""] * len(self.values))
        self.class_names = list(self.index.get("class_names", []))
        self.latent_shape = tuple(self.index["latent_shape"])
        if len(self._captions) != len(self.values) or len(self.labels) != len(self.values):
            raise DataError(f"cache {self.root} is inconsistent (counts differ); re-run encode")

    def check_written_by(self, sha256: str | None, tokenizer_run: str) -> None:
        """Refuse a cache written with other tokenizer weights than ``sha256`` (of ``tokenizer_run``).

        Raises:
            ConfigError: the hashes differ (a cache without one, or a tokenizer without one, passes).
        """
        from videosynth.errors import ConfigError

        have = self.index.get("tokenizer_sha256")
        if have and sha256 and have != sha256:
            kind = "token" if self.kind == "tokens" else "latent"
            raise ConfigError(f"{kind} cache {self.root} was written with another tokenizer checkpoint than "
                              f"{tokenizer_run}: re-run `videosynth encode` or point {self.kind}: elsewhere")

    def __len__(self) -> int:
        return len(self.values)

    def captions(self) -> list[str]:
        return sorted(set(self._captions))


class TokenDataset(_Cache):
    """A token cache as a dataset.

    Items: ``{"tokens": int64 [t, h, w], "label": int64 scalar, "caption": str}`` (no ``video``:
    a prior trained on a cache never decodes clips); exposes ``class_names``, ``captions()``, ``latent_shape`` and ``index``.

    Raises:
        DataError: missing / unreadable index or shard, a foreign format, or a cache of latents.
    """

    kind = "tokens"
    reader = "a transformer run reads tokens (tokens: DIR) from a vq or fsq tokenizer"

    @property
    def tokens(self) -> torch.Tensor:
        return self.values

    def __getitem__(self, i: int) -> dict:
        return {"tokens": self.values[i].long(), "label": self.labels[i], "caption": self._captions[i]}


class LatentDataset(_Cache):
    """A latent cache as a dataset: items ``{"latents": float32 [c, t, h, w], "label", "caption"}``.

    The latents are the tokenizer's mean latents as ``encode`` gives them (not normalised);
    ``latent_shape`` is ``(t, h, w)`` and ``channels`` is ``c``.

    Raises:
        DataError: missing / unreadable index or shard, a foreign format, or a cache of tokens.
    """

    kind = "latents"
    reader = "a flow run reads latents (latents: DIR) from a continuous tokenizer"

    @property
    def channels(self) -> int:
        return int(self.index.get("channels", self.values.shape[1] if len(self.values) else 0))

    def __getitem__(self, i: int) -> dict:
        return {"latents": self.values[i].float(), "label": self.labels[i], "caption": self._captions[i]}
