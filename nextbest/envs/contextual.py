"""Contextual scenarios: simulated customers who react to marketing actions, with a known oracle.

A scenario draws customer contexts (a table with the scenario's columns), knows the expected
reaction to every joint action in every context (`expected_reactions`, the oracle), and
samples reactions. It is also a Gymnasium environment whose episodes are one decision long,
so any Gymnasium agent can play it; the table methods are the fast path the loop uses.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from nextbest.config import RewardConfig
from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import category_codes
from nextbest.data.schema import NumericEncoding, Schema
from nextbest.rewards import make_reward


class ContextualScenario(gym.Env):
    """Subclasses set the class attributes and implement `sample_contexts` and `expected_reactions`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    categorical: ClassVar[dict[str, list[str]]]
    numeric: ClassVar[list[str]]
    sizes: ClassVar[tuple[int, ...]]
    numeric_bounds: ClassVar[tuple[float, float]] = (0.0, 1e6)  # every built-in numeric column is non-negative
    reaction: ClassVar[str] = "bernoulli"  # or "revenue": expected_reactions are then means of a purchase × amount
    reward_config: ClassVar[RewardConfig] = RewardConfig()
    metadata = {"render_modes": []}

    def __init__(self, world_seed: int = 0):
        """`world_seed` picks the scenario's hidden coefficients; 0 is the documented scenario."""
        self.world = np.random.default_rng([world_seed, *map(ord, self.name)])
        self.actions = ActionSpace(self.sizes)
        self.reward = make_reward(self.reward_config, self.actions)
        self.observation_space = spaces.Dict(
            {
                "categorical": spaces.MultiDiscrete([len(v) for v in self.categorical.values()]),
                "numeric": spaces.Box(*self.numeric_bounds, (len(self.numeric),), np.float32),
            }
        )
        self.action_space = spaces.Discrete(self.sizes[0]) if len(self.sizes) == 1 else spaces.MultiDiscrete(self.sizes)
        self._context: pd.DataFrame | None = None

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric]

    # --- the table interface ------------------------------------------------------------------
    def sample_contexts(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """n customers, one row each, columns `self.columns`."""
        raise NotImplementedError

    def expected_reactions(self, contexts: pd.DataFrame) -> np.ndarray:
        """(n, n_joint) expected reaction of every joint action (the oracle's knowledge)."""
        raise NotImplementedError

    def sample_reactions(self, contexts: pd.DataFrame, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n,) reactions to (n, n_choices) actions; default: Bernoulli conversions."""
        joint = self.actions.to_joint(actions)
        p = self.expected_reactions(contexts)[np.arange(len(joint)), joint]
        return (rng.random(len(p)) < p).astype(np.float64)

    def expected_rewards(self, contexts: pd.DataFrame) -> np.ndarray:
        """(n, n_joint) expected reward of every joint action under the scenario's reward."""
        return self.reward.expected_reward(self.expected_reactions(contexts))

    def schema(self, numeric_encoding: NumericEncoding = "quantile") -> Schema:
        """The scenario's true schema (vocabularies, and numeric statistics of its customer distribution)."""
        sample = self.sample_contexts(20_000, np.random.default_rng(12345))
        schema = Schema(columns=self.columns, categorical=dict(self.categorical), numeric_encoding=numeric_encoding)
        return schema.with_numeric_stats(sample)

    # --- the Gymnasium interface --------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._context = self.sample_contexts(1, self.np_random)
        return self._observation(self._context), {"expected_rewards": self.expected_rewards(self._context)[0]}

    def step(self, action):
        if self._context is None:
            raise RuntimeError("call reset() before step()")
        actions = np.atleast_1d(np.asarray(action, dtype=np.int64)).reshape(1, -1)
        reaction = self.sample_reactions(self._context, actions, self.np_random)
        reward = float(self.reward.calculate_reward(actions, reaction)[0])
        self._context = self.sample_contexts(1, self.np_random)
        info = {"reaction": float(reaction[0])}
        return self._observation(self._context), reward, True, False, info

    def _observation(self, context: pd.DataFrame) -> dict[str, np.ndarray]:
        schema = Schema(columns=self.columns, categorical=dict(self.categorical))
        codes = [category_codes(context[c], c, schema)[0] for c in self.categorical]
        return {
            "categorical": np.asarray(codes, dtype=np.int64),
            "numeric": context[self.numeric].to_numpy(dtype=np.float32)[0],
        }


def choice(rng: np.random.Generator, values: list[str], p: list[float], n: int) -> np.ndarray:
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p)]


def one_hot(values: pd.Series, vocabulary: list[str]) -> np.ndarray:
    """(n, len(vocabulary)) float one-hot of a categorical column."""
    codes = pd.Categorical(values.astype(str), categories=vocabulary).codes
    return np.eye(len(vocabulary))[codes]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
