"""Rewards: how a reaction (conversion, revenue, …) becomes the number an agent maximizes.

    reward = REWARDS["revenue-minus-cost"](RewardConfig(action_costs=[0, 2.5]))
    reward.calculate_reward(actions, reactions)  # (n, n_choices) ints, (n,) reactions → (n,) floats

A custom reward subclasses `Reward` and adds one line to REWARDS (or calls `register_reward`).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd

from nextbest.config import RewardConfig
from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import shown
from nextbest.errors import ConfigError, SchemaError

_TRUE = {"true", "yes", "conversion", "converted", "click", "clicked", "1"}
_FALSE = {"false", "no", "no_conversion", "not_converted", "no_click", "0"}


class Reward:
    name: ClassVar[str]
    summary: ClassVar[str]

    def __init__(self, config: RewardConfig, action_space: ActionSpace):
        self.config = config
        self.action_space = action_space

    def calculate_reward(self, actions: np.ndarray, reactions: np.ndarray) -> np.ndarray:
        """actions (n, n_choices) int, reactions (n,) numbers → rewards (n,) float64."""
        raise NotImplementedError

    def expected_reward(self, expected_reactions: np.ndarray) -> np.ndarray:
        """(n, n_joint) expected reactions of every joint action → expected rewards (for oracles).
        Valid for rewards linear in the reaction, which the built-ins are."""
        joint = np.arange(self.action_space.n_joint)
        return np.stack([self.calculate_reward(self.action_space.from_joint(np.full(len(expected_reactions), a)),
                                               expected_reactions[:, a]) for a in joint], axis=1)


class ReactionReward(Reward):
    name = "reaction"
    summary = "the reaction itself as a number (conversion 0/1, revenue, clicks)"

    def calculate_reward(self, actions: np.ndarray, reactions: np.ndarray) -> np.ndarray:
        return np.asarray(reactions, dtype=np.float64)


class RevenueMinusCost(Reward):
    name = "revenue-minus-cost"
    summary = "the reaction (revenue) minus the cost of the action taken (action_costs, one per joint action)"

    def __init__(self, config: RewardConfig, action_space: ActionSpace):
        super().__init__(config, action_space)
        costs = config.action_costs
        if costs is None or len(costs) != action_space.n_joint:
            raise ConfigError(
                f"reward 'revenue-minus-cost' needs action_costs with one cost per joint action "
                f"({action_space.n_joint} for action space {list(action_space.sizes)}), got {costs}"
            )
        self.costs = np.asarray(costs, dtype=np.float64)

    def calculate_reward(self, actions: np.ndarray, reactions: np.ndarray) -> np.ndarray:
        return np.asarray(reactions, dtype=np.float64) - self.costs[self.action_space.to_joint(actions)]


REWARDS: dict[str, type[Reward]] = {reward.name: reward for reward in (ReactionReward, RevenueMinusCost)}


def register_reward(reward: type[Reward]) -> type[Reward]:
    """Add a custom reward class to the registry (usable as a decorator)."""
    REWARDS[reward.name] = reward
    return reward


def make_reward(config: RewardConfig, action_space: ActionSpace) -> Reward:
    try:
        cls = REWARDS[config.reward_name]
    except KeyError:
        raise ConfigError(f"unknown reward {config.reward_name!r}; choose one of {sorted(REWARDS)}") from None
    return cls(config, action_space)


def reaction_values(reactions: pd.Series, *, source: str = "the table") -> np.ndarray:
    """A `reaction` column as float64: numbers, booleans, or words like 'conversion' / 'no_conversion'."""
    if pd.api.types.is_bool_dtype(reactions):
        return reactions.to_numpy(dtype=np.float64)
    numbers = pd.to_numeric(reactions, errors="coerce").to_numpy(dtype=float, na_value=np.nan, copy=True)
    bad = ~np.isfinite(numbers)
    if bad.any():
        words = reactions[bad].astype(str).str.strip().str.lower()
        numbers[bad] = words.map({**{w: 1.0 for w in _TRUE}, **{w: 0.0 for w in _FALSE}}).to_numpy(dtype=float, na_value=np.nan)
        still = np.flatnonzero(~np.isfinite(numbers))
        if len(still):
            raw = reactions.iloc[still[0]]
            what = "is empty" if pd.isna(raw) else f"has {shown(raw)}"
            raise SchemaError(
                f"{source}: column 'reaction' {what} in row {still[0] + 1}; expected a number "
                f"or one of {sorted(_TRUE | _FALSE)}"
            )
    return numbers


def reaction_value(value: object, *, source: str = "reaction") -> float:
    """One reaction as `reaction_values` reads a cell: a finite number, a boolean, or a word like 'conversion'."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return 1.0 if value.strip().lower() in _TRUE else 0.0
    raise SchemaError(f"{source}: expected a number, true/false or one of {sorted(_TRUE | _FALSE)}, got {value!r}")
