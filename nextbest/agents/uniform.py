"""Uniformly random actions: the floor every agent must beat."""

from __future__ import annotations

import numpy as np

from nextbest.agents.base import Agent, Experience, PolicyOutput
from nextbest.data.encoding import Features


class UniformRandom(Agent):
    name = "random"
    summary = "uniformly random actions (the baseline)"

    def distribution(self, features: Features, seeds: np.ndarray) -> PolicyOutput:
        """Uniform, with no preference for greedy to follow (greedy stays random), values 0."""
        shape = (len(features), self.action_space.n_joint)
        uniform = self.with_floor(np.full(shape, 1.0 / self.action_space.n_joint))
        return PolicyOutput((uniform,), None, action_values=np.zeros(shape))

    def update(self, experience: Experience) -> dict[str, float]:
        self.updates += 1
        self.examples += len(experience.reward)
        return {}
