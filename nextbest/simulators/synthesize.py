"""Synthetic channel histories drawn from a known response model, with the truth kept.

    history, truth = synthesize(channels=3, days=365, seed=0)

The truth is a `ResponseParameters` with one draw, in the same form a fit produces, so that the
fit's recovery of it and the true optimum of any day can be computed exactly. The world: each
channel has its own cost per thousand impressions, spend elasticity β (diminishing returns),
holiday lift and slow trend; all share a weekday pattern and a yearly season; the counts are
overdispersed (negative binomial impressions, clicks and conversions). The
marketers who "spent" the history had a favourite split that is not the best one, varied it
from day to day, and spent more on holidays and less at weekends.

`synthesize_carryover` draws the same kind of history from the carryover model (geometric adstock
and Hill saturation, nextbest.simulators.hill): each channel's decay, slope and half-saturation
spend are kept in the truth too. Its marketers also change each channel's budget from week to week
(campaigns start and stop), which is what lets a fit tell carryover from saturation.
"""

from __future__ import annotations

import numpy as np

from nextbest.data.channels import ChannelHistory, parse_date
from nextbest.errors import ConfigError
from nextbest.simulators.adstock import MAX_LAG
from nextbest.simulators.response import HARMONICS, Calendar, ResponseParameters

CHANNEL_NAMES = ["search", "social", "display", "video", "email", "affiliate", "audio", "print"]
# Fixed-date retail holidays (month-day); Black Friday week approximated by 11-27 … 11-29.
HOLIDAYS = ["01-01", "02-14", "05-25", "07-04", "10-31", "11-27", "11-28", "11-29", "12-24", "12-25", "12-26", "12-31"]
DAILY_BUDGET = 1000.0


def holidays(dates: np.ndarray) -> np.ndarray:
    """(n,) 0/1: whether each date is one of HOLIDAYS."""
    month_day = np.char.replace(np.datetime_as_string(np.asarray(dates, "datetime64[D]")), "-", "")
    return np.isin([md[4:] for md in month_day], [h.replace("-", "") for h in HOLIDAYS]).astype(np.int64)


def synthesize(
    channels: int = 3, days: int = 365, seed: int = 0, start: str = "2025-01-01", conversions: bool = True
) -> tuple[ChannelHistory, ResponseParameters]:
    """A history of `days` days × `channels` channels and the true parameters that generated it."""
    rng, names, dates, holiday = _world(channels, days, seed, start)

    # The marketers: a favourite split, varied daily; more on holidays, less at weekends.
    favourite = rng.dirichlet(np.full(channels, 4.0))
    weekday = (dates.astype(np.int64) + 3) % 7
    budget = DAILY_BUDGET * np.exp(rng.normal(0, 0.2, days)) * np.where(holiday == 1, 1.3, 1.0) * np.where(weekday >= 5, 0.9, 1.0)
    shares = rng.dirichlet(favourite * 40 + 0.5, size=days)
    spend = np.maximum(np.round(budget[:, None] * shares, 2), 0.01)

    typical = DAILY_BUDGET * favourite  # spend around which each channel's intercept is stated
    truth = ResponseParameters(**_shared_truth(rng, names, dates, typical, conversions, elasticity=True))
    return _history(truth, spend, holiday, dates, rng, conversions), truth


