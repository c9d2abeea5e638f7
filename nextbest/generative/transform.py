"""A mixed-type table as a matrix for neural generators, and back.

Numeric columns become normal scores: z = Φ⁻¹(F(x)) with F the column's empirical CDF, kept as
a grid of up to 1001 quantiles. Ties (zeros, integers, a popular price) are spread uniformly over
their share of F (the randomized probability-integral transform), so z is exactly N(0, 1) on the
training rows whatever the column's shape, and Φ then the quantile grid map any z back onto the
column's own values: point masses, bounds and skew come back by construction. This replaces the
Bayesian-mixture mode-specific normalization of CTGAN/TVAE, which costs most of their fitting time.

Categorical columns (and the missing-or-not flag of a numeric column with empty cells) become
one-hot blocks. `Layout` records where each block sits in the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from nextbest.generative.columns import Column, TableSpec, category_codes, category_values, numeric_values

GRID_POINTS = 1001


class NormalScores:
    """One numeric column's empirical CDF on a quantile grid: to_scores(x) ~ N(0, 1), from_scores inverts it."""

    def __init__(self, quantiles: np.ndarray):
        self.quantiles = np.asarray(quantiles, dtype=float)  # (K,) non-decreasing
        self.levels = np.linspace(0.0, 1.0, len(self.quantiles))

    @classmethod
    def fit(cls, values: np.ndarray) -> NormalScores:
        values = values[~np.isnan(values)]
        points = min(GRID_POINTS, max(len(values), 2))
        return cls(np.quantile(values, np.linspace(0.0, 1.0, points)))

    def to_uniform(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n,) F(x) in [0, 1]; a value on several grid points (a tie) gets a uniform draw over their levels."""
        q, p = self.quantiles, self.levels
        left = np.searchsorted(q, values, "left")
        right = np.searchsorted(q, values, "right")
        lo = np.clip(left - 1, 0, len(q) - 1)
        hi = np.clip(left, 0, len(q) - 1)
        width = np.where(q[hi] > q[lo], q[hi] - q[lo], 1.0)
        u = np.clip(p[lo] + (values - q[lo]) / width * (p[hi] - p[lo]), 0.0, 1.0)
        tie = right - left >= 1
        first, last = np.clip(left, 0, len(q) - 1), np.clip(right - 1, 0, len(q) - 1)
        return np.where(tie, p[first] + rng.random(len(values)) * (p[last] - p[first]), u)

    def to_scores(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n,) normal scores; the ends are kept within ±Φ⁻¹(1 − 1/(2K)) so that no score is infinite."""
        edge = 0.5 / len(self.quantiles)
        return ndtri(np.clip(self.to_uniform(values, rng), edge, 1.0 - edge))

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self.levels, self.quantiles)

    def from_scores(self, scores: np.ndarray) -> np.ndarray:
        return self.from_uniform(ndtr(scores))


@dataclass(frozen=True)
class Block:
    column: str
    kind: str  # "score" (one normal score), "category" (one-hot codes), "present" (one-hot: 0 present, 1 missing)
    start: int
    width: int

    @property
    def stop(self) -> int:
        return self.start + self.width


class Layout:
    """Where each column's block sits in the (n, width) matrix, and the encoding to and from it."""

    def __init__(self, spec: TableSpec, scores: dict[str, NormalScores]):
        self.spec, self.scores = spec, scores
        blocks, start = [], 0
        for column in spec.columns:
            parts = [("score", 1)] + ([("present", 2)] if column.missing else []) if column.kind == "numeric" else [
                ("category", column.n_codes)]
            for kind, width in parts:
                blocks.append(Block(column.name, kind, start, width))
                start += width
        self.blocks: list[Block] = blocks
        self.width = start

    @classmethod
    def fit(cls, table: pd.DataFrame, spec: TableSpec) -> Layout:
        scores = {c.name: NormalScores.fit(table[c.name].to_numpy(dtype=float, na_value=np.nan)) for c in spec.numeric}
        return cls(spec, scores)

    @property
    def score_blocks(self) -> list[Block]:
        return [b for b in self.blocks if b.kind == "score"]

    @property
    def one_hot_blocks(self) -> list[Block]:
        return [b for b in self.blocks if b.kind != "score"]

    def encode(self, table: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """(n, width) float32. An empty numeric cell gets a random N(0, 1) score and its 'missing' flag set."""
        out = np.zeros((len(table), self.width), dtype=np.float32)
        rows = np.arange(len(table))
        for block in self.blocks:
            column = self.spec.column(block.column)
            if block.kind == "category":
                out[rows, block.start + category_codes(table[column.name], column)] = 1.0
                continue
            values = table[column.name].to_numpy(dtype=float, na_value=np.nan)
            empty = np.isnan(values)
            if block.kind == "present":
                out[rows, block.start + empty.astype(int)] = 1.0
            else:
                scores = self.scores[column.name].to_scores(np.where(empty, 0.0, values), rng)
                out[:, block.start] = np.where(empty, rng.standard_normal(len(values)), scores)
        return out

    def decode(self, scores: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
        """Table from (n, n_score_blocks) normal scores and (n, n_one_hot_blocks) codes, in block order."""
        score_of = {b.column: scores[:, j] for j, b in enumerate(self.score_blocks)}
        code_of = {(b.column, b.kind): codes[:, j] for j, b in enumerate(self.one_hot_blocks)}
        columns = {}
        for column in self.spec.columns:
            columns[column.name] = self._decode_column(column, score_of, code_of)
        return pd.DataFrame(columns)

    def sample(self, outputs: np.ndarray, rng: np.random.Generator, scale: np.ndarray | None = None) -> pd.DataFrame:
        """Table from a network's (n, width) outputs: scores as given (plus N(0, scale²) noise when `scale`
        is set), each one-hot block drawn from the softmax of its logits."""
        scores = outputs[:, [b.start for b in self.score_blocks]]
        if scale is not None:
            scores = scores + scale * rng.standard_normal(scores.shape)
        codes = np.zeros((len(outputs), len(self.one_hot_blocks)), dtype=np.int64)
        for j, block in enumerate(self.one_hot_blocks):
            logits = outputs[:, block.start : block.stop]
            probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
            codes[:, j] = sample_codes(probabilities, rng)
        return self.decode(scores, codes)

    def _decode_column(self, column: Column, score_of: dict, code_of: dict) -> pd.Series:
        if column.kind == "categorical":
            return category_values(code_of[(column.name, "category")], column)
        values = numeric_values(self.scores[column.name].from_scores(score_of[column.name]), column)
        if column.missing:
            values = values.astype(float).where(code_of[(column.name, "present")] == 0)
        return values

    def state(self) -> dict:
        return {"scores": {name: s.quantiles for name, s in self.scores.items()}}

    @classmethod
    def from_state(cls, spec: TableSpec, state: dict) -> Layout:
        return cls(spec, {name: NormalScores(q) for name, q in state["scores"].items()})


def sample_codes(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n,) one draw per row from (n, k) row-stochastic probabilities (inverse CDF, vectorized)."""
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random((len(probabilities), 1)) * cumulative[:, -1:]
    return np.minimum((cumulative < u).sum(axis=1), probabilities.shape[1] - 1)
