"""The masked-token prior: its masks, its parallel decoding, and that it learns a conditional pattern."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from videosynth.errors import ConfigError
from videosynth.models.maskgit import PRESETS, MaskedPrior
from videosynth.sampling.masked import MaskedSampleConfig, generate, mask_schedule
from videosynth.sampling.rollout import TokenCondition, windowed
from videosynth.train.maskgit import draw_mask

TINY = PRESETS["tiny"]  # 2 x 4 x 4 tokens, 64 codes


def test_the_cosine_schedule_masks_all_at_the_start_and_none_at_the_end():
    assert mask_schedule(0.0) == 1.0 and abs(mask_schedule(1.0)) < 1e-12
    r = torch.linspace(0, 1, 11)
    assert torch.all(mask_schedule(r)[1:] <= mask_schedule(r)[:-1])


def test_training_masks_mask_at_least_one_token_and_keep_prefixes_visible():
    torch.manual_seed(0)
    mask = draw_mask(256, 32, 16, prefix_share=0.5, device="cpu")  # 2 latent frames of 16 tokens
    assert mask.shape == (256, 32) and mask.any(1).all()
    prefixed = ~mask[:, :16].any(1)  # rows whose first latent frame stayed visible
    assert 0.3 < prefixed.float().mean() < 0.75  # half the rows keep a prefix, others may by chance
    assert torch.all(mask[prefixed, 16:].any(1))
    without = draw_mask(256, 32, 16, prefix_share=0.0, device="cpu")
    share = without.float().mean().item()
    assert abs(share - 2 / math.pi) < 0.08  # E[cos(pi/2 r)] = 2/pi


def _prior(**kw) -> MaskedPrior:
    torch.manual_seed(0)
    from dataclasses import replace
    return MaskedPrior(replace(TINY, **kw)).eval()


def test_decoding_fills_every_position_keeps_the_prime_and_is_deterministic():
    prior = _prior()
    prime = torch.randint(0, 64, (3, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    options = MaskedSampleConfig(steps=4)
    a = generate(prior, (3, 2, 4, 4), None, torch.Generator().manual_seed(5), options, prime=prime)
    b = generate(prior, (3, 2, 4, 4), None, torch.Generator().manual_seed(5), options, prime=prime)
    assert a.shape == (3, 2, 4, 4) and a.dtype == torch.long
    assert torch.equal(a, b)
    assert torch.equal(a[:, :1], prime)
    assert a.min() >= 0 and a.max() < 64  # no mask id left
    one_step = generate(prior, (3, 1, 4, 4), None, torch.Generator().manual_seed(5), MaskedSampleConfig(steps=1))
    assert one_step.max() < 64


def test_bad_shapes_and_guidance_without_a_null_are_refused():
    prior = _prior(cond_dim=8)
    cond = TokenCondition(torch.zeros(2, 8))
    with pytest.raises(ConfigError, match="h, w must match"):
        generate(prior, (2, 1, 3, 3), cond, None, MaskedSampleConfig())
    with pytest.raises(ConfigError, match="null condition"):
        generate(prior, (2, 1, 4, 4), cond, None, MaskedSampleConfig(guidance_scale=2.0))
    with pytest.raises(ConfigError, match="cond_dim"):
        prior(torch.zeros(2, 16, dtype=torch.long))


def test_the_shared_rollout_keeps_context_and_reaches_the_length():
    prior = _prior()
    g = torch.Generator().manual_seed(0)
    seen = []

    def window(length, context, first):
        seen.append((length, None if context is None else context.shape[1], first))
        return generate(prior, (2, length, 4, 4), None, g, MaskedSampleConfig(steps=2), prime=context)

    out = windowed(window, 5, 2, 1, None)
    assert out.shape == (2, 5, 4, 4)
    assert seen == [(2, None, 0), (2, 1, 1), (2, 1, 2), (2, 1, 3)]


def test_a_conditional_prior_learns_a_pattern_per_class_and_guidance_decodes_it():
    """Class c's grids are all token c (three classes); after training, decoding in 4 parallel steps gives them."""
    prior = _prior(cond_dim=8)
    prior.train()
    emb = torch.nn.Embedding(4, 8)  # row 3 is the null condition
    opt = torch.optim.AdamW(list(prior.parameters()) + list(emb.parameters()), lr=3e-3)
    for _ in range(150):
        labels = torch.randint(0, 3, (16,))
        tokens = labels[:, None].expand(16, 32)  # (B, N)
        mask = draw_mask(16, 32, 16, 0.2, "cpu")
        cond = emb(torch.where(torch.rand(16) < 0.1, torch.full_like(labels, 3), labels))
        logits = prior(tokens.masked_fill(mask, prior.mask_id), cond)
        loss = F.cross_entropy(logits[mask], tokens[mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
    labels = torch.tensor([0, 1, 2])
    with torch.no_grad():
        cond = TokenCondition(emb(labels), None, emb(torch.full((3,), 3)), None)
    out = generate(prior, (3, 2, 4, 4), cond, torch.Generator().manual_seed(0),
                   MaskedSampleConfig(steps=4, guidance_scale=2.0))
    assert (out.reshape(3, -1) == labels[:, None]).float().mean() > 0.95
