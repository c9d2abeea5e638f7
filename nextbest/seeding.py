"""Per-row random numbers from integer seeds, vectorized.

Each prediction row carries a `prediction_seed`; its random draws come from that seed alone
(a SplitMix64 hash of seed, stream and counter), so a row's action can be reproduced from its
seed and the model, in any batch, at any position, without creating a generator per row.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
        return z ^ (z >> np.uint64(31))


def row_uniforms(seeds: np.ndarray, count: int, stream: int = 0) -> np.ndarray:
    """(n, count) float64 uniforms in [0, 1); row i depends only on seeds[i], stream and count index."""
    seeds = np.asarray(seeds).astype(np.int64).view(np.uint64)
    keys = _splitmix64(_splitmix64(seeds) ^ np.uint64(stream * 0x632BE59BD9B4E019 & 0xFFFFFFFFFFFFFFFF))
    with np.errstate(over="ignore"):
        counters = keys[:, None] + np.arange(1, count + 1, dtype=np.uint64)[None, :] * _GOLDEN
    bits = _splitmix64(counters) >> np.uint64(11)
    return bits.astype(np.float64) * (1.0 / (1 << 53))


def row_normals(seeds: np.ndarray, count: int, stream: int = 0) -> np.ndarray:
    """(n, count) standard normals by Box–Muller from `row_uniforms`."""
    half = (count + 1) // 2
    u = row_uniforms(seeds, 2 * half, stream)
    radius = np.sqrt(-2.0 * np.log1p(-u[:, :half]))  # 1 − u lies in (0, 1]
    angle = 2.0 * np.pi * u[:, half:]
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, :count]


def sample_categorical(probabilities: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """(n,) indices drawn from each row of (n, k) `probabilities` by inverse CDF with (n,) `uniforms`."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative /= cumulative[:, -1:]
    index = (uniforms[:, None] >= cumulative).sum(axis=1)
    return np.minimum(index, probabilities.shape[1] - 1)


def fresh_seed() -> int:
    """A base seed from the operating system's entropy, for runs where the user gave none."""
    return int(np.random.SeedSequence().entropy % (2**31 - 1))
