"""Inception Score from class probabilities, with splits.

Salimans et al., "Improved Techniques for Training GANs" (NeurIPS 2016):

    IS = exp( E_x KL(p(y|x) ‖ p(y)) ),

computed on each of ``splits`` disjoint parts of the samples and reported as
mean ± std over the parts. For video (Saito et al., "Temporal Generative
Adversarial Nets", ICCV 2017; StyleGAN-V) the probabilities come from a C3D
network fine-tuned on UCF-101.
"""

from __future__ import annotations

import numpy as np

from videosynth.errors import VideoSynthError

# Rows may deviate this much from summing to 1 (float32 softmax outputs).
PROB_SUM_TOL = 1e-3
# The reference implementation shuffles the samples with this seed before splitting.
REFERENCE_SHUFFLE_SEED = 42


def inception_score(probs: np.ndarray, splits: int = 10,
                    shuffle_seed: int | None = REFERENCE_SHUFFLE_SEED) -> tuple[float, float]:
    """Inception Score of class probabilities ``[N, K]`` (rows sum to 1).

    Args:
        probs: per-sample class probabilities, float ``[N, K]``, non-negative.
        splits: number of disjoint parts (each needs at least one sample).
        shuffle_seed: shuffle rows with ``numpy.random.RandomState(seed)`` before
            splitting (as the reference code does); ``None`` keeps the order.

    Returns:
        ``(mean, std)`` of exp(mean KL) over the splits. Ranges from 1 (every
        prediction identical) to K (confident and balanced over K classes).

    Raises:
        VideoSynthError: wrong shape, negative values or rows that do not sum to 1
            (pass probabilities, not logits), or more splits than samples.
    """
    from scipy.special import xlogy  # imported here: the package imports this module eagerly

    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise VideoSynthError(f"inception_score expects probabilities [N, K], got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or np.abs(p.sum(axis=1) - 1.0).max() > PROB_SUM_TOL:
        raise VideoSynthError("inception_score expects probabilities (non-negative rows summing to 1); "
                              "apply a softmax to logits first")
    if splits < 1 or splits > p.shape[0]:
        raise VideoSynthError(f"inception_score: splits must be in [1, N={p.shape[0]}], got {splits}")
    if shuffle_seed is not None:
        p = p.copy()
        np.random.RandomState(shuffle_seed).shuffle(p)
    n = p.shape[0]
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]  # (n/splits, K)
        marginal = part.mean(axis=0, keepdims=True)  # (1, K)
        kl = xlogy(part, part) - xlogy(part, marginal)  # (n/splits, K), 0·log0 = 0
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
