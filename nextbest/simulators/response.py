"""The channel response model: what a day's spend buys, per channel, under each posterior draw.

For channel c on day t, with x = log(spend) − m_c (the channel's centred log spend):

    log μ_tc   = α_c + β_c·x + γ_c·holiday_t + w[weekday_t] + Σ_k (a_k sin + b_k cos)(2πk·day_t/365.25) + δ_c·u_t
    impressions ~ NegativeBinomial(mean μ_tc, concentration φ_c)
    clicks      ~ NegativeBinomial(mean impressions_tc · CTR_c, concentration ψ_c)
    conversions ~ NegativeBinomial(mean clicks_tc · CVR_c, concentration ν_c)

(For rates of a few percent this is the beta-binomial's overdispersion at a third of the cost of
its log-density; simulated clicks are capped at the impressions, which at such rates never binds.)

β_c is the spend elasticity (diminishing returns when < 1), γ_c the holiday lift, w a zero-sum
weekday effect, the Fourier terms yearly seasonality, u_t years from the middle of the history
(held at the history's ends when predicting outside it: a fitted trend is not extrapolated).

For a given day everything but spend is fixed, so each expected count is a power law:
E[metric_c | spend s] = scale_c · s^β_c. `DayResponse` holds that form for every draw; the
optimizer, the environment and the plots all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from nextbest.errors import ConfigError
from nextbest.simulators.adstock import MAX_LAG, adstock, log_hill_relative

METRICS = ("impressions", "clicks", "conversions")
Metric = Literal["impressions", "clicks", "conversions"]
YEAR = 365.25
HARMONICS = 2  # yearly Fourier terms: enough for a smooth season from one or two years of days


@dataclass(frozen=True)
class Calendar:
    """How dates become predictors. `origin` is the middle of the history; `first` and `last` bound
    the trend (years from the origin) so that predictions never extrapolate it."""

    origin: np.datetime64
    first: float
    last: float
    harmonics: int = HARMONICS

    @classmethod
    def from_dates(cls, dates: np.ndarray) -> Calendar:
        dates = np.asarray(dates, "datetime64[D]")
        origin = dates.min() + (dates.max() - dates.min()) // 2
        years = (dates - origin).astype(float) / YEAR
        return cls(origin, float(years.min()), float(years.max()))

    def features(self, dates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """dates (n,) → weekday (n,) int 0 = Monday, season (n, 2·harmonics), trend (n,) in years, clipped."""
        dates = np.asarray(dates, "datetime64[D]")
        day = dates.astype(np.int64)  # days since 1970-01-01, a Thursday
        weekday = (day + 3) % 7
        angle = 2 * np.pi * day[:, None] * np.arange(1, self.harmonics + 1) / YEAR
        season = np.concatenate([np.sin(angle), np.cos(angle)], axis=1)
        trend = np.clip((dates - self.origin).astype(float) / YEAR, self.first, self.last)
        return weekday, season, trend

    def to_dict(self) -> dict:
        return {"origin": str(self.origin), "first": self.first, "last": self.last, "harmonics": self.harmonics}

    @classmethod
    def from_dict(cls, data: dict) -> Calendar:
        return cls(np.datetime64(data["origin"], "D"), data["first"], data["last"], data["harmonics"])


@dataclass(frozen=True)
class DayResponse:
    """Expected metric of channel c under draw d at spend s: scale[d, c] · s ** elasticity[d, c].

    scale, elasticity: (draws, channels)."""

    scale: np.ndarray
    elasticity: np.ndarray

    @property
    def n_draws(self) -> int:
        return self.scale.shape[0]

    def per_channel(self, spend: np.ndarray) -> np.ndarray:
        """spend (..., channels) → (draws, ..., channels) expected metric per channel; 0 at zero spend."""
        spend = np.asarray(spend, float)
        shape = (self.n_draws,) + (1,) * (spend.ndim - 1) + (spend.shape[-1],)
        scale, elasticity = self.scale.reshape(shape), self.elasticity.reshape(shape)
        with np.errstate(divide="ignore"):
            return np.where(spend > 0, scale * np.exp(elasticity * np.log(spend)), 0.0)

    def total(self, spend: np.ndarray) -> np.ndarray:
        """spend (..., channels) → (draws, ...) expected metric summed over channels."""
        return self.per_channel(spend).sum(axis=-1)

    def mean(self) -> MeanResponse:
        return MeanResponse(self)


@dataclass(frozen=True)
class MeanResponse:
    """The posterior-mean response Σ_c mean_d scale·s^β and its gradient: what the optimizer maximizes."""

    day: DayResponse

    def value(self, spend: np.ndarray) -> float:
        return float(self.day.total(spend).mean())

    def gradient(self, spend: np.ndarray) -> np.ndarray:
        """(channels,) ∂/∂s_c of the posterior-mean total: mean_d β·scale·s^(β−1)."""
        spend = np.maximum(np.asarray(spend, float), 1e-12)
        return (self.day.elasticity * self.day.scale * spend ** (self.day.elasticity - 1)).mean(axis=0)


@dataclass(frozen=True)
class ResponseParameters:
    """Every parameter with a leading draw axis (a fit's posterior, or a known truth with one draw).

    The power model has `beta`; the carryover (hill) model has `decay`, `slope` and `saturation` instead
    (nextbest.simulators.hill; beta is then None), and `max_lag`, adstock's maximum lag.
    alpha, beta, holiday, trend, dispersion, ctr, click_dispersion: (draws, channels);
    weekday: (draws, 7), zero-sum; season: (draws, 2·harmonics); cvr, conversion_dispersion:
    (draws, channels) or None when the history has no conversions. spend_center: (channels,) m_c."""

    channels: list[str]
    spend_center: np.ndarray
    calendar: Calendar
    alpha: np.ndarray
    beta: np.ndarray | None
    holiday: np.ndarray
    trend: np.ndarray
    weekday: np.ndarray
    season: np.ndarray
    dispersion: np.ndarray
    ctr: np.ndarray
    click_dispersion: np.ndarray
    cvr: np.ndarray | None = None
    conversion_dispersion: np.ndarray | None = None
    decay: np.ndarray | None = None
    slope: np.ndarray | None = None
    saturation: np.ndarray | None = None
    max_lag: int = MAX_LAG

    ARRAYS = ("alpha", "beta", "holiday", "trend", "weekday", "season", "dispersion", "ctr",
              "click_dispersion", "cvr", "conversion_dispersion", "decay", "slope", "saturation")

    @property
    def kind(self) -> str:
        """'hill' (carryover and saturation) or 'power'."""
        return "hill" if self.decay is not None else "power"

    @property
    def n_draws(self) -> int:
        return self.alpha.shape[0]

    @property
    def has_conversions(self) -> bool:
        return self.cvr is not None

    def take(self, draws: np.ndarray | slice) -> ResponseParameters:
        """The same parameters restricted to some draws."""
        return replace(self, **{name: getattr(self, name)[draws] for name in self.ARRAYS if getattr(self, name) is not None})

    def posterior_mean(self) -> ResponseParameters:
        """One draw: every parameter's posterior mean (a plug-in model)."""
        return replace(self, **{name: getattr(self, name).mean(axis=0, keepdims=True)
                                for name in self.ARRAYS if getattr(self, name) is not None})

    def thin(self, max_draws: int, seed: int = 0) -> ResponseParameters:
        """At most `max_draws` draws, chosen at random without replacement (all of them if fewer)."""
        if self.n_draws <= max_draws:
            return self
        return self.take(np.sort(np.random.default_rng(seed).choice(self.n_draws, max_draws, replace=False)))

    def log_mean_impressions(self, spend: np.ndarray, holiday: np.ndarray, dates: np.ndarray,
                             carry_in: np.ndarray | None = None) -> np.ndarray:
        """spend (n, channels), holiday (n,), dates (n,) → (draws, n, channels) log μ. The power model needs
        spend > 0; the hill model adstocks the spend after `carry_in` ((max_lag − 1, channels) spend of the
        days before, zeros when None)."""
        return self.spend_effect(spend, carry_in) + self.log_day_level(holiday, dates)

    def spend_effect(self, spend: np.ndarray, carry_in: np.ndarray | None = None) -> np.ndarray:
        """(draws, n, channels) the log response to spend relative to the typical spend (see log_mean_impressions)."""
        if self.kind == "hill":
            adstocked = adstock(spend, self.decay, self.max_lag, carry_in)
            return log_hill_relative(adstocked, self.spend_center, self.slope, self.saturation)
        return self.beta[:, None] * (np.log(spend) - self.spend_center)

    def log_day_level(self, holiday: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """(draws, n, channels) log impressions at the typical spend on each day: α, holiday, calendar, trend."""
        weekday, season, trend = self.calendar.features(dates)
        shared = self.weekday[:, weekday] + self.season @ season.T  # (draws, n)
        return (self.alpha[:, None] + self.holiday[:, None] * np.asarray(holiday)[None, :, None]
                + shared[..., None] + self.trend[:, None] * trend[None, :, None])

    def day(self, holiday: bool, date: np.datetime64 | str | None = None, metric: Metric = "clicks") -> DayResponse:
        """The power-law response of one day. Without a date: an average weekday and season, and
        the trend at the end of the history."""
        if metric == "conversions" and not self.has_conversions:
            raise ValueError("this model has no conversions (the history had no 'conversions' column)")
        if self.kind == "hill":
            raise ConfigError("a carryover (hill) model has no one-day response: a day's spend works for days; "
                              "plan a flight with `nextbest budget plan` (or fit with --model power)")
        if date is None:
            calendar = np.zeros(self.n_draws)
            trend = self.calendar.last
        else:
            weekday, season, trend_ = self.calendar.features(np.array([date], "datetime64[D]"))
            calendar = self.weekday[:, weekday[0]] + self.season @ season[0]
            trend = trend_[0]
        log_scale = (self.alpha - self.beta * self.spend_center + self.holiday * float(holiday)
                     + calendar[:, None] + self.trend * trend)
        if metric in ("clicks", "conversions"):
            log_scale = log_scale + np.log(self.ctr)
        if metric == "conversions":
            log_scale = log_scale + np.log(self.cvr)
        return DayResponse(np.exp(log_scale), self.beta)

    def sample(self, spend: np.ndarray, holiday: np.ndarray, dates: np.ndarray,
               rng: np.random.Generator, carry_in: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Counts each draw's world produces on the given days: impressions, clicks and (if modelled)
        conversions, each (draws, n, channels). Days without spend get no impressions."""
        paid = spend > 0
        spent = spend if self.kind == "hill" else np.where(paid, spend, 1.0)
        mean = np.where(paid, np.exp(self.log_mean_impressions(spent, holiday, dates, carry_in)), 0.0)
        impressions = _negative_binomial(mean, self.dispersion[:, None], rng)
        counts = {"impressions": impressions,
                  "clicks": _thinned(impressions, self.ctr[:, None], self.click_dispersion[:, None], rng)}
        if self.has_conversions:
            counts["conversions"] = _thinned(counts["clicks"], self.cvr[:, None], self.conversion_dispersion[:, None], rng)
        return counts

    def to_dict(self) -> dict:
        """JSON-ready (e.g. the truth of a synthetic history)."""
        arrays = {name: getattr(self, name) for name in self.ARRAYS if getattr(self, name) is not None}
        return {"channels": self.channels, "spend_center": self.spend_center, "calendar": self.calendar.to_dict(),
                "model": self.kind, "max_lag": self.max_lag, **arrays}

    @classmethod
    def from_dict(cls, data: dict) -> ResponseParameters:
        arrays = {name: None if data.get(name) is None else np.asarray(data[name], float) for name in cls.ARRAYS}
        return cls(channels=list(data["channels"]), spend_center=np.asarray(data["spend_center"], float),
                   calendar=Calendar.from_dict(data["calendar"]), max_lag=int(data.get("max_lag", MAX_LAG)), **arrays)


def _negative_binomial(mean: np.ndarray, concentration: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.negative_binomial(concentration, concentration / (concentration + mean))


def _thinned(total: np.ndarray, rate: np.ndarray, concentration: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """NegativeBinomial(total · rate, concentration), never above `total` (clicks ≤ impressions)."""
    return np.minimum(_negative_binomial(total * rate, concentration, rng), total)
