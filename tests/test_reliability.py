"""Runs that cannot be bricked, clobbered or silently wrong.

Every numeric config field and CLI option is fed bad values (property-based, hypothesis);
trainings are killed with SIGKILL at random points while they write checkpoints and resumed;
a full disk is simulated with ``RLIMIT_FSIZE``; two writers race for one run; SIGINT / SIGTERM
exit codes; a FIFO in a dataset folder; resumes with overrides that would change the model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from videosynth.checkpoint import checkpoint_dirs, find_checkpoint
from videosynth.cli import main as cli_main
from videosynth.config import Range, apply_overrides
from videosynth.errors import ConfigError, VideoSynthError
from videosynth.train.config import build_run_config
from videosynth.train.families import FAMILIES

ROOT = Path(__file__).parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "runs-v0"
TINY = ["--config", ROOT / "configs" / "videogan" / "demo-32x32x16.yaml", "--set", "model.preset=tiny",
        "--set", "data.size=16", "--set", "data.frames=4", "--set", "data.num_samples=32",
        "--set", "train.batch_size=4", "--set", "train.sample_every=0", "--set", "train.device=cpu", "--no-progress"]
PROPERTY = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def cli(*args, preexec_fn=None, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "videosynth.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, preexec_fn=preexec_fn)


def popen(*args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "videosynth.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def one_line_error(res, after_progress: bool = False) -> str:
    """The one ``error:`` line of a failed command (``after_progress``: progress lines may come first)."""
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    if after_progress:
        lines = lines[-1:] if lines and not any(line.startswith("error: ") for line in lines[:-1]) else lines
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    return lines[0]


def wait_for_lock(run: Path, pid: int, timeout: float = 120) -> None:
    """Until process ``pid`` holds the run's lock (its training loop is about to start)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if json.loads((run / ".lock").read_text())["pid"] == pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never locked {run}")


def wait_for_checkpoint_write(run: Path, timeout: float = 60) -> None:
    """Until a checkpoint's temporary folder exists (a write is under way)."""
    deadline = time.time() + timeout
    root = run / "checkpoints"
    while time.time() < deadline:
        try:
            if any(entry.name.startswith(".tmp-") for entry in os.scandir(root)):
                return
        except OSError:
            pass
        time.sleep(0.0002)
    raise AssertionError(f"no checkpoint write seen in {root}")


def temp_leftovers(run: Path) -> list[Path]:
    return [p for p in run.rglob("*") if ".tmp-" in p.name]


def log_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- every number checked


def numeric_fields():
    """(family, dotted key, annotation, Range) of every int / float field of every family's run config."""
    out = []

    def walk(cls, prefix, family):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            tp = hints[f.name]
            args = typing.get_args(tp)
            inner = [a for a in args if a is not type(None)] if args else [tp]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{f.name}.", family)
            elif any(a in (int, float) for a in inner) or any(typing.get_origin(a) in (tuple, list) and
                                                             int in typing.get_args(a) for a in inner):
                out.append((family, f"{prefix}{f.name}", tp, f.metadata.get("check")))

    for name, family in FAMILIES.items():
        walk(family.run_config, "", name)
    return out


FIELDS = numeric_fields()


def test_every_numeric_field_declares_its_range():
    assert len(FIELDS) > 60
    missing = [f"{family}: {key}" for family, key, _, check in FIELDS if not isinstance(check, Range)]
    assert not missing, f"numeric config fields without a declared range: {missing}"


def _type_ok(value, tp) -> tuple[bool, object]:
    args = typing.get_args(tp)
    kinds = [a for a in args if a is not type(None)] if typing.get_origin(tp) in (typing.Union, getattr(
        __import__("types"), "UnionType")) else [tp]
    if value is None:
        return type(None) in args, value
    for kind in kinds:
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return True, value
        if kind is int and isinstance(value, float) and value.is_integer():
            return True, int(value)
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
    return False, value


BAD_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, -0.5, 1e-12, 1e300, float("nan"), float("inf"), True, "ten", None, [3], {"a": 1}]),
)


@pytest.mark.parametrize("family, key, tp, check", [f for f in FIELDS if typing.get_origin(f[2]) not in (tuple, list)],
                         ids=lambda v: v if isinstance(v, str) else "")
