"""Sampling from an autoregressive token prior, and the two-stage tokenizer + prior composition.

Algorithms for :class:`videosynth.models.transformer.Prior` (VideoGPT, Yan et
al. 2021): KV-cached generation with temperature / top-k / nucleus (top-p,
Holtzman et al. 2020) filtering, classifier-free guidance (Ho & Salimans
2022) for priors trained with condition dropout, video prediction from
observed frames' tokens, and sliding-window rollout to more latent frames
than the prior was trained on. :func:`decode_tokens` turns token grids (and
:func:`decode_latents` a continuous tokenizer's latents) into videos with a
tokenizer. Everything runs under ``torch.inference_mode()``.

Layouts: token grids are ``int64 [B, t, h, w]`` (flattened t-major, then h,
then w); videos are ``float32 [B, C, T, H, W]`` in ``[-1, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from videosynth.config import at_least, checked, in_range
from videosynth.errors import ConfigError, VideoSynthError
from videosynth.models.transformer import Prior
from videosynth.sampling.rollout import TokenCondition, windowed


@dataclass
class ARSampleConfig:
    """Defaults for sampling a token prior (section ``sample:`` of a transformer run; each overridable per call)."""

    temperature: float = checked(1.0, at_least(0))  # 0 = greedy
    top_k: int | None = checked(None, at_least(1))
    top_p: float | None = checked(None, in_range(0, 1, low_open=True))
    guidance_scale: float = checked(1.0, at_least(0))  # > 1 needs condition.dropout > 0 in training
    context_frames: int | None = checked(None, at_least(0))  # latent frames re-primed per rollout window (default t // 2)
    use_cache: bool = True  # KV-cached decoding; False recomputes the prefix each step (the reference path)


# ---------------------------------------------------------------------------
# logits filtering and token choice
# ---------------------------------------------------------------------------


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Scale ``logits [B, V]`` by ``1/temperature`` and set filtered-out entries to ``-inf``.

    ``top_k`` keeps the k largest; ``top_p`` keeps the smallest set whose
    probability reaches ``top_p`` (always at least the most likely token).
    """
    logits = logits.float()
    if temperature != 1.0:  # x / 1 == x: skip an op per step at the default
        logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cum - sorted_logits.softmax(-1) >= top_p  # mass before this token already reached top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def choose(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
           generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of ``logits [B, V]`` -> ``int64 [B]``; ``temperature <= 0`` is greedy."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = F.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)  # (B, V)
    # One draw per row by the exponential race: argmax_i p_i / q_i with q_i ~ Exp(1) picks i with
    # probability p_i. It is the draw torch.multinomial(probs, 1) makes (same RNG use, same tokens),
    # without its input checks, which synchronise with the host (.item()) at every token.
    race = torch.empty_like(probs).exponential_(generator=generator)  # (B, V)
    return (probs / race).argmax(-1)


SEED_BITS = 62  # width of the seed drawn for a device generator


