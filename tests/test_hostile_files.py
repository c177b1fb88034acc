"""Every file a run reads may be damaged or hostile: configs, weights, caches, manifests, folders.

Each test builds the damaged or hostile input the way a user (or an attacker) would and checks
the command refuses it in one line, skips it with a warning, or goes on without an optional
cache, and that nothing outside what the command owns is read, deleted or left half-written.
The runs are the tiny fixture runs (``fixtures/runs-v0``), copied before they are damaged.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from videosynth.cli import main as cli_main
from videosynth.errors import CheckpointError, ConfigError, DataError

FIXTURES = Path(__file__).parent / "fixtures" / "runs-v0"


def cli(*args, preexec_fn=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "videosynth.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, preexec_fn=preexec_fn)


def one_line_error(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("WARNING")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    assert "Traceback" not in err
    return lines[0]


def run_cli(args, capsys) -> tuple[int, str, str]:
    """``videosynth ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli_main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def runs(tmp_path) -> Path:
    """A private copy of the fixture runs (the transformer's tokenizer_run is its sibling vqvae)."""
    root = tmp_path / "runs"
    shutil.copytree(FIXTURES, root, ignore=shutil.ignore_patterns("*.safetensors.tmp*"))
    return root


def put_nan(run: Path, key_part: str) -> str:
    """Write NaN into the first floating tensor of ``run``'s checkpoint whose key holds ``key_part``,
    and update the recorded hash (as a tool that rewrote the file would): the file itself looks valid."""
    from safetensors.torch import load_file, save_file

    from videosynth.checkpoint import sha256

    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    meta = json.loads((ckpt / "meta.json").read_text())
    for name in [n for n in ("model.safetensors", "ema.safetensors") if (ckpt / n).is_file()]:
        tensors = load_file(str(ckpt / name))
        key = next(k for k, v in tensors.items() if key_part in k and v.is_floating_point())
        tensors[key] = torch.full_like(tensors[key], float("nan"))
        save_file(tensors, str(ckpt / name))
        meta["files"][name] = sha256(ckpt / name)
    (ckpt / "meta.json").write_text(json.dumps(meta))
    return key


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name or ".old-" in p.name]


def write_videos(folder: Path, names: list[str], frames: int = 8) -> None:
    from media import write_numbered

    for name in names:
        path = folder / os.fsdecode(name) if isinstance(name, bytes) else folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_numbered(path, num_frames=frames)


# ----------------------------------------------------------------------------- 1. demo --fresh


def test_demo_fresh_refuses_a_folder_that_is_not_a_demo_run(tmp_path, capsys):
    folder = tmp_path / "p"
    (folder / "chapters").mkdir(parents=True)
    (folder / "thesis.txt").write_text("x")
    (folder / "chapters" / "one.tex").write_text("y")
    fresh = ["demo", "--fresh", "--steps", "1", "--tokenizer-steps", "1", "--set", "data.num_samples=8",
             "--set", "model.preset=tiny", "--tokenizer-set", "model.preset=tiny", "--set", "train.sample_every=0",
             "--tokenizer-set", "train.sample_every=0", "--device", "cpu", "--out"]
    line = one_line_error(*run_cli(fresh + [folder], capsys)[::2])
    assert "not one" in line and "thesis.txt" in line and "nothing was deleted" in line
    assert (folder / "thesis.txt").read_text() == "x" and (folder / "chapters" / "one.tex").is_file()
    assert sorted(p.name for p in folder.iterdir()) == ["chapters", "thesis.txt"]  # no lock file written either

    # a folder of the demo's own names but no run in it (only videos/) is not a run either
    videos = tmp_path / "footage"
    (videos / "videos").mkdir(parents=True)
    (videos / "videos" / "holiday.mp4").write_bytes(b"x")
    one_line_error(*run_cli(fresh + [videos], capsys)[::2])
    assert (videos / "videos" / "holiday.mp4").is_file()


def test_demo_fresh_deletes_a_demo_runs_files_and_nothing_else(tmp_path):
    from videosynth.commands.demo import demo_run_entries

    out = tmp_path / "demo"
    for sub in (out, out / "tokenizer"):
        (sub / "checkpoints" / "step-000002").mkdir(parents=True)
        (sub / "config.yaml").write_text("family: vqvae\n")
        (sub / "log.jsonl").write_text("")
    (out / "videos").mkdir()
    (out / "demo-metrics.json").write_text("{}")
    (out / ".loss.tmp-99.png").write_text("")
    assert sorted(p.name for p in demo_run_entries(out)) == sorted(
        [".loss.tmp-99.png", "checkpoints", "config.yaml", "demo-metrics.json", "log.jsonl", "tokenizer", "videos"])
    (out / "tokenizer" / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="notes.txt"):
        demo_run_entries(out)


