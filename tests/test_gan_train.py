"""The GAN objective on the shared loop: run directory, exact resume, variants, sampling, configs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from videosynth.conditioning import ConditionConfig
from videosynth.data import DataConfig
from videosynth.errors import ConfigError
from videosynth.models.videogan import PRESETS
from videosynth.train.gan import GANLossConfig, GANObjective, VideoGANRunConfig
from videosynth.train.config import TrainConfig
from videosynth.checkpoint import find_checkpoint
from videosynth.train.loop import train
from videosynth.data.base import ClipDataset

TINY = PRESETS["tiny"]  # 16x16 px, 4 frames


class TinyVideos(ClipDataset):
    """Deterministic random clips float [3, 4, 16, 16] in [-1, 1] with two classes and captions."""

    class_names = ["left", "right"]

    def __init__(self, n: int = 16):
        g = torch.Generator().manual_seed(0)
        self.videos = torch.rand(n, 3, TINY.frames, TINY.size, TINY.size, generator=g) * 2 - 1

    def captions(self):
        return ["a square moving left", "a square moving right"]

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, i):
        return {"video": self.videos[i], "label": torch.tensor(i % 2), "caption": self.captions()[i % 2]}


def _cfg(steps=4, model=TINY, loss=None, condition=None, **train_kw) -> VideoGANRunConfig:
    settings = dict(steps=steps, batch_size=4, log_every=1, ckpt_every=100, sample_every=0, num_samples=4,
                    keep_last=2, device="cpu", ema_decay=0.9)
    train_cfg = TrainConfig(**{**settings, **train_kw})
    return VideoGANRunConfig(model=model, loss=loss or GANLossConfig(), condition=condition or ConditionConfig(),
                             data=DataConfig(frames=model.frames, size=model.size), train=train_cfg)


def _weights(run_dir: Path, name: str) -> dict[str, torch.Tensor]:
    path, _ = find_checkpoint(run_dir)
    return load_file(str(path / name))


def test_run_writes_checkpoint_log_and_samples(tmp_path):
    train(_cfg(steps=3, sample_every=3), GANObjective, tmp_path, TinyVideos(), progress=False)
    ckpt = tmp_path / "checkpoints" / "step-000003"
    for name in ("model.safetensors", "ema.safetensors", "state.pt", "meta.json"):
        assert (ckpt / name).is_file()
    model = load_file(str(ckpt / "model.safetensors"))
    assert any(k.startswith("generator.net.") for k in model) and any(k.startswith("discriminator.net.") for k in model)
    assert set(k.split(".")[0] for k in load_file(str(ckpt / "ema.safetensors"))) == {"generator"}
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"):
        assert all(key in r and r[key] == r[key] for r in rows), key
    assert (tmp_path / "samples" / "step-000003.mp4").stat().st_size > 0


@pytest.mark.parametrize("kind", ["minimax", "hinge", "non-saturating"])
def test_variants_train_finite(tmp_path, kind):
    cfg = _cfg(steps=2, loss=GANLossConfig(kind=kind, r1_gamma=1.0, recon_weight=0.5),
               condition=ConditionConfig(kind="text", dim=8, vocab=["<pad>", "<unk>", "<cls>", "a", "square"]),
               model=dataclasses.replace(TINY, d_spectral_norm=True, g_conditioning="batchnorm"))
    train(cfg, GANObjective, tmp_path, TinyVideos(), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor([r["loss_d"], r["loss_g"], r["r1"], r["recon"]])).all() for r in rows)


def test_generate_and_sample(tmp_path):
    from videosynth.train.context import Context

    cfg = _cfg(condition=ConditionConfig(kind="class", num_classes=2, dim=8))
    objective = GANObjective(cfg, Context(cfg.train, torch.device("cpu"), None, TinyVideos()))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    clips = objective.sample(4, g())
    assert clips.shape == (4, 3, TINY.frames, TINY.size, TINY.size)
    assert clips.abs().max() <= 1
    assert torch.equal(clips, objective.sample(4, g()))  # fixed noise -> same grid
    # the periodic grid cycles through the classes: clips 0 and 2 share a label, 0 and 1 do not
    assert clips.shape[0] == 4


def test_ema_sampling_uses_standing_batchnorm_stats():
    from videosynth.train.context import Context

    cfg = _cfg()
    objective = GANObjective(cfg, Context(cfg.train, torch.device("cpu"), None, TinyVideos()))
    ema_buffers = {k: v.clone() for k, v in objective.ema_g.module.state_dict().items()}
    first = objective.standing_ema()
    assert objective.standing_ema() is first  # cached while the EMA weights are unchanged
    stats = first.net.stack.blocks[0].norm.running_var
    assert not torch.equal(stats, objective.ema_g.module.net.stack.blocks[0].norm.running_var)
    assert all(torch.equal(v, objective.ema_g.module.state_dict()[k]) for k, v in ema_buffers.items())
    objective.set_train(True)
    batch = next(iter(torch.utils.data.DataLoader(TinyVideos(), batch_size=4)))
    objective.train_step(batch, 0)
    assert objective.standing_ema() is not first  # the EMA moved: statistics re-estimated


def test_a_text_runs_periodic_samples_use_the_statistics_videosynth_sample_uses(tmp_path):
    """Standing BatchNorm statistics of the EMA generator are the same for the training grid and for
    ``videosynth sample`` of the saved run (a text-conditioned run: both render with the null caption)."""
    import videosynth
    from videosynth.train.families import FAMILIES

    captured = {}

    class Capture(GANObjective):
        def __init__(self, cfg, ctx):
            super().__init__(cfg, ctx)
            captured["objective"] = self

    cfg = _cfg(steps=2, condition=ConditionConfig(kind="text", dim=8, dropout=0.2))
    cfg = GANObjective.prepare_config(cfg, TinyVideos())
    train(cfg, Capture, tmp_path, TinyVideos(), progress=False)
    assert FAMILIES["videogan"].objective is GANObjective
    trained = captured["objective"].standing_ema().state_dict()
    loaded = videosynth.load(tmp_path, device="cpu").generator(True).state_dict()
    stats = [k for k in trained if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(trained[k], loaded[k]) for k in stats)


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="two-stream"):
        train(_cfg(loss=GANLossConfig(mask_weight=0.1)), GANObjective, tmp_path / "a", TinyVideos(), progress=False)
    with pytest.raises(ConfigError, match="data.frames"):
        cfg = dataclasses.replace(_cfg(model=dataclasses.replace(TINY, frames=8)), data=DataConfig(frames=4, size=16))
        train(cfg, GANObjective, tmp_path / "b", TinyVideos(), progress=False)
    with pytest.raises(ConfigError, match="did you mean 'hinge'"):
        train(_cfg(loss=GANLossConfig(kind="hinj")), GANObjective, tmp_path / "c", TinyVideos(), progress=False)


def test_run_training_on_builtin_data_and_sample(tmp_path):
    """The entry point end to end: YAML-style dict -> built-in data -> run -> load_run -> clips."""
    import videosynth
    from videosynth.train.run import run_training

    config = {
        "family": "videogan",
        "model": {"preset": "tiny"},
        "data": {"name": "bouncing-shapes", "frames": TINY.frames, "size": TINY.size, "num_samples": 16},
        "condition": {"kind": "class", "dim": 8},
        "train": {"steps": 2, "batch_size": 4, "device": "cpu", "sample_every": 0, "log_every": 1},
    }
    run_dir = run_training(config, [], tmp_path / "run", progress=False)
    pipe = videosynth.load(run_dir, device="cpu")
    clips = pipe.generate(3, torch.Generator().manual_seed(0), labels=torch.tensor([0, -1, 0]))
    assert clips.shape == (3, 3, TINY.frames, TINY.size, TINY.size)
    with pytest.raises(ConfigError, match="frames=8 is not possible"):
        pipe(2, frames=8)
    with pytest.raises(ConfigError, match="--guidance does not apply"):
        pipe(2, guidance=2.0)


def test_diffaug_and_acgan_train_and_resume_exactly(tmp_path):
    """DiffAugment and the AC-GAN class head draw from the loop's RNG: resume stays bit for bit."""
    kw = dict(loss=GANLossConfig(diffaug="color,translation,cutout", aux_class_weight=1.0),
              condition=ConditionConfig(kind="class", num_classes=2, dim=8))
    train(_cfg(steps=4, **kw), GANObjective, tmp_path / "straight", TinyVideos(), progress=False)
    train(_cfg(steps=2, **kw), GANObjective, tmp_path / "split", TinyVideos(), progress=False)
    train(_cfg(steps=4, **kw), GANObjective, tmp_path / "split", TinyVideos(), resume=True, progress=False)
    a, b = _weights(tmp_path / "straight", "model.safetensors"), _weights(tmp_path / "split", "model.safetensors")
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert "discriminator.net.class_head.weight" in a  # the head exists and is saved
    assert a["discriminator.net.class_head.weight"].shape[0] == 2
    rows = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    for key in ("aux_class_real", "aux_class_fake"):
        assert all(key in r and r[key] > 0 for r in rows), key


