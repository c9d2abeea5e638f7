"""Sweeps on Ray Tune: the trials of `nextbest.evaluation.tuning`, scheduled by ASHA (asynchronous successive
halving), which stops a trial whose score after a batch is in the worst part of the trials that reached that batch.

    results = tune_trials(trials, objective, batches=objective.batches)     # inside ray_session(...)

Each trial is the same call as in `run_serial` (one CPU, its own process); a trial ASHA stops keeps the scores it
reported and is marked incomplete. Ray Tune's own files go to a temporary folder, removed at the end.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from nextbest.evaluation.tuning import Objective, Trial, TrialResult
from nextbest.scale.cluster import user_errors


def asha(batches: int, grace_period: int = 2, reduction_factor: int = 3) -> Any:
    """ASHA over reports (batch 0, the untrained agent, is report 1): a trial runs at least `grace_period` reports."""
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="training_iteration", max_t=batches + 1, grace_period=min(grace_period, batches + 1),
                         reduction_factor=reduction_factor)


def tune_trials(
    trials: list[Trial], objective: Objective, *, batches: int, scheduler: Any = "asha",
    on_trial: Callable[[TrialResult], None] | None = None,
) -> list[TrialResult]:
    """Run the trials on Ray Tune (ASHA unless `scheduler` is None or another Tune scheduler); in trial order."""
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(1)  # one core per trial: the trials are the parallelism
        objective(trials[config["trial"]], lambda batch, score: tune.report({"score": float(score), "batch": batch}))

    storage = tempfile.mkdtemp(prefix="nextbest-tune-")
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"trial": tune.grid_search([t.index for t in trials])},
            tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=1,
                                        scheduler=asha(batches) if scheduler == "asha" else scheduler),
            run_config=tune.RunConfig(storage_path=storage, name="tune", verbose=0, log_to_file=False),
        )
        with user_errors():
            grid = tuner.fit()
            by_index = {t.index: t for t in trials}
            results = []
            for outcome in grid:
                if outcome.error is not None:
                    raise outcome.error
                frame = outcome.metrics_dataframe.sort_values("training_iteration")
                trial = by_index[int(outcome.config["trial"])]
                result = TrialResult(trial.index, trial.agent, trial.settings, [float(s) for s in frame["score"]],
                                     float(frame["time_total_s"].iloc[-1]), complete=len(frame) == batches + 1)
                results.append(result)
                if on_trial:
                    on_trial(result)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    return sorted(results, key=lambda r: r.index)