# ----------------------------------------------------------------------------- 2, 14. encode caches


ENCODE = ["--split", "all", "--shard-size", "4", "--batch-size", "4", "--device", "cpu", "--no-progress"]


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_failed_encode_leaves_the_old_cache_whole_and_nothing_half_written(runs, tmp_path):
    from videosynth.data.tokens import TokenDataset

    enc = tmp_path / "enc"
    res = cli("encode", runs / "vqvae", "bouncing-shapes", "--out", enc, *ENCODE, "--set", "num_samples=12")
    assert res.returncode == 0, res.stderr[-3000:]
    before = {p.name: p.read_bytes() for p in enc.iterdir()}
    assert len(before) == 4  # index.json + 3 shards
    # a bigger encode into the same folder whose index does not fit on the disk: shards first, index last
    index_size = len(before["index.json"])
    res = cli("encode", runs / "vqvae", "bouncing-shapes", "--out", enc, *ENCODE, "--set", "num_samples=120",
              "--set", "object_size=4", preexec_fn=_limit_file_size(index_size + 2000))
    line = one_line_error(res.returncode, res.stderr)
    assert "could not write the cache" in line and "still holds the cache it held before" in line
    assert {p.name: p.read_bytes() for p in enc.iterdir()} == before  # the old cache, whole
    assert not leftovers(tmp_path)
    assert len(TokenDataset(enc)) == 12


def test_a_cache_whose_shards_do_not_match_its_index_is_refused(runs, tmp_path, capsys):
    from videosynth.data.tokens import TokenDataset

    old, new = tmp_path / "old", tmp_path / "new"
    for out, seed in ((old, 0), (new, 1)):
        code, _, err = run_cli(["encode", runs / "vqvae", "bouncing-shapes", "--out", out, *ENCODE,
                                "--set", "num_samples=8", "--set", f"seed={seed}"], capsys)
        assert code == 0, err
    assert (old / "shard-00000.safetensors").read_bytes() != (new / "shard-00000.safetensors").read_bytes()
    shutil.copy(new / "shard-00000.safetensors", old / "shard-00000.safetensors")  # another encode's shard
    with pytest.raises(DataError, match="does not match"):
        TokenDataset(old)


def test_encode_on_a_full_disk_is_one_line_and_leaves_no_folder(runs, tmp_path, capsys):
    out = tmp_path / "parent" / "enc"
    res = cli("encode", runs / "vqvae", "bouncing-shapes", "--out", out, *ENCODE, "--set", "num_samples=8",
              preexec_fn=_limit_file_size(100))
    line = one_line_error(res.returncode, res.stderr)
    assert "could not write the cache" in line and "was not written" in line
    assert not out.exists() and not leftovers(tmp_path)
    # and a folder that holds something else is never replaced by a cache
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    code, _, err = run_cli(["encode", runs / "vqvae", "bouncing-shapes", "--out", tmp_path / "mine", *ENCODE], capsys)
    assert "not a latent cache" in one_line_error(code, err)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


# ----------------------------------------------------------------------------- 5. non-finite weights


def test_non_finite_weights_are_refused_at_load_and_nothing_is_written(runs, tmp_path, capsys):
    put_nan(runs / "vqvae", "decoder")
    out = tmp_path / "s.mp4"
    code, _, err = run_cli(["sample", runs / "transformer", "--num", "2", "--out", out, "--device", "cpu"], capsys)
    line = one_line_error(code, err)
    assert "non-finite weights" in line and "vqvae" in line
    assert not out.exists()
    code, out_text, err = run_cli(["reconstruct", runs / "vqvae", "bouncing-shapes", "--num", "2",
                                   "--out", tmp_path / "r.mp4", "--device", "cpu"], capsys)
    assert "non-finite weights" in one_line_error(code, err) and "PSNR" not in out_text
    assert not (tmp_path / "r.mp4").exists()
    put_nan(runs / "videogan", "")
    code, _, err = run_cli(["sample", runs / "videogan", "--num", "2", "--out", out], capsys)
    assert "non-finite weights" in one_line_error(code, err) and not out.exists()


