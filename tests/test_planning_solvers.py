"""Solvers against independent computations: dense linear algebra on the toy-text models read
straight from env.unwrapped.P, and agreement between methods."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import nextbest.envs  # noqa: F401  (registers nextbest/GridMap-v0)
from nextbest.planning import (
    PlanningError,
    from_arrays,
    from_gymnasium,
    improper_states,
    modified_policy_iteration,
    plan,
    policy_evaluation,
    policy_iteration,
    proper_policy,
    q_value_iteration,
    value_iteration,
)
from nextbest.planning.random_mdp import random_mdp


def dense_model(env_id: str, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """P (S, A, S) of continuing and R (S, A), written out from the toy-text model with plain loops."""
    env = gym.make(env_id, **kwargs).unwrapped
    S, A = env.observation_space.n, env.action_space.n
    P, R = np.zeros((S, A, S)), np.zeros((S, A))
    for s in range(S):
        for a in range(A):
            for p, s2, r, done in env.P[s][a]:
                R[s, a] += p * r
                P[s, a, s2] += 0.0 if done else p
    return P, R


def exact_values(P: np.ndarray, R: np.ndarray, gamma: float, policy: np.ndarray) -> np.ndarray:
    S = len(R)
    return np.linalg.solve(np.eye(S) - gamma * P[np.arange(S), policy], R[np.arange(S), policy])


@pytest.mark.parametrize("env_id, kwargs, gamma", [
    ("FrozenLake-v1", {"is_slippery": True}, 0.99),
    ("FrozenLake8x8-v1", {}, 0.95),
    ("Taxi-v4", {}, 0.99),
    ("CliffWalking-v1", {}, 0.99),
    ("CliffWalkingSlippery-v1", {}, 0.9),
])
def test_value_iteration_matches_exact_solve_of_the_optimal_policy(env_id, kwargs, gamma):
    result = value_iteration(from_gymnasium(env_id, gamma, **kwargs), tolerance=1e-9)
    P, R = dense_model(env_id, **kwargs)
    V = exact_values(P, R, gamma, result.policy)
    # Only states that some transition continues into matter (the rest is never acted from).
    used = P.sum(axis=(0, 1)) > 0
    assert np.abs(result.values - V)[used].max() <= 1e-9
    # The policy is optimal: no action improves on it anywhere (policy iteration's certificate).
    q = R + gamma * P @ V
    assert (q.max(axis=1) - V)[used].max() <= 1e-9
    assert result.error_bound is not None and result.error_bound <= 1e-9


def test_frozenlake_undiscounted_success_probability_is_the_known_82_percent():
    result = policy_iteration(from_gymnasium("FrozenLake-v1", 1.0))
    assert result.values[0] == pytest.approx(0.8235, abs=5e-4)
    P, R = dense_model("FrozenLake-v1")
    live = P.sum(axis=(1, 2)) > 0
    V = np.zeros(16)
    idx = np.flatnonzero(live)
    Ppi = P[np.arange(16), result.policy][np.ix_(idx, idx)]
    V[idx] = np.linalg.solve(np.eye(len(idx)) - Ppi, R[np.arange(16), result.policy][idx])
    np.testing.assert_allclose(result.values, V, atol=1e-12)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "Taxi-v4", "CliffWalking-v1", "nextbest/GridMap-v0"])
@pytest.mark.parametrize("gamma", [0.9, 1.0])
def test_policy_iteration_and_value_iteration_agree(env_id, gamma):
    mdp = from_gymnasium(env_id, gamma)
    vi, pi = value_iteration(mdp, tolerance=1e-10), policy_iteration(mdp)
    np.testing.assert_allclose(vi.values, pi.values, atol=1e-7)
    # Ties aside, both policies are optimal: each one's exact value is V*.
    np.testing.assert_allclose(policy_evaluation(mdp, vi.policy).values, pi.values, atol=1e-7)
    assert pi.converged and pi.residual <= 1e-9


@pytest.mark.parametrize("solver", [value_iteration, q_value_iteration, modified_policy_iteration])
@pytest.mark.parametrize("tolerance", [1e-2, 1e-6])
def test_iterative_solvers_keep_their_error_guarantee(solver, tolerance):
    mdp = random_mdp(300, 4, successors=5, gamma=0.97, seed=3)
    exact = policy_iteration(mdp).values
    result = solver(mdp, tolerance=tolerance)
    error = np.abs(result.values - exact).max()
    assert error <= tolerance
    assert result.error_bound is not None and error <= result.error_bound + 1e-12
    # The bounds stop sooner than the textbook rule ‖V_k − V_k−1‖∞ ≤ tol(1−γ)/γ, whose γᵏ decay needs this many sweeps.
    assert result.sweeps < np.log(tolerance * (1 - 0.97) / 0.97) / np.log(0.97)


def test_episodic_guarantee_holds_with_terminal_states():
    mdp = from_gymnasium("FrozenLake8x8-v1", 0.99)
    exact = policy_iteration(mdp).values
    for tolerance in (1e-1, 1e-3, 1e-6):
        result = value_iteration(mdp, tolerance=tolerance)
        assert np.abs(result.values - exact).max() <= tolerance
        assert (result.values[mdp.terminal] == 0).all()


def test_iterative_policy_evaluation_matches_the_linear_solve_for_a_stochastic_policy():
    mdp = random_mdp(200, 3, successors=4, gamma=0.9, seed=1)
    policy = np.random.default_rng(0).dirichlet(np.ones(3), size=200)
    exact = policy_evaluation(mdp, policy)
    iterative = policy_evaluation(mdp, policy, exact=False, tolerance=1e-9)
    assert np.abs(exact.values - iterative.values).max() <= 1e-9
    assert exact.residual < 1e-12 and iterative.iterations > 1
    # The linear solve against a dense independent one.
    P = mdp.transitions.toarray().reshape(200, 3, 200)
    dense = np.linalg.solve(np.eye(200) - 0.9 * np.einsum("sa,sat->st", policy, P), (policy * mdp.rewards).sum(1))
    np.testing.assert_allclose(exact.values, dense, atol=1e-10)


def test_gamma_one_policy_evaluation_names_the_states_that_never_end():
    mdp = from_gymnasium("FrozenLake-v1", 1.0, is_slippery=False)
    always_left = np.zeros(16, dtype=int)  # state 0 bumps into the wall forever
    assert 0 in improper_states(mdp, always_left)
    with pytest.raises(PlanningError, match=r"gamma=1, the policy never reaches a terminal state from states 0, "):
        policy_evaluation(mdp, always_left)
    assert len(improper_states(mdp, proper_policy(mdp))) == 0


def _two_state(stay_reward: float, can_leave: bool) -> object:
    """State 'loop': 'stay' loops with stay_reward; 'leave' goes to terminal 'end' (or loops too)."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = 1.0
    P[0, 1, 1 if can_leave else 0] = 1.0
    R = np.array([[stay_reward, 0.0], [0.0, 0.0]])
    return from_arrays(P, R, 1.0, terminal=[1], states=["loop", "end"], actions=["stay", "leave"], name="toy")


