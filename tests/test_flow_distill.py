"""One-step distillation of a flow run (loss.objective: distill): the pairs, the objective, resume, refusals."""

import pytest
import torch

from videosynth.errors import CheckpointError, ConfigError

from test_flow import DATA, TRAIN, tiny_flow_run

PAIRS = 24


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny class-conditional flow run that samples in 4 guided Heun steps (no EMA, so 40 steps show)."""
    return tiny_flow_run(tmp_path_factory.mktemp("distill"), sample={"steps": 4, "solver": "heun", "guidance": 2.0},
                         train={**TRAIN, "steps": 40, "ema_decay": 0.0}, optim={"lr": 3e-3})


def _student(teacher, **train) -> dict:
    import videosynth

    tok = videosynth.load(teacher).config["tokenizer_run"]
    return {"family": "flow", "tokenizer_run": tok, "model": {"preset": "tiny"}, "data": DATA,
            "condition": {"kind": "class", "dim": 8, "dropout": 0.0},
            "loss": {"objective": "distill", "distill_teacher": str(teacher), "distill_pairs": PAIRS},
            "sample": {"steps": 1, "solver": "euler", "guidance": 1.0}, "optim": {"lr": 3e-3, "warmup_steps": 0},
            "train": {**TRAIN, "ema_decay": 0.0, **train}}


def _one_step_error(run, pairs) -> float:
    """Mean squared distance of ``run``'s one Euler step from each pair's noise to the teacher's clip."""
    import videosynth
    from videosynth.pipelines.flow import sample_window

    net = videosynth.load(run).net(True)
    made = sample_window(net, pairs["x0"], pairs["labels"], [""] * PAIRS, 1, "euler", 1.0)
    return float((made - pairs["x1"]).pow(2).mean())


def test_the_pairs_are_the_teachers_own_samples_and_the_student_learns_to_make_them_in_one_step(teacher, tmp_path):
    import videosynth
    from safetensors.torch import load_file

    from videosynth.pipelines.flow import sample_window
    from videosynth.train.run import run_training

    student = run_training(_student(teacher, steps=60), run_dir=tmp_path / "student", progress=False, init=teacher)
    pairs = load_file(str(student / "distill-pairs.safetensors"))
    assert pairs["x0"].shape == pairs["x1"].shape and pairs["x0"].shape[0] == PAIRS
    assert set(pairs["labels"].tolist()) <= {0, 1, 2} and len(set(pairs["labels"].tolist())) > 1
    net = videosynth.load(teacher).net(True)
    again = sample_window(net, pairs["x0"][:5], pairs["labels"][:5], [""] * 5, 4, "heun", 2.0)
    assert torch.allclose(again, pairs["x1"][:5], atol=1e-5)  # the teacher's 4 guided Heun steps, as recorded
    before, after = _one_step_error(teacher, pairs), _one_step_error(student, pairs)
    assert after < 0.5 * before  # one step of the student lands much nearer the teacher's clip than the teacher's own


def test_a_resumed_distillation_draws_the_same_pairs_and_ends_with_the_same_weights(teacher, tmp_path):
    from safetensors.torch import load_file

    from videosynth.checkpoint import find_checkpoint
    from videosynth.train.run import run_training

    whole = run_training(_student(teacher, steps=6, ckpt_every=3), run_dir=tmp_path / "whole", progress=False,
                         init=teacher)
    part = run_training(_student(teacher, steps=3, ckpt_every=3), run_dir=tmp_path / "part", progress=False,
                        init=teacher)
    run_training(None, ["train.steps=6"], resume=part, progress=False)
    a = load_file(str(find_checkpoint(whole)[0] / "model.safetensors"))
    b = load_file(str(find_checkpoint(part)[0] / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_distillation_refuses_what_it_cannot_learn_in_one_line(teacher, tmp_path):
    from videosynth.train.run import run_training

    cases = [({"condition": {"kind": "class", "dim": 8, "dropout": 0.1}}, ConfigError, "condition.dropout: 0"),
             ({"loss": {"objective": "distill"}}, ConfigError, "needs loss.distill_teacher"),
             ({"loss": {"distill_teacher": str(teacher)}}, ConfigError, "set that objective"),
             ({"loss": {"objective": "distill", "distill_teacher": str(tmp_path / "none")}}, CheckpointError, "none")]
    for change, error, words in cases:
        cfg = {**_student(teacher), **change}
        with pytest.raises(error, match=words):
            run_training(cfg, run_dir=tmp_path / "bad", progress=False)
