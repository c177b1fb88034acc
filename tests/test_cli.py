"""The CLI end to end as a user runs it: demo, train, resume, sample, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from videosynth.io import probe

# the two-stage AR demo, as tiny (the default family is flow: test_the_default_demo_is_the_family_tables_leader)
TINY_DEMO = ["--family", "transformer", "--steps", "3", "--set", "train.batch_size=4", "--set", "data.num_samples=32",
             "--set", "train.sample_every=0", "--set", "model.preset=tiny", "--tokenizer-steps", "2",
             "--tokenizer-set", "model.preset=tiny", "--tokenizer-set", "train.batch_size=4",
             "--tokenizer-set", "train.sample_every=0"]
# the other families' demos, as tiny
TINY_FAMILY_DEMOS = {
    "videogan": ["--steps", "3", "--set", "train.batch_size=4", "--set", "data.num_samples=32",
                 "--set", "train.sample_every=0", "--set", "model.g_base=4", "--set", "model.d_base=4"],
    "flow": ["--steps", "3", "--set", "train.batch_size=4", "--set", "data.num_samples=32", "--set",
             "train.sample_every=0", "--set", "model.preset=tiny", "--set", "sample.steps=2", "--tokenizer-steps", "2",
             "--tokenizer-set", "model.preset=tiny", "--tokenizer-set", "train.batch_size=4",
             "--tokenizer-set", "train.sample_every=0"],
}


def videosynth(*args, cwd=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "videosynth.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


def one_line_error(res) -> str:
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    res = videosynth("demo", "--out", out, *TINY_DEMO, "--no-progress")  # the flag every long command takes
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


def test_demo_writes_videos_per_class_and_a_loss_plot(demo_run):
    out, res = demo_run
    names = json.loads((out / "classes.json").read_text())
    assert names == ["circle", "square", "triangle"]
    for name in names + ["all-classes"]:
        info = probe(out / "videos" / f"{name}.mp4")
        assert info.num_frames == 8  # the demo model's clip length
        assert (out / "videos" / f"{name}.gif").stat().st_size > 0
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert str(out / "videos") in res.stdout
    assert (out / "checkpoints" / "step-000003" / "model.safetensors").is_file()


def test_the_default_demo_is_the_family_tables_leader():
    from videosynth.commands.demo import DEFAULT_FAMILY

    assert DEFAULT_FAMILY == "flow"  # README, Families on equal compute: flow at or above AR on every median
    res = videosynth("demo", "--help")
    assert res.returncode == 0 and "default flow" in " ".join(res.stdout.split())


def test_demo_refuses_to_overwrite_and_resumes(demo_run, tmp_path):
    out, _ = demo_run
    assert "--resume" in one_line_error(videosynth("demo", "--out", out, *TINY_DEMO))
    assert (out / "tokenizer" / "checkpoints" / "step-000002").is_dir()  # the two-stage demo's first stage
    line = one_line_error(videosynth("demo", "--out", out, "--family", "flow", "--resume", *TINY_FAMILY_DEMOS["flow"]))
    assert "holds a transformer demo" in line


def test_demo_resume_keeps_the_finished_tokenizer_and_continues_the_second_stage(tmp_path):
    out = tmp_path / "demo"
    first = videosynth("demo", "--out", out, *TINY_DEMO, "--steps", "1")  # the last --steps wins
    assert first.returncode == 0, first.stderr[-2000:]
    tokenizer_files = sorted(p.name for p in (out / "tokenizer" / "checkpoints").iterdir())
    res = videosynth("demo", "--out", out, "--resume", *TINY_DEMO)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "already trained" in res.stderr
    assert sorted(p.name for p in (out / "tokenizer" / "checkpoints").iterdir()) == tokenizer_files
    assert (out / "checkpoints" / "step-000003").is_dir()


@pytest.mark.parametrize("family", sorted(TINY_FAMILY_DEMOS))
def test_every_familys_demo_writes_its_videos(family, tmp_path):
    out = tmp_path / family
    res = videosynth("demo", "--out", out, "--family", family, *TINY_FAMILY_DEMOS[family])
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("circle", "square", "triangle", "all-classes"):
        assert probe(out / "videos" / f"{name}.mp4").num_frames == 8
    assert (out / "config.yaml").is_file() and str(out / "videos") in res.stdout
    if family == "flow":  # stopped after its tokenizer, then resumed as another family's demo: refused
        import shutil

        shutil.copytree(out / "tokenizer", tmp_path / "half" / "tokenizer")
        line = one_line_error(videosynth("demo", "--out", tmp_path / "half", "--resume", *TINY_DEMO))
        assert "holds a flow demo" in line and "--family flow --resume" in line


def test_sample_writes_a_decodable_grid_and_each_clip(demo_run, tmp_path):
    out, _ = demo_run
    target = tmp_path / "s.mp4"
    res = videosynth("sample", out, "--num", "4", "--seed", "1", "--label", "square", "--out", target, "--each")
    assert res.returncode == 0, res.stderr
    grid = probe(target)
    assert grid.num_frames == 8 and grid.width > 64 and grid.height > 64  # a 2x2 grid of 32 px clips
    each = sorted(tmp_path.glob("s-*.mp4"))
    assert len(each) == 4
    clip = probe(each[0])
    assert (clip.num_frames, clip.width, clip.height) == (8, 32, 32)
    gif = tmp_path / "s.gif"
    assert videosynth("sample", out, "--num", "2", "--label", "0", "--out", gif).returncode == 0
    assert gif.read_bytes()[:3] == b"GIF"


def test_eval_class_acc_trains_a_probe_once_and_scores_each_class(demo_run, tmp_path):
    out, _ = demo_run
    result = tmp_path / "acc.json"
    res = videosynth("eval", "class-acc", out, "--num", "3", "--probe-steps", "2", "--json", result)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "training a probe" in res.stdout
    first = json.loads(result.read_text())
    assert set(first["per_class"]) == {"circle", "square", "triangle"}
    assert all(0.0 <= v <= 1.0 and v * 3 == round(v * 3) for v in first["per_class"].values())  # 3 clips each
    assert 0.0 <= first["real_accuracy"] <= 1.0 and first["chance"] == 1 / 3
    assert not (out / "probe-class-acc.safetensors").exists()  # a reader writes nothing into the run
    again = videosynth("eval", "class-acc", out, "--num", "3", "--json", result)
    assert again.returncode == 0 and "training a probe" not in again.stdout  # the cached probe is reused
    assert json.loads(result.read_text())["per_class"] == first["per_class"]  # deterministic by seed
    assert "run directory" in one_line_error(videosynth("eval", "class-acc", tmp_path / "nope"))


def test_sample_is_deterministic_by_seed(demo_run, tmp_path):
    out, _ = demo_run
    import videosynth

    pipe = videosynth.load(out, device="cpu")
    a = pipe(3, seed=5, label=1)
    b = pipe(3, seed=5, label=1)
    c = pipe(3, seed=6, label=1)
    assert (a == b).all() and not (a == c).all()
    assert a.shape == (3, 3, 8, 32, 32) and a.min() >= -1 and a.max() <= 1


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--label", "hexagon"], "unknown label 'hexagon'"),
        (["--label", "7"], "label 7 out of range"),
        (["--text", "a red circle"], "a text was given but"),
        (["--frames", "7"], "not a multiple"),
        (["--solver", "euler"], "--solver does not apply to transformer runs"),
        (["--fps", "0"], "--fps 0: must be in [1, 240]"),
        (["--checkpoint", "abc"], "neither a step number"),
        (["--out", "x.txt"], "--out x.txt"),
        (["--checkpoint", "99"], "checkpoint"),
    ],
)
def test_sample_bad_arguments_are_one_line(demo_run, tmp_path, args, needle):
    out, _ = demo_run
    line = one_line_error(videosynth("sample", out, *args, cwd=tmp_path))
    assert needle in line


def test_sample_missing_run_dir(tmp_path):
    line = one_line_error(videosynth("sample", tmp_path / "nope"))
    assert "nope" in line


def test_train_unknown_key_suggests(tmp_path):
    cfg = Path(__file__).parents[1] / "configs" / "videogan" / "demo-32x32x16.yaml"
    line = one_line_error(videosynth("train", "--config", cfg, "--set", "train.stpes=3"))
    assert "train.stpes" in line and "train.steps" in line
    line = one_line_error(videosynth("train", "--config", cfg, "--set", "model.preset=demo-32x32x61"))
    assert "did you mean 'demo-32x32x16'" in line


def test_train_then_resume_through_the_cli_is_exact(tmp_path):
    from safetensors.torch import load_file

    cfg = Path(__file__).parents[1] / "configs" / "videogan" / "demo-32x32x16.yaml"
    common = ["--config", cfg, "--set", "model.preset=tiny", "--set", "data.size=16", "--set", "data.frames=4",
              "--set", "data.num_samples=32", "--set", "train.batch_size=4", "--set", "train.sample_every=0",
              "--set", "train.device=cpu", "--no-progress"]
    assert videosynth("train", *common, "--steps", "4", "--run-dir", tmp_path / "a").returncode == 0
    assert videosynth("train", *common, "--steps", "2", "--run-dir", tmp_path / "b").returncode == 0
    res = videosynth("train", "--resume", tmp_path / "b", "--steps", "4", "--no-progress")
    assert res.returncode == 0, res.stderr
    piped = videosynth("train", "--resume", tmp_path / "b", "--steps", "5")  # stderr is a pipe: no bar
    assert piped.returncode == 0 and "\r" not in piped.stderr and "train:" not in piped.stderr
    assert "train:" in _stderr_on_a_terminal("train", "--resume", tmp_path / "b", "--steps", "6")
    a = load_file(str(tmp_path / "a" / "checkpoints" / "step-000004" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "step-000004" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    # a fresh run into a directory that holds checkpoints is refused, not overwritten
    assert "--resume" in one_line_error(videosynth("train", *common, "--run-dir", tmp_path / "a"))


def test_eval_track_on_a_run_uses_the_runs_clip_shape(demo_run, tmp_path):
    out, _ = demo_run
    res = videosynth("eval", "track", "bouncing-shapes", out, "--num", "8", "--json", tmp_path / "t.json")
    assert res.returncode == 0, res.stderr
    assert "8 real / 8 fake clips of 8 frames at 32px" in res.stdout
    result = json.loads((tmp_path / "t.json").read_text())
    assert result["real"]["valid_share"] == 1.0  # real clips drawn like the run's data are physically valid


def test_a_moved_demo_finds_its_tokenizer_inside_it(demo_run, tmp_path):
    import shutil

    import videosynth

    out, _ = demo_run
    moved = tmp_path / "elsewhere" / "my-demo"
    shutil.copytree(out, moved)
    config = (moved / "config.yaml").read_text()
    assert str(out / "tokenizer") in config
    # as if the original folder were gone: the path it was trained with no longer exists
    (moved / "config.yaml").write_text(config.replace(str(out / "tokenizer"), str(tmp_path / "gone" / "tokenizer")))
    pipe = videosynth.load(moved, device="cpu")
    assert pipe.tokenizer.run_dir == moved / "tokenizer"
    assert pipe(1, seed=0, label=0).shape == (1, 3, 8, 32, 32)


def _stderr_on_a_terminal(*args) -> str:
    """Run the CLI with stderr on a pseudo-terminal; returns what it wrote there."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal has a size
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "videosynth.cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    return b"".join(chunks).decode(errors="replace")


def test_sampling_and_eval_show_progress_on_a_terminal_only(demo_run, tmp_path):
    out, _ = demo_run
    sample = ["sample", out, "--num", "4", "--batch-size", "2", "--out", tmp_path / "s.mp4"]
    assert "sampling" in _stderr_on_a_terminal(*sample) and "4/4" in _stderr_on_a_terminal(*sample)
    assert "sampling" not in _stderr_on_a_terminal(*sample, "--no-progress")
    piped = videosynth(*sample)  # stderr is a pipe: no bar, no carriage returns
    assert piped.returncode == 0 and "\r" not in piped.stderr
    track = ["eval", "track", "bouncing-shapes", out, "--num", "4"]
    assert "sampling" in _stderr_on_a_terminal(*track)
    assert "sampling" not in _stderr_on_a_terminal(*track, "--no-progress")
