"""DiffAugment for video: per-clip transforms, identical in every frame, differentiable."""

from __future__ import annotations

import pytest
import torch

from videosynth.augment import POLICIES, color, cutout, diff_augment, parse_policy, translation
from videosynth.errors import ConfigError


def _static_clips(b=4, t=5, size=16, seed=0):
    """Clips whose frames are all the same image: float (B, 3, T, size, size) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    frame = torch.rand(b, 3, 1, size, size, generator=g) * 2 - 1
    return frame.expand(-1, -1, t, -1, -1).contiguous()


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_same_transform_in_every_frame(name):
    torch.manual_seed(0)
    out = POLICIES[name](_static_clips())
    assert out.shape == (4, 3, 5, 16, 16)
    for t in range(1, 5):  # a static clip stays static: no motion is invented
        assert torch.equal(out[:, :, t], out[:, :, 0])


def test_translation_moves_a_pixel_by_at_most_an_eighth_and_keeps_it():
    torch.manual_seed(0)
    x = torch.full((64, 1, 2, 16, 16), -1.0)
    x[:, :, :, 8, 8] = 1.0  # one bright pixel in the middle
    out = translation(x)
    shift = 2  # 16 / 8
    for clip in out[:, 0, 0]:
        ys, xs = torch.nonzero(clip == 1.0, as_tuple=True)
        assert len(ys) == 1  # moved, not blurred
        assert abs(int(ys[0]) - 8) <= shift and abs(int(xs[0]) - 8) <= shift
    moved = sum(int(torch.nonzero(c == 1.0)[0].tolist() != [8, 8]) for c in out[:, 0, 0])
    assert moved > 32  # 24 of the 25 shifts move it


def test_translation_fills_the_border_with_zeros():
    torch.manual_seed(1)
    out = translation(torch.ones(32, 1, 1, 16, 16))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert (out == 0).any()


def test_cutout_zeroes_one_square_at_most_half_the_side():
    torch.manual_seed(0)
    out = cutout(torch.ones(32, 3, 2, 16, 16))
    zeros = (out[:, 0, 0] == 0).flatten(1).sum(1)  # (B,)
    assert (zeros > 0).all() and (zeros <= 8 * 8).all()
    assert (zeros == 64).any()  # a square fully inside the frame
    assert torch.equal(out[:, 0], out[:, 1])  # all channels alike


def test_color_draws_per_clip_and_ignores_the_other_clips():
    x = _static_clips(b=2)
    twins = torch.cat([x[:1], x[:1]])  # two copies of one clip
    torch.manual_seed(0)
    out = color(twins)
    assert not torch.allclose(out[0], out[1])  # each clip gets its own brightness/saturation/contrast
    other = torch.cat([x[:1], -x[1:]])  # same first clip, a different second one
    torch.manual_seed(0)
    assert torch.equal(color(other)[0], out[0])  # statistics are per clip, not per batch


def test_gradients_flow_through_every_policy():
    x = _static_clips().requires_grad_(True)
    torch.manual_seed(0)
    diff_augment(x, tuple(POLICIES)).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_policy_parsing():
    assert parse_policy("") == ()
    assert parse_policy(" color, translation ,cutout") == ("color", "translation", "cutout")
    x = _static_clips()
    assert diff_augment(x, ()) is x
    with pytest.raises(ConfigError, match="did you mean 'translation'"):
        parse_policy("color,tranlation")
    with pytest.raises(ValueError, match="B, C, T, H, W"):
        diff_augment(torch.zeros(2, 3, 8, 8), ("color",))
