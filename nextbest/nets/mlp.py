"""Multilayer perceptrons: the actor-critic pair for Gymnasium PPO, and the light tabular encoder."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nextbest.nets.embedding import TabularEmbedding

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


class TwinMLP(nn.Module):
    """Two MLPs of the same shape on the same input (the actor's and the critic's trunks), run as one.

    The first layers are one (in, 2·width) matrix; deeper layers are one batched matmul over the
    pair. Mathematically it is two separate networks (SB3's default `net_arch=dict(pi=[64, 64],
    vf=[64, 64])`); it halves the number of small kernels per step, which is what costs on a CPU.
    Weights are orthogonal with gain √2, biases 0 (as in SB3 and CleanRL).

    x: (batch, in_features) → (actor (batch, width), critic (batch, width))."""

    def __init__(self, in_features: int, hidden_sizes: list[int], activation: str = "tanh"):
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.hidden_sizes = list(hidden_sizes)
        first = hidden_sizes[0]
        self.first_weight = nn.Parameter(torch.empty(in_features, 2 * first))
        self.first_bias = nn.Parameter(torch.zeros(2 * first))
        for part in self.first_weight.data.split(first, dim=1):
            nn.init.orthogonal_(part, math.sqrt(2))
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(hidden_sizes[:-1], hidden_sizes[1:]):
            weight = torch.empty(2, a, b)
            for member in weight:
                nn.init.orthogonal_(member, math.sqrt(2))
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(torch.zeros(2, 1, b)))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.activation(torch.addmm(self.first_bias, x, self.first_weight))  # (batch, 2·width)
        h = h.view(x.shape[0], 2, -1).transpose(0, 1)  # (2, batch, width)
        for weight, bias in zip(self.weights, self.biases):
            h = self.activation(torch.baddbmm(bias, h, weight))
        return h[0], h[1]

    @property
    def width(self) -> int:
        return self.hidden_sizes[-1]


class MLPEncoder(nn.Module):
    """Tabular MLP: embeddings and numbers → hidden layers → (n, width), with a zero sparsity loss
    so it is interchangeable with the TabNet encoder."""

    def __init__(self, cardinalities: list[int], n_numeric: int, hidden_sizes: list[int], activation: str = "relu",
                 embedding_dim: int | None = None):
        super().__init__()
        self.embed = TabularEmbedding(cardinalities, n_numeric, embedding_dim)
        self.activation = ACTIVATIONS[activation]
        sizes = [self.embed.width, *hidden_sizes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for layer in self.layers:
            nn.init.orthogonal_(layer.weight, math.sqrt(2))
            nn.init.zeros_(layer.bias)
        self.width = sizes[-1]

    def forward(self, codes: Tensor, numeric: Tensor) -> tuple[Tensor, Tensor]:
        """codes (n, n_cat) long, numeric (n, n_num) → representation (n, width), sparsity loss (n,) = 0."""
        h = self.embed(codes, numeric)
        for layer in self.layers:
            h = self.activation(layer(h))
        return h, h.new_zeros(h.shape[0])
