"""Choosing an agent and its settings: trials drawn from each agent's search space, scored batch after batch.

    trials = plan_trials(["neural", "linucb"], num_samples=16, seed=0)       # agents in turn, settings drawn
    objective = ScenarioObjective("optimus-poc", examples=3000, batch_size=500)
    results = run_serial(trials, objective)                                  # every trial to the end, one after another
    best = best_trial(results); best.hyperparameters()                       # → best.json, for `nextbest init`

A trial reports its score after every batch (`report(batch, score)`), so that a scheduler may stop it early
(nextbest.scale.tune: Ray Tune with ASHA). The score is the normalized score against the scenario's oracle, or,
with `LogsObjective`, the doubly robust estimate of the greedy policy's reward per decision on held-out logged rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nextbest.agents import agent_class
from nextbest.agents.search import sample_settings
from nextbest.agents.settings import build_hyperparameters
from nextbest.data.actions import ActionSpace
from nextbest.errors import ConfigError, DataError
from nextbest.evaluation.logs import infer_schema, logged_action_columns, read_logs
from nextbest.evaluation.ope import fit_expected_reward, off_policy_evaluation
from nextbest.training.experiment import Experiment
from nextbest.training.simulate import simulate

Report = Callable[[int, float], None]


@dataclass(frozen=True)
class Trial:
    index: int
    agent: str
    settings: dict[str, Any]


@dataclass
class TrialResult:
    index: int
    agent: str
    settings: dict[str, Any]
    scores: list[float] = field(default_factory=list)  # after batch 0 (untrained), 1, 2, …
    seconds: float = 0.0
    complete: bool = True  # False: stopped early by the scheduler

    @property
    def score(self) -> float:
        return self.scores[-1]

    def hyperparameters(self) -> dict[str, Any]:
        """What `nextbest init --hyperparameters` takes: the agent and its settings."""
        return {"agent_name": self.agent, "agent": self.settings}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"score": self.score, "batches": len(self.scores) - 1}


def plan_trials(agents: list[str], num_samples: int, seed: int = 0) -> list[Trial]:
    """`num_samples` trials, the agents in turn, each trial's settings drawn from its agent's search space."""
    if num_samples < 1:
        raise ConfigError(f"--num-samples {num_samples}: expected at least 1 trial")
    if not agents:
        raise ConfigError("--agents: expected at least one agent, e.g. neural,linucb")
    spaces = {name: agent_class(name).Config.search_space for name in agents}
    return [
        Trial(k, agents[k % len(agents)], sample_settings(spaces[agents[k % len(agents)]], np.random.default_rng([seed, k])))
        for k in range(num_samples)
    ]


@dataclass
class ScenarioObjective:
    """The normalized score against the scenario's oracle after each batch (what `nextbest simulate` prints)."""

    scenario: str
    examples: int = 3000
    batch_size: int = 500
    seed: int = 0

    @property
    def batches(self) -> int:
        return -(-self.examples // self.batch_size)

    def __call__(self, trial: Trial, report: Report) -> None:
        simulate(self.scenario, trial.agent, examples=self.examples, batch_size=self.batch_size, seed=self.seed,
                 hyperparameters={"agent": trial.settings}, on_batch=lambda b: report(b.batch, b.normalized_score))


@dataclass
class LogsObjective:
    """Train on the first rows of logged data, batch after batch, and after each batch estimate the greedy policy's
    reward per decision on the held-out rows with the doubly robust estimator (its reward model fitted once)."""

    logs: pd.DataFrame
    examples: int = 3000
    batch_size: int = 500
    seed: int = 0
    holdout: float = 0.3
    source: str = "logs"
    action_space: ActionSpace = field(init=False)
    expected_reward: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        table = self.logs.sample(frac=1.0, random_state=self.seed).reset_index(drop=True)
        n_test = int(round(len(table) * self.holdout))
        if n_test < 10 or len(table) - n_test < 1:
            raise DataError(f"{self.source}: {len(table)} rows; expected at least 34 to train on and hold out")
        actions = logged_action_columns(table, self.source)
        self.action_space = ActionSpace(tuple(int(pd.to_numeric(table[c], errors="coerce").max()) + 1 for c in actions))
        self.train, self.test = table.iloc[n_test:].reset_index(drop=True), table.iloc[:n_test].reset_index(drop=True)
        self.schema = infer_schema(table, self.action_space, None, [], self.source)
        if self.schema is None:
            raise DataError(f"{self.source}: no context columns besides action, reward and probabilities")
        self.schema = self.schema.with_numeric_stats(table) if self.schema.numeric_columns else self.schema
        self.held_out = read_logs(self.test, self.action_space, source=self.source, schema=self.schema)
        self.expected_reward = fit_expected_reward(self.held_out, seed=self.seed)
        self.logged = read_logs(self.train, self.action_space, source=self.source, schema=self.schema)

    @property
    def batches(self) -> int:
        return -(-min(self.examples, len(self.train)) // self.batch_size)

    def __call__(self, trial: Trial, report: Report) -> None:
        hp = build_hyperparameters(trial.agent, {"agent": trial.settings}, action_space=list(self.action_space.sizes),
                                   columns=self.schema.columns, categorical_columns=self.schema.categorical_columns, seed=self.seed)
        experiment = Experiment(hp, self.schema)
        report(0, self.value(experiment))
        for batch, start in enumerate(range(0, min(self.examples, len(self.train)), self.batch_size), start=1):
            rows = slice(start, min(start + self.batch_size, self.examples, len(self.train)))
            table = self.train.iloc[rows][self.schema.columns].reset_index(drop=True)
            self.action_space.write(table, self.action_space.from_joint(self.logged.action[rows]))
            table["value"] = 0.0
            table["log_probability"] = np.log(self.logged.logging_probability[rows])
            table["done"] = 1
            table["attentive_transformer_loss"] = 0.0
            table["prediction_seed"] = np.arange(rows.start, rows.stop)
            table["reaction"] = table["reward"] = self.logged.reward[rows]
            experiment.train(table, source=self.source, allow_duplicates=True)
            report(batch, self.value(experiment))

    def value(self, experiment: Experiment) -> float:
        """The doubly robust estimate of the greedy policy's reward per decision on the held-out rows."""
        seeds = np.arange(len(self.held_out), dtype=np.int64)
        target = experiment.agent.probabilities(self.held_out.features, seeds, greedy=True)
        result = off_policy_evaluation(self.held_out, target, estimators=["dr"], expected_reward=self.expected_reward,
                                       interval="normal", seed=self.seed)
        return float(result.estimates["dr"].estimate)


Objective = Callable[[Trial, Report], None]


def run_trial(trial: Trial, objective: Objective) -> TrialResult:
    """One trial to the end, here."""
    result = TrialResult(trial.index, trial.agent, trial.settings)
    started = time.perf_counter()
    objective(trial, lambda batch, score: result.scores.append(float(score)))
    result.seconds = time.perf_counter() - started
    return result


def run_serial(trials: list[Trial], objective: Objective, on_trial: Callable[[TrialResult], None] | None = None) -> list[TrialResult]:
    """Every trial to the end, one after the other, in this process."""
    results = []
    for trial in trials:
        results.append(run_trial(trial, objective))
        if on_trial:
            on_trial(results[-1])
    return results


def best_trial(results: list[TrialResult]) -> TrialResult:
    """The highest final score among the trials that ran to the end (early-stopped ones saw fewer examples)."""
    complete = [r for r in results if r.complete] or results
    return max(complete, key=lambda r: (r.score, -r.index))
