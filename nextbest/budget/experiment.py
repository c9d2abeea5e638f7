"""The budget experiment directory: a fitted response model and what is learned from it.

    DIR/posterior.nc        ArviZ InferenceData (NetCDF): posterior, sample_stats,
                            posterior_predictive, observed_data, constant_data
    DIR/budget.json         channels, centring, calendar, fit settings, diagnostics,
                            posterior-predictive check, priors, a summary of the history
    DIR/history.parquet     the validated history (for baselines and report figures)
    DIR/allocator/          the PPO allocator (`nextbest budget train`) and its learning curve
    DIR/tensorboard/        training curves
    DIR/figures/            `nextbest budget report`

`fit_experiment` writes a directory; `BudgetExperiment.open` reads it and, unless asked not to,
refuses one whose MCMC diagnostics failed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nextbest.data.channels import ChannelHistory, read_history, validate_history
from nextbest.data.tables import read_table
from nextbest.envs.budget import BudgetAllocationEnv
from nextbest.errors import ExperimentError, NextbestError
from nextbest.io import write_json
from nextbest.simulators.adstock import MAX_LAG
from nextbest.simulators.checks import Diagnostics, diagnose, predictive_check
from nextbest.simulators.fit import FitConfig, fit_response
from nextbest.simulators.model import PRIORS
from nextbest.simulators.response import Calendar, ResponseParameters


class FitDiagnosticsError(NextbestError):
    """MCMC diagnostics failed: the posterior cannot be trusted for decisions."""


@dataclass
class BudgetExperiment:
    directory: Path
    parameters: ResponseParameters
    history: ChannelHistory
    diagnostics: Diagnostics
    summary: dict

    @property
    def channels(self) -> list[str]:
        return self.parameters.channels

    @property
    def budget_range(self) -> tuple[float, float]:
        """The history's 5th and 95th percentiles of daily spend: the budgets to learn and evaluate on."""
        daily = self.summary["history"]["daily_budget"]
        return daily["p05"], daily["p95"]

    def make_env(self, **settings: Any) -> BudgetAllocationEnv:
        """`nextbest/BudgetAllocation-v0` in this posterior; budgets drawn from `budget_range` unless
        `budget=` is given. settings: those of BudgetAllocationEnv (reward, minimum, maximum, …)."""
        if settings.get("budget") is None:
            settings["budget"] = self.budget_range
        return BudgetAllocationEnv(self.parameters, **settings)

    @classmethod
    def open(cls, directory: str | Path, *, require_diagnostics: bool = True) -> BudgetExperiment:
        directory = Path(directory)
        if not (directory / "budget.json").is_file() or not (directory / "posterior.nc").is_file():
            raise ExperimentError(
                f"{directory} holds no fitted response model (budget.json and posterior.nc); "
                "fit one with `nextbest budget fit HISTORY --experiment-dir DIR`")
        import json

        import arviz as az

        summary = json.loads((directory / "budget.json").read_text())
        try:
            idata = az.from_netcdf(directory / "posterior.nc")
        except Exception as error:  # a truncated or foreign file, whatever h5netcdf raises for it
            raise ExperimentError(f"{directory / 'posterior.nc'}: unreadable posterior ({type(error).__name__})") from None
        posterior = {name: idata.posterior[name].values for name in idata.posterior.data_vars}
        parameters = ResponseParameters(
            channels=summary["channels"], spend_center=np.asarray(summary["spend_center"]),
            calendar=Calendar.from_dict(summary["calendar"]), max_lag=int(summary["fit"].get("max_lag", MAX_LAG)),
            **{name: _stack(posterior.get(name)) for name in ResponseParameters.ARRAYS})
        history = validate_history(read_table(directory / "history.parquet"), source=str(directory / "history.parquet"))
        experiment = cls(directory, parameters, history, Diagnostics.from_dict(summary["diagnostics"]), summary)
        if require_diagnostics and not experiment.diagnostics.passed:
            raise FitDiagnosticsError(
                f"{directory}: the response model's MCMC diagnostics failed, so it is not used for decisions: "
                f"{experiment.diagnostics.advice()}")
        return experiment


def _stack(values: np.ndarray | None) -> np.ndarray | None:
    """(chain, draw, ...) → (chain·draw, ...)."""
    return None if values is None else values.reshape(-1, *values.shape[2:])


def fit_experiment(
    history_path: str | Path,
    directory: str | Path,
    config: FitConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> BudgetExperiment:
    """Validate the history, sample the posterior, check it, and write the directory.

    The posterior is written even when its diagnostics fail (to inspect it), and then
    FitDiagnosticsError says what to try."""
    config = config or FitConfig()
    history = read_history(history_path)
    fit = fit_response(history, config, source=str(history_path), progress=progress)
    diagnostics = diagnose(fit.idata, config)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".posterior.nc.tmp-{id(fit)}"
    fit.idata.to_netcdf(str(temporary), engine="h5netcdf")
    temporary.replace(directory / "posterior.nc")
    history.write(directory / "history.parquet")
    if (directory / "allocator").is_dir():  # trained on the posterior this fit replaces
        shutil.rmtree(directory / "allocator")
    summary = {
        "channels": history.channels,
        "spend_center": fit.parameters.spend_center,
        "calendar": fit.parameters.calendar.to_dict(),
        "history": _describe(history, str(history_path)),
        "fit": config.model_dump(mode="json") | {"seconds": round(fit.seconds, 2)},
        "diagnostics": diagnostics.to_dict(),
        "predictive_check": predictive_check(fit.idata),
        "priors": PRIORS,
    }
    write_json(directory / "budget.json", summary)
    experiment = BudgetExperiment(directory, fit.parameters, history, diagnostics, summary)
    if not diagnostics.passed:
        raise FitDiagnosticsError(f"{history_path}: the fit's MCMC diagnostics failed (posterior kept in {directory} "
                                  f"for inspection, not for decisions): {diagnostics.advice()}")
    return experiment


def _describe(history: ChannelHistory, source: str) -> dict:
    budgets = history.budgets
    return {
        "source": source,
        "days": history.n_days,
        "first_date": str(history.dates[0]),
        "last_date": str(history.dates[-1]),
        "holidays": int(history.holiday.sum()),
        "has_conversions": history.conversions is not None,
        "daily_budget": {"mean": float(budgets.mean()), "p05": float(np.quantile(budgets, 0.05)),
                         "p95": float(np.quantile(budgets, 0.95))},
        "shares": dict(zip(history.channels, history.shares().tolist())),
        "shares_holiday": dict(zip(history.channels, history.shares(holiday=True).tolist())),
        "shares_regular": dict(zip(history.channels, history.shares(holiday=False).tolist())),
    }

