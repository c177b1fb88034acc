"""VideoGAN models: every preset builds and has the documented shapes; conditioning,
two-stream composition, spectral norm and config validation."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from videosynth.config import from_dict
from videosynth.errors import ConfigError
from videosynth.models import layers
from videosynth.models.videogan import (
    build_modules,
    PRESETS,
    Discriminator,
    TwoStreamGenerator,
    VideoGANConfig,
    VideoGenerator,
    plan_layers,
)

# Presets at full width are built once with batch 1; the others get batch 2.
FULL_WIDTH_BATCH = 1


def _nets(cfg) -> SimpleNamespace:
    """The bare networks a checkpoint of ``cfg`` holds (``build_modules`` without a condition), by name."""
    return SimpleNamespace(**{name: module.net for name, module in build_modules(cfg, None).items()})


def _rng(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_with_documented_shape(name):
    cfg = PRESETS[name]
    torch.manual_seed(0)
    model = _nets(cfg)
    batch = FULL_WIDTH_BATCH if cfg.size >= 64 else 2
    z = model.generator.sample_noise(batch, _rng())
    assert z.shape == (batch, cfg.z_dim)
    with torch.no_grad():
        video = model.generator(z)
        logits = model.discriminator(video)
    assert video.shape == (batch, cfg.channels, cfg.frames, cfg.size, cfg.size)
    assert video.dtype == torch.float32
    assert torch.isfinite(video).all() and video.abs().max() <= 1
    assert logits.shape == (batch,) and torch.isfinite(logits).all()


def test_seed_network_is_the_paper_network():
    cfg = PRESETS["seed-64x64x32"]
    plan = plan_layers(cfg)
    assert plan.g_widths == [512, 256, 128, 64] and plan.d_widths == [64, 128, 256, 512]
    g = VideoGenerator(cfg)
    first = g.stack.blocks[0].conv
    assert first.in_channels == 100 and first.kernel_size == (2, 4, 4)
    assert g.to_video.out_channels == 3
    d = Discriminator(cfg)
    assert isinstance(d.blocks[0].norm, torch.nn.Identity)  # no BatchNorm on the first D layer
    assert isinstance(d.blocks[1].norm, torch.nn.BatchNorm3d)
    assert d.to_logit.kernel_size == (2, 4, 4)


@pytest.mark.parametrize("size,frames", [(32, 8), (32, 32), (16, 16), (8, 2), (32, 4)])
def test_size_and_frames_are_independent(size, frames):
    cfg = VideoGANConfig(size=size, frames=frames, g_base=2, d_base=2, z_dim=4)
    model = _nets(cfg)
    with torch.no_grad():
        video = model.generator(model.generator.sample_noise(2, _rng()))
    assert video.shape == (2, 3, frames, size, size)
    assert model.discriminator(video).shape == (2,)


@pytest.mark.parametrize("generator", ["single", "two-stream"])
@pytest.mark.parametrize("g_conditioning", ["concat", "batchnorm"])
def test_condition_changes_generator_output(generator, g_conditioning):
    cfg = dataclasses.replace(PRESETS["tiny"], generator=generator, g_conditioning=g_conditioning, cond_dim=6)
    g = _nets(cfg).generator
    if g_conditioning == "batchnorm":  # the CBN projections start at zero: give them weights
        for m in g.modules():
            if isinstance(m, layers.ConditionalBatchNorm):
                torch.nn.init.normal_(m.gamma.weight)
                torch.nn.init.normal_(m.beta.weight)
    g.eval()
    z = g.sample_noise(2, _rng())
    c1, c2 = torch.randn(2, 6, generator=_rng(1)), torch.randn(2, 6, generator=_rng(2))
    v1, v2 = g(z, c1), g(z, c2)
    assert not torch.allclose(v1, v2)
    assert torch.equal(v1, g(z, c1))


@pytest.mark.parametrize("spectral", [False, True])
def test_projection_discriminator_uses_condition(spectral):
    cfg = dataclasses.replace(PRESETS["tiny"], cond_dim=5, d_spectral_norm=spectral)
    d = Discriminator(cfg).eval()
    x = torch.rand(3, 3, cfg.frames, cfg.size, cfg.size) * 2 - 1
    c = torch.randn(3, 5, generator=_rng(1))
    out = d(x, c)
    assert out.shape == (3,)
    assert not torch.allclose(out, d(x, torch.zeros_like(c)))
    # The projection term is exactly <phi(x), W c>.
    phi = d.features(x).sum(dim=(2, 3, 4))
    base = d.to_logit(d.features(x)).flatten()
    assert torch.allclose(out, base + (phi * d.projection(c)).sum(1), atol=1e-5)


def test_condition_mismatch_is_a_config_error():
    g = _nets(dataclasses.replace(PRESETS["tiny"], cond_dim=4)).generator
    z = g.sample_noise(2, _rng())
    with pytest.raises(ConfigError, match="cond_dim=4"):
        g(z)
    with pytest.raises(ConfigError, match="cond_dim"):
        g(z, torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="unconditional"):
        _nets(PRESETS["tiny"]).generator(z[:, :8], torch.zeros(2, 4))


def test_two_stream_output_is_mask_composition():
    cfg = PRESETS["tiny-two-stream"]
    g = TwoStreamGenerator(cfg)
    z = g.sample_noise(3, _rng())
    parts = g(z, return_parts=True)
    fg, mask, bg = parts["foreground"], parts["mask"], parts["background"]
    assert fg.shape == (3, 3, cfg.frames, cfg.size, cfg.size)
    assert mask.shape == (3, 1, cfg.frames, cfg.size, cfg.size)
    assert bg.shape == (3, 3, 1, cfg.size, cfg.size)
    assert mask.min() >= 0 and mask.max() <= 1
    expected = mask * fg + (1 - mask) * bg.expand_as(fg)
    assert torch.allclose(parts["video"], expected, atol=1e-6)
    g.eval()
    assert torch.allclose(g(z), g(z, return_parts=True)["video"])


def test_single_stream_return_parts():
    g = VideoGenerator(PRESETS["tiny"]).eval()
    z = g.sample_noise(2, _rng())
    assert torch.equal(g(z, return_parts=True)["video"], g(z))


def test_sample_noise_is_deterministic():
    g = VideoGenerator(PRESETS["tiny"])
    assert torch.equal(g.sample_noise(4, _rng(3)), g.sample_noise(4, _rng(3)))


def test_spectral_norm_discriminator_has_no_batchnorm():
    d = Discriminator(dataclasses.replace(PRESETS["tiny"], d_spectral_norm=True))
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in d.modules())
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs and all(layers.is_spectral_normed(m) for m in convs)
    d.train()
    for _ in range(30):  # power iteration converges: top singular value of each weight -> 1
        d(torch.zeros(1, 3, 4, 16, 16))
    w = convs[1].weight.flatten(1)
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_initialisation_is_dcgan():
    torch.manual_seed(0)
    g = VideoGenerator(PRESETS["seed-64x64x32"])
    w = g.stack.blocks[1].conv.weight
    assert w.std().item() == pytest.approx(0.02, rel=0.05) and abs(w.mean().item()) < 1e-3
    bn = g.stack.blocks[1].norm
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01) and torch.all(bn.bias == 0)


def test_gradients_reach_every_parameter():
    cfg = dataclasses.replace(PRESETS["tiny-two-stream"], cond_dim=3, g_conditioning="batchnorm")
    model = _nets(cfg)
    z, c = model.generator.sample_noise(2, _rng()), torch.randn(2, 3)
    model.discriminator(model.generator(z, c), c).sum().backward()
    missing = [n for net in (model.generator, model.discriminator) for n, p in net.named_parameters()
               if p.grad is None]
    assert not missing


@pytest.mark.parametrize("data,key", [
    ({"size": 48}, "size"), ({"frames": 12}, "frames"), ({"generator": "two_stream"}, "two-stream"),
    ({"d_norm": "btch"}, "batch"), ({"g_base": 0}, "g_base"),
])
def test_bad_config_is_a_config_error(data, key):
    with pytest.raises(ConfigError, match=key):
        from_dict(VideoGANConfig, data, where="model")


def test_layers_conv_nd_dispatch():
    assert isinstance(layers.conv_nd(2, 3, 4, 3), torch.nn.Conv2d)
    assert isinstance(layers.conv_transpose_nd(1, 3, 4, 3), torch.nn.ConvTranspose1d)
    with pytest.raises(ValueError):
        layers.conv_nd(4, 3, 4, 3)
