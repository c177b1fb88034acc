"""Sampling: cached == uncached, guidance, top-k / top-p, prime, rollout, decoding."""

import pytest
import torch

from videosynth.errors import ConfigError
from videosynth.models.transformer import PRESETS, Prior, PriorConfig
from videosynth.models.vqvae import PRESETS as VQ_PRESETS
from videosynth.models.vqvae import VQVAE
from videosynth.sampling.ar import choose, decode_tokens, filter_logits, generate, rollout

COND_DIM = 8


def prior_(cond_dim=0) -> Prior:
    torch.manual_seed(0)
    cfg = PriorConfig(**{**vars(PRESETS["tiny"]), "cond_dim": cond_dim})
    prior = Prior(cfg).eval()
    with torch.no_grad():
        prior.head.weight.mul_(50)  # sharpen the untrained distribution so tokens depend on the context
    return prior


def seed(s=0) -> torch.Generator:
    return torch.Generator().manual_seed(s)


SHAPE = (2, 4, 4)


@pytest.mark.parametrize("kwargs", [{}, {"top_k": 5}, {"top_p": 0.8, "temperature": 0.7}])
def test_cached_equals_uncached(kwargs):
    prior = prior_()
    a = generate(prior, SHAPE, 3, generator=seed(), use_cache=True, **kwargs)
    b = generate(prior, SHAPE, 3, generator=seed(), use_cache=False, **kwargs)
    assert a.shape == (3, *SHAPE) and a.dtype == torch.long
    assert torch.equal(a, b)
    assert not torch.equal(a, generate(prior, SHAPE, 3, generator=seed(1), **kwargs))


def test_cached_equals_uncached_with_guidance_and_prime():
    prior = prior_(COND_DIM)
    cond, null = torch.randn(2, COND_DIM), torch.zeros(COND_DIM)
    prime = torch.randint(0, 64, (2, 1, 4, 4))
    kw = dict(cond=cond, null_cond=null, guidance_scale=3.0, prime=prime)
    a = generate(prior, SHAPE, 2, generator=seed(), use_cache=True, **kw)
    b = generate(prior, SHAPE, 2, generator=seed(), use_cache=False, **kw)
    assert torch.equal(a, b)
    assert torch.equal(a[:, :1], prime)


def test_fast_path_equals_uncached_reference_with_guidance_top_k_prime_and_sound():
    torch.manual_seed(0)
    cfg = PriorConfig(**{**vars(PRESETS["tiny"]), "cond_dim": COND_DIM, "audio_dim": 3, "frames_per_latent": 2})
    prior = Prior(cfg).eval()
    with torch.no_grad():
        prior.head.weight.mul_(50)
    cond, null = torch.randn(2, COND_DIM), torch.zeros(COND_DIM)
    sound, null_sound = torch.randn(2, 4, 3), torch.zeros(2, 4, 3)  # (B, T, A): 4 video frames, 2 latent
    prime = torch.randint(0, 64, (2, 1, 4, 4), generator=seed(2))
    for kw in (dict(top_k=5), dict(top_k=5, temperature=0.8, prime=prime), dict(top_p=0.9, prime=prime)):
        kw.update(cond=cond, null_cond=null, guidance_scale=2.5, sound=sound, null_sound=null_sound)
        fast = generate(prior, SHAPE, 2, generator=seed(), use_cache=True, **kw)
        assert torch.equal(fast, generate(prior, SHAPE, 2, generator=seed(), use_cache=False, **kw))
    with pytest.raises(ConfigError, match="sound covers"):
        generate(prior, SHAPE, 2, cond=cond, sound=sound[:, :2])


def test_the_draw_is_torch_multinomials():
    probs = torch.rand(6, 50).softmax(-1)
    want = torch.multinomial(probs, 1, generator=seed(4))[:, 0]
    assert torch.equal(choose(probs.log(), 1.0, None, None, seed(4)), want)


