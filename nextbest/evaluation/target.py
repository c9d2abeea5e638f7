"""Scoring against known best actions (an evaluation table: context columns plus `target_action`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nextbest.data.encoding import check_columns
from nextbest.training.experiment import Experiment


def evaluate_targets(experiment: Experiment, table: pd.DataFrame, *, source: str = "evaluation") -> dict[str, Any]:
    """Accuracy of the greedy policy against `target_action` (or `target_action_0`, …): overall (all
    choices right), per choice set, and per target action with its count."""
    space = experiment.action_space
    target_columns = space.column_names("target_action")
    check_columns(table, [*experiment.schema.columns, *target_columns], source=source)
    targets = space.read(table, prefix="target_action", source=source)
    predicted = space.read(experiment.predict(table[experiment.schema.columns], seed=0, greedy=True, source=source))
    correct = predicted == targets
    joint_target = space.to_joint(targets)
    joint_correct = correct.all(axis=1)
    per_action = []
    for action in np.unique(joint_target):
        rows = joint_target == action
        label = int(action) if space.n_choices == 1 else space.from_joint(np.array([action]))[0].tolist()
        per_action.append({"target_action": label, "rows": int(rows.sum()), "accuracy": float(joint_correct[rows].mean())})
    result: dict[str, Any] = {"rows": len(table), "accuracy": float(joint_correct.mean()), "per_action": per_action}
    if space.n_choices > 1:
        result["per_choice_accuracy"] = correct.mean(axis=0).tolist()
    return result
