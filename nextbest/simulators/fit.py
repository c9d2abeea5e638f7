"""Fitting the response model by MCMC (NumPyro's NUTS) into ArviZ InferenceData.

    fit = fit_response(history, FitConfig(draws=1000, chains=2))
    fit.idata              # posterior, sample_stats, posterior_predictive, observed_data
    fit.parameters         # ResponseParameters: every draw, chains stacked

Why it is fast (benchmarks/bench_budget.py measures it against the textbook NumPyro fit of the
same program): centred predictors and a zero-sum weekday effect make the posterior nearly
Gaussian; its mode and curvature (a Laplace approximation, found by L-BFGS) whiten the parameters
so that NUTS starts well scaled and over-dispersed, and warmup only fine-tunes a step size and a
diagonal scale; the log density is `model.potential`, the program's hand-written twin; one
program is compiled for the sampler, in the background while L-BFGS runs, and it runs chunks of
iterations without returning to Python; and the chains run side by side.
Everything runs in 64-bit floats: the counts' log-densities are sums of log-gamma terms near 10⁵,
which single precision rounds to noise that makes NUTS shrink its step to nothing (measured: a
float32 fit of this model does not finish warmup in ten minutes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from nextbest.config import Section
from nextbest.data.channels import ChannelHistory
from nextbest.simulators.adstock import MAX_LAG
from nextbest.simulators.hill import hill_arrays, hill_constrain, hill_initial_point, hill_potential
from nextbest.simulators.model import ModelData, constrain, initial_point, potential
from nextbest.simulators.response import HARMONICS, ResponseParameters

# Natural-scale parameters kept in the posterior group (the sampler's unconstrained helpers are dropped).
PARAMETERS = ResponseParameters.ARRAYS
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@dataclass(frozen=True)
class ResponseModel:
    """What the sampler needs of a model: its arrays, a starting point, the log density and the map back
    from the sampler's unconstrained space."""

    arrays: Callable[[ModelData, int], dict]
    initial_point: Callable[[dict], dict]
    potential: Callable
    constrain: Callable[[dict], dict]


MODELS: dict[str, ResponseModel] = {
    "power": ResponseModel(lambda data, max_lag: data.arrays(), initial_point, potential, constrain),
    "hill": ResponseModel(hill_arrays, hill_initial_point, hill_potential, lambda z: constrain(z) | hill_constrain(z)),
}
DEFAULT_MODEL = "hill"  # the better held-out log predictive density on the bundled histories (docs/budget.md, benchmarks/results/budget.json)


class FitConfig(Section):
    model: Literal["hill", "power"] = Field(DEFAULT_MODEL, description="'hill' (geometric adstock and Hill saturation) or 'power' (the "
                       "day-by-day power law)")
    max_lag: int = Field(MAX_LAG, ge=1, le=60, description="days a spend keeps working in the hill model (adstock's maximum lag)")
    draws: int = Field(2000, ge=10, description="posterior draws per chain, after warmup (2,000: split R-hat stays "
                       "clear of 1.01 for the slowest-mixing dispersion; sampling is the cheap part of a fit)")
    chains: int = Field(2, ge=1, le=16, description="independent chains (R-hat needs at least 2 to compare)")
    warmup: int = Field(300, ge=10, description="warmup iterations per chain (the step size and a diagonal scale adapt around the Laplace mass matrix)")
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
    idata: object  # arviz.InferenceData
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
    parameters = parameters_from_posterior(posterior, history.channels, data, config.max_lag)
    idata = _inference_data(posterior, sample_stats, history, data, parameters, config)
    return ResponseFit(idata, parameters, config, time.perf_counter() - started)


