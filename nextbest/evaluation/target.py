"""Scoring the greedy policy against known best actions, and against the oracle where it is known.

An evaluation table holds the context columns plus `target_action` (or `target_action_0`, … for
several choice sets). Where the oracle is known (a simulator, an experiment with known outcomes),
it may also hold `expected_reward_<action>` for every action (`expected_reward_1_2` for the joint
action (1, 2)): the expected reward of each action in that context. Then the report adds the
policy's expected reward, the oracle's and a random policy's, and the regret; without
`target_action`, the target is the action with the highest expected reward.
`oracle_table(scenario, rows)` writes such a table from a built-in scenario.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nextbest.data.encoding import check_columns, numeric_matrix
from nextbest.envs import ContextualScenario, make_scenario
from nextbest.evaluation.logs import action_labels, per_action_columns
from nextbest.training.experiment import Experiment

ORACLE_PREFIX = "expected_reward_"


def evaluate_targets(experiment: Experiment, table: pd.DataFrame, *, source: str = "evaluation") -> dict[str, Any]:
    """Accuracy of the greedy policy against the target action: overall (all choices right), per choice
    set, and per action; with `expected_reward_<action>` columns also expected reward and regret."""
    space = experiment.action_space
    target_columns = space.column_names("target_action")
    oracle_columns = [ORACLE_PREFIX + label for label in action_labels(space)]
    has_oracle = any(str(c).startswith(ORACLE_PREFIX) for c in table.columns)
    has_target = any(c in table.columns for c in target_columns) or not has_oracle
    required = [*experiment.schema.columns, *(target_columns if has_target else [])]
    check_columns(table, required, optional=oracle_columns if has_oracle else (), source=source)
    table = table.reset_index(drop=True)
    expected = None
    if has_oracle:
        per_action_columns(table, ORACLE_PREFIX, space, source)  # every action present, names checked
        expected = numeric_matrix(table, oracle_columns, source=source)
    target = space.to_joint(space.read(table, prefix="target_action", source=source)) if has_target else expected.argmax(axis=1)
    contexts = table[experiment.schema.columns]
    chosen = space.to_joint(space.read(experiment.predict(contexts, seed=0, greedy=True, source=source)))
    right = chosen == target

    per_action = []
    for action in np.union1d(target, chosen):
        rows = target == action
        entry = {"target_action": _label(space, action), "rows": int(rows.sum()),
                 "accuracy": float(right[rows].mean()) if rows.any() else None, "chosen": int((chosen == action).sum())}
        if expected is not None and rows.any():
            entry |= {"expected_reward": float(expected[rows, chosen[rows]].mean()),
                      "oracle_reward": float(expected[rows].max(axis=1).mean()),
                      "regret": float((expected[rows].max(axis=1) - expected[rows, chosen[rows]]).mean())}
        per_action.append(entry)
    result: dict[str, Any] = {"rows": len(table), "accuracy": float(right.mean()), "per_action": per_action}
    if space.n_choices > 1:
        result["per_choice_accuracy"] = (space.from_joint(chosen) == space.from_joint(target)).mean(axis=0).tolist()
    if expected is not None:
        seeds = np.arange(len(table), dtype=np.int64)
        exploring = experiment.agent.probabilities(experiment.features(contexts, source=source), seeds)
        result["expected_reward"] = oracle_summary(expected, chosen, exploring)
    return result


def oracle_summary(expected: np.ndarray, chosen: np.ndarray, exploring: np.ndarray | None = None) -> dict[str, float]:
    """Expected reward per decision of the greedy policy (`chosen`, (n,)), of the exploring policy
    (probabilities (n, k)), of the oracle and of uniformly random actions, from (n, k) `expected`."""
    n = len(chosen)
    policy = float(expected[np.arange(n), chosen].mean())
    oracle, random = float(expected.max(axis=1).mean()), float(expected.mean())
    out = {
        "policy": policy,
        "oracle": oracle,
        "random": random,
        "regret": oracle - policy,
        "normalized_score": (policy - random) / (oracle - random) if oracle > random else 1.0,
    }
    if exploring is not None:
        out["exploring"] = float((exploring * expected).sum(axis=1).mean())
    return out


def oracle_table(scenario: str | ContextualScenario, rows: int, seed: int = 0) -> pd.DataFrame:
    """An evaluation table drawn from a built-in scenario: contexts, the best action(s) and every action's
    expected reward under the scenario's reward."""
    world = make_scenario(scenario) if isinstance(scenario, str) else scenario
    contexts = world.sample_contexts(rows, np.random.default_rng([seed, 2]))
    expected = world.expected_rewards(contexts)
    table = contexts.copy()
    world.actions.write(table, world.actions.from_joint(expected.argmax(axis=1)), prefix="target_action")
    for j, label in enumerate(action_labels(world.actions)):
        table[ORACLE_PREFIX + label] = expected[:, j]
    return table


def _label(space: Any, action: int) -> int | list[int]:
    return int(action) if space.n_choices == 1 else space.from_joint(np.array([action]))[0].tolist()
