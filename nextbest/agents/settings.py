"""Hyperparameters with the chosen agent's settings: defaults, overrides, validation, loading.

    hp = build_hyperparameters("linucb", overrides='{"action_space": [16], "alpha": 0.5}')
    hp.save(directory / "hyperparameters.json")
    settings = agent_config(hp)            # the agent's typed settings (LinUCB.Config)

`nextbest.config` holds the sections every run has; this module adds what needs the agent
registry. Overrides are a JSON object (a string or a file path). Keys may be nested by section
(`{"agent": {"alpha": 0.5}}`) or flat (`{"alpha": 0.5}`); a flat key is looked up in every
section, including the chosen agent's settings, and must name exactly one field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nextbest.agents import agent_class
from nextbest.config import SECTIONS, Hyperparameters, parse_overrides, validate_model
from nextbest.errors import ConfigError


def agent_config(hyperparameters: Hyperparameters) -> BaseModel:
    """The agent's own typed settings (validated against its registered model)."""
    return validate_model(agent_class(hyperparameters.agent_name).Config, hyperparameters.agent, "agent")


def load_hyperparameters(path: str | Path) -> Hyperparameters:
    """`Hyperparameters.load`, with the agent's settings validated too (a bad file fails on opening)."""
    hyperparameters = Hyperparameters.load(path)
    agent_config(hyperparameters)
    return hyperparameters


def default_hyperparameters(agent_name: str) -> Hyperparameters:
    """Defaults of every section, with the named agent's defaults filled in."""
    config = agent_class(agent_name).Config()
    return Hyperparameters(agent_name=agent_name, agent=config.model_dump(mode="json"))


def build_hyperparameters(agent_name: str, overrides: str | Path | dict | None = None, **settings: Any) -> Hyperparameters:
    """Defaults for `agent_name`, then `overrides` (JSON string, JSON file or dict), then `settings` (flat keys)."""
    data = default_hyperparameters(agent_name).model_dump(mode="json")
    for layer in (parse_overrides(overrides), {k: v for k, v in settings.items() if v is not None}):
        if "agent_name" in layer and layer["agent_name"] != data["agent_name"]:
            data = default_hyperparameters(layer["agent_name"]).model_dump(mode="json") | {
                k: v for k, v in data.items() if k not in ("agent_name", "agent")
            }
        merge_overrides(data, layer)
    hyperparameters = validate_model(Hyperparameters, data, "hyperparameters")
    hyperparameters.agent = agent_config(hyperparameters).model_dump(mode="json")
    return hyperparameters


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Apply nested or flat keys onto `data` (a Hyperparameters dump) in place."""
    fields = {name: model.model_fields for name, model in SECTIONS.items()}
    fields["agent"] = agent_class(data["agent_name"]).Config.model_fields
    for key, value in overrides.items():
        if key in ("agent_name", "seed"):
            data[key] = value
        elif key in fields and isinstance(value, dict):
            for name in value:
                if name not in fields[key]:
                    raise ConfigError(f"unknown hyperparameter '{key}.{name}'; {key} has {sorted(fields[key])}")
            data[key].update(value)
        else:
            owners = [section for section, names in fields.items() if key in names]
            if not owners:
                known = sorted({n for names in fields.values() for n in names} | {"agent_name", "seed"})
                raise ConfigError(f"unknown hyperparameter '{key}'; known keys are {known}")
            if len(owners) > 1:
                raise ConfigError(f"hyperparameter '{key}' is in sections {owners}; nest it, e.g. {{\"{owners[0]}\": {{\"{key}\": ...}}}}")
            data[owners[0]][key] = value