def _sample(data: ModelData, config: FitConfig, progress: Callable[[int], None] | None):
    """NUTS (NumPyro's functional kernel) in the Laplace approximation's whitened coordinates.

    With z = mode + L·u (L L' the Laplace covariance), NUTS on u with a unit mass matrix is NUTS on
    z with the dense mass matrix L L', exact for a Gaussian posterior. Warmup adapts the step size
    and a diagonal mass matrix in u, which corrects the directions the Gaussian gets wrong: the
    skewed posterior of a weakly identified dispersion (measured on seeded histories: the smallest
    tail ESS of 2,000 draws went from 61–400 to 670–1,190 for twice the leapfrog steps). One compiled program
    initializes a chain (on its first call) and advances it by a chunk of iterations, a
    `lax.scan` of NUTS transitions (about 2% of the run per call: the progress bar moves per
    chunk) that serves warmup and sampling alike, as the kernel's state tells them apart, and any
    history of the same shape. It compiles in the background while the Laplace approximation is
    found, and the chains run side by side in threads (XLA releases the interpreter while it
    computes). Measured on this model: NumPyro's `MCMC` evaluates the model op by op to initialize
    (hundreds of small compilations) and compiles its loop anew on every `run`; calling a compiled
    transition from Python once per iteration spent more time in dispatch and copies than in the
    transitions; vectorizing the chains with `vmap` made compilation slower than the sampling it saved."""
    import jax
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import ParamInfo

    model = MODELS[config.model]
    arrays, potential = model.arrays(data, config.max_lag), model.potential
    total = config.warmup + config.draws
    chunk = -(-total // min(50, total))  # iterations per call; the last call's surplus iterations are dropped
    flat_start, unravel = ravel_pytree(model.initial_point(arrays))

    def whitened_potential(arrays, mode, scale):
        return lambda u: potential(unravel(mode + scale @ u), arrays)

    init_kernel, sample_kernel = hmc(potential_fn_gen=whitened_potential, algo="NUTS")

    def start_chain(start: ParamInfo, key, arrays, mode, scale):
        return init_kernel(start, config.warmup, adapt_mass_matrix=True, target_accept_prob=config.target_accept,
                           max_tree_depth=config.max_tree_depth, model_args=(arrays, mode, scale), rng_key=key)

    def program(state, start: ParamInfo, key, first, arrays, mode, scale):
        """The chain's state after `chunk` more NUTS transitions (from `start` if `first`), and what they drew."""
        fresh = start_chain(start, key, arrays, mode, scale)
        state = jax.tree.map(lambda new, old: jax.numpy.where(first, new, old), fresh, state)

        def transition(state, _):
            state = sample_kernel(state, model_args=(arrays, mode, scale))
            return state, (unravel(mode + scale @ state.z), state.diverging, state.num_steps, state.accept_prob, state.energy)

        return jax.lax.scan(transition, state, length=chunk)

    def compile_program():
        with jax.enable_x64(True):
            vector, key = np.zeros(len(flat_start)), jax.random.PRNGKey(0)
            args = (ParamInfo(vector, np.float64(0.0), vector), key, arrays, vector, np.eye(len(vector)))
            state = jax.eval_shape(start_chain, *args)
            return state, jax.jit(program).lower(state, args[0], key, True, *args[2:]).compile()

    def run(chain: int):
        with jax.enable_x64(True):
            start = ParamInfo(*(np.asarray(part[chain]) for part in laplace.starts))
            state = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)  # replaced by `start` on the first call
            key, trace = jax.random.PRNGKey(config.seed * 1000 + chain), []
            for done in range(0, total, chunk):
                if stop.is_set():
                    return None
                state, out = compiled(state, start, key, done == 0, arrays, laplace.mode, laplace.scale)
                trace.append(jax.device_get(out))
                if progress:
                    progress(min(done + chunk, total) - done)
            return jax.tree.map(lambda *parts: np.concatenate(parts)[config.warmup:total], *trace)

    stop = threading.Event()  # set on an interrupt (Ctrl-C) so that the chains' threads end at their next chunk
    with ThreadPoolExecutor(config.chains) as pool:
        try:
            compiling = pool.submit(compile_program)
            laplace = laplace_start(arrays, unravel, flat_start, config.chains, np.random.default_rng(config.seed), potential)
            template, compiled = compiling.result()
            chains = list(pool.map(run, range(config.chains)))
        except BaseException:
            stop.set()
            raise
    z, *stats = jax.tree.map(lambda *parts: np.stack(parts), *chains)
    names = ("diverging", "n_steps", "acceptance_rate", "energy")
    return model.constrain(z), dict(zip(names, stats))


