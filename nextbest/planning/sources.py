"""Where an MDP comes from, by name: a Gymnasium id, a spec file, or an experience table; and
policies read from files. The command line's ENV and --policy arguments go through here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.data.tables import SUFFIXES as TABLE_SUFFIXES
from nextbest.data.tables import read_table
from nextbest.errors import ConfigError, DataError, NextbestError
from nextbest.planning.estimate import from_experience
from nextbest.planning.gym_model import ALIASES, from_gymnasium
from nextbest.planning.mdp import FiniteMDP, few
from nextbest.planning.spec import DEFAULT_GAMMA, SPEC_SUFFIXES, load_spec


@dataclass
class Source:
    """mdp; notes: lines worth telling the user; details: extra keys for the JSON report."""

    mdp: FiniteMDP
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def load_mdp(source: str, *, gamma: float | None = None, prior: float | None = None,
             env_kwargs: dict[str, Any] | None = None) -> Source:
    """An MDP from a Gymnasium id, a spec (.yaml/.yml/.json) or an experience table (.csv/.parquet)."""
    if gamma is not None and not 0 < gamma <= 1:
        raise ConfigError(f"gamma must be in (0, 1], got {gamma}")
    suffix = Path(source).suffix.lower()
    is_table = suffix in TABLE_SUFFIXES
    if prior is not None and not is_table:
        raise ConfigError("--prior applies to experience tables (.csv, .parquet) only")
    if env_kwargs and (is_table or suffix in SPEC_SUFFIXES):
        raise ConfigError("--env-kwargs applies to Gymnasium environments only")
    if suffix in SPEC_SUFFIXES:
        return Source(load_spec(source, gamma))
    if is_table:
        estimate = from_experience(read_table(source), gamma, 1.0 if prior is None else prior, source=source)
        notes = [f"estimated from {int(estimate.visits.sum())} steps"]
        if estimate.unseen_pairs:
            notes.append(f"{len(estimate.unseen_pairs)} state-action pairs never tried (modelled on the state's other actions): "
                         + few(estimate.unseen_pairs, 5))
        if estimate.unvisited_states:
            notes.append(f"{len(estimate.unvisited_states)} states reached but never acted from (treated as terminal): "
                         + few(estimate.unvisited_states, 5))
        return Source(estimate.mdp, notes, {"estimate": estimate.summary()})
    if Path(source).exists():
        raise DataError(f"{source}: expected an MDP spec ({', '.join(SPEC_SUFFIXES)}) or an experience table "
                        f"({', '.join(TABLE_SUFFIXES)}), got suffix '{suffix}'")
    notes = [f"{source} is {ALIASES[source]} in this Gymnasium (same dynamics)"] if source in ALIASES else []
    return Source(from_gymnasium(source, DEFAULT_GAMMA if gamma is None else gamma, **(env_kwargs or {})), notes)


def read_policy(path: str | Path, mdp: FiniteMDP) -> np.ndarray:
    """A policy for `mdp` from a file: the JSON of `nextbest plan --json` (its "policy"), a JSON list
    (an action per state, or per-state action probabilities) or mapping {state: action}, or a table
    with `state`, `action` and optionally `probability`. Terminal states may be left out.
    Returns (S,) action indices or (S, A) probabilities."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            return _policy_from_json(path, mdp)
        if path.suffix.lower() in TABLE_SUFFIXES:
            return _policy_from_table(read_table(path), path, mdp)
    except NextbestError as error:
        raise DataError(str(error) if str(error).startswith(str(path)) else f"{path}: {error}") from None
    raise DataError(f"{path}: a policy file is .json or a table ({', '.join(TABLE_SUFFIXES)}), got suffix '{path.suffix}'")


def _policy_from_json(path: Path, mdp: FiniteMDP) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    policy = raw.get("policy") if isinstance(raw, dict) and "policy" in raw else raw
    if isinstance(policy, dict):
        return _policy_from_table(pd.DataFrame({"state": list(policy), "action": list(policy.values())}), path, mdp)
    if not isinstance(policy, list) or len(policy) != mdp.n_states:
        raise DataError(f"{path}: expected a policy with one entry per state ({mdp.n_states}), "
                        f"got {len(policy) if isinstance(policy, list) else type(policy).__name__}")
    if all(isinstance(p, list) for p in policy):
        return mdp.policy_probabilities(np.asarray(policy, dtype=float))
    return mdp.action_indices(policy)


def _policy_from_table(table: pd.DataFrame, path: Path, mdp: FiniteMDP) -> np.ndarray:
    missing = [c for c in ("state", "action") if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column {' and '.join(missing)}; a policy table has state, action (and probability)")
    states, actions = mdp.state_indices(list(table["state"])), mdp.action_indices(list(table["action"]))
    stochastic = "probability" in table.columns
    probabilities = np.zeros((mdp.n_states, mdp.n_actions))
    if stochastic:
        weight = pd.to_numeric(table["probability"], errors="coerce").to_numpy(dtype=float)
        if not (np.isfinite(weight) & (weight >= 0)).all():
            row = int(np.flatnonzero(~(np.isfinite(weight) & (weight >= 0)))[0])
            raise DataError(f"{path}: row {row + 1}: probability {table['probability'].tolist()[row]!r} is not a number ≥ 0")
        np.add.at(probabilities, (states, actions), weight)
    else:
        repeated = pd.Index(states).duplicated()
        if repeated.any():
            row = int(np.flatnonzero(repeated)[0])
            raise DataError(f"{path}: row {row + 1}: state {table['state'].iloc[row]!r} has a second action; "
                            "add a probability column for a stochastic policy")
        probabilities[states, actions] = 1.0
    given = probabilities.sum(axis=1)
    absent = np.flatnonzero(~mdp.terminal & (given == 0))
    if len(absent):
        raise DataError(f"{path}: no action for state {few([mdp.states[i] for i in absent])}; every non-terminal state needs one")
    off = np.flatnonzero(~mdp.terminal & (np.abs(given - 1) > 1e-6))
    if len(off):
        raise DataError(f"{path}: probabilities of state {mdp.states[off[0]]!r} sum to {given[off[0]]:.6g}, expected 1")
    if not stochastic:
        return probabilities.argmax(axis=1)
    probabilities[mdp.terminal & (given == 0), 0] = 1.0
    return probabilities

