"""Fitting the response model by MCMC (NumPyro's NUTS) into ArviZ InferenceData.

    fit = fit_response(history, FitConfig(draws=1000, chains=2))
    fit.idata              # posterior, sample_stats, posterior_predictive, observed_data
    fit.parameters         # ResponseParameters: every draw, chains stacked

Why it is fast (benchmarks/bench_budget.py measures it against the textbook NumPyro fit of the
same program): centred predictors and a zero-sum weekday effect make the posterior nearly
Gaussian; its mode and curvature (a Laplace approximation, found by L-BFGS in well under a second)
give NUTS a dense mass matrix and over-dispersed starting points from the first iteration, so
warmup only adapts the step size and trajectories are about 7 leapfrog steps; the log density is
`model.potential`, the program's hand-written twin; and every JAX computation is compiled once.
Everything runs in 64-bit floats: the counts' log-densities are sums of log-gamma terms near 10⁵,
which single precision rounds to noise that makes NUTS shrink its step to nothing (measured: a
float32 fit of this model does not finish warmup in ten minutes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np
from pydantic import Field

from nextbest.budget.history import ChannelHistory
from nextbest.config import Section
from nextbest.simulators.model import ModelData, constrain, initial_point, potential
from nextbest.simulators.response import HARMONICS, ResponseParameters

# Natural-scale parameters kept in the posterior group (the sampler's unconstrained helpers are dropped).
PARAMETERS = ("alpha", "beta", "holiday", "trend", "weekday", "season", "dispersion", "ctr", "click_dispersion",
              "cvr", "conversion_dispersion")
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class FitConfig(Section):
    draws: int = Field(1000, ge=10, description="posterior draws per chain, after warmup")
    chains: int = Field(2, ge=1, le=16, description="independent chains (R-hat needs at least 2 to compare)")
    warmup: int = Field(300, ge=10, description="warmup iterations per chain (the step size adapts; the mass matrix is the Laplace one)")
    target_accept: float = Field(0.85, gt=0.5, lt=1.0, description="NUTS target acceptance; raise it if there are divergences")
    max_tree_depth: int = Field(10, ge=3, le=15)
    seed: int = 0
    max_rhat: float = Field(1.01, gt=1.0, description="refuse the fit above this split R-hat (Vehtari et al. 2021)")
    min_ess_per_chain: float = Field(100.0, ge=0, description="refuse the fit below this bulk or tail effective sample "
                                     "size per chain (Vehtari et al. 2021: 100 × the number of chains)")
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
    """NUTS (NumPyro's functional kernel), one chain after another with one compiled transition.

    Every JAX computation here is compiled once: the potential's gradient (for the Laplace
    start), the kernel's init and one transition. (NumPyro's `MCMC` evaluates the model op by op
    to initialize, which costs hundreds of small compilations, and compiles its sampling loop anew
    on every `run`; vectorizing chains doubled the compile and made every chain wait for the
    longest trajectory.) The Laplace covariance is kept as the mass matrix, exact for a Gaussian
    posterior and better than a dense estimate from a short warmup window."""
    import jax
    from numpyro.infer.hmc import hmc

    arrays = data.arrays()
    warmup = config.warmup
    rng = np.random.default_rng(config.seed)
    starts, inverse_mass_matrix = laplace_start(arrays, config.chains, rng)
    init_kernel, sample_kernel = hmc(potential_fn_gen=lambda arrays: partial(potential, data=arrays), algo="NUTS")
    init = jax.jit(lambda z, key, arrays: init_kernel(
        z, warmup, inverse_mass_matrix=inverse_mass_matrix, dense_mass=True, adapt_mass_matrix=False,
        target_accept_prob=config.target_accept, max_tree_depth=config.max_tree_depth, model_args=(arrays,),
        rng_key=key))
    step = jax.jit(lambda state, arrays: sample_kernel(state, model_args=(arrays,)))
    every = max(1, (warmup + config.draws) // 50)

    def run(chain: int) -> tuple[list, list]:
        draws, stats = [], []
        state = init(jax.tree.map(lambda z: z[chain], starts), jax.random.PRNGKey(config.seed * 1000 + chain), arrays)
        for i in range(warmup + config.draws):
            state = step(state, arrays)
            if i >= warmup:
                draws.append(jax.device_get(state.z))
                stats.append(jax.device_get((state.diverging, state.num_steps, state.accept_prob, state.energy)))
            if progress and (i + 1) % every == 0:
                progress(every)
        if progress and (warmup + config.draws) % every:
            progress((warmup + config.draws) % every)
        return draws, stats

    chains = [run(chain) for chain in range(config.chains)]
    draws = [d for chain_draws, _ in chains for d in chain_draws]
    stats = [s for _, chain_stats in chains for s in chain_stats]
    shape = (config.chains, config.draws)
    unconstrained = {name: np.stack([d[name] for d in draws]).reshape(shape + np.shape(draws[0][name])) for name in draws[0]}
    posterior = constrain(unconstrained)
    names = ("diverging", "n_steps", "acceptance_rate", "energy")
    sample_stats = {name: np.array([s[k] for s in stats]).reshape(shape) for k, name in enumerate(names)}
    return posterior, sample_stats


def laplace_start(data: dict, chains: int, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """Starting points and a dense inverse mass matrix from the posterior's mode and curvature.

    Returns init params (unconstrained, one row per chain, drawn from the Laplace approximation
    with its scale doubled so that R-hat can detect chains that do not converge) and the
    Laplace covariance, in the order NumPyro flattens the parameters. The Hessian is a central
    difference of the gradient, which reuses the compiled gradient instead of compiling another."""
    import jax
    from jax.flatten_util import ravel_pytree
    from scipy.optimize import minimize

    start, unravel = ravel_pytree(initial_point(data))
    value_and_grad = jax.jit(jax.value_and_grad(lambda z, data: potential(unravel(z), data)))

    def objective(z):
        value, grad = value_and_grad(z, data)
        return float(value), np.asarray(grad, float)

    mode = minimize(objective, np.asarray(start), jac=True, method="L-BFGS-B").x
    h = 1e-5
    hessian = np.stack([(objective(mode + h * e)[1] - objective(mode - h * e)[1]) / (2 * h) for e in np.eye(len(mode))])
    eigenvalues, eigenvectors = np.linalg.eigh((hessian + hessian.T) / 2)
    if np.all(np.isfinite(eigenvalues)) and eigenvalues.min() > 0:
        covariance = (eigenvectors / eigenvalues) @ eigenvectors.T
    else:  # not a proper mode (a flat or curved-away direction): let warmup learn the scales instead
        covariance = np.eye(len(mode)) * 0.01
    noise = rng.multivariate_normal(np.zeros(len(mode)), 4 * covariance, size=chains)
    starts = jax.vmap(unravel)(mode + noise)
    return jax.device_get(starts), covariance


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
