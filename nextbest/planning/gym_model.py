"""MDPs from Gymnasium toy-text models: `env.unwrapped.P[s][a] = [(p, s', r, terminated), …]`.

A `terminated` transition ends the episode: it contributes its reward but no continuation value,
whatever s' it names (Taxi names a state that other transitions reach without ending). A state
is terminal when every transition into it ends the episode (FrozenLake's holes and goal,
CliffWalking's goal) and no episode starts there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import scipy.sparse as sp

from nextbest.errors import ConfigError
from nextbest.planning.mdp import FiniteMDP, GridLayout

# Gymnasium 1.x registers Taxi as Taxi-v4: v4 only fixed the optional rainy / fickle variants, so
# the default dynamics are Taxi-v3's.
ALIASES = {"Taxi-v3": "Taxi-v4"}

ACTION_NAMES: dict[str, tuple[str, ...]] = {
    "FrozenLakeEnv": ("left", "down", "right", "up"),
    "CliffWalkingEnv": ("up", "right", "down", "left"),
    "TaxiEnv": ("south", "north", "east", "west", "pickup", "dropoff"),
}


def _frozen_lake(env: Any) -> GridLayout:
    desc = np.asarray(env.desc).astype(str)
    return GridLayout(*desc.shape, {i: c for i, c in enumerate(desc.ravel()) if c in "HG"})


def _cliff_walking(env: Any) -> GridLayout:
    rows, cols = env.shape
    cliff = np.flatnonzero(np.asarray(getattr(env, "_cliff", np.zeros(env.shape, bool))).ravel())
    return GridLayout(rows, cols, {int(s): "C" for s in cliff} | {rows * cols - 1: "G"})


def _grid_map(env: Any) -> GridLayout:
    return GridLayout(*env.shape, dict(env.marks), frozenset(env.walls))


LAYOUTS: dict[str, Callable[[Any], GridLayout]] = {
    "FrozenLakeEnv": _frozen_lake,
    "CliffWalkingEnv": _cliff_walking,
    "GridMapEnv": _grid_map,
}


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """gym.make with errors a user can act on (and Taxi-v3 → Taxi-v4)."""
    import nextbest.envs  # noqa: F401  (registers nextbest/GridMap-v0)

    env_id = ALIASES.get(env_id, env_id)
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as error:
        tabular = [k for k in gym.registry if k.split("-")[0] in {"FrozenLake", "FrozenLake8x8", "Taxi", "CliffWalking", "nextbest/GridMap"}]
        raise ConfigError(f"{env_id}: not a Gymnasium environment here ({error}); tabular ones: {', '.join(sorted(tabular))}") from None
    except TypeError as error:
        raise ConfigError(f"{env_id}: bad environment option ({error})") from None


def from_gymnasium(env: str | gym.Env, gamma: float = 0.99, **kwargs: Any) -> FiniteMDP:
    """The exact model of a tabular Gymnasium environment (an id, or an env made with its options)."""
    name = env if isinstance(env, str) else (env.spec.id if env.spec else type(env.unwrapped).__name__)
    base = (make_env(env, **kwargs) if isinstance(env, str) else env).unwrapped
    model = getattr(base, "P", None)
    if not (isinstance(model, dict) and isinstance(base.observation_space, gym.spaces.Discrete)
            and isinstance(base.action_space, gym.spaces.Discrete)):
        raise ConfigError(f"{name}: not a tabular environment (needs Discrete spaces and a toy-text model env.unwrapped.P)")
    n_states, n_actions = int(base.observation_space.n), int(base.action_space.n)
    rows, cols, probabilities = [], [], []
    rewards = np.zeros((n_states, n_actions))
    enters_going_on, enters_ending = np.zeros(n_states, bool), np.zeros(n_states, bool)
    for s in range(n_states):
        for a in range(n_actions):
            for p, next_state, r, terminated in model[s][a]:
                rewards[s, a] += p * r
                if terminated:
                    enters_ending[next_state] = True
                else:
                    rows.append(s * n_actions + a)
                    cols.append(int(next_state))
                    probabilities.append(p)
                    enters_going_on[next_state] = True
    transitions = sp.csr_array((probabilities, (rows, cols)), shape=(n_states * n_actions, n_states))
    starts = np.asarray(getattr(base, "initial_state_distrib", np.zeros(n_states))) > 0
    kind = type(base).__name__
    actions = getattr(base, "action_names", None) or ACTION_NAMES.get(kind) or range(n_actions)
    layout = LAYOUTS[kind](base) if kind in LAYOUTS else None
    return FiniteMDP(transitions, rewards, gamma, terminal=enters_ending & ~enters_going_on & ~starts,
                     actions=list(actions), layout=layout, name=name)
