"""What an experiment did, batch by batch, from its experience store; regret where the oracle is known.

Each training call stored one experience part; a part is a batch here. With a scenario (the
experiment was simulated), the oracle gives the expected reward of the actions actually taken,
so the regret of the exploring decisions is exact rather than a noisy realized reward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.data.tables import read_table
from nextbest.envs import ContextualScenario
from nextbest.evaluation.logs import action_labels
from nextbest.training.experiment import Experiment


@dataclass
class History:
    """B batches: examples trained after each (B,), rows (B,), realized mean reward (B,), the count of every
    joint action (B, n_actions); with an oracle the expected reward of the actions taken, of the best
    actions and of random ones, per decision (B,)."""

    examples: np.ndarray
    rows: np.ndarray
    mean_reward: np.ndarray
    action_counts: np.ndarray
    action_labels: list[str]
    expected_reward: np.ndarray | None = None
    oracle: np.ndarray | None = None
    random: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def regret(self) -> np.ndarray | None:
        """(B,) expected regret per decision of the exploring actions: oracle − expected reward."""
        return None if self.oracle is None else self.oracle - self.expected_reward

    @property
    def cumulative_regret(self) -> np.ndarray | None:
        """(B,) expected reward lost to the oracle over all decisions so far."""
        return None if self.regret is None else np.cumsum(self.regret * self.rows)


def experience_history(experiment: Experiment, scenario: ContextualScenario | None = None) -> History:
    """One entry per stored experience part of the experiment's current checkpoint."""
    space = experiment.action_space
    rows, rewards, counts, expected, oracle, random = [], [], [], [], [], []
    for name in experiment.progress.experience_parts:
        part = read_table(experiment.directory / "experiences" / name)
        joint = space.to_joint(space.read(part, source=name))
        rows.append(len(part))
        rewards.append(float(part["reward"].mean()))
        counts.append(np.bincount(joint, minlength=space.n_joint))
        if scenario is not None:
            q = scenario.expected_rewards(part[experiment.schema.columns])
            expected.append(float(q[np.arange(len(joint)), joint].mean()))
            oracle.append(float(q.max(axis=1).mean()))
            random.append(float(q.mean()))
    known = scenario is not None and bool(rows)
    return History(
        examples=np.cumsum(rows, dtype=np.int64),
        rows=np.asarray(rows, dtype=np.int64),
        mean_reward=np.asarray(rewards),
        action_counts=np.asarray(counts, dtype=np.int64).reshape(len(rows), space.n_joint),
        action_labels=action_labels(space),
        expected_reward=np.asarray(expected) if known else None,
        oracle=np.asarray(oracle) if known else None,
        random=np.asarray(random) if known else None,
    )
