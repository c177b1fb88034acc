"""Audio I/O: soundtracks written by the tests (tones, clicks at known times, several codecs and
rates) read back with the right samples at the right offsets, aligned with the frames of a clip."""

from __future__ import annotations

import av
import numpy as np
import pytest

from media import frame_numbers, numbered_frames, write_frame_folder, write_numbered
from videosynth import io
from videosynth.io import audio_read, resample
from videosynth.errors import DataError

RATE = 16000  # the rate clips are read at
CODECS = [(".wav", 22050), (".flac", 44100), (".mp3", 44100), (".m4a", 48000), (".ogg", 48000), (".opus", 24000)]
LOSSY_SLACK = 3  # samples a click may move through a lossy codec and a resampler at 16 kHz


def clicks(times: list[float], seconds: float, rate: int) -> np.ndarray:
    """Silence with a one-sample click of 0.9 at each time: float32 [seconds * rate]."""
    x = np.zeros(round(seconds * rate), np.float32)
    for t in times:
        x[round(t * rate)] = 0.9
    return x


def peaks(x: np.ndarray, n: int, spacing: int = 400) -> list[int]:
    """The ``n`` strongest sample positions at least ``spacing`` apart, in time order."""
    order, found = np.argsort(-np.abs(x)), []
    for i in order:
        if all(abs(int(i) - j) >= spacing for j in found):
            found.append(int(i))
        if len(found) == n:
            break
    return sorted(found)


@pytest.mark.parametrize("suffix,rate", CODECS)
def test_clicks_come_back_at_their_times_through_every_codec(tmp_path, suffix, rate):
    times = [0.25, 0.8, 1.5]
    path = io.write_audio(tmp_path / f"clicks{suffix}", clicks(times, 2.0, rate), rate)
    info = io.probe_audio(path)
    assert info.channels == 1 and abs(info.duration - 2.0) < 0.05
    sound = io.read_audio(path, RATE)
    assert sound.dtype == np.float32 and abs(len(sound) - 2 * RATE) <= 0.05 * RATE
    for got, t in zip(peaks(sound, 3), times):
        assert abs(got - t * RATE) <= LOSSY_SLACK
    # a window: sample 0 is its start, its length is exact
    window = io.read_audio(path, RATE, start=0.7, duration=1.0)
    assert len(window) == RATE
    for got, t in zip(peaks(window, 2), (0.8, 1.5)):
        assert abs(got - (t - 0.7) * RATE) <= LOSSY_SLACK


