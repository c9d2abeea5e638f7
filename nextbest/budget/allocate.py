"""The recommended split of a day's budget, with what it is expected to buy, next to the baselines.

    result = recommend(experiment, budget=1000, holiday=True, date="2026-12-24")
    result["allocation"]          # {"search": 512.3, ...}
    result["expected_clicks"], result["clicks_interval"], result["cost_per_click"]
    result["baselines"]["historical"]["expected_clicks"]

Expected clicks are posterior means of the expected count (the 90% interval is a credible interval
of that expectation: the model's uncertainty, not the day-to-day noise of the counts). Baselines:
`historical` (the marketers' average split on such days), `equal`, `optimizer` (the recommendation
itself), `allocator` (the trained PPO allocator, when there is one) and, given the true parameters
of a synthetic history, `true_optimum`, with every allocation's `true_clicks`. `notes` says what
the figures rest on beyond the history (a kind of day it never had, spend above its range).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nextbest.budget.experiment import BudgetExperiment
from nextbest.budget.train import Allocator
from nextbest.data.channels import ChannelHistory
from nextbest.simulators.model import PRIORS
from nextbest.simulators.optimize import Bounds, allocate_shares, optimize
from nextbest.simulators.response import DayResponse, ResponseParameters

INTERVAL = (0.05, 0.95)


def evaluate(spend: np.ndarray, day: DayResponse, channels: list[str], truth: DayResponse | None = None,
             conversions: DayResponse | None = None) -> dict:
    """The figures of one allocation: spend (channels,) under the posterior day response `day`."""
    budget = float(spend.sum())
    clicks = day.total(spend)  # (draws,)
    low, high = np.quantile(clicks, INTERVAL)
    result = {
        "allocation": {c: round(float(s), 2) for c, s in zip(channels, spend)},
        "expected_clicks": float(clicks.mean()),
        "clicks_interval": [float(low), float(high)],
        "cost_per_click": budget / float(clicks.mean()),
        "cost_per_click_interval": [budget / float(high), budget / float(low)],
    }
    if conversions is not None:
        result["expected_conversions"] = float(conversions.total(spend).mean())
    if truth is not None:
        result["true_clicks"] = float(truth.total(spend)[0])
    return result


def recommend(
    experiment: BudgetExperiment,
    budget: float,
    *,
    holiday: bool = False,
    date: str | None = None,
    bounds: Bounds | None = None,
    truth: ResponseParameters | None = None,
    allocator_dir: Path | None = None,
) -> dict:
    """The optimizer's split of `budget` on a day like the one described, and the baselines'."""
    channels = experiment.channels
    bounds = bounds or Bounds.none(len(channels))
    bounds.check(budget)
    parameters = experiment.parameters
    day = parameters.day(holiday, date)
    conversions = parameters.day(holiday, date, "conversions") if parameters.has_conversions else None
    true_day = truth.day(holiday, date) if truth is not None else None
    historical = experiment.history.shares(holiday=holiday)
    splits = {
        "optimizer": optimize(day, budget, bounds, starts=[historical]),
        "historical": allocate_shares(historical, budget, bounds),
        "equal": allocate_shares(np.ones(len(channels)), budget, bounds),
    }
    allocator = _allocator(allocator_dir or experiment.directory / "allocator")
    if allocator is not None:
        splits["allocator"] = allocator.allocate(budget, holiday, date, bounds)
    if true_day is not None:
        splits["true_optimum"] = optimize(true_day, budget, bounds)
    figures = {name: evaluate(spend, day, channels, true_day, conversions) for name, spend in splits.items()}
    return {
        "budget": budget,
        "holiday": holiday,
        "date": date,
        "bounds": bounds.to_dict(channels),
        **figures["optimizer"],
        "baselines": figures,
        "notes": notes(experiment.history, splits["optimizer"], holiday),
    }


def notes(history: ChannelHistory, spend: np.ndarray, holiday: bool) -> list[str]:
    """What the figures of allocating `spend` (channels,) rest on beyond the history: a kind of day
    it never had (its effect is then the prior's), or channel spends above any in the history."""
    said = []
    if (history.holiday == int(holiday)).sum() == 0:
        kind = "holiday" if holiday else "day that is not a holiday"
        said.append(f"the history has no {kind}: the holiday lift is not learned from the data (it is its prior, "
                    f"{PRIORS['holiday']} on the log scale), and the historical split is the one of all days")
    most = history.spend.max(axis=0)  # (channels,)
    above = [f"'{name}' {spend[c]:.2f} (at most {most[c]:.2f} in the history)"
             for c, name in enumerate(history.channels) if spend[c] > most[c]]
    if above:
        said.append("the recommended spend is above any daily spend of the history for " + ", ".join(above)
                    + ": the response there is extrapolated by the fitted power law")
    return said


def _allocator(directory: Path):
    """The trained PPO allocator in `directory`, or None when there is none."""
    if not (directory / "allocator.json").is_file():
        return None
    return Allocator.load(directory)
