"""Manifests: a CSV or JSONL list of ``path, caption, label`` (and optionally ``split``).

CSV needs a header row naming its columns; ``path`` is required, the others are
optional.  JSONL holds one object per line with the same keys.  ``path`` is
relative to the dataset root (or absolute), and must lie under it (``..`` out of the root is
refused, see :func:`videosynth.data.scan.check_inside`); ``label`` is an integer class index
or a class name; an empty label means "no label".
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from videosynth.errors import DataError

COLUMNS = ("path", "caption", "label", "split")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass
class ManifestRow:
    """One manifest line. ``label`` is the raw text (``""`` = none), ``split`` ``""`` = not given."""

    path: str
    caption: str = ""
    label: str = ""
    split: str = ""


def _row(data: dict, where: str) -> ManifestRow:
    unknown = [k for k in data if k not in COLUMNS]
    if unknown:
        raise DataError(f"{where}: unknown column(s) {unknown}; a manifest has {', '.join(COLUMNS)}")
    path = str(data.get("path") or "").strip()
    if not path:
        raise DataError(f"{where}: empty 'path'")
    label = data.get("label")
    return ManifestRow(path=path, caption=str(data.get("caption") or ""),
                       label="" if label is None else str(label).strip(),
                       split=str(data.get("split") or "").strip())


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Parse a CSV (with header) or JSONL manifest.

    Raises:
        DataError: missing file, no ``path`` column, unknown column, malformed line (named by number).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}")
    rows: list[ManifestRow] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read manifest ({exc})") from None
    if path.suffix.lower() in JSONL_SUFFIXES:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            if not isinstance(data, dict):
                raise DataError(f"{path}:{n}: each line must be a JSON object with a 'path' key")
            rows.append(_row(data, f"{path}:{n}"))
        return rows
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "path" not in header:
        raise DataError(f"{path}: CSV manifest needs a header row with a 'path' column "
                        f"(e.g. 'path,caption,label'), got {header}")
    reader.fieldnames = header
    for n, data in enumerate(reader, start=2):
        if None in data:
            raise DataError(f"{path}:{n}: more fields than the header has; quote captions that contain commas")
        rows.append(_row(data, f"{path}:{n}"))
    return rows


def write_manifest(path: str | Path, rows: list[ManifestRow]) -> Path:
    """Write rows as CSV (``.csv``) or JSONL (``.jsonl``) UTF-8 text; written atomically (no temp left on failure)."""
    import io

    from videosynth.checkpoint import atomic_write_bytes

    path = Path(path)
    use_split = any(r.split for r in rows)
    columns = COLUMNS if use_split else COLUMNS[:3]
    text = io.StringIO(newline="")
    if path.suffix.lower() in JSONL_SUFFIXES:
        for r in rows:
            text.write(json.dumps({c: getattr(r, c) for c in columns}) + "\n")
    else:
        writer = csv.writer(text)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([getattr(r, c) for c in columns])
    try:
        data = text.getvalue().encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[max(0, exc.start - 40):exc.end + 40].encode("utf-8", "surrogateescape")
        raise DataError(f"{path}: a path is not valid UTF-8 text ({bad.decode('utf-8', 'backslashreplace')!r}); "
                        "rename the file, a manifest is UTF-8") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path