def test_a_generated_batch_that_is_not_finite_is_never_written(runs, tmp_path, capsys, monkeypatch):
    from videosynth.pipelines.gan import VideoGANPipeline

    real = VideoGANPipeline.generate

    def broken(self, *args, **kwargs):
        clips = real(self, *args, **kwargs)
        clips[0, 0, 0, 0, 0] = float("nan")
        return clips

    monkeypatch.setattr(VideoGANPipeline, "generate", broken)
    out = tmp_path / "s.mp4"
    code, _, err = run_cli(["sample", runs / "videogan", "--num", "2", "--out", out], capsys)
    assert "non-finite values" in one_line_error(code, err)
    assert not out.exists()


# ----------------------------------------------------------------------------- 6. paths outside the root


def test_ucf_split_lines_and_manifest_rows_outside_the_root_are_refused(tmp_path):
    from videosynth.data import VideoFolder
    from videosynth.data.layouts import ucf101_layout

    root = tmp_path / "ucf"
    write_videos(root, ["Box/v_Box_g01_c01.avi", "Box/v_Box_g02_c01.avi"])
    write_videos(tmp_path, ["secret.avi"])
    (root / "classInd.txt").write_text("1 Box\n")
    (root / "testlist01.txt").write_text("Box/v_Box_g02_c01.avi\n")
    (root / "trainlist01.txt").write_text("Box/v_Box_g01_c01.avi 1\nBox/../../secret.avi 1\n")
    with pytest.raises(DataError, match=r"trainlist01.txt:2 names .*secret.avi, which lies outside the dataset root"):
        VideoFolder(root, frames=4, size=16, split="all", layout=ucf101_layout(root), progress=False)

    for bad in ("../secret.avi", str(tmp_path / "secret.avi"), "Box/../../secret.avi"):
        (root / "m.csv").write_text(f"path,label\nBox/v_Box_g01_c01.avi,Box\n{bad},Box\n")
        with pytest.raises(DataError, match="outside the dataset root"):
            VideoFolder(root, frames=4, size=16, split="all", manifest=root / "m.csv", progress=False)

    # a symlink the user placed inside the root is a path inside it: allowed (the lexical path decides)
    (root / "Linked").mkdir()
    (root / "Linked" / "elsewhere.avi").symlink_to(tmp_path / "secret.avi")
    (root / "m.csv").write_text("path,label\nBox/v_Box_g01_c01.avi,Box\nLinked/elsewhere.avi,Linked\n"
                                f"{root / 'Box' / 'v_Box_g02_c01.avi'},Box\n")
    ds = VideoFolder(root, frames=4, size=16, split="all", manifest=root / "m.csv", progress=False)
    assert len(ds) == 3


# ----------------------------------------------------------------------------- 7. misleading metrics


def test_eval_refuses_fewer_clip_pairs_than_asked_and_tracking_without_ground_truth(tmp_path, capsys):
    folder = tmp_path / "one"
    write_videos(folder, ["only.mp4"])
    code, out, err = run_cli(["eval", "recon", folder, folder, "--num", "4", "--frames", "4", "--size", "16"], capsys)
    line = one_line_error(code, err)
    assert "gave 1 clip pair(s), --num asks for 4" in line and "PSNR" not in out.upper()

    real = tmp_path / "real"
    write_videos(real, ["a.mp4", "b.mp4", "c.mp4"])
    code, out, err = run_cli(["eval", "track", real, "bouncing-shapes", "--num", "3", "--frames", "4", "--size",
                              "16"], capsys)
    assert "ground truth" in one_line_error(code, err) and "valid_share" not in out


# ----------------------------------------------------------------------------- 8, 10. configs


def _alias_bomb(levels: int) -> str:
    lines = ["family: videogan", "a: &a [x, x, x, x, x, x, x, x, x]"]
    prev = "a"
    for i in range(levels):
        name = f"l{i}"
        lines.append(f"{name}: &{name} [{', '.join('*' + prev for _ in range(9))}]")
        prev = name
    return "\n".join(lines + [f"data:\n  frames: *{prev}"]) + "\n"  # an int key: its message quotes the value


