"""``videosynth serve``: the generation behind the page, the command's errors, and the page in a real browser.

The browser tests start the server as a user does (a subprocess on a free 127.0.0.1 port) and
drive Debian's Chromium through Selenium; ``make test`` installs both where missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_cli import TINY_FAMILY_DEMOS, one_line_error, videosynth
from videosynth.errors import CheckpointError, ConfigError
from videosynth.io import probe, probe_audio, read_all, write_audio, write_video
from videosynth.web.runs import Limits, Request, ServedRun, generate

pytest.importorskip("gradio", reason="the web extra is not installed (pip install -e '.[web]')")

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
CHROMEDRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                   reason="no chromium / chromedriver (apt-get install chromium chromium-driver)")
PAGE_TIMEOUT = 60  # seconds for the page or a generation to show up (a loaded 2-core machine is slow)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny class-conditional runs: a VideoGAN (no sampler options) and a flow model (steps, solver, prime)."""
    root = tmp_path_factory.mktemp("served")
    out = {}
    for family in ("videogan", "flow"):
        res = videosynth("demo", "--family", family, "--out", root / family, *TINY_FAMILY_DEMOS[family])
        assert res.returncode == 0, res.stderr[-3000:]
        out[family] = root / family
    res = videosynth("train", "--config", "configs/mocogan/audio-32x32x16.yaml", "--run-dir", root / "audio",
                     *(f"--set={kv}" for kv in ("model.preset=tiny", "data.size=16", "data.frames=4",
                                                "data.object_size=0",
                                                "data.num_samples=16", "train.steps=2", "train.batch_size=4",
                                                "train.sample_every=0", "condition.audio_fft=128",
                                                "condition.audio_mels=16")))
    assert res.returncode == 0, res.stderr[-3000:]
    out["audio"] = root / "audio"
    return out


def _drive_sound(path: Path, seconds: float = 1.0) -> Path:
    """A sound file to drive a sound-conditioned run: the built-in soundtrack of one clip."""
    import numpy as np

    from videosynth.data.synthetic import BouncingShapes

    ds = BouncingShapes(2, frames=round(8 * seconds), size=16, audio_rate=16000)
    return write_audio(path, np.asarray(ds.soundtrack(0)), 16000)


# ---- generation, without a browser ----------------------------------------------------------


def test_generate_writes_a_grid_and_one_mp4_per_clip_reusing_the_model(runs, tmp_path):
    run = ServedRun(runs["videogan"])
    assert run.class_names == ["circle", "square", "triangle"] and run.options == {}
    seen = []
    result = generate(run, Request(num=5, seed=3, label="square"), Limits(), tmp_path / "a",
                      progress=lambda done, total: seen.append((done, total)))
    assert len(result.clips) == 5 and all(probe(p).num_frames == 8 for p in result.clips)
    assert probe(result.grid).num_frames == 8 and "class square" in result.info
    assert seen[0] == (0, 5) and seen[-1] == (5, 5) and len(seen) >= 3  # batches of 4: 0, 4, 5
    first = run.pipeline()
    generate(run, Request(num=1), Limits(), tmp_path / "b")
    assert run.pipeline() is first  # loaded once, reused by every request
    # the clips are the pipeline's clips for the same arguments (up to the mp4 codec)
    import torch

    from videosynth.data.transforms import to_uint8

    clips = first(num=5, seed=3, label="square")
    decoded = torch.from_numpy(read_all(result.clips[4])).float()
    expected = torch.from_numpy(to_uint8(clips[4])).float()
    assert decoded.shape == expected.shape and (decoded - expected).abs().mean() < 8


