"""MoCoGAN image-to-video: ``--prime``'s first frame is inverted to codes and animated, deterministically by
seed, through the pipeline API, ``videosynth sample`` and the web page; bad input gets the one-line errors of
the other families that take ``--prime``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import videosynth
from videosynth.cli import main as cli_main
from videosynth.errors import ConfigError
from videosynth.io import to_uint8, write_video
from videosynth.train.families import tiny_config
from videosynth.train.run import run_training

from test_hostile_files import FIXTURES, one_line_error, run_cli
TRAIN = {"steps": 2, "batch_size": 4, "log_every": 1, "ckpt_every": 100, "sample_every": 0, "device": "cpu",
         "ema_decay": 0.9}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    cfg = {**tiny_config("mocogan", "plain"), "train": TRAIN}
    return run_training(cfg, run_dir=tmp_path_factory.mktemp("mocogan") / "run", progress=False)


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(1)


def test_a_primed_clip_starts_from_the_given_frame_and_its_motion_follows_the_seed(run):
    pipe = videosynth.load(run, device="cpu")
    given = pipe(4, seed=123)[:, :, :1]  # (4, C, 1, H, W): frames G can make, of codes the inversion is not told
    primed = pipe(4, seed=0, prime_video=given)  # (4, C, T, H, W)
    drawn = pipe(4, seed=0)
    assert primed.shape == drawn.shape == (4, 3, 4, 16, 16)
    # the inverted first frame is far closer to the given one than a random sample's
    assert (_mse(primed[:, :, 0], given[:, :, 0]) < 0.2 * _mse(drawn[:, :, 0], given[:, :, 0])).all()
    assert torch.equal(primed, pipe(4, seed=0, prime_video=given))
    other = pipe(4, seed=1, prime_video=given)
    assert not torch.equal(primed[:, :, 1:], other[:, :, 1:])
    # fewer inversion steps fit the frame less closely
    rough = pipe(4, seed=0, prime_video=given, invert_steps=0)
    assert _mse(primed[:, :, 0], given[:, :, 0]).mean() < _mse(rough[:, :, 0], given[:, :, 0]).mean()
    # clips past the training length start from the same frame
    longer = pipe(4, seed=0, prime_video=given, frames=7)
    assert longer.shape[2] == 7 and torch.allclose(longer[:, :, 0], primed[:, :, 0], atol=1e-5)


def test_several_observed_frames_are_all_fitted_and_the_motion_continues_from_them(run):
    pipe = videosynth.load(run, device="cpu")
    given = pipe(3, seed=321)[:, :, :2]  # (3, C, 2, H, W): two frames G can make
    primed = pipe(3, seed=0, prime_video=given)
    drawn = pipe(3, seed=0)
    for t in (0, 1):
        assert (_mse(primed[:, :, t], given[:, :, t]) < 0.2 * _mse(drawn[:, :, t], given[:, :, t])).all()
    assert primed.shape == (3, 3, 4, 16, 16)


def _frame_file(tmp_path: Path, frame: torch.Tensor) -> tuple[Path, Path]:
    """``frame`` (``[C, H, W]`` in [-1, 1]) as a PNG and as the first frame of a 3-frame mp4."""
    pixels = to_uint8(frame[:, None])[0]  # (H, W, 3)
    image = tmp_path / "frame.png"
    Image.fromarray(pixels).save(image)
    video = tmp_path / "clip.mp4"
    write_video(video, np.stack([pixels, pixels[::-1], pixels[:, ::-1]]), fps=8)
    return image, video


def test_prime_files_an_image_or_a_video_s_first_frame(run, tmp_path):
    pipe = videosynth.load(run, device="cpu")
    given = pipe(1, seed=7)[0, :, 0]  # (C, H, W)
    image, video = _frame_file(tmp_path, given)
    from_image = pipe(2, seed=0, prime=str(image))
    from_tensor = pipe(2, seed=0, prime_video=pipe.read_prime(str(image)))
    assert torch.equal(from_image, from_tensor)
    from_video = pipe(2, seed=0, prime=str(video))
    assert _mse(from_video[:, :, 0], given[None].expand(2, -1, -1, -1)).max() < 0.05
    assert not torch.equal(from_video, pipe(2, seed=0))
    two = pipe(2, seed=0, prime=str(video), prime_frames=2)  # the video's first two frames observed
    assert torch.equal(two, pipe(2, seed=0, prime_video=pipe.read_prime(str(video), 2)))
    assert not torch.equal(two, from_video)


def test_prime_through_sample_and_the_web_page(run, tmp_path, capsys):
    from videosynth.io import probe
    from videosynth.web.runs import Limits, Request, ServedRun, generate

    pipe = videosynth.load(run, device="cpu")
    image, _ = _frame_file(tmp_path, pipe(1, seed=7)[0, :, 0])
    out = tmp_path / "primed.mp4"
    assert cli_main(["sample", str(run), "--num", "2", "--prime", str(image), "--invert-steps", "10", "--out",
                     str(out), "--device", "cpu", "--no-progress"]) == 0
    assert probe(out).num_frames == 4
    served = ServedRun(run, device="cpu")
    assert "prime" in served.options
    result = generate(served, Request(num=2, options={"prime": str(image)}), Limits(), tmp_path / "page")
    assert len(result.clips) == 2 and probe(result.grid).num_frames == 4


@pytest.mark.parametrize("name", ["missing.png", "not-an-image.png"])
def test_bad_prime_files_get_the_same_one_line_errors_as_the_other_families(name, tmp_path, capsys):
    (tmp_path / "not-an-image.png").write_text("hello")
    lines = {}
    for family in ("mocogan", "transformer"):
        code, _, err = run_cli(["sample", FIXTURES / family, "--num", "1", "--prime", tmp_path / name,
                                "--out", tmp_path / f"{family}.mp4", "--device", "cpu"], capsys)
        lines[family] = one_line_error(code, err)
        assert not (tmp_path / f"{family}.mp4").exists()
    assert lines["mocogan"] == lines["transformer"] and name in lines["mocogan"]


@pytest.mark.parametrize("options, words", [
    ({"invert_steps": 5}, "--invert-steps needs --prime"),
    ({"prime_video": torch.zeros(1, 3, 1, 16, 16), "grid": "content-motion"}, "not both"),
    ({"prime_video": torch.zeros(1, 3, 1, 8, 8)}, "prime_video must be [2, 3, k, 16, 16]"),
    ({"prime_video": torch.zeros(1, 3, 5, 16, 16)}, "prime_video has 5 frames, more than the 4 requested"),
    ({"prime_video": torch.zeros(1, 3, 1, 16, 16), "prime": "x.png"}, "not both"),
    ({"prime_frames": 2}, "--prime-frames needs --prime"),
    ({"prime_video": torch.zeros(1, 3, 1, 16, 16), "invert_steps": -1}, "--invert-steps -1"),
])
def test_bad_prime_options_are_refused_in_one_line(run, options, words):
    pipe = videosynth.load(run, device="cpu")
    with pytest.raises(ConfigError) as info:
        pipe(2, **options)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_sampling_refuses_observed_frames_with_a_grid_or_too_many_of_them(run):
    from videosynth.sampling.gan import sample_mocogan

    gen = videosynth.load(run, device="cpu").generator()
    with pytest.raises(ConfigError, match="not both"):
        sample_mocogan(gen, 4, torch.Generator(), grid="content-motion", prime_video=torch.zeros(4, 3, 1, 16, 16))
    with pytest.raises(ConfigError, match="3 frames, more than the 2 requested"):
        sample_mocogan(gen, 1, torch.Generator(), frames=2, prime_video=torch.zeros(1, 3, 3, 16, 16))
