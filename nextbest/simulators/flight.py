"""A campaign flight: what a day-by-channel plan buys over its days and its carryover tail, and the
plans that maximize it.

    flight = Flight.create(parameters, dates, holiday, carry_in=history.spend[-13:])
    plan = plan_flight(flight, budget=30_000, bounds=bounds)      # (days, channels)
    flight.total(plan)                                             # (draws,) expected clicks

The flight's days are followed by `max_lag − 1` tail days without spend, in which the adstock of
the last days still works: the objective counts them. For the power model there is no tail and a
flight is a sum of independent days. `plan_flight` maximizes the posterior-mean total (or, with
`risk=q`, the mean of the lowest q share of the draws' totals, a risk-averse objective) over
plans that sum to the budget with every day's spend of a channel within its minimum and maximum,
by SLSQP on the analytic gradient (the adjoint of the adstock). With Hill slopes ≤ 1 the mean
objective is concave, so its optimum is the global one. `myopic_plan` is the one-day optimizer
applied day by day: an even daily budget, each day split to maximize that day's clicks given the
adstock carried in, blind to what today's spend does for tomorrow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from nextbest.errors import ConfigError
from nextbest.simulators.adstock import SMALLEST, adstock, adstock_transpose, lag_weights
from nextbest.simulators.optimize import Bounds, allocate_shares
from nextbest.simulators.response import Metric, ResponseParameters


@dataclass(frozen=True)
class Flight:
    """parameters: the model (draws); days: D flight days; dates, holiday: (T,) for the flight and its tail
    (T = D + tail); carry_in: (max_lag − 1, channels) the spend of the days before the flight; level:
    (draws, T, channels) the expected metric at the typical spend on each day."""

    parameters: ResponseParameters
    days: int
    dates: np.ndarray
    holiday: np.ndarray
    carry_in: np.ndarray
    level: np.ndarray
    metric: Metric
    weights: np.ndarray | None = None  # (draws, max_lag, channels) the adstock's lag weights (hill)

    @classmethod
    def create(cls, parameters: ResponseParameters, dates: np.ndarray, holiday: np.ndarray | None = None,
               carry_in: np.ndarray | None = None, metric: Metric = "clicks") -> Flight:
        """dates: (D,) the flight's days; holiday: (D + tail,) or (D,) flags (the tail's are then 0)."""
        if metric == "conversions" and not parameters.has_conversions:
            raise ConfigError("--metric conversions needs a model fitted on a history with a 'conversions' column")
        dates = np.asarray(dates, "datetime64[D]")
        days = len(dates)
        tail = parameters.max_lag - 1 if parameters.kind == "hill" else 0
        dates = np.concatenate([dates, dates[-1] + np.arange(1, tail + 1)])
        holiday = np.zeros(len(dates), int) if holiday is None else np.asarray(holiday, int)
        holiday = np.concatenate([holiday, np.zeros(max(len(dates) - len(holiday), 0), int)])[: len(dates)]
        lags = max(parameters.max_lag - 1, 0)
        carry = np.zeros((lags, len(parameters.channels))) if carry_in is None else np.asarray(carry_in, float)[-lags:]
        if carry.shape != (lags, len(parameters.channels)):  # a short history: zeros before it
            carry = np.concatenate([np.zeros((lags - len(carry), len(parameters.channels))), carry])
        log_level = parameters.log_day_level(holiday, dates) + np.log(parameters.ctr)[:, None]
        if metric == "conversions":
            log_level = log_level + np.log(parameters.cvr)[:, None]
        weights = lag_weights(parameters.decay, parameters.max_lag) if parameters.kind == "hill" else None
        return cls(parameters, days, dates, holiday, carry, np.exp(log_level), metric, weights)

    @property
    def n_draws(self) -> int:
        return self.level.shape[0]

    def _full(self, plan: np.ndarray) -> np.ndarray:
        plan = np.asarray(plan, float).reshape(self.days, -1)
        return np.concatenate([plan, np.zeros((len(self.dates) - self.days, plan.shape[1]))])

    def per_day(self, plan: np.ndarray) -> np.ndarray:
        """plan (D, channels) → (draws, T, channels) the expected metric of each day and channel."""
        return self.evaluate(plan)[0]

    def total(self, plan: np.ndarray) -> np.ndarray:
        """(draws,) the expected metric over the flight and its tail."""
        return self.per_day(plan).sum(axis=(1, 2))

    def evaluate(self, plan: np.ndarray, derivative: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(draws, T, channels) the expected metric of each day and channel and, if asked, its derivative in
        that day's adstock (hill) or spend (power), for `backward`."""
        p, spend = self.parameters, self._full(plan)
        if p.kind == "hill":
            adstocked = np.maximum(adstock(spend, p.decay, p.max_lag, self.carry_in, self.weights), SMALLEST)
            s, k = p.slope[:, None, :], p.saturation[:, None, :]
            ratio = np.exp(s * (k - np.log(adstocked) + p.spend_center))  # (κ/A)^s
            # H(A)/H(e^m) = (1 + e^(s·k)) / (1 + (κ/A)^s); d log H / d log A = s·(κ/A)^s / (1 + (κ/A)^s)
            values = self.level * (1 + np.exp(s * k)) / (1 + ratio)
            return values, (values * s * ratio / (1 + ratio) / adstocked if derivative else None)
        with np.errstate(divide="ignore"):
            values = np.where(spend > 0, self.level * np.exp(p.beta[:, None] * (np.log(spend) - p.spend_center)), 0.0)
        return values, (values * p.beta[:, None] / np.maximum(spend, 1e-12) if derivative else None)

    def backward(self, derivative: np.ndarray) -> np.ndarray:
        """(D, channels) the gradient in the plan, from `evaluate`'s derivative weighted per draw and day
        (draws, T, channels): the adjoint of the adstock (hill), summed over the draws."""
        if self.parameters.kind == "hill":
            return adstock_transpose(derivative, self.parameters.decay, self.parameters.max_lag, self.weights)[: self.days]
        return derivative.sum(axis=0)[: self.days]


