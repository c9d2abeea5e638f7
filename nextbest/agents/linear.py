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
    search_space: ClassVar[SearchSpace] = {"ridge": Range(0.1, 10.0, log=True)}


class LinearAgent(Agent):
    Config = LinearSettings

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        width = sum(self.schema.cardinalities()) + len(self.schema.numeric_columns) + 1
        self.arms = RidgeArms(self.action_space.n_joint, width, ridge=self.config.ridge)

    def scores(self, features: Features) -> np.ndarray:
        """(n, n_joint) the posterior mean of every joint action's expected reward."""
        mean, _ = self.arms.posterior()
        return features.design_matrix() @ mean.T

    def update(self, experience: Experience) -> dict[str, float]:
        joint = self.action_space.to_joint(experience.action)
        self.arms.update(experience.features.design_matrix(), joint, experience.reward)
        self.updates += 1
        self.examples += len(joint)
        return {"noise_std": float(np.sqrt(self.arms.noise_variance))}

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"arms": self.arms.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.arms.load_state_dict(state["arms"])
