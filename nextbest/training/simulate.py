"""The whole loop against a simulated scenario: predict → react → train, batch after batch.

After every batch the greedy policy is scored on fresh held-out customers by the scenario's
oracle: normalized score = (agent − random) / (oracle − random), 1 being the best possible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.agents import DEFAULT_AGENT
from nextbest.agents.settings import build_hyperparameters
from nextbest.envs import ContextualScenario, make_scenario
from nextbest.errors import ConfigError
from nextbest.training.experiment import Experiment

TARGET_SCORE = 0.95


@dataclass
class BatchResult:
    batch: int
    examples: int
    mean_reward: float | None  # reward of the exploring actions taken in this batch
    oracle: float  # expected reward per customer on the held-out set
    random: float
    agent: float
    normalized_score: float
    seconds: float  # wall time since the start


@dataclass
class SimulationResult:
    scenario: str
    agent: str
    seed: int
    batch_size: int
    batches: list[BatchResult] = field(default_factory=list)

    @property
    def final_score(self) -> float:
        return self.batches[-1].normalized_score

    def examples_to(self, score: float = TARGET_SCORE) -> int | None:
        """Examples seen when the normalized score first reached `score` (None if never)."""
        return next((b.examples for b in self.batches if b.normalized_score >= score), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "agent": self.agent,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "examples": self.batches[-1].examples,
            "final_normalized_score": self.final_score,
            f"examples_to_{TARGET_SCORE}": self.examples_to(),
            "seconds": self.batches[-1].seconds,
            "batches": [asdict(b) for b in self.batches],
        }


def scenario_experiment(
    scenario: str | ContextualScenario,
    agent: str = DEFAULT_AGENT,
    directory: str | Path | None = None,
    *,
    hyperparameters: str | Path | dict | None = None,
    seed: int = 0,
) -> Experiment:
    """A new experiment (in `directory`, or in memory) whose columns, action space and reward are the
    scenario's: what `simulate` plays in-process, and what a server serves for `simulate --server`."""
    world = make_scenario(scenario) if isinstance(scenario, str) else scenario
    hp = build_hyperparameters(
        agent,
        hyperparameters,
        action_space=list(world.sizes),
        columns=world.columns,
        categorical_columns=list(world.categorical),
        reward_name=world.reward_config.reward_name,
        action_costs=world.reward_config.action_costs,
        seed=seed,
    )
    return Experiment.create(directory, hp, world.schema(hp.data.numeric_encoding))


def simulate(
    scenario: str | ContextualScenario,
    agent: str = DEFAULT_AGENT,
    *,
    examples: int = 3000,
    batch_size: int = 500,
    seed: int = 0,
    hyperparameters: str | Path | dict | None = None,
    experiment_dir: str | Path | None = None,
    contexts: Callable[[int, np.random.Generator], pd.DataFrame] | None = None,
    on_batch: Callable[[BatchResult], None] | None = None,
    experiment: Experiment | None = None,
) -> SimulationResult:
    """Run `examples` decisions in batches of `batch_size` and score the agent after each batch.

    `contexts(n, rng)` replaces the scenario's customer draws (e.g. a fitted generator's samples).
    `experiment` continues one made for the scenario (`scenario_experiment`, then e.g. pretrained) instead of
    starting a new one; its first score is then the one before any live data."""
    if examples < 1 or batch_size < 1:
        raise ConfigError(f"examples and batch size must be positive, got {examples} and {batch_size}")
    world = make_scenario(scenario) if isinstance(scenario, str) else scenario
    draw = contexts or world.sample_contexts
    if experiment is None:
        experiment = scenario_experiment(world, agent, experiment_dir, hyperparameters=hyperparameters, seed=seed)
    hp = experiment.hyperparameters
    with experiment.writing():  # the one writer of its directory until the run ends
        rng = np.random.default_rng(seed)
        held_out = draw(hp.trainer.evaluation_rows, np.random.default_rng([seed, 1]))
        expected = world.expected_rewards(held_out)
        oracle, random = float(expected.max(axis=1).mean()), float(expected.mean())
        result = SimulationResult(world.name, agent, seed, batch_size)
        started = time.perf_counter()

        def score(batch: int, mean_reward: float | None) -> None:
            greedy = experiment.predict(held_out, seed=0, greedy=True, source="held-out contexts")
            joint = experiment.action_space.to_joint(experiment.action_space.read(greedy))
            value = float(expected[np.arange(len(joint)), joint].mean())
            record = BatchResult(
                batch, experiment.progress.examples, mean_reward, oracle, random, value,
                (value - random) / (oracle - random) if oracle > random else 1.0, time.perf_counter() - started,
            )
            result.batches.append(record)
            if on_batch:
                on_batch(record)

        score(0, None)
        batch = 0
        while experiment.progress.examples < examples:
            batch += 1
            customers = draw(min(batch_size, examples - experiment.progress.examples), rng)
            predictions = experiment.predict(customers, seed=int(rng.integers(2**31)), source=f"batch {batch}")
            actions = experiment.action_space.read(predictions)
            predictions["reaction"] = world.sample_reactions(customers, actions, rng)
            metrics = experiment.train(predictions, source=f"batch {batch}", allow_duplicates=True)
            score(batch, metrics["reward/mean"])
    experiment.close()
    return result
