"""benchmarks/matrix.py: the cells the registry declares, their configs, and resuming without retraining."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _matrix():
    spec = importlib.util.spec_from_file_location("matrix_bench", ROOT / "benchmarks" / "matrix.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_cells_follow_the_registry_and_share_one_tokenizer_per_data_config():
    from videosynth.train.families import FAMILIES

    bench = _matrix()
    cells = bench.all_cells()
    for name, fam in FAMILIES.items():
        mine = {c.split(":")[1] for c in cells if c.startswith(name + ":")}
        if not fam.can.generative:
            assert not mine  # a tokenizer is no row of the matrix
            continue
        assert mine == {"class", "text"} | {c for c, can in (("sound", fam.can.sound), ("prime", fam.can.prime),
                                                             ("long", fam.can.long)) if can}
    scale, configs_of = bench.scales()["full"]
    configs = configs_of()
    tokenizers = {}
    for cell in cells:
        family, cond = cell.split(":")
        cfg, tok = bench.cell_config(family, cond, scale, configs)
        assert cfg["family"] == family and cfg["data"]["frames"] == 8 and cfg["data"]["size"] == 32
        assert cfg["condition"]["kind"] == {"class": "class", "text": "text"}.get(cond, "none")
        assert cfg["condition"].get("audio", False) == (cond == "sound") == bool(cfg["data"].get("audio"))
        if cfg["condition"]["kind"] == "none" and cond != "sound":
            assert not {"guidance", "guidance_scale"} & set(cfg.get("sample", {}))  # nothing to guide by
        if cond == "text":
            assert cfg["data"]["colour"] == "" and cfg["data"]["holdout_combinations"] > 0
        assert (tok is None) == (FAMILIES[family].tokenizer is None)
        if tok is not None:
            assert "audio" not in tok["data"]  # a tokenizer never hears: the sound cells share the plain one
            tokenizers.setdefault(family, set()).add(bench.digest(tok))
    assert tokenizers["transformer"] == tokenizers["maskgit"]  # one VQ tokenizer per data config for both priors
    assert all(len(keys) == 2 for keys in tokenizers.values())  # the demo's data, and the text cells' colours


@pytest.mark.slow
def test_matrix_resumes_from_its_json_without_retraining_finished_cells(tmp_path, capsys):
    bench = _matrix()
    out, js = tmp_path / "mx", tmp_path / "matrix.json"
    common = ["--scale", "tiny", "--seeds", "0", "--budget", "1", "--tokenizer-budget", "1", "--steps", "2",
              "--out-dir", str(out), "--json", str(js)]
    assert bench.main([*common, "--cells", "videogan:class"]) == 0
    first = json.loads(js.read_text())
    weights = out / "seed0" / "videogan-class" / "checkpoints" / "step-000002" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert bench.main([*common, "--resume", "--cells", "videogan:class", "videogan:text"]) == 0
    second = json.loads(js.read_text())
    assert [r["cell"] for r in second["results"]] == ["videogan:class", "videogan:text"]
    assert second["results"][0] == first["results"][0] and weights.stat().st_mtime_ns == stamp
    log = (out / "commands.log").read_text()
    assert log.count(f"--run-dir {out / 'seed0' / 'videogan-class'} ") == 1  # trained once, in the first sitting
    text = second["results"][1]
    assert 0 <= text["score"] <= 1 and 0 <= text["control"] <= 1 and text["steps"] == 2
    printed = capsys.readouterr().out
    row = [line for line in printed.splitlines() if line.startswith("| videogan |")][-1]  # the second sitting's
    assert row.count(" / ") == 2 and "— (takes no sound)" not in row  # videogan hears sound: not run yet
    assert "not run yet" in row and "— (draws whole clips from noise, continues no frames)" in row
    assert (tmp_path / "matrix.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="budget_s"):
        bench.main([*common[:-4], "--budget", "2", "--out-dir", str(out), "--json", str(js), "--resume"])


@pytest.mark.slow
def test_a_calibrated_sitting_times_every_network_first_and_a_resumed_one_reuses_the_rates(tmp_path, monkeypatch):
    import functools

    bench = _matrix()
    monkeypatch.setattr(bench, "Budget", functools.partial(bench.Budget, calib_seconds=1.0))
    out, js = tmp_path / "mx", tmp_path / "matrix.json"
    common = ["--scale", "tiny", "--seeds", "0", "--budget", "1", "--tokenizer-budget", "1", "--calibrated",
              "--out-dir", str(out), "--json", str(js), "--cells", "flow:class"]
    with pytest.raises(SystemExit, match="--calibrated"):
        bench.main([*common[:8], *common[9:], "--calibrate-only"])  # timing is for calibrated sittings only
    assert bench.main([*common, "--calibrate-only"]) == 0
    timed = json.loads(js.read_text())
    assert len(timed["rates"]) == 2 and all(r > 0 for r in timed["rates"].values())  # the tokenizer and the DiT
    assert timed["results"] == [] and not (out / "seed0").exists()  # nothing trained for the matrix yet
    log = (out / "commands.log").read_text()
    assert log.count("calibrate") and not list(out.glob("tokenizers/*"))
    assert bench.main([*common, "--resume"]) == 0
    done = json.loads(js.read_text())
    assert done["rates"] == timed["rates"] and [r["cell"] for r in done["results"]] == ["flow:class"]
    later = (out / "commands.log").read_text()[len(log):]
    assert "calibrate-" not in later  # every rate reused: nothing timed again
    assert done["results"][0]["steps"] == 1  # 1 s of budget, less start-up: the minimum step
