"""Fitting the response model by MCMC (NumPyro's NUTS) into ArviZ InferenceData.

    fit = fit_response(history, FitConfig(draws=1000, chains=2))
    fit.idata              # posterior, sample_stats, posterior_predictive, observed_data
    fit.parameters         # ResponseParameters: every draw, chains stacked

Why it is fast (benchmarks/bench_budget.py measures it against a straightforward NumPyro fit):
centred predictors and a zero-sum weekday effect make the posterior nearly Gaussian; its mode
and curvature (a Laplace approximation, found by L-BFGS in well under a second) give NUTS a
dense mass matrix and over-dispersed starting points from the first iteration, so warmup is
short and trajectories are a few leapfrog steps; the chains are vectorized into one compiled
program. Everything runs in 64-bit floats: the counts' log-densities are sums of log-gamma
terms near 10⁵, which single precision rounds to noise that makes NUTS shrink its step to
nothing (measured: a float32 fit of this model does not finish warmup in ten minutes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from pydantic import Field

from nextbest.budget.history import ChannelHistory
from nextbest.config import Section
from nextbest.simulators.model import ModelData, response_model
from nextbest.simulators.response import HARMONICS, ResponseParameters

# Natural-scale parameters kept in the posterior group (the sampler's unconstrained helpers are dropped).
PARAMETERS = ("alpha", "beta", "holiday", "trend", "weekday", "season", "dispersion", "ctr", "click_dispersion",
              "cvr", "conversion_dispersion")
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class FitConfig(Section):
    draws: int = Field(1000, ge=10, description="posterior draws per chain, after warmup")
    chains: int = Field(2, ge=1, le=16, description="independent chains (R-hat needs at least 2 to compare)")
    warmup: int | None = Field(None, ge=10, description="warmup (adaptation) iterations per chain; default: draws")
    target_accept: float = Field(0.85, gt=0.5, lt=1.0, description="NUTS target acceptance; raise it if there are divergences")
    max_tree_depth: int = Field(10, ge=3, le=15)
    seed: int = 0
    max_rhat: float = Field(1.01, gt=1.0, description="refuse the fit above this split R-hat (Vehtari et al. 2021)")
    min_ess: float = Field(400.0, ge=0, description="refuse the fit below this bulk or tail effective sample size")
    max_divergences: int = Field(0, ge=0, description="refuse the fit with more divergent transitions than this")
    predictive_draws: int = Field(200, ge=10, description="posterior draws used for the posterior-predictive check")


@dataclass
class ResponseFit:
    idata: "object"  # arviz.InferenceData
    parameters: ResponseParameters
    config: FitConfig
    seconds: float


def fit_response(
    history: ChannelHistory,
    config: FitConfig | None = None,
    *,
    source: str = "history",
    progress: Callable[[int], None] | None = None,
) -> ResponseFit:
    """Sample the posterior. `progress(n)` is called as iterations per chain complete (warmup + draws in all)."""
    import jax

    config = config or FitConfig()
    data = ModelData.from_history(history, source)
    started = time.perf_counter()
    with jax.enable_x64(True):
        posterior, sample_stats = _sample(data, config, progress)
    parameters = parameters_from_posterior(posterior, history.channels, data)
    idata = _inference_data(posterior, sample_stats, history, data, parameters, config)
    return ResponseFit(idata, parameters, config, time.perf_counter() - started)


def _sample(data: ModelData, config: FitConfig, progress: Callable[[int], None] | None):
    import jax
    from numpyro.infer import MCMC, NUTS

    key_start, key_run = jax.random.split(jax.random.PRNGKey(config.seed))
    arrays = data.arrays()
    starts, inverse_mass_matrix = laplace_start(arrays, config.chains, key_start)
    warmup = config.warmup or config.draws
    chunk = _chunk(config.draws)
    kernel = NUTS(response_model, target_accept_prob=config.target_accept, max_tree_depth=config.max_tree_depth,
                  dense_mass=True, inverse_mass_matrix=inverse_mass_matrix)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=chunk, num_chains=config.chains,
                chain_method="vectorized", progress_bar=False, jit_model_args=True)
    fields = ("diverging", "num_steps", "accept_prob", "energy")
    mcmc.warmup(key_run, arrays, extra_fields=fields, init_params=starts)
    if progress:
        progress(warmup)
    samples, stats = [], []
    for _ in range(config.draws // chunk):
        mcmc.run(mcmc.post_warmup_state.rng_key, arrays, extra_fields=fields)
        mcmc.post_warmup_state = mcmc.last_state
        samples.append(jax.device_get(mcmc.get_samples(group_by_chain=True)))
        stats.append(jax.device_get(mcmc.get_extra_fields(group_by_chain=True)))
        if progress:
            progress(chunk)
    posterior = {name: np.concatenate([s[name] for s in samples], axis=1) for name in PARAMETERS if name in samples[0]}
    renamed = {"diverging": "diverging", "num_steps": "n_steps", "accept_prob": "acceptance_rate", "energy": "energy"}
    sample_stats = {new: np.concatenate([s[old] for s in stats], axis=1) for old, new in renamed.items()}
    return posterior, sample_stats


def laplace_start(data: dict, chains: int, key) -> tuple[dict, "object"]:
    """Starting points and a dense inverse mass matrix from the posterior's mode and curvature.

    Returns init params (unconstrained, one row per chain, drawn from the Laplace approximation
    with its scale doubled so that R-hat can detect chains that do not converge) and the
    Laplace covariance, in the order NumPyro flattens the parameters."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from numpyro.infer import init_to_median
    from numpyro.infer.util import initialize_model
    from scipy.optimize import minimize

    info = initialize_model(key, response_model, model_args=(data,), init_strategy=init_to_median(num_samples=15))
    start, unravel = ravel_pytree(info.param_info.z)

    def potential(z):
        return info.potential_fn(unravel(z))

    value_and_grad = jax.jit(jax.value_and_grad(potential))
    result = minimize(lambda z: tuple(np.asarray(v, float) for v in value_and_grad(z)), np.asarray(start),
                      jac=True, method="L-BFGS-B")
    hessian = np.asarray(jax.jit(jax.hessian(potential))(result.x))
    covariance = np.linalg.inv(hessian + 1e-8 * np.eye(len(start)))
    if not np.all(np.isfinite(covariance)) or np.any(np.linalg.eigvalsh((covariance + covariance.T) / 2) <= 0):
        covariance = np.eye(len(start)) * 0.01  # a flat direction: let warmup learn the scales instead
    covariance = (covariance + covariance.T) / 2
    noise = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1))).multivariate_normal(
        np.zeros(len(start)), 4 * covariance, size=chains)
    starts = jax.vmap(unravel)(jnp.asarray(result.x + noise))
    return starts, jnp.asarray(covariance)


