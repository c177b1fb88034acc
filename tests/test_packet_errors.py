"""Undecodable packets inside real files: skipped and counted, the gap filled in place (silence for sound,
the previous picture for video), the rest of the file read as if nothing happened; refused only when
most of a read fails."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import damage, frame_numbers, numbered_frames, packets

from videosynth import io
from videosynth.errors import DataError
from videosynth.io import packet_errors

FPS = 10
NUM_FRAMES = 40
RATE = 48000  # AC-3's rate, read back unresampled so sample positions compare exactly
AC3_FRAME = 1536  # samples per AC-3 packet
SECONDS = NUM_FRAMES / FPS


def tone(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def write_avi_ac3(path: Path) -> Path:
    """MJPEG video (numbered frames) with a stereo AC-3 soundtrack (a 440 Hz tone), as in phone/DVD rips."""
    frames = numbered_frames(NUM_FRAMES)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mjpeg", rate=Fraction(FPS))
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuvj420p"
        audio = container.add_stream("ac3", rate=RATE)
        audio.layout = "stereo"
        for f in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        container.mux(video.encode(None))
        x = tone(SECONDS)
        sound = av.AudioFrame.from_ndarray(np.stack([x, x]), format="fltp", layout="stereo")
        sound.sample_rate, sound.pts = RATE, 0
        container.mux(audio.encode(sound))
        container.mux(audio.encode(None))
    return path


def decoded_start(path: Path, i: int) -> float:
    """Seconds at which the ``i``-th decoded audio frame starts (the decoder's delay puts it after packet ``i``'s pts)."""
    with av.open(str(path)) as container:
        for k, frame in enumerate(container.decode(audio=0)):
            if k == i:
                return float(frame.time)
    raise AssertionError(f"{path} has fewer than {i + 1} audio frames")


# An AC-3 frame's later bytes are not checksummed by default (garbage there decodes to noise):
# its header is what fails. A JPEG decoder keeps the tables of the frames before, so its header
# can go; garbage in its entropy-coded middle is what fails.
AUDIO_PART = (0.0, 0.5)
VIDEO_PART = (0.25, 0.75)


@pytest.fixture
def clean(tmp_path) -> Path:
    return write_avi_ac3(tmp_path / "clean.avi")


def test_one_bad_audio_packet_leaves_silence_in_its_place_and_the_rest_intact(clean, tmp_path):
    lost = packets(clean, "audio")[60]
    bad = damage(clean, tmp_path / "bad.avi", [lost], AUDIO_PART)
    a = round(decoded_start(clean, 60) * RATE)  # the lost packet's samples (the video starts at 0)
    b = a + AC3_FRAME
    for start, duration in [(0.0, None), (lost[2] - 0.5, 1.0), (lost[2] - 0.02, 0.05)]:
        want = io.read_audio(clean, RATE, start, duration)
        got = io.read_audio(bad, RATE, start, duration)  # raised "audio decode failed" before
        assert got.shape == want.shape
        first = round(start * RATE)
        lo, hi = a - first, b - first  # the lost packet in this window
        # AVI's AC-3 parser merges a packet whose sync word is gone into the one before: both are lost.
        # Before them: the same samples. After them, past the one frame whose overlap-add they fed: the
        # same to the decoder's dither noise (its random state skipped the lost frames), not shifted.
        np.testing.assert_array_equal(got[:max(0, lo - AC3_FRAME)], want[:max(0, lo - AC3_FRAME)])
        np.testing.assert_allclose(got[hi + AC3_FRAME:], want[hi + AC3_FRAME:], atol=1e-4, rtol=0)
        # where it was: silence, where the clean file has the tone (so nothing later slid into the gap)
        assert np.abs(got[max(0, lo):hi]).max() == 0.0
        assert np.abs(want[max(0, lo):hi]).max() > 0.4
    assert packet_errors.skipped_packets(bad, "audio") >= 1


def test_one_bad_video_packet_holds_the_previous_frame(clean, tmp_path):
    bad = damage(clean, tmp_path / "bad.avi", [packets(clean, "video")[20]], VIDEO_PART)
    assert frame_numbers(io.read_clip(bad, 18, 5)) == [18, 19, 19, 21, 22]
    assert frame_numbers(io.read_clip(bad, 20, 2)) == [19, 21]
    assert frame_numbers(io.VideoReader().read_clip(bad, 17, 4, stride=2)) == [17, 19, 21, 23]
    whole = frame_numbers(io.read_all(bad))
    assert len(whole) == NUM_FRAMES and whole[20] == 19
    assert whole[:20] + whole[21:] == [k for k in range(NUM_FRAMES) if k != 20]
    assert packet_errors.skipped_packets(bad, "video") >= 1


def test_a_read_that_loses_most_of_its_packets_is_an_error(clean, tmp_path):
    sound = packets(clean, "audio")
    # every other packet: AVI's parser merges each into the intact one before it, and the pair fails
    bad = damage(clean, tmp_path / "bad.avi", sound[40:80:2], AUDIO_PART)
    assert io.read_audio(bad, RATE, 0.0, 0.5).shape == (RATE // 2,)  # away from the damage
    with pytest.raises(DataError, match=rf"^{bad}: audio decode failed in \d+ of \d+ packets") as err:
        io.read_audio(bad, RATE, sound[50][2], 0.5)
    assert "\n" not in str(err.value)
    worse = damage(clean, tmp_path / "worse.avi", packets(clean, "video")[10:30], VIDEO_PART)
    with pytest.raises(DataError, match=rf"^{worse}: video decode failed in \d+ of \d+ packets"):
        io.read_clip(worse, 15, 10)


def test_scan_counts_the_packets_it_skipped_instead_of_calling_the_file_broken(clean, tmp_path):
    from videosynth.commands.data import scan_report

    root = tmp_path / "data"
    root.mkdir()
    damage(clean, root / "first_frame_damaged.avi", [packets(clean, "video")[0]], VIDEO_PART)
    clean.rename(root / "clean.avi")
    report = scan_report(root, frames=8, use_cache=False)
    assert report["usable"] == 2 and report["broken"] == []  # the damaged one was "decode failed" before
    assert report["damaged"] == [{"path": "first_frame_damaged.avi", "skipped_packets": 1}]
