"""Real footage: the sample videos Debian's opencv-doc ships (MPEG-4 Part 2, MS-MPEG4 and Cinepak AVIs, one
with an AC-3 track that holds an undecodable packet, one whose header claims six times the frames that
decode), copied beside defects derived from them (a truncated copy, damaged packets, headers claiming
six times the frames) and files with nothing decodable. Every file with decodable content loads, frames
and sound; every file without is named with its reason; nothing raises a traceback.

Skipped where the package is not installed (``apt-get install opencv-doc``: 96 MB download).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from media import OPENCV_SAMPLES, real_corpus, real_sources

from videosynth import io
from videosynth.data.scan import scan

SOURCES = real_sources()
pytestmark = pytest.mark.skipif(not SOURCES, reason=f"no real footage in {OPENCV_SAMPLES} "
                                                    "(apt-get install opencv-doc)")
NOTHING_DECODABLE = {"empty.avi", "noise.avi"}
FRAMES = 8
RATE = 16000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("real") / "corpus"
    return root, real_corpus(SOURCES, root)


def _has_audio(path: Path) -> bool:
    import av

    with av.open(str(path)) as container:
        return bool(container.streams.audio)


def test_the_scan_keeps_every_decodable_file_and_names_the_rest(corpus):
    from videosynth.commands.data import scan_report

    root, kinds = corpus
    report = scan_report(root, frames=FRAMES, use_cache=False)
    assert {b["path"] for b in report["broken"]} == NOTHING_DECODABLE
    assert all(b["reason"] for b in report["broken"])
    assert report["usable"] == len(kinds) - len(NOTHING_DECODABLE)
    damaged = {d["path"]: d for d in report["damaged"]}
    claims = next(name for name in kinds if name.startswith("claims6x-"))
    original = io.probe(root / claims.removeprefix("claims6x-")).num_frames
    assert damaged[claims]["header_frames"] == 6 * original and damaged[claims]["frames"] == original
    truncated = next(name for name in kinds if name.startswith("truncated-"))
    assert FRAMES <= damaged[truncated]["frames"] < damaged[truncated]["header_frames"] == original


def test_every_usable_file_reads_its_first_middle_and_last_clip_and_its_sound(corpus):
    root, kinds = corpus
    result = scan(root, min_frames=FRAMES, use_cache=False, quiet=True)
    for entry in result.entries:
        path = root / entry.path
        for start in (0, entry.num_frames // 2 - FRAMES // 2, entry.num_frames - FRAMES):
            clip = io.read_clip(path, start, FRAMES)
            assert clip.shape == (FRAMES, entry.height, entry.width, 3) and clip.std() > 0, (entry.path, start)
        if _has_audio(path):
            seconds = entry.num_frames / entry.fps
            sound = io.read_audio(path, RATE, 0.0, seconds)
            assert sound.shape == (round(seconds * RATE),) and abs(sound).max() > 0.01, entry.path
    assert any(_has_audio(root / e.path) for e in result.entries), "no real file with sound in the corpus"


def test_a_folder_of_real_footage_with_sound_gives_every_clip_without_a_retry(corpus, tmp_path, caplog):
    from videosynth.data import VideoFolder

    root, kinds = corpus
    sounding = tmp_path / "sounding"
    sounding.mkdir()
    for name in kinds:
        if name not in NOTHING_DECODABLE and _has_audio(root / name):
            shutil.copyfile(root / name, sounding / name)
    data = VideoFolder(sounding, frames=FRAMES, size=32, split="all", audio_rate=RATE)
    assert len(data) == len(list(sounding.iterdir())) and not data.broken
    with caplog.at_level(logging.WARNING):
        for epoch in range(2):
            data.set_epoch(epoch)
            for i in range(len(data)):
                item = data[i]
                assert item["video"].shape == (3, FRAMES, 32, 32) and item["audio"].dim() == 1
    assert "drawing another video" not in caplog.text  # no clip replaced by another file's


def test_the_scan_command_names_the_broken_files_without_a_traceback(corpus, capsys):
    from videosynth.cli import main

    root, _ = corpus
    assert main(["data", "scan", str(root), "--frames", str(FRAMES), "--no-cache"]) == 0  # raises nothing
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    for name in NOTHING_DECODABLE:
        assert f"  {name}: " in out
    assert "the header claims" in out
