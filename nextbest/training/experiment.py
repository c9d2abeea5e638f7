"""The experiment directory: hyperparameters, schema, agent checkpoints, experiences, TensorBoard.

    DIR/hyperparameters.json   everything needed to repeat the run
    DIR/schema.json            columns, vocabularies, numeric standardization
    DIR/checkpoints/           checkpoint-NNNNNN.pt (atomic) and `latest`
    DIR/experiences/           one Parquet part per training call, with computed rewards
    DIR/tensorboard/           event files: rewards and every training metric

`Experiment` is the whole predict → train loop in Python; the CLI is a thin layer over it.
An experiment without a directory lives in memory (the simulator uses that).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.agents import Agent, Experience, agent_class
from nextbest.agents.base import PREDICTION_COLUMNS
from nextbest.checkpoints import read_checkpoint, write_checkpoint
from nextbest.config import Hyperparameters
from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import Features, check_columns, encode, flag_column, numeric_column, numeric_matrix
from nextbest.data.schema import Schema
from nextbest.data.tables import read_table, write_table
from nextbest.errors import ExperimentError, SchemaError
from nextbest.rewards import Reward, make_reward, reaction_values
from nextbest.seeding import fresh_seed
from nextbest.tensorboard import MetricsWriter


@dataclass
class Progress:
    """Counters a checkpoint carries besides the agent's state."""

    updates: int = 0
    examples: int = 0
    experience_parts: list[str] = field(default_factory=list)
    last_metrics: dict[str, float] = field(default_factory=dict)


