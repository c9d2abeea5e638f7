"""A compact TabNet encoder (Arik and Pfister, 2021) for decisions on tabular contexts.

    codes, numeric ──embed──▶ x ──feature transformer──▶ [d | a]
    for each decision step:  M = mask(prior · attentive(a));  prior ← prior · (γ − M)
                             [d | a] = feature transformer(M ⊙ x);   out += ReLU(d)

Masks are over *columns* (a categorical column's embedding units share its weight), each row of
a mask sums to 1 (sparsemax or 1.5-entmax), and the sparsity loss is the masks' mean entropy per
row, returned per row so that each prediction can log it.

Where this departs from the paper (and from pytorch-tabnet): normalization is per row (layer
normalization) instead of ghost batch normalization. A row's representation then never depends on
the other rows of its batch: predicting one customer or ten thousand gives the same answer, and
the probability PPO logs when it predicts is exactly the probability it recomputes when it trains
(with batch statistics in training mode the two differ before any gradient step, and the clipped
ratio is biased from the start).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nextbest.nets.embedding import TabularEmbedding
from nextbest.nets.sparse import MASKS


class GLUBlock(nn.Module):
    """Linear → layer norm → gated linear unit: (n, in) → (n, out). The linear layer may be shared."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear
        self.norm = nn.LayerNorm(linear.out_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.glu(self.norm(self.linear(x)), dim=-1)


class FeatureTransformer(nn.Module):
    """GLU blocks whose linear layers are shared across steps, then step-specific ones; residual
    connections scaled by √½ from the second block on."""

    def __init__(self, in_features: int, width: int, shared: nn.ModuleList, n_independent: int):
        super().__init__()
        own = [nn.Linear(in_features if not shared and i == 0 else width, 2 * width, bias=False) for i in range(n_independent)]
        self.blocks = nn.ModuleList(GLUBlock(linear) for linear in [*shared, *own])

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks[0](x)
        for block in self.blocks[1:]:
            h = (h + block(h)) * math.sqrt(0.5)
        return h


class AttentiveTransformer(nn.Module):
    """a (n, n_a) and prior (n, n_columns) → mask (n, n_columns), each row summing to 1.

    No normalization before the mask: normalizing a row of column scores would impose a fixed
    spread, hence a fixed sparsity, on every row from the start; here the masks start nearly
    uniform and their sharpness is learned (measured: faster learning on optimus-poc)."""

    def __init__(self, n_a: int, n_columns: int, mask_type: str):
        super().__init__()
        self.linear = nn.Linear(n_a, n_columns, bias=False)
        self.mask = MASKS[mask_type]

    def forward(self, a: Tensor, prior: Tensor) -> Tensor:
        return self.mask(self.linear(a) * prior)


class TabNetEncoder(nn.Module):
    """codes (n, n_categorical) long, numeric (n, n_numeric) float → representation (n, n_d) and
    attentive-transformer loss (n,) (mean mask entropy over the decision steps)."""

    def __init__(
        self,
        cardinalities: list[int],
        n_numeric: int,
        *,
        n_d: int = 8,
        n_a: int = 8,
        n_steps: int = 3,
        gamma: float = 1.3,
        n_shared: int = 2,
        n_independent: int = 2,
        mask_type: Literal["sparsemax", "entmax"] = "sparsemax",
        embedding_dim: int | None = None,
        epsilon: float = 1e-15,
    ):
        super().__init__()
        if n_shared + n_independent < 1:
            raise ValueError("a feature transformer needs at least one GLU block (n_shared + n_independent ≥ 1)")
        self.embed = TabularEmbedding(cardinalities, n_numeric, embedding_dim)
        self.n_d, self.n_a, self.gamma, self.epsilon = n_d, n_a, gamma, epsilon
        width, columns = n_d + n_a, self.embed.n_columns
        shared = nn.ModuleList(
            nn.Linear(self.embed.width if i == 0 else width, 2 * width, bias=False) for i in range(n_shared)
        )

        def transformer() -> FeatureTransformer:
            return FeatureTransformer(self.embed.width, width, shared, n_independent)

        self.initial = transformer()
        self.steps = nn.ModuleList(transformer() for _ in range(n_steps))
        self.attention = nn.ModuleList(AttentiveTransformer(n_a, columns, mask_type) for _ in range(n_steps))
        self.width = n_d

    def forward(self, codes: Tensor, numeric: Tensor) -> tuple[Tensor, Tensor]:
        out, loss, _ = self._run(codes, numeric)
        return out, loss

    def masks(self, codes: Tensor, numeric: Tensor) -> Tensor:
        """(n_steps, n, n_columns) attention masks, columns in the order categorical then numeric."""
        return self._run(codes, numeric)[2]

    def _run(self, codes: Tensor, numeric: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.embed(codes, numeric)
        spread = self.embed.column_of_output
        prior = x.new_ones(x.shape[0], self.embed.n_columns)
        a = self.initial(x)[:, self.n_d :]
        out = x.new_zeros(x.shape[0], self.n_d)
        entropy = x.new_zeros(x.shape[0])
        masks = []
        for attentive, transformer in zip(self.attention, self.steps):
            mask = attentive(a, prior)
            entropy = entropy + (-mask * torch.log(mask + self.epsilon)).sum(dim=1)
            prior = prior * (self.gamma - mask)
            h = transformer(x * mask[:, spread])
            out = out + torch.relu(h[:, : self.n_d])
            a = h[:, self.n_d :]
            masks.append(mask)
        return out, entropy / max(len(self.steps), 1), torch.stack(masks) if masks else x.new_zeros(0, x.shape[0], 0)
