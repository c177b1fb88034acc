"""TensorBoard events beside log.jsonl, matplotlib loss plots, `videosynth plot` and the family benchmark figure."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from loop_helpers import TinyClips, TinyObjective, TinyRunConfig
from videosynth import plots
from videosynth.cli import main
from videosynth.errors import CheckpointError, ConfigError
from videosynth.train.loop import train
from videosynth.train.tensorboard import TB_DIR, TensorBoardLog, flat_hparams, scalar_tag

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def _cfg(**train_kw) -> TinyRunConfig:
    cfg = TinyRunConfig()
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train_kw))


class RichObjective(TinyObjective):
    """TinyObjective logging device tensors too: a loss, a gradient norm and a non-loss metric."""

    def train_step(self, batch, step):
        x = batch["video"]
        loss = ((self.net(x) - x.flatten(1)) ** 2).mean()
        norm = self.ctx.backward_step(loss, self.opt, self.net, name="net")
        self.ema.update(self.net)
        return {"loss": loss.detach(), "loss_recon": loss.detach() * 0.5, "grad_norm_net": norm,
                "psnr": 10.0 * torch.log10(4.0 / loss.detach())}


def _eval(objective, step):
    return {"score": step / 10, "count": step}


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / TB_DIR), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def _logged(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of every finite number in the rows, as log.jsonl holds them."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if key not in ("step", "time") and plots.is_number(value):
                out.setdefault(scalar_tag(key), []).append((row["step"], float(value)))
    return out


# ---- TensorBoard events ------------------------------------------------------------------


def test_events_hold_the_log_rows_samples_eval_and_config(tmp_path):
    run = tmp_path / "run"
    train(_cfg(steps=6, sample_every=3, num_samples=3, eval_every=3), RichObjective, run, TinyClips(),
          progress=False, eval_fn=_eval)
    rows, acc = _rows(run), _events(run)
    logged = _logged(rows)
    assert {"loss/loss", "loss/loss_recon", "grad_norm/net", "lr/net", "metrics/psnr", "speed/it_s", "eval/score",
            "eval/count"} == set(logged)
    assert sorted(acc.Tags()["scalars"]) == sorted(logged)
    for tag, expected in logged.items():
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [s for s, _ in expected], tag
        for e, (_, value) in zip(events, expected):
            assert e.value == pytest.approx(value, rel=1e-6, abs=1e-6), tag  # float32 of the logged number
    assert [e.step for e in acc.Scalars("eval/score")] == [3, 6]
    assert [e.value for e in acc.Scalars("lr/net")] == pytest.approx([1e-2] * 6)
    # samples: 3 clips of 2 frames of 4x4 as one image, a row per clip and a column per frame (2 px padding)
    images = acc.Images("samples")
    assert [im.step for im in images] == [3, 6]
    assert (images[0].height, images[0].width) == (3 * (4 + 2) + 2, 2 * (4 + 2) + 2)
    # the resolved config as YAML text
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith("```yaml\n") and "family: tiny" in text and "steps: 6" in text
    # hparams in the same run (no subfolder): the flattened config, the loss tags as metrics
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["train.steps"].number_value == 6 and start.hparams["family"].string_value == "tiny"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"loss/loss", "loss/loss_recon"}
    assert [p for p in (run / TB_DIR).iterdir() if p.is_dir()] == []  # one run for `tensorboard --logdir`


def test_a_resumed_run_has_each_step_once(tmp_path, caplog):
    """Events a run logged after the checkpoint it resumes from are purged, as log.jsonl's rows are."""
    run = tmp_path / "run"
    train(_cfg(steps=6, ckpt_every=3, sample_every=3, num_samples=2), TinyObjective, run, TinyClips(), progress=False)
    newest = run / "checkpoints" / "step-000006" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # the resume falls back to step 3: steps 4-6 are logged again
    train(_cfg(steps=8, ckpt_every=3, sample_every=3, num_samples=2), TinyObjective, run, TinyClips(), resume=True,
          progress=False)
    assert "corrupt" in caplog.text
    rows, acc = _rows(run), _events(run)
    assert [r["step"] for r in rows] == list(range(1, 9))
    for tag, expected in _logged(rows).items():
        assert [(e.step, pytest.approx(e.value, rel=1e-6)) for e in acc.Scalars(tag)] == expected, tag
    assert [im.step for im in acc.Images("samples")] == [3, 6, 8]
    assert len(list((run / TB_DIR).glob("events.out.tfevents.*"))) == 2  # one file per process, one folder


