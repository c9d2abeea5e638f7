"""The learner: joins decisions with reactions and trains on each joined event exactly once.

    learner = Learner("offers", Path("runs/offers"), store, settings)
    learner.step()                       # expire waits; train a round if one is due → metrics or None
    learner.run(stop_event)              # what `nextbest serve` runs in a thread, `nextbest learn` alone

A round takes the joined, untrained events in join order, trains on them through
`Experiment.train` (the code path of `nextbest train`), which writes a checkpoint, and then marks the
events trained and records that checkpoint in one database transaction. The learner always opens the
checkpoint the database names, so a learner killed between the two resumes from the round before
and trains the same events once more; a checkpoint written by the killed round is never built on.
The learner holds the experiment's lock while it lives: it is the experiment's one writer. It refuses
to start (LearnerRefused) when that checkpoint cannot be read: any other would train events twice or never.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.checkpoints import load_state
from nextbest.config import ServingConfig
from nextbest.data.actions import ActionSpace
from nextbest.errors import ExperimentError
from nextbest.rewards import Reward
from nextbest.serving.events import EventStore
from nextbest.training.experiment import Experiment

log = logging.getLogger("nextbest.learner")


class LearnerRefused(ExperimentError):
    """The checkpoint that the event store names as holding every trained event is missing or unreadable."""


class Learner:
    def __init__(self, name: str, directory: Path, store: EventStore, settings: ServingConfig):
        self.name, self.directory, self.store, self.settings = name, Path(directory), store, settings
        self.experiment: Experiment | None = None
        self.refused: str | None = None  # why `run` stopped for good (LearnerRefused), else None
        self.lock_timeout = 1.0  # seconds to wait for the experiment's lock before standing by
        self._writing = ExitStack()
        self.last_round_at = time.monotonic()
        self.last_metrics: dict[str, float] = {}

    def open(self) -> Experiment:
        """Take the experiment's lock and open the checkpoint the database names (round 0: the latest one
        when the learner first started, written now if there was none). LearnerRefused if it cannot be read."""
        state = self.store.learner_state(self.name)
        if state["checkpoint"] is not None:
            self._check_resumable(state)
        experiment = Experiment.open(self.directory, checkpoint=state["checkpoint"])
        experiment.lock_timeout = self.lock_timeout
        self._writing.enter_context(experiment.writing())  # held until close(), by this thread: the one writer
        if state["checkpoint"] is None:  # the first start: the model to begin from is round 0
            if experiment.checkpoint is None:
                experiment.save_checkpoint()
            self.store.begin_learner(self.name, experiment.checkpoint.name)
        self.experiment = experiment
        return experiment

    def _check_resumable(self, state: dict[str, Any]) -> None:
        try:
            load_state(self.directory / "checkpoints" / state["checkpoint"])
        except ExperimentError as error:
            raise LearnerRefused(
                f"the learner of {self.name!r} cannot resume: {error}. The event store names {state['checkpoint']} (round "
                f"{state['round']}) as the model that holds the {state['trained']} events trained so far; resuming from "
                "any other would train some events twice or never. Restore that file (from a backup) and start the "
                "learner again; serving goes on meanwhile with the newest checkpoint it can read") from None

    def step(self, now: float | None = None) -> dict[str, float] | None:
        """Expire the waits that have passed; train one round if enough events joined (`learner_batch_size`)
        or the interval passed with any joined. → the round's metrics, or None when none was due."""
        s = self.settings
        self.store.expire(self.name, wait_seconds=s.reward_wait_seconds, now=now)
        if s.mode == "logging":
            return None
        rows = self.store.to_train(self.name, limit=s.learner_batch_size)
        due = len(rows) >= s.learner_batch_size or (rows and time.monotonic() - self.last_round_at >= s.learner_interval_seconds)
        if not due:
            return None
        experiment = self.experiment or self.open()
        table = with_rewards(experience_table(rows, experiment.schema.columns, experiment.action_space), experiment.reward,
                             s.default_reward)
        metrics = experiment.train(table, source=f"events of {self.name}", allow_duplicates=True)
        state = self.store.learner_state(self.name)
        self.store.commit_round(self.name, [r.event_id for r in rows], state["round"] + 1, experiment.checkpoint.name,
                                metrics)
        self.last_round_at = time.monotonic()
        self.last_metrics = metrics
        return metrics

    def run(self, stop: threading.Event, poll_seconds: float = 0.5) -> None:
        """Open, then step until `stop` is set, in the calling thread (which then holds the experiment's lock).
        While another learner holds the lock this one stands by; an error in a round is logged and the
        round tried again (its events stay untrained until a round commits). A LearnerRefused is logged, kept
        in `refused`, and ends the run."""
        try:
            while not stop.is_set() and self.experiment is None:
                try:
                    self.open()
                except LearnerRefused as error:
                    self.refused = str(error)
                    log.error("%s", error)
                    return
                except ExperimentError as error:  # another writer (or the database is down): stand by
                    log.info("learner for %s waiting: %s", self.name, error)
                    stop.wait(self.lock_timeout)
            while not stop.is_set():
                trained = None
                try:
                    trained = self.step()
                except Exception:
                    log.exception("learner for %s: the round failed; trying again", self.name)
                    stop.wait(5.0)
                if trained is None:  # after a round, the next one at once: a backlog trains at full speed
                    stop.wait(poll_seconds)
        finally:
            self.close()

    def close(self) -> None:
        """Release the lock (from the thread that took it) and the experiment."""
        self._writing.close()
        if self.experiment is not None:
            self.experiment.close()
            self.experiment = None


def with_rewards(table: pd.DataFrame, reward: Reward, default_reward: float) -> pd.DataFrame:
    """`reward` from each `reaction` by the experiment's reward; `default_reward` (and that reaction) where none came."""
    reaction = table["reaction"]
    rewards = reward.calculate_reward(reward.action_space.read(table), reaction.fillna(0.0).to_numpy())
    return table.assign(reward=np.where(reaction.isna(), default_reward, rewards), reaction=reaction.fillna(default_reward))


def experience_table(rows: list[Any], columns: list[str], action_space: ActionSpace, *, extra: bool = False) -> pd.DataFrame:
    """Stored events → an experience table (the columns `nextbest train` and `nextbest ope` read); `reaction`
    is NaN where none came. With `extra`, also event_id, probability, checkpoint, mode and the timestamps."""
    contexts = pd.DataFrame([json.loads(r.context) for r in rows], columns=columns)
    table = contexts.reset_index(drop=True)
    action_space.write(table, np.array([json.loads(r.action) for r in rows], dtype=np.int64).reshape(len(rows), -1))
    table["value"] = [r.value for r in rows]
    table["log_probability"] = [r.log_probability for r in rows]
    table["done"] = np.ones(len(rows), dtype=np.int8)
    table["attentive_transformer_loss"] = 0.0
    table["prediction_seed"] = np.array([r.prediction_seed for r in rows], dtype=np.int64)
    table["reaction"] = np.array([np.nan if r.reaction is None else r.reaction for r in rows], dtype=float)
    if extra:
        table["event_id"] = [r.event_id for r in rows]
        table["probability"] = table["logging_probability"] = [r.probability for r in rows]  # `nextbest ope` reads the latter
        table["checkpoint"] = [r.checkpoint for r in rows]
        table["mode"] = [r.mode for r in rows]
        for name in ("decided_at", "activated_at", "reaction_at", "joined_at"):
            table[name] = pd.to_datetime([getattr(r, name) for r in rows], unit="s", utc=True)
    return table
