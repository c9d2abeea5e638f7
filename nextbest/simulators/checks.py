"""Is a fit usable? MCMC diagnostics with advice, and a posterior-predictive check.

`diagnose` computes split R-hat, bulk and tail effective sample sizes (Vehtari et al. 2021) and
counts divergent transitions; `Diagnostics.advice()` says what to try when they fail.
`predictive_check` compares the history with counts replicated from the posterior: the share of
days inside the central 90% predictive interval (≈ 0.90 when the model fits) and Bayesian
p-values of the daily mean and standard deviation (near 0 or 1 when it does not).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from nextbest.simulators.fit import PARAMETERS, FitConfig


@dataclass
class Diagnostics:
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    worst_rhat: str  # the parameter (with its channel) of the largest R-hat
    worst_ess: str
    chains: int
    draws: int
    thresholds: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def advice(self) -> str:
        return "; ".join(self.problems)

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict) -> Diagnostics:
        return cls(**{k: v for k, v in data.items() if k != "passed"})


def diagnose(idata, config: FitConfig) -> Diagnostics:
    """R-hat, ESS and divergences of the natural-scale parameters, judged against `config`'s thresholds."""
    import arviz as az

    names = [n for n in PARAMETERS if n in idata.posterior]
    rhat = _flatten(az.rhat(idata, var_names=names))
    bulk = _flatten(az.ess(idata, var_names=names, method="bulk"))
    tail = _flatten(az.ess(idata, var_names=names, method="tail"))
    divergences = int(idata.sample_stats["diverging"].values.sum())
    chains, draws = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
    worst_rhat = max(rhat, key=rhat.get)
    worst_ess = min(bulk, key=lambda k: min(bulk[k], tail[k]))
    result = Diagnostics(
        max_rhat=rhat[worst_rhat], min_ess_bulk=min(bulk.values()), min_ess_tail=min(tail.values()),
        divergences=divergences, worst_rhat=worst_rhat, worst_ess=worst_ess, chains=chains, draws=draws,
        thresholds={"max_rhat": config.max_rhat, "min_ess": config.min_ess_per_chain * chains,
                    "max_divergences": config.max_divergences},
    )
    if not np.isfinite(result.max_rhat) or result.max_rhat > config.max_rhat:
        more = "more chains (--chains 4) and " if chains < 4 else ""
        result.problems.append(
            f"R-hat {result.max_rhat:.3f} for {worst_rhat} is above {config.max_rhat}: the chains disagree; "
            f"try {more}longer warmup and sampling (--warmup {2 * draws} --draws {2 * draws})")
    minimum = config.min_ess_per_chain * chains
    if min(result.min_ess_bulk, result.min_ess_tail) < minimum:
        ess = min(result.min_ess_bulk, result.min_ess_tail)
        needed = int(np.ceil(draws * minimum / max(ess, 1.0) * 1.2 / 100) * 100)
        result.problems.append(
            f"effective sample size {ess:.0f} for {worst_ess} is below {minimum:.0f} ({config.min_ess_per_chain:.0f} per chain): "
            f"draw more (--draws {needed})")
    if divergences > config.max_divergences:
        result.problems.append(
            f"{divergences} divergent transitions: the sampler could not follow part of the posterior; "
            f"raise --target-accept (e.g. 0.95 or 0.99) and look for outlying days in the history")
    return result


def _flatten(dataset) -> dict[str, float]:
    """{'beta (search)': value, …} from an ArviZ dataset of per-parameter statistics."""
    out = {}
    for name, array in dataset.data_vars.items():
        values = np.atleast_1d(array.values)
        if array.dims:
            labels = array.coords[array.dims[0]].values
            out.update({f"{name} ({label})": float(v) for label, v in zip(labels, values.ravel())})
        else:
            out[name] = float(values[0])
    return out


def predictive_check(idata) -> dict[str, dict[str, dict[str, float]]]:
    """{metric: {channel: {coverage_90, p_value_mean, p_value_sd}}} from the posterior_predictive group."""
    observed, replicated = idata.observed_data, idata.posterior_predictive
    result: dict[str, dict[str, dict[str, float]]] = {}
    for metric in observed.data_vars:
        y = observed[metric].values.astype(float)  # (days, channels)
        rep = replicated[metric].values.reshape(-1, *y.shape).astype(float)  # (samples, days, channels)
        low, high = np.quantile(rep, [0.05, 0.95], axis=0)
        inside = ((y >= low) & (y <= high)).mean(axis=0)
        p_mean = (rep.mean(axis=1) >= y.mean(axis=0)).mean(axis=0)
        p_sd = (rep.std(axis=1) >= y.std(axis=0)).mean(axis=0)
        result[metric] = {
            str(channel): {"coverage_90": float(inside[c]), "p_value_mean": float(p_mean[c]), "p_value_sd": float(p_sd[c])}
            for c, channel in enumerate(observed[metric].coords["channel"].values)
        }
    return result