def test_requests_over_the_limits_or_wrong_for_the_run_are_one_line_errors(runs, tmp_path):
    gan, flow = ServedRun(runs["videogan"]), ServedRun(runs["flow"])
    limits = Limits(max_clips=3, max_frames=16)
    with pytest.raises(ConfigError, match="clips 4 is above this server's limit of 3"):
        generate(gan, Request(num=4), limits, tmp_path)
    with pytest.raises(ConfigError, match="frames 17 is above this server's limit of 16"):
        generate(flow, Request(num=1, frames=17), limits, tmp_path)
    with pytest.raises(ConfigError, match="unknown label 'hexagon'"):
        generate(gan, Request(num=1, label="hexagon"), limits, tmp_path)
    with pytest.raises(ConfigError, match="this VideoGAN generates 8 frames"):
        generate(gan, Request(num=1, frames=12), limits, tmp_path)
    assert set(flow.options) == {"steps", "solver", "guidance", "prime", "prime_frames"}
    result = generate(flow, Request(num=2, frames=12, options={"steps": 2, "solver": "heun"}), limits, tmp_path)
    assert probe(result.grid).num_frames == 12  # past the training length: sliding windows
    # an uploaded first-frames video is continued: its observed frames come back (up to the tokenizer)
    upload = tmp_path / "upload.mp4"
    write_video(upload, read_all(result.clips[0]))
    primed = generate(flow, Request(num=1, frames=8, options={"steps": 2, "prime": str(upload), "prime_frames": 4}),
                      limits, tmp_path / "primed")
    assert probe(primed.grid).num_frames == 8
    with pytest.raises(ConfigError, match="--prime-frames needs --prime"):
        generate(flow, Request(num=1, options={"prime_frames": 4}), limits, tmp_path)


def test_a_sound_driven_run_generates_clips_with_the_uploaded_soundtrack(runs, tmp_path):
    run = ServedRun(runs["audio"])
    assert run.takes_audio
    result = generate(run, Request(num=2, frames=8, audio=str(_drive_sound(tmp_path / "drive.wav"))), Limits(),
                      tmp_path / "out")
    for path in (result.grid, *result.clips):
        assert probe(path).num_frames == 8 and abs(probe_audio(path).duration - 1.0) < 0.1
    assert "driven by drive.wav" in result.info
    silent = generate(run, Request(num=1, frames=8), Limits(), tmp_path / "silent")  # no sound: the learned null
    assert probe_audio(silent.grid) is None


