"""An MDP estimated from logged experience: one row per step with `state`, `action`, `reward`,
`next_state` and `done` (next_state may be empty on a done row).

Counts n(s, a, s') give the maximum-likelihood model; `prior` adds that many pseudo-observations
of the state's pooled behaviour (all actions taken in s together):

    p̂(s'|s,a) = (n(s,a,s') + α p̄(s'|s)) / (n(s,a) + α)      r̂(s,a) = (Σ r + α r̄(s)) / (n(s,a) + α)

and likewise for the probability that the episode ends. A pair never tried therefore behaves like
the state's average action — and is reported, because its plan rests on no data. A state that
episodes reach but never act from has no model: it is treated as terminal (value 0) and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from nextbest.data.encoding import parse_flags, shown
from nextbest.errors import ConfigError, DataError
from nextbest.planning.mdp import FiniteMDP, plain_label
from nextbest.planning.spec import DEFAULT_GAMMA

COLUMNS = ("state", "action", "reward", "next_state", "done")


@dataclass
class Estimate:
    """mdp; visits: (S, A) rows seen per pair; unseen_pairs: non-terminal (state, action) never tried;
    unvisited_states: states reached but never acted from (treated as terminal)."""

    mdp: FiniteMDP
    visits: np.ndarray
    unseen_pairs: list[tuple[Any, Any]] = field(default_factory=list)
    unvisited_states: list[Any] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"rows": int(self.visits.sum()), "unseen_pairs": [list(p) for p in self.unseen_pairs],
                "unvisited_states": self.unvisited_states}


def from_experience(table: pd.DataFrame, gamma: float | None = None, prior: float = 1.0, source: str = "experience") -> Estimate:
    """Estimate an MDP from an experience table (see the module docstring). gamma defaults to 0.99."""
    if not prior >= 0:
        raise ConfigError(f"prior must be a non-negative pseudo-count, got {prior}")
    state, action, reward, next_state, done = _validated(table, source)
    states = _labels(pd.concat([state, next_state[~next_state.isna()]]))
    actions = _labels(action)
    s = pd.Index(states).get_indexer(state)
    a = pd.Index(actions).get_indexer(action)
    n_states, n_actions = len(states), len(actions)
    going = ~done
    s2 = pd.Index(states).get_indexer(next_state[going])
    pair = s * n_actions + a

    # Counts per pair, and pooled per state (all actions together).
    n = np.bincount(pair, minlength=n_states * n_actions).astype(float)
    reward_sum = np.bincount(pair, weights=reward, minlength=n_states * n_actions)
    counts = sp.csr_array((np.ones(len(s2)), (pair[going], s2)), shape=(n_states * n_actions, n_states))
    n_state = np.bincount(s, minlength=n_states).astype(float)
    pooled = sp.csr_array((np.ones(len(s2)), (s[going], s2)), shape=(n_states, n_states))
    acted = n_state > 0
    per_visit = np.divide(1.0, n_state, out=np.zeros(n_states), where=acted)
    pooled_p = sp.diags_array(per_visit) @ pooled                      # p̄(s'|s)
    pooled_r = np.bincount(s, weights=reward, minlength=n_states) * per_visit  # r̄(s)

    # Posterior mean: data weight n/(n+α), prior weight α/(n+α); an unseen pair takes the prior alone.
    pair_state = np.repeat(np.arange(n_states), n_actions)
    denominator = n + prior
    prior_weight = np.where(n > 0, np.divide(prior, denominator, out=np.zeros_like(n), where=denominator > 0), 1.0)
    data_scale = np.divide(1.0, denominator, out=np.zeros_like(n), where=n > 0)
    transitions = sp.diags_array(data_scale) @ counts + sp.diags_array(prior_weight) @ sp.csr_array(pooled_p)[pair_state]
    rewards = reward_sum * data_scale + prior_weight * pooled_r[pair_state]

    mdp = FiniteMDP(sp.csr_array(transitions), rewards.reshape(n_states, n_actions),
                    DEFAULT_GAMMA if gamma is None else gamma, terminal=~acted, states=states, actions=actions, name=source)
    reached_going = np.zeros(n_states, bool)
    reached_going[s2] = True
    visits = n.reshape(n_states, n_actions)
    unseen = np.argwhere(acted[:, None] & (visits == 0))
    return Estimate(mdp, visits, unseen_pairs=[(states[i], actions[j]) for i, j in unseen],
                    unvisited_states=[states[i] for i in np.flatnonzero(~acted & reached_going)])


def _validated(table: pd.DataFrame, source: str) -> tuple[pd.Series, pd.Series, np.ndarray, pd.Series, np.ndarray]:
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{source}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                        f"an experience table has {', '.join(COLUMNS)}")
    table = table.reset_index(drop=True)
    for column in ("state", "action", "reward", "done"):
        _no_empty(table[column], source, column)
    reward = pd.to_numeric(table["reward"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(reward))
    if len(bad):
        raise DataError(f"{source}: row {bad[0] + 1}: reward {table['reward'].tolist()[bad[0]]!r} is not a finite number")
    done = _booleans(table["done"], source)
    _no_empty(table["next_state"][~done], source, "next_state", " (it may be empty only when done is true)")
    return _integral(table["state"]), _integral(table["action"]), reward, _integral(table["next_state"]), done


def _no_empty(column: pd.Series, source: str, name: str, hint: str = "") -> None:
    empty = np.flatnonzero(column.isna().to_numpy())
    if len(empty):
        raise DataError(f"{source}: row {column.index[empty[0]] + 1}: {name} is empty{hint}")


def _booleans(column: pd.Series, source: str) -> np.ndarray:
    flags, bad = parse_flags(column)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source}: row {row + 1}: done is {shown(column.iloc[row])}; expected true/false or 1/0")
    return flags


def _integral(column: pd.Series) -> pd.Series:
    """A float column of whole numbers (a CSV integer column with gaps) back to integers, so 3.0 ≡ 3."""
    values = column.dropna()
    if pd.api.types.is_float_dtype(column) and len(values) and (values == values.round()).all():
        return column.astype("Int64").astype(object).where(column.notna(), None)
    return column


def _labels(column: pd.Series) -> list[Any]:
    """Distinct labels, sorted when they can be, else in order of appearance."""
    unique = list(pd.unique(column.dropna()))
    try:
        unique = sorted(unique)
    except TypeError:
        pass
    return [plain_label(u) for u in unique]
