"""Polyphase Kaiser-windowed sinc resampling of mono float32 audio, on a grid fixed by the origin.

Output sample ``j`` (at ``j / out_rate`` seconds from the origin) depends only on the input
samples around it, so a window reads the same samples wherever the decoding began.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch


# Resampling (here, not in FFmpeg's filter graph, whose set-up and per-frame push/pull took more
# than decoding, and whose output grid began wherever its first input frame did, up to a sample off
# between reads): a Kaiser-windowed sinc low-pass at AUDIO_ROLLOFF of the lower rate's Nyquist
# frequency, AUDIO_ZERO_CROSSINGS zero crossings each side, so output sample j (at j / rate
# seconds from the origin) depends only on the input samples around it, wherever a read began.
AUDIO_ZERO_CROSSINGS = 24
AUDIO_ROLLOFF = 0.95
AUDIO_KAISER_BETA = 9.0
MAX_POLYPHASE_TAPS = 1 << 22  # a rate pair whose polyphase filter is larger computes taps per read
RESAMPLE_CHUNK = 1 << 20  # input samples gathered into resampler windows at a time (4 MiB)


def filter_shape(in_rate: int, out_rate: int) -> tuple[float, float]:
    """``(cutoff, half width)``: the low-pass's cutoff as a fraction of the input's Nyquist frequency,
    and how far its taps reach each side, in input samples."""
    cutoff = AUDIO_ROLLOFF * min(1.0, out_rate / in_rate)
    return cutoff, AUDIO_ZERO_CROSSINGS / cutoff


def _taps(offsets: np.ndarray, cutoff: float, half: float) -> np.ndarray:
    """Filter weights for input samples ``offsets`` (input samples, any shape ``[..., K]``) from an
    output sample's position; each row sums to 1, so a constant passes unchanged."""
    inside = np.clip(1.0 - (offsets / half) ** 2, 0.0, None)
    taps = cutoff * np.sinc(cutoff * offsets) * np.i0(AUDIO_KAISER_BETA * np.sqrt(inside))
    taps[np.abs(offsets) > half] = 0.0
    return taps / taps.sum(axis=-1, keepdims=True)


_POLYPHASE: OrderedDict[tuple, torch.Tensor] = OrderedDict()


def _polyphase(up: int, down: int, cutoff: float, reach: int) -> torch.Tensor:
    """float32 ``[down + 2 * reach, up]``: column ``r`` weighs input samples ``q * down - reach ...`` into output
    sample ``q * up + r`` (input position ``(q * up + r) * down / up``)."""
    key = (up, down)
    taps = _POLYPHASE.get(key)
    if taps is None:
        offsets = np.arange(-reach, down + reach)[None, :] - np.arange(up)[:, None] * (down / up)
        taps = torch.from_numpy(_taps(offsets, cutoff, AUDIO_ZERO_CROSSINGS / cutoff).astype(np.float32).T.copy())
        _POLYPHASE[key] = taps
        while len(_POLYPHASE) > 8:
            _POLYPHASE.popitem(last=False)
    return taps


def resample(x: np.ndarray, lo: int, in_rate: int, out_rate: int, first: int, wanted: int) -> np.ndarray:
    """Output samples ``first ... first + wanted - 1`` at ``out_rate`` of the input ``x`` at ``in_rate``
    whose sample 0 is input sample ``lo`` (both counted from the same origin); silence outside ``x``."""
    g = math.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    cutoff, half = filter_shape(in_rate, out_rate)
    reach = math.ceil(half)
    width = down + 2 * reach
    if up * width <= MAX_POLYPHASE_TAPS:  # blocks of `up` outputs from strided windows of the input
        taps = _polyphase(up, down, cutoff, reach)
        q0, q1 = first // up, -(-(first + wanted) // up)
        out = np.empty((q1 - q0) * up, np.float32)
        step = max(1, RESAMPLE_CHUNK // width)  # windows overlap: a chunk of them at a time
        for a in range(q0, q1, step):
            b = min(q1, a + step)
            buf = np.zeros((b - a) * down + 2 * reach, np.float32)
            place(buf, a * down - reach, x, lo)
            windows = np.lib.stride_tricks.as_strided(buf, (b - a, width), (buf.strides[0] * down, buf.strides[0]))
            # torch's matmul: its threads follow torch.set_num_threads (one in a DataLoader worker), where numpy's
            # BLAS starts its own pool per process, which beside training costs far more than this small product
            block = torch.from_numpy(np.ascontiguousarray(windows)) @ taps  # (windows, up): outputs a * up ...
            out[(a - q0) * up:(b - q0) * up] = block.numpy().ravel()
        return out[first - q0 * up:first - q0 * up + wanted]
    out = np.empty(wanted, np.float32)
    k = np.arange(-reach, reach + 1)
    for c0 in range(0, wanted, 2048):  # a rate pair with a huge period: the taps of each output sample
        j = np.arange(first + c0, first + min(wanted, c0 + 2048), dtype=np.int64)
        base = j * down // up
        frac = (j * down - base * up) / up
        start = int(base[0]) - reach
        buf = np.zeros(int(base[-1]) - start + reach + 1, np.float32)
        place(buf, start, x, lo)
        taps = _taps(k[None, :] - frac[:, None], cutoff, half).astype(np.float32)
        out[c0:c0 + j.size] = np.einsum("nk,nk->n", buf[(base - start)[:, None] + k[None, :]], taps)
    return out


def place(buf: np.ndarray, at: int, x: np.ndarray, lo: int) -> None:
    """Copy the overlap of ``x`` (starting at sample ``lo``) into ``buf`` (starting at sample ``at``)."""
    a, b = max(at, lo), min(at + buf.size, lo + x.size)
    if b > a:
        buf[a - at:b - at] = x[a - lo:b - lo]
