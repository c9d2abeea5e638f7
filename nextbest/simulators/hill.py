"""The carryover model: geometric adstock and Hill saturation in place of the power law.

    log μ_tc = α_c + softplus(s_c·k_c) − softplus(s_c·(k_c − u_tc)) + γ_c·holiday_t + calendar_t + δ_c·trend_t
    u_tc     = log A_tc − m_c,   A_tc = Σ_l θ_c^l s_{t−l,c} / Σ_l θ_c^l   (l < L, see adstock.py)

with the counts, calendar and priors of the power model (model.py) otherwise. α_c is again the log
of the expected impressions at the channel's typical spend e^m, so it stays nearly uncorrelated
with the shape. The first L − 1 days of a history are left out of the likelihood: the spend
before the history, which their adstock needs, is unknown. New parameters and their priors:

    θ_c  decay            ~ Beta(1, 3)      (PyMC-Marketing's default for GeometricAdstock)
    s_c  Hill slope       ~ Beta(2, 2)      on (0, 1): concave, so plans have one optimum
    k_c  log κ_c − m_c    ~ Normal(0.5, 1)  half-saturation around 1.6 × the typical spend

The sampler moves in logit θ, logit s and q = s·k (k = q / s; so q | s ~ Normal(0.5·s, s)); the
densities below include those Jacobians (log θ + 3·log(1 − θ) for Beta(1, 3), 2·log s + 2·log(1 − s)
for Beta(2, 2), −log s for q). Why q: the curve is softplus(q) − softplus(q − s·u), so q is what
the data pin down, while s and k trade off along a curved ridge (s·k nearly constant) that NUTS
crossed with small steps. Measured on a 292-day carryover history, 2 × 2,000 draws: 30 leapfrog
steps per draw sampling (s, k), 14 sampling (s, q), with a larger smallest ESS.
"""

from __future__ import annotations

import numpy as np

from nextbest.simulators.adstock import MAX_LAG
from nextbest.simulators.model import ModelData, initial_point, response_program, shared_potential

PRIORS = {
    "decay": "Beta(1, 3)",
    "slope": "Beta(2, 2)",
    "saturation": "log(half-saturation spend / typical spend) ~ Normal(0.5, 1)",
}
SATURATION_PRIOR = (0.5, 1.0)


def hill_arrays(data: ModelData, max_lag: int = MAX_LAG) -> dict[str, np.ndarray]:
    """The power model's arrays plus the spend lagged 0 … L − 1 days (L, days, channels), the centre of
    the log spend, and `fitted`: the days with spend after the first L − 1 (whose adstock is known)."""
    arrays = data.arrays()
    spend = np.asarray(data.spend, float)
    lagged = np.zeros((max_lag, *spend.shape))
    for lag in range(max_lag):
        lagged[lag, lag:] = spend[: spend.shape[0] - lag]
    fitted = data.paid.copy()
    fitted[: max_lag - 1] = False
    return arrays | {"lagged": lagged, "center": np.asarray(data.spend_center, float), "fitted": fitted}


def hill_initial_point(arrays: dict) -> dict[str, np.ndarray]:
    """Start: decay 0.25, slope 0.6, half-saturation at 1.6 × the typical spend (unconstrained values)."""
    point = {k: v for k, v in initial_point(arrays).items() if k != "beta"}
    n = arrays["x"].shape[1]
    return point | {"decay": np.full(n, np.log(0.25 / 0.75)), "slope": np.full(n, np.log(0.6 / 0.4)),
                    "scaled_saturation": np.full(n, 0.6 * SATURATION_PRIOR[0])}


def _effect(lagged, center, decay, slope, saturation):
    """(days, channels) log H(A) − log H(e^m) for decay θ, slope s, saturation k (channels,) (JAX)."""
    import jax.numpy as jnp

    powers = decay[None, :] ** jnp.arange(lagged.shape[0])[:, None]  # (L, channels)
    adstocked = jnp.einsum("ltc,lc->tc", lagged, powers / powers.sum(axis=0))
    u = jnp.log(jnp.maximum(adstocked, 1e-9)) - center
    return jnp.logaddexp(0.0, slope * saturation) - jnp.logaddexp(0.0, slope * (saturation - u))


def hill_potential(z: dict, data: dict):
    """−log posterior density of the carryover model at unconstrained `z` (as `hill_initial_point`)."""
    import jax.numpy as jnp

    decay, slope = 1 / (1 + jnp.exp(-z["decay"])), 1 / (1 + jnp.exp(-z["slope"]))
    # log θ + 3 log(1 − θ) and 2 log s + 2 log(1 − s) in logit space: −softplus(−z) = log σ(z), −softplus(z) = log(1 − σ(z))
    prior = (-jnp.logaddexp(0.0, -z["decay"]) - 3 * jnp.logaddexp(0.0, z["decay"])
             - 2 * jnp.logaddexp(0.0, -z["slope"]) - 2 * jnp.logaddexp(0.0, z["slope"])).sum()
    # q = s·k with k ~ Normal(m, σ): q | s ~ Normal(m·s, σ·s), whose log density carries −log s
    location, scale = SATURATION_PRIOR[0] * slope, SATURATION_PRIOR[1] * slope
    prior += (-0.5 * ((z["scaled_saturation"] - location) / scale) ** 2 - jnp.log(slope)).sum()
    effect = _effect(data["lagged"], data["center"], decay, slope, z["scaled_saturation"] / slope)
    return shared_potential(z, data, effect, prior)


def hill_response_model(data: dict) -> None:
    """The NumPyro program of the carryover model; `data` is `hill_arrays(...)`."""
    response_program(data, _hill_effect)


def _hill_effect(data: dict):
    import numpyro
    import numpyro.distributions as dist

    with numpyro.plate("channel", data["x"].shape[1]):
        decay = numpyro.sample("decay", dist.Beta(1.0, 3.0))
        slope = numpyro.sample("slope", dist.Beta(2.0, 2.0))
        scaled = numpyro.sample("scaled_saturation", dist.Normal(SATURATION_PRIOR[0] * slope, SATURATION_PRIOR[1] * slope))
        saturation = numpyro.deterministic("saturation", scaled / slope)
    return _effect(data["lagged"], data["center"], decay, slope, saturation)


def hill_constrain(z: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The new parameters on their natural scale (the shared ones: model.constrain)."""
    slope = 1 / (1 + np.exp(-z["slope"]))
    return {"decay": 1 / (1 + np.exp(-z["decay"])), "slope": slope, "saturation": z["scaled_saturation"] / slope}