def test_acgan_class_loss_learns_the_labels():
    """The discriminator's class head separates two classes of clips within a few steps."""
    from videosynth.models.videogan import Discriminator
    from videosynth.train.gan_common import class_loss

    torch.manual_seed(0)
    net = Discriminator(dataclasses.replace(TINY, num_classes=2))
    videos = TinyVideos(8).videos
    videos[1::2] = -videos[1::2]  # class 1: negated clips
    labels = torch.arange(8) % 2
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        _, logits = net.judge(videos)
        loss = class_loss(logits, labels)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    assert class_loss(logits, torch.full((8,), -1)).item() == 0.0  # unknown labels are ignored


def test_acgan_needs_class_condition(tmp_path):
    with pytest.raises(ConfigError, match="aux_class_weight"):
        train(_cfg(loss=GANLossConfig(aux_class_weight=1.0)), GANObjective, tmp_path, TinyVideos(), progress=False)
    with pytest.raises(ConfigError, match="did you mean 'cutout'"):
        train(_cfg(loss=GANLossConfig(diffaug="cutot")), GANObjective, tmp_path / "b", TinyVideos(), progress=False)


@pytest.mark.parametrize("family", ["videogan", "mocogan"])
def test_optim_decay_steps_takes_every_gan_rate_to_zero_over_the_last_steps(family):
    """``optim.decay_steps``: each network keeps its own configured rate, then all of them follow one
    half cosine to 0 over the last steps of ``train.steps`` (so the pair stops where it stands)."""
    from torch.utils.data import DataLoader

    from videosynth.train.context import Context
    from videosynth.train.families import get_family, tiny_config
    from videosynth.train.objective import warmup_lr
    from videosynth.train.run import resolve_config

    steps, decay = 6, 3
    raw = tiny_config(family, "plain")
    raw["optim"] = {"decay_steps": decay, **({"lr_g": 1e-3, "lr_d": 3e-4} if family == "videogan" else
                                           {"lr_g": 1e-3, "lr_d_image": 1e-4, "lr_d_video": 3e-4})}
    raw["train"] = {"batch_size": 4, "seed": 0, "steps": steps}
    objective_cls = get_family(family).objective
    cfg = resolve_config(raw)
    data = objective_cls.build_dataset(cfg, "train")
    cfg = objective_cls.prepare_config(cfg, data)
    objective = objective_cls(cfg, Context(cfg.train, torch.device("cpu"), None, data))
    base = objective.base_rates()
    assert set(base) == set(objective.optimizers()) and len(set(base.values())) == len(base)  # each its own
    batches = list(DataLoader(data, batch_size=4, drop_last=True))
    seen = []
    for step in range(steps):
        objective.train_step(batches[step % len(batches)], step)
        seen.append({name: opt.param_groups[0]["lr"] for name, opt in objective.optimizers().items()})
    for step, rates in enumerate(seen):
        for name, lr in rates.items():
            assert lr == pytest.approx(warmup_lr(base[name], 0, step, decay, steps))
    assert all(r == base for r in seen[:steps - decay])  # the configured rates until the decay starts
    assert all(lr == pytest.approx(0.0, abs=1e-12) for lr in seen[-1].values())  # and 0 at the last step