def _chunk(draws: int) -> int:
    """Draws per sampling call: about a tenth, dividing `draws` exactly (the compiled program has a fixed length)."""
    for size in range(max(1, draws // 10), draws // 2 + 1):
        if draws % size == 0:
            return size
    return draws


def parameters_from_posterior(posterior: dict[str, np.ndarray], channels: list[str], data: ModelData) -> ResponseParameters:
    """(chain, draw, ...) arrays → ResponseParameters with chains stacked into one draw axis."""
    flat = {name: np.asarray(v, float).reshape(-1, *np.shape(v)[2:]) for name, v in posterior.items()}
    return ResponseParameters(channels=list(channels), spend_center=data.spend_center, calendar=data.calendar,
                              **{name: flat.get(name) for name in ResponseParameters.ARRAYS})


def _inference_data(posterior, sample_stats, history: ChannelHistory, data: ModelData,
                    parameters: ResponseParameters, config: FitConfig):
    import arviz as az

    rng = np.random.default_rng(config.seed)
    replicated = parameters.thin(config.predictive_draws, config.seed).sample(
        history.spend, history.holiday, history.dates, rng)
    observed = {"impressions": history.impressions, "clicks": history.clicks}
    if history.conversions is not None:
        observed["conversions"] = history.conversions
    per_channel = ["alpha", "beta", "holiday", "trend", "dispersion", "ctr", "click_dispersion", "cvr", "conversion_dispersion"]
    dims = {name: ["channel"] for name in per_channel} | {"weekday": ["day_of_week"], "season": ["season_term"]}
    dims |= {name: ["date", "channel"] for name in (*observed, "spend")} | {"holiday_flag": ["date"]}
    coords = {
        "channel": history.channels,
        "day_of_week": WEEKDAYS,
        "season_term": [f"{f}{k}" for f in ("sin", "cos") for k in range(1, HARMONICS + 1)],
        "date": np.datetime_as_string(history.dates),
    }
    return az.from_dict(
        posterior=posterior,
        sample_stats=sample_stats,
        posterior_predictive={name: values[None] for name, values in replicated.items()},
        observed_data=observed,
        constant_data={"spend": history.spend, "holiday_flag": history.holiday},
        coords=coords,
        dims=dims,
    )
