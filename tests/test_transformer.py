"""Transformer prior: presets, causality, KV cache equals the full pass, conditioning."""

import pytest
import torch

from videosynth.config import from_dict
from videosynth.errors import ConfigError
from videosynth.models.transformer import PRESETS, Prior, PriorConfig


def tiny(**overrides) -> Prior:
    torch.manual_seed(0)
    return Prior(PriorConfig(**{**vars(PRESETS["tiny"]), **overrides})).eval()


def tokens(prior: Prior, b=2, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, prior.cfg.vocab_size, (b, prior.cfg.seq_len), generator=g)  # (B, N)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_forward(name):
    prior = Prior(PRESETS[name]).eval()
    x = torch.randint(0, prior.cfg.vocab_size, (1, 8))
    logits = prior(prior.shift_right(x))
    assert logits.shape == (1, 8, prior.cfg.vocab_size)
    assert torch.isfinite(logits).all()


def test_config_from_dict_and_errors():
    cfg = from_dict(PriorConfig, {"latent_shape": [2, 4, 4], "n_embd": 32, "n_head": 2}, "prior")
    assert cfg.latent_shape == (2, 4, 4) and cfg.seq_len == 32
    with pytest.raises(ConfigError, match="divisible"):
        PriorConfig(n_embd=30, n_head=4)
    with pytest.raises(ConfigError, match="n_layer"):
        from_dict(PriorConfig, {"n_layers": 3}, "prior")


def test_logits_do_not_depend_on_later_tokens():
    prior = tiny()
    x = tokens(prior, b=1)
    i = 11
    y = x.clone()
    y[:, i:] = (y[:, i:] + 1) % prior.cfg.vocab_size  # change token i and everything after it
    a, b = prior(prior.shift_right(x)), prior(prior.shift_right(y))
    assert torch.allclose(a[:, : i + 1], b[:, : i + 1], atol=1e-6)  # row i predicts token i from tokens < i
    assert not torch.allclose(a[:, i + 1 :], b[:, i + 1 :])


@pytest.mark.parametrize("chunks", [[32], [1] * 32, [5, 1, 10, 16]])
def test_kv_cache_matches_full_pass(chunks):
    prior = tiny(cond_dim=8)
    x = tokens(prior)
    cond = torch.randn(2, 8)
    inp = prior.shift_right(x)
    full = prior(inp, cond)
    cache = prior.new_cache(2)
    parts, pos = [], 0
    for n in chunks:
        parts.append(prior(inp[:, pos : pos + n], cond if pos == 0 else None, cache, pos))
        pos += n
    assert cache.length == prior.cfg.seq_len
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_the_decoder_step_matches_the_cached_forward():
    prior = tiny(cond_dim=8).eval()
    inp = prior.shift_right(tokens(prior))
    cond = torch.randn(2, 8)
    slow, fast = prior.new_cache(2), prior.new_cache(2)
    for cache in (slow, fast):
        prior(inp[:, :3], cond, cache, 0)
    decoder = prior.decoder(fast, prior.cfg.seq_len)
    for pos in range(3, prior.cfg.seq_len):
        want = prior(inp[:, pos:pos + 1], None, slow, pos)[:, -1]  # (B, V)
        assert torch.equal(decoder.step(inp[:, pos], pos), want)
    assert fast.length == slow.length == prior.cfg.seq_len


def test_conditioning_changes_logits_and_is_required():
    prior = tiny(cond_dim=8)
    inp = prior.shift_right(tokens(prior))
    a = prior(inp, torch.zeros(2, 8))
    b = prior(inp, torch.ones(2, 8))
    assert not torch.allclose(a, b)
    with pytest.raises(ConfigError, match="cond_dim"):
        prior(inp)
    with pytest.raises(ConfigError, match="cond_dim"):
        tiny()(inp, torch.zeros(2, 8))


def test_too_long_sequence_and_cache_out_of_step():
    prior = tiny()
    with pytest.raises(ConfigError, match="rollout"):
        prior(torch.zeros(1, prior.cfg.seq_len + 1, dtype=torch.long))
    cache = prior.new_cache(1)
    with pytest.raises(ConfigError, match="start_pos"):
        prior(torch.zeros(1, 1, dtype=torch.long), cache=cache, start_pos=3)


def test_loss_backward_and_learns():
    torch.manual_seed(0)
    prior = Prior(PRESETS["tiny"]).train()
    x = tokens(prior, b=4).view(4, *prior.cfg.latent_shape)  # (B, t, h, w)
    opt = torch.optim.AdamW(prior.parameters(), lr=3e-3)
    first = float(prior.loss(x).detach())
    for _ in range(20):
        loss = prior.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first


def test_attention_dropout_is_its_own_setting():
    x = tokens(tiny())
    residual_only = tiny(dropout=0.5).train()
    assert all(block.attn.dropout == 0.0 for block in residual_only.blocks)  # the fused kernel stays usable
    both = tiny(dropout=0.5, attn_dropout=0.5).train()
    assert all(block.attn.dropout == 0.5 for block in both.blocks)
    torch.manual_seed(0)
    first = both(both.shift_right(x.flatten(1)))
    torch.manual_seed(1)
    assert not torch.equal(first, both(both.shift_right(x.flatten(1))))  # dropout is active in training
    both.eval()
    assert torch.equal(both(both.shift_right(x.flatten(1))), both(both.shift_right(x.flatten(1))))
