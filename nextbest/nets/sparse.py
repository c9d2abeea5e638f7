"""Sparse alternatives to softmax for attention masks: sparsemax and 1.5-entmax.

Both are exact sort-based closed forms (Martins and Astudillo, 2016; Peters, Niculae and
Martins, 2019). Written as plain tensor operations, autograd differentiates them correctly: on
the support the threshold τ is a smooth function of the inputs, outside it the output is 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sparsemax(z: Tensor, dim: int = -1) -> Tensor:
    """Euclidean projection of z onto the probability simplex along `dim`: max(z − τ, 0), rows sum to 1."""
    z = z - z.amax(dim=dim, keepdim=True)  # shift-invariant; keeps the cumulative sums small
    z_sorted = z.sort(dim=dim, descending=True).values
    k = _ranks(z, dim)
    cumulative = z_sorted.cumsum(dim)
    support = (1.0 + k * z_sorted > cumulative).sum(dim=dim, keepdim=True)
    tau = (cumulative.gather(dim, support - 1) - 1.0) / support.to(z.dtype)
    return (z - tau).clamp_min(0.0)


def entmax15(z: Tensor, dim: int = -1) -> Tensor:
    """1.5-entmax along `dim`: max(z/2 − τ, 0)², rows sum to 1; sparser than softmax, denser than sparsemax."""
    z = (z - z.amax(dim=dim, keepdim=True)) / 2.0
    z_sorted = z.sort(dim=dim, descending=True).values
    k = _ranks(z, dim)
    mean = z_sorted.cumsum(dim) / k
    mean_sq = (z_sorted**2).cumsum(dim) / k
    delta = (1.0 - k * (mean_sq - mean**2)) / k
    tau = mean - delta.clamp_min(1e-12).sqrt()  # not 0: sqrt′(0) = ∞ would turn zero gradients into NaN
    support = (tau <= z_sorted).sum(dim=dim, keepdim=True)
    tau_star = tau.gather(dim, support - 1)
    return (z - tau_star).clamp_min(0.0) ** 2


def _ranks(z: Tensor, dim: int) -> Tensor:
    """1, 2, …, d along `dim`, shaped to broadcast against z."""
    d = z.shape[dim]
    shape = [1] * z.dim()
    shape[dim] = d
    return torch.arange(1, d + 1, dtype=z.dtype, device=z.device).view(shape)


MASKS = {"sparsemax": sparsemax, "entmax": entmax15}
