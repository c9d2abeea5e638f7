"""A finite Markov decision process with sparse transitions.

Row `s * n_actions + a` of `transitions` holds p(s' | s, a) for the episode *continuing* in s'.
A row may sum to less than one: the rest is the probability that the episode ends on that
step (a Gymnasium `terminated` transition). Terminal states are where an episode has ended;
their value is 0, and their rows and rewards are zero. So every value equation reads

    V(s) = max_a  r(s, a) + γ Σ_s' p(s' | s, a) V(s')

with no special case for endings, and one sparse product computes Q for all pairs at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from nextbest.errors import ConfigError, NextbestError

ROW_SUM_TOLERANCE = 1e-9


class PlanningError(NextbestError):
    """A planning problem without a well-defined answer (e.g. γ = 1 and an episode that never ends)."""


@dataclass(frozen=True)
class GridLayout:
    """State s sits in row s // cols, column s % cols; `marks` replace the arrow in special cells
    (holes, goals); `walls` are cells no one can enter."""

    rows: int
    cols: int
    marks: dict[int, str] = field(default_factory=dict)
    walls: frozenset[int] = frozenset()


@dataclass
class FiniteMDP:
    """transitions: (S·A, S) sparse, continuation probabilities; rewards: (S, A) expected r(s, a);
    terminal: (S,) bool; states / actions: labels (default 0 … S−1, 0 … A−1)."""

    transitions: sp.csr_array
    rewards: np.ndarray
    gamma: float
    terminal: np.ndarray | None = None
    states: list[Hashable] | None = None
    actions: list[Hashable] | None = None
    layout: GridLayout | None = None
    name: str = "mdp"

    def __post_init__(self) -> None:
        self.rewards = np.array(self.rewards, dtype=np.float64)  # copies: terminal rows are zeroed below
        if self.rewards.ndim != 2:
            raise ConfigError(f"{self.name}: rewards must have shape (states, actions), got {self.rewards.shape}")
        n_states, n_actions = self.rewards.shape
        self.transitions = sp.csr_array(self.transitions, dtype=np.float64, copy=True)
        if self.transitions.shape != (n_states * n_actions, n_states):
            raise ConfigError(f"{self.name}: transitions must have shape (states·actions, states) = "
                              f"{(n_states * n_actions, n_states)}, got {self.transitions.shape}")
        self.terminal = np.zeros(n_states, bool) if self.terminal is None else np.asarray(self.terminal, bool).copy()
        self.states = list(range(n_states)) if self.states is None else list(self.states)
        self.actions = list(range(n_actions)) if self.actions is None else list(self.actions)
        if len(self.terminal) != n_states or len(self.states) != n_states or len(self.actions) != n_actions:
            raise ConfigError(f"{self.name}: terminal, states and actions must have {n_states}, {n_states} and {n_actions} entries")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"{self.name}: gamma must be in (0, 1], got {self.gamma}")
        if not np.isfinite(self.rewards).all():
            raise ConfigError(f"{self.name}: rewards must be finite; state {self.states[np.argwhere(~np.isfinite(self.rewards))[0][0]]!r} is not")
        if self.transitions.nnz and (self.transitions.data.min() < 0 or not np.isfinite(self.transitions.data).all()):
            raise ConfigError(f"{self.name}: transition probabilities must be finite and non-negative")
        # An episode has ended in a terminal state: nothing more happens there.
        if self.terminal.any():
            keep = sp.diags_array(np.repeat(~self.terminal, n_actions).astype(np.float64))
            self.transitions = sp.csr_array(keep @ self.transitions)
            self.rewards[self.terminal] = 0.0
        self.transitions.sum_duplicates()
        self.transitions.eliminate_zeros()
        if max(self.transitions.shape + (self.transitions.nnz,)) < 2**31:  # 32-bit indices: ~25% faster products
            self.transitions.indices = self.transitions.indices.astype(np.int32, copy=False)
            self.transitions.indptr = self.transitions.indptr.astype(np.int32, copy=False)
        over = np.flatnonzero(self.transitions.sum(axis=1) > 1 + ROW_SUM_TOLERANCE)
        if len(over):
            s, a = divmod(int(over[0]), n_actions)
            raise ConfigError(f"{self.name}: probabilities of state {self.states[s]!r}, action {self.actions[a]!r} "
                              f"sum to {self.transitions[[over[0]]].sum():.6g}, more than 1")

    @property
    def n_states(self) -> int:
        return self.rewards.shape[0]

    @property
    def n_actions(self) -> int:
        return self.rewards.shape[1]

    def continuation(self) -> np.ndarray:
        """(S, A): probability that the episode goes on to a non-terminal state after (s, a)."""
        if not self.terminal.any():  # plain row sums: no gather, cheaper than a product
            return np.asarray(self.transitions.sum(axis=1)).reshape(self.n_states, self.n_actions)
        live = (~self.terminal).astype(np.float64)
        return (self.transitions @ live).reshape(self.n_states, self.n_actions)

    def policy_model(self, policy: np.ndarray) -> tuple[sp.csr_array, np.ndarray]:
        """P_π (S, S) and r_π (S,) of a deterministic (S,) or stochastic (S, A) policy."""
        probabilities = self.policy_probabilities(policy)
        if np.ndim(policy) == 1:  # deterministic: pick one row per state, no product needed
            chosen = np.arange(self.n_states) * self.n_actions + np.asarray(policy)
            return sp.csr_array(self.transitions[chosen]), self.rewards[np.arange(self.n_states), policy]
        rows = np.repeat(np.arange(self.n_states), self.n_actions)
        cols = np.arange(self.n_states * self.n_actions)
        pi = sp.csr_array((probabilities.ravel(), (rows, cols)), shape=(self.n_states, self.n_states * self.n_actions))
        pi.eliminate_zeros()
        return sp.csr_array(pi @ self.transitions), (probabilities * self.rewards).sum(axis=1)

    def policy_probabilities(self, policy: np.ndarray) -> np.ndarray:
        """π(a | s) as an (S, A) array, from action indices (S,) or probabilities (S, A)."""
        policy = np.asarray(policy)
        if policy.shape == (self.n_states,):
            if not np.issubdtype(policy.dtype, np.integer) or policy.min() < 0 or policy.max() >= self.n_actions:
                raise ConfigError(f"{self.name}: a deterministic policy holds one action index in 0 … {self.n_actions - 1} per state")
            return np.eye(self.n_actions)[policy]
        if policy.shape != (self.n_states, self.n_actions):
            raise ConfigError(f"{self.name}: a policy has shape ({self.n_states},) or ({self.n_states}, {self.n_actions}), got {policy.shape}")
        live = ~self.terminal
        if (policy < 0).any() or not np.allclose(policy[live].sum(axis=1), 1.0, atol=1e-8):
            raise ConfigError(f"{self.name}: a stochastic policy's probabilities must be non-negative and sum to 1 in every state")
        return policy.astype(np.float64)

    def state_indices(self, labels: Sequence[Any]) -> np.ndarray:
        """Indices of states given their labels (a label's string form matches too: 3 and "3")."""
        return _indices(labels, self.states, "state", self.name)

    def action_indices(self, labels: Sequence[Any]) -> np.ndarray:
        return _indices(labels, self.actions, "action", self.name)

    def describe(self) -> str:
        ending = f", {int(self.terminal.sum())} terminal" if self.terminal.any() else ""
        return f"{self.name}: {self.n_states} states{ending} × {self.n_actions} actions, gamma {self.gamma:g}"


def from_arrays(
    transitions: np.ndarray | sp.sparray,
    rewards: np.ndarray | sp.sparray,
    gamma: float,
    *,
    terminal: Sequence[int] | np.ndarray | None = None,
    states: Sequence[Hashable] | None = None,
    actions: Sequence[Hashable] | None = None,
    name: str = "mdp",
) -> FiniteMDP:
    """An MDP from p(s'|s,a) and rewards.

    transitions: dense (S, A, S) or sparse (S·A, S); every non-terminal row sums to 1.
    rewards: r(s, a) as (S, A), or r(s, a, s') as dense (S, A, S) or sparse (S·A, S).
    terminal: indices (or an (S,) bool mask) of states where the episode has ended.
    """
    dense = not sp.issparse(transitions)
    if dense:
        transitions = np.asarray(transitions, dtype=np.float64)
        if transitions.ndim != 3 or transitions.shape[0] != transitions.shape[2]:
            raise ConfigError(f"{name}: dense transitions must have shape (S, A, S), got {transitions.shape}")
        n_states, n_actions, _ = transitions.shape
        matrix = sp.csr_array(transitions.reshape(n_states * n_actions, n_states))
    else:
        matrix = sp.csr_array(transitions, dtype=np.float64)
        n_states = matrix.shape[1]
        n_actions = matrix.shape[0] // max(n_states, 1)
    expected = _expected_rewards(rewards, matrix, n_states, n_actions, name)
    mask = np.zeros(n_states, bool)
    if terminal is not None:
        terminal = np.asarray(terminal)
        mask = terminal.astype(bool) if terminal.dtype == bool else np.isin(np.arange(n_states), terminal)
    sums = matrix.sum(axis=1).reshape(n_states, n_actions)
    bad = np.argwhere(~mask[:, None] & (np.abs(sums - 1.0) > 1e-8))
    if len(bad):
        s, a = bad[0]
        label_s = states[s] if states is not None else s
        label_a = actions[a] if actions is not None else a
        raise ConfigError(f"{name}: p(·|s={label_s!r}, a={label_a!r}) sums to {sums[s, a]:.6g}, expected 1 "
                          "(mark the state terminal if the episode ends there)")
    return FiniteMDP(matrix, expected, gamma, terminal=mask, states=states, actions=actions, name=name)


def _expected_rewards(rewards: Any, matrix: sp.csr_array, n_states: int, n_actions: int, name: str) -> np.ndarray:
    """r(s, a) = Σ_s' p(s'|s,a) r(s, a, s') when rewards depend on the next state."""
    if sp.issparse(rewards):
        per_transition = sp.csr_array(rewards, dtype=np.float64)
    else:
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.shape == (n_states, n_actions):
            return rewards
        if rewards.shape != (n_states, n_actions, n_states):
            raise ConfigError(f"{name}: rewards must have shape (S, A) = {(n_states, n_actions)} or (S, A, S), got {rewards.shape}")
        per_transition = sp.csr_array(rewards.reshape(n_states * n_actions, n_states))
    if per_transition.shape != matrix.shape:
        raise ConfigError(f"{name}: sparse rewards must have the transitions' shape {matrix.shape}, got {per_transition.shape}")
    return np.asarray(matrix.multiply(per_transition).sum(axis=1)).reshape(n_states, n_actions)


def _indices(labels: Sequence[Any], known: list[Hashable], kind: str, name: str) -> np.ndarray:
    """Match each label by its string form (3 ≡ "3"); a whole number that names no label is a position."""
    position = {str(x): i for i, x in enumerate(known)}
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        found = position.get(str(label))
        if found is None and _whole(label) and 0 <= int(label) < len(known):
            found = int(label)
        if found is None:
            raise ConfigError(f"{name}: unknown {kind} {label!r}; expected one of {few(known, 12)} (or a position 0 … {len(known) - 1})")
        out[i] = found
    return out


def _whole(label: Any) -> bool:
    try:
        return not isinstance(label, bool) and float(label) == int(float(label))
    except (TypeError, ValueError):
        return False


def few(items: Sequence[Any], shown: int = 8) -> str:
    """The first `shown` items, and how many more: for messages about many states."""
    text = ", ".join(map(repr, list(items[:shown])))
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")


def plain_label(label: Any) -> Any:
    """A label as JSON and YAML can write it (NumPy scalars become Python ones)."""
    return label.item() if hasattr(label, "item") else label
