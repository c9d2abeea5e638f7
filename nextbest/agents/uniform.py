"""Uniformly random actions: the floor every agent must beat."""

from __future__ import annotations

import numpy as np

from nextbest.agents.base import Agent, Experience
from nextbest.data.encoding import Features


class UniformRandom(Agent):
    name = "random"
    summary = "uniformly random actions (the baseline)"

    def scores(self, features: Features) -> np.ndarray:
        return np.zeros((len(features), self.action_space.n_joint))

    def policy(self, features: Features, seeds: np.ndarray) -> np.ndarray:
        return np.full((len(features), self.action_space.n_joint), 1.0 / self.action_space.n_joint)

    def act(self, features, seeds, *, greedy: bool = False):
        # Greedy on all-zero scores would always pick action 0; random stays random.
        return super().act(features, seeds, greedy=False)

    def update(self, experience: Experience) -> dict[str, float]:
        self.updates += 1
        self.examples += len(experience.reward)
        return {}
