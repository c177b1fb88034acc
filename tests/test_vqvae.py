"""VQ-VAE tokenizer: shapes, bottleneck invariants (over the registry), EMA / loss codebooks, dead-code
restart, DDP sync, FSQ, the Gaussian bottleneck."""

import os
import socket
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from loop_helpers import HostSyncs
from videosynth.errors import ConfigError
from videosynth.models.bottlenecks import BOTTLENECKS, FSQ, ContinuousBottleneck, DiscreteBottleneck
from videosynth.models.vqvae import PRESETS, VQVAE, VQVAEConfig, warn_if_collapsed


def tiny(**overrides) -> VQVAE:
    cfg = VQVAEConfig(**{**vars(PRESETS["tiny"]), **overrides})
    return VQVAE(cfg)


def clip(b=2, t=4, s=16, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, s, s, generator=g) * 2 - 1  # (B, C, T, H, W) in [-1, 1]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_forward(name):
    torch.manual_seed(0)
    model = VQVAE(PRESETS[name])
    dt, dh, dw = PRESETS[name].downsample
    x = clip(b=1, t=dt, s=2 * dh)  # smallest clip with a 1x2x2 latent
    out = model(x)
    assert out.recon.shape == x.shape
    assert torch.isfinite(out.loss)
    assert out.bottleneck.indices.shape == (1, 1, 2, 2)


@pytest.mark.parametrize("downsample,levels", [((4, 4, 4), [8]), ((2, 4, 4), []), ((1, 8, 8), [4, 8])])
def test_rgb_layout_reads_and_writes_rgb_at_full_resolution_only(downsample, levels):
    model = tiny(downsample=downsample, level_channels=levels)
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    first, last = model.encoder.down[0], model.decoder.up[-1]
    assert first.in_channels == 3 and last.out_channels == 3  # only these two see RGB
    assert all(m is first or m is last or m.in_channels > 3 and m.out_channels > 3 for m in convs)
    steps = len(model.encoder.down)
    assert [c.out_channels for c in model.encoder.down] == ([*levels, 16] if levels else [16] * steps)
    assert [c.in_channels for c in model.decoder.up] == ([16, *levels[::-1]] if levels else [16] * steps)
    assert model.encoder.conv_in is None and model.decoder.conv_out is None
    x = clip(t=8, s=16)
    out = model(x)
    assert out.recon.shape == x.shape and torch.isfinite(out.loss)


def test_full_layout_keeps_the_modules_of_runs_made_before_layouts():
    model = tiny(layout="full")
    names = {name.rsplit(".", 1)[0] for name in model.state_dict()}
    assert {"encoder.conv_in", "encoder.down.0", "decoder.up.1", "decoder.conv_out"} <= names
    assert "encoder.conv_mid" not in names
    assert model(clip()).recon.shape == clip().shape


def test_layout_settings_are_checked():
    with pytest.raises(ConfigError, match="layout"):
        VQVAEConfig(layout="wide")
    with pytest.raises(ConfigError, match="level_channels takes 1"):
        VQVAEConfig(downsample=(4, 4, 4), level_channels=[16, 32])
    with pytest.raises(ConfigError, match="layout 'full'"):
        VQVAEConfig(layout="full", level_channels=[16])


def test_a_tokenizer_run_saved_before_layouts_loads_as_the_full_layout(tmp_path):
    import yaml

    import videosynth
    from videosynth.train.run import run_training

    data = {"name": "bouncing-shapes", "frames": 4, "size": 16, "num_samples": 8, "colour": "white"}
    train = {"steps": 1, "batch_size": 2, "sample_every": 0, "device": "cpu", "log_every": 1}
    run = run_training({"family": "vqvae", "model": {"preset": "tiny", "layout": "full"}, "data": data,
                        "train": train}, run_dir=tmp_path / "old", progress=False)
    config = yaml.safe_load((run / "config.yaml").read_text())
    del config["model"]["layout"]  # what a run written by an earlier version holds
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    pipe = videosynth.load(run)
    assert pipe.model_cfg.layout == "full" and pipe.model.encoder.conv_in is not None
    x = clip(b=1)
    assert pipe.model.decode(pipe.model.encode(x)).shape == x.shape


