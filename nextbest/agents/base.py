"""The interface every agent implements: `act`, `update`, `state_dict` / `load_state_dict`.

Most agents describe their exploring policy as a probability for every joint action
(`policy`); `act` draws from it with per-row random numbers, mixes in an exploration floor
so that no action ever has probability zero, and logs the probability of what it chose.
Agents whose policy factorizes over choice sets (PPO) override `act`.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel

from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import Features
from nextbest.data.schema import Schema
from nextbest.io import atomic_write_bytes
from nextbest.seeding import row_uniforms, sample_categorical

PREDICTION_COLUMNS = ["value", "log_probability", "done", "attentive_transformer_loss", "prediction_seed"]


@dataclass
class Prediction:
    """What an agent decided for n rows: action (n, n_choices) and (n,) arrays for the rest."""

    action: np.ndarray
    value: np.ndarray
    log_probability: np.ndarray
    prediction_seed: np.ndarray
    attentive_transformer_loss: np.ndarray | None = None
    done: np.ndarray | None = None

    def to_table(self, contexts: pd.DataFrame, action_space: ActionSpace) -> pd.DataFrame:
        """The prediction table: context columns, action column(s), then the PREDICTION_COLUMNS."""
        n = len(self.action)
        table = contexts.reset_index(drop=True).copy()
        action_space.write(table, self.action)
        table["value"] = self.value.astype(np.float64)
        table["log_probability"] = self.log_probability.astype(np.float64)
        table["done"] = np.ones(n, dtype=np.int8) if self.done is None else self.done.astype(np.int8)  # 1: the episode ends here
        table["attentive_transformer_loss"] = (
            np.zeros(n) if self.attentive_transformer_loss is None else self.attentive_transformer_loss.astype(np.float64)
        )
        table["prediction_seed"] = self.prediction_seed.astype(np.int64)
        return table


@dataclass
class Experience:
    """A batch to learn from: what was seen, done, and what it earned. Arrays have n rows."""

    features: Features
    action: np.ndarray  # (n, n_choices) int64
    reward: np.ndarray  # (n,) float64
    log_probability: np.ndarray  # (n,) log-probability of `action` under the policy that chose it
    value: np.ndarray = field(default=None)  # (n,) the critic's estimate when the action was chosen
    done: np.ndarray = field(default=None)  # (n,) bool; contextual decisions are one-step episodes

    def __post_init__(self) -> None:
        n = len(self.reward)
        if self.value is None:
            self.value = np.zeros(n)
        if self.done is None:
            self.done = np.ones(n, dtype=bool)


class AgentSettings(BaseModel):
    """Settings every agent shares."""

    model_config = {"extra": "forbid"}
    exploration_floor: float = 0.02
    """Probability mass spread uniformly over all actions, so that every action stays possible."""


class Agent(ABC):
    """A decision maker over a fixed schema and action space."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = AgentSettings

    def __init__(self, schema: Schema, action_space: ActionSpace, config: BaseModel | None = None, seed: int = 0):
        self.schema = schema
        self.action_space = action_space
        self.config = config if config is not None else self.Config()
        self.seed = seed
        self.updates = 0
        self.examples = 0

    # --- the policy -------------------------------------------------------------------------
    @abstractmethod
    def scores(self, features: Features) -> np.ndarray:
        """(n, n_joint) estimated expected reward of every joint action; greedy takes the argmax."""

    def policy(self, features: Features, seeds: np.ndarray) -> np.ndarray:
        """(n, n_joint) exploring policy before the floor; the default is greedy on `scores`."""
        return _one_hot_argmax(self.scores(features))

    def scores_and_policy(self, features: Features, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`scores` and `policy` at once; agents that get both from one pass over the model override it."""
        return self.scores(features), self.policy(features, seeds)

    def probabilities(self, features: Features, seeds: np.ndarray, *, greedy: bool = False) -> np.ndarray:
        """(n, n_joint) probabilities of the policy `act` samples from (floor included unless greedy)."""
        if greedy:
            return _one_hot_argmax(self.scores(features))
        return self._with_floor(self.policy(features, seeds))

    def _with_floor(self, policy: np.ndarray) -> np.ndarray:
        floor = self.config.exploration_floor
        return (1.0 - floor) * policy + floor / self.action_space.n_joint

    def act(self, features: Features, seeds: np.ndarray, *, greedy: bool = False) -> Prediction:
        """Choose an action for every row. `seeds`: (n,) int, one per row (the `prediction_seed`)."""
        seeds = np.asarray(seeds, dtype=np.int64)
        if greedy:
            scores = self.scores(features)
            joint = scores.argmax(axis=1)
            log_probability = np.zeros(len(joint))
        else:
            scores, policy = self.scores_and_policy(features, seeds)
            probabilities = self._with_floor(policy)
            joint = sample_categorical(probabilities, row_uniforms(seeds, 1, stream=0)[:, 0])
            log_probability = np.log(probabilities[np.arange(len(joint)), joint])
        return Prediction(
            action=self.action_space.from_joint(joint),
            value=scores[np.arange(len(joint)), joint],
            log_probability=log_probability,
            prediction_seed=seeds,
        )

    # --- learning -----------------------------------------------------------------------------
    @abstractmethod
    def update(self, experience: Experience) -> dict[str, float]:
        """Learn from a batch; returns metrics to log (names → numbers)."""

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "examples": self.examples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.examples = int(state["examples"])

    def save(self, path: str | Path) -> Path:
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        return atomic_write_bytes(path, buffer.getvalue())

    def load(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))


def _one_hot_argmax(scores: np.ndarray) -> np.ndarray:
    """Rows of `scores` → one-hot of the maximum, ties shared equally."""
    best = scores >= scores.max(axis=1, keepdims=True) - 1e-12
    return best / best.sum(axis=1, keepdims=True)
