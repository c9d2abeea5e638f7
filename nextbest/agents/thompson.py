"""Linear Thompson sampling (Agrawal & Goyal, 2013) with per-action Bayesian ridge posteriors."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from nextbest.agents.base import PolicyOutput
from nextbest.agents.linear import LinearAgent, LinearSettings
from nextbest.agents.search import Range, SearchSpace
from nextbest.data.encoding import Features
from nextbest.seeding import row_normals

_CHUNK = 4096


class ThompsonSettings(LinearSettings):
    scale: float = Field(1.0, gt=0, description="multiplies the posterior standard deviation (v in the paper)")
    search_space: ClassVar[SearchSpace] = LinearSettings.search_space | {"scale": Range(0.1, 3.0, log=True)}
    draws: int = Field(100, ge=1, description="posterior draws per row that estimate the action probabilities")


class LinearThompson(LinearAgent):
    """Draws θ_a from the posterior and takes the best action under the draw.

    The probability that Thompson sampling picks an action has no closed form. It is estimated
    per row from `draws` posterior draws (from the row's seed), and the action is then drawn
    from that estimate, so the logged probability is exact for the policy actually executed
    and off-policy estimates on these logs stay unbiased. Since the arms' posteriors are
    independent, a draw of xᵀθ_a is drawn directly as N(μ_aᵀx, v² σ² xᵀA_a⁻¹x).
    """

    name = "thompson"
    summary = "linear Thompson sampling on one Bayesian ridge regression per action"
    Config = ThompsonSettings

    def distribution(self, features: Features, seeds: np.ndarray) -> PolicyOutput:
        """Explores with the estimated probabilities of Thompson sampling (floor mixed in); greedy on the
        posterior mean."""
        scores = self.scores(features)
        return PolicyOutput((self.with_floor(self.thompson_probabilities(features, seeds)),), (scores,),
                            action_values=scores)

    def thompson_probabilities(self, features: Features, seeds: np.ndarray) -> np.ndarray:
        """(n, n_joint) the share of the row's `draws` posterior draws in which each action is the best."""
        X = features.design_matrix()
        k, draws = self.action_space.n_joint, self.config.draws
        out = np.empty((len(X), k))
        for start in range(0, len(X), _CHUNK):
            rows = slice(start, start + _CHUNK)
            mean, variance = self.arms.mean_and_variance(X[rows])
            noise = row_normals(seeds[rows], draws * k, stream=1).reshape(-1, draws, k)
            sampled = mean[:, None, :] + self.config.scale * np.sqrt(variance)[:, None, :] * noise
            winners = sampled.argmax(axis=2)
            out[rows] = (winners[:, :, None] == np.arange(k)).mean(axis=1)
        return out