@dataclass
class LaplaceStart:
    """The posterior's mode (k,) and a square root `scale` (k, k) of the Laplace covariance, in the order of
    the flattened parameters, and starting points in whitened coordinates u = scale⁻¹(z − mode) as NumPyro's
    ParamInfo (u (chains, k), potential energy (chains,), its gradient in u (chains, k))."""
    mode: np.ndarray
    scale: np.ndarray
    starts: object


def laplace_start(data: dict, unravel: Callable, start: np.ndarray, chains: int, rng: np.random.Generator,
                  potential: Callable = potential) -> LaplaceStart:
    """The mode (L-BFGS) and curvature of the posterior, and starting points.

    The starts are drawn from the Laplace approximation with its scale doubled, so that R-hat can
    detect chains that do not converge. The Hessian is a central difference of the gradient,
    which reuses the compiled gradient instead of compiling another."""
    import jax
    from numpyro.infer.util import ParamInfo
    from scipy.optimize import minimize

    value_and_grad = jax.jit(jax.value_and_grad(lambda z, data: potential(unravel(z), data)))

    def objective(z):
        value, grad = value_and_grad(z, data)
        return float(value), np.asarray(grad, float)

    mode = minimize(objective, np.asarray(start), jac=True, method="L-BFGS-B").x
    h = 1e-5
    hessian = np.stack([(objective(mode + h * e)[1] - objective(mode - h * e)[1]) / (2 * h) for e in np.eye(len(mode))])
    eigenvalues, eigenvectors = np.linalg.eigh((hessian + hessian.T) / 2)
    if np.all(np.isfinite(eigenvalues)) and eigenvalues.min() > 0:
        scale = eigenvectors / np.sqrt(eigenvalues)  # scale · scaleᵀ = Hessian⁻¹
    else:  # not a proper mode (a flat or curved-away direction): let the step size absorb the scales
        scale = np.eye(len(mode)) * 0.1
    u = 2.0 * rng.standard_normal((chains, len(mode)))
    energies, gradients = zip(*(objective(z) for z in mode + u @ scale.T))
    return LaplaceStart(mode, scale, ParamInfo(u, np.array(energies), np.stack(gradients) @ scale))


def parameters_from_posterior(posterior: dict[str, np.ndarray], channels: list[str], data: ModelData,
                              max_lag: int = MAX_LAG) -> ResponseParameters:
    """(chain, draw, ...) arrays → ResponseParameters with chains stacked into one draw axis."""
    flat = {name: np.asarray(v, float).reshape(-1, *np.shape(v)[2:]) for name, v in posterior.items()}
    return ResponseParameters(channels=list(channels), spend_center=data.spend_center, calendar=data.calendar,
                              max_lag=max_lag, **{name: flat.get(name) for name in ResponseParameters.ARRAYS})


def _inference_data(posterior, sample_stats, history: ChannelHistory, data: ModelData,
                    parameters: ResponseParameters, config: FitConfig):
    import arviz as az

    rng = np.random.default_rng(config.seed)
    replicated = parameters.thin(config.predictive_draws, config.seed).sample(
        history.spend, history.holiday, history.dates, rng)
    observed = {"impressions": history.impressions, "clicks": history.clicks}
    if history.conversions is not None:
        observed["conversions"] = history.conversions
    per_channel = ["alpha", "beta", "decay", "slope", "saturation", "holiday", "trend", "dispersion", "ctr", "click_dispersion", "cvr", "conversion_dispersion"]
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
