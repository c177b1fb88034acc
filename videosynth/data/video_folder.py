"""A dataset of clips from a folder of videos (and/or frame folders).

Layout conventions, all optional::

    root/
      train/ val/           split folders (else a deterministic hash split of the paths)
        <class>/...         the first-level subfolder is the class (sorted names -> labels)
      manifest.csv          ``path, caption, label[, split]``, passed as ``manifest=``

Each item is ``{"video": float32 [3, T, size, size] in [-1, 1], "label": int64 scalar
(-1 = none), "caption": str ("" = none)}``.  Training draws a random clip start
(and crop window) per call from an RNG seeded by ``(seed, epoch, index)``, so
epochs differ but are reproducible; evaluation takes the centred clip.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from videosynth import io
from videosynth.data.manifest import ManifestRow, read_manifest
from videosynth.data.scan import ScanResult, VideoEntry, check_root, scan
from videosynth.data.transforms import ClipTransform
from videosynth.errors import DataError

log = logging.getLogger("videosynth.data")

SPLITS = ("train", "val", "all")
CLIP_MODES = ("random", "center")
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation", "test")}
MAX_RETRIES = 8  # clips drawn after a decode failure before the item gives up
HASH_SPAN = 2 ** 32  # the hash split compares the first 32 bits of sha1(path) with val_fraction


def _split_of_path(rel_path: str, val_fraction: float) -> str:
    """Deterministic split from the relative path alone (independent of seed, machine, file order)."""
    h = int(hashlib.sha1(rel_path.encode()).hexdigest()[:8], 16)
    return "val" if h / HASH_SPAN < val_fraction else "train"


def _item_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def find_split_folders(root: Path) -> dict[str, Path] | None:
    """``{"train": root/train, "val": root/val}`` when the root is organised by split, else None."""
    found = {}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
    return found if "train" in found and "val" in found else None


class VideoFolder(Dataset):
    """Clips of ``frames`` frames (every ``stride``-th) resized and cropped to ``size`` x ``size``.

    Args:
        root: folder searched recursively for video files and frame folders.
        frames, stride: clip length and frame step; shorter videos are reported broken.
        size: output height and width (shorter side resized, then cropped).
        split: ``"train"``, ``"val"`` or ``"all"``.
        manifest: CSV/JSONL of ``path, caption, label[, split]``; when given, only listed videos are used.
        val_fraction: share of videos hashed into ``val`` when there are no split folders / column.
        seed: base of the per-item RNG (with the epoch from :meth:`set_epoch`).
        train_clip: ``"random"`` start and crop per call, or ``"center"``; ``val`` is always centred.
        max_broken_fraction: abort when more than this share of the files is broken.
        broken_hint: how the caller raises that share, for the message (a config key, a flag).
        cache_dir: where the scan index is cached (default: the user cache dir).
        progress: show a progress bar while scanning (only on a terminal).
        verify: decode the first and last frame of each video at scan time.

    Attributes:
        class_names: sorted class names (index = label).
        broken: ``(path, reason)`` for every file skipped.
        from_cache: whether the scan index came from the cache.

    Raises:
        DataError: missing root, no usable videos, an empty split, or too many broken files.
    """

    def __init__(self, root: str | Path, frames: int = 16, size: int = 64, stride: int = 1, split: str = "train",
                 manifest: str | Path | None = None, val_fraction: float = 0.1, seed: int = 0,
                 train_clip: str = "random", max_broken_fraction: float = 0.2, cache_dir: str | Path | None = None,
                 progress: bool = True, verify: bool = True,
                 broken_hint: str = "raise data.max_broken_fraction") -> None:
        if split not in SPLITS:
            raise DataError(f"split must be one of {SPLITS}, got {split!r}")
        if train_clip not in CLIP_MODES:
            raise DataError(f"train_clip must be one of {CLIP_MODES}, got {train_clip!r}")
        if frames < 1 or stride < 1 or size < 1:
            raise DataError(f"frames, stride and size must be positive, got {frames}, {stride}, {size}")
        self.root = Path(root).expanduser()
        check_root(self.root)
        self.frames, self.stride, self.size, self.split, self.seed = frames, stride, size, split, seed
        self.epoch = 0
        self.clip_mode = train_clip if split in ("train", "all") else "center"
        self.transform = ClipTransform(size, crop="random" if self.clip_mode == "random" else "center")
        self.span = (frames - 1) * stride + 1  # frames a clip covers in the source

        rows = self._manifest_rows(manifest)
        paths = None if rows is None else [self._resolve(r.path) for r in rows]
        result: ScanResult = scan(self.root, paths, min_frames=self.span, verify=verify, cache_dir=cache_dir,
                                  progress=progress)
        self.from_cache = result.from_cache
        self.broken = [(str(self.root / p), reason) for p, reason in result.broken]
        total = len(result.entries) + len(result.broken)
        if total == 0:
            raise DataError(f"{self.root}: no videos found (looked for {', '.join(io.VIDEO_EXTENSIONS)} "
                            f"files and folders of {'/'.join(io.IMAGE_EXTENSIONS)} frames)")
        if len(result.broken) > max_broken_fraction * total:
            listed = "; ".join(f"{p}: {r}" for p, r in self.broken[:3])
            raise DataError(f"{self.root}: {len(result.broken)} of {total} videos are broken or shorter than "
                            f"{self.span} frames (more than max_broken_fraction={max_broken_fraction}); "
                            f"e.g. {listed}. Fix or remove them, or {broken_hint}")
        if not result.entries:
            path, reason = self.broken[0]
            raise DataError(f"{self.root}: no usable videos ({len(result.broken)} broken, e.g. {path}: {reason})")
        self._label_and_split(result.entries, rows, val_fraction)

    # ------------------------------------------------------------------ indexing

    def _manifest_rows(self, manifest: str | Path | None) -> list[ManifestRow] | None:
        if manifest is None:
            return None
        path = Path(manifest).expanduser()
        if not path.is_absolute() and not path.is_file() and (self.root / path).is_file():
            path = self.root / path
        rows = read_manifest(path)
        if not rows:
            raise DataError(f"{path}: manifest lists no videos")
        return rows

    def _resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p

    def _label_and_split(self, entries: list[VideoEntry], rows: list[ManifestRow] | None, val_fraction: float):
        by_path = {self._rel(self._resolve(r.path)): r for r in rows} if rows is not None else {}
        manifest_labels = rows is not None and any(r.label for r in rows)
        split_dirs = None if rows is not None else find_split_folders(self.root)
        items = []  # (entry, split, class key, caption)
        for e in entries:
            row = by_path.get(e.path)
            parts = e.path.split("/")
            if split_dirs is not None:
                top = parts[0]
                split = next((s for s, d in split_dirs.items() if d.name == top), "other")
                parts = parts[1:]
            elif row is not None and row.split:
                split = "val" if row.split in SPLIT_FOLDERS["val"] else row.split
            else:
                split = _split_of_path(e.path, val_fraction)
            if manifest_labels:
                key = row.label if row is not None else ""
            else:
                key = parts[0] if len(parts) >= 2 else ""
            items.append((e, split, key, row.caption if row is not None else ""))

        keys = sorted({k for _, _, k, _ in items if k})
        if keys and all(k.lstrip("-").isdigit() for k in keys):
            # integer labels from a manifest: class i is named "i"
            self.class_names = [str(i) for i in range(max(int(k) for k in keys) + 1)]
            label_of = {k: int(k) for k in keys}
        else:
            self.class_names = keys
            label_of = {k: i for i, k in enumerate(keys)}
        chosen = [it for it in items if self.split == "all" or it[1] == self.split]
        if not chosen:
            raise DataError(f"{self.root}: split '{self.split}' holds no usable videos ({len(items)} in total); "
                            f"add videos, adjust data.val_fraction (now {val_fraction}) or use split 'all'")
        self.entries = [e for e, _, _, _ in chosen]
        self.labels = [label_of.get(k, -1) for _, _, k, _ in chosen]
        self._captions = [c for _, _, _, c in chosen]

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    # ------------------------------------------------------------------ dataset API

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        """Change the random clips drawn in training (call once per epoch, before iterating).

        DataLoader workers copy the dataset when an iterator starts, so this reaches
        them unless ``persistent_workers=True`` (then the epoch stays fixed).
        """
        self.epoch = int(epoch)

    def captions(self) -> list[str]:
        """Distinct non-empty captions of this split, sorted."""
        return sorted({c for c in self._captions if c})

    def path(self, index: int) -> Path:
        """Absolute path of video ``index``."""
        return self._resolve(self.entries[index].path)

    def clip_start(self, index: int, generator: torch.Generator | None = None) -> int:
        """First frame of the clip for ``index``: random (training) or centred."""
        room = self.entries[index].num_frames - self.span + 1  # number of valid starts
        if self.clip_mode == "random":
            return int(torch.randint(0, room, (1,), generator=generator))
        return (room - 1) // 2

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.entries):
            raise IndexError(f"index {index} out of range for {len(self.entries)} videos")
        generator = torch.Generator().manual_seed(_item_seed(self.seed, self.epoch, index))
        current = index
        reason = ""
        for _attempt in range(MAX_RETRIES + 1):
            path = self.path(current)
            try:
                frames = io.read_clip(path, self.clip_start(current, generator), self.frames, self.stride)
            except (DataError, OSError, ValueError, RuntimeError) as exc:
                reason = str(exc)
                log.warning("could not read a clip (%s); drawing another video", reason)
                current = int(torch.randint(0, len(self.entries), (1,), generator=generator))
                continue
            return {"video": self.transform(frames, generator),
                    "label": torch.tensor(self.labels[current], dtype=torch.int64),
                    "caption": self._captions[current]}
        raise DataError(f"{self.root}: {MAX_RETRIES + 1} clips in a row failed to decode (last: {reason}); "
                        f"check the files or rescan")

    def __repr__(self) -> str:
        return (f"VideoFolder(root={str(self.root)!r}, split={self.split!r}, videos={len(self)}, "
                f"classes={len(self.class_names)}, broken={len(self.broken)}, frames={self.frames}, "
                f"stride={self.stride}, size={self.size})")
