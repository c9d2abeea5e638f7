"""The flight planner: a campaign budget split across days and channels, next to the baselines.

    result = plan_campaign(experiment, budget=30_000, days=28)
    result["plan"]              # [{"date": "2026-01-01", "channel": "search", "spend": 412.5}, …]
    result["expected_clicks"], result["clicks_interval"], result["baselines"]["myopic"]

The flight starts the day after the history (or at `start`), carries in the adstock that the
history's last days left, and is scored over its days and the carryover tail after them. Expected
clicks are posterior means of the expected count over the flight and tail; the interval is a 90%
credible interval of that expectation. Baselines, each with the same figures: `planner` (the plan
itself), `historical` (the marketers' split and their pacing by weekday and holiday), `equal`,
`myopic` (an even daily budget, each day split by the one-day optimizer given the adstock carried
in), `posterior_mean` (the full-horizon optimizer on the posterior-mean parameters, a plug-in),
`ppo` (a PPO pacer trained in nextbest/BudgetPacing-v0, when asked for) and, given the true
parameters, `true_optimum`; with the truth every baseline also gets `true_clicks`.
"""

from __future__ import annotations

import numpy as np

from nextbest.budget.experiment import BudgetExperiment
from nextbest.data.channels import ChannelHistory, parse_date
from nextbest.errors import ConfigError
from nextbest.simulators.flight import Flight, check_flight_budget, myopic_plan, plan_flight, spread
from nextbest.simulators.optimize import Bounds
from nextbest.simulators.response import Metric, ResponseParameters

INTERVAL = (0.05, 0.95)
PLAN_DRAWS = 500  # posterior draws the planner averages over (thinned at random; the interval uses them too)


def flight_start(history: ChannelHistory, start: str | None) -> np.datetime64:
    """The flight's first day: the day after the history, or `start` (which must come after the history)."""
    last = history.dates[-1]
    if start is None:
        return last + 1
    first = np.datetime64(parse_date(start, "--start"), "D")
    if first <= last:
        raise ConfigError(f"--start {first} is inside the history, which ends on {last}; a flight starts after it")
    return first


def carry_in(history: ChannelHistory, first: np.datetime64, max_lag: int) -> np.ndarray:
    """(max_lag − 1, channels) the spend of the days before the flight: the history's last days, and no
    spend on the days between the history and the flight."""
    gap = int((first - history.dates[-1]).astype(int)) - 1
    before = np.concatenate([history.spend, np.zeros((gap, history.n_channels))])
    return before[-(max_lag - 1):] if max_lag > 1 else before[:0]


def recurring_holidays(history: ChannelHistory, dates: np.ndarray) -> np.ndarray:
    """(n,) 0/1: a date is a holiday when its month and day were a holiday in the history."""
    month_day = np.char.replace(np.datetime_as_string(np.asarray(dates, "datetime64[D]")), "-", "")
    known = np.char.replace(np.datetime_as_string(history.dates[history.holiday == 1]), "-", "")
    return np.isin([d[4:] for d in month_day], [d[4:] for d in known]).astype(np.int64)


def historical_plan(history: ChannelHistory, dates: np.ndarray, holiday: np.ndarray, budget: float,
                    bounds: Bounds) -> np.ndarray:
    """(D, channels) the marketers' pattern: days weighted by their average budget on that weekday (on
    holidays: on holidays), split by their average shares on such days."""
    weekday = (history.dates.astype(np.int64) + 3) % 7
    budgets = history.budgets
    day_weights, shares = [], []
    for date, is_holiday in zip(dates, holiday):
        same = (history.holiday == 1) if is_holiday and history.holiday.any() else (weekday == (date.astype(np.int64) + 3) % 7)
        day_weights.append(budgets[same].mean() if same.any() else budgets.mean())
        shares.append(history.shares(holiday=bool(is_holiday)))
    return spread(np.array(day_weights), np.array(shares), budget, bounds)