class Experiment:
    def __init__(self, hyperparameters: Hyperparameters, schema: Schema, directory: Path | None = None):
        hyperparameters.require_use_case()
        self.hyperparameters = hyperparameters
        self.schema = schema
        self.directory = Path(directory) if directory is not None else None
        self.action_space = ActionSpace(tuple(hyperparameters.actions.action_space))
        self.reward: Reward = make_reward(hyperparameters.reward, self.action_space)
        self.agent: Agent = agent_class(hyperparameters.agent_name)(
            schema, self.action_space, hyperparameters.agent_config(), seed=hyperparameters.seed
        )
        self.progress = Progress()
        self.checkpoint: Path | None = None
        self.skipped_checkpoints: list[str] = []  # unreadable checkpoints passed over when opening
        self._row_hashes: set[int] | None = None
        self._metrics = MetricsWriter(self.directory / "tensorboard" if self.directory else None)

    # --- creating and opening -------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | Path | None, hyperparameters: Hyperparameters, schema: Schema) -> Experiment:
        """A new experiment; refuses a directory that already holds one."""
        experiment = cls(hyperparameters, schema, directory)
        if experiment.directory is not None:
            if (experiment.directory / "hyperparameters.json").exists():
                raise ExperimentError(f"{experiment.directory} already holds an experiment; choose a new directory")
            for sub in ("checkpoints", "experiences", "tensorboard"):
                (experiment.directory / sub).mkdir(parents=True, exist_ok=True)
            hyperparameters.save(experiment.directory / "hyperparameters.json")
            schema.save(experiment.directory / "schema.json")
        return experiment

    @classmethod
    def open(cls, directory: str | Path, checkpoint: str | None = None) -> Experiment:
        """An existing experiment at its latest checkpoint (or the one named)."""
        directory = Path(directory)
        if not (directory / "hyperparameters.json").is_file():
            raise ExperimentError(
                f"{directory} is not an experiment directory (no hyperparameters.json); create one with `nextbest init`"
            )
        if not (directory / "schema.json").is_file() and '"env_id"' in (directory / "hyperparameters.json").read_text():
            raise ExperimentError(f"{directory} is a `nextbest rl` run (a Gymnasium environment), not an experiment of "
                                  "tabular decisions; create one with `nextbest init`")
        hyperparameters = Hyperparameters.model_validate_json_file(directory / "hyperparameters.json")
        schema = Schema.load(directory / "schema.json")
        experiment = cls(hyperparameters, schema, directory)
        found = read_checkpoint(directory / "checkpoints", checkpoint, experiment.skipped_checkpoints)
        if found is not None:
            experiment.checkpoint, state = found
            experiment.schema = Schema.model_validate(state["schema"])
            experiment.agent.schema = experiment.schema
            experiment.agent.load_state_dict(state["agent"])
            experiment.progress = Progress(**state["progress"])
        return experiment

    # --- predicting -----------------------------------------------------------------------------
    def predict(
        self, contexts: pd.DataFrame, *, seed: int | None = None, greedy: bool = False, source: str = "contexts"
    ) -> pd.DataFrame:
        """The prediction table for a context table: one row per input row, in order.

        Row i's prediction_seed is the table's own `prediction_seed` column if it has one,
        else seed + i (seed drawn at random when not given)."""
        check_columns(contexts, self.schema.columns, optional=["prediction_seed"], source=source)
        seeds = self._row_seeds(contexts, seed, source)
        features = self.features(contexts, source=source)
        prediction = self.agent.act(features, seeds, greedy=greedy)
        return prediction.to_table(contexts[self.schema.columns], self.action_space)

    def features(self, table: pd.DataFrame, *, source: str = "the table") -> Features:
        """Encode the schema's columns; numeric statistics unknown so far are frozen from this table."""
        if not self.schema.numeric_stats_known:
            numeric_matrix(table, self.schema.numeric_columns, source=source)  # names a bad row first
            self.schema = self.schema.with_numeric_stats(table)
            self.agent.schema = self.schema
            if self.directory is not None:
                self.schema.save(self.directory / "schema.json")
        return encode(table, self.schema, source=source)

    def _row_seeds(self, table: pd.DataFrame, seed: int | None, source: str) -> np.ndarray:
        if "prediction_seed" in table.columns:
            values = numeric_column(table["prediction_seed"], "prediction_seed", source=source)
            if (values != np.round(values)).any():
                row = int(np.flatnonzero(values != np.round(values))[0]) + 1
                raise SchemaError(f"{source}: column 'prediction_seed' is not an integer in row {row}")
            return values.astype(np.int64)
        base = fresh_seed() if seed is None else int(seed)
        return base + np.arange(len(table), dtype=np.int64)

    # --- training -------------------------------------------------------------------------------
    def experience_columns(self) -> list[str]:
        return [*self.schema.columns, *self.action_space.column_names(), *PREDICTION_COLUMNS, "reaction"]

    def train(self, experiences: pd.DataFrame, *, source: str = "experiences", allow_duplicates: bool = False) -> dict[str, float]:
        """Learn from an experience table (a prediction table plus `reaction`; `reward` if already computed),
        append it to the experience store and write a new checkpoint. Returns the update's metrics."""
        started = time.perf_counter()
        check_columns(experiences, self.experience_columns(), optional=["reward"], source=source)
        experiences = experiences.reset_index(drop=True)
        features = self.features(experiences, source=source)
        actions = self.action_space.read(experiences, source=source)
        log_probability = numeric_column(experiences["log_probability"], "log_probability", source=source)
        if (log_probability > 1e-9).any():
            row = int(np.flatnonzero(log_probability > 1e-9)[0]) + 1
            raise SchemaError(f"{source}: column 'log_probability' is positive in row {row}; expected a log-probability ≤ 0")
        if "reward" in experiences.columns:
            rewards = numeric_column(experiences["reward"], "reward", source=source)
        else:
            rewards = self.reward.calculate_reward(actions, reaction_values(experiences["reaction"], source=source))
        if not allow_duplicates:
            self._refuse_duplicates(experiences, source)

        metrics = self.agent.update(
            Experience(
                features=features,
                action=actions,
                reward=rewards,
                log_probability=log_probability,
                value=numeric_column(experiences["value"], "value", source=source),
                done=flag_column(experiences["done"], "done", source=source),
            )
        )
        metrics = {"reward/mean": float(rewards.mean()), **metrics, "seconds": time.perf_counter() - started}
        self.progress.updates += 1
        self.progress.examples += len(experiences)
        self.progress.last_metrics = metrics
        self._store(experiences.assign(reward=rewards))
        self._metrics.write(metrics, step=self.progress.examples)
        self.save_checkpoint()
        return metrics

    def _refuse_duplicates(self, experiences: pd.DataFrame, source: str) -> None:
        hashes = _row_hashes(experiences[self.experience_columns()])
        repeated = np.flatnonzero(pd.Series(hashes).duplicated().to_numpy() | np.isin(hashes, list(self.stored_hashes())))
        if len(repeated):
            raise ExperimentError(
                f"{source}: {len(repeated)} of {len(experiences)} rows were already trained or appear twice "
                f"(first: row {repeated[0] + 1}); pass --allow-duplicates to train them anyway"
            )

    def stored_hashes(self) -> set[int]:
        if self._row_hashes is None:
            stored = self.experiences()
            self._row_hashes = set(_row_hashes(stored[self.experience_columns()]).tolist()) if len(stored) else set()
        return self._row_hashes

    def _store(self, experiences: pd.DataFrame) -> None:
        if self.directory is None:
            return
        name = f"part-{self.progress.updates:06d}.parquet"
        write_table(experiences, self.directory / "experiences" / name)
        self.progress.experience_parts.append(name)
        if self._row_hashes is not None:
            self._row_hashes.update(_row_hashes(experiences[self.experience_columns()]).tolist())

    def experiences(self) -> pd.DataFrame:
        """Every experience trained so far (the parts the current checkpoint lists), with rewards."""
        if self.directory is None or not self.progress.experience_parts:
            return pd.DataFrame(columns=[*self.experience_columns(), "reward"])
        parts = [read_table(self.directory / "experiences" / name) for name in self.progress.experience_parts]
        return pd.concat(parts, ignore_index=True)

    def save_checkpoint(self) -> Path | None:
        if self.directory is None:
            return None
        state = {
            "agent": self.agent.state_dict(),
            "schema": self.schema.model_dump(),
            "progress": self.progress.__dict__,
        }
        keep = self.hyperparameters.trainer.checkpoints_to_keep
        self.checkpoint = write_checkpoint(self.directory / "checkpoints", self.progress.updates, state, keep)
        return self.checkpoint

    def close(self) -> None:
        self._metrics.close()


def _row_hashes(table: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row of the values as text, so CSV and Parquet copies of a row match."""
    text = table.astype(str)
    return pd.util.hash_pandas_object(text, index=False).to_numpy()


def describe(experiment: Experiment) -> dict[str, Any]:
    """A summary of an experiment: agent, schema, progress, checkpoints."""
    from nextbest.checkpoints import checkpoint_files

    directory = experiment.directory
    return {
        "directory": str(directory),
        "agent": experiment.hyperparameters.agent_name,
        "action_space": experiment.hyperparameters.actions.action_space,
        "columns": experiment.schema.columns,
        "categorical_columns": experiment.schema.categorical_columns,
        "updates": experiment.progress.updates,
        "examples": experiment.progress.examples,
        "last_metrics": experiment.progress.last_metrics,
        "checkpoint": experiment.checkpoint.name if experiment.checkpoint else None,
        "checkpoints": [p.name for p in checkpoint_files(directory / "checkpoints")] if directory else [],
    }
