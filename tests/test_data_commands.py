"""``videosynth data scan`` and ``data preview`` run through their argparse parsers."""

import argparse
import csv
import json

import pytest
from media import write_broken, write_numbered

from videosynth import io
from videosynth.commands import data as data_cmd
from videosynth.errors import DataError


def _run(argv):
    parser = argparse.ArgumentParser()
    data_cmd.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "videos"
    for cls in ("cat", "dog"):
        for i in range(2):
            write_numbered(root / cls / f"{i}.mp4", 12)
    write_broken(root / "cat")
    return root


def test_scan_prints_summary_and_writes_manifest(root, tmp_path, capsys):
    manifest = tmp_path / "manifest.csv"
    assert _run(["data", "scan", str(root), "--frames", "4", "--manifest-out", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "9 videos, 4 usable, 5 broken" in out
    assert "cat (2), dog (2)" in out and "frames:  min 12" in out and "h264 (4)" in out
    assert "empty.mp4: empty file" in out and "short.mp4: only 3 frames" in out
    with open(manifest) as f:
        rows = list(csv.DictReader(f))
    assert [(r["path"], r["label"]) for r in rows][:2] == [("cat/0.mp4", "cat"), ("cat/1.mp4", "cat")]
    assert len(rows) == 4


def test_scan_json(root, capsys):
    assert _run(["data", "scan", str(root), "--frames", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["usable"] == 4 and report["classes"] == {"cat": 2, "dog": 2}
    assert report["frames"] == {"min": 12.0, "median": 12.0, "max": 12.0}
    broken = {b["path"].split("/")[-1] for b in report["broken"]}
    assert broken == {"empty.mp4", "noise.mp4", "text.mp4", "truncated.mp4", "short.mp4"}


@pytest.mark.parametrize("source", ["moving-digits", "bouncing-shapes"])
def test_preview_builtin(tmp_path, source, capsys):
    out = tmp_path / f"{source}.gif"
    assert _run(["data", "preview", source, "--out", str(out), "--num", "4", "--frames", "3", "--size", "32"]) == 0
    info = io.probe(out)
    assert info.num_frames == 3 and info.width == 2 * 34 + 2  # 2 x 2 grid of 32 px clips, 2 px padding
    assert "moves" in capsys.readouterr().out


def test_preview_folder_png(root, tmp_path):
    out = tmp_path / "strip.png"
    assert _run(["data", "preview", str(root), "--out", str(out), "--num", "3", "--frames", "4", "--size", "16"]) == 0
    assert out.is_file()


def test_preview_unknown_source(tmp_path):
    with pytest.raises(DataError, match="moving-digits"):
        _run(["data", "preview", "no-such-thing", "--out", str(tmp_path / "x.gif")])
