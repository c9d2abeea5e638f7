"""Base of the linear bandits: one Bayesian ridge model per joint action on the design matrix."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from nextbest.agents.base import Agent, AgentSettings, Experience
from nextbest.agents.search import Range, SearchSpace
from nextbest.data.encoding import Features
from nextbest.nets.ridge import RidgeArms


class LinearSettings(AgentSettings):
    ridge: float = Field(1.0, gt=0, description="prior precision λ of the weights")
    clip: float | None = Field(3.0, gt=0, description="unless every reward so far is 0 or 1, rewards farther than this many "
                               "standard deviations (of all rewards so far) from their mean are clipped to that distance")
    search_space: ClassVar[SearchSpace] = {"ridge": Range(0.1, 10.0, log=True)}


class LinearAgent(Agent):
    Config = LinearSettings

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        width = sum(self.schema.cardinalities()) + len(self.schema.numeric_columns) + 1
        self.arms = RidgeArms(self.action_space.n_joint, width, ridge=self.config.ridge)
        self.reward_moments = np.zeros(3)  # count, sum and sum of squares of every reward seen
        self.binary = True  # every reward so far is 0 or 1

    def scores(self, features: Features) -> np.ndarray:
        """(n, n_joint) the posterior mean of every joint action's expected reward."""
        mean, _ = self.arms.posterior()
        return features.design_matrix() @ mean.T

    def update(self, experience: Experience) -> dict[str, float]:
        joint = self.action_space.to_joint(experience.action)
        reward = np.asarray(experience.reward, dtype=float)
        self.reward_moments += (len(reward), reward.sum(), (reward**2).sum())
        self.binary = self.binary and bool(np.isin(reward, (0.0, 1.0)).all())
        if not self.binary and self.config.clip is not None:  # heavy tails: see NeuralSettings.clip
            count, total, squares = self.reward_moments
            mean, std = total / count, np.sqrt(max(squares / count - (total / count) ** 2, 0.0))
            reward = np.clip(reward, mean - self.config.clip * std, mean + self.config.clip * std)
        self.arms.update(experience.features.design_matrix(), joint, reward)
        self.updates += 1
        self.examples += len(joint)
        return {"noise_std": float(np.sqrt(self.arms.noise_variance))}

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"arms": self.arms.state_dict(), "reward_moments": self.reward_moments, "binary": self.binary}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.arms.load_state_dict(state["arms"])
        self.reward_moments = np.asarray(state.get("reward_moments", np.zeros(3)), dtype=float)  # older checkpoints: none
        self.binary = bool(state.get("binary", True))
