"""Layout/range conversions and resize-crop."""

import numpy as np
import pytest
import torch

from videosynth.data.transforms import ClipTransform, cover_size, crop_box, resize_crop, to_float, to_uint8


def test_to_float_layout_range_and_exact_round_trip():
    frames = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(2, 0).repeat(3, -1)
    video = to_float(frames)
    assert video.shape == (3, 2, 16, 16) and video.dtype == torch.float32
    assert video.min() == -1.0 and video.max() == 1.0
    np.testing.assert_array_equal(to_uint8(video), frames)
    batch = torch.stack([video, video])  # (B, C, T, H, W)
    assert to_uint8(batch).shape == (2, 2, 16, 16, 3)


def test_grayscale_and_alpha_become_rgb():
    gray = np.full((2, 4, 4), 200, np.uint8)
    assert to_float(gray).shape == (3, 2, 4, 4)
    rgba = np.zeros((2, 4, 4, 4), np.uint8)
    assert to_float(rgba).shape == (3, 2, 4, 4)
    with pytest.raises(ValueError):
        to_float(np.zeros((2, 4, 4, 3), np.float32))


def test_to_uint8_clamps_out_of_range():
    out = to_uint8(torch.tensor([-3.0, 0.0, 3.0]).view(1, 1, 1, 3).expand(3, 1, 1, 3))  # (C, T, H, W)
    assert out.min() == 0 and out.max() == 255


def test_resize_crop_shapes_and_center():
    video = torch.zeros(3, 2, 40, 80)
    video[:, :, :, 20:60] = 1.0  # bright centre band
    out = resize_crop(video, 16)
    assert out.shape == (3, 2, 16, 16)
    assert torch.allclose(out, torch.ones_like(out))  # the centre crop is the bright band
    assert resize_crop(video, (8, 12)).shape == (3, 2, 8, 12)


def test_random_crop_is_seeded():
    frames = np.random.default_rng(0).integers(0, 256, (3, 24, 48, 3), dtype=np.uint8)
    t = ClipTransform(16, crop="random")
    a = t(frames, torch.Generator().manual_seed(1))
    b = t(frames, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (3, 3, 16, 16)
    boxes = {crop_box(24, 48, (16, 16), "random", torch.Generator().manual_seed(s)) for s in range(20)}
    assert len(boxes) > 1
    # resizing in uint8 matches the float path up to uint8 rounding
    center = ClipTransform(16)(frames)
    assert (center - resize_crop(to_float(frames), 16)).abs().max() <= 1.0 / 127.5 + 1e-6
    assert torch.equal(ClipTransform(24)(frames[:, :, 12:36]), to_float(frames[:, :, 12:36]))  # no-op size


def test_cover_size_leaves_only_the_crop():
    assert cover_size(240, 320, 64) == (64, 85)
    assert cover_size(320, 240, 64) == (85, 64)
    assert cover_size(20, 30, 64) == (64, 96)  # upscaled to cover
    assert cover_size(240, 320, (32, 64)) == (48, 64)
    frames = torch.randint(0, 256, (2, 64, 85, 3), dtype=torch.uint8)
    assert torch.equal(ClipTransform(64)(frames), to_float(frames[:, :, 10:74]))  # centre crop, no resize