def test_a_resumed_writer_sorts_after_the_files_it_purges(tmp_path):
    """TensorBoard reads a run's event files in name order, and names start with the second they were made in."""
    tb = tmp_path / TB_DIR
    tb.mkdir()
    old = tb / f"events.out.tfevents.{int(time.time()):010d}.zzzz.99999.99"  # sorts last within its second
    old.write_bytes(b"")
    TensorBoardLog(tmp_path, {"family": "tiny"}, step=3, resume=True).close()
    names = sorted(p.name for p in tb.iterdir())
    assert len(names) == 2 and names[0] == old.name


def test_a_new_run_drops_the_events_of_an_attempt_that_left_no_checkpoint(tmp_path):
    stale = tmp_path / TB_DIR / "events.out.tfevents.0000000001.host.1.0"
    stale.parent.mkdir()
    stale.write_bytes(b"")
    train(_cfg(steps=2), TinyObjective, tmp_path, TinyClips(), progress=False)
    assert not stale.exists() and len(list(stale.parent.iterdir())) == 1


def test_tensorboard_false_writes_no_events(tmp_path):
    train(_cfg(steps=2, tensorboard=False), TinyObjective, tmp_path, TinyClips(), progress=False)
    assert not (tmp_path / TB_DIR).exists()
    assert len(_rows(tmp_path)) == 2


def test_tensorboard_switch_is_validated():
    from videosynth.train.config import TrainConfig
    from videosynth.config import from_dict

    assert from_dict(TrainConfig, {"tensorboard": False}).tensorboard is False
    with pytest.raises(ConfigError, match="train.tensorboard.*true or false"):
        from_dict(TrainConfig, {"tensorboard": "maybe"}, "train")


def test_a_full_disk_while_writing_events_is_a_one_line_checkpoint_error(tmp_path, monkeypatch):
    from tensorboard.summary.writer import record_writer

    real_write, calls = record_writer.RecordWriter.write, []

    def write(self, data):
        calls.append(1)
        if len(calls) > 6:  # the file header and the first rows go through, then the disk is full
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    monkeypatch.setattr("threading.excepthook", lambda args: None)  # the writer thread's own report
    with pytest.raises(CheckpointError) as err:
        train(_cfg(steps=50, ckpt_every=100), TinyObjective, tmp_path, TinyClips(), progress=False)
    message = str(err.value)
    assert "No space left" in message and str(tmp_path / TB_DIR) in message and "\n" not in message
    assert 1 <= len(_rows(tmp_path)) < 50  # stopped at once, not at the end of the run


def test_scalar_tags_group_every_familys_keys():
    expected = {"loss": "loss/loss", "loss_g": "loss/loss_g", "loss_d_video": "loss/loss_d_video", "recon": "loss/recon",
                "gp": "loss/gp", "aux_class_fake": "loss/aux_class_fake", "bits_per_token": "loss/bits_per_token",
                "grad_norm_g": "grad_norm/g", "grad_norm_d_image": "grad_norm/d_image", "lr_generator": "lr/generator",
                "lr_vqvae": "lr/vqvae", "it_s": "speed/it_s", "eval/valid_share": "eval/valid_share",
                "psnr": "metrics/psnr", "d_real": "metrics/d_real", "perplexity": "metrics/perplexity"}
    assert {k: scalar_tag(k) for k in expected} == expected
    assert flat_hparams({"a": 1, "b": {"c": "x", "d": [1, 2], "e": None, "f": True}}) == {"a": 1, "b.c": "x",
                                                                                         "b.f": True}


# ---- plots -------------------------------------------------------------------------------


def test_ema_is_debiased_and_exact():
    assert plots.ema([3.0] * 5, 0.9) == pytest.approx([3.0] * 5)  # a constant stays constant
    assert plots.ema([0.0, 1.0], 0.5) == pytest.approx([0.0, 2 / 3])  # (0.5 * 0 + 0.5 * 1) / (1 - 0.25)
    values = [1.0, 5.0, 2.0, 8.0]
    w, acc, expected = 0.6, 0.0, []
    for i, v in enumerate(values):
        acc = w * acc + (1 - w) * v
        expected.append(acc / (1 - w ** (i + 1)))
    assert plots.ema(values, w) == pytest.approx(expected)
    assert plots.ema(values, 0.0) == values
    with pytest.raises(ConfigError):
        plots.ema(values, 1.0)
    assert plots.auto_weight(30) == 0.0 and plots.auto_weight(300) == pytest.approx(1 - 2 / 11)


