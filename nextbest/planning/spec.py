"""MDPs written by hand as YAML or JSON, and written back.

    gamma: 0.95                       # optional; a --gamma flag overrides it
    states: [new, active, lapsing, churned]   # optional: else in order of appearance
    actions: [wait, email, discount]          # optional: else in order of appearance
    terminal: [churned]
    transitions:                      # p(s'|s,a) and r(s,a,s'); per state and action they sum to 1
      - {state: new, action: email, next_state: active, probability: 0.6, reward: 1.0}
      - {state: new, action: email, next_state: new, probability: 0.4}
      - {state: active, action: wait, probability: 0.1, done: true}   # the episode ends
      …
    rewards:                          # optional r(s, a), added to the transitions' rewards
      - {state: active, action: discount, reward: -2.0}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nextbest.errors import DataError
from nextbest.io import atomic_write_bytes
from nextbest.planning.mdp import FiniteMDP, plain_label

DEFAULT_GAMMA = 0.99
# libyaml's C parser and emitter when PyYAML has them: ten times faster on a 3,000-transition model.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
Label = int | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TransitionSpec(_Strict):
    state: Label
    action: Label
    next_state: Label | None = None
    probability: float = Field(ge=0.0, le=1.0)
    reward: float = 0.0
    done: bool = False

    @model_validator(mode="after")
    def _goes_somewhere(self) -> TransitionSpec:
        if self.next_state is None and not self.done:
            raise ValueError("a transition needs a next_state unless it ends the episode (done: true)")
        return self


class RewardSpec(_Strict):
    state: Label
    action: Label
    reward: float


class MDPSpec(_Strict):
    gamma: float | None = Field(None, gt=0.0, le=1.0)
    states: list[Label] | None = None
    actions: list[Label] | None = None
    terminal: list[Label] = Field(default_factory=list)
    transitions: list[TransitionSpec] = Field(min_length=1)
    rewards: list[RewardSpec] = Field(default_factory=list)


def load_spec(path: str | Path, gamma: float | None = None) -> FiniteMDP:
    """Read a spec file; `gamma` overrides the file's (default 0.99 when neither gives one)."""
    path = Path(path)
    spec = _parse(path)
    states = spec.states or _in_order([spec.terminal, *([t.state, t.next_state] for t in spec.transitions)])
    actions = spec.actions or _in_order([[t.action] for t in spec.transitions])
    s_of = _positions(states, "state", path, "states")
    a_of = _positions(actions, "action", path, "actions")
    n_states, n_actions = len(states), len(actions)
    terminal = np.zeros(n_states, bool)
    terminal[[s_of(x, "terminal") for x in spec.terminal]] = True
    total = np.zeros((n_states, n_actions))
    rewards = np.zeros((n_states, n_actions))
    rows, cols, probabilities = [], [], []
    for i, t in enumerate(spec.transitions):
        where = f"transitions[{i}]"
        s, a = s_of(t.state, where), a_of(t.action, where)
        if terminal[s]:
            raise DataError(f"{path}: {where}: state {t.state!r} is terminal, so nothing happens there; remove the transition")
        total[s, a] += t.probability
        rewards[s, a] += t.probability * t.reward
        if not t.done:
            rows.append(s * n_actions + a)
            cols.append(s_of(t.next_state, where))
            probabilities.append(t.probability)
    for i, r in enumerate(spec.rewards):
        rewards[s_of(r.state, f"rewards[{i}]"), a_of(r.action, f"rewards[{i}]")] += r.reward
    for s, a in np.argwhere(~terminal[:, None] & (np.abs(total - 1.0) > 1e-6)):
        if total[s, a] == 0:
            raise DataError(f"{path}: state {states[s]!r} has no transitions for action {actions[a]!r}; "
                            "every non-terminal state needs every action (mark the state terminal if episodes end there)")
        raise DataError(f"{path}: probabilities of state {states[s]!r}, action {actions[a]!r} sum to {total[s, a]:.6g}, expected 1")
    transitions = sp.csr_array((probabilities, (rows, cols)), shape=(n_states * n_actions, n_states))
    gamma = gamma if gamma is not None else spec.gamma if spec.gamma is not None else DEFAULT_GAMMA
    return FiniteMDP(transitions, rewards, gamma, terminal=terminal, states=states, actions=actions, name=str(path))


def to_spec(mdp: FiniteMDP) -> dict[str, Any]:
    """The MDP as a spec: continuation transitions, one `done` transition for the probability that the
    episode ends, and the expected rewards r(s, a) under `rewards`. Loading it gives the same MDP."""
    coo = mdp.transitions.tocoo()
    ends = 1.0 - mdp.transitions.sum(axis=1)
    ending = np.flatnonzero(np.repeat(~mdp.terminal, mdp.n_actions) & (ends > 1e-12))
    rows = [*coo.row, *ending]
    entries = [{"next_state": plain_label(mdp.states[c]), "probability": float(p)} for c, p in zip(coo.col, coo.data)]
    entries += [{"probability": float(ends[r]), "done": True} for r in ending]
    transitions = [{"state": plain_label(mdp.states[r // mdp.n_actions]), "action": plain_label(mdp.actions[r % mdp.n_actions]), **e}
                   for r, e in sorted(zip(rows, entries), key=lambda item: item[0])]
    rewards = [{"state": plain_label(mdp.states[s]), "action": plain_label(mdp.actions[a]), "reward": float(mdp.rewards[s, a])}
               for s, a in np.argwhere(mdp.rewards != 0)]
    return {"gamma": mdp.gamma, "states": [plain_label(s) for s in mdp.states], "actions": [plain_label(a) for a in mdp.actions],
            "terminal": [plain_label(mdp.states[s]) for s in np.flatnonzero(mdp.terminal)],
            "transitions": transitions, "rewards": rewards}


def save_spec(mdp: FiniteMDP, path: str | Path) -> Path:
    """Write `to_spec(mdp)` as YAML or JSON (by suffix), atomically."""
    path = Path(path)
    spec = to_spec(mdp)
    if path.suffix.lower() == ".json":
        text = json.dumps(spec, indent=1)
    elif path.suffix.lower() in (".yaml", ".yml"):
        text = yaml.dump(spec, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=120)
    else:
        raise DataError(f"{path}: a spec file ends in {', '.join(SPEC_SUFFIXES)}")
    return atomic_write_bytes(path, text.encode())


def _parse(path: Path) -> MDPSpec:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_text()
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.load(text, Loader=_Loader)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise DataError(f"{path}: not valid YAML ({where}{getattr(error, 'problem', None) or error})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping with 'transitions' (and optionally gamma, states, actions, terminal, rewards)")
    try:
        return MDPSpec.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "spec"
        raise DataError(f"{path}: {where}: {first['msg']}" + (f" ({error.error_count()} problems in all)" if error.error_count() > 1 else "")) from None


def _in_order(groups: Any) -> list[Label]:
    seen: dict[Label, None] = {}
    for group in groups:
        for label in group:
            if label is not None:
                seen.setdefault(label, None)
    return list(seen)


def _positions(labels: list[Label], kind: str, path: Path, field: str):
    if len(set(labels)) != len(labels):
        raise DataError(f"{path}: {field} lists a {kind} twice")
    position = {label: i for i, label in enumerate(labels)}

    def index(label: Label, where: str) -> int:
        if label not in position:
            raise DataError(f"{path}: {where}: unknown {kind} {label!r}; {field} are {labels}")
        return position[label]

    return index