def test_gamma_one_without_any_way_out_is_reported_not_looped():
    with pytest.raises(PlanningError, match=r"toy: with gamma=1, no policy reaches a terminal state from state 'loop'"):
        value_iteration(_two_state(-1.0, can_leave=False))


def test_gamma_one_with_reward_forever_is_reported_after_max_iterations():
    with pytest.raises(PlanningError, match=r"did not converge in 500 sweeps; values still change by 1 at state 'loop': a policy can collect reward forever"):
        value_iteration(_two_state(+1.0, can_leave=True), max_iterations=500)
    # With a cost instead, leaving is optimal and everything converges.
    result = value_iteration(_two_state(-1.0, can_leave=True))
    assert result.values.tolist() == [0.0, 0.0] and result.policy[0] == 1


def test_discounted_run_that_hits_max_iterations_says_it_did_not_converge():
    result = value_iteration(random_mdp(50, 2, gamma=0.999, seed=0), tolerance=1e-12, max_iterations=3)
    assert not result.converged and result.iterations == 3 and result.error_bound is None


def test_plan_dispatches_by_name_and_checks_its_arguments():
    mdp = from_gymnasium("nextbest/GridMap-v0", 0.95)
    assert plan(mdp, "q-value-iteration").method == "q-value-iteration"
    with pytest.raises(Exception, match="unknown planning method 'bogus'"):
        plan(mdp, "bogus")
    with pytest.raises(Exception, match="policy-evaluation needs a policy"):
        plan(mdp, "policy-evaluation")
    with pytest.raises(Exception, match="value-iteration does not take a policy"):
        plan(mdp, "value-iteration", policy=np.zeros(30, dtype=int))
    with pytest.raises(Exception, match="tolerance must be positive"):
        plan(mdp, tolerance=0)


def test_gamma_one_names_states_that_may_end_but_not_surely():
    # 'risky' ends half the time and otherwise falls into 'trap', which loops forever: from 'start'
    # the episode ends with probability 1/2 at best, so both states are reported.
    P = np.zeros((3, 1, 3))
    P[0, 0, 1] = P[0, 0, 2] = 0.5  # start → trap or end
    P[1, 0, 1] = 1.0  # trap → trap
    mdp = from_arrays(P, -np.ones((3, 1)), 1.0, terminal=[2], states=["start", "trap", "end"], actions=["risky"], name="toy")
    with pytest.raises(PlanningError, match=r"no policy reaches a terminal state from states 'start', 'trap'"):
        policy_iteration(mdp)
    P[0, 0] = [0.0, 0.0, 1.0]  # a sure way out from start; trap still loops
    mdp = from_arrays(P, -np.ones((3, 1)), 1.0, terminal=[2], states=["start", "trap", "end"], actions=["safe"], name="toy")
    with pytest.raises(PlanningError, match=r"from state 'trap',"):
        value_iteration(mdp)
