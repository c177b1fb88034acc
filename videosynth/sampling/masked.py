"""Parallel decoding of a masked-token prior (MaskGIT, Chang et al. 2022).

Start from a grid where every token not observed is masked; at each of ``steps`` iterations the
prior predicts every masked token at once, a token is drawn for each, and all but the least
confident ones are committed. How many stay masked follows the cosine schedule
``N * cos(pi/2 * (s + 1) / steps)``, so the first steps commit few tokens and the last ones many.
Which ones stay masked is chosen by confidence (the drawn token's log-probability) plus Gumbel
noise annealed to zero (MaskGIT's "choice temperature"), so early choices are not all greedy.
Classifier-free guidance mixes conditional and null logits, ``u + s (c - u)``.

Layout: token grids ``int64 [B, t, h, w]`` (flattened t-major, then h, then w).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from videosynth.config import at_least, checked
from videosynth.errors import ConfigError, VideoSynthError
from videosynth.models.maskgit import MaskedPrior
from videosynth.sampling.ar import choose
from videosynth.sampling.rollout import TokenCondition


@dataclass
class MaskedSampleConfig:
    """Section ``sample:`` of a masked-prior run (each field overridable per call)."""

    steps: int = checked(12, at_least(1))  # parallel decoding iterations per window
    temperature: float = checked(1.0, at_least(0))  # of the token draw; 0 = the most likely token
    choice_temperature: float = checked(4.5, at_least(0))  # Gumbel noise on which tokens stay masked, annealed to 0
    top_k: int | None = checked(None, at_least(1))
    guidance_scale: float = checked(1.0, at_least(0))  # > 1 needs condition.dropout > 0 in training
    context_frames: int | None = checked(None, at_least(0))  # latent frames re-primed per rollout window (t // 2)


def mask_schedule(ratio: torch.Tensor | float) -> torch.Tensor | float:
    """The cosine schedule: the share of tokens masked at progress ``ratio`` in [0, 1] (1 at 0, 0 at 1)."""
    if isinstance(ratio, torch.Tensor):
        return torch.cos(ratio * (math.pi / 2))
    return math.cos(ratio * math.pi / 2)


def _gumbel(shape, generator, device) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, device=device).clamp_(1e-20, 1.0)
    return -torch.log(-torch.log(u))


def _rows(cond: TokenCondition | None, guided: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The pooled condition ``[rows, D]`` and per-frame sound ``[rows, T, A]`` of one forward: the batch's,
    then (with guidance) its null's below it."""
    if cond is None:
        return None, None
    pooled = torch.cat([cond.pooled, cond.null_pooled]) if guided else cond.pooled  # (rows, D)
    frames = cond.frames
    if frames is not None and guided:
        null_frames = cond.null_frames
        if null_frames.shape[1] != frames.shape[1]:  # the null sound: one feature for every frame
            null_frames = null_frames.expand(-1, frames.shape[1], -1)
        frames = torch.cat([frames, null_frames])  # (rows, T, A)
    return pooled, frames


@torch.inference_mode()
def generate(model: MaskedPrior, shape: tuple[int, int, int, int], cond: TokenCondition | None,
             generator: torch.Generator | None, options: MaskedSampleConfig,
             prime: torch.Tensor | None = None) -> torch.Tensor:
    """Token grids ``int64 [B, t, h, w]``.

    Args:
        shape: ``(B, t, h, w)``; ``h, w`` as in ``model.cfg.latent_shape`` and ``t`` at most its ``t``.
        cond: the batch's condition (and its null where ``options.guidance_scale != 1``); None for
            an unconditional prior.
        generator: RNG on the model's device (same seed -> same tokens).
        prime: ``int64 [B, t0, h, w]`` tokens of observed latent frames, kept as the first ``t0``.

    Raises:
        ConfigError: a shape the prior cannot take, guidance without a null condition.
    """
    batch, t, h, w = shape
    pt, ph, pw = model.cfg.latent_shape
    if (h, w) != (ph, pw) or not 1 <= t <= pt:
        raise ConfigError(f"cannot sample token grid {[t, h, w]} from a masked prior over "
                          f"{list(model.cfg.latent_shape)}; h, w must match and t <= {pt}")
    guided = options.guidance_scale != 1.0
    if guided and (cond is None or cond.null_pooled is None):
        raise ConfigError("guidance_scale != 1 needs the null condition (a conditional prior)")
    if cond is not None and cond.pooled is not None and cond.pooled.shape[0] != batch:
        raise ConfigError(f"the condition holds {cond.pooled.shape[0]} rows for a batch of {batch}")
    device = model.head.weight.device
    n = t * h * w
    tokens = torch.full((batch, n), model.mask_id, dtype=torch.long, device=device)  # (B, N)
    if prime is not None:
        if prime.shape[0] != batch or tuple(prime.shape[2:]) != (h, w) or prime.shape[1] > t:
            raise ConfigError(f"prime must be tokens [{batch}, t0<={t}, {h}, {w}], got {list(prime.shape)}")
        tokens[:, :prime[0].numel()] = prime.reshape(batch, -1).to(device)
    unknown = int((tokens[0] == model.mask_id).sum())  # the same in every row: primes are whole frames
    if unknown == 0:
        return tokens.view(batch, t, h, w)

    pooled, frames = _rows(cond, guided)
    masked_now = unknown
    was_training = model.training
    model.eval()
    try:
        for step in range(options.steps):
            masked = tokens == model.mask_id  # (B, N)
            logits = model(tokens.repeat(2, 1) if guided else tokens, pooled, frames).float()  # (rows, N, V)
            if guided:
                c, u = logits.chunk(2)
                logits = u + options.guidance_scale * (c - u)  # (B, N, V)
            if step == 0 and not bool(torch.isfinite(logits).all()):
                raise VideoSynthError("the masked prior gives non-finite logits (NaN/Inf): its weights are broken; "
                                      "sample an earlier checkpoint (--checkpoint) or retrain")
            flat = logits.reshape(batch * n, -1)  # (B*N, V)
            drawn = choose(flat, options.temperature, options.top_k, None, generator)  # (B*N,)
            log_p = F.log_softmax(flat, -1).gather(1, drawn[:, None]).view(batch, n)  # (B, N) confidence
            drawn = torch.where(masked, drawn.view(batch, n), tokens)  # committed tokens stay
            # how many of the unknown tokens stay masked after this step: at least one fewer than
            # before, at least one until the last step, none after it
            keep_masked = 0
            if step + 1 < options.steps:
                keep_masked = max(1, min(masked_now - 1, math.floor(unknown * mask_schedule((step + 1) / options.steps))))
            masked_now = keep_masked
            if keep_masked == 0:
                tokens = drawn
                break
            noise = options.choice_temperature * (1.0 - (step + 1) / options.steps)
            confidence = log_p + noise * _gumbel(log_p.shape, generator, device)  # (B, N)
            confidence = confidence.masked_fill(~masked, float("inf"))  # committed tokens stay
            lowest = confidence.topk(keep_masked, dim=1, largest=False).indices  # (B, keep_masked)
            tokens = drawn.scatter(1, lowest, model.mask_id)
    finally:
        model.train(was_training)
    return tokens.view(batch, t, h, w)  # (B, t, h, w)
