"""Standard dataset layouts read as they are downloaded: UCF-101, Kinetics CSVs, BAIR frame folders.

Each function turns a layout's own files into a :class:`~videosynth.data.video_folder.Layout`
(the videos with their split, class and time window) for
:class:`~videosynth.data.video_folder.VideoFolder`, which probes, checks and samples them
like any folder: missing or broken videos are reported with a reason and skipped, up to
``max_broken_fraction``.

**UCF-101** (``ucf101_layout``)::

    root/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi ...      the UCF101 folder
    ucfTrainTestlist/classInd.txt                             "1 ApplyEyeMakeup" ...
                    /trainlist01.txt                          "ApplyEyeMakeup/v_..._g08_c01.avi 1"
                    /testlist01.txt                           "ApplyEyeMakeup/v_..._g01_c01.avi"

The split files are looked for in ``split_dir`` when given, else in ``root/``,
``root/ucfTrainTestlist/`` and ``root/../ucfTrainTestlist/`` (the first folder holding
``classInd.txt``).  Train = ``trainlist0N.txt``, val = ``testlist0N.txt``; label = the
``classInd.txt`` index - 1, class names in that file's order.

**Kinetics** (``kinetics_layout``): CSV files with the columns ``label, youtube_id,
time_start, time_end, split`` (``is_cc`` too in some releases; ``label`` is absent from
unlabelled test files).  ``annotations`` is one CSV, whose ``split`` column places each row
(``train``; ``val``/``validate``/``test`` are val; no column = the hash split), or a folder
holding the official ``train.csv`` and ``validate.csv`` (or ``val.csv``), one file per split
(``test.csv`` is not read).
A row's video is found anywhere under ``root`` (``root/<split>/<label>/``, ``root/<label>/``,
``root/<split>/``, flat) by its name:

1. ``<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>``: the trimmed segment, used whole;
2. else ``<youtube_id>.<ext>`` or ``<youtube_id>`` followed by ``.`` or ``_`` and more
   (``<id>.f137.mp4``, ``<id>_full.mkv``; not another segment's name): the full video, from
   which clips are cut inside ``[time_start, time_end]`` seconds only, unless its duration
   shows it is the segment already (see ``TRIMMED_SLACK_S``).

Several files for one row: the first in natural path order.  Labels are the sorted
label names of every row read (train and val share them).

**BAIR robot pushing** (``bair_layout``), converted to frames::

    root/train/traj_0_to_255/0/0.png 1.png ... 29.png        one trajectory = one video
    root/test/traj_0_to_255/0/...                            the val split

Frames are read in numeric order (``2.png`` before ``10.png``, ``aux1_image_2.png`` before
``aux1_image_10.png``); one camera's frames per trajectory folder.  No labels.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from videosynth import io
from videosynth.data.scan import check_root, find_videos
from videosynth.data.video_folder import Layout, Listed, find_split_folders, folder_layout
from videosynth.errors import DataError

# ----------------------------------------------------------------------------- UCF-101

UCF_CLASS_FILE = "classInd.txt"
UCF_TRAIN_FILE = "trainlist{:02d}.txt"
UCF_TEST_FILE = "testlist{:02d}.txt"
UCF_SPLIT_FOLDER = "ucfTrainTestlist"  # the folder UCF101TrainTestSplits-RecognitionTask.zip unpacks to


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a BOM, if any, dropped
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def _lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the non-blank lines (LF or CRLF endings)."""
    return [(n, line.strip()) for n, line in enumerate(_text(path).splitlines(), start=1) if line.strip()]


def _ucf_split_folder(root: Path, split_file: int, split_dir: str | None) -> Path:
    """``split_dir`` (absolute, from the working directory, or under ``root``), else the first of
    ``root``, ``root/ucfTrainTestlist``, ``root/../ucfTrainTestlist`` that holds ``classInd.txt``."""
    what = (f"the UCF-101 split files ({UCF_CLASS_FILE}, {UCF_TRAIN_FILE.format(split_file)}, "
            f"{UCF_TEST_FILE.format(split_file)})")
    if split_dir:
        folder = Path(split_dir).expanduser()
        if not folder.is_absolute() and not folder.is_dir() and (root / folder).is_dir():
            folder = root / folder
        if not (folder / UCF_CLASS_FILE).is_file():
            raise DataError(f"{folder / UCF_CLASS_FILE} not found: data.split_dir must name the folder holding {what}")
        return folder
    candidates = [root, root / UCF_SPLIT_FOLDER, root.parent / UCF_SPLIT_FOLDER]
    for folder in candidates:
        if (folder / UCF_CLASS_FILE).is_file():
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise DataError(f"{what} not found (looked for {UCF_CLASS_FILE} in {looked}); "
                    f"set data.split_dir to the folder holding them")


