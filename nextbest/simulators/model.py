"""The response model as a NumPyro program, with its priors (see response.py for the likelihood).

Predictors are centred so that the intercept and slope are nearly uncorrelated a posteriori:
x = log(spend) − m_c with m_c the channel's mean log spend, seasonality and the weekday effect
sum to zero, and the trend is in years from the middle of the history. Priors (weakly
informative on those scales; the locations of α and logit CTR come from the data, as in
rstanarm's autoscaling):

    α_c            ~ Normal(log mean impressions_c, 1)
    β_c            ~ Normal(0.5, 0.5)          elasticity: 0 … 1 is diminishing returns
    γ_c            ~ Normal(0, 0.5)            holiday lift, log scale
    δ_c            ~ Normal(0, 0.5)            trend per year, log scale
    w              ~ ZeroSumNormal(0.3)        weekday, 7 values summing to 0
    a_k, b_k       ~ Normal(0, 0.3)            yearly Fourier terms
    1/√φ_c         ~ HalfNormal(1)             impressions overdispersion (Stan's recommendation)
    logit CTR_c    ~ Normal(logit(Σ clicks / Σ impressions), 1)
    log κ_c        ~ Normal(7, 2)              day-to-day CTR variation (κ → ∞ is binomial)
    logit CVR_c, log ν_c: as for CTR, from conversions / clicks

Conditionally on the observed impressions the click (and conversion) parameters are independent
of the impression parameters, so the posterior factorizes; it is still sampled as one program so
that one set of diagnostics covers everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.budget.history import ChannelHistory
from nextbest.errors import DataError
from nextbest.simulators.response import Calendar

PRIORS = {
    "alpha": "Normal(log mean impressions of the channel, 1)",
    "beta": "Normal(0.5, 0.5)",
    "holiday": "Normal(0, 0.5)",
    "trend": "Normal(0, 0.5) per year",
    "weekday": "ZeroSumNormal(0.3)",
    "season": "Normal(0, 0.3)",
    "dispersion": "1/sqrt(dispersion) ~ HalfNormal(1)",
    "ctr": "logit ~ Normal(logit(pooled CTR), 1)",
    "ctr_concentration": "log ~ Normal(7, 2)",
    "cvr": "logit ~ Normal(logit(pooled CVR), 1)",
    "cvr_concentration": "log ~ Normal(7, 2)",
}


@dataclass(frozen=True)
class ModelData:
    """Arrays the NumPyro program reads. x, paid: (days, channels); holiday, weekday, trend: (days,);
    season: (days, 2·harmonics); counts (days, channels) int, conversions None when absent."""

    x: np.ndarray
    paid: np.ndarray
    holiday: np.ndarray
    weekday: np.ndarray
    season: np.ndarray
    trend: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray | None
    alpha_location: np.ndarray
    ctr_location: np.ndarray
    cvr_location: np.ndarray | None
    spend_center: np.ndarray
    calendar: Calendar

    @classmethod
    def from_history(cls, history: ChannelHistory, source: str = "history") -> "ModelData":
        """Centre the predictors; refuse histories the model cannot learn a response from."""
        paid = history.spend > 0
        log_spend = np.log(np.where(paid, history.spend, 1.0))
        for c, name in enumerate(history.channels):
            days = paid[:, c]
            if days.sum() < 14:
                raise DataError(f"{source}: channel '{name}' has spend on {days.sum()} days; the model needs at least 14")
            if log_spend[days, c].std() < 0.01:
                raise DataError(
                    f"{source}: channel '{name}' spent the same amount every day; the response to spend cannot be "
                    "learned without some variation in spend"
                )
            if history.clicks[days, c].sum() == 0:
                raise DataError(f"{source}: channel '{name}' has no clicks at all; the click-through rate cannot be learned")
        center = np.array([log_spend[paid[:, c], c].mean() for c in range(history.n_channels)])
        calendar = Calendar.from_dates(history.dates)
        weekday, season, trend = calendar.features(history.dates)
        mean_impressions = np.array([history.impressions[paid[:, c], c].mean() for c in range(history.n_channels)])
        conversions = history.conversions
        return cls(
            x=np.where(paid, log_spend - center, 0.0),
            paid=paid,
            holiday=history.holiday.astype(float),
            weekday=weekday,
            season=season,
            trend=trend,
            impressions=history.impressions,
            clicks=history.clicks,
            conversions=conversions,
            alpha_location=np.log(np.maximum(mean_impressions, 1.0)),
            ctr_location=_logit_ratio(history.clicks.sum(0), history.impressions.sum(0)),
            cvr_location=None if conversions is None else _logit_ratio(conversions.sum(0), history.clicks.sum(0)),
            spend_center=center,
            calendar=calendar,
        )


def _logit_ratio(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    rate = (part + 0.5) / (whole + 1.0)  # a half count each way keeps 0 and 1 finite
    return np.log(rate) - np.log1p(-rate)


def response_model(data: ModelData, predictive: bool = False) -> None:
    """The NumPyro program. With `predictive`, counts are left unobserved (for posterior predictive checks)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    n_channels = data.x.shape[1]
    with numpyro.plate("channel", n_channels):
        alpha = numpyro.sample("alpha", dist.Normal(jnp.asarray(data.alpha_location), 1.0))
        beta = numpyro.sample("beta", dist.Normal(0.5, 0.5))
        holiday = numpyro.sample("holiday", dist.Normal(0.0, 0.5))
        trend = numpyro.sample("trend", dist.Normal(0.0, 0.5))
        inv_sqrt_dispersion = numpyro.sample("inv_sqrt_dispersion", dist.HalfNormal(1.0))
        logit_ctr = numpyro.sample("logit_ctr", dist.Normal(jnp.asarray(data.ctr_location), 1.0))
        log_ctr_concentration = numpyro.sample("log_ctr_concentration", dist.Normal(7.0, 2.0))
        if data.conversions is not None:
            logit_cvr = numpyro.sample("logit_cvr", dist.Normal(jnp.asarray(data.cvr_location), 1.0))
            log_cvr_concentration = numpyro.sample("log_cvr_concentration", dist.Normal(7.0, 2.0))
    weekday = numpyro.sample("weekday", dist.ZeroSumNormal(0.3, event_shape=(7,)))
    season = numpyro.sample("season", dist.Normal(0.0, 0.3).expand([data.season.shape[1]]).to_event(1))

    dispersion = numpyro.deterministic("dispersion", inv_sqrt_dispersion**-2)
    ctr = numpyro.deterministic("ctr", _sigmoid(logit_ctr))
    ctr_concentration = numpyro.deterministic("ctr_concentration", jnp.exp(log_ctr_concentration))
    if data.conversions is not None:
        cvr = numpyro.deterministic("cvr", _sigmoid(logit_cvr))
        cvr_concentration = numpyro.deterministic("cvr_concentration", jnp.exp(log_cvr_concentration))
    calendar = weekday[data.weekday] + jnp.asarray(data.season) @ season
    log_mean = (alpha + beta * data.x + holiday * data.holiday[:, None] + calendar[:, None]
                + trend * data.trend[:, None])

    with numpyro.plate("day", data.x.shape[0], dim=-2), numpyro.plate("channels", n_channels, dim=-1):
        # NegativeBinomial2(mean μ, concentration φ) written with logits log μ − log φ: stable for large counts.
        impressions = numpyro.sample(
            "impressions",
            dist.NegativeBinomialLogits(dispersion, log_mean - jnp.log(dispersion)).mask(data.paid),
            obs=None if predictive else data.impressions,
        )
        clicks = numpyro.sample(
            "clicks",
            dist.BetaBinomial(ctr * ctr_concentration, (1 - ctr) * ctr_concentration, total_count=impressions),
            obs=None if predictive else data.clicks,
        )
        if data.conversions is not None:
            numpyro.sample(
                "conversions",
                dist.BetaBinomial(cvr * cvr_concentration, (1 - cvr) * cvr_concentration, total_count=clicks),
                obs=None if predictive else data.conversions,
            )


def _sigmoid(x):
    import jax

    return jax.nn.sigmoid(x)
