"""`nextbest budget report`: every budget figure of an experiment directory, as PNG files."""

from __future__ import annotations

import json
from pathlib import Path

from nextbest.budget import plots
from nextbest.budget.allocate import recommend
from nextbest.budget.experiment import BudgetExperiment
from nextbest.figures import save
from nextbest.simulators.response import ResponseParameters


def write_report(directory: str | Path, output: str | Path, *, budget: float | None = None,
                 truth: ResponseParameters | None = None) -> list[Path]:
    """Response curves, posterior-predictive check, allocation comparison and (once trained) the
    allocator's learning curve. A fit whose diagnostics failed is drawn too: looking is how to fix it."""
    import arviz as az

    directory, output = Path(directory), Path(output)
    experiment = BudgetExperiment.open(directory, require_diagnostics=False)
    idata = az.from_netcdf(directory / "posterior.nc")
    budget = budget or float(round(experiment.history.budgets.mean()))
    written = [
        save(plots.response_curves(experiment.parameters, experiment.history), output / "response_curves.png"),
        save(plots.predictive_check(idata, "clicks"), output / "predictive_check.png"),
        save(plots.allocation_comparison(recommend(experiment, budget, truth=truth)), output / "allocation.png"),
    ]
    training = directory / "allocator" / "allocator.json"
    if training.is_file():
        written.append(save(plots.learning_curve(json.loads(training.read_text())), output / "learning_curve.png"))
    return written