@PROPERTY
@given(value=BAD_NUMBERS)
def test_numeric_config_fields_refuse_bad_values_in_one_line(family, key, tp, check, value):
    section, field = key.rsplit(".", 1) if "." in key else ("", key)
    data = {"family": family}
    node = data
    for part in key.split(".")[:-1]:
        node = node.setdefault(part, {})
    node[field] = value
    ok_type, coerced = _type_ok(value, tp)
    in_range = ok_type and (coerced is None or check(coerced) is None)
    try:
        build_run_config(FAMILIES[family].run_config, data)
    except VideoSynthError as exc:
        message = str(exc)
        assert "\n" not in message
        if not in_range:
            assert key in message, message
        return
    assert in_range, f"{key}={value!r} was accepted"


@pytest.mark.parametrize("family, key, tp, check", [f for f in FIELDS if typing.get_origin(f[2]) in (tuple, list)],
                         ids=lambda v: v if isinstance(v, str) else "")
@PROPERTY
@given(items=st.lists(st.integers(min_value=-(2**40), max_value=2**40), min_size=1, max_size=3))
def test_numeric_list_fields_check_every_item(family, key, tp, check, items):
    section, field = key.split(".")
    try:
        build_run_config(FAMILIES[family].run_config, {"family": family, section: {field: items}})
    except VideoSynthError as exc:
        assert "\n" not in str(exc)
        return
    assert check(items) is None, f"{key}={items!r} was accepted"


@pytest.mark.parametrize("key", ["train.batch_size", "train.ckpt_every", "train.log_every", "optim.lr_g",
                                 "train.steps", "model.g_base", "condition.dropout", "data.frames"])
@PROPERTY
@given(value=st.one_of(st.integers(max_value=0), st.sampled_from(["-1", "-5", ".nan", ".inf", "-.inf", "0", "1e999"])))
def test_set_overrides_are_checked_like_config_files(key, value):
    data = apply_overrides({"family": "videogan"}, [f"{key}={value}"])
    if key == "condition.dropout" and str(value) == "0":
        build_run_config(FAMILIES["videogan"].run_config, data)  # dropout 0 is valid
        return
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_run_config(FAMILIES["videogan"].run_config, data)


SAMPLE_FLAGS = [  # (fixture run, flag, strategy of bad values)
    ("videogan", "--num", st.integers(max_value=0)),
    ("videogan", "--batch-size", st.integers(max_value=0)),
    ("videogan", "--fps", st.one_of(st.integers(max_value=0), st.integers(min_value=241))),
    ("videogan", "--seed", st.integers(max_value=-1)),
    ("videogan", "--checkpoint", st.text(min_size=1).filter(lambda s: not s.strip().isdigit() and "\x00" not in s)),
    ("mocogan", "--frames", st.integers(max_value=0)),
    ("mocogan", "--interpolate", st.integers(max_value=0)),
    ("mocogan", "--action", st.integers(max_value=-1)),
    ("transformer", "--temperature", st.one_of(st.floats(max_value=-1e-9), st.just(float("nan")),
                                               st.just(float("-inf")))),
    ("transformer", "--top-k", st.integers(max_value=0)),
    ("transformer", "--top-p", st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.000001),
                                         st.just(float("nan")))),
    ("transformer", "--guidance", st.one_of(st.floats(max_value=-1e-9), st.just(float("inf")))),
    ("transformer", "--context-frames", st.integers(max_value=-1)),
    ("transformer", "--prime-frames", st.integers(max_value=0)),
]


@pytest.mark.parametrize("run, flag, values", SAMPLE_FLAGS, ids=[f"{r}{f}" for r, f, _ in SAMPLE_FLAGS])
@PROPERTY
@given(data=st.data())
def test_sample_options_refuse_bad_values_in_one_line(run, flag, values, data, tmp_path, capsys):
    value = data.draw(values)
    out = tmp_path / "s.mp4"
    args = ["sample", str(FIXTURES / run), f"{flag}={value}", "--out", str(out)] + (["--num", "2"] if flag != "--num" else [])
    try:
        code = cli_main(args)
    except SystemExit as exc:  # argparse's own refusals (not an int, ...) are one line too
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert not out.exists()


# ----------------------------------------------------------------------------- resumes that cannot brick


@pytest.fixture()
def tiny_run(tmp_path):
    run = tmp_path / "run"
    res = cli("train", *TINY, "--steps", "2", "--run-dir", run, "--set", "train.keep_last=2")
    assert res.returncode == 0, res.stderr[-3000:]
    return run


