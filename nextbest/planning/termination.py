"""Undiscounted (γ = 1) episodic problems: does the episode end?

With γ = 1 a value is a sum over the whole episode, so it is defined only when the episode ends
with probability 1. A policy is *proper* when, from every state, it reaches an ending (a terminal
state or a `terminated` transition) with probability 1 — equivalently, when every state has a path
of positive probability to an ending. These checks turn "iterate forever" into a message.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order

from nextbest.planning.mdp import FiniteMDP, PlanningError, few

ENDING_TOLERANCE = 1e-12


def improper_states(mdp: FiniteMDP, policy: np.ndarray) -> np.ndarray:
    """Indices of non-terminal states from which `policy` never ends the episode."""
    p_pi, _ = mdp.policy_model(policy)
    live = ~mdp.terminal
    ends = live & (p_pi @ live.astype(float) < 1 - ENDING_TOLERANCE)
    distance_known, _ = _paths_to(p_pi, ends)
    return np.flatnonzero(live & ~distance_known)


def require_proper(mdp: FiniteMDP, policy: np.ndarray, what: str = "the policy") -> None:
    """Raise PlanningError naming the states where `policy` loops forever (only matters for γ = 1)."""
    if mdp.gamma < 1:
        return
    stuck = improper_states(mdp, policy)
    if len(stuck):
        raise PlanningError(f"{mdp.name}: with gamma=1, {what} never reaches a terminal state from "
                            f"{_states(mdp, stuck)}, so its values are not defined; use gamma < 1 or a policy that ends episodes")


def proper_policy(mdp: FiniteMDP) -> np.ndarray:
    """A deterministic policy that ends the episode with probability 1 from every state.

    The classic almost-sure reachability fixpoint: keep the states W from which an ending can be
    reached using only actions that never leave W; repeat until W is stable. Each state then takes
    an action that moves one step closer to an ending. Raises PlanningError when some state
    cannot end its episode under any policy.
    """
    n_states, n_actions = mdp.n_states, mdp.n_actions
    live = ~mdp.terminal
    pair_state = np.repeat(np.arange(n_states), n_actions)
    pair_ends = mdp.continuation().ravel() < 1 - ENDING_TOLERANCE
    winning = live.copy()
    while True:
        leaves = (mdp.transitions @ (live & ~winning).astype(float)) > 0  # may fall outside W
        allowed = winning[pair_state] & ~leaves
        graph = sp.csr_array(sp.diags_array(allowed.astype(float)) @ mdp.transitions)
        # Collapse pairs onto states: s → s' when some allowed action moves there.
        by_state = sp.csr_array(sp.csr_array((np.ones(len(pair_state)), (pair_state, np.arange(len(pair_state)))),
                                             shape=(n_states, n_states * n_actions)) @ graph)
        ends = np.zeros(n_states, bool)
        np.logical_or.at(ends, pair_state, allowed & pair_ends)
        reached, toward = _paths_to(by_state, ends)
        if (reached == winning).all():
            break
        winning = reached
    trapped = np.flatnonzero(live & ~winning)
    if len(trapped):
        raise PlanningError(f"{mdp.name}: with gamma=1, no policy reaches a terminal state from {_states(mdp, trapped)}, "
                            "so their values are not defined; mark such states terminal or use gamma < 1")
    # Pick, in each state, an allowed action that ends now or moves to `toward` (one step closer).
    target = np.where(toward >= 0, toward, 0)[pair_state]
    progress = allowed & (pair_ends | (np.asarray(graph[np.arange(len(pair_state)), target]).ravel() > 0))
    progress &= ~(toward[pair_state] < 0) | pair_ends  # states with no successor toward an ending must end now
    score = progress.reshape(n_states, n_actions)
    return np.where(live, score.argmax(axis=1), 0)


def _paths_to(graph: sp.csr_array, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which states have a positive-probability path to a target, and each one's next state on a
    shortest such path (−1 for targets themselves). graph: (S, S), edge s → s' where p > 0."""
    n = graph.shape[0]
    # Breadth-first search backwards from a virtual node n that points at every target.
    reverse = sp.block_array([[graph.T, sp.csr_array((n, 1))],
                              [sp.csr_array(targets[None, :].astype(float)), sp.csr_array((1, 1))]], format="csr")
    order, predecessors = breadth_first_order(reverse, n, directed=True, return_predecessors=True)
    reached = np.zeros(n + 1, bool)
    reached[order] = True
    toward = predecessors[:n].copy()
    toward[toward == n] = -1
    toward[toward < 0] = -1
    return reached[:n], toward



def _states(mdp: FiniteMDP, indices: np.ndarray) -> str:
    return f"{'state' if len(indices) == 1 else 'states'} {few([mdp.states[i] for i in indices])}"
