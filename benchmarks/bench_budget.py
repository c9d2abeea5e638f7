"""Budget allocation benchmark → benchmarks/results/budget.json.

    python benchmarks/bench_budget.py                       # everything (about 30–60 minutes on 2 cores)
    python benchmarks/bench_budget.py --only carryover      # the carryover part alone
    python benchmarks/bench_budget.py --only side-by-side   # its first seed against PyMC-Marketing alone

1. Fit speed on 3 channels × 365 days, 2 chains × 1,000 draws, side by side in this run, each fit
   in a fresh process (compilation included, imports excluded): nextbest's fit, the same NumPyro
   program run the textbook way (`MCMC(NUTS(model), num_warmup=1000, num_samples=1000,
   num_chains=2)`), and PyMC's NUTS on the same model when PyMC is installed (the bench extra).
2. Same posterior: nextbest's and the textbook fit's posterior means, parameter by parameter,
   compared in units of their combined Monte-Carlo standard error.
3. On synthetic histories from known models (several seeds): recovery of the true elasticities β
   inside their 90% intervals, and the recommended allocation's true expected clicks against the
   true optimum, the historical split and the equal split (a regular day and a holiday).
4. The PPO allocator, trained with `nextbest budget train`'s defaults, against the optimizer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "budget.json"
SEEDS = [0, 1, 2]
PPO_SEEDS = SEEDS
DRAWS, CHAINS, NAIVE_WARMUP = 1000, 2, 1000
COMPARED = ["alpha", "beta", "holiday", "trend", "weekday", "season", "dispersion", "ctr", "click_dispersion", "cvr",
            "conversion_dispersion"]  # every parameter of the model (nextbest.simulators.fit.PARAMETERS)


# --- workers: one fit per fresh process -------------------------------------------------------------
def worker(kind: str, seed: int, output: Path) -> None:
    from nextbest.simulators.model import ModelData
    from nextbest.simulators.synthesize import synthesize

    history, _ = synthesize(3, 365, seed)
    if kind == "nextbest":
        import arviz  # noqa: F401  (imports are excluded from both timings; the fit returns InferenceData)
        import numpyro.infer

        from nextbest.simulators.fit import FitConfig, fit_response

        started = time.perf_counter()
        fit = fit_response(history, FitConfig(model="power", draws=DRAWS, chains=CHAINS, seed=seed))
        seconds = time.perf_counter() - started
        posterior = {name: fit.idata.posterior[name].values for name in COMPARED}
        steps = float(fit.idata.sample_stats["n_steps"].values.mean())
    elif kind == "numpyro-textbook":
        import jax
        import numpyro
        from numpyro.infer import MCMC, NUTS

        from nextbest.simulators.model import response_model

        numpyro.enable_x64()  # float32 is not an option: its rounding stalls NUTS (see nextbest/simulators/fit.py)
        data = ModelData.from_history(history).arrays()
        started = time.perf_counter()
        mcmc = MCMC(NUTS(response_model), num_warmup=NAIVE_WARMUP, num_samples=DRAWS, num_chains=CHAINS,
                    chain_method="sequential", progress_bar=False)
        mcmc.run(jax.random.PRNGKey(seed), data, extra_fields=("num_steps",))
        samples = jax.device_get(mcmc.get_samples(group_by_chain=True))
        seconds = time.perf_counter() - started
        posterior = {name: np.asarray(samples[name]) for name in COMPARED}
        steps = float(np.asarray(mcmc.get_extra_fields()["num_steps"]).mean())
    else:  # pymc
        started, posterior = time.perf_counter(), _pymc(ModelData.from_history(history), seed)
        seconds, steps = time.perf_counter() - started, float("nan")
    np.savez(output, seconds=seconds, steps=steps, **posterior)


def _pymc(data, seed: int) -> dict:
    """The same model in PyMC (predictors, priors and likelihoods as nextbest/simulators/model.py)."""
    import pymc as pm
    import pytensor.tensor as pt

    a = data.arrays()
    assert a["paid"].all() and (a["impressions"] > 0).all()  # synthetic histories: no masked rows
    with pm.Model(coords={"channel": range(a["x"].shape[1])}):
        alpha = pm.Normal("alpha", a["alpha_location"], 1.0, dims="channel")
        beta = pm.Normal("beta", 0.5, 0.5, dims="channel")
        holiday = pm.Normal("holiday", 0.0, 0.5, dims="channel")
        trend = pm.Normal("trend", 0.0, 0.5, dims="channel")
        scales = {n: pm.LogNormal(f"inv_sqrt_{n}", np.log(0.2), 1.0, dims="channel") for n in ("d", "c", "v")}
        logit_ctr = pm.Normal("logit_ctr", a["ctr_location"], 1.0, dims="channel")
        logit_cvr = pm.Normal("logit_cvr", a["cvr_location"], 1.0, dims="channel")
        weekday = pm.ZeroSumNormal("weekday", sigma=0.3, shape=7)
        season = pm.Normal("season", 0.0, 0.3, shape=a["season"].shape[1])
        calendar = weekday[a["weekday"]] + pt.dot(a["season"], season)
        log_mean = alpha + beta * a["x"] + holiday * a["holiday"][:, None] + calendar[:, None] + trend * a["trend"][:, None]
        pm.Deterministic("dispersion", scales["d"] ** -2)
        pm.Deterministic("click_dispersion", scales["c"] ** -2)
        pm.Deterministic("conversion_dispersion", scales["v"] ** -2)
        pm.Deterministic("ctr", pm.math.sigmoid(logit_ctr))
        pm.Deterministic("cvr", pm.math.sigmoid(logit_cvr))
        pm.NegativeBinomial("impressions", mu=pt.exp(log_mean), alpha=scales["d"] ** -2, observed=a["impressions"])
        pm.NegativeBinomial("clicks", mu=a["impressions"] * pm.math.sigmoid(logit_ctr), alpha=scales["c"] ** -2,
                            observed=a["clicks"])
        rows = a["clicks"] > 0
        pm.NegativeBinomial("conversions", mu=(a["clicks"] * pm.math.sigmoid(logit_cvr))[rows],
                            alpha=pt.broadcast_to(scales["v"] ** -2, a["clicks"].shape)[rows], observed=a["conversions"][rows])
        idata = pm.sample(DRAWS, tune=NAIVE_WARMUP, chains=CHAINS, cores=1, random_seed=seed, progressbar=False,
                          compute_convergence_checks=False)
    return {name: idata.posterior[name].values for name in COMPARED}


def run_worker(kind: str, seed: int) -> dict | None:
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "posterior.npz"
        code = subprocess.call([sys.executable, __file__, "--worker", kind, str(seed), str(output)])
        if code != 0 or not output.exists():
            return None
        with np.load(output) as data:
            return {name: data[name] for name in data.files}


# --- comparisons ---------------------------------------------------------------------------------
def same_posterior(a: dict, b: dict) -> dict:
    """|mean_a − mean_b| / sqrt(mcse_a² + mcse_b²) for every scalar parameter (ArviZ's MCSE of the mean)."""
    import arviz as az

    z = {}
    for name in COMPARED:
        xa, xb = (x[name].reshape(x[name].shape[0], x[name].shape[1], -1) for x in (a, b))  # (chain, draw, k)
        for k in range(xa.shape[2]):
            error = np.hypot(*(float(np.ravel(az.mcse(x[:, :, k]))[0]) for x in (xa, xb)))
            z[f"{name}[{k}]"] = float(abs(xa[:, :, k].mean() - xb[:, :, k].mean()) / error)
    values = np.array(list(z.values()))
    return {"parameters": len(values), "within_2_mcse": int((values <= 2).sum()), "max_z": float(values.max()),
            "median_z": float(np.median(values)), "z": z}


def quality(seed: int, directory: Path, train: bool) -> dict:
    """Fit (nextbest's defaults), then allocations against the truth, recovery of β, and optionally PPO."""
    from nextbest.budget.allocate import recommend
    from nextbest.budget.experiment import FitDiagnosticsError, fit_experiment
    from nextbest.budget.train import train_allocator
    from nextbest.simulators.fit import FitConfig
    from nextbest.simulators.synthesize import synthesize

    history, truth = synthesize(3, 365, seed)
    history.write(directory / "history.csv")
    try:
        experiment = fit_experiment(directory / "history.csv", directory / "exp", FitConfig(model="power"))
    except FitDiagnosticsError as error:  # reported, not hidden: the row says the fit was refused
        return {"seed": seed, "refused": str(error)}
    low, high = np.quantile(experiment.parameters.beta, [0.05, 0.95], axis=0)
    row = {"seed": seed, "beta_inside_90": int(((truth.beta[0] >= low) & (truth.beta[0] <= high)).sum()),
           "channels": 3, "fit_command_seconds": experiment.summary["fit"]["seconds"]}
    for holiday in (False, True):
        result = recommend(experiment, 1000.0, holiday=holiday, truth=truth)
        true = {name: r["true_clicks"] for name, r in result["baselines"].items()}
        key = "holiday" if holiday else "regular"
        row[key] = {name: true[name] / true["true_optimum"] for name in ("optimizer", "historical", "equal")}
    if train:
        started = time.perf_counter()
        trained = train_allocator(directory / "exp", seed=seed)
        row["ppo"] = {"ratio_to_optimizer": trained["ratio_to_optimizer"], "steps": trained["steps"],
                      "seconds": time.perf_counter() - started,
                      "baselines_ratio_to_optimizer": trained["baselines_ratio_to_optimizer"]}
    return row


def readme(result: dict) -> str:
    import bench_budget_carryover as carryover

    carried = ["#### Carryover and saturation: the flight planner against PyMC-Marketing", "",
               carryover.readme(result["carryover"]), "", "#### The power model (day by day)", ""] if "carryover" in result else []
    return "\n".join(carried) + _readme_power(result)


def _readme_power(result: dict) -> str:
    speed = result["fit_speed"]
    lines = ["| 3 channels × 365 days, 2 chains × 1,000 draws | seconds | × faster than textbook NumPyro |",
             "|---|---:|---:|"]
    for name, row in speed.items():
        if row.get("seconds"):
            lines.append(f"| {name} | {row['seconds']:.1f} | {speed['numpyro-textbook']['seconds'] / row['seconds']:.1f} |")
        else:
            lines.append(f"| {name} | {row.get('note', 'not run')} | |")
    same = result["same_posterior"]
    lines += ["", f"Same posterior: {same['within_2_mcse']} of {same['parameters']} posterior means within two Monte-Carlo "
                  f"standard errors of the textbook fit's (largest difference {same['max_z']:.1f} MCSE).", "",
              "| seed | β inside 90% interval | optimizer / true optimum (regular, holiday) | historical | equal | PPO / optimizer |",
              "|---:|---:|---:|---:|---:|---:|"]
    for row in result["quality"]:
        if "refused" in row:
            lines.append(f"| {row['seed']} | fit refused by its diagnostics | | | | |")
            continue
        ppo = f"{row['ppo']['ratio_to_optimizer']:.1%}" if "ppo" in row else "–"
        lines.append(f"| {row['seed']} | {row['beta_inside_90']}/{row['channels']} | {row['regular']['optimizer']:.1%}, "
                     f"{row['holiday']['optimizer']:.1%} | {row['regular']['historical']:.1%}, {row['holiday']['historical']:.1%} | "
                     f"{row['regular']['equal']:.1%}, {row['holiday']['equal']:.1%} | {ppo} |")
    lines += ["", "Clicks are the true expected clicks of each split of a 1,000 budget, as a share of the true optimum's."]
    return "\n".join(lines)


def main_carryover() -> None:
    """Only the carryover part; the rest of budget.json is kept from the last full run."""
    import bench_budget_carryover as carryover

    from nextbest.io import write_json

    result = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    with tempfile.TemporaryDirectory() as directory:
        result["carryover"] = carryover.run(Path(directory))
    result["readme"] = readme(result)
    write_json(RESULTS, result)
    print(result["readme"])


def main_side_by_side() -> None:
    """Only the first seed's side by side with PyMC-Marketing, nextbest's fit again in the same run; the rest of
    budget.json is kept."""
    import bench_budget_carryover as carryover

    from nextbest.io import write_json

    result = json.loads(RESULTS.read_text())
    with tempfile.TemporaryDirectory() as directory:
        first = carryover.side_by_side(Path(directory), seeds=carryover.SEEDS[:1])[0]
    rows = result["carryover"]["side_by_side"]
    result["carryover"]["side_by_side"] = [first] + [row for row in rows if row["seed"] != first["seed"]]
    result["carryover"]["sizes"].update(pymc_timeout=carryover.PYMC_TIMEOUT, pymc_samplers=carryover.PYMC_SAMPLERS)
    result["readme"] = readme(result)
    write_json(RESULTS, result)
    print(result["readme"])


def main() -> None:
    import bench_budget_carryover as carryover

    started = time.perf_counter()
    fits = {kind: run_worker(kind, 0) for kind in ("numpyro-textbook", "nextbest", "pymc")}
    speed = {}
    for kind, fit in fits.items():
        if fit is None:
            speed[kind] = {"note": "PyMC not installed (pip install -e '.[bench]')" if kind == "pymc" else "failed"}
        else:
            speed[kind] = {"seconds": float(fit["seconds"]), "mean_leapfrog_steps": float(fit["steps"]),
                           "beta_mean": fit["beta"].reshape(-1, 3).mean(0)}
    for kind in speed:
        if speed[kind].get("seconds"):
            speed[kind]["speedup_vs_textbook"] = speed["numpyro-textbook"]["seconds"] / speed[kind]["seconds"]
    result = {"fit_speed": speed, "same_posterior": same_posterior(fits["nextbest"], fits["numpyro-textbook"])}
    print(json.dumps({k: {n: v for n, v in row.items() if n != "beta_mean"} for k, row in speed.items()}), flush=True)
    with tempfile.TemporaryDirectory() as directory:
        result["quality"] = []
        for seed in SEEDS:
            (Path(directory) / str(seed)).mkdir()
            result["quality"].append(quality(seed, Path(directory) / str(seed), train=seed in PPO_SEEDS))
            print(json.dumps(result["quality"][-1], default=float), flush=True)
        result["carryover"] = carryover.run(Path(directory) / "carryover")
    result["seconds"] = time.perf_counter() - started
    result["readme"] = readme(result)
    from nextbest.io import write_json

    write_json(RESULTS, result)
    print(result["readme"])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
    elif sys.argv[1:] == ["--only", "carryover"]:
        main_carryover()
    elif sys.argv[1:] == ["--only", "side-by-side"]:
        main_side_by_side()
    else:
        main()
