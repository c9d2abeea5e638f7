"""Small network pieces the generators share."""

from __future__ import annotations

import torch
from torch import nn


def mlp(width: int, hidden: list[int], activation: type[nn.Module] | None = None, dropout: float = 0.0) -> nn.Sequential:
    """Linear → activation (→ dropout) for each hidden size; the output width is hidden[-1] (or `width`)."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), activation() if activation else nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    return nn.Sequential(*layers)


def block_log_softmax(logits: torch.Tensor, starts: list[int], widths: list[int]) -> torch.Tensor:
    """Log-softmax taken within each one-hot block of `logits` (batch, Σ widths)."""
    return torch.cat([torch.log_softmax(logits[:, s : s + w], dim=1) for s, w in zip(starts, widths)], dim=1)