def test_round_trip_shapes_and_range():
    model = tiny().eval()
    x = clip()
    idx = model.encode(x)
    assert idx.shape == (2, *model.latent_shape(4, 16)) == (2, 2, 4, 4)
    assert idx.dtype == torch.long
    y = model.decode(idx)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1


def test_latent_shape_rejects_bad_sizes():
    model = tiny()
    with pytest.raises(ConfigError, match="downsample"):
        model.latent_shape(3, 16)
    with pytest.raises(ConfigError):
        model.decode(torch.full((1, 2, 4, 4), 10_000))
    with pytest.raises(ConfigError, match="power"):
        VQVAEConfig(downsample=(3, 4, 4))
    with pytest.raises(ConfigError, match="codebook"):
        VQVAEConfig(codebook="kmeans")


def test_quantized_equals_codebook_rows_and_encode_matches_forward():
    model = tiny().train()
    x = clip()
    z = model.encoder(x)
    q = model.quantizer(z)
    assert torch.allclose(q.quantized, model.quantizer.decode_codes(q.indices), atol=1e-6)
    model.eval()
    assert torch.equal(model.encode(x), model(x).bottleneck.indices)
    assert 1.0 <= float(q.perplexity) <= model.cfg.codebook_size
    assert 0.0 < float(q.usage) <= 1.0


def test_straight_through_gradient_reaches_encoder():
    model = tiny().train()
    out = model(clip())
    out.recon_loss.backward()  # reconstruction term only: it reaches the encoder via straight-through
    grad = model.encoder.down[0].weight.grad  # the first conv, reading the RGB frames
    assert grad is not None and grad.abs().sum() > 0


def test_codebook_initialised_from_encoder_outputs():
    model = tiny().train()
    x = clip()
    with torch.no_grad():
        z = model.encoder(x).permute(0, 2, 3, 4, 1).reshape(-1, model.cfg.code_dim)  # (N, D)
    model(x)
    emb = model.quantizer.embedding
    nearest = torch.cdist(emb, z).min(1).values  # distance of each code to the closest encoder output
    assert bool(model.quantizer.initialized)
    assert nearest.max() < 0.1 * z.norm(dim=1).mean()


def test_ema_mode_updates_codebook_without_gradient():
    model = tiny(codebook="ema", restart_after=0).train()
    assert "quantizer.embedding" not in dict(model.named_parameters())
    model(clip(seed=0))  # initialises from the batch
    before = model.quantizer.embedding.clone()
    out = model(clip(seed=1))
    assert not torch.equal(before, model.quantizer.embedding)
    assert float(out.bottleneck.codebook_loss) == 0.0


def test_loss_mode_trains_codebook_by_gradient():
    model = tiny(codebook="loss", restart_after=0).train()
    out = model(clip())
    before = model.quantizer.embedding.detach().clone()
    model(clip(seed=1))
    assert torch.equal(before, model.quantizer.embedding.detach())  # no EMA update in "loss" mode
    out.loss.backward()
    assert float(out.bottleneck.codebook_loss.detach()) > 0
    assert model.quantizer.embedding.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["ema", "loss"])
def test_dead_codes_are_revived(mode):
    model = tiny(codebook=mode, restart_after=2).train()
    model(clip())  # initialise
    dead = torch.arange(0, model.cfg.codebook_size, 2)
    with torch.no_grad():
        model.quantizer.embedding.data[dead] = 1e3  # far from every encoder output: never chosen
        if mode == "ema":
            model.quantizer.ema_sum[dead] = 1e3
    out1 = model(clip(seed=1)).bottleneck
    assert out1.restarted == 0  # unused for one step only
    out2 = model(clip(seed=2)).bottleneck
    assert out2.restarted >= len(dead)
    assert model.quantizer.embedding.detach()[dead].abs().max() < 100


def test_ema_count_threshold_restarts():
    model = tiny(restart_after=0, restart_threshold=1.0).train()
    model(clip())
    out = model(clip(seed=1))  # every code unused in this batch decays below 1.0 and is restarted
    assert out.bottleneck.restarted > 0