def synthesize_carryover(
    channels: int = 3, days: int = 365, seed: int = 0, start: str = "2025-01-01", conversions: bool = True,
    decay: float | None = None, max_lag: int = MAX_LAG,
) -> tuple[ChannelHistory, ResponseParameters]:
    """A history drawn from the carryover model and its truth. decay: every channel's θ (None: each
    channel's own, uniform in 0.1 … 0.7)."""
    if decay is not None and not 0 <= decay < 1:
        raise ConfigError(f"--decay {decay}: expected a decay in [0, 1)")
    rng, names, dates, holiday = _world(channels, days, seed, start)
    favourite = rng.dirichlet(np.full(channels, 4.0))
    weekday = (dates.astype(np.int64) + 3) % 7
    budget = DAILY_BUDGET * np.exp(rng.normal(0, 0.15, days)) * np.where(holiday == 1, 1.3, 1.0) * np.where(weekday >= 5, 0.9, 1.0)
    weeks = np.arange(days) // 7
    campaign = np.exp(rng.normal(0, 0.45, (weeks[-1] + 1, channels)))[weeks]  # each channel's budget level, week by week
    shares = rng.dirichlet(favourite * 40 + 0.5, size=days) * campaign
    spend = np.maximum(np.round(budget[:, None] * shares / shares.sum(axis=1, keepdims=True), 2), 0.01)

    typical = np.exp(np.log(spend).mean(axis=0))  # the centre a fit will use (its mean log spend)
    truth = ResponseParameters(
        **_shared_truth(rng, names, dates, typical, conversions, elasticity=False),
        decay=(np.full((1, channels), decay) if decay is not None else rng.uniform(0.1, 0.7, (1, channels))),
        slope=rng.uniform(0.6, 1.0, (1, channels)),
        saturation=rng.uniform(-0.3, 1.0, (1, channels)),
        max_lag=max_lag,
    )
    return _history(truth, spend, holiday, dates, rng, conversions), truth


def _shared_truth(rng: np.random.Generator, names: list[str], dates: np.ndarray, typical: np.ndarray, conversions: bool,
                  elasticity: bool) -> dict:
    """The parameters both true models share (and the power law's β when `elasticity`), drawn in one fixed
    order so that a seed keeps its history."""
    channels = len(names)
    cost_per_mille = rng.uniform(4, 20, channels)
    weekday_effect = rng.normal(0, 0.08, 7) + np.array([0, 0, 0, 0, 0, -0.1, -0.12])
    return {  # a dict display evaluates (and so draws) left to right
        "channels": names,
        "spend_center": np.log(typical),
        "calendar": Calendar.from_dates(dates),
        "alpha": np.log(typical / cost_per_mille * 1000)[None],
        "beta": rng.uniform(0.35, 0.8, (1, channels)) if elasticity else None,
        "holiday": rng.uniform(-0.1, 0.5, (1, channels)),
        "trend": rng.normal(0, 0.1, (1, channels)),
        "weekday": (weekday_effect - weekday_effect.mean())[None],
        "season": rng.normal(0, 0.07, (1, 2 * HARMONICS)),
        "dispersion": rng.uniform(15, 50, (1, channels)),
        "ctr": rng.uniform(0.004, 0.03, (1, channels)),
        "click_dispersion": rng.uniform(200, 1000, (1, channels)),
        "cvr": rng.uniform(0.02, 0.08, (1, channels)) if conversions else None,
        "conversion_dispersion": rng.uniform(20, 100, (1, channels)) if conversions else None,
    }


def _world(channels: int, days: int, seed: int, start: str):
    """The random generator, channel names, dates and holiday flags of a synthetic history."""
    if not 1 <= channels <= 50:
        raise ConfigError(f"--channels {channels}: expected between 1 and 50 channels")
    if days < 28:
        raise ConfigError(f"--days {days}: expected at least 28 days (four weeks) of history")
    first = np.datetime64(parse_date(start, "--start"), "D")
    names = [CHANNEL_NAMES[c] if c < len(CHANNEL_NAMES) else f"channel_{c + 1}" for c in range(channels)]
    dates = first + np.arange(days)
    return np.random.default_rng(seed), names, dates, holidays(dates)


def _history(truth: ResponseParameters, spend, holiday, dates, rng, conversions: bool) -> ChannelHistory:
    """The counts `truth` produces for `spend` (no spend before the first day)."""
    counts = truth.sample(spend, holiday, dates, rng)
    return ChannelHistory(
        dates=dates, channels=truth.channels, spend=spend, impressions=counts["impressions"][0], clicks=counts["clicks"][0],
        conversions=counts["conversions"][0] if conversions else None, holiday=holiday,
    )
