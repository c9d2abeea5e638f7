"""LinUCB with disjoint linear models (Li et al., 2010): optimism in the face of uncertainty."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from nextbest.agents.base import PolicyOutput, one_hot_argmax
from nextbest.agents.linear import LinearAgent, LinearSettings
from nextbest.agents.search import Range, SearchSpace
from nextbest.data.encoding import Features


class LinUCBSettings(LinearSettings):
    alpha: float = Field(1.0, ge=0, description="width of the confidence bound, in posterior standard deviations")
    search_space: ClassVar[SearchSpace] = LinearSettings.search_space | {"alpha": Range(0.05, 3.0, log=True)}


class LinUCB(LinearAgent):
    """Takes argmax_a μ_aᵀx + α σ √(xᵀA_a⁻¹x); deterministic apart from the exploration floor."""

    name = "linucb"
    summary = "LinUCB: upper confidence bounds on one ridge regression per action"
    Config = LinUCBSettings

    def upper_bounds(self, features: Features) -> np.ndarray:
        """(n, n_joint) upper confidence bound of every action's expected reward."""
        mean, variance = self.arms.mean_and_variance(features.design_matrix())
        return mean + self.config.alpha * np.sqrt(variance)

    def distribution(self, features: Features, seeds: np.ndarray) -> PolicyOutput:
        """Explores with the largest upper bound (ties shared), floor mixed in; greedy on the posterior mean."""
        scores = self.scores(features)
        policy = one_hot_argmax(self.upper_bounds(features))
        return PolicyOutput((self.with_floor(policy),), (scores,), action_values=scores)