def test_usage_collapse_warning():
    model = tiny().train()
    out = model(clip())
    assert not model.usage_collapsed(out)
    with torch.no_grad():
        model.quantizer.embedding.data[1:] = 1e3  # only code 0 reachable
    model.eval()
    out = model(clip())
    assert float(out.bottleneck.usage) == 1 / model.cfg.codebook_size
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_if_collapsed(model, out, step=7)
    assert "collapsed at step 7" in str(caught[0].message)


def test_train_step_reduces_loss():
    torch.manual_seed(0)
    model = tiny().train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = clip(b=2)
    first = None
    for _ in range(15):
        out = model(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else float(out.recon_loss.detach())
    assert float(out.recon_loss.detach()) < first


# --- DDP: codebook statistics synchronised across ranks -------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        torch.manual_seed(rank)  # different weights' RNG use and different data per rank
        model = tiny(restart_after=1).train()
        torch.manual_seed(123)
        model.encoder.load_state_dict(tiny().encoder.state_dict())  # same encoder everywhere
        for step in range(3):
            model(clip(b=1, seed=10 * rank + step))
        emb = model.quantizer.embedding.clone()
        gathered = [torch.zeros_like(emb) for _ in range(world)]
        dist.all_gather(gathered, emb)
        counts = [torch.zeros_like(model.quantizer.ema_count) for _ in range(world)]
        dist.all_gather(counts, model.quantizer.ema_count.clone())
        if rank == 0:
            queue.put((torch.equal(gathered[0], gathered[1]), torch.equal(counts[0], counts[1])))
    finally:
        dist.destroy_process_group()


def test_codebook_synchronised_across_ddp_ranks():
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, _free_port(), queue), nprocs=2, start_method="spawn")
    same_codebook, same_counts = queue.get()
    assert same_codebook and same_counts


def test_non_finite_encoder_outputs_do_not_poison_the_codebook():
    model = tiny(restart_after=1).train()
    model(clip())
    z = model.encoder(clip(seed=1)).detach()
    z[0, :, 0] = float("nan")  # one latent frame of one clip diverged
    model.quantizer(z)
    assert torch.isfinite(model.quantizer.embedding).all()
    assert torch.isfinite(model.quantizer.ema_sum).all()


def test_a_training_forward_waits_for_the_device_only_once(monkeypatch):
    """The codebook's first-batch initialisation reads its flag once; after that a training forward,
    restarts and non-finite rows included, makes no call that waits for a value on the device."""
    syncs = HostSyncs(monkeypatch)
    model = tiny(restart_after=1, restart_threshold=0.5).train()
    with syncs.watch():
        model(clip())  # reads the `initialized` buffer once and remembers it
    assert syncs.calls == ["__bool__"]
    dead = torch.arange(0, model.cfg.codebook_size, 2)
    with torch.no_grad():
        model.quantizer.embedding.data[dead] = 1e3  # never chosen: dead after one step
        model.quantizer.ema_sum[dead] = 1e3
    z = model.encoder(clip(seed=1)).detach()
    z[0, :, 0] = float("nan")  # one latent frame of one clip diverged
    syncs.calls.clear()
    with syncs.watch():
        out = model.quantizer(z)
        model(clip(seed=2))
    assert syncs.calls == []
    assert out.restarted >= len(dead)
    assert model.quantizer.embedding[dead].abs().max() < 100
    assert torch.isfinite(model.quantizer.embedding).all()


def test_restarts_from_a_batch_with_no_finite_row_keep_the_codebook():
    model = tiny(restart_after=1).train()
    model(clip())
    before = model.quantizer.embedding.clone()
    z = torch.full_like(model.encoder(clip(seed=1)).detach(), float("nan"))
    out = model.quantizer(z)  # every code unused: all dead, and no candidate is finite
    assert out.restarted == model.cfg.codebook_size
    emb = model.quantizer.embedding
    assert torch.isfinite(emb).all() and torch.isfinite(model.quantizer.ema_sum).all()
    assert torch.allclose(emb, before, atol=0.05 * before.std().item())  # the old codes, jittered


