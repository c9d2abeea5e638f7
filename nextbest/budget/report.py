"""`nextbest budget report`: every budget figure of an experiment directory, as PNG files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nextbest.budget import plots
from nextbest.budget.allocate import recommend
from nextbest.budget.experiment import BudgetExperiment
from nextbest.budget.plan import plan_campaign
from nextbest.figures import save
from nextbest.simulators.flight import contributions
from nextbest.simulators.response import ResponseParameters

FLIGHT_DAYS = 28  # the plan drawn in the report: four weeks at the history's mean daily budget


def write_report(directory: str | Path, output: str | Path, *, budget: float | None = None,
                 truth: ResponseParameters | None = None) -> list[Path]:
    """Posterior-predictive check; for the carryover model the response curves at a steady spend, the carryover
    curves, each channel's contribution over time and a four-week plan; for the power model the
    response curves, the allocation comparison and (once trained) the allocator's learning curve. A fit whose diagnostics failed is drawn too: looking is how to fix it."""
    import arviz as az

    directory, output = Path(directory), Path(output)
    experiment = BudgetExperiment.open(directory, require_diagnostics=False)
    idata = az.from_netcdf(directory / "posterior.nc")
    budget = budget or float(round(experiment.history.budgets.mean()))
    written = [save(plots.predictive_check(idata, "clicks"), output / "predictive_check.png")]
    if experiment.parameters.kind == "hill":
        parameters, history = experiment.parameters.thin(1000), experiment.history
        result = plan_campaign(experiment, budget * FLIGHT_DAYS, FLIGHT_DAYS, truth=truth)
        written += [
            save(plots.saturation_curves(parameters, history), output / "response_curves.png"),
            save(plots.carryover_curves(parameters, history.channels), output / "carryover.png"),
            save(plots.contributions_over_time(contributions(parameters, history), history.dates[0] + np.arange(
                history.n_days + parameters.max_lag - 1), history.channels, history.clicks.sum(axis=1)),
                output / "contributions.png"),
            save(plots.planned_spend(result), output / "plan.png"),
        ]
    else:
        written += [
            save(plots.response_curves(experiment.parameters, experiment.history), output / "response_curves.png"),
            save(plots.allocation_comparison(recommend(experiment, budget, truth=truth)), output / "allocation.png"),
        ]
    training = directory / "allocator" / "allocator.json"
    if training.is_file():
        written.append(save(plots.learning_curve(json.loads(training.read_text())), output / "learning_curve.png"))
    return written