def test_serve_refuses_what_it_cannot_serve_in_one_line(runs, tmp_path):
    with pytest.raises(CheckpointError, match="vqvae run .*not a generator"):
        ServedRun(runs["flow"] / "tokenizer")
    assert "nothing a run directory?" in one_line_error(videosynth("serve", tmp_path / "nothing"))
    assert "--max-frames 0: must be at least 1" in one_line_error(
        videosynth("serve", runs["videogan"], "--max-frames", "0"))
    assert "not a generator" in one_line_error(videosynth("serve", runs["flow"] / "tokenizer"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert "pick another --port" in one_line_error(videosynth("serve", runs["videogan"], "--port", port))


# ---- the page in a real browser --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_TEMP_DIR": str(log.parent / "gradio")}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "videosynth.cli", "serve", runs["videogan"], runs["flow"],
                                 runs["audio"], "--port", str(port), "--max-frames", "32", "--max-clips", "8"],
                                stdout=f, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + PAGE_TIMEOUT
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the server did not come up: {log.read_text()[-3000:]}")
            time.sleep(0.5)
    yield url, log
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def _wait(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.2).until(condition, message=f"waiting for {what}")


def _open_page(driver, url):
    driver.get(url)
    _wait(driver, lambda d: any(e.get_attribute("value") for e in _css(d, "#label input")), "the class dropdown")


def _choose(driver, box: str, value: str):
    """Pick ``value`` in the Gradio dropdown ``#box`` as a user does: open it, click the option."""
    _css(driver, f"#{box} input")[0].click()
    option = _wait(driver, lambda d: [o for o in _css(d, "li[role=option]") if o.get_attribute("aria-label") == value],
                   f"option {value} of #{box}")
    option[0].click()
    _wait(driver, lambda d: _css(d, f"#{box} input")[0].get_attribute("value") == value, f"#{box} = {value}")


def _type(driver, box: str, value):
    field = _css(driver, f"#{box} input")[0]
    field.clear()
    field.send_keys(str(value))


def _visible(driver, box: str) -> bool:
    found = _css(driver, f"#{box}")
    return bool(found) and found[0].is_displayed()


def _generated_video(driver, previous: str | None = None) -> str:
    """The ``src`` of the grid video once a (new) one is shown."""
    def src(d):
        videos = _css(d, "#grid video")
        value = videos[0].get_attribute("src") if videos else None
        return value if value and value != previous else None

    return _wait(driver, src, "the generated video")


def _download(url: str, path: Path) -> Path:
    with urllib.request.urlopen(url, timeout=30) as response:
        path.write_bytes(response.read())
    return path


@needs_browser
def test_page_generates_the_chosen_class_as_a_playable_mp4(server, browser, runs, tmp_path):
    url, _ = server
    _open_page(browser, url)
    labels = [o.get_attribute("aria-label") for o in (_css(browser, "#label input")[0].click() or
                                                      _wait(browser, lambda d: _css(d, "li[role=option]"), "options"))]
    assert labels == ["(every class in turn)", "circle", "square", "triangle"]
    _css(browser, "#label input")[0].click()  # close the list again
    assert not _visible(browser, "steps") and not _visible(browser, "text")  # a GAN: no sampler controls
    _choose(browser, "label", "square")
    _type(browser, "num", 3)
    _css(browser, "#generate")[0].click()
    src = _generated_video(browser)
    grid = _download(src, tmp_path / "grid.mp4")
    assert probe(grid).num_frames == 8
    links = _wait(browser, lambda d: [a.get_attribute("href") for a in _css(d, "#clips a")] or None, "clip links")
    assert len(links) == 3 and all(probe(_download(h, tmp_path / f"c{i}.mp4")).num_frames == 8
                                   for i, h in enumerate(links))
    assert "class square" in _css(browser, "#info")[0].text
    # the browser itself decodes the grid (H.264 in mp4): metadata and the first frame are there
    _wait(browser, lambda d: d.execute_script("return document.querySelector('#grid video').readyState") >= 2,
          "the browser to decode the video")
    shots = Path(os.environ.get("VIDEOSYNTH_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / "serve-after-generate.png"))


@needs_browser
def test_page_shows_a_bad_input_as_an_error_not_a_traceback(server, browser):
    url, _ = server
    _open_page(browser, url)
    _type(browser, "frames", 999)
    _css(browser, "#generate")[0].click()
    toast = _wait(browser, lambda d: [t for t in _css(d, "[data-testid=toast-body]") if "limit" in t.text],
                  "the error message")
    assert "frames 999 is above this server's limit of 32" in toast[0].text
    assert "Traceback" not in browser.page_source


@needs_browser
def test_page_follows_the_run_and_two_tabs_generating_at_once_both_get_their_clips(server, browser, runs, tmp_path):
    url, _ = server
    tabs = []
    for seed in (1, 2):
        if tabs:
            browser.switch_to.new_window("tab")
        _open_page(browser, url)
        _choose(browser, "run", str(runs["flow"]))
        _wait(browser, lambda d: _visible(d, "steps") and _visible(d, "solver") and _visible(d, "prime"),
              "the flow run's sampler controls")
        _type(browser, "steps", 2)
        _type(browser, "seed", seed)
        _type(browser, "frames", 16)
        tabs.append(browser.current_window_handle)
    for tab in tabs:  # both requests are queued before either is waited for
        browser.switch_to.window(tab)
        _css(browser, "#generate")[0].click()
    sources = []
    for i, tab in enumerate(tabs):
        browser.switch_to.window(tab)
        sources.append(_generated_video(browser))
        assert probe(_download(sources[-1], tmp_path / f"tab{i}.mp4")).num_frames == 16
        assert f"seed {i + 1}" in _css(browser, "#info")[0].text
    assert sources[0] != sources[1]
    browser.switch_to.window(tabs[1])
    browser.close()
    browser.switch_to.window(tabs[0])


@needs_browser
def test_page_takes_an_uploaded_sound_and_returns_clips_that_carry_it(server, browser, runs, tmp_path):
    url, _ = server
    _open_page(browser, url)
    assert not _visible(browser, "audio")  # the GAN run shown first takes no sound
    _choose(browser, "run", str(runs["audio"]))
    _wait(browser, lambda d: _visible(d, "audio"), "the sound upload")
    wav = _drive_sound(tmp_path / "drive.wav", seconds=1.5)
    _css(browser, "#audio input[type=file]")[0].send_keys(str(wav))
    _wait(browser, lambda d: _css(d, "#audio audio") or _css(d, "#audio .waveform-container")
          or "drive.wav" in _css(d, "#audio")[0].text, "the uploaded sound")
    _type(browser, "frames", 12)
    _type(browser, "num", 2)
    _css(browser, "#generate")[0].click()
    grid = _download(_generated_video(browser), tmp_path / "grid.mp4")
    assert probe(grid).num_frames == 12 and abs(probe_audio(grid).duration - 1.5) < 0.1
    assert "driven by" in _css(browser, "#info")[0].text