def test_failed_resume_leaves_the_run_as_it_was(tiny_run, tmp_path):
    before = {p.name: p.read_bytes() for p in tiny_run.iterdir() if p.is_file()}
    line = one_line_error(cli("train", "--resume", tiny_run, "--set", "model.g_base=8"))
    assert "model.g_base" in line and "new run" in line
    assert "model.preset" in one_line_error(cli("train", "--resume", tiny_run, "--set", "model.preset=small"))
    assert "not both" in one_line_error(cli("train", "--resume", tiny_run, "--config", TINY[1]))
    assert "train.steps=-3" in one_line_error(cli("train", "--resume", tiny_run, "--set", "train.steps=-3"))
    after = {p.name: p.read_bytes() for p in tiny_run.iterdir() if p.is_file()}
    assert after == before  # nothing in the run changed
    # and the run still resumes and samples
    res = cli("train", "--resume", tiny_run, "--steps", "3", "--no-progress")
    assert res.returncode == 0 and "done:" in res.stdout, res.stderr[-3000:]
    res = cli("sample", tiny_run, "--num", "2", "--out", tmp_path / "s.mp4")
    assert res.returncode == 0 and (tmp_path / "s.mp4").stat().st_size > 0, res.stderr[-3000:]
    assert log_steps(tiny_run) == sorted(set(log_steps(tiny_run)))


def test_no_run_directory_is_left_behind_by_a_bad_config(tmp_path):
    run = tmp_path / "never"
    one_line_error(cli("train", *TINY, "--set", "train.batch_size=0", "--run-dir", run))
    one_line_error(cli("train", *TINY, "--set", "loss.perceptual_weight=1", "--run-dir", run))  # no LPIPS weights
    assert not run.exists()
    file = tmp_path / "a-file"
    file.write_text("x")
    assert "is a file" in one_line_error(cli("train", *TINY, "--run-dir", file))


# ----------------------------------------------------------------------------- one writer per run


def test_a_second_writer_is_refused_and_the_first_finishes_intact(tmp_path):
    run = tmp_path / "run"
    first = popen("train", *TINY, "--steps", "2000", "--run-dir", run, "--set", "train.log_every=1")
    try:
        wait_for_lock(run, first.pid)
        line = one_line_error(cli("train", *TINY, "--steps", "5", "--run-dir", run))
        assert f"PID {first.pid}" in line and "in use" in line
        line = one_line_error(cli("train", "--resume", run, "--steps", "5"))
        assert f"PID {first.pid}" in line
        assert first.poll() is None, "the first writer should still be training"
        out, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0 and "done:" in out, err[-3000:]
    assert log_steps(run) == list(range(1, 2001))
    _, meta = find_checkpoint(run)
    assert meta["step"] == 2000 and meta["config"]["train"]["steps"] == 2000
    # the lock went with the first writer: the run can be resumed now
    assert "already at step 2000" in one_line_error(cli("train", "--resume", run, "--steps", "5"))


