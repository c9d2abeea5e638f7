"""Bellman operators as plain functions on value vectors, so users can apply them and watch them contract.

    Q(s, a)   = r(s, a) + γ Σ_s' p(s'|s,a) V(s')
    (B_* V)(s) = max_a Q(s, a)
    (B_π V)(s) = Σ_a π(a|s) Q(s, a)
"""

from __future__ import annotations

import numpy as np

from nextbest.planning.mdp import FiniteMDP


def q_values(mdp: FiniteMDP, values: np.ndarray) -> np.ndarray:
    """Q of one-step lookahead on `values`. values: (S,) → (S, A)."""
    q = (mdp.transitions @ values).reshape(mdp.n_states, mdp.n_actions)
    q *= mdp.gamma  # in place: this is the hot loop of every solver
    q += mdp.rewards
    return q


def bellman_optimality(mdp: FiniteMDP, values: np.ndarray) -> np.ndarray:
    """B_* V: (S,) → (S,)."""
    return row_max(q_values(mdp, values))


def row_max(q: np.ndarray) -> np.ndarray:
    """q.max(axis=1) for (S, A) with few actions, column by column: NumPy reduces a short last
    axis about 15× slower than it combines whole columns."""
    best = q[:, 0].copy()
    for a in range(1, q.shape[1]):
        np.maximum(best, q[:, a], out=best)
    return best


def bellman_expectation(mdp: FiniteMDP, policy: np.ndarray, values: np.ndarray) -> np.ndarray:
    """B_π V for a deterministic (S,) or stochastic (S, A) policy: (S,) → (S,)."""
    return (mdp.policy_probabilities(policy) * q_values(mdp, values)).sum(axis=1)


def greedy_policy(q: np.ndarray, current: np.ndarray | None = None) -> np.ndarray:
    """argmax_a Q(s, a) per state, (S, A) → (S,) action indices.

    With `current` (a deterministic policy), a state keeps its action unless another is better by
    more than round-off: policy iteration then stops instead of cycling between tied actions.
    """
    best = q.argmax(axis=1)
    if current is None:
        return best
    rows = np.arange(len(q))
    best_q = q[rows, best]
    keep = q[rows, current] >= best_q - 1e-12 * np.maximum(1.0, np.abs(best_q))
    return np.where(keep, current, best)


def policy_improvement(mdp: FiniteMDP, values: np.ndarray, policy: np.ndarray | None = None) -> np.ndarray:
    """The greedy policy on `values` (S,) → (S,); a deterministic `policy` keeps its actions on ties."""
    current = None if policy is None or np.ndim(policy) != 1 else np.asarray(policy)
    return greedy_policy(q_values(mdp, values), current)
