"""Splitting a budget: feasible allocations and the optimizer on the posterior-mean response.

    bounds = Bounds.create(channels, minimum={"search": 100}, maximum={"display": 300})
    spend = optimize(experiment.parameters.day(holiday=False), budget=1000, bounds=bounds)

The optimizer maximizes the posterior-mean expected total, mean_d Σ_c scale_dc · s_c^β_dc, over
{s : Σ s = budget, minimum ≤ s ≤ maximum} with SLSQP and the analytic gradient. When every β < 1
the objective is concave and the answer is the unique optimum; it satisfies the first-order
condition: equal marginal return (∂/∂s_c) on every channel strictly inside its bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from nextbest.errors import ConfigError
from nextbest.simulators.response import DayResponse


@dataclass(frozen=True)
class Bounds:
    """Per-channel spend limits for one day, in currency units. minimum, maximum: (channels,)."""

    minimum: np.ndarray
    maximum: np.ndarray

    @classmethod
    def create(cls, channels: list[str], minimum: dict[str, float] | None = None,
               maximum: dict[str, float] | None = None) -> Bounds:
        low, high = np.zeros(len(channels)), np.full(len(channels), np.inf)
        for values, target, name in ((minimum, low, "minimum"), (maximum, high, "maximum")):
            for channel, value in (values or {}).items():
                if channel not in channels:
                    raise ConfigError(f"{name} for unknown channel '{channel}'; the channels are {channels}")
                if not np.isfinite(value) or value < 0:
                    raise ConfigError(f"{name} for '{channel}' is {value}; expected a spend ≥ 0")
                target[channels.index(channel)] = float(value)
        bad = np.flatnonzero(low > high)
        if len(bad):
            raise ConfigError(f"'{channels[bad[0]]}' has minimum {low[bad[0]]:g} above its maximum {high[bad[0]]:g}")
        return cls(low, high)

    @classmethod
    def none(cls, n_channels: int) -> Bounds:
        return cls(np.zeros(n_channels), np.full(n_channels, np.inf))

    def check(self, budget: float) -> None:
        """A budget the bounds can hold, or ConfigError."""
        if not np.isfinite(budget) or budget <= 0:
            raise ConfigError(f"budget {budget}: expected a positive amount")
        if self.minimum.sum() > budget * (1 + 1e-12):
            raise ConfigError(f"the channel minimums add up to {self.minimum.sum():g}, more than the budget {budget:g}")
        if self.maximum.sum() < budget * (1 - 1e-12):
            raise ConfigError(f"the channel maximums add up to {self.maximum.sum():g}, less than the budget {budget:g}")

    def to_dict(self, channels: list[str]) -> dict:
        return {"minimum": dict(zip(channels, self.minimum.tolist())),
                "maximum": {c: (None if np.isinf(v) else v) for c, v in zip(channels, self.maximum.tolist())}}


def allocate_shares(shares: np.ndarray, budget: float, bounds: Bounds) -> np.ndarray:
    """Turn shares (a point on the simplex, or any non-negative weights) into a feasible allocation.

    Each channel gets its minimum plus its share of what is left; a channel pushed over its maximum
    is capped and the excess goes to the others in proportion to their shares (then to their
    room, if they have no share). The result always sums to `budget` and respects the bounds, and
    every feasible allocation is reached by some shares. shares: (channels,) → (channels,)."""
    bounds.check(budget)
    shares = np.clip(np.nan_to_num(np.asarray(shares, float), nan=0.0), 0.0, None)
    shares = shares / shares.sum() if shares.sum() > 0 else np.full(len(shares), 1.0 / len(shares))
    spend = bounds.minimum + shares * (budget - bounds.minimum.sum())
    capped = np.zeros(len(spend), bool)
    for _ in range(len(spend)):
        over = ~capped & (spend > bounds.maximum)
        if not over.any():
            break
        excess = (spend[over] - bounds.maximum[over]).sum()
        spend[over] = bounds.maximum[over]
        capped |= over
        room = np.where(capped, 0.0, bounds.maximum - spend)
        weights = np.where(capped, 0.0, shares)
        weights = weights if weights.sum() > 0 else np.where(np.isinf(room), 1.0, room)
        spend = spend + excess * weights / weights.sum()
    return spend


def optimize(response: DayResponse, budget: float, bounds: Bounds | None = None,
             starts: list[np.ndarray] | None = None) -> np.ndarray:
    """(channels,) the allocation maximizing the posterior-mean expected total of `response`.

    Solved in shares of the budget (well scaled) from the equal split and any `starts` (e.g. the
    historical split); the best local optimum is returned (they coincide when every β < 1)."""
    n = response.scale.shape[1]
    bounds = bounds or Bounds.none(n)
    bounds.check(budget)
    mean = response.mean()
    floor = 1e-9  # a channel at exactly 0 has an infinite marginal return when β < 1
    low = np.maximum(bounds.minimum / budget, floor)
    high = np.minimum(bounds.maximum / budget, 1.0)
    scale = mean.value(np.full(n, budget / n)) or 1.0

    def objective(shares):
        return -mean.value(shares * budget) / scale, -mean.gradient(shares * budget) * budget / scale

    best, best_value = None, -np.inf
    for start in [np.full(n, 1.0 / n), *(starts or [])]:
        x0 = allocate_shares(start, budget, bounds) / budget
        result = minimize(objective, np.clip(x0, low, high), jac=True, method="SLSQP", bounds=list(zip(low, high)),
                          constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones(n)}],
                          options={"ftol": 1e-13, "maxiter": 500})
        spend = _polish(result.x * budget, budget, bounds)
        value = mean.value(spend)
        if value > best_value:
            best, best_value = spend, value
    return best


def _polish(spend: np.ndarray, budget: float, bounds: Bounds) -> np.ndarray:
    """Clip to the bounds and spread the solver's tiny residual over the channels inside them,
    so that the allocation sums to the budget to rounding error."""
    spend = np.clip(spend, bounds.minimum, bounds.maximum)
    inside = (spend > bounds.minimum) & (spend < bounds.maximum)
    if inside.any():
        spend[inside] += (budget - spend.sum()) * spend[inside] / spend[inside].sum()
    return spend
