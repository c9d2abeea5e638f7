"""Agents: one interface (`distribution` → `act` / `probabilities`, `update`, `save`, `load`, `snapshot`),
one registry.

A new agent is one file (its `distribution` and `update`) and one line in AGENTS.
"""

from __future__ import annotations

from nextbest.agents.base import Agent, AgentSettings, Experience, PolicyOutput, Prediction
from nextbest.agents.epsilon_greedy import EpsilonGreedy
from nextbest.agents.linucb import LinUCB
from nextbest.agents.neural import NeuralBandit
from nextbest.agents.ppo import MlpPPO, TabNetPPO
from nextbest.agents.snapshot import PolicySnapshot
from nextbest.agents.thompson import LinearThompson
from nextbest.agents.uniform import UniformRandom
from nextbest.errors import ConfigError

AGENTS: dict[str, type[Agent]] = {
    agent.name: agent for agent in (NeuralBandit, LinUCB, LinearThompson, EpsilonGreedy, UniformRandom,
                   TabNetPPO, MlpPPO)
}

# The agent that reaches the oracle fastest in benchmarks/results/personalization.json.
DEFAULT_AGENT = "neural"


def agent_class(name: str) -> type[Agent]:
    try:
        return AGENTS[name]
    except KeyError:
        raise ConfigError(f"unknown agent {name!r}; choose one of {sorted(AGENTS)}") from None


__all__ = [
    "AGENTS", "DEFAULT_AGENT", "Agent", "AgentSettings", "Experience", "PolicyOutput", "PolicySnapshot", "Prediction",
    "agent_class",
]