def test_guidance_scale_one_is_plain_conditional_and_zero_is_unconditional():
    prior = prior_(COND_DIM)
    cond, null = torch.randn(2, COND_DIM), torch.randn(COND_DIM)
    plain = generate(prior, SHAPE, 2, cond=cond, generator=seed())
    guided1 = generate(prior, SHAPE, 2, cond=cond, null_cond=null, guidance_scale=1.0, generator=seed())
    assert torch.equal(plain, guided1)
    guided0 = generate(prior, SHAPE, 2, cond=cond, null_cond=null, guidance_scale=0.0, generator=seed())
    uncond = generate(prior, SHAPE, 2, cond=null.expand(2, -1), generator=seed())
    assert torch.equal(guided0, uncond)
    with pytest.raises(ConfigError, match="null_cond"):
        generate(prior, SHAPE, 2, cond=cond, guidance_scale=2.0)
    with pytest.raises(ConfigError, match="conditional"):
        generate(prior, SHAPE, 2)


def test_top_k_one_and_tiny_top_p_are_greedy():
    prior = prior_()
    greedy = generate(prior, SHAPE, 2, temperature=0.0)
    assert torch.equal(generate(prior, SHAPE, 2, top_k=1, generator=seed(5)), greedy)
    assert torch.equal(generate(prior, SHAPE, 2, top_p=1e-6, generator=seed(6)), greedy)


def test_filter_logits():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[True, False, False, True]]
    probs = logits.softmax(-1)[0]  # top-1 holds ~0.64 of the mass
    kept = ~torch.isinf(filter_logits(logits, top_p=float(probs[1]) + 0.01))
    assert kept.tolist() == [[False, True, True, False]]
    assert torch.allclose(filter_logits(logits, temperature=2.0), logits / 2)


def test_prime_tokens_are_kept():
    prior = prior_()
    prime = torch.randint(0, 64, (2, 1, 4, 4), generator=seed(3))
    out = generate(prior, SHAPE, 2, prime=prime, generator=seed())
    assert torch.equal(out[:, :1], prime)
    full = torch.randint(0, 64, (2, *SHAPE))
    assert torch.equal(generate(prior, SHAPE, 2, prime=full), full)
    with pytest.raises(ConfigError, match="prime"):
        generate(prior, SHAPE, 2, prime=torch.zeros(2, 1, 3, 3, dtype=torch.long))


def test_generate_rejects_grids_the_prior_cannot_hold():
    with pytest.raises(ConfigError, match="rollout"):
        generate(prior_(), (3, 4, 4), 1)
    with pytest.raises(ConfigError, match="top_p"):
        generate(prior_(), SHAPE, 1, top_p=0.0)
    with pytest.raises(ConfigError, match="top_k"):
        generate(prior_(), SHAPE, 1, top_k=0)


@pytest.mark.parametrize("total_t,context_t", [(7, None), (5, 0), (1, 1)])
def test_rollout_produces_requested_frames(total_t, context_t):
    prior = prior_()
    prime = torch.randint(0, 64, (2, 1, 4, 4), generator=seed(4))
    out = rollout(prior, total_t, 2, context_t=context_t, prime=prime, generator=seed())
    assert out.shape == (2, total_t, 4, 4)
    assert torch.equal(out[:, :1], prime)
    cached = rollout(prior, total_t, 2, context_t=context_t, prime=prime, generator=seed(), use_cache=False)
    assert torch.equal(out, cached)
    with pytest.raises(ConfigError, match="context_t"):
        rollout(prior, 4, 2, context_t=2)


def test_decode_tokens_through_tokenizer():
    torch.manual_seed(0)
    vq = VQVAE(VQ_PRESETS["tiny"])
    prior = prior_()
    toks = rollout(prior, 4, 3, generator=seed())
    video = decode_tokens(vq, toks, chunk=2)
    assert video.shape == (3, 3, 8, 16, 16)
    assert video.min() >= -1 and video.max() <= 1
    assert vq.training  # mode restored


def test_a_prior_with_broken_weights_is_refused_in_one_line():
    from videosynth.errors import VideoSynthError

    prior = prior_()
    with torch.no_grad():
        prior.head.weight[0, 0] = float("nan")  # every logit of token 0 becomes NaN
    with pytest.raises(VideoSynthError, match="non-finite logits"):
        generate(prior, SHAPE, 2, generator=seed())
