"""Fitting the response model by MCMC (NumPyro's NUTS) into ArviZ InferenceData.

    fit = fit_response(history, FitConfig(draws=1000, chains=2))
    fit.idata              # posterior, sample_stats, posterior_predictive, observed_data
    fit.parameters         # ResponseParameters: every draw, chains stacked
    fit.diagnostics        # R-hat, ESS, divergences and whether they pass

Why it is fast (benchmarks/bench_budget.py measures it against a straightforward NumPyro fit):
centred predictors and a zero-sum weekday effect make the posterior nearly Gaussian and well
scaled, so NUTS needs short trajectories; a dense mass matrix absorbs the remaining
correlations; the chains are vectorized into one compiled program (no per-chain compile), and
the sampler starts from the prior median instead of a random point.
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
PARAMETERS = ("alpha", "beta", "holiday", "trend", "weekday", "season", "dispersion", "ctr", "ctr_concentration",
              "cvr", "cvr_concentration")
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
    from numpyro.infer import MCMC, NUTS, init_to_median

    config = config or FitConfig()
    data = ModelData.from_history(history, source)
    started = time.perf_counter()
    warmup = config.warmup or config.draws
    chunk = _chunk(config.draws)
    kernel = NUTS(response_model, target_accept_prob=config.target_accept, max_tree_depth=config.max_tree_depth,
                  dense_mass=True, init_strategy=init_to_median(num_samples=15))
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=chunk, num_chains=config.chains,
                chain_method="vectorized", progress_bar=False)
    fields = ("diverging", "num_steps", "accept_prob", "energy")
    mcmc.warmup(jax.random.PRNGKey(config.seed), data, extra_fields=fields)
    if progress:
        progress(warmup)
    samples, stats = [], []
    for _ in range(config.draws // chunk):
        mcmc.run(mcmc.post_warmup_state.rng_key, data, extra_fields=fields)
        mcmc.post_warmup_state = mcmc.last_state
        samples.append(jax.device_get(mcmc.get_samples(group_by_chain=True)))
        stats.append(jax.device_get(mcmc.get_extra_fields(group_by_chain=True)))
        if progress:
            progress(chunk)
    posterior = {name: np.concatenate([s[name] for s in samples], axis=1) for name in PARAMETERS if name in samples[0]}
    sample_stats = {
        "diverging": np.concatenate([s["diverging"] for s in stats], axis=1),
        "n_steps": np.concatenate([s["num_steps"] for s in stats], axis=1),
        "acceptance_rate": np.concatenate([s["accept_prob"] for s in stats], axis=1),
        "energy": np.concatenate([s["energy"] for s in stats], axis=1),
    }
    parameters = parameters_from_posterior(posterior, history.channels, data)
    idata = _inference_data(posterior, sample_stats, history, data, parameters, config)
    return ResponseFit(idata, parameters, config, time.perf_counter() - started)


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
    per_channel = ["alpha", "beta", "holiday", "trend", "dispersion", "ctr", "ctr_concentration", "cvr", "cvr_concentration"]
    dims = {name: ["channel"] for name in per_channel} | {"weekday": ["weekday"], "season": ["season_term"]}
    dims |= {name: ["date", "channel"] for name in (*observed, "spend")} | {"holiday_flag": ["date"]}
    coords = {
        "channel": history.channels,
        "weekday": WEEKDAYS,
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
