"""Gymnasium environments: contextual personalization scenarios (and, as they land, the budget
allocation environment and tabular MDPs). Scenarios are also registered with Gymnasium as
`nextbest/<Name>-v0`."""

from __future__ import annotations

import gymnasium as gym

from nextbest.envs.contextual import ContextualScenario
from nextbest.envs.scenarios import SCENARIOS
from nextbest.errors import ConfigError


def make_scenario(name: str, world_seed: int = 0) -> ContextualScenario:
    try:
        return SCENARIOS[name](world_seed=world_seed)
    except KeyError:
        raise ConfigError(f"unknown scenario {name!r}; choose one of {sorted(SCENARIOS)}") from None


def _gym_id(name: str) -> str:
    return "nextbest/" + "".join(part.capitalize() for part in name.split("-")) + "-v0"


for _name, _scenario in SCENARIOS.items():
    if _gym_id(_name) not in gym.registry:
        gym.register(id=_gym_id(_name), entry_point=_scenario)
if "nextbest/GridMap-v0" not in gym.registry:  # the planning grid (nextbest.envs.grid_map)
    gym.register(id="nextbest/GridMap-v0", entry_point="nextbest.envs.grid_map:GridMapEnv", max_episode_steps=200)
if "nextbest/BudgetAllocation-v0" not in gym.registry:  # budget allocation (nextbest.envs.budget)
    gym.register(id="nextbest/BudgetAllocation-v0", entry_point="nextbest.envs.budget:BudgetAllocationEnv")

__all__ = ["SCENARIOS", "ContextualScenario", "make_scenario"]
