"""Exact planning: Bellman operators, policy evaluation, policy and value iteration for any finite MDP.

    from nextbest.planning import from_gymnasium, value_iteration
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.99)
    result = value_iteration(mdp, tolerance=1e-8)
    result.values, result.policy, result.iterations, result.residual
"""

from nextbest.planning.gym_model import from_gymnasium
from nextbest.planning.mdp import FiniteMDP, GridLayout, PlanningError, from_arrays
from nextbest.planning.operators import (
    bellman_expectation,
    bellman_optimality,
    greedy_policy,
    policy_improvement,
    q_values,
)
from nextbest.planning.solvers import (
    METHODS,
    PlanningResult,
    modified_policy_iteration,
    plan,
    policy_evaluation,
    policy_iteration,
    q_value_iteration,
    value_iteration,
)
from nextbest.planning.termination import improper_states, proper_policy

__all__ = [
    "METHODS", "FiniteMDP", "GridLayout", "PlanningError", "PlanningResult", "bellman_expectation",
    "bellman_optimality", "from_arrays", "from_gymnasium", "greedy_policy", "improper_states",
    "modified_policy_iteration", "plan", "policy_evaluation", "policy_improvement", "policy_iteration",
    "proper_policy", "q_value_iteration", "q_values", "value_iteration",
]