def test_loading_an_uninitialised_codebook_initialises_it_again():
    model = tiny().train()
    model(clip())  # initialised, and remembered on the host
    model.load_state_dict(tiny().state_dict())  # a fresh model's state: not initialised
    assert not bool(model.quantizer.initialized)
    model(clip(seed=1))
    assert bool(model.quantizer.initialized)
    with torch.no_grad():
        z = model.encoder(clip(seed=1)).permute(0, 2, 3, 4, 1).reshape(-1, model.cfg.code_dim)
    first_ema = model.quantizer.embedding  # after one EMA step from codes drawn from z
    assert torch.cdist(first_ema, z).min(1).values.median() < 0.5 * z.norm(dim=1).mean()


# ----------------------------------------------------------------------------- every bottleneck of the registry

# The state-dict entries each bottleneck saves under ``quantizer.``: the keys of saved runs, which must not change.
SAVED_KEYS = {
    "vq": {"embedding", "ema_count", "ema_sum", "unused_steps", "initialized"},
    "fsq": set(),  # an implicit codebook
    "gaussian": {"latent_mean", "latent_std"},
}


def with_bottleneck(name: str) -> VQVAE:
    return tiny(bottleneck=name, levels=[5, 4, 3])


@pytest.mark.parametrize("name", sorted(BOTTLENECKS))
def test_every_bottleneck_keeps_its_invariants(name):
    torch.manual_seed(0)
    model = with_bottleneck(name)
    model(clip())  # a training forward: a codebook's data initialisation, running statistics
    model.eval()
    x = clip(seed=1)
    q = model.quantizer
    z = model.encoder(x).detach()
    out = q(z)
    assert model.continuous == isinstance(q, ContinuousBottleneck) != isinstance(q, DiscreteBottleneck)
    assert torch.allclose(out.latents, q.latents(z), atol=1e-6)  # eval forward: the deterministic latents
    assert torch.allclose(model.encode_latents(x), q.latents(z), atol=1e-6)
    assert out.loss.dim() == 0 and all(v.dim() == 0 for v in out.metrics().values())
    if isinstance(q, DiscreteBottleneck):
        codes = q.encode(z)
        assert codes.dtype == torch.int64 and codes.shape == (2, *model.latent_shape(4, 16))
        assert 0 <= int(codes.min()) and int(codes.max()) < q.codebook_size == model.cfg.codebook_size
        assert torch.equal(codes, out.indices) and torch.equal(model.encode(x), codes)
        assert torch.allclose(out.quantized, q.decode_codes(out.indices), atol=1e-6)
        every = q.decode_codes(torch.arange(q.codebook_size).view(1, 1, 1, -1))  # (1, D, 1, 1, K)
        assert torch.unique(every[0, :, 0, 0].t(), dim=0).shape[0] == q.codebook_size  # K distinct codes
        assert torch.equal(model.decode(codes), model.decode_latents(model.encode_latents(x)))
    else:
        latents = q.encode(z)
        assert latents.dtype == torch.float32 and latents.shape == (2, model.cfg.code_dim, 2, 4, 4)
        assert torch.equal(latents, q.encode(z)) and torch.equal(out.latents, latents)  # eval: the mean, no draw
        assert float(out.kl) >= 0 and float(q.train()(z).kl) >= 0
        assert torch.allclose(q.denormalize(q.normalize(latents)), latents, atol=1e-5)
        with pytest.raises(ConfigError, match="no codes"):
            model.encode(x)


@pytest.mark.parametrize("name", sorted(BOTTLENECKS))
def test_every_bottleneck_saves_the_keys_of_saved_runs(name):
    model = with_bottleneck(name)
    saved = {k.split(".", 1)[1] for k in model.state_dict() if k.startswith("quantizer.")}
    assert saved == SAVED_KEYS[name]
    channels = type(model.quantizer).encoder_channels(model.cfg)
    assert model.encoder.conv_out.out_channels == channels == (2 if name == "gaussian" else 1) * model.cfg.code_dim


@pytest.mark.parametrize("name", sorted(BOTTLENECKS))
def test_every_bottleneck_trains_without_waiting_for_the_device(monkeypatch, name):
    model = with_bottleneck(name).train()
    model(clip())  # a codebook reads its initialisation flag once
    syncs = HostSyncs(monkeypatch)
    with syncs.watch():
        out = model(clip(seed=1))
        out.loss.backward()
        metrics = out.bottleneck.metrics()
    assert syncs.calls == [], syncs.where
    assert all(torch.isfinite(v) for v in metrics.values())


