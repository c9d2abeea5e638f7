"""Hyperparameters: one typed model per component, combined, saved with the experiment.

The sections every run has (actions, data, reward, trainer) are typed here; the agent's own
settings are kept as a dict and typed by `nextbest.agents.settings`, which also builds
hyperparameters from an agent's defaults and overrides (nested or flat keys):

    hp = build_hyperparameters("linucb", overrides='{"action_space": [16], "alpha": 0.5}')
    hp.save(directory / "hyperparameters.json")
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
    numeric_encoding: Literal["quantile", "standard"] = Field(
        "quantile", description="'quantile': the normal score of each number's quantile (robust to skew and outliers); "
                                "'standard': (x − mean) / std"
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


class ServingConfig(Section):
    """How `nextbest serve` decides, joins reactions and learns (docs/serving.md)."""

    mode: Literal["online", "apprentice", "logging"] = Field(
        "online", description="online: decide and learn; apprentice: serve the caller's baseline_action and learn "
        "from it; logging: decide and log, never train")
    reward_wait_seconds: float = Field(600.0, gt=0, description="a decision waits this long for its reaction; then it "
                                       "is learned from with the default reward, and later reactions are only counted")
    default_reward: float = Field(0.0, description="the reaction of a decision whose reaction never came")
    reaction_aggregation: Literal["earliest", "sum", "last"] = Field(
        "earliest", description="earliest: the first reaction counts (a different second one is refused, 409); sum "
        "and last: every reaction within the wait time counts, the event joins when the wait ends")
    learner_batch_size: PositiveInt = Field(500, description="the learner trains once this many events have joined")
    learner_interval_seconds: float = Field(60.0, gt=0, description="…or once this long has passed with any joined")
    max_contexts: PositiveInt = Field(1000, description="contexts in one decision request at most")
    max_batch_requests: PositiveInt = Field(64, description="concurrent decision requests sharing one forward pass")
    max_batch_wait_seconds: float = Field(0.0, ge=0, description="how long a lone request waits for others to join its "
                                          "batch (0: none; under load the batches grow by themselves)")
    # Off by default: only the operator knows the shop's peak; a limit under it would refuse the shop's own front page.
    rate_limit_per_second: float = Field(0.0, ge=0, description="requests per second per API key in each server "
                                         "process (a token bucket; 0: no limit); over it: 429 with Retry-After")
    rate_limit_burst: PositiveInt | None = Field(None, description="requests a key may make at once above the rate "
                                                 "(default: one second's worth)")

    # The dashboard's off-policy estimate (GET /v1/experiments/{name}/estimate): `nextbest ope` with DR on recent traffic.
    estimate_events: PositiveInt = Field(2000, description="the dashboard's off-policy estimate uses the last this many "
                                         "joined events")
    estimate_min_events: PositiveInt = Field(100, description="…and says 'not enough data' below this many")
    estimate_seconds: float = Field(10.0, ge=0, description="…and is computed at most once per this many seconds (cached)")
    estimate_reward_model: Literal["gbm", "ridge", "neural"] = Field(
        "ridge", description="…with this reward model of `nextbest ope` (ridge: a few ms for thousands of events)")


SECTIONS: dict[str, type[Section]] = {
    "actions": ActionsConfig,
    "data": DataConfig,
    "reward": RewardConfig,
    "trainer": TrainerConfig,
    "serving": ServingConfig,
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
    serving: ServingConfig = Field(default_factory=ServingConfig)
    agent: dict[str, Any] = Field(default_factory=dict)

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
        """The sections from `path`; `nextbest.agents.settings.load_hyperparameters` also checks the agent's."""
        return cls.model_validate_json_file(path)

    @classmethod
    def model_validate_json_file(cls, path: str | Path) -> Hyperparameters:
        data = _parse_json(Path(path).read_text(), str(path))
        return validate_model(cls, data, str(path))


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


def _parse_json(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object {{...}}, got {type(data).__name__}")
    return data


def validate_model(model: type[BaseModel], data: Any, source: str) -> Any:
    """`model` validated from `data`; the first error as one ConfigError naming `source` and the field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(f"{source}: '{where}' {first['msg'].lower()} (got {first.get('input')!r})") from None
