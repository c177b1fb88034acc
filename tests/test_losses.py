"""GAN losses, penalties, reconstruction and perceptual losses."""

import math

import pytest
import torch
from torch import nn

from videosynth.errors import ConfigError, MissingWeightsError
from videosynth.metrics.lpips import LPIPSAlex
from videosynth.losses import (
    GAN_LOSSES,
    GP_WEIGHT,
    RECONSTRUCTION_LOSSES,
    PerceptualLoss,
    get_gan_loss,
    gradient_norm_penalty,
    interpolates,
    mode_seeking_loss,
    r1_penalty,
)

LOG2 = math.log(2.0)


def test_values_at_zero_logits():
    zero = torch.zeros(4)
    assert GAN_LOSSES["minimax"].d_loss(zero, zero).item() == pytest.approx(2 * LOG2)
    assert GAN_LOSSES["minimax"].g_loss(zero).item() == pytest.approx(-LOG2)  # log(1 - 1/2)
    assert GAN_LOSSES["non-saturating"].g_loss(zero).item() == pytest.approx(LOG2)  # -log(1/2)
    assert GAN_LOSSES["hinge"].d_loss(zero, zero).item() == pytest.approx(2.0)
    assert GAN_LOSSES["wgan"].d_loss(zero, zero).item() == 0.0


def test_values_on_simple_logits():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sig = torch.sigmoid
    bce = (-torch.log(sig(real))).mean() + (-torch.log(1 - sig(fake))).mean()
    assert GAN_LOSSES["minimax"].d_loss(real, fake).item() == pytest.approx(bce.item(), rel=1e-6)
    assert GAN_LOSSES["minimax"].g_loss(fake).item() == pytest.approx(torch.log(1 - sig(fake)).mean().item(), rel=1e-6)
    assert GAN_LOSSES["non-saturating"].g_loss(fake).item() == pytest.approx(-torch.log(sig(fake)).mean().item(), rel=1e-6)
    # hinge: mean(relu(1 - r)) + mean(relu(1 + f)) = (0 + 2)/2 + (1.5 + 0)/2
    assert GAN_LOSSES["hinge"].d_loss(real, fake).item() == pytest.approx(1.75)
    assert GAN_LOSSES["hinge"].g_loss(fake).item() == pytest.approx(1.25)
    assert GAN_LOSSES["wgan"].d_loss(real, fake).item() == pytest.approx(-1.25 - 0.5)
    assert GAN_LOSSES["wgan"].g_loss(fake).item() == pytest.approx(1.25)


@pytest.mark.parametrize("name", sorted(GAN_LOSSES))
def test_signs(name):
    loss = GAN_LOSSES[name]
    good_d = loss.d_loss(torch.full((3,), 5.0), torch.full((3,), -5.0))
    bad_d = loss.d_loss(torch.full((3,), -5.0), torch.full((3,), 5.0))
    assert good_d < bad_d  # D is rewarded for separating real from fake
    assert loss.g_loss(torch.full((3,), 5.0)) < loss.g_loss(torch.full((3,), -5.0))  # G for fooling D


@pytest.mark.parametrize("name", sorted(GAN_LOSSES))
def test_float32_from_half_inputs(name):
    x = torch.tensor([30.0, -30.0], dtype=torch.bfloat16)
    d = GAN_LOSSES[name].d_loss(x, x)
    g = GAN_LOSSES[name].g_loss(x)
    assert d.dtype == torch.float32 and g.dtype == torch.float32
    assert torch.isfinite(d) and torch.isfinite(g)


def test_non_saturating_is_stable_for_large_logits():
    g = GAN_LOSSES["non-saturating"].g_loss(torch.tensor([-200.0], requires_grad=True))
    assert g.item() == pytest.approx(200.0)


def test_unknown_loss_suggests_closest():
    with pytest.raises(ConfigError, match="non-saturating"):
        get_gan_loss("nonsaturating")
    assert get_gan_loss("hinge") is GAN_LOSSES["hinge"]


def gradient_penalty(critic_fn, real, fake, cond=None, weight=GP_WEIGHT, generator=None):
    """WGAN-GP as the GAN objectives compute it: the critic's scores on interpolates, then the penalty."""
    x_hat = interpolates(real, fake, generator)
    scores = critic_fn(x_hat) if cond is None else critic_fn(x_hat, cond)
    return gradient_norm_penalty(scores, x_hat, weight)


def test_gradient_penalty_linear_critic():
    # The gradient of w.x is w everywhere, so the penalty is lambda * (||w|| - 1)^2.
    w = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))

    def critic(x):
        return (x * w).flatten(1).sum(1)

    real = torch.randn(5, 3, 2, 4, 4)
    fake = torch.randn(5, 3, 2, 4, 4)
    gp = gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx(GP_WEIGHT * (w.norm().item() - 1) ** 2, rel=1e-5)
    assert gradient_penalty(critic, real, fake, weight=1.0).item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)


