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
    1/√φ_c         ~ LogNormal(log 0.2, 1)     impressions overdispersion (coefficient of variation)
    logit CTR_c    ~ Normal(logit(Σ clicks / Σ impressions), 1)
    1/√ψ_c         ~ LogNormal(log 0.2, 1)     clicks overdispersion (day-to-day CTR variation)
    logit CVR_c, 1/√ν_c: as for clicks, from conversions / clicks

1/√φ is the coefficient of variation that overdispersion adds to a large count. Its prior is
log-normal rather than Stan's half-normal: when a count is nearly Poisson the likelihood is flat
towards 0, and a half-normal then leaves the sampler a long exponential tail in log space (it
mixed poorly there: effective sample sizes of ~60 in 600 draws), where the log-normal's is Gaussian.

Conditionally on the observed impressions the click (and conversion) parameters are independent
of the impression parameters, so the posterior factorizes; it is still sampled as one program so
that one set of diagnostics covers everything.

`response_model` is the NumPyro program: the readable specification. `potential` is its fast
twin for sampling, the same log density written directly in JAX (tested equal to the program's
up to a constant): no effect handlers, no constant terms, and a Stirling log-gamma instead of
XLA's general one. It halves the cost of a gradient and of compiling the sampler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.data.channels import ChannelHistory
from nextbest.errors import DataError
from nextbest.simulators.response import Calendar

PRIORS = {
    "alpha": "Normal(log mean impressions of the channel, 1)",
    "beta": "Normal(0.5, 0.5)",
    "holiday": "Normal(0, 0.5)",
    "trend": "Normal(0, 0.5) per year",
    "weekday": "ZeroSumNormal(0.3)",
    "season": "Normal(0, 0.3)",
    "dispersion": "1/sqrt(dispersion) ~ LogNormal(log 0.2, 1)",
    "ctr": "logit ~ Normal(logit(pooled CTR), 1)",
    "click_dispersion": "1/sqrt(click_dispersion) ~ LogNormal(log 0.2, 1)",
    "cvr": "logit ~ Normal(logit(pooled CVR), 1)",
    "conversion_dispersion": "1/sqrt(conversion_dispersion) ~ LogNormal(log 0.2, 1)",
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
    spend: np.ndarray | None = None  # (days, channels) as spent: what the carryover model adstocks

    @classmethod
    def from_history(cls, history: ChannelHistory, source: str = "history") -> ModelData:
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
            spend=history.spend,
        )


    def arrays(self) -> dict[str, np.ndarray]:
        """What the NumPyro program reads, as a dict of arrays (a pytree, so the compiled sampler is
        reused for any history of the same shape)."""
        names = ["x", "paid", "holiday", "weekday", "season", "trend", "impressions", "clicks", "alpha_location", "ctr_location"]
        if self.conversions is not None:
            names += ["conversions", "cvr_location"]
        return {name: getattr(self, name) for name in names}


def initial_point(data: dict) -> dict[str, np.ndarray]:
    """A reasonable start in the sampler's unconstrained space (log for the log-normal scales, six free
    values for the zero-sum weekday effect), computed without running the model (no JAX compilation)."""
    n = data["x"].shape[1]
    point = {
        "alpha": np.asarray(data["alpha_location"], float),
        "beta": np.full(n, 0.5),
        "holiday": np.zeros(n),
        "trend": np.zeros(n),
        "inv_sqrt_dispersion": np.full(n, np.log(0.2)),
        "logit_ctr": np.asarray(data["ctr_location"], float),
        "inv_sqrt_click_dispersion": np.full(n, np.log(0.2)),
        "weekday": np.zeros(6),
        "season": np.zeros(data["season"].shape[1]),
    }
    if "conversions" in data:
        point |= {"logit_cvr": np.asarray(data["cvr_location"], float), "inv_sqrt_conversion_dispersion": np.full(n, np.log(0.2))}
    return point


