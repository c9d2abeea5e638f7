"""The experiment directory: hyperparameters, schema, agent checkpoints, experiences, TensorBoard.

    DIR/hyperparameters.json   everything needed to repeat the run
    DIR/schema.json            columns, vocabularies, numeric standardization
    DIR/checkpoints/           checkpoint-NNNNNN.pt (atomic, weights-only) and `latest`
    DIR/experiences/           the experience store: one Parquet part per training call, with computed
                               rewards, and .index.parquet (the row hashes that refuse duplicates)
    DIR/tensorboard/           event files: rewards and every training metric
    DIR/.lock                  held by the one writer (train, pretrain, simulate) while it writes

`Experiment` is the whole predict → train loop in Python; the CLI is a thin layer over it.
An experiment without a directory lives in memory (the simulator uses that).

One writer at a time: `train` (and `pretrain`, `simulate`, `create`) holds DIR/.lock while it writes,
and a second writer waits for it (up to `lock_timeout` seconds). Having the lock, a writer re-reads the
latest checkpoint, so it trains on top of what the one before it committed, never beside it.
The checkpoint is the commit: the experience parts it names are the stored experiences.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.agents import Agent, Experience, agent_class
from nextbest.agents.base import PREDICTION_COLUMNS
from nextbest.agents.settings import agent_config, load_hyperparameters
from nextbest.checkpoints import checkpoint_files, read_checkpoint, write_checkpoint
from nextbest.config import Hyperparameters
from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import Features, check_columns, encode, flag_column, numeric_column, numeric_matrix
from nextbest.data.schema import Schema
from nextbest.errors import ExperimentError, SchemaError
from nextbest.rewards import Reward, make_reward, reaction_values
from nextbest.seeding import fresh_seed
from nextbest.tensorboard import MetricsWriter
from nextbest.training.lock import LOCK_TIMEOUT, ExperimentLock
from nextbest.training.store import ParquetExperienceStore, duplicates_error, row_hashes


def row_seeds(table: pd.DataFrame, base: int, *, source: str, rows: np.ndarray | None = None) -> np.ndarray:
    """(n,) the prediction seeds of a context table: its own `prediction_seed` column if it has one, else
    base + i for row i; `rows` (n,) gives the rows' numbers in a larger table this one is a part of."""
    if "prediction_seed" in table.columns:
        values = numeric_column(table["prediction_seed"], "prediction_seed", source=source)
        if (values != np.round(values)).any():
            row = int(np.flatnonzero(values != np.round(values))[0]) + 1
            raise SchemaError(f"{source}: column 'prediction_seed' is not an integer in row {row}")
        return values.astype(np.int64)
    return base + (np.arange(len(table), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64))


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
            schema, self.action_space, agent_config(hyperparameters), seed=hyperparameters.seed
        )
        self.progress = Progress()
        self.checkpoint: Path | None = None
        self.skipped_checkpoints: list[str] = []  # unreadable checkpoints passed over when opening
        self.lock_timeout = LOCK_TIMEOUT  # seconds a writer waits for the one before it
        self.store = (
            ParquetExperienceStore(self.directory / "experiences", self.row_hashes) if self.directory is not None else None
        )
        self._lock = ExperimentLock(self.directory, self.lock_timeout) if self.directory is not None else None
        self._follow_latest = True  # re-read the latest checkpoint when starting to write (False: opened at a named one)
        self._stale = False  # a training call failed half-way: the agent in memory is not the one on disk
        self._metrics = MetricsWriter(self.directory / "tensorboard" if self.directory else None)

    # --- creating and opening -------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | Path | None, hyperparameters: Hyperparameters, schema: Schema) -> Experiment:
        """A new experiment; refuses a directory that already holds one."""
        experiment = cls(hyperparameters, schema, directory)
        if experiment.directory is not None:
            with experiment.writing(refresh=False):
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
        hyperparameters = load_hyperparameters(directory / "hyperparameters.json")
        schema = Schema.load(directory / "schema.json")
        experiment = cls(hyperparameters, schema, directory)
        experiment._follow_latest = checkpoint is None
        found = read_checkpoint(directory / "checkpoints", checkpoint, experiment.skipped_checkpoints)
        if found is not None:
            experiment._restore(*found)
        return experiment

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        """Take the agent, schema and progress of the checkpoint at `path`."""
        self.checkpoint = path
        self.schema = Schema.model_validate(state["schema"])
        self.agent.schema = self.schema
        self.agent.load_state_dict(state["agent"])
        self.progress = Progress(**state["progress"])
        if self.store is not None:
            self.store.refresh(self.progress.experience_parts)

    # --- writing: one writer at a time ----------------------------------------------------------
    @contextmanager
    def writing(self, *, refresh: bool = True) -> Iterator[Experiment]:
        """Hold the experiment's lock (waiting up to `lock_timeout` s for another writer); on first entry,
        with `refresh`, catch up with the latest checkpoint a writer before this one committed.
        Nested use is free; an experiment in memory has nothing to lock."""
        if self._lock is None:
            yield self
            return
        outermost = not self._lock.held
        if outermost:
            self._lock.timeout = self.lock_timeout
            self._lock.acquire()
        try:
            if outermost and refresh:
                self._catch_up()
            yield self
        finally:
            if outermost:
                self._lock.release()

    def _catch_up(self) -> None:
        """Re-read the latest checkpoint if another writer committed one since this experiment read its own."""
        directory = self.directory / "checkpoints"
        if not (self._follow_latest or self._stale):
            return
        pointer = directory / "latest"
        named = pointer.read_text().strip() if pointer.is_file() else None
        if not self._stale and self.checkpoint is not None and named == self.checkpoint.name and self.checkpoint.is_file():
            return
        if not self._stale and self.checkpoint is None and not checkpoint_files(directory):
            return
        name = None if self._follow_latest or self.checkpoint is None else str(self.checkpoint)
        skipped: list[str] = []
        found = read_checkpoint(directory, name, skipped)
        if found is not None and (self._stale or found[0] != self.checkpoint):
            self._restore(*found)
            self.skipped_checkpoints = skipped
        elif found is None and self._stale:  # nothing committed yet: start again from a fresh agent
            self.agent = agent_class(self.hyperparameters.agent_name)(
                self.schema, self.action_space, agent_config(self.hyperparameters), seed=self.hyperparameters.seed
            )
            self.progress = Progress()
            self.store.refresh([])
        self._stale = False

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

    def features(self, table: pd.DataFrame, *, source: str = "the table", freeze: bool = False) -> Features:
        """Encode the schema's columns. Numeric statistics unknown so far (no --schema-from at init) are frozen
        from `table` when `freeze` (the first training batch); until then those columns encode as 0."""
        if freeze and not self.schema.numeric_stats_known:
            numeric_matrix(table, self.schema.numeric_columns, source=source)  # names a bad row first
            self.schema = self.schema.with_numeric_stats(table)
            self.agent.schema = self.schema
            if self.directory is not None:
                self.schema.save(self.directory / "schema.json")
        return encode(table, self.schema, source=source)

    def _row_seeds(self, table: pd.DataFrame, seed: int | None, source: str) -> np.ndarray:
        return row_seeds(table, fresh_seed() if seed is None else int(seed), source=source)

    # --- training -------------------------------------------------------------------------------
    def experience_columns(self) -> list[str]:
        return [*self.schema.columns, *self.action_space.column_names(), *PREDICTION_COLUMNS, "reaction"]

    def train(self, experiences: pd.DataFrame, *, source: str = "experiences", allow_duplicates: bool = False) -> dict[str, float]:
        """Learn from an experience table (a prediction table plus `reaction`; `reward` if already computed),
        append it to the experience store and write a new checkpoint. Returns the update's metrics.

        Holds the experiment's lock throughout (waiting for another writer first, then training on top
        of its checkpoint). Rows already trained, or repeated in the table, are refused unless
        `allow_duplicates`."""
        with self.writing():
            committed = list(self.progress.experience_parts)
            try:
                return self._train(experiences, source=source, allow_duplicates=allow_duplicates)
            except BaseException:
                if self._stale and self.store is not None:  # failed after learning: forget the uncommitted part
                    self.store.refresh(committed)
                raise

    def _train(self, experiences: pd.DataFrame, *, source: str, allow_duplicates: bool) -> dict[str, float]:
        started = time.perf_counter()
        check_columns(experiences, self.experience_columns(), optional=["reward"], source=source)
        experiences = experiences.reset_index(drop=True)
        features = self.features(experiences, source=source, freeze=True)
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

        self._stale = True  # until the checkpoint is written, the agent in memory is ahead of the one on disk
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
        if self.store is not None:
            self.store.append(experiences.assign(reward=rewards), allow_duplicates=allow_duplicates, source=source)
            self.progress.experience_parts = list(self.store.parts)
        self._metrics.write(metrics, step=self.progress.examples)
        self.save_checkpoint()
        self._stale = False
        return metrics

    def _refuse_duplicates(self, experiences: pd.DataFrame, source: str) -> None:
        if self.store is not None:
            self.store.refuse_duplicates(experiences, source)
            return
        repeated = np.flatnonzero(pd.Series(self.row_hashes(experiences)).duplicated().to_numpy())
        if len(repeated):  # an experiment in memory keeps no experiences: only repeats within the table
            raise duplicates_error(repeated, len(experiences), source)

    def row_hashes(self, experiences: pd.DataFrame) -> np.ndarray:
        """(n,) uint64 key of each experience row, the same for a CSV and a Parquet copy (see `store.row_hashes`)."""
        return row_hashes(experiences, self.schema, self.action_space)

    def experiences(self) -> pd.DataFrame:
        """Every experience trained so far (the parts the current checkpoint lists), with rewards."""
        if self.store is None or not self.progress.experience_parts:
            return pd.DataFrame(columns=[*self.experience_columns(), "reward"])
        return self.store.read()

    def save_checkpoint(self) -> Path | None:
        """Write the next checkpoint and point `latest` at it. Its number is `progress.updates`, or one past
        the newest on disk when another checkpoint already has that number or a higher one (a run continued
        from an older checkpoint): a checkpoint is never overwritten by another line of training."""
        if self.directory is None:
            return None
        with self.writing(refresh=False):
            state = {
                "agent": self.agent.state_dict(),
                "schema": self.schema.model_dump(),
                "progress": self.progress.__dict__,
            }
            keep = self.hyperparameters.trainer.checkpoints_to_keep
            directory = self.directory / "checkpoints"
            number = self.progress.updates
            own = self.checkpoint.name if self.checkpoint is not None else None
            taken = [p for p in checkpoint_files(directory) if _number(p) >= number and p.name != own]
            if taken:
                number = max(_number(p) for p in taken) + 1
            self.checkpoint = write_checkpoint(directory, number, state, keep)
        return self.checkpoint

    def close(self) -> None:
        self._metrics.close()


def _number(checkpoint: Path) -> int:
    return int(checkpoint.stem.rsplit("-", 1)[1])


def describe(experiment: Experiment) -> dict[str, Any]:
    """A summary of an experiment: agent, schema, progress, checkpoints."""
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
