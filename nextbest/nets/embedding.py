"""Tabular input: one embedding per categorical column, next to the (standardized) numeric columns."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def embedding_size(cardinality: int, cap: int = 16) -> int:
    """fastai's rule of thumb, 1.6 · n^0.56, between 1 and `cap`."""
    return max(1, min(cap, round(1.6 * cardinality**0.56)))


class TabularEmbedding(nn.Module):
    """codes (n, n_categorical) long and numeric (n, n_numeric) float → (n, width).

    The output is [embedding of column 1, …, embedding of the last categorical column, numeric];
    `column_of_output[j]` says which input column output unit j belongs to (categorical columns
    first, then numeric), so attention over columns can be spread over their units."""

    def __init__(self, cardinalities: list[int], n_numeric: int, embedding_dim: int | None = None):
        super().__init__()
        sizes = [embedding_dim or embedding_size(c) for c in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(c, s) for c, s in zip(cardinalities, sizes))
        for embedding, size in zip(self.embeddings, sizes):
            nn.init.normal_(embedding.weight, std=1.0 / math.sqrt(size))
        owners = [j for j, s in enumerate(sizes) for _ in range(s)] + [len(sizes) + i for i in range(n_numeric)]
        self.register_buffer("column_of_output", torch.tensor(owners, dtype=torch.long))
        self.n_columns = len(cardinalities) + n_numeric
        self.width = sum(sizes) + n_numeric

    def forward(self, codes: Tensor, numeric: Tensor) -> Tensor:
        parts = [embedding(codes[:, j]) for j, embedding in enumerate(self.embeddings)]
        return torch.cat([*parts, numeric], dim=1)