@pytest.mark.parametrize("text, match", [
    (_alias_bomb(5), "anchors and aliases"),  # 9^6 nodes once expanded
    ("[" * 100000, "nested deeper than"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary", "not UTF-8 text"),
])
def test_a_hostile_run_config_is_one_short_line(runs, tmp_path, capsys, text, match):
    config = runs / "videogan" / "config.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, _, err = run_cli(["sample", runs / "videogan", "--num", "1", "--out", tmp_path / "s.mp4"], capsys)
    line = one_line_error(code, err)
    assert match in line and str(config) in line and len(err) < 600


def test_error_lines_are_bounded(capsys, monkeypatch):
    from videosynth.commands import sample

    def loud(args):
        raise ConfigError("x" * 100_000 + "\nsecond line")

    monkeypatch.setattr(sample, "run", loud)
    code, _, err = run_cli(["sample", "somewhere"], capsys)
    line = one_line_error(code, err)
    assert len(line) <= len("error: ") + 500 and line.endswith("...")


def test_serve_skips_a_run_whose_config_is_damaged(runs, tmp_path, capsys, monkeypatch):
    from videosynth.web import app as web_app

    served = {}

    class App:
        def launch(self, **kwargs):
            return None

    def build_app(runs_, limits, fps):
        served["runs"] = [r.name for r in runs_]
        return App()

    monkeypatch.setattr(web_app, "build_app", build_app)
    deep = tmp_path / "deep"
    shutil.copytree(runs / "videogan", deep)
    (deep / "config.yaml").write_text("[" * 100000)
    binary = tmp_path / "binary"
    shutil.copytree(runs / "videogan", binary)
    (binary / "config.yaml").write_bytes(b"\xff\xfe\x00\x01")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    code, _, err = run_cli(["serve", deep, runs / "videogan", binary, "--port", port, "--device", "cpu"], capsys)
    assert code == 0, err
    assert served["runs"] == [str(runs / "videogan")]
    warnings = [line for line in err.splitlines() if line.startswith("warning: skipping")]
    assert len(warnings) == 2 and "nested deeper" in warnings[0] and "not UTF-8" in warnings[1]


# ----------------------------------------------------------------------------- 11, 12. names and caches


BAD_NAME = b"a/bad\xff\xfe.mp4"


def test_a_file_name_that_is_not_utf8_is_reported_and_the_folder_stays_usable(tmp_path, capsys):
    from videosynth.data import VideoFolder

    folder = tmp_path / "videos"
    write_videos(folder, ["a/one.mp4", "a/two.mp4", "b/three.mp4", "b/four.mp4", BAD_NAME])
    manifest = tmp_path / "m.csv"
    code, out, err = run_cli(["data", "scan", folder, "--frames", "4", "--manifest-out", manifest], capsys)
    assert code == 0, err
    assert "5 videos, 4 usable, 1 broken" in out and "a/bad\\xff\\xfe.mp4: its name is not valid UTF-8" in out
    assert len(manifest.read_text(encoding="utf-8").splitlines()) == 5  # header + 4 rows
    assert not leftovers(tmp_path)
    ds = VideoFolder(folder, frames=4, size=16, split="train", val_fraction=0.5, max_broken_fraction=0.5,
                     progress=False)
    assert len(ds) + len(VideoFolder(folder, frames=4, size=16, split="val", val_fraction=0.5,
                                     max_broken_fraction=0.5, progress=False)) == 4


def test_an_unwritable_cache_folder_warns_and_the_command_goes_on(tmp_path):
    folder = tmp_path / "videos"
    write_videos(folder, ["a.mp4", "b.mp4"])
    not_a_folder = tmp_path / "cache-is-a-file"
    not_a_folder.write_text("x")
    res = cli("data", "scan", folder, "--frames", "4", env={"XDG_CACHE_HOME": str(not_a_folder)})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 videos, 2 usable" in res.stdout
    assert res.stderr.count("could not write to the cache folder") == 1 and "error" not in res.stderr
    assert not leftovers(tmp_path)


# ----------------------------------------------------------------------------- 13. readers never write runs


def test_class_acc_keeps_its_probe_in_the_user_cache_not_in_the_run(runs, tmp_path, capsys):
    run = runs / "videogan"
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    args = ["eval", "class-acc", run, "--num", "1", "--probe-steps", "1", "--device", "cpu", "--no-progress"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "training a probe" in out
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "videosynth" / "probes"
    assert len(list(cache.glob("class-acc-*.safetensors"))) == 1
    code, out, err = run_cli(args, capsys)
    assert code == 0 and "training a probe" not in out, err  # the cached probe is reused


# ---- a two-stage run decodes with the tokenizer it was trained on, or refuses ----------------------


def _sample_tensor(run: Path, **kwargs) -> torch.Tensor:
    import videosynth

    return videosynth.load(run, device="cpu")(num=2, seed=0, label=0, **kwargs)


def test_a_runs_own_tokenizer_wins_over_one_in_the_working_directory(runs, tmp_path, monkeypatch):
    """The fixture prior names ``tokenizer_run: vqvae``; a *different* ``vqvae`` run in the working
    directory must not be used while the prior's own sibling exists."""
    expected = _sample_tensor(runs / "transformer")  # found next to the prior
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(runs / "vqvae", elsewhere / "vqvae")
    put_nan(elsewhere / "vqvae", "decoder")  # another tokenizer: its samples would be NaN (refused)
    monkeypatch.chdir(elsewhere)
    assert torch.equal(_sample_tensor(runs / "transformer"), expected)


def _tiny_two_stage(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny tokenizer with checkpoints at steps 1 and 2, and a prior trained on its step 2."""
    from videosynth.train.families import tiny_config
    from videosynth.train.run import run_training

    train = {"batch_size": 4, "log_every": 1, "ckpt_every": 1, "sample_every": 0, "keep_last": 3, "device": "cpu"}
    tok = run_training({**tiny_config("vqvae", "plain"), "train": {**train, "steps": 2}}, run_dir=tmp_path / "tok",
                       progress=False)
    prior = run_training({**tiny_config("transformer", "rich", tok), "train": {**train, "steps": 2}},
                         run_dir=tmp_path / "prior", progress=False)
    return tok, prior


def test_a_prior_records_its_tokenizer_and_refuses_another_checkpoint_or_other_weights(tmp_path):
    import yaml

    from videosynth.checkpoint import sha256

    tok, prior = _tiny_two_stage(tmp_path)
    saved = yaml.safe_load((prior / "config.yaml").read_text())
    step2 = tok / "checkpoints" / "step-000002"
    assert saved["tokenizer_checkpoint"] == "step-000002"
    assert saved["tokenizer_sha256"] == json.loads((step2 / "meta.json").read_text())["files"]["model.safetensors"]
    before = _sample_tensor(prior)
    # the newest tokenizer checkpoint is damaged: no quiet fallback to step 1
    weights = (step2 / "model.safetensors").read_bytes()
    (step2 / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match="step-000002"):
        _sample_tensor(prior)
    # step 2 rewritten with step 1's weights (a valid checkpoint, other weights): refused by hash
    step1 = tok / "checkpoints" / "step-000001"
    shutil.copy(step1 / "model.safetensors", step2 / "model.safetensors")
    meta = json.loads((step2 / "meta.json").read_text())
    meta["files"]["model.safetensors"] = sha256(step2 / "model.safetensors")
    (step2 / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="weights differ"):
        _sample_tensor(prior)
    # and a resume refuses to train on it
    from videosynth.train.run import run_training

    with pytest.raises(CheckpointError, match="weights differ"):
        run_training(None, ["train.steps=3"], resume=prior, progress=False)
    # the right weights back: the same samples as before
    (step2 / "model.safetensors").write_bytes(weights)
    meta["files"]["model.safetensors"] = sha256(step2 / "model.safetensors")
    (step2 / "meta.json").write_text(json.dumps(meta))
    assert torch.equal(_sample_tensor(prior), before)


# ---- a huge --prime is refused from its header ---------------------------------------------------------


def test_a_prime_video_over_the_size_cap_is_refused_before_it_is_decoded(runs, tmp_path, capsys, monkeypatch):
    import numpy as np

    from videosynth.io import video_read, write_video

    clip = tmp_path / "big.mp4"
    write_video(clip, np.zeros((4, 64, 64, 3), dtype=np.uint8), fps=8)
    decoded = []
    monkeypatch.setattr(video_read, "_decode_indices", lambda *a, **k: decoded.append(a) or [])
    code, _, err = run_cli(["sample", runs / "transformer", "--num", "1", "--prime", clip, "--prime-frames", "2",
                            "--prime-max-pixels", "1000", "--out", tmp_path / "p.mp4", "--device", "cpu"], capsys)
    line = one_line_error(code, err)
    assert "64x64" in line and "--prime-max-pixels" in line and decoded == []
    assert not (tmp_path / "p.mp4").exists()