def test_a_tone_is_resampled_not_distorted(tmp_path):
    rate, freq = 44100, 440.0
    t = np.arange(rate) / rate
    path = io.write_audio(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32), rate)
    sound = io.read_audio(path, RATE, start=0.1, duration=0.5)  # away from the resampler's edges
    expected = 0.5 * np.sin(2 * np.pi * freq * (0.1 + np.arange(RATE // 2) / RATE))
    assert np.abs(sound - expected).max() < 0.01


def _two_tones(t: np.ndarray) -> np.ndarray:
    return 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t)


@pytest.mark.parametrize("rate", [48000, 44100, 22050, 11025, 11127])  # down, up, and a rate pair with no short period
def test_a_window_is_the_sound_at_its_own_sample_times_wherever_it_starts(tmp_path, rate):
    """Output sample j of a window from ``start`` is the sound at ``(round(start * 16000) + j) / 16000`` s,
    for starts that are no whole number of input samples: the resampler works on one grid from the
    file's origin, not from where a seek landed."""
    path = io.write_audio(tmp_path / "tones.wav", _two_tones(np.arange(3 * rate) / rate).astype(np.float32), rate)
    for start in (0.5, 1.234, 1.7771, 2.2):
        sound = io.read_audio(path, RATE, start=start, duration=0.64)
        expected = _two_tones((round(start * RATE) + np.arange(sound.size)) / RATE)
        assert np.abs(sound - expected).max() < 2e-3, start


def test_the_per_sample_resampler_matches_the_polyphase_one(tmp_path, monkeypatch):
    rate = 44100
    path = io.write_audio(tmp_path / "tones.wav", _two_tones(np.arange(2 * rate) / rate).astype(np.float32), rate)
    polyphase = io.read_audio(path, RATE, start=0.31, duration=0.5)
    monkeypatch.setattr(resample, "MAX_POLYPHASE_TAPS", 0)  # every rate pair computes its taps per output sample
    per_sample = io.read_audio(path, RATE, start=0.31, duration=0.5)
    assert np.abs(polyphase - per_sample).max() < 1e-5 and np.abs(polyphase).max() > 0.4


@pytest.mark.parametrize("rate", [48000, 44100])
def test_a_window_is_the_same_samples_as_the_whole_file_read(tmp_path, monkeypatch, rate):
    path = io.write_audio(tmp_path / "tones.wav", _two_tones(np.arange(2 * rate) / rate).astype(np.float32), rate)
    monkeypatch.setattr(resample, "RESAMPLE_CHUNK", 2000)  # the whole file goes through the resampler in many chunks
    whole = io.read_audio(path, RATE)
    assert whole.size == 2 * RATE
    for first in (0, 4567, 20001):
        window = io.read_audio(path, RATE, start=first / RATE, duration=0.4)
        assert np.abs(window - whole[first:first + window.size]).max() < 1e-6


@pytest.mark.parametrize("codec,tolerance", [("pcm_u8", 1e-2), ("pcm_s16le", 1e-4), ("pcm_s32le", 1e-6),
                                             ("pcm_f32le", 1e-7), ("pcm_f64le", 1e-7)])
def test_every_sample_format_is_read_to_its_value(tmp_path, codec, tolerance):
    rate = 16000
    tone = (0.5 * np.sin(2 * np.pi * 300 * np.arange(rate) / rate)).astype(np.float32)
    path = tmp_path / f"{codec}.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.stack([tone, -tone / 2]).T.reshape(1, -1).copy(), format="flt",
                                           layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    sound = io.read_audio(path, rate, start=0.25, duration=0.5)
    assert np.abs(sound - tone[rate // 4:3 * rate // 4] / 4).max() < tolerance  # (left + right) / 2


def test_stereo_is_averaged_to_mono(tmp_path):
    rate = 22050
    tone = 0.5 * np.sin(2 * np.pi * 300 * np.arange(rate) / rate).astype(np.float32)
    left_only = np.stack([tone, np.zeros_like(tone)])  # (2, S)
    path = tmp_path / "stereo.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(left_only.T.reshape(1, -1).copy(), format="flt", layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert io.probe_audio(path).channels == 2
    sound = io.read_audio(path, rate)
    assert abs(np.abs(sound).max() - 0.25) < 0.01  # half the left channel


def test_windows_past_either_end_are_padded_with_silence(tmp_path):
    path = io.write_audio(tmp_path / "c.wav", clicks([0.1], 0.5, RATE), RATE)
    tail = io.read_audio(path, RATE, start=0.4, duration=0.5)
    assert len(tail) == RATE // 2 and not tail[RATE // 10 + 10:].any()
    assert len(io.read_audio(path, RATE, start=3.0, duration=0.25)) == RATE // 4


@pytest.mark.parametrize("fps", [8.0, 25.0, 30000 / 1001])
@pytest.mark.parametrize("start,stride", [(0, 1), (5, 1), (3, 2)])
def test_clip_audio_lines_up_with_the_clip_frames(tmp_path, fps, start, stride):
    """A click at frame 9's time of an mp4 (H.264 + AAC) lands where frame 9 sits in the clip."""
    frames = 4
    path = tmp_path / "av.mp4"
    write_numbered(path, 24, fps=fps)
    video = io.read_all(path)
    sound = clicks([9 / fps], 24 / fps, RATE)
    io.write_video(path, video, fps=fps, audio=sound, sample_rate=RATE)
    info = io.probe(path)
    clip = io.read_clip(path, start, frames, stride)
    audio = io.read_clip_audio(path, start, frames, stride, info.fps, RATE)
    assert len(audio) == round(frames * stride / fps * RATE)
    assert frame_numbers(clip) == [start + i * stride for i in range(frames)]
    if start <= 9 < start + frames * stride:  # under clip frame (9 - start) // stride
        assert abs(peaks(audio, 1)[0] - round((9 - start) / fps * RATE)) <= LOSSY_SLACK
    else:
        assert np.abs(audio).max() < 0.1  # no click under this clip


def test_mp4_output_holds_a_soundtrack_of_the_clip_length_and_gif_refuses_one(tmp_path):
    frames, fps = io.read_all(write_numbered(tmp_path / "src.mp4", 16, fps=8.0)), 8.0
    sound = 0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * RATE) / RATE).astype(np.float32)
    out = io.write_video(tmp_path / "with-sound.mp4", frames, fps=fps, audio=sound, sample_rate=RATE)
    info = io.probe_audio(out)
    assert info.codec == "aac" and abs(info.duration - 16 / fps) < 0.1
    assert io.probe(out).num_frames == 16
    back = io.read_audio(out, RATE, 0.5, 1.0)
    assert np.abs(back - sound[RATE // 2: RATE // 2 + RATE]).max() < 0.05
    webm = io.write_video(tmp_path / "with-sound.webm", frames, fps=fps, audio=sound, sample_rate=RATE)
    assert io.probe_audio(webm).codec == "opus"
    with pytest.raises(DataError, match="carry no sound"):
        io.write_video(tmp_path / "x.gif", frames, fps=fps, audio=sound, sample_rate=RATE)


def test_sources_without_sound_or_broken_ones_are_clear_errors(tmp_path):
    silent = write_numbered(tmp_path / "silent.mp4", 8)
    assert io.probe_audio(silent) is None
    with pytest.raises(DataError, match="contains no audio stream"):
        io.read_audio(silent, RATE)
    folder = write_frame_folder(tmp_path / "frames", 8)
    assert io.probe_audio(folder) is None
    with pytest.raises(DataError, match="no soundtrack"):
        io.read_audio(folder, RATE)
    io.write_audio(folder / "audio.wav", clicks([0.2], 1.0, RATE), RATE)  # a frame folder's soundtrack
    assert io.probe_audio(folder).path.endswith("audio.wav")
    assert abs(peaks(io.read_clip_audio(folder, 0, 8, 1, io.FRAME_FOLDER_FPS, RATE), 1)[0] - 0.2 * RATE) <= 1
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3" + b"\x00" * 200)
    with pytest.raises(DataError, match="broken.mp3"):
        io.read_audio(broken, RATE)
    with pytest.raises(DataError, match="cannot write '.xyz' audio"):
        io.write_audio(tmp_path / "a.xyz", np.zeros(10, np.float32), RATE)


def _music(seconds: float, rate: int, seed: int) -> np.ndarray:
    """A chord, a sweep and a tone switched on and off: every codec frame differs (no noise, which
    FFmpeg's AAC encoder codes as noise substitution, whose decoded noise is random)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.1 * np.sin(2 * np.pi * 1375 * t * (1 + t / seconds))
    x += 0.3 * np.sin(2 * np.pi * 660 * t) * (np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)) > 0)
    return x.astype(np.float32)


def test_a_shared_decoder_reads_the_samples_of_a_fresh_one(tmp_path, monkeypatch):
    """Seeking reads decode with a decoder kept for the process (SHARED_AUDIO_DECODERS), flushed per read:
    windows of AAC (m4a, mp4, mkv) and MP3 files, read in turns so that one decoder serves several files,
    come out as from a fresh decoder per read: MP3 bit for bit, AAC to float rounding (FFmpeg's AAC
    decoder differs by an ulp after other reads, its own stream decoder too)."""
    files = [io.write_audio(tmp_path / f"a{i}.m4a", _music(3.0, 44100, i), 44100) for i in range(2)]
    files += [io.write_audio(tmp_path / "b.mp3", _music(3.0, 44100, 2), 44100),
              io.write_audio(tmp_path / "c.m4a", _music(3.0, 16000, 3), 16000)]
    for suffix in (".mp4", ".mkv"):
        files.append(io.write_video(tmp_path / f"v{suffix}", numbered_frames(30), fps=10,
                                    audio=_music(3.0, 48000, 4), sample_rate=48000))
    windows = [(0.0, 0.5), (0.35, 0.8), (1.23, 0.64), (2.5, 1.0), (0.11, 0.3)]
    reader = io.VideoReader()
    audio_read._AUDIO_DECODERS.clear()
    try:
        shared = [reader.read_audio(f, RATE, s, d) for s, d in windows for f in files]
    finally:
        reader.close()
    assert len(audio_read._AUDIO_DECODERS) == 4  # AAC at 44.1, 16 and 48 kHz (mp4 and mkv alike), MP3
    monkeypatch.setattr(audio_read, "SHARED_AUDIO_DECODERS", ())
    fresh = [io.read_audio(f, RATE, s, d) for s, d in windows for f in files]  # a new container each
    for k, (a, b) in enumerate(zip(shared, fresh)):
        assert a.shape == b.shape
        if files[k % len(files)].suffix == ".mp3":
            assert np.array_equal(a, b)
        else:
            assert np.abs(a - b).max() <= 1e-6
    assert min(np.abs(a).max() for a in shared) > 0.2  # sound in every window, not silence
