"""Pretraining from history: a bandit learns from it directly; PPO practises on a reward model (the Optimus workflow).

    result = pretrain(Experiment.open("runs/shop"), read_table("history.csv"), steps=200)

1. The history — context columns, the historical `action` (or `action_0`, …) and `outcome`,
   optionally `logging_probability` and `prediction_seed` — is checked row by row. It is the first
   training data: numeric statistics not known yet are taken from it.
2. A reward model (`nextbest.simulators.reward_models`) learns the expected outcome of every
   action in every context; its held-out check says whether it beats predicting the average, and
   it scores the pretrained greedy policy.
3. A bandit (every agent that estimates each action's reward) learns from the history once, as it
   is: the historical actions and the rewards their outcomes earned are logged bandit data, exactly
   what it learns from live (`steps` does not apply). A PPO agent, whose update needs actions drawn
   from its own policy, practises instead: for `steps` rounds it acts on a batch of history contexts
   and learns from the reward the model expects for what it chose (noise-free). Row i's draws at
   step t come from its `prediction_seed` and t when the history has that column, so a pretraining
   run is reproducible from the table alone.

Each step counts as an update of the experiment (checkpoints every `trainer.checkpoint_every`
steps and at the end, the newest `checkpoints_to_keep` kept), not as live examples: PPO's
learning-rate schedule, counted in live examples, starts when real customers arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nextbest.agents.base import Experience
from nextbest.data.encoding import Features, check_columns, numeric_column
from nextbest.errors import ConfigError, SchemaError
from nextbest.simulators.reward_models import RewardModel, fit_reward_model
from nextbest.tensorboard import MetricsWriter
from nextbest.training.experiment import Experiment


@dataclass
class History:
    features: Features
    actions: np.ndarray  # (n, n_choices)
    outcomes: np.ndarray  # (n,)
    logging_probability: np.ndarray | None  # (n,)
    prediction_seed: np.ndarray | None  # (n,)


@dataclass
class PretrainResult:
    reward_model_check: dict[str, Any]
    method: str  # "history": learned from the history directly; "reward model": practised against it
    steps: int  # simulated updates (0 when learned from the history directly)
    updates: int  # the experiment's update count afterwards
    history_rows: int
    history_mean_reward: float  # what the historical actions earned
    model_reward_greedy: float  # what the pretrained greedy policy earns according to the reward model
    model_reward_best: float  # the best any policy earns according to the reward model
    metrics: list[dict[str, float]] = field(default_factory=list)
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items()}


def read_history(experiment: Experiment, table: pd.DataFrame, *, source: str = "history") -> History:
    """Validate a history table against the experiment's schema and action space."""
    space = experiment.action_space
    check_columns(table, [*experiment.schema.columns, *space.column_names(), "outcome"],
                  optional=["logging_probability", "prediction_seed"], source=source)
    table = table.reset_index(drop=True)
    features = experiment.features(table, source=source, freeze=True)  # history is training data
    actions = space.read(table, source=source)
    outcomes = numeric_column(table["outcome"], "outcome", source=source)
    logging = None
    if "logging_probability" in table.columns:
        logging = numeric_column(table["logging_probability"], "logging_probability", source=source)
        bad = (logging <= 0) | (logging > 1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SchemaError(f"{source}: column 'logging_probability' has {logging[row]:g} in row {row + 1}; "
                              f"expected a probability in (0, 1]")
    seeds = None
    if "prediction_seed" in table.columns:
        values = numeric_column(table["prediction_seed"], "prediction_seed", source=source)
        if (values != np.round(values)).any():
            row = int(np.flatnonzero(values != np.round(values))[0]) + 1
            raise SchemaError(f"{source}: column 'prediction_seed' is not an integer in row {row}")
        seeds = values.astype(np.int64)
    return History(features, actions, outcomes, logging, seeds)


def pretrain(
    experiment: Experiment,
    history: pd.DataFrame,
    *,
    steps: int = 200,
    batch_size: int = 500,
    reward_model: str | RewardModel = "neural",
    held_out: float = 0.2,
    seed: int | None = None,
    source: str = "history",
    on_model: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> PretrainResult:
    """Fit `reward_model` on `history`, then run `steps` simulated updates of `batch_size` contexts.

    `on_model(check)` runs once the reward model is fitted, `on_step(metrics)` after every step.
    Holds the experiment's lock throughout (see `Experiment.writing`), starting from its latest checkpoint."""
    with experiment.writing():
        return _pretrain(experiment, history, steps=steps, batch_size=batch_size, reward_model=reward_model,
                         held_out=held_out, seed=seed, source=source, on_model=on_model, on_step=on_step)


def _pretrain(
    experiment: Experiment,
    history: pd.DataFrame,
    *,
    steps: int,
    batch_size: int,
    reward_model: str | RewardModel,
    held_out: float,
    seed: int | None,
    source: str,
    on_model: Callable[[dict[str, Any]], None] | None,
    on_step: Callable[[dict[str, float]], None] | None,
) -> PretrainResult:
    if steps < 0 or batch_size < 1:
        raise ConfigError(f"steps must be ≥ 0 and batch size positive, got {steps} and {batch_size}")
    data = read_history(experiment, history, source=source)
    seed = experiment.hyperparameters.seed if seed is None else seed
    weights = None if data.logging_probability is None else 1.0 / data.logging_probability
    space = experiment.action_space
    model, check = fit_reward_model(reward_model, data.features, space.to_joint(data.actions), data.outcomes,
                                    space.n_joint, weights=weights, held_out=held_out, seed=seed)
    if on_model is not None:
        on_model(check)
    # Expected reward of every joint action in every history context, under the experiment's reward.
    expected = experiment.reward.expected_reward(model.predict(data.features))

    agent, progress = experiment.agent, experiment.progress
    if learns_from_history(agent):
        rewards = experiment.reward.calculate_reward(data.actions, data.outcomes)
        logged = (np.log(data.logging_probability) if data.logging_probability is not None
                  else np.full(len(rewards), -np.log(space.n_joint)))  # not used by the bandits' updates
        started = time.perf_counter()
        metrics = agent.update(Experience(features=data.features, action=data.actions, reward=rewards, log_probability=logged))
        progress.updates += 1
        metrics = {"reward/history_mean": float(rewards.mean()), **metrics, "seconds": time.perf_counter() - started}
        progress.last_metrics = metrics
        if on_step is not None:
            on_step(metrics)
        return _result(experiment, data, expected, check, "history", 0, [metrics])
    learn = agent.pretrain_update  # PPO keeps its live counters and schedule for live data
    rng = np.random.default_rng([seed, progress.updates])
    every = experiment.hyperparameters.trainer.checkpoint_every
    writer = MetricsWriter(experiment.directory / "tensorboard" / "pretrain" if experiment.directory else None)
    n, metrics_log = len(data.outcomes), []
    started = time.perf_counter()
    try:
        for step in range(1, steps + 1):
            rows = rng.choice(n, size=min(batch_size, n), replace=False)
            if data.prediction_seed is not None:
                seeds = data.prediction_seed[rows] + np.int64(progress.updates) * 1_000_003
            else:
                seeds = rng.integers(0, 2**62, size=len(rows))
            features = data.features.take(rows)
            prediction = agent.act(features, seeds)
            joint = experiment.action_space.to_joint(prediction.action)
            reward = expected[rows, joint]
            metrics = learn(Experience(features=features, action=prediction.action, reward=reward,
                                       log_probability=prediction.log_probability, value=prediction.value))
            progress.updates += 1
            metrics = {"reward/model_mean": float(reward.mean()), **metrics, "seconds": time.perf_counter() - started}
            progress.last_metrics = metrics
            metrics_log.append(metrics)
            writer.write(metrics, step=progress.updates)
            if step % every == 0 and step < steps:
                experiment.save_checkpoint()
            if on_step is not None:
                on_step(metrics)
    finally:
        writer.close()
    return _result(experiment, data, expected, check, "reward model", steps, metrics_log)


def learns_from_history(agent: Any) -> bool:
    """Whether `agent` pretrains on the history directly (a bandit) rather than against a reward model (PPO,
    whose update needs actions drawn from its own policy: it has `pretrain_update`)."""
    return not hasattr(agent, "pretrain_update")


def _result(experiment: Experiment, data: History, expected: np.ndarray, check: dict[str, Any], method: str,
            steps: int, metrics: list[dict[str, float]]) -> PretrainResult:
    """Checkpoint the pretrained agent; score its greedy policy on the history by the reward model."""
    experiment.save_checkpoint()
    n = len(data.outcomes)
    greedy = experiment.action_space.to_joint(
        experiment.agent.act(data.features, np.zeros(n, dtype=np.int64), greedy=True).action)
    return PretrainResult(
        reward_model_check=check,
        method=method,
        steps=steps,
        updates=experiment.progress.updates,
        history_rows=n,
        history_mean_reward=float(experiment.reward.calculate_reward(data.actions, data.outcomes).mean()),
        model_reward_greedy=float(expected[np.arange(n), greedy].mean()),
        model_reward_best=float(expected.max(axis=1).mean()),
        metrics=metrics,
        checkpoint=experiment.checkpoint.name if experiment.checkpoint else None,
    )