def test_log_scale_only_for_positive_series_over_two_decades():
    assert plots.use_log_scale([1.0, 1000.0])
    assert plots.use_log_scale([1e-3, 0.2])
    assert not plots.use_log_scale([1.0, 50.0])
    assert not plots.use_log_scale([0.0, 1000.0])
    assert not plots.use_log_scale([-1.0, 1000.0])
    assert not plots.use_log_scale([])


def test_loss_groups_split_adversarial_from_reconstruction_terms():
    groups = {k: plots.loss_group(k) for k in ("loss_g", "loss_d", "loss_g_adv", "loss_d_image", "recon", "loss_recon",
                                               "perceptual", "loss_commit", "loss_kl", "r1", "aux_class_real",
                                               "loss_category_g", "loss", "bits_per_token", "loss_new_term",
                                               "psnr", "grad_norm_g", "lr_generator", "it_s", "d_fake")}
    assert groups == {
        "loss_g": "generator / discriminator", "loss_d": "generator / discriminator",
        "loss_g_adv": "generator / discriminator", "loss_d_image": "generator / discriminator",
        "recon": "reconstruction", "loss_recon": "reconstruction", "perceptual": "reconstruction",
        "loss_commit": "regularisers", "loss_kl": "regularisers", "r1": "regularisers",
        "aux_class_real": "classification", "loss_category_g": "classification",
        "loss": "loss", "bits_per_token": "loss", "loss_new_term": "loss",
        "psnr": None, "grad_norm_g": None, "lr_generator": None, "it_s": None, "d_fake": None,
    }


def test_loss_figure_has_a_panel_per_group_with_log_scale_where_it_spans_decades():
    rows = [{"step": s, "loss_d": 1.0 + 0.1 * s, "loss_g": -2.0 + s, "recon": 0.5, "gp": 10.0 ** -s, "psnr": 20.0}
            for s in range(1, 6)]
    rows.append({"step": 6, "skipped": "generator", "loss_d": None})  # a skipped step: NaN logged as null
    fig = plots.loss_figure(rows, "my-run")
    panels = {ax.get_title(): ax for ax in fig.get_axes() if ax.get_visible()}
    assert set(panels) == {"generator / discriminator", "reconstruction", "regularisers"}
    assert panels["regularisers"].get_yscale() == "log"  # gp spans 4 decades
    assert panels["generator / discriminator"].get_yscale() == "linear"  # loss_g crosses zero
    assert fig.get_suptitle() == "my-run: step 6"
    legend = [t.get_text() for t in panels["generator / discriminator"].get_legend().get_texts()]
    assert legend == ["loss_d", "loss_g"]


def test_loss_png_is_a_matplotlib_figure_of_the_run(tmp_path):
    train(_cfg(steps=4), RichObjective, tmp_path / "run", TinyClips(), progress=False)
    path = tmp_path / "run" / "loss.png"
    assert path.read_bytes()[:8] == PNG
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.info.get("Software", "").startswith("Matplotlib")
        cols = plots.MAX_COLUMNS  # two panels: loss, reconstruction
        assert img.size == (round(plots.PANEL_WIDTH * plots.DPI * cols), round(plots.PANEL_HEIGHT * plots.DPI))
    assert not list((tmp_path / "run").glob(".loss*"))  # written through a temporary name


# ---- videosynth plot ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot-runs")
    for name, steps in (("a", 6), ("b", 4)):
        train(_cfg(steps=steps), RichObjective, root / name, TinyClips(), progress=False)
    return root / "a", root / "b"