def _logit_ratio(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    rate = (part + 0.5) / (whole + 1.0)  # a half count each way keeps 0 and 1 finite
    return np.log(rate) - np.log1p(-rate)


def response_model(data: dict) -> None:
    """The NumPyro program; `data` is `ModelData.arrays()`."""
    response_program(data, _power_effect)


def _power_effect(data: dict):
    """β·x: the power law's log response to the day's spend, (days, channels)."""
    import numpyro
    import numpyro.distributions as dist

    with numpyro.plate("channel", data["x"].shape[1]):
        beta = numpyro.sample("beta", dist.Normal(0.5, 0.5))
    return beta * data["x"]


def response_program(data: dict, spend_effect) -> None:
    """The program around a model's response to spend: `spend_effect(data)` samples its own parameters
    and returns the (days, channels) log response relative to the channel's typical spend."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    n_channels = data["x"].shape[1]
    with numpyro.plate("channel", n_channels):
        alpha = numpyro.sample("alpha", dist.Normal(jnp.asarray(data["alpha_location"]), 1.0))
        holiday = numpyro.sample("holiday", dist.Normal(0.0, 0.5))
        trend = numpyro.sample("trend", dist.Normal(0.0, 0.5))
        inv_sqrt_dispersion = numpyro.sample("inv_sqrt_dispersion", dist.LogNormal(np.log(0.2), 1.0))
        logit_ctr = numpyro.sample("logit_ctr", dist.Normal(jnp.asarray(data["ctr_location"]), 1.0))
        inv_sqrt_click_dispersion = numpyro.sample("inv_sqrt_click_dispersion", dist.LogNormal(np.log(0.2), 1.0))
        if "conversions" in data:
            logit_cvr = numpyro.sample("logit_cvr", dist.Normal(jnp.asarray(data["cvr_location"]), 1.0))
            inv_sqrt_conversion_dispersion = numpyro.sample("inv_sqrt_conversion_dispersion", dist.LogNormal(np.log(0.2), 1.0))
    weekday = numpyro.sample("weekday", dist.ZeroSumNormal(0.3, event_shape=(7,)))
    season = numpyro.sample("season", dist.Normal(0.0, 0.3).expand([data["season"].shape[1]]).to_event(1))

    dispersion = numpyro.deterministic("dispersion", inv_sqrt_dispersion**-2)
    click_dispersion = numpyro.deterministic("click_dispersion", inv_sqrt_click_dispersion**-2)
    numpyro.deterministic("ctr", jax_sigmoid(logit_ctr))
    if "conversions" in data:
        numpyro.deterministic("cvr", jax_sigmoid(logit_cvr))
        conversion_dispersion = numpyro.deterministic("conversion_dispersion", inv_sqrt_conversion_dispersion**-2)
    calendar = weekday[data["weekday"]] + jnp.asarray(data["season"]) @ season
    log_mean = (alpha + spend_effect(data) + holiday * data["holiday"][:, None] + calendar[:, None]
                + trend * data["trend"][:, None])

    with numpyro.plate("day", data["x"].shape[0], dim=-2), numpyro.plate("channels", n_channels, dim=-1):
        impressions = numpyro.sample("impressions", _negative_binomial(log_mean, dispersion, data.get("fitted", data["paid"])),
                                     obs=data["impressions"])
        # E[clicks | impressions] = impressions · CTR; log CTR = −softplus(−logit CTR), stable for any logit.
        log_ctr = -jnp.logaddexp(0.0, -logit_ctr)
        clicks = numpyro.sample("clicks", _negative_binomial(_log(impressions) + log_ctr, click_dispersion, impressions > 0),
                                obs=data["clicks"])
        if "conversions" in data:
            log_cvr = -jnp.logaddexp(0.0, -logit_cvr)
            numpyro.sample("conversions", _negative_binomial(_log(clicks) + log_cvr, conversion_dispersion, clicks > 0),
                           obs=data["conversions"])


def _negative_binomial(log_mean, concentration, mask):
    """NegativeBinomial2(mean e^log_mean, concentration) written with logits log μ − log φ (stable for large
    counts); masked rows (no spend, or nothing to click on) contribute nothing, as their count is 0."""
    import jax.numpy as jnp
    import numpyro.distributions as dist

    return dist.NegativeBinomialLogits(concentration, log_mean - jnp.log(concentration)).mask(mask)


def _log(counts):
    import jax.numpy as jnp

    return jnp.log(jnp.maximum(counts, 1))


def jax_sigmoid(x):
    import jax

    return jax.nn.sigmoid(x)


# --- the same posterior, written for speed ------------------------------------------------------
SCALES = ("inv_sqrt_dispersion", "inv_sqrt_click_dispersion", "inv_sqrt_conversion_dispersion")


def zero_sum_basis(n: int = 7) -> np.ndarray:
    """(n − 1, n) the linear map NumPyro's ZeroSumTransform applies to its n − 1 free values."""
    free = np.eye(n - 1)
    total = free.sum(axis=1, keepdims=True)
    norm = total / (np.sqrt(n) + n)
    return np.concatenate([free, norm - total / np.sqrt(n)], axis=1) - norm


def log_gamma(x):
    """log Γ(x) for x > 0 to ~1e-8: Stirling's series at x + 6 and the recurrence back to x.
    Cheaper than XLA's lgamma, which also handles negative arguments, and so is its derivative."""
    import jax.numpy as jnp

    y = x + 6.0
    series = 1 / (12 * y) - 1 / (360 * y**3) + 1 / (1260 * y**5)
    return ((y - 0.5) * jnp.log(y) - y + 0.5 * np.log(2 * np.pi) + series
            - jnp.log(x * (x + 1) * (x + 2) * (x + 3) * (x + 4) * (x + 5)))


def _negative_binomial_log_likelihood(counts, log_mean, log_scale, mask):
    """Σ log NegativeBinomial2(counts | e^log_mean, φ = e^(−2·log_scale)) without the −log k! term."""
    import jax.numpy as jnp

    log_phi = -2.0 * log_scale
    phi = jnp.exp(log_phi)
    terms = log_gamma(counts + phi) - log_gamma(phi) + phi * log_phi + counts * log_mean \
        - (counts + phi) * jnp.logaddexp(log_mean, log_phi)
    return jnp.where(mask, terms, 0.0).sum()


def potential(z: dict, data: dict):
    """−log posterior density (up to a constant) at unconstrained parameters `z` (as `initial_point`)."""
    return shared_potential(z, data, z["beta"] * data["x"], _normal(z["beta"], 0.5, 0.5))


def _normal(x, location, scale):
    return (-0.5 * ((x - location) / scale) ** 2).sum()


def shared_potential(z: dict, data: dict, spend_effect, spend_prior):
    """−log posterior density given a model's (days, channels) log response to spend and its parameters'
    log prior density (in the sampler's unconstrained space, Jacobian included).

    The two or three negative-binomial counts (impressions, clicks, conversions) are stacked into one
    (counts, days, channels) array and scored by one expression: a third of the code to compile."""
    import jax.numpy as jnp

    normal = _normal
    weekday = z["weekday"] @ zero_sum_basis()
    calendar = weekday[data["weekday"]] + data["season"] @ z["season"]
    impressions, clicks = data["impressions"], data["clicks"]
    # E[impressions] = exp(α + β·x + γ·holiday + calendar + δ·trend); E[clicks | impressions] = impressions · CTR, …
    counts = [impressions, clicks]
    log_means = [z["alpha"] + spend_effect + z["holiday"] * data["holiday"][:, None] + calendar[:, None]
                 + z["trend"] * data["trend"][:, None],
                 _log(impressions) - jnp.logaddexp(0.0, -z["logit_ctr"])]  # log CTR = −softplus(−logit)
    log_scales = [z["inv_sqrt_dispersion"], z["inv_sqrt_click_dispersion"]]
    masks = [data["fitted"] if "fitted" in data else data["paid"], impressions > 0]
    log_density = (
        normal(z["alpha"], data["alpha_location"], 1.0) + spend_prior
        + normal(z["holiday"], 0.0, 0.5) + normal(z["trend"], 0.0, 0.5) + normal(z["weekday"], 0.0, 0.3)
        + normal(z["season"], 0.0, 0.3) + normal(z["logit_ctr"], data["ctr_location"], 1.0)
        # a LogNormal(log 0.2, 1) scale, in the log space the sampler moves in (Jacobian included)
        + sum(normal(z[name], np.log(0.2), 1.0) for name in SCALES if name in z)
    )
    if "conversions" in data:
        counts.append(data["conversions"])
        log_means.append(_log(clicks) - jnp.logaddexp(0.0, -z["logit_cvr"]))
        log_scales.append(z["inv_sqrt_conversion_dispersion"])
        masks.append(clicks > 0)
        log_density += normal(z["logit_cvr"], data["cvr_location"], 1.0)
    log_density += _negative_binomial_log_likelihood(jnp.stack(counts), jnp.stack(log_means),
                                                     jnp.stack(log_scales)[:, None, :], jnp.stack(masks))
    return -log_density


def constrain(z: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Unconstrained draws (..., k) → the natural-scale parameters (numpy; no compilation)."""
    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    values = {name: z[name] for name in ("alpha", "beta", "holiday", "trend", "season") if name in z}
    values["weekday"] = z["weekday"] @ zero_sum_basis()
    values["dispersion"] = np.exp(-2 * z["inv_sqrt_dispersion"])
    values["ctr"] = sigmoid(z["logit_ctr"])
    values["click_dispersion"] = np.exp(-2 * z["inv_sqrt_click_dispersion"])
    if "logit_cvr" in z:
        values["cvr"] = sigmoid(z["logit_cvr"])
        values["conversion_dispersion"] = np.exp(-2 * z["inv_sqrt_conversion_dispersion"])
    return values
