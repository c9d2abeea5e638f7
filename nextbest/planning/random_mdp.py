"""Random sparse MDPs for tests and benchmarks: every (s, a) moves to `successors` states drawn
uniformly, with random probabilities; rewards are uniform on [0, 1)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from nextbest.planning.mdp import FiniteMDP


def random_mdp(n_states: int, n_actions: int, successors: int = 10, gamma: float = 0.95, seed: int = 0) -> FiniteMDP:
    """(S·A, S) transitions with `successors` non-zeros per row (fewer when two draws coincide)."""
    rng = np.random.default_rng(seed)
    pairs = n_states * n_actions
    next_states = rng.integers(0, n_states, size=(pairs, successors), dtype=np.int32)
    weights = rng.random((pairs, successors))
    weights /= weights.sum(axis=1, keepdims=True)
    indptr = np.arange(0, pairs * successors + 1, successors, dtype=np.int64)
    transitions = sp.csr_array((weights.ravel(), next_states.ravel(), indptr), shape=(pairs, n_states))
    return FiniteMDP(transitions, rng.random((n_states, n_actions)), gamma, name=f"random-{n_states}x{n_actions}x{successors}")
