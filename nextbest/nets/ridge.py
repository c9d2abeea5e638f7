"""Bayesian ridge regression per joint action: the posterior the linear bandits and the ridge reward model share.

For arm a with design rows X_a and rewards r_a:
    A_a = λI + X_aᵀX_a,   b_a = X_aᵀr_a,   μ_a = A_a⁻¹ b_a,   Cov(θ_a) = σ² A_a⁻¹.
σ² is pooled over arms, (s₀ + Σ_a (r_aᵀr_a − b_aᵀμ_a)) / (n₀ + n): the posterior mode of
the noise variance under an inverse-gamma prior, which makes exploration scale-free (clicks
and revenue alike).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RidgeArms:
    def __init__(self, n_arms: int, dimension: int, ridge: float = 1.0, prior_variance: float = 1.0):
        self.ridge = ridge
        self.prior_variance = prior_variance
        self.A = np.repeat(np.eye(dimension)[None] * ridge, n_arms, axis=0)  # (K, d, d)
        self.b = np.zeros((n_arms, dimension))
        self.sum_squares = np.zeros(n_arms)
        self.counts = np.zeros(n_arms, dtype=np.int64)
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        """Add rows X (n, d) with chosen `arms` (n,) and `rewards` (n,)."""
        for arm in np.unique(arms):
            rows = arms == arm
            Xa, ra = X[rows], rewards[rows]
            self.A[arm] += Xa.T @ Xa
            self.b[arm] += Xa.T @ ra
            self.sum_squares[arm] += ra @ ra
            self.counts[arm] += rows.sum()
        self._cache = None

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Means μ (K, d) and A⁻¹ (K, d, d)."""
        if self._cache is None:
            A_inv = np.linalg.inv(self.A)
            self._cache = (np.einsum("kde,ke->kd", A_inv, self.b), A_inv)
        return self._cache

    @property
    def noise_variance(self) -> float:
        mean, _ = self.posterior()
        residual = float(np.sum(self.sum_squares - np.einsum("kd,kd->k", self.b, mean)))
        return (self.prior_variance + max(residual, 0.0)) / (1.0 + self.counts.sum())

    def mean_and_variance(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, K) posterior mean of xᵀθ_a and its variance σ² xᵀA_a⁻¹x."""
        mean, A_inv = self.posterior()
        variance = np.einsum("nd,kde,ne->nk", X, A_inv, X, optimize=True)
        return X @ mean.T, np.maximum(variance, 0.0) * self.noise_variance

    def state_dict(self) -> dict[str, Any]:
        return {"A": self.A, "b": self.b, "sum_squares": self.sum_squares, "counts": self.counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.A, self.b = np.asarray(state["A"]), np.asarray(state["b"])
        self.sum_squares, self.counts = np.asarray(state["sum_squares"]), np.asarray(state["counts"])
        self._cache = None
