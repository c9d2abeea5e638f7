"""Policy and value heads: a representation (batch, width) → an action distribution or a value.

`ActionSpec` says what kind of action a head produces; build it from a Gymnasium space with
`ActionSpec.from_space` or for tabular choice sets with `ActionSpec.discrete(sizes)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from nextbest.errors import ConfigError
from nextbest.nets.distributions import (
    ActionDistribution,
    Categorical,
    DiagonalGaussian,
    MultiCategorical,
    SimplexGaussian,
    TanhGaussian,
)


@dataclass(frozen=True)
class ActionSpec:
    """categorical: sizes=(k,); multi-categorical: sizes=(k1, k2, …); box: low/high of shape (d,);
    simplex: d + 1 shares summing to 1 (the Gaussian has d dimensions); gaussian: unbounded (d,)."""

    kind: Literal["categorical", "multi-categorical", "box", "simplex", "gaussian"]
    sizes: tuple[int, ...] = ()
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @classmethod
    def discrete(cls, sizes: tuple[int, ...] | list[int]) -> ActionSpec:
        sizes = tuple(int(s) for s in sizes)
        return cls("categorical" if len(sizes) == 1 else "multi-categorical", sizes)

    @classmethod
    def from_space(cls, space: spaces.Space, simplex: bool = False) -> ActionSpec:
        if simplex and not isinstance(space, spaces.Box):
            raise ConfigError(f"simplex=True needs a Box action space, got {space}")
        if isinstance(space, spaces.Discrete):
            return cls("categorical", (int(space.n),))
        if isinstance(space, spaces.MultiDiscrete):
            return cls("multi-categorical", tuple(int(n) for n in np.ravel(space.nvec)))
        if isinstance(space, spaces.Box):
            if len(space.shape) != 1:
                raise ConfigError(f"Box action spaces must be one-dimensional, got shape {space.shape}")
            if simplex:
                if space.shape[0] < 2:
                    raise ConfigError("a simplex action needs at least 2 shares")
                if (np.asarray(space.low) > 0).any() or (np.asarray(space.high) < 1).any():
                    raise ConfigError(f"simplex shares lie in [0, 1]; the Box bounds {space.low} … {space.high} exclude them")
                return cls("simplex", (space.shape[0],))
            low, high = np.asarray(space.low, float), np.asarray(space.high, float)
            if np.isfinite(low).all() and np.isfinite(high).all():
                return cls("box", (space.shape[0],), tuple(low), tuple(high))
            if np.isfinite(low).any() or np.isfinite(high).any():
                raise ConfigError(f"Box action bounds must be all finite or all infinite, got {low} … {high}")
            return cls("gaussian", (space.shape[0],))
        raise ConfigError(f"unsupported action space {space}; use Discrete, MultiDiscrete or a one-dimensional Box")

    @property
    def discrete_kind(self) -> bool:
        return self.kind in ("categorical", "multi-categorical")

    @property
    def n_parameters(self) -> int:
        """Outputs of the head's linear layer: logits, or Gaussian means."""
        if self.discrete_kind:
            return sum(self.sizes)
        return self.sizes[0] - 1 if self.kind == "simplex" else self.sizes[0]

    @property
    def raw_shape(self) -> tuple[int, ...]:
        """Shape of one stored raw action."""
        if self.kind == "categorical":
            return ()
        if self.kind == "multi-categorical":
            return (len(self.sizes),)
        return (self.n_parameters,)


class PolicyHead(nn.Module):
    """Linear map to distribution parameters; Gaussians carry a state-independent log-std (SB3's default)."""

    def __init__(self, width: int, spec: ActionSpec, *, log_std_init: float = 0.0, gain: float = 0.01):
        super().__init__()
        self.spec = spec
        self.linear = nn.Linear(width, spec.n_parameters)
        nn.init.orthogonal_(self.linear.weight, gain)
        nn.init.zeros_(self.linear.bias)
        if not spec.discrete_kind:
            self.log_std = nn.Parameter(torch.full((spec.n_parameters,), float(log_std_init)))
        if spec.kind == "box":
            self.register_buffer("low", torch.tensor(spec.low, dtype=torch.float32))
            self.register_buffer("high", torch.tensor(spec.high, dtype=torch.float32))

    def forward(self, h: Tensor, floor: float = 0.0) -> ActionDistribution:
        """h: (batch, width) → a distribution over a batch of actions."""
        out = self.linear(h)
        kind = self.spec.kind
        if kind == "categorical":
            return Categorical(out, floor)
        if kind == "multi-categorical":
            return MultiCategorical(out, self.spec.sizes, floor)
        if kind == "box":
            return TanhGaussian(out, self.log_std, self.low, self.high)
        if kind == "simplex":
            return SimplexGaussian(out, self.log_std)
        return DiagonalGaussian(out, self.log_std)


class ValueHead(nn.Module):
    """Linear map to one value per row: (batch, width) → (batch,)."""

    def __init__(self, width: int, gain: float = 1.0):
        super().__init__()
        self.linear = nn.Linear(width, 1)
        nn.init.orthogonal_(self.linear.weight, gain)
        nn.init.zeros_(self.linear.bias)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(h).squeeze(-1)