def _on_device(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """``generator`` itself when it lives on ``device``, else a generator there seeded from it."""
    if generator is None or torch.device(generator.device).type == torch.device(device).type:
        return generator
    seed = int(torch.randint(0, 2**SEED_BITS, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def _validate(prior: Prior, shape: tuple[int, int, int], batch: int, cond: torch.Tensor | None,
              null_cond: torch.Tensor | None, guidance_scale: float,
              prime: torch.Tensor | None, top_k: int | None = None, top_p: float | None = None) -> None:
    t, h, w = shape
    pt, ph, pw = prior.cfg.latent_shape
    if (h, w) != (ph, pw) or not 1 <= t <= pt:
        raise ConfigError(
            f"cannot sample token grid {list(shape)} from a prior trained on {list(prior.cfg.latent_shape)}; "
            f"h, w must match and t <= {pt} (use rollout() for longer videos)"
        )
    if prime is not None and (prime.dim() != 4 or prime.shape[0] != batch or tuple(prime.shape[2:]) != (h, w)
                              or prime.shape[1] > t):
        raise ConfigError(f"prime must be tokens [{batch}, t0<={t}, {h}, {w}], got {list(prime.shape)}")
    if prior.cfg.cond_dim and cond is None:
        raise ConfigError(f"this prior is conditional (prior.cond_dim={prior.cfg.cond_dim}); pass cond [B, D]")
    if cond is not None and cond.shape != (batch, prior.cfg.cond_dim):
        raise ConfigError(f"cond must be [{batch}, {prior.cfg.cond_dim}], got {list(cond.shape)}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be >= 1 (or unset), got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1] (or unset), got {top_p}")
    if guidance_scale != 1.0 and null_cond is None:
        raise ConfigError("guidance_scale != 1 needs null_cond (the conditioner's null condition)")


# ---------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------


@torch.inference_mode()
def generate(prior: Prior, shape: tuple[int, int, int], batch: int, cond: torch.Tensor | None = None,
             null_cond: torch.Tensor | None = None, guidance_scale: float = 1.0, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, prime: torch.Tensor | None = None,
             generator: torch.Generator | None = None, use_cache: bool = True,
             sound: torch.Tensor | None = None, null_sound: torch.Tensor | None = None) -> torch.Tensor:
    """Sample token grids ``int64 [batch, t, h, w]`` from ``prior``.

    Args:
        shape: ``(t, h, w)``; ``h, w`` as in ``prior.cfg.latent_shape`` and ``t`` at most its ``t``.
        cond: ``[batch, cond_dim]`` pooled condition (required by a conditional prior).
        null_cond: ``[cond_dim]`` or ``[batch, cond_dim]`` null condition for guidance.
        guidance_scale: classifier-free guidance ``s``: logits = uncond + s * (cond - uncond);
            ``1`` samples from the conditional model alone (one forward per step).
        temperature: softmax temperature; ``<= 0`` picks the arg-max (greedy).
        top_k, top_p: optional top-k / nucleus filtering.
        prime: ``int64 [batch, t0, h, w]`` tokens of observed frames, kept as the first ``t0`` frames.
        generator: RNG for the draws (on the prior's device); same seed -> same tokens.
        use_cache: KV-cached decoding (one new position per step, by :meth:`Prior.decoder`); ``False`` recomputes
            the whole prefix each step (reference path, same tokens).
        sound, null_sound: ``[batch, T, audio_dim]`` per-video-frame sound features of a
            sound-driven prior, and their null for guidance.

    Raises:
        ConfigError: shapes that do not fit the prior, or a missing ``cond`` / ``null_cond``.
    """
    _validate(prior, shape, batch, cond, null_cond, guidance_scale, prime, top_k, top_p)
    t, h, w = shape
    n = t * h * w
    device = prior.head.weight.device
    generator = _on_device(generator, device)
    guided = guidance_scale != 1.0
    if guided:
        null = null_cond.to(device).expand(batch, -1) if null_cond.dim() == 1 else null_cond.to(device)
        cond = torch.cat([cond.to(device), null], dim=0) if cond is not None else null  # (2B, D)
        if cond.shape[0] != 2 * batch:
            raise ConfigError(f"guidance needs cond and null_cond of batch {batch}")
    elif cond is not None:
        cond = cond.to(device)
    if sound is not None:
        sound = torch.cat([sound, null_sound], dim=0) if guided else sound  # (rows, T, A)
        sound = sound.to(device)
    rows = 2 * batch if guided else batch

    tokens = torch.empty(batch, n, dtype=torch.long, device=device)  # (B, N) flat grid being filled
    start = 0
    if prime is not None:
        start = prime.shape[1] * h * w
        tokens[:, :start] = prime.reshape(batch, -1).to(device)  # (B, P)
    if start == n:
        return tokens.view(batch, t, h, w)

    def inputs(upto: int) -> torch.Tensor:
        """Input ids ``[rows, upto + 1]`` = BOS + tokens[:, :upto] (duplicated for guidance)."""
        bos = torch.full((batch, 1), prior.bos, dtype=torch.long, device=device)
        seq = torch.cat([bos, tokens[:, :upto]], dim=1)  # (B, upto + 1)
        return seq.repeat(2, 1) if guided else seq  # (rows, upto + 1)

    def next_logits(logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # (rows, V)
        if guided:
            c, u = logits.chunk(2, dim=0)  # (B, V) each
            return u + guidance_scale * (c - u)
        return logits

    was_training = prior.training
    prior.eval()
    try:
        cache = prior.new_cache(rows) if use_cache else None
        logits = prior(inputs(start), cond, cache, 0, sound)[:, -1]  # prefill: BOS + prime -> position `start`
        if not bool(torch.isfinite(logits).all()):  # once per call: the token draw would not notice
            raise VideoSynthError("the prior gives non-finite logits (NaN/Inf): its weights are broken; "
                                  "sample an earlier checkpoint (--checkpoint) or retrain")
        if use_cache:  # the lean one-position step; position (and sound) embeddings computed once
            decoder = prior.decoder(cache, n, sound, rows)
        for pos in range(start, n):
            new = choose(next_logits(logits), temperature, top_k, top_p, generator)  # (B,)
            tokens[:, pos] = new
            if pos + 1 == n:
                break
            if use_cache:  # the input for position pos + 1 is the new token
                logits = decoder.step(new.repeat(2) if guided else new, pos + 1)
            else:
                logits = prior(inputs(pos + 1), cond, cond_frames=sound)[:, -1]
    finally:
        prior.train(was_training)
    return tokens.view(batch, t, h, w)  # (B, t, h, w)


@torch.inference_mode()
def rollout(prior: Prior, total_t: int, batch: int, context_t: int | None = None,
            cond: torch.Tensor | None = None, null_cond: torch.Tensor | None = None,
            guidance_scale: float = 1.0, temperature: float = 1.0, top_k: int | None = None,
            top_p: float | None = None, prime: torch.Tensor | None = None,
            generator: torch.Generator | None = None, use_cache: bool = True,
            sound: torch.Tensor | None = None, null_sound: torch.Tensor | None = None) -> torch.Tensor:
    """Sliding-window generation of ``total_t`` latent frames -> ``int64 [batch, total_t, h, w]``.

    Each window has the prior's training length ``t``; after the first, a
    window is primed with the last ``context_t`` latent frames generated so far
    (positions restart at 0 for every window) and contributes ``t - context_t``
    new frames. ``context_t`` defaults to ``t // 2``. ``prime`` (observed
    frames' tokens) primes the first window and is kept. ``sound`` ``[batch, T, A]``
    covers the whole clip; each window hears the part under its own frames. Other
    arguments as in :func:`generate`.

    Raises:
        ConfigError: ``context_t`` not in ``[0, t)``, or arguments :func:`generate` rejects.
    """
    t, h, w = prior.cfg.latent_shape
    kwargs = dict(cond=cond, null_cond=null_cond, guidance_scale=guidance_scale, temperature=temperature,
                  top_k=top_k, top_p=top_p, generator=generator, use_cache=use_cache)
    per = prior.cfg.frames_per_latent

    def window(length: int, context: torch.Tensor | None, first: int) -> torch.Tensor:
        heard = {}
        if sound is not None:  # the sound (and its null) under this window's latent frames
            part = TokenCondition(None, sound, None, null_sound).window(first, t, per)
            heard = {"sound": part.frames, "null_sound": part.null_frames}
        return generate(prior, (length, h, w), batch, prime=context, **kwargs, **heard)  # (B, length, h, w)

    if prime is not None and prime.shape[1] > t:
        prime = prime.to(prior.head.weight.device)
    return windowed(window, total_t, t, context_t, prime)


def _decode_in_chunks(tokenizer, decode, values: torch.Tensor, chunk: int) -> torch.Tensor:
    """``decode`` (a method of ``tokenizer``) over ``values [B, ...]``, ``chunk`` at a time in eval mode."""
    was_training = tokenizer.training
    tokenizer.eval()
    try:
        device = next(tokenizer.parameters()).device
        parts = [decode(values[i:i + chunk].to(device)) for i in range(0, values.shape[0], chunk)]
    finally:
        tokenizer.train(was_training)
    return torch.cat(parts, dim=0)  # (B, C, T, H, W)


@torch.inference_mode()
def decode_tokens(tokenizer, tokens: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Token grids ``int64 [B, t, h, w]`` -> videos ``float32 [B, C, T, H, W]`` in ``[-1, 1]``.

    ``tokenizer`` is any module with ``decode(indices)`` (e.g. a VQVAE); the
    batch is decoded ``chunk`` videos at a time to bound memory.
    """
    return _decode_in_chunks(tokenizer, tokenizer.decode, tokens, chunk)


@torch.inference_mode()
def decode_latents(tokenizer, latents: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Latents ``float32 [B, c, t, h, w]`` -> videos ``float32 [B, C, T, H, W]`` in ``[-1, 1]``, as
    :func:`decode_tokens` does for a module with ``decode_latents(latents)`` (a VQVAE)."""
    return _decode_in_chunks(tokenizer, tokenizer.decode_latents, latents, chunk)


# ---------------------------------------------------------------------------
# the sampler signature every token sampler shares
# ---------------------------------------------------------------------------


@torch.inference_mode()
def sample(prior: Prior, shape: tuple[int, int, int, int], cond: TokenCondition | None,
           generator: torch.Generator | None, options: ARSampleConfig,
           prime: torch.Tensor | None = None) -> torch.Tensor:
    """Token grids ``int64 [B, t, h, w]`` for ``shape = (B, t, h, w)``: :func:`generate` with ``options``.

    ``cond``: the batch's condition (pooled ``[B, D]``, per-frame sound ``[B, T, A]`` covering the
    grid's frames, and their nulls for guidance) or None for an unconditional prior; ``prime``:
    ``int64 [B, t0, h, w]`` tokens of observed latent frames, kept.

    Raises:
        ConfigError: as :func:`generate`.
    """
    batch, t, h, w = shape
    kwargs = dict(guidance_scale=options.guidance_scale, temperature=options.temperature, top_k=options.top_k,
                  top_p=options.top_p, prime=prime, generator=generator, use_cache=options.use_cache)
    if cond is not None:
        kwargs.update(cond=cond.pooled, null_cond=cond.null_pooled)
        if cond.frames is not None:  # the null sound is one feature for every frame
            frames = t * prior.cfg.frames_per_latent
            sound = cond.frames.expand(-1, frames, -1) if cond.frames.shape[1] == 1 else cond.frames
            kwargs.update(sound=sound, null_sound=cond.null_frames)
    return generate(prior, (t, h, w), batch, **kwargs)