def ucf101_classes(path: Path) -> list[str]:
    """Class names from ``classInd.txt`` (``"<1-based index> <name>"`` lines), in index order.

    Raises:
        DataError: a malformed line, or indices that are not 1..N (named by file and line).
    """
    by_index: dict[int, str] = {}
    for n, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}:{n}: expected '<index> <ClassName>', got {line!r}")
        index = int(parts[0])
        if index in by_index:
            raise DataError(f"{path}:{n}: index {index} given twice ({by_index[index]}, {parts[1]})")
        by_index[index] = parts[1]
    expected = list(range(1, len(by_index) + 1))
    if sorted(by_index) != expected:
        gaps = sorted(set(expected) - set(by_index))
        raise DataError(f"{path}: class indices must run 1..{len(by_index)} without gaps; {gaps[:5]} are missing")
    return [by_index[i] for i in expected]


def _ucf_list(path: Path, split: str, classes: list[str], class_file: Path) -> list[Listed]:
    """The videos of a train/test list: ``Class/v_Class_gXX_cYY.avi[ <1-based class index>]`` per line."""
    index_of = {name: i + 1 for i, name in enumerate(classes)}
    listing = []
    for n, line in _lines(path):
        parts = line.split()
        video = parts[0].replace("\\", "/")
        name = video.split("/")[0] if "/" in video else ""
        if name not in index_of:
            raise DataError(f"{path}:{n}: class '{name}' of {video} is not in {class_file}; "
                            f"use the split files that came with these videos")
        if len(parts) > 2 or (len(parts) == 2 and parts[1] != str(index_of[name])):
            raise DataError(f"{path}:{n}: expected '{video} {index_of[name]}' ({name} is class "
                            f"{index_of[name]} in {class_file}), got {line!r}")
        listing.append(Listed(video, split=split, label=name, source=f"{path}:{n}"))
    return listing


def ucf101_layout(root: str | Path, split_file: int = 1, split_dir: str | None = None) -> Layout:
    """UCF-101 videos under ``root`` listed by the official split ``split_file`` (1, 2 or 3).

    Raises:
        DataError: ``root`` is not a folder, split files missing (naming where they were looked
            for and ``data.split_dir``), a malformed line or an unknown class (file and line).
    """
    root = Path(root).expanduser()
    check_root(root)
    folder = _ucf_split_folder(root, split_file, split_dir)
    class_file = folder / UCF_CLASS_FILE
    classes = ucf101_classes(class_file)
    listing = []
    for split, name in (("train", UCF_TRAIN_FILE), ("val", UCF_TEST_FILE)):
        path = folder / name.format(split_file)
        if not path.is_file():
            raise DataError(f"{path} not found: data.split_file={split_file} needs "
                            f"{UCF_TRAIN_FILE.format(split_file)} and {UCF_TEST_FILE.format(split_file)} "
                            f"next to {class_file}")
        listing += _ucf_list(path, split, classes, class_file)
    return Layout(listing, class_names=classes)


# ----------------------------------------------------------------------------- Kinetics

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split", "is_cc")
KINETICS_REQUIRED = ("youtube_id", "time_start", "time_end")
# Per-split files of an annotations folder, as the official releases name them (first found is used).
KINETICS_SPLIT_FILES = {"train": ("train.csv",), "val": ("validate.csv", "val.csv", "validation.csv")}
SEGMENT_STEM = re.compile(r"^(?P<id>.+)_(?P<start>\d{6})_(?P<end>\d{6})$")  # <id>_<start:06d>_<end:06d>


def _read_kinetics_csv(path: Path, split: str | None) -> list[tuple[Listed, str]]:
    """Rows of one annotations file as ``(listing without a path, youtube_id)``.

    ``split``: the split of every row (a per-split file), or None to read the ``split`` column.
    """
    reader = csv.DictReader(_text(path).splitlines(), skipinitialspace=True)  # blank lines are skipped
    header = [h.strip() for h in (reader.fieldnames or [])]
    unknown = [h for h in header if h not in KINETICS_COLUMNS]
    missing = [c for c in KINETICS_REQUIRED if c not in header]
    if unknown or missing:
        raise DataError(f"{path}: a Kinetics CSV has the columns {','.join(KINETICS_COLUMNS[:5])} (is_cc optional); "
                        f"{'unknown ' + str(unknown) if unknown else 'missing ' + str(missing)} in the header")
    reader.fieldnames = header
    rows = []
    for row in reader:
        n = reader.line_num
        if None in row:
            raise DataError(f"{path}:{n}: more fields than the header has; quote labels that contain commas")
        youtube_id = (row.get("youtube_id") or "").strip()
        try:
            start, end = float(row["time_start"]), float(row["time_end"])
        except (TypeError, ValueError):
            raise DataError(f"{path}:{n}: time_start and time_end must be seconds, got "
                            f"{row.get('time_start')!r}, {row.get('time_end')!r}") from None
        if not youtube_id or not 0 <= start < end:
            raise DataError(f"{path}:{n}: need a youtube_id and 0 <= time_start < time_end, got "
                            f"{youtube_id!r}, {start:g}, {end:g}")
        row_split = split if split is not None else (row.get("split") or "").strip()
        listed = Listed("", split=row_split, label=(row.get("label") or "").strip(), window=(start, end))
        rows.append((listed, youtube_id))
    return rows


