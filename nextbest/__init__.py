"""nextbest: marketing decisions with reinforcement learning, learned from how people react.

The main entry points, imported lazily so that `import nextbest` stays fast (torch loads on first use):

    from nextbest import Experiment, Schema, build_hyperparameters, simulate, make_scenario

Each area is a subpackage with its own entry points: nextbest.evaluation (off-policy estimates),
nextbest.planning (exact dynamic programming), nextbest.budget (channel budget allocation),
nextbest.generative (synthetic customers).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Experiment": "nextbest.training.experiment",
    "Schema": "nextbest.data.schema",
    "build_hyperparameters": "nextbest.agents.settings",
    "default_hyperparameters": "nextbest.agents.settings",
    "simulate": "nextbest.training.simulate",
    "make_scenario": "nextbest.envs",
    "AGENTS": "nextbest.agents",
    "NextbestError": "nextbest.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nextbest' has no attribute {name!r}")
