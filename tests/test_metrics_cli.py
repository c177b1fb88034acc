"""`videosynth eval ...` and `videosynth weights` end to end, with tiny TorchScript detectors written here."""

import argparse
import json

import numpy as np
import pytest
import torch

from videosynth.commands import eval as eval_cmd
from videosynth.commands import weights as weights_cmd
from videosynth.errors import MissingWeightsError, VideoSynthError

from test_metrics_detectors import SmallI3D, _write

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run_cli(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    eval_cmd.register(sub)
    weights_cmd.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


SMALL = ["--num", "6", "--frames", "4", "--size", "16", "--batch-size", "3"]


def test_fvd_between_builtin_datasets_with_stats_cache(tmp_path, capsys):
    i3d = _write(SmallI3D, tmp_path / "i3d_torchscript.pt")
    out, stats = tmp_path / "fvd.json", tmp_path / "ref.npz"
    assert run_cli(["eval", "fvd", "bouncing-shapes", "moving-digits", *SMALL, "--weights", str(i3d),
                    "--json", str(out), "--save-stats", str(stats)]) == 0
    text = capsys.readouterr().out
    assert "FVD:" in text and "protocol: detector=i3d" in text and "warning: only 6 real samples" in text
    data = json.loads(out.read_text())
    assert data["protocol"]["frames"] == 4 and data["protocol"]["size"] == 16 and data["num_fake"] == 6
    assert data["protocol"]["detector_sha256"] and data["warnings"]

    # the cached reference gives the same number; another protocol is refused
    assert run_cli(["eval", "fvd", str(stats), "moving-digits", *SMALL, "--weights", str(i3d),
                    "--json", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["value"] == pytest.approx(data["value"], rel=1e-6)
    with pytest.raises(VideoSynthError, match="frames: stats have 4, asked for 8"):
        run_cli(["eval", "fvd", str(stats), "moving-digits", "--num", "6", "--frames", "8", "--size", "16",
                 "--weights", str(i3d)])


def test_missing_weights_exit_code_and_message(tmp_path, capsys):
    from videosynth.cli import main

    rc = main(["eval", "fvd", "bouncing-shapes", "moving-digits", *SMALL])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert "i3d_torchscript.pt" in err and "searched" in err and "dropbox" in err
    with pytest.raises(MissingWeightsError):
        run_cli(["eval", "is", "moving-digits", *SMALL])


def test_unknown_source_is_a_clear_error(tmp_path):
    i3d = _write(SmallI3D, tmp_path / "i3d_torchscript.pt")
    with pytest.raises(VideoSynthError, match="not a .npz statistics file"):
        run_cli(["eval", "kvd", "bouncing-shapes", str(tmp_path / "nope"), *SMALL, "--weights", str(i3d)])


def test_track_recon_and_folder_source(tmp_path, capsys):
    from videosynth.io import write_video

    assert run_cli(["eval", "track", "bouncing-shapes", "bouncing-shapes", "--num", "4", "--size", "32",
                    "--json", str(tmp_path / "t.json")]) == 0
    text = capsys.readouterr().out
    assert "valid_share" in text
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["real"]["valid_share"] == 1.0 and "gap" in data["comparison"]["accel_residual"]

    assert run_cli(["eval", "recon", "moving-digits", "moving-digits", "--num", "2", "--size", "16",
                    "--frames", "4", "--json", str(tmp_path / "r.json")]) == 0
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["psnr"]["value"] == "inf" and rec["ssim"]["value"] == pytest.approx(1.0)

    folder = tmp_path / "videos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_video(folder / f"v{i}.gif", rng.integers(0, 255, (10, 16, 16, 3), dtype=np.uint8))
    assert run_cli(["eval", "track", "bouncing-shapes", str(folder), "--num", "3", "--size", "16",
                    "--frames", "8"]) == 0
    assert "valid_share" in capsys.readouterr().out


def test_train_probe_then_fpd_and_weights_listing(tmp_path, monkeypatch, capsys):
    probe = tmp_path / "w" / "probe-bouncing-shapes.safetensors"
    assert run_cli(["eval", "train-probe", "bouncing-shapes", "--out", str(probe), "--steps", "2",
                    "--batch-size", "4", "--preset", "test", "--num-samples", "8", "--data-size", "16"]) == 0
    assert "sha256" in capsys.readouterr().out
    assert run_cli(["eval", "fpd", "bouncing-shapes", "moving-digits", *SMALL, "--weights", str(probe)]) == 0
    assert "not FVD" in capsys.readouterr().out

    monkeypatch.setenv("VIDEOSYNTH_WEIGHTS", str(probe.parent))
    assert run_cli(["weights", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["probe-bouncing-shapes"]["source"] == "env" and rows["probe-bouncing-shapes"]["sha256"]
    assert rows["i3d"]["found"] is None and any("i3d_torchscript.pt" in p for p in rows["i3d"]["searched"])