# ----------------------------------------------------------------------------- interrupted runs


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_training_exits_non_zero_and_says_how_to_resume(tmp_path, sig, code):
    run = tmp_path / "run"
    proc = popen("train", *TINY, "--steps", "100000", "--run-dir", run)
    try:
        wait_for_lock(run, proc.pid)
        time.sleep(1.0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, err[-3000:]
    assert "done" not in out
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted at step ") and f"videosynth train --resume {run}" in last
    _, meta = find_checkpoint(run)
    assert 0 < meta["step"] < 100000


# ----------------------------------------------------------------------------- crashes and full disks


def test_kill_9_during_checkpoint_writes_never_breaks_the_run(tiny_run):
    """SIGKILL at 20 random moments of a training that checkpoints every step, resuming each time."""
    rng = random.Random(0)
    mid_write = 0
    for trial in range(20):
        proc = popen("train", "--resume", tiny_run, "--steps", "100000", "--no-progress",
                     "--set", "train.ckpt_every=1", "--set", "train.log_every=1", "--set", "train.keep_last=2")
        try:
            wait_for_lock(tiny_run, proc.pid)
            if trial % 4 == 3:  # now and then anywhere in a step
                time.sleep(rng.uniform(0.05, 0.4))
            else:  # mostly inside a checkpoint write: as soon as its temp folder appears, plus a little
                wait_for_checkpoint_write(tiny_run)
                time.sleep(rng.uniform(0.0, 0.001))
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        finally:
            proc.kill()
        mid_write += any(p.parent.name == "checkpoints" for p in temp_leftovers(tiny_run))
        path, meta = find_checkpoint(tiny_run)  # a valid checkpoint always loads
        torch.load(path / "state.pt", weights_only=True)
    last = find_checkpoint(tiny_run)[1]["step"]
    res = cli("train", "--resume", tiny_run, "--steps", str(last + 3), "--no-progress",
              "--set", "train.ckpt_every=1", "--set", "train.log_every=1", "--set", "train.keep_last=2")
    assert res.returncode == 0, res.stderr[-3000:]
    steps = log_steps(tiny_run)
    assert steps == sorted(set(steps)) and steps[-1] == last + 3  # no step logged twice
    assert not temp_leftovers(tiny_run)
    assert len(checkpoint_dirs(tiny_run)) <= 2
    print(f"{mid_write} of 20 kills left a partial checkpoint folder behind")
    assert mid_write >= 5, f"only {mid_write} of 20 kills landed during a checkpoint write"


def _file_size_limit(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_is_one_line_and_the_run_resumes_once_space_is_back(tiny_run):
    # every file may hold 40 KB: the weights fit, the optimiser state (~90 KB) does not
    res = cli("train", "--resume", tiny_run, "--steps", "4", "--no-progress", preexec_fn=_file_size_limit(40_000))
    line = one_line_error(res, after_progress=True)
    assert "could not write checkpoint" in line and "step-000004" in line and "freed" in line
    assert not temp_leftovers(tiny_run)
    assert find_checkpoint(tiny_run)[1]["step"] == 2  # the previous checkpoint is intact
    res = cli("train", "--resume", tiny_run, "--steps", "4", "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    assert find_checkpoint(tiny_run)[1]["step"] == 4
    assert log_steps(tiny_run) == sorted(set(log_steps(tiny_run)))


def test_stale_temps_from_a_killed_writer_are_removed_at_the_next_start(tiny_run):
    (tiny_run / "checkpoints" / ".tmp-step-000009-4242").mkdir()
    (tiny_run / "checkpoints" / ".tmp-step-000009-4242" / "model.safetensors").write_bytes(b"x" * 1000)
    (tiny_run / ".loss.tmp-4242.png").write_bytes(b"x")
    with open(tiny_run / "log.jsonl", "a") as f:
        f.write('{"step": 99, "loss": 1.0}\n{"step": 100, "lo')  # rows past the checkpoint, a torn line
    res = cli("train", "--resume", tiny_run, "--steps", "3", "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    assert not temp_leftovers(tiny_run)
    assert log_steps(tiny_run) == sorted(set(log_steps(tiny_run))) and max(log_steps(tiny_run)) == 3


# ----------------------------------------------------------------------------- bounded work


def test_a_fifo_in_a_dataset_folder_does_not_hang_the_scan(tmp_path):
    from media import write_numbered

    folder = tmp_path / "videos"
    folder.mkdir()
    write_numbered(folder / "a.mp4", num_frames=8)
    os.mkfifo(folder / "b.mp4")
    res = cli("data", "scan", folder, "--frames", "4", timeout=60)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 videos, 1 usable, 1 broken" in res.stdout
    assert "b.mp4: not a regular file" in res.stdout


def test_a_hung_probe_is_given_up(tmp_path, monkeypatch):
    from videosynth.data import scan as scan_mod

    monkeypatch.setattr(scan_mod, "check_video", lambda *a, **k: time.sleep(5))
    assert "did not finish" in scan_mod.check_video_bounded(tmp_path / "x.mp4", 1, timeout=0.2)


def test_streamed_sampling_is_the_same_clips_in_bounded_batches(tmp_path):
    import videosynth

    pipe = videosynth.load(FIXTURES / "videogan")
    batches = list(pipe.stream(7, seed=3, batch_size=3))
    assert [b.shape[0] for b in batches] == [3, 3, 1]
    assert torch.equal(torch.cat(batches), pipe(7, seed=3, batch_size=3))
    res = cli("sample", FIXTURES / "videogan", "--num", "5", "--each", "--no-grid", "--batch-size", "2",
              "--out", tmp_path / "s.mp4")
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"s-{i:03d}.mp4" for i in range(5)]
    assert "/proc/no-such-dir" in one_line_error(cli("sample", FIXTURES / "videogan", "--num", "1",
                                                     "--out", "/proc/no-such-dir/s.mp4"))
    assert "too many clips" in one_line_error(cli("sample", FIXTURES / "videogan", "--num", "100000",
                                                  "--out", tmp_path / "g.mp4"))
