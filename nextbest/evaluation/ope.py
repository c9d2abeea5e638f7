"""Off-policy evaluation of a target policy on logs: every estimator, one cross-fitted reward model.

    logs = read_logs(table, ActionSpace((16,)))
    result = off_policy_evaluation(logs, target_probability, estimators=["ips", "dr"])
    result.to_dict()  # {"logging_policy": {...}, "estimators": {"ips": {"estimate", "ci_low", ...}}}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextbest.evaluation.estimators import (
    Estimate,
    Interval,
    Terms,
    check_interval,
    check_logged,
    check_support,
    make_estimators,
    summarize,
)
from nextbest.evaluation.logs import Logs
from nextbest.simulators.reward_models import FOLDS, cross_fit, reward_model_class


@dataclass
class OpeResult:
    """The logging policy's own mean reward and each estimator's value of the target policy."""

    target: str
    rows: int
    actions: int
    logging_policy: Estimate
    estimates: dict[str, Estimate]
    settings: dict[str, Any] = field(default_factory=dict)
    true_value: float | None = None  # known only in simulation: the oracle's value of the target on these contexts

    def to_dict(self) -> dict[str, Any]:
        logging = self.logging_policy
        out = {
            "target": self.target,
            "rows": self.rows,
            "actions": self.actions,
            "logging_policy": {"mean_reward": logging.estimate, "ci_low": logging.ci_low, "ci_high": logging.ci_high,
                               "standard_error": logging.standard_error},
            "estimators": {name: e.to_dict() for name, e in self.estimates.items()},
            "settings": self.settings,
        }
        if self.true_value is not None:
            out["true_value"] = self.true_value
        return out


def fit_expected_reward(
    logs: Logs, *, reward_model: str = "gbm", folds: int = FOLDS, seed: int = 0, on_fold: Callable[[int], None] | None = None
) -> np.ndarray:
    """(n, n_actions) cross-fitted q̂ for the logs (K = `folds`)."""
    model = reward_model_class(reward_model)
    k = logs.action_space.n_joint
    q_hat, _ = cross_fit(lambda: model(k, seed), logs.features, logs.action, logs.reward, folds=folds, seed=seed,
                         on_fold=on_fold)
    return q_hat


def off_policy_evaluation(
    logs: Logs,
    target_probability: np.ndarray,
    *,
    estimators: list[str] | None = None,
    reward_model: str = "gbm",
    folds: int = FOLDS,
    expected_reward: np.ndarray | None = None,
    clip: float | None = None,
    threshold: float | None = None,
    shrinkage: float | None = None,
    confidence: float = 0.95,
    interval: Interval = "bootstrap",
    bootstrap_samples: int = 1000,
    seed: int = 0,
    target: str = "target",
    on_step: Callable[[str], None] | None = None,
) -> OpeResult:
    """Estimate the target policy's expected reward per decision from `logs`.

    target_probability: (n, n_actions) row-aligned with the logs. The reward model (for DM and the DR
    family) is cross-fitted over `folds` folds unless `expected_reward` (n, n_actions) is given."""
    chosen = make_estimators(estimators, clip=clip, threshold=threshold, shrinkage=shrinkage)
    check_interval(confidence, interval, bootstrap_samples)
    logged = check_logged(logs.reward, logs.action, logs.logging_probability, target_probability,
                          logs=logs.source, target=target)
    for estimator in chosen:  # fail before the reward model is fitted
        if estimator.needs_support:
            check_support(logged, estimator.name)
    if expected_reward is None and any(e.uses_reward_model for e in chosen):
        expected_reward = fit_expected_reward(
            logs, reward_model=reward_model, folds=folds, seed=seed,
            on_fold=lambda k: on_step and on_step(f"reward model, fold {k + 1} of {folds}"),
        )
    intervals = dict(confidence=confidence, interval=interval, bootstrap_samples=bootstrap_samples, seed=seed)
    estimates = {}
    for estimator in chosen:
        estimates[estimator.name] = estimator.estimate(
            reward=logged.reward, action=logged.action, logging_probability=logged.logging_probability,
            target_probability=logged.target_probability, expected_reward=expected_reward, **intervals,
        )
        if on_step:
            on_step(estimator.name)
    return OpeResult(
        target=target,
        rows=len(logs),
        actions=logs.action_space.n_joint,
        logging_policy=summarize("logging policy", Terms(logged.reward), **intervals),
        estimates=estimates,
        settings={"reward_model": reward_model, "folds": folds, **intervals},
    )


def target_from_experiment(experiment: Any, logs: Logs, *, greedy: bool = False, seed: int = 0) -> np.ndarray:
    """(n, n_actions) probabilities the experiment's agent gives every action for each logged context: the
    exploring policy `nextbest predict` samples from, or with `greedy` the one `predict --greedy` takes.
    Row i uses the logs' `prediction_seed` when present (Thompson sampling's probabilities depend on it),
    else seed + i."""
    seeds = logs.seeds if logs.seeds is not None else seed + np.arange(len(logs), dtype=np.int64)
    return experiment.agent.probabilities(logs.features, seeds, greedy=greedy)