def test_plot_command_writes_a_comparison(two_runs, tmp_path):
    a, b = two_runs
    out = tmp_path / "cmp.png"
    res = subprocess.run([sys.executable, "-m", "videosynth.cli", "plot", str(a), str(b), "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "2 panels: loss, loss_recon" in res.stdout
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (round(plots.PANEL_WIDTH * plots.DPI * 2),
                                                    round(plots.PANEL_HEIGHT * plots.DPI))
    for args in (["--keys", "grad_norm_net", "--x", "time", "--smooth", "0.5"], ["--smooth", "0"]):
        svg = tmp_path / "cmp.svg"
        assert main(["plot", str(a), str(b), "--out", str(svg), *args]) == 0
        assert svg.read_text().lstrip().startswith("<?xml")


def test_plot_lines_are_labelled_by_run_folder(two_runs):
    a, b = two_runs
    fig = plots.compare_figure({"a": plots.read_log(a / "log.jsonl"), "b": plots.read_log(b / "log.jsonl")}, ["loss"])
    ax = fig.get_axes()[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    assert plots.run_labels([Path("x/run"), Path("y/run"), Path("z/other")]) == ["x/run", "y/run", "z/other"]


@pytest.mark.parametrize("case", ["no log", "unknown key", "bad suffix", "bad smooth"])
def test_plot_errors_are_one_line(two_runs, tmp_path, capsys, case):
    a, b = two_runs
    args, needle = {
        "no log": ([str(a), str(tmp_path)], "log.jsonl not found"),
        "unknown key": ([str(a), str(b), "--keys", "loss,loss_q"], "its keys: it_s, loss, loss_recon"),
        "bad suffix": ([str(a), "--out", str(tmp_path / "cmp.jpg")], "use a name ending in .png, .pdf, .svg"),
        "bad smooth": ([str(a), "--smooth", "2"], "--smooth 2"),
    }[case]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "cmp.png")]
    assert main(["plot", *args]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert not (tmp_path / "cmp.png").exists()


# ---- the family benchmark figure ---------------------------------------------------------


def _benchmark():
    spec = importlib.util.spec_from_file_location("families_bench", ROOT / "benchmarks" / "families.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_family_figure_is_drawn_from_the_json_alone(tmp_path):
    results = []
    for seed in (0, 1):
        for fam in ("gan", "ar", "flow"):
            scores = {"class_acc": 0.5 + 0.1 * seed, "valid_share": 0.8, "bounce_correct": 0.9, "tracked_share": 1.0,
                      "fpd": 2.0 + seed, "sec_per_clip": {"gan": 0.001, "ar": 0.05, "flow": 0.2}[fam],
                      "params_m": 1.0, "real_valid_share": 0.99, "real_bounce_correct": 0.98, "real_tracked_share": 1.0}
            if fam == "flow":
                scores["flow_sweep"] = {f"{s}-{n}": {"class_acc": n / 40, "sec_per_clip": n / 100}
                                        for s in ("euler", "heun") for n in (4, 8)}
            results.append({"family": fam, "seed": seed, "scores": scores})
    path = tmp_path / "families.json"
    path.write_text(json.dumps({"budget_s": 60.0, "tokenizer_share": 0.4, "seeds": [0, 1], "results": results}))
    script = [sys.executable, str(ROOT / "benchmarks" / "families.py"), "--plot-only", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's videosynth, as in the tests themselves
    res = subprocess.run([*script, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    with Image.open(tmp_path / "families.png") as img:
        assert img.format == "PNG" and img.size[0] >= 1000 and img.size[1] >= 1000
    missing = subprocess.run([*script, str(tmp_path / "none.json")], capture_output=True, text=True, cwd=ROOT,
                             timeout=120, env=env)
    assert missing.returncode != 0 and "not found" in missing.stderr

    bench = _benchmark()
    fig = bench.family_figure(json.loads(path.read_text()))
    axes = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert len(axes) == len(bench.FIGURE_PANELS) + 1  # + flow's sampling-steps sweep
    for ax, (_, name, _, _) in zip(axes, bench.FIGURE_PANELS):
        assert ax.get_title().startswith(name)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["VideoGAN", "VQ-VAE + AR", "KL-AE + DiT flow"]
        assert sum(len(c.get_offsets()) for c in ax.collections) == 6  # a dot per family and seed
    seconds = axes[[k for k, *_ in bench.FIGURE_PANELS].index("sec_per_clip")]
    assert seconds.get_yscale() == "log"  # 0.001 .. 0.2 s: more than two decades
    assert [line.get_label() for line in axes[-1].get_lines()] == ["euler", "heun"]


@pytest.mark.parametrize("flag,needle", [
    (["--config", "mocogan"], "--config mocogan: give FAMILY=PATH"),
    (["--config", "videogan=configs/mocogan/demo-32x32x8.yaml"], "FAMILY one of gan, mocogan"),
    (["--config", "mocogan=missing.yaml"], "no such file missing.yaml"),
    (["--family-share", "flow=half"], "the share must be a number"),
    (["--family-share", "flow=1.5"], "between 0 and 1"),
])
def test_family_benchmark_names_a_wrong_recipe_option_in_one_line_before_training(tmp_path, flag, needle):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "families.py"), *flag, "--out-dir",
                          str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert res.returncode != 0 and needle in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_every_recipe_the_family_benchmark_trains_exists():
    bench = _benchmark()
    for fam, (tokenizer, stage) in bench.STAGE_CONFIGS.items():
        assert fam in bench.FAMILIES
        for path in (tokenizer, stage):
            assert path is None or (ROOT / path).is_file(), path