def test_bottleneck_names_resolve_in_the_config():
    assert VQVAEConfig(bottleneck="continuous").bottleneck == "gaussian"  # the name runs were saved with
    assert VQVAEConfig(bottleneck="gaussian", code_dim=4).code_dim == 4
    with pytest.raises(ConfigError, match="'vq', 'fsq', 'gaussian', 'continuous'"):
        VQVAEConfig(bottleneck="lfq")


# ----------------------------------------------------------------------------- FSQ bottleneck


def test_fsq_codes_lie_on_the_grid_of_levels_and_round_trip_through_indices():
    fsq = FSQ((8, 5, 5, 5))
    assert fsq.codebook_size == 1000
    z = torch.randn(3, 4, 2, 3, 3) * 4
    codes = fsq.quantize(z)  # (B, D, t, h, w)
    for channel, levels in enumerate((8, 5, 5, 5)):
        values = sorted(set((codes[:, channel] * (levels // 2)).round().flatten().tolist()))
        assert set(values) <= set(range(-(levels // 2), levels - levels // 2))  # L values per channel
    indices = fsq.codes_to_indices(codes)
    assert indices.dtype == torch.int64 and 0 <= int(indices.min()) and int(indices.max()) < 1000
    assert torch.equal(fsq.decode_codes(indices), codes)
    every = torch.arange(1000).view(1, 10, 10, 10)
    assert torch.equal(fsq.codes_to_indices(fsq.decode_codes(every)), every)  # index <-> code is a bijection


def test_fsq_gradient_is_straight_through_the_bound():
    fsq = FSQ((7, 4))
    z = torch.randn(2, 2, 1, 2, 2, requires_grad=True)
    fsq.quantize(z).sum().backward()
    z2 = z.detach().clone().requires_grad_(True)
    (fsq.bound(z2) / torch.tensor([3.0, 2.0]).view(1, 2, 1, 1, 1)).sum().backward()
    assert torch.allclose(z.grad, z2.grad) and (z.grad > 0).all()


def test_fsq_tokenizer_encodes_to_the_tokens_its_forward_uses_and_has_no_losses():
    import dataclasses

    cfg = dataclasses.replace(PRESETS["tiny"], bottleneck="fsq", levels=[5, 4, 3])
    assert (cfg.code_dim, cfg.codebook_size) == (3, 60)
    model = VQVAE(cfg)
    x = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    out = model(x)
    assert out.bottleneck.loss.item() == 0.0 and torch.equal(out.loss, out.recon_loss)
    assert set(out.bottleneck.metrics()) == {"perplexity", "usage"}  # no codebook, commitment or restarts
    assert torch.equal(model.encode(x), out.bottleneck.indices)
    assert model.decode(out.bottleneck.indices).shape == x.shape
    assert not list(model.quantizer.state_dict())  # an implicit codebook: nothing to save
    with pytest.raises(ConfigError, match="bottleneck"):
        VQVAEConfig(bottleneck="lfq")
    with pytest.raises(ConfigError, match="levels"):
        VQVAEConfig(bottleneck="fsq", levels=[])


def test_an_fsq_tokenizer_feeds_the_prior_unchanged(tmp_path):
    import videosynth
    from videosynth.train.run import run_training

    data = {"name": "bouncing-shapes", "frames": 4, "size": 16, "num_samples": 16, "colour": "white"}
    train = {"steps": 2, "batch_size": 4, "sample_every": 0, "device": "cpu", "log_every": 1}
    tok = run_training({"family": "vqvae", "model": {"preset": "tiny", "bottleneck": "fsq", "levels": [4, 4, 4]},
                        "data": data, "train": train}, run_dir=tmp_path / "fsq", progress=False)
    prior = run_training({"family": "transformer", "tokenizer_run": str(tok), "model": {"preset": "tiny"},
                          "data": data, "train": train}, run_dir=tmp_path / "prior", progress=False)
    pipe = videosynth.load(prior)
    import yaml

    assert yaml.safe_load((prior / "config.yaml").read_text())["model"]["vocab_size"] == 64  # 4 * 4 * 4 codes
    clips = pipe(2, seed=0)
    assert clips.shape == (2, 3, 4, 16, 16) and clips.abs().max() <= 1
    assert torch.equal(clips, pipe(2, seed=0))


# ----------------------------------------------------------------------------- Gaussian (KL) bottleneck


def test_gaussian_bottleneck_encodes_float_latents_and_keeps_latent_statistics():
    import dataclasses

    cfg = dataclasses.replace(PRESETS["tiny"], bottleneck="gaussian", code_dim=4, kl_weight=1e-3)
    model = VQVAE(cfg)
    assert model.continuous and model.encoder.conv_out.out_channels == 8  # a mean and a log-variance per channel
    x = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    torch.manual_seed(0)
    out = model(x)  # training mode: a sampled latent, KL added
    kl = out.bottleneck
    assert kl.kl.item() > 0 and torch.allclose(kl.loss, 1e-3 * kl.kl)
    assert torch.allclose(out.loss, out.recon_loss + kl.loss) and set(kl.metrics()) == {"loss_kl"}
    latent = model.encode_latents(x)
    assert latent.dtype == torch.float32 and latent.shape == (2, 4, 2, 4, 4)
    assert model.decode_latents(latent).shape == x.shape
    model.eval()
    assert torch.equal(model(x).recon.clamp(-1, 1), model.decode_latents(latent))  # eval decodes the mean
    # the running statistics moved towards this batch and are saved with the weights
    stats = model.quantizer
    assert "quantizer.latent_mean" in model.state_dict() and not torch.equal(stats.latent_std, torch.ones(4))
    stats.latent_mean.copy_(torch.tensor([1.0, -2.0, 0.5, 0.0]))
    stats.latent_std.copy_(torch.tensor([2.0, 0.5, 1.0, 4.0]))
    assert torch.allclose(stats.denormalize(stats.normalize(latent)), latent, atol=1e-6)
    normalized = stats.normalize(torch.ones(1, 4, 1, 1, 1))
    assert torch.allclose(normalized.flatten(), torch.tensor([0.0, 6.0, 0.5, 0.25]))
    with pytest.raises(ConfigError, match="no codes; use VQVAE.decode_latents"):
        model.decode(torch.zeros(1, 2, 4, 4, dtype=torch.long))
    with pytest.raises(ConfigError, match="no codes; use VQVAE.encode_latents"):
        model.encode(x)
    with pytest.raises(ConfigError, match="float"):
        model.decode_latents(torch.zeros(1, 2, 2, 4, 4))  # 2 channels, not 4


def test_a_continuous_tokenizer_trains_and_is_refused_by_the_prior_in_one_line(tmp_path):
    from videosynth.train.run import run_training

    data = {"name": "bouncing-shapes", "frames": 4, "size": 16, "num_samples": 16, "colour": "white"}
    train = {"steps": 2, "batch_size": 4, "sample_every": 0, "device": "cpu", "log_every": 1}
    tok = run_training({"family": "vqvae", "model": {"preset": "tiny", "bottleneck": "continuous", "code_dim": 4},
                        "data": data, "train": train}, run_dir=tmp_path / "kl", progress=False)
    import json

    row = json.loads((tok / "log.jsonl").read_text().splitlines()[-1])
    assert {"loss", "loss_recon", "loss_kl", "psnr"} <= set(row) and "perplexity" not in row
    with pytest.raises(ConfigError, match="continuous bottleneck"):
        run_training({"family": "transformer", "tokenizer_run": str(tok), "model": {"preset": "tiny"},
                      "data": data, "train": train}, run_dir=tmp_path / "prior", progress=False)
    assert not (tmp_path / "prior").exists()
    import yaml

    import videosynth

    config = yaml.safe_load((tok / "config.yaml").read_text())
    assert config["model"]["bottleneck"] == "gaussian"  # the canonical name is what a run saves
    x = clip(b=1)
    now = videosynth.load(tok, device="cpu").reconstruct(x)
    config["model"]["bottleneck"] = "continuous"  # what runs saved before the name existed hold
    (tok / "config.yaml").write_text(yaml.safe_dump(config))
    old = videosynth.load(tok, device="cpu")
    assert old.model.continuous and torch.equal(old.reconstruct(x), now)
