"""`nextbest/BudgetPacing-v0`: spend a campaign budget over a flight, day by day, when spend carries over.

    env = gymnasium.make("nextbest/BudgetPacing-v0")                    # a built-in carryover world
    env = gymnasium.make("nextbest/BudgetPacing-v0", model=parameters, budget=28_000, days=28,
                         start="2026-01-01", carry_in=history.spend[-13:])

Each episode draws one parameter set from the posterior (the model's uncertainty) and is one
flight of `days` steps. The observation: the share of the flight gone, the share of the budget
left, and each channel's carried-over adstock (the part of today's adstock that earlier days'
spend already put there, under the posterior-mean decay) over the even daily budget, capped at 5.
The action (C + 1 values in [0, 1]): a pace, today's spend being 2·pace × the remaining budget per
remaining day (kept where the remaining days can still spend the rest within the daily bounds; the
last day spends all that is left, so a flight always spends exactly its budget), and channel
shares, turned into spend by `allocate_shares` within the per-channel daily minimums and maximums.
The reward is the day's expected clicks (or conversions) under the episode's draw, over the even
plan's daily average (so rewards are near 1); the last step adds the carryover tail's. The
undiscounted return is therefore the flight's objective, the one `plan_flight` maximizes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from nextbest.errors import ConfigError
from nextbest.simulators.adstock import lag_weights
from nextbest.simulators.flight import Flight, check_flight_budget, spread
from nextbest.simulators.optimize import Bounds, allocate_shares
from nextbest.simulators.response import Metric, ResponseParameters
from nextbest.simulators.synthesize import DAILY_BUDGET, synthesize_carryover

CARRY_CAP = 5.0


class BudgetPacingEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(
        self,
        model: ResponseParameters | None = None,
        *,
        budget: float | None = None,
        days: int = 28,
        start: str | np.datetime64 | None = None,
        carry_in: np.ndarray | None = None,
        holiday: np.ndarray | None = None,
        minimum: dict[str, float] | None = None,
        maximum: dict[str, float] | None = None,
        metric: Metric = "clicks",
        max_draws: int | None = None,
    ):
        """model: posterior (or true) parameters, or None for the built-in world (3 channels, a carryover
        history of seed 0, its truth; the flight starts the day after it and carries its adstock in).
        budget: the flight's total (default: the synthetic daily budget × days). holiday: (days + tail,)
        flags of the flight's days (default none)."""
        if model is None:
            history, model = synthesize_carryover(3, 365, seed=0)
            start = history.dates[-1] + 1 if start is None else start
            carry_in = history.spend if carry_in is None else carry_in
        if not isinstance(model, ResponseParameters):
            raise ConfigError(f"model {str(model)!r}: the environment takes the response model's parameters (or None "
                              "for the built-in world)")
        if start is None:
            raise ConfigError("give the flight's first day (start=) for a model without a history")
        budget = DAILY_BUDGET * days if budget is None else float(budget)
        self.parameters = model.thin(max_draws) if max_draws else model
        self.channels = self.parameters.channels
        self.bounds = Bounds.create(self.channels, minimum, maximum)
        check_flight_budget(budget, days, self.bounds)
        self.budget, self.days, self.metric = budget, days, metric
        self.dates = np.datetime64(start, "D") + np.arange(days)
        self.holiday, self.carry_in = holiday, carry_in
        n = len(self.channels)
        self.observation_space = spaces.Box(0.0, np.array([1.0, 1.0] + [CARRY_CAP] * n, np.float32), (2 + n,), np.float32)
        self.action_space = spaces.Box(0.0, 1.0, (n + 1,), np.float32)
        mean = self.parameters.posterior_mean()
        self._carry_weights = lag_weights(mean.decay, mean.max_lag)[0] if mean.kind == "hill" else None  # (L, C)
        even = spread(np.ones(days), np.ones(n), budget, self.bounds)
        self.reward_scale = float(self._flight(mean).total(even)[0]) / days
        self._draw = 0
        self._day = 0
        self._plan = np.zeros((days, n))
        self._flight_of_draw = self._flight(self.parameters.take([0]))

    def _flight(self, parameters: ResponseParameters) -> Flight:
        return Flight.create(parameters, self.dates, self.holiday, self.carry_in, self.metric)

    # --- Gymnasium ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._draw = int(self.np_random.integers(self.parameters.n_draws))
        self._flight_of_draw = self._flight(self.parameters.take([self._draw]))
        self._day = 0
        self._plan = np.zeros_like(self._plan)
        return self._observation(), {"draw": self._draw}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        spend = self.allocation(action)
        self._plan[self._day] = spend
        values = self._flight_of_draw.per_day(self._plan)[0]  # (T, C); days after today have no spend yet
        metric = float(values[self._day].sum())
        last = self._day == self.days - 1
        if last:
            metric += float(values[self.days:].sum())  # the carryover tail
        info = {"allocation": spend, "date": str(self.dates[self._day]), self.metric: metric,
                "remaining": self.remaining}
        self._day += 1
        observation = self._observation() if not last else np.zeros(self.observation_space.shape, np.float32)
        return observation, metric / self.reward_scale, last, False, info

    # --- the day --------------------------------------------------------------------------------
    @property
    def remaining(self) -> float:
        return self.budget - float(self._plan.sum())

    @property
    def plan(self) -> np.ndarray:
        """(days, channels) the spend so far (zeros for the days to come)."""
        return self._plan.copy()

    def allocation(self, action: np.ndarray) -> np.ndarray:
        """(channels,) today's spend for an action: the pace sets the day's total, the shares split it."""
        action = np.nan_to_num(np.asarray(action, float).reshape(-1), nan=0.0)
        left = self.days - self._day
        low_day, high_day = self.bounds.minimum.sum(), self.bounds.maximum.sum()
        remaining = max(self.remaining, 0.0)
        if left == 1:
            return allocate_shares(action[1:], remaining, self.bounds)
        low = max(low_day, remaining - (left - 1) * high_day)  # what the remaining days cannot spend
        high = min(high_day, remaining - (left - 1) * low_day)  # what they must
        total = float(np.clip(2 * np.clip(action[0], 0, 1) * remaining / left, low, high))
        return allocate_shares(action[1:], total, self.bounds)

    def _observation(self) -> np.ndarray:
        n = len(self.channels)
        carry = np.zeros(n)
        if self._carry_weights is not None:
            before = np.concatenate([self._flight_of_draw.carry_in, self._plan[: self._day]])
            recent = before[::-1][: self._carry_weights.shape[0] - 1]  # yesterday first
            carry = (self._carry_weights[1: len(recent) + 1] * recent).sum(axis=0)
        observation = np.concatenate([[self._day / self.days, self.remaining / self.budget],
                                      np.clip(carry / (self.budget / self.days), 0.0, CARRY_CAP)])
        return np.clip(observation, 0.0, self.observation_space.high).astype(np.float32)