def _kinetics_rows(annotations: Path) -> list[tuple[Listed, str]]:
    if annotations.is_file():
        return _read_kinetics_csv(annotations, None)
    if not annotations.is_dir():
        raise DataError(f"Kinetics annotations not found: {annotations} (data.annotations names a CSV file "
                        f"or a folder holding train.csv and validate.csv)")
    rows = []
    for split, names in KINETICS_SPLIT_FILES.items():
        path = next((annotations / n for n in names if (annotations / n).is_file()), None)
        if path is not None:
            rows += _read_kinetics_csv(path, split)
    if not rows:
        wanted = ", ".join(n for names in KINETICS_SPLIT_FILES.values() for n in names)
        raise DataError(f"{annotations}: no Kinetics CSV found (looked for {wanted}); "
                        f"point data.annotations at the CSV file itself")
    return rows


def _stem(path: Path) -> str:
    """A video file's name without its suffix; a frame folder's whole name."""
    return path.stem if path.suffix.lower() in io.VIDEO_EXTENSIONS else path.name


def _index_videos(root: Path) -> tuple[dict[tuple[str, int, int], Path], dict[str, list[Path]]]:
    """Video files and frame folders under ``root`` by name: trimmed segments by ``(id, start, end)``,
    the others under every prefix of their name that ends before a ``.`` or ``_``."""
    segments: dict[tuple[str, int, int], Path] = {}
    full: dict[str, list[Path]] = {}
    for path in find_videos(root):  # natural path order: the first file found for a name wins
        stem = _stem(path)
        match = SEGMENT_STEM.match(stem)
        if match:
            segments.setdefault((match["id"], int(match["start"]), int(match["end"])), path)
            continue
        prefixes = {stem} | {stem[:i] for i, ch in enumerate(stem) if ch in "._" and i > 0}
        for prefix in prefixes:
            full.setdefault(prefix, []).append(path)
    return segments, full


def kinetics_layout(root: str | Path, annotations: str | Path) -> Layout:
    """Kinetics-style videos under ``root`` listed by the CSV(s) ``annotations`` (see the module docstring).

    ``annotations`` is absolute, relative to the working directory, or relative to ``root``.

    Raises:
        DataError: ``root`` is not a folder, annotations missing, unknown columns, or a bad row
            (file and line).
    """
    root = Path(root).expanduser()
    check_root(root)
    path = Path(annotations).expanduser()
    if not path.is_absolute() and not path.exists() and (root / path).exists():
        path = root / path
    rows = _kinetics_rows(path)
    segments, full = _index_videos(root)
    listing, missing = [], []
    for listed, youtube_id in rows:
        start, end = listed.window
        trimmed = segments.get((youtube_id, int(start), int(end)))
        if trimmed is not None:
            listing.append(Listed(trimmed.relative_to(root).as_posix(), listed.split, listed.label))
            continue
        found = full.get(youtube_id)
        if found:
            listing.append(Listed(found[0].relative_to(root).as_posix(), listed.split, listed.label,
                                  window=listed.window))
            continue
        name = f"{youtube_id}_{int(start):06d}_{int(end):06d}"
        where = "/".join(part for part in (listed.split, listed.label, f"{name}.mp4") if part)  # the downloader's place
        missing.append((where, f"not found: no video named {name}.* or {youtube_id}.* under {root}"))
    class_names = sorted({listed.label for listed, _ in rows if listed.label})
    return Layout(listing, class_names=class_names, missing=missing)


# ----------------------------------------------------------------------------- BAIR

def bair_layout(root: str | Path) -> Layout:
    """BAIR trajectories: every frame folder under ``root/train`` and ``root/test`` (the val split), unlabelled.

    Raises:
        DataError: ``root`` is not a folder or lacks the split folders.
    """
    root = Path(root).expanduser()
    check_root(root)
    if find_split_folders(root) is None:
        raise DataError(f"{root}: a BAIR root holds train/ and test/ folders of trajectories "
                        f"(train/traj_0_to_255/0/0.png ...); set data.root to the folder that holds them")
    layout = folder_layout(root, labels=False)
    layout.listing = [x for x in layout.listing if x.split != "other"]
    return layout


__all__ = ["ucf101_layout", "ucf101_classes", "kinetics_layout", "bair_layout"]