def check_flight_budget(budget: float, days: int, bounds: Bounds) -> None:
    """A budget that daily minimums and maximums over `days` days can hold, or ConfigError."""
    if not np.isfinite(budget) or budget <= 0:
        raise ConfigError(f"--budget {budget}: expected a positive amount")
    if days < 1:
        raise ConfigError(f"--days {days}: expected a flight of at least one day")
    low, high = bounds.minimum.sum() * days, bounds.maximum.sum() * days
    if low > budget * (1 + 1e-12):
        raise ConfigError(f"the daily channel minimums add up to {low:g} over {days} days, more than the budget {budget:g}")
    if high < budget * (1 - 1e-12):
        raise ConfigError(f"the daily channel maximums add up to {high:g} over {days} days, less than the budget {budget:g}")


def spread(day_weights: np.ndarray, shares: np.ndarray, budget: float, bounds: Bounds) -> np.ndarray:
    """A feasible plan (D, channels) from weights of the days (D,) and channel shares (D, channels) or
    (channels,): each day's total is its weight's part of the budget (kept between the day's summed
    minimums and maximums), split by `shares` within the channel bounds."""
    days = len(day_weights)
    check_flight_budget(budget, days, bounds)
    per_day = Bounds(np.full(days, bounds.minimum.sum()), np.full(days, bounds.maximum.sum()))
    totals = allocate_shares(day_weights, budget, per_day)
    shares = np.broadcast_to(shares, (days, len(bounds.minimum)))
    return np.stack([allocate_shares(shares[t], totals[t], bounds) for t in range(days)])


def plan_flight(flight: Flight, budget: float, bounds: Bounds | None = None, starts: list[np.ndarray] | None = None,
                risk: float | None = None) -> np.ndarray:
    """(D, channels) the plan maximizing the posterior-mean expected metric over the flight and its tail
    (or the mean of its lowest `risk` share of draws); from the even split and any `starts`."""
    n = flight.level.shape[2]
    bounds = bounds or Bounds.none(n)
    check_flight_budget(budget, flight.days, bounds)
    if risk is not None and not 0 < risk <= 1:
        raise ConfigError(f"--risk {risk}: expected the share of worst draws to average, in (0, 1]")
    worst = max(1, int(round((risk or 1.0) * flight.n_draws)))

    def value_and_gradient(plan):
        values, derivative = flight.evaluate(plan, True)
        totals = values.sum(axis=(1, 2))
        weights = np.zeros(flight.n_draws)
        weights[np.argsort(totals)[:worst]] = 1.0 / worst  # every draw (the mean) unless risk-averse
        return float(weights @ totals), flight.backward(derivative * weights[:, None, None])

    even = spread(np.ones(flight.days), np.ones(n), budget, bounds)
    low, high = np.tile(bounds.minimum, flight.days), np.tile(bounds.maximum, flight.days)
    return maximize(value_and_gradient, budget, low, high, [even, *(starts or [])]).reshape(flight.days, n)


