"""ε-greedy on per-action ridge regressions: the simplest baseline that learns."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from nextbest.agents.base import PolicyOutput, one_hot_argmax
from nextbest.agents.linear import LinearAgent, LinearSettings
from nextbest.agents.search import Range, SearchSpace
from nextbest.data.encoding import Features


class EpsilonGreedySettings(LinearSettings):
    epsilon: float = Field(0.1, ge=0, le=1, description="probability of a uniformly random action")
    search_space: ClassVar[SearchSpace] = LinearSettings.search_space | {"epsilon": Range(0.01, 0.3, log=True)}


class EpsilonGreedy(LinearAgent):
    """With probability 1 − ε the action with the highest predicted reward, else a random one."""

    name = "epsilon-greedy"
    summary = "ε-greedy on one ridge regression per action"
    Config = EpsilonGreedySettings

    def distribution(self, features: Features, seeds: np.ndarray) -> PolicyOutput:
        epsilon = self.config.epsilon
        scores = self.scores(features)
        policy = (1 - epsilon) * one_hot_argmax(scores) + epsilon / self.action_space.n_joint
        return PolicyOutput((self.with_floor(policy),), (scores,), action_values=scores)
