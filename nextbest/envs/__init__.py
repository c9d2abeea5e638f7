"""Gymnasium environments: contextual personalization scenarios (and, as they land, the budget
allocation environment and tabular MDPs). Scenarios are also registered with Gymnasium as
`nextbest/<Name>-v0`."""

from __future__ import annotations

import gymnasium as gym

from nextbest.envs.contextual import ContextualScenario
from nextbest.envs.scenarios import SCENARIOS
from nextbest.envs.worlds import World
from nextbest.errors import ConfigError

# Generated scenarios, named "<family>:<seed>" (world:17); the seed in the name picks the world.
SCENARIO_FAMILIES: dict[str, type[ContextualScenario]] = {"world": World}


def scenario_choices() -> list[str]:
    """What a `--scenario` option accepts, for help texts: the built-in names and `<family>:<seed>`."""
    return [*SCENARIOS, *(f"{family}:<seed>" for family in SCENARIO_FAMILIES)]


def make_scenario(name: str, world_seed: int = 0) -> ContextualScenario:
    family, colon, seed = name.partition(":")
    if colon and family in SCENARIO_FAMILIES:
        if not seed.strip().lstrip("-").isdigit():
            raise ConfigError(f"scenario {name!r}: the seed after '{family}:' must be an integer, like {family}:17")
        return SCENARIO_FAMILIES[family](world_seed=int(seed))
    try:
        return SCENARIOS[name](world_seed=world_seed)
    except KeyError:
        raise ConfigError(f"unknown scenario {name!r}; choose one of {scenario_choices()}") from None


def _gym_id(name: str) -> str:
    return "nextbest/" + "".join(part.capitalize() for part in name.split("-")) + "-v0"


for _name, _scenario in SCENARIOS.items():
    if _gym_id(_name) not in gym.registry:
        gym.register(id=_gym_id(_name), entry_point=_scenario)
for _name, _family in SCENARIO_FAMILIES.items():  # gym.make("nextbest/World-v0", world_seed=17)
    if _gym_id(_name) not in gym.registry:
        gym.register(id=_gym_id(_name), entry_point=_family)
if "nextbest/GridMap-v0" not in gym.registry:  # the planning grid (nextbest.envs.grid_map)
    gym.register(id="nextbest/GridMap-v0", entry_point="nextbest.envs.grid_map:GridMapEnv", max_episode_steps=200)
if "nextbest/BudgetAllocation-v0" not in gym.registry:  # budget allocation (nextbest.envs.budget)
    gym.register(id="nextbest/BudgetAllocation-v0", entry_point="nextbest.envs.budget:BudgetAllocationEnv")
if "nextbest/BudgetPacing-v0" not in gym.registry:  # a flight's budget, day by day, with carryover (nextbest.envs.budget_pacing)
    gym.register(id="nextbest/BudgetPacing-v0", entry_point="nextbest.envs.budget_pacing:BudgetPacingEnv")

__all__ = ["SCENARIOS", "SCENARIO_FAMILIES", "ContextualScenario", "make_scenario", "scenario_choices"]
