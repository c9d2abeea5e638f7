"""Hyperparameters: one typed model per component, combined, overridable, saved with the experiment.

    hp = build_hyperparameters("linucb", overrides='{"action_space": [16], "alpha": 0.5}')
    hp.save(directory / "hyperparameters.json")

Overrides are a JSON object (a string or a file path). Keys may be nested by section
(`{"agent": {"alpha": 0.5}}`) or flat (`{"alpha": 0.5}`); a flat key is looked up in every
section, including the chosen agent's settings, and must name exactly one field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from nextbest.errors import ConfigError
from nextbest.io import write_json


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ActionsConfig(Section):
    action_space: list[PositiveInt] | None = Field(None, description="choices per choice set, e.g. [16] or [2, 2]")


class DataConfig(Section):
    columns: list[str] | None = Field(None, description="context columns, in order")
    categorical_columns: list[str] = Field(default_factory=list)
    categorical_dimensions: dict[str, PositiveInt] | None = Field(
        None, description="number of categories per categorical column (values 0 … n−1)"
    )
    unknown_category: Literal["error", "bucket"] = Field(
        "error", description="'error' rejects an unseen category; 'bucket' maps it to one shared code"
    )


class RewardConfig(Section):
    reward_name: str = Field("reaction", description="registered reward (see nextbest.rewards.REWARDS)")
    action_costs: list[float] | None = Field(
        None, description="cost of each joint action, subtracted by the 'revenue-minus-cost' reward"
    )


class TrainerConfig(Section):
    checkpoints_to_keep: PositiveInt = Field(5, description="older checkpoints are deleted")
    checkpoint_every: PositiveInt = Field(
        50, description="updates between checkpoints in long runs (pretraining steps); each `train` call writes one"
    )
    evaluation_rows: PositiveInt = Field(2000, description="held-out contexts scored after each simulated batch")


SECTIONS: dict[str, type[Section]] = {
    "actions": ActionsConfig,
    "data": DataConfig,
    "reward": RewardConfig,
    "trainer": TrainerConfig,
}


class Hyperparameters(BaseModel):
    """Everything a run needs besides data; `hyperparameters.json` alone repeats a run."""

    model_config = ConfigDict(extra="forbid")

    agent_name: str
    seed: int = 0
    actions: ActionsConfig = Field(default_factory=ActionsConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    agent: dict[str, Any] = Field(default_factory=dict)

    def agent_config(self) -> BaseModel:
        """The agent's own typed settings (validated against its registered model)."""
        from nextbest.agents import agent_class

        return _validate(agent_class(self.agent_name).Config, self.agent, "agent")

    def require_use_case(self) -> None:
        """Fail early on the settings that have no sensible default."""
        if self.actions.action_space is None:
            raise ConfigError('set the action space: --action-space 16 (or "action_space": [16] in the hyperparameters)')
        if not self.data.columns:
            raise ConfigError('set the context columns: --columns a,b,x (or "columns": [...] in the hyperparameters)')
        unknown = [c for c in self.data.categorical_columns if c not in self.data.columns]
        if unknown:
            raise ConfigError(f"categorical column(s) {unknown} are not among the columns {self.data.columns}")

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.model_dump(mode="json"))

    @classmethod
    def load(cls, path: str | Path) -> Hyperparameters:
        return cls.model_validate_json_file(path)

    @classmethod
    def model_validate_json_file(cls, path: str | Path) -> Hyperparameters:
        data = _parse_json(Path(path).read_text(), str(path))
        hyperparameters = _validate(cls, data, str(path))
        hyperparameters.agent_config()
        return hyperparameters


def default_hyperparameters(agent_name: str) -> Hyperparameters:
    """Defaults of every section, with the named agent's defaults filled in."""
    from nextbest.agents import agent_class

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
    hyperparameters = _validate(Hyperparameters, data, "hyperparameters")
    hyperparameters.agent = hyperparameters.agent_config().model_dump(mode="json")
    return hyperparameters


def parse_overrides(overrides: str | Path | dict | None) -> dict[str, Any]:
    """A dict from a JSON object given inline, as a file path, or already parsed."""
    if overrides is None or overrides == "":
        return {}
    if isinstance(overrides, dict):
        return overrides
    text = str(overrides)
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"hyperparameters {text!r} is neither a JSON object nor an existing file")
        return _parse_json(path.read_text(), str(path))
    return _parse_json(text, "hyperparameters JSON")


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Apply nested or flat keys onto `data` (a Hyperparameters dump) in place."""
    from nextbest.agents import agent_class

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


def _parse_json(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object {{...}}, got {type(data).__name__}")
    return data


def _validate(model: type[BaseModel], data: Any, source: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(f"{source}: '{where}' {first['msg'].lower()} (got {first.get('input')!r})") from None
