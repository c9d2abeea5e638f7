"""Bellman operators: against brute-force loops, and their contraction in the max norm."""

from __future__ import annotations

import numpy as np

from nextbest.planning import (
    bellman_expectation,
    bellman_optimality,
    from_arrays,
    greedy_policy,
    policy_improvement,
    q_values,
)
from nextbest.planning.random_mdp import random_mdp

GAMMA = 0.9


def brute_force_q(P: np.ndarray, R: np.ndarray, gamma: float, V: np.ndarray) -> np.ndarray:
    S, A, _ = P.shape
    q = np.zeros((S, A))
    for s in range(S):
        for a in range(A):
            q[s, a] = R[s, a] + gamma * sum(P[s, a, t] * V[t] for t in range(S))
    return q


def test_operators_match_brute_force_loops_on_a_small_mdp():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(6), size=(6, 3))
    R3 = rng.normal(size=(6, 3, 6))  # r(s, a, s')
    mdp = from_arrays(P, R3, GAMMA)
    V = rng.normal(size=6)
    R = (P * R3).sum(axis=2)
    q = brute_force_q(P, R, GAMMA, V)
    np.testing.assert_allclose(q_values(mdp, V), q, atol=1e-12)
    np.testing.assert_allclose(bellman_optimality(mdp, V), q.max(axis=1), atol=1e-12)
    policy = rng.dirichlet(np.ones(3), size=6)
    np.testing.assert_allclose(bellman_expectation(mdp, policy, V), (policy * q).sum(axis=1), atol=1e-12)
    deterministic = rng.integers(0, 3, size=6)
    np.testing.assert_allclose(bellman_expectation(mdp, deterministic, V), q[np.arange(6), deterministic], atol=1e-12)
    np.testing.assert_array_equal(policy_improvement(mdp, V), q.argmax(axis=1))


def test_expectation_operator_is_a_gamma_contraction_in_the_max_norm():
    mdp = random_mdp(80, 4, successors=6, gamma=GAMMA, seed=1)
    rng = np.random.default_rng(2)
    policy = rng.dirichlet(np.ones(4), size=80)
    ratios = []
    for scale in (1e-3, 1.0, 1e3):
        for _ in range(100):
            u, v = scale * rng.normal(size=80), scale * rng.normal(size=80)
            gap = np.abs(u - v).max()
            ratios.append(np.abs(bellman_expectation(mdp, policy, u) - bellman_expectation(mdp, policy, v)).max() / gap)
    assert max(ratios) <= GAMMA + 1e-12
    assert min(ratios) > 0  # not a constant map
    # The modulus is exactly γ: a constant shift comes back shrunk by γ (rows sum to 1, no terminal states).
    u = rng.normal(size=80)
    shifted = bellman_expectation(mdp, policy, u + 1.0) - bellman_expectation(mdp, policy, u)
    np.testing.assert_allclose(shifted, GAMMA, atol=1e-12)


def test_optimality_operator_is_a_gamma_contraction_and_monotone():
    mdp = random_mdp(80, 4, successors=6, gamma=GAMMA, seed=4)
    rng = np.random.default_rng(5)
    for _ in range(200):
        u, v = rng.normal(size=80), rng.normal(size=80)
        assert np.abs(bellman_optimality(mdp, u) - bellman_optimality(mdp, v)).max() <= GAMMA * np.abs(u - v).max() + 1e-12
        w = u + np.abs(rng.normal(size=80))  # w ≥ u
        assert (bellman_optimality(mdp, w) >= bellman_optimality(mdp, u) - 1e-12).all()


def test_repeated_optimality_backups_contract_geometrically_to_the_fixed_point():
    mdp = random_mdp(60, 3, successors=5, gamma=GAMMA, seed=6)
    V = np.zeros(60)
    gaps = []
    for _ in range(30):
        V_next = bellman_optimality(mdp, V)
        gaps.append(np.abs(V_next - V).max())
        V = V_next
    assert all(later <= GAMMA * earlier + 1e-12 for earlier, later in zip(gaps, gaps[1:]))


def test_greedy_policy_keeps_the_current_action_on_ties():
    q = np.array([[1.0, 1.0, 0.5], [0.0, 2.0, 2.0 - 1e-15]])
    np.testing.assert_array_equal(greedy_policy(q), [0, 1])
    np.testing.assert_array_equal(greedy_policy(q, current=np.array([1, 2])), [1, 2])
    np.testing.assert_array_equal(greedy_policy(q, current=np.array([2, 0])), [0, 1])