def test_gradient_penalty_backpropagates_into_critic_with_condition():
    critic = nn.Linear(6, 1)

    def critic_fn(x, cond):
        return critic(x.flatten(1)).squeeze(1) + cond.sum(1)

    real, fake = torch.randn(4, 6), torch.randn(4, 6, requires_grad=True)
    gp = gradient_penalty(critic_fn, real, fake, cond=torch.ones(4, 2))
    gp.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0
    assert fake.grad is None  # fake is detached
    expected = GP_WEIGHT * (critic.weight.norm() - 1) ** 2
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_penalty_is_seeded_by_generator():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 1))
    real, fake = torch.randn(3, 8), torch.randn(3, 8)
    a = gradient_penalty(lambda x: critic(x).squeeze(1), real, fake, generator=torch.Generator().manual_seed(1))
    b = gradient_penalty(lambda x: critic(x).squeeze(1), real, fake, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_r1_penalty_linear_critic():
    w = torch.tensor([3.0, 4.0])
    real = torch.randn(6, 2).requires_grad_(True)
    d_real = real @ w
    assert r1_penalty(d_real, real, gamma=2.0).item() == pytest.approx(25.0)
    with pytest.raises(ValueError):
        r1_penalty(torch.randn(6, 2) @ w, torch.randn(6, 2))


def test_reconstruction_losses():
    a, b = torch.zeros(2, 3, 2, 4, 4), torch.full((2, 3, 2, 4, 4), 0.5)
    assert RECONSTRUCTION_LOSSES["l1"](a, b).item() == pytest.approx(0.5)
    assert RECONSTRUCTION_LOSSES["l2"](a, b).item() == pytest.approx(0.25)


def test_perceptual_loss_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOSYNTH_WEIGHTS", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(MissingWeightsError, match="lpips_alex.safetensors.*perceptual_weight=0"):
        PerceptualLoss()
    with pytest.raises(MissingWeightsError, match="nothere.pt"):
        PerceptualLoss(tmp_path / "nothere.pt")


def _save_random_lpips(path, seed=0):
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    net = LPIPSAlex()
    tensors = {f"features.{k}": v for k, v in net.features.state_dict().items()}
    tensors.update({f"lin{i}.model.1.weight": lin.weight.abs().contiguous() for i, lin in enumerate(net.lins)})
    save_file(tensors, str(path))


def test_perceptual_loss_from_local_safetensors(tmp_path, monkeypatch):
    _save_random_lpips(tmp_path / "lpips_alex.safetensors")
    monkeypatch.setenv("VIDEOSYNTH_WEIGHTS", str(tmp_path))
    loss = PerceptualLoss()
    x = torch.rand(1, 3, 2, 32, 32) * 2 - 1
    y = (torch.rand(1, 3, 2, 32, 32) * 2 - 1).requires_grad_(True)
    value = loss(x, y)
    assert value.dtype == torch.float32 and value.item() > 0
    frames = lambda v: v.transpose(1, 2).reshape(2, 3, 32, 32)  # noqa: E731
    assert value.item() == pytest.approx(loss.net(frames(x), frames(y)).mean().item(), rel=1e-5)
    assert loss(x, x).item() == 0.0
    value.backward()
    assert y.grad is not None
    assert not any(p.requires_grad for p in loss.parameters())


def test_perceptual_loss_rejects_wrong_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"features.0.weight": torch.zeros(2, 2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(MissingWeightsError, match="lins.0.weight|features"):
        PerceptualLoss(tmp_path / "bad.safetensors")


def test_lpips_metric_and_loss_share_one_network(tmp_path, monkeypatch):
    from videosynth.metrics.recon import lpips_distance

    _save_random_lpips(tmp_path / "lpips_alex.safetensors", seed=3)
    monkeypatch.setenv("VIDEOSYNTH_WEIGHTS", str(tmp_path))
    x = torch.rand(2, 3, 2, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 2, 32, 32) * 2 - 1
    per_video = lpips_distance(x, y)
    assert per_video.shape == (2,) and (per_video > 0).all()
    assert per_video.mean().item() == pytest.approx(PerceptualLoss()(x, y).item(), rel=1e-5)
    # an explicit folder works too, and identical clips are at distance 0
    assert lpips_distance(x, x, tmp_path).abs().max().item() == 0.0


def test_mode_seeking_charges_a_generator_that_ignores_its_noise_within_a_class():
    """One clip per class (the collapse MSGAN targets) costs far more than varied clips; only pairs of
    one class count, a batch without such a pair costs 0, and the gradient pushes the pair apart."""
    g = torch.Generator().manual_seed(0)
    per_class = torch.rand(2, 3, 4, 8, 8, generator=g) * 2 - 1
    labels = torch.tensor([0, 1, 0, 1])
    collapsed = per_class[labels] + 1e-3 * torch.randn(4, 3, 4, 8, 8, generator=g)  # noise changes nothing
    varied = torch.rand(4, 3, 4, 8, 8, generator=g) * 2 - 1
    assert mode_seeking_loss(collapsed, labels) > 100 * mode_seeking_loss(varied, labels)
    assert mode_seeking_loss(collapsed) < 10  # across classes the clips differ: every pair is not one class
    assert mode_seeking_loss(varied, torch.tensor([0, 1, 2, 3])) == 0  # no two clips of one class
    x = collapsed.clone().requires_grad_(True)
    loss = mode_seeking_loss(x, labels)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    stepped = (x - 1e-2 * x.grad).detach()
    assert mode_seeking_loss(stepped, labels) < loss  # descending it separates the clips of one class
    expected = 1 / ((collapsed[0] - collapsed[2]).abs().mean() / 2 + (collapsed[1] - collapsed[3]).abs().mean() / 2
                    + 1e-5)
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)
