"""`nextbest/BudgetAllocation-v0`: split each day's budget across channels, in a world drawn from a posterior.

    env = gymnasium.make("nextbest/BudgetAllocation-v0")                          # a built-in synthetic world
    env = gymnasium.make("nextbest/BudgetAllocation-v0", model=parameters, budget=(500, 1500))  # a posterior
    env = BudgetExperiment.open("runs/budget").make_env()                          # a fitted experiment

(`nextbest.budget.experiment.BudgetExperiment.make_env` takes the posterior and the daily budget
range of the experiment's history.)

Each step is one day. The observation is the calendar and the budget: a one-hot weekday (7),
the holiday flag, and the budget divided by the largest possible budget. The action is a point
on the simplex (any non-negative weights; they are normalized), turned into spend by
`allocate_shares`: each channel's minimum plus its share of the rest, capped at its maximum, so
that the allocation always sums to the budget. Each episode draws one parameter set from the
posterior, so an agent learns allocations that are good under the model's uncertainty.

Rewards (`reward=`): "neg_log_cpc" (default) −log(cost per click) = log(clicks / budget);
"clicks" or "conversions", divided by what the equal split buys on a typical day (so that
rewards are near 1). Clicks are the draw's expected clicks, or sampled counts with
`sample_counts=True`. `info` holds the allocation, the clicks and the cost per click.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from nextbest.errors import ConfigError
from nextbest.simulators.optimize import Bounds, allocate_shares
from nextbest.simulators.response import ResponseParameters
from nextbest.simulators.synthesize import DAILY_BUDGET, synthesize

Reward = Literal["neg_log_cpc", "clicks", "conversions"]
REWARDS = ("neg_log_cpc", "clicks", "conversions")


class BudgetAllocationEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(
        self,
        model: ResponseParameters | None = None,
        *,
        budget: float | tuple[float, float] | None = None,
        minimum: dict[str, float] | None = None,
        maximum: dict[str, float] | None = None,
        reward: Reward = "neg_log_cpc",
        episode_days: int = 28,
        holiday_rate: float = 0.2,
        sample_counts: bool = False,
        max_draws: int | None = None,
    ):
        """model: the response model's posterior parameters, or None for the built-in synthetic world
        (3 channels, seed 0, its true parameters). budget: a fixed daily budget or a (low, high) range
        drawn uniformly each day; needed with `model` (`BudgetExperiment.make_env` passes the
        history's 5th–95th percentile of daily spend), 500–1500 for the synthetic world.
        holiday_rate: chance that a day is a holiday (above a real calendar's, so that holidays are
        learned)."""
        parameters, budget_range = _model(model, budget)
        if reward not in REWARDS:
            raise ConfigError(f"unknown reward {reward!r}; choose one of {list(REWARDS)}")
        if reward == "conversions" and not parameters.has_conversions:
            raise ConfigError("reward 'conversions' needs a model fitted on a history with a 'conversions' column")
        if not 0 <= holiday_rate <= 1 or episode_days < 1:
            raise ConfigError(f"holiday_rate {holiday_rate} must be in [0, 1] and episode_days {episode_days} ≥ 1")
        self.parameters = parameters.thin(max_draws) if max_draws else parameters
        self.channels = self.parameters.channels
        self.budget_range = budget_range
        self.bounds = Bounds.create(self.channels, minimum, maximum)
        for end in budget_range:
            self.bounds.check(end)
        self.reward_name = reward
        self.episode_days = episode_days
        self.holiday_rate = holiday_rate
        self.sample_counts = sample_counts
        n = len(self.channels)
        self.observation_space = spaces.Box(0.0, 1.0, (9,), np.float32)
        self.action_space = spaces.Box(0.0, 1.0, (n,), np.float32)

        # log E[metric] = base[d, c] + β[d, c]·log s + weekday[d, w] + holiday[d, c]·h: the day's power law.
        p = self.parameters
        self._base = p.alpha - p.beta * p.spend_center + p.trend * p.calendar.last + np.log(p.ctr)
        if reward == "conversions":
            self._base = self._base + np.log(p.cvr)
        typical = np.mean(budget_range)
        equal = np.exp(self._base + p.beta * np.log(typical / n)).sum(axis=1).mean()
        self.reward_scale = 1.0 if reward == "neg_log_cpc" else float(equal)
        self._draw = 0
        self._day = 0
        self._weekday = 0
        self._holiday = 0
        self._budget = typical

    # --- Gymnasium ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._draw = int(self.np_random.integers(self.parameters.n_draws))
        self._day = 0
        self._weekday = int(self.np_random.integers(7))
        self._new_day()
        return self._observation(), {"draw": self._draw}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        spend = self.allocation(action)
        clicks = self.expected(spend)
        if self.sample_counts:
            clicks = float(self._sample(spend))
        if self.reward_name == "neg_log_cpc":
            reward = float(np.log(max(clicks, 0.5) / self._budget))
        else:
            reward = clicks / self.reward_scale
        info = {"allocation": spend, self._metric: clicks, "budget": self._budget, "holiday": self._holiday,
                "cost_per_" + self._metric[:-1]: self._budget / max(clicks, 1e-12)}
        self._day += 1
        self._weekday = (self._weekday + 1) % 7
        truncated = self._day >= self.episode_days
        self._new_day()
        return self._observation(), reward, False, truncated, info

    # --- the day ----------------------------------------------------------------------------------
    @property
    def _metric(self) -> str:
        return "conversions" if self.reward_name == "conversions" else "clicks"

    def allocation(self, action: np.ndarray) -> np.ndarray:
        """(channels,) spend for an action (shares) on the current day; sums to the day's budget."""
        return allocate_shares(np.asarray(action, float).reshape(-1), self._budget, self.bounds)

    def expected(self, spend: np.ndarray, draw: int | None = None) -> float:
        """Expected clicks (or conversions) of `spend` today under the episode's draw."""
        d = self._draw if draw is None else draw
        with np.errstate(divide="ignore"):
            log_mean = (self._base[d] + self.parameters.beta[d] * np.log(spend) + self.parameters.weekday[d, self._weekday]
                        + self.parameters.holiday[d] * self._holiday)
        return float(np.where(spend > 0, np.exp(log_mean), 0.0).sum())

    def _sample(self, spend: np.ndarray) -> int:
        p, d = self.parameters, self._draw
        impressions = np.exp(self._base[d] - np.log(p.ctr[d]) + p.beta[d] * np.log(np.maximum(spend, 1e-12))
                             + p.weekday[d, self._weekday] + p.holiday[d] * self._holiday)
        shown = self.np_random.negative_binomial(p.dispersion[d], p.dispersion[d] / (p.dispersion[d] + impressions))
        clicks = self.np_random.negative_binomial(p.click_dispersion[d], p.click_dispersion[d] / (p.click_dispersion[d] + shown * p.ctr[d]))
        if self.reward_name == "conversions":
            cd = p.conversion_dispersion[d]
            clicks = self.np_random.negative_binomial(cd, cd / (cd + clicks * p.cvr[d]))
        return int(clicks.sum())

    def set_day(self, budget: float, holiday: bool, weekday: int = 0, draw: int | None = None) -> np.ndarray:
        """Put the environment on a given day (for evaluation); returns its observation."""
        self.bounds.check(budget)
        self._budget, self._holiday, self._weekday = float(budget), int(holiday), int(weekday)
        if draw is not None:
            self._draw = draw
        return self._observation()

    def _new_day(self) -> None:
        low, high = self.budget_range
        self._budget = float(low if low == high else self.np_random.uniform(low, high))
        self._holiday = int(self.np_random.random() < self.holiday_rate)

    def _observation(self) -> np.ndarray:
        observation = np.zeros(9, np.float32)
        observation[self._weekday] = 1.0
        observation[7] = self._holiday
        observation[8] = self._budget / self.budget_range[1]
        return observation


def _model(model: ResponseParameters | None, budget) -> tuple[ResponseParameters, tuple[float, float]]:
    """Parameters and the daily budget range."""
    if model is None:
        parameters, default = synthesize(3, 365, seed=0)[1], (DAILY_BUDGET * 0.5, DAILY_BUDGET * 1.5)
    elif isinstance(model, ResponseParameters):
        parameters, default = model, None
    else:
        raise ConfigError(f"model {str(model)!r}: the environment takes the response model's parameters (or None for "
                          f"the synthetic world); for a fitted experiment directory use "
                          f"BudgetExperiment.open({str(model)!r}).make_env() (nextbest.budget.experiment)")
    if budget is None:
        if default is None:
            raise ConfigError("give the daily budget (a number or a (low, high) range) for a model without a history")
        budget = default
    low, high = (float(budget), float(budget)) if np.isscalar(budget) else (float(budget[0]), float(budget[1]))
    if not 0 < low <= high:
        raise ConfigError(f"budget range {budget}: expected 0 < low ≤ high")
    return parameters, (low, high)