def plan_campaign(
    experiment: BudgetExperiment,
    budget: float,
    days: int,
    *,
    start: str | None = None,
    bounds: Bounds | None = None,
    truth: ResponseParameters | None = None,
    metric: Metric = "clicks",
    risk: float | None = None,
    ppo_steps: int = 0,
    seed: int = 0,
) -> dict:
    """The planner's flight plan for `budget` over `days` days and the baselines' (see the module docstring)."""
    history, channels = experiment.history, experiment.channels
    bounds = bounds or Bounds.none(len(channels))
    check_flight_budget(budget, days, bounds)
    first = flight_start(history, start)
    dates = first + np.arange(days)
    parameters = experiment.parameters.thin(PLAN_DRAWS, seed)
    holiday = recurring_holidays(history, dates)

    def flight(model: ResponseParameters, measure: Metric = metric) -> Flight:
        tail = dates[-1] + np.arange(1, model.max_lag)
        flags = recurring_holidays(history, np.concatenate([dates, tail]))
        return Flight.create(model, dates, flags, carry_in(history, first, model.max_lag), measure)

    objective = flight(parameters)
    historical = historical_plan(history, dates, holiday, budget, bounds)
    plans = {"planner": plan_flight(objective, budget, bounds, starts=[historical], risk=risk)}
    plans["historical"] = historical
    plans["equal"] = spread(np.ones(days), np.ones(len(channels)), budget, bounds)
    plans["myopic"] = myopic_plan(objective, budget, bounds)
    plans["posterior_mean"] = plan_flight(flight(parameters.posterior_mean()), budget, bounds, starts=[historical])
    if ppo_steps > 0:
        from nextbest.budget.pace import train_pacer

        pacer = train_pacer(parameters, budget, days, first=first, history=history, bounds=bounds, metric=metric,
                            steps=ppo_steps, seed=seed)
        plans["ppo"] = pacer["plan"]
    true_flights = {}
    if truth is not None:
        true_flights = {"clicks": flight(truth, "clicks")}
        if metric != "clicks":
            true_flights[metric] = flight(truth, metric)
        plans["true_optimum"] = plan_flight(true_flights[metric], budget, bounds, starts=[plans["planner"]])
    plans = {name: _round(plan, budget, bounds) for name, plan in plans.items()}
    measures = {"clicks": objective if metric == "clicks" else flight(parameters, "clicks"), metric: objective}
    figures = {name: _figures(plan, dates, channels, measures, true_flights) for name, plan in plans.items()}
    return {
        "budget": budget,
        "days": days,
        "start": str(dates[0]),
        "end": str(dates[-1]),
        "carryover_days": len(objective.dates) - days,
        "model": parameters.kind,
        "metric": metric,
        "objective": "posterior mean" if risk is None else f"mean of the worst {risk:.0%} of posterior draws",
        "bounds": bounds.to_dict(channels) | {"per": "day"},
        **figures["planner"],
        "baselines": figures,
        "notes": plan_notes(history, plans["planner"], dates, channels, holiday, parameters),
    }


def _figures(plan: np.ndarray, dates: np.ndarray, channels: list[str], flights: dict[str, Flight],
             truth: dict[str, Flight]) -> dict:
    result: dict = {"plan": [{"date": str(date), "channel": channel, "spend": float(plan[t, c])}
                             for t, date in enumerate(dates) for c, channel in enumerate(channels)]}
    for measure, flight in flights.items():
        totals = flight.total(plan)
        result[f"expected_{measure}"] = float(totals.mean())
        result[f"{measure}_interval"] = [float(q) for q in np.quantile(totals, INTERVAL)]
    for measure, flight in truth.items():
        result[f"true_{measure}"] = float(flight.total(plan)[0])
    return result


def _round(plan: np.ndarray, budget: float, bounds: Bounds) -> np.ndarray:
    """Cents, with the rounding residual put on the largest entries that have room, so the plan still sums
    to the budget (to the cent) and keeps its bounds."""
    rounded = np.round(plan, 2)
    cents = int(round((budget - rounded.sum()) * 100))
    low, high = np.broadcast_to(bounds.minimum, plan.shape), np.broadcast_to(bounds.maximum, plan.shape)
    for index in np.argsort(-plan, axis=None):
        if cents == 0:
            break
        t, c = np.unravel_index(index, plan.shape)
        step = np.sign(cents) * 0.01
        while cents != 0 and low[t, c] <= rounded[t, c] + step <= high[t, c]:
            rounded[t, c] += step
            cents -= int(np.sign(cents))
    return rounded


def plan_notes(history: ChannelHistory, plan: np.ndarray, dates: np.ndarray, channels: list[str], holiday: np.ndarray,
               parameters: ResponseParameters) -> list[str]:
    """Where the plan's figures rest on the model beyond the history: spend above any day of the history
    (extrapolated by the fitted curve), a flight past the history's end by more than the trend can say."""
    said = []
    most = history.spend.max(axis=0)
    above = [f"'{name}' up to {plan[:, c].max():.2f} on {int((plan[:, c] > most[c]).sum())} day(s) (at most {most[c]:.2f} "
             f"in the history)" for c, name in enumerate(channels) if plan[:, c].max() > most[c]]
    if above:
        curve = "Hill curve and adstock" if parameters.kind == "hill" else "power law"
        said.append("the plan spends above any daily spend of the history for " + ", ".join(above)
                    + f": the response there is extrapolated by the fitted {curve}")
    if holiday.any() and not history.holiday.any():
        said.append("the flight has holidays the history never had: their lift is the prior's")
    gap = int((dates[0] - history.dates[-1]).astype(int)) - 1
    if gap > 0:
        said.append(f"the flight starts {gap} day(s) after the history ends; no spend is assumed in between, so the "
                    "adstock the history left has decayed by then")
    if parameters.kind == "power":
        said.append("the power model has no carryover: each day is planned on its own (fit --model hill for carryover)")
    return said