def myopic_plan(flight: Flight, budget: float, bounds: Bounds | None = None) -> np.ndarray:
    """(D, channels) an even daily budget, each day split to maximize that day's posterior-mean metric
    given the spend before it (the one-day optimizer, day by day)."""
    n = flight.level.shape[2]
    bounds = bounds or Bounds.none(n)
    plan = spread(np.ones(flight.days), np.ones(n), budget, bounds)
    weights = np.full(flight.n_draws, 1.0 / flight.n_draws)
    for day in range(flight.days):
        today = np.zeros(len(flight.dates))
        today[day] = 1.0

        def value_and_gradient(spend, day=day, today=today):
            trial = plan.copy()
            trial[day] = spend
            values, derivative = flight.evaluate(trial, True)
            return float(weights @ values[:, day].sum(axis=1)), flight.backward(derivative * (weights[:, None] * today)[..., None])[day]

        plan[day] = maximize(value_and_gradient, plan[day].sum(), bounds.minimum, bounds.maximum, [plan[day].copy()])
    return plan


def maximize(value_and_gradient, total: float, low: np.ndarray, high: np.ndarray, starts: list[np.ndarray]) -> np.ndarray:
    """The best of SLSQP's local maxima of a smooth function of x ≥ 0 with Σ x = total and low ≤ x ≤ high,
    from each start. value_and_gradient(x) → (value, gradient of the shape of x); solved in shares of
    the total (well scaled); the answer is clipped to the bounds and sums to `total` to rounding error."""
    shape = np.shape(starts[0])
    floor = 1e-9  # a channel at exactly 0 has an infinite marginal return when the curve is concave
    lo, hi = np.maximum(low / total, floor), np.minimum(high / total, 1.0)
    scale = abs(value_and_gradient(np.reshape(np.ravel(starts[0]), shape))[0]) or 1.0

    def objective(x):
        value, gradient = value_and_gradient(x.reshape(shape) * total)
        return -value / scale, -np.ravel(gradient) * total / scale

    best, best_value = None, -np.inf
    for start in starts:
        x0 = np.clip(np.ravel(start) / total, lo, hi)
        result = minimize(objective, x0, jac=True, method="SLSQP", bounds=list(zip(lo, hi)),
                          constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones(len(x))}],
                          options={"ftol": 1e-12, "maxiter": 1000})
        x = _polish(result.x * total, total, low, high)
        value = value_and_gradient(x.reshape(shape))[0]
        if value > best_value:
            best, best_value = x, value
    return best.reshape(shape)


def _polish(x: np.ndarray, total: float, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Clip to the bounds; spread the residual over the entries with room (in proportion to their room)."""
    x = np.clip(x, low, high)
    for _ in range(3):
        residual = total - x.sum()
        room = (high - x) if residual > 0 else (x - low)
        room = np.where(np.isfinite(room), room, total)
        if abs(residual) <= 1e-12 * total or room.sum() <= 0:
            break
        x = np.clip(x + np.sign(residual) * min(abs(residual), room.sum()) * room / room.sum(), low, high)
    return x


def contributions(parameters: ResponseParameters, history, metric: Metric = "clicks") -> np.ndarray:
    """(draws, days + tail, channels) the expected metric each channel's historical spend bought on each day
    of the history and of the carryover tail after it (no spend before the history). Every click of
    this model comes from a channel's spend, so these add up to the expected total."""
    flight = Flight.create(parameters, history.dates, history.holiday, metric=metric)
    return flight.per_day(history.spend)


def return_on_spend(parameters: ResponseParameters, history, metric: Metric = "clicks") -> np.ndarray:
    """(draws, channels) each channel's expected metric per unit of spend over the history (and its tail)."""
    return contributions(parameters, history, metric).sum(axis=1) / history.spend.sum(axis=0)
