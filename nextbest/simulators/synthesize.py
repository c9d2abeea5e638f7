"""Synthetic channel histories drawn from a known response model, with the truth kept.

    history, truth = synthesize(channels=3, days=365, seed=0)

The truth is a `ResponseParameters` with one draw, in the same form a fit produces, so that the
fit's recovery of it and the true optimum of any day can be computed exactly. The world: each
channel has its own cost per thousand impressions, spend elasticity β (diminishing returns),
holiday lift and slow trend; all share a weekday pattern and a yearly season; the counts are
overdispersed (negative binomial impressions, clicks and conversions). The
marketers who "spent" the history had a favourite split that is not the best one, varied it
from day to day, and spent more on holidays and less at weekends.
"""

from __future__ import annotations

import numpy as np

from nextbest.data.channels import ChannelHistory, parse_date
from nextbest.errors import ConfigError
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
    if not 1 <= channels <= 50:
        raise ConfigError(f"--channels {channels}: expected between 1 and 50 channels")
    if days < 28:
        raise ConfigError(f"--days {days}: expected at least 28 days (four weeks) of history")
    first = np.datetime64(parse_date(start, "--start"), "D")
    rng = np.random.default_rng(seed)
    names = [CHANNEL_NAMES[c] if c < len(CHANNEL_NAMES) else f"channel_{c + 1}" for c in range(channels)]
    dates = first + np.arange(days)
    holiday = holidays(dates)

    # The marketers: a favourite split, varied daily; more on holidays, less at weekends.
    favourite = rng.dirichlet(np.full(channels, 4.0))
    weekday = (dates.astype(np.int64) + 3) % 7
    budget = DAILY_BUDGET * np.exp(rng.normal(0, 0.2, days)) * np.where(holiday == 1, 1.3, 1.0) * np.where(weekday >= 5, 0.9, 1.0)
    shares = rng.dirichlet(favourite * 40 + 0.5, size=days)
    spend = np.maximum(np.round(budget[:, None] * shares, 2), 0.01)

    typical = DAILY_BUDGET * favourite  # spend around which each channel's intercept is stated
    cost_per_mille = rng.uniform(4, 20, channels)
    weekday_effect = rng.normal(0, 0.08, 7) + np.array([0, 0, 0, 0, 0, -0.1, -0.12])
    truth = ResponseParameters(
        channels=names,
        spend_center=np.log(typical),
        calendar=Calendar.from_dates(dates),
        alpha=np.log(typical / cost_per_mille * 1000)[None],
        beta=rng.uniform(0.35, 0.8, (1, channels)),
        holiday=rng.uniform(-0.1, 0.5, (1, channels)),
        trend=rng.normal(0, 0.1, (1, channels)),
        weekday=(weekday_effect - weekday_effect.mean())[None],
        season=rng.normal(0, 0.07, (1, 2 * HARMONICS)),
        dispersion=rng.uniform(15, 50, (1, channels)),
        ctr=rng.uniform(0.004, 0.03, (1, channels)),
        click_dispersion=rng.uniform(200, 1000, (1, channels)),
        cvr=rng.uniform(0.02, 0.08, (1, channels)) if conversions else None,
        conversion_dispersion=rng.uniform(20, 100, (1, channels)) if conversions else None,
    )
    counts = truth.sample(spend, holiday, dates, rng)
    history = ChannelHistory(
        dates=dates, channels=names, spend=spend, impressions=counts["impressions"][0], clicks=counts["clicks"][0],
        conversions=counts["conversions"][0] if conversions else None, holiday=holiday,
    )
    return history, truth
