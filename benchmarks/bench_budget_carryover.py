"""The carryover part of the budget benchmark (run by bench_budget.py; `--only carryover` runs it alone).

1. Held-out fit: the hill and power models fitted (the fit's defaults: 2 chains × 2,000 draws) on the
   first 80% of days of three synthetic histories: `budget synthesize`'s default (the hill model, each
   channel its own decay), a strong-carryover one (decay 0.7) and one from the power model; scored by
   the log predictive density of the last 20% (impressions and clicks), with each fit's diagnostics.
2. Flight planning under the true parameters, per decay level: the planner's and the myopic
   optimizer's (one-day optimizer, day by day) true clicks as a share of the true optimum's.
3. Side by side with PyMC-Marketing 0.19.2 on the same carryover histories (geometric adstock, Hill
   saturation, the same chains, warmup and draws): fit time, R-hat/ESS, recovery of the true decay,
   half-saturation and ROI inside 90% intervals, and allocation quality under the true model (a
   28-day flight: nextbest's planner, its baselines and PPO pacer; PyMC-Marketing's optimize_budget,
   a daily split held over the flight). nextbest on every seed of SEEDS (recovery is counted over
   them); PyMC-Marketing on the first, with its default PyMC sampler and with its NumPyro backend, each in
   its own process with both chains in parallel (as nextbest's), stopped after PYMC_TIMEOUT seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEEDS = [0, 1, 2]  # nextbest's recovery; PyMC-Marketing on the first only (its fit takes many minutes here)
DECAY_SEEDS = [0, 1, 2]
DAYS, CHANNELS, FLIGHT_DAYS, DAILY = 365, 3, 28, 1000.0
CHAINS, WARMUP, DRAWS = 2, 300, 1000
PYMC_TIMEOUT = 3600  # seconds per PyMC-Marketing fit
PYMC_SAMPLERS = ["pymc", "numpyro"]  # PyMC-Marketing's default NUTS, and its JAX backend (the NumPyro nextbest builds on)
DECAYS = [0.1, 0.4, 0.7, 0.85]
PPO_STEPS = 10_000
HELD_OUT = 0.2


def held_out_density(seed: int) -> list[dict]:
    """Log predictive density of held-out days (impressions and clicks) for both models, on a history drawn
    from each model."""
    from scipy.stats import nbinom

    from nextbest.simulators.checks import diagnose
    from nextbest.simulators.fit import FitConfig, fit_response
    from nextbest.simulators.synthesize import synthesize, synthesize_carryover

    rows = []
    histories = {"hill (budget synthesize's default)": synthesize_carryover(CHANNELS, DAYS, seed)[0],
                 "hill, decay 0.7": synthesize_carryover(CHANNELS, DAYS, seed, decay=0.7)[0],
                 "power": synthesize(CHANNELS, DAYS, seed)[0]}
    for truth_model, history in histories.items():
        cut = int(DAYS * (1 - HELD_OUT))
        train = _slice(history, slice(0, cut))
        row = {"truth": truth_model, "seed": seed, "train_days": cut, "held_out_days": DAYS - cut, "fits": {}}
        for model in ("hill", "power"):
            config = FitConfig(model=model, seed=seed)
            fit = fit_response(train, config)
            d = diagnose(fit.idata, config)
            row["fits"][model] = {"seconds": fit.seconds, "max_rhat": d.max_rhat, "min_ess": min(d.min_ess_bulk, d.min_ess_tail),
                                  "divergences": d.divergences, "passed": d.passed, "chains": config.chains, "draws": config.draws,
                                  "mean_leapfrog_steps": float(fit.idata.sample_stats["n_steps"].values.mean())}
            p = fit.parameters.thin(1000, seed)
            spend = history.spend[cut:]
            mu = np.exp(p.log_mean_impressions(spend, history.holiday[cut:], history.dates[cut:], carry_in=train.spend))
            impressions, clicks = history.impressions[cut:], history.clicks[cut:]
            log_lik = (nbinom.logpmf(impressions, p.dispersion[:, None], p.dispersion[:, None] / (p.dispersion[:, None] + mu))
                       + nbinom.logpmf(clicks, p.click_dispersion[:, None],
                                       p.click_dispersion[:, None] / (p.click_dispersion[:, None] + impressions * p.ctr[:, None])))
            per_day = log_lik.sum(axis=2)  # (draws, days)
            row[model] = float((np.logaddexp.reduce(per_day, axis=0) - np.log(per_day.shape[0])).sum())
        rows.append(row)
    return rows


def _slice(history, days: slice):
    from nextbest.data.channels import ChannelHistory

    return ChannelHistory(history.dates[days], history.channels, history.spend[days], history.impressions[days],
                          history.clicks[days], None if history.conversions is None else history.conversions[days],
                          history.holiday[days])


def decay_levels() -> list[dict]:
    """Planner and myopic plans under the true parameters (no fit), per decay level, averaged over seeds."""
    from nextbest.simulators.flight import Flight, myopic_plan, plan_flight, spread
    from nextbest.simulators.optimize import Bounds
    from nextbest.simulators.synthesize import synthesize_carryover

    rows = []
    for decay in DECAYS:
        ratios = {"myopic": [], "equal": []}
        for seed in DECAY_SEEDS:
            history, truth = synthesize_carryover(CHANNELS, DAYS, seed, decay=decay)
            flight = Flight.create(truth, history.dates[-1] + 1 + np.arange(FLIGHT_DAYS), carry_in=history.spend)
            budget = DAILY * FLIGHT_DAYS
            best = flight.total(plan_flight(flight, budget))[0]
            ratios["myopic"].append(flight.total(myopic_plan(flight, budget))[0] / best)
            ratios["equal"].append(flight.total(spread(np.ones(FLIGHT_DAYS), np.ones(CHANNELS), budget, Bounds.none(CHANNELS)))[0] / best)
        rows.append({"decay": decay, **{name: float(np.mean(v)) for name, v in ratios.items()},
                     "planner_gain_over_myopic": float(1 / np.mean(ratios["myopic"]) - 1)})
    return rows


def recovery(truth_values: dict, draws: dict) -> dict:
    """{name: channels whose true value is inside the 90% interval} for decay, half_saturation, roi."""
    out = {}
    for name, true in truth_values.items():
        low, high = np.quantile(draws[name], [0.05, 0.95], axis=0)
        out[name] = int(((true >= low) & (true <= high)).sum())
    return out


def truth_values(truth, history) -> dict:
    from nextbest.simulators.flight import contributions

    roi = contributions(truth, history)[:, : history.n_days].sum(axis=1) / history.spend.sum(axis=0)
    return {"decay": truth.decay[0], "half_saturation": np.exp(truth.saturation[0] + truth.spend_center), "roi": roi[0]}


def nextbest_side(seed: int, history, truth, directory) -> dict:
    """Fit (same chains, warmup and draws as PyMC-Marketing), diagnostics, recovery, the plan and its baselines."""
    from nextbest.budget.experiment import FitDiagnosticsError, fit_experiment
    from nextbest.budget.plan import plan_campaign
    from nextbest.simulators.fit import FitConfig
    from nextbest.simulators.flight import contributions

    history.write(directory / "history.csv")
    started = time.perf_counter()
    config = FitConfig(model="hill", chains=CHAINS, warmup=WARMUP, draws=DRAWS, seed=seed)
    try:
        experiment = fit_experiment(directory / "history.csv", directory / "exp", config)
        refused = None
    except FitDiagnosticsError as error:
        from nextbest.budget.experiment import BudgetExperiment

        experiment, refused = BudgetExperiment.open(directory / "exp", require_diagnostics=False), str(error)
    seconds = time.perf_counter() - started
    p = experiment.parameters
    roi = contributions(p.thin(1000, seed), history)[:, : history.n_days].sum(axis=1) / history.spend.sum(axis=0)
    draws = {"decay": p.decay, "half_saturation": np.exp(p.saturation + p.spend_center), "roi": roi}
    d = experiment.diagnostics
    result = plan_campaign(experiment, DAILY * FLIGHT_DAYS, FLIGHT_DAYS, truth=truth, ppo_steps=PPO_STEPS if seed == SEEDS[0] else 0,
                           seed=seed)
    optimum = result["baselines"]["true_optimum"]["true_clicks"]
    return {"seconds": seconds, "refused": refused, "passed": refused is None, "max_rhat": d.max_rhat, "min_ess": min(d.min_ess_bulk, d.min_ess_tail),
            "divergences": d.divergences, "recovery": recovery(truth_values(truth, history), draws),
            "allocation": {name: row["true_clicks"] / optimum for name, row in result["baselines"].items()}}


def pymc_marketing_side(seed: int, sampler: str, sizes: tuple[int, int, int] = (CHAINS, WARMUP, DRAWS)) -> dict:
    """PyMC-Marketing's MMM (GeometricAdstock l_max = 14, normalized; HillSaturation; holiday control; yearly
    seasonality 2) on daily total clicks of seed's history; its optimize_budget's daily split held over the flight."""
    import arviz as az
    import pandas as pd
    from pymc_marketing.mmm import MMM, GeometricAdstock, HillSaturation

    from nextbest.simulators.flight import Flight, plan_flight
    from nextbest.simulators.synthesize import synthesize_carryover

    history, truth = synthesize_carryover(CHANNELS, DAYS, seed)
    chains, warmup, draws = sizes
    channels = history.channels
    frame = pd.DataFrame(history.spend, columns=channels).assign(
        date=pd.to_datetime(history.dates), holiday=history.holiday.astype(float))
    y = pd.Series(history.clicks.sum(axis=1).astype(float))
    mmm = MMM(date_column="date", channel_columns=channels, control_columns=["holiday"], yearly_seasonality=2,
              adstock=GeometricAdstock(l_max=truth.max_lag, normalize=True), saturation=HillSaturation(),
              sampler_config={"chains": chains, "draws": draws, "tune": warmup, "cores": chains, "progressbar": False,
                              "nuts_sampler": sampler})
    started = time.perf_counter()
    idata = mmm.fit(frame, y, random_seed=seed)
    seconds = time.perf_counter() - started
    names = ["adstock_alpha", "saturation_kappa", "saturation_slope", "saturation_beta"]
    summary = az.summary(idata, var_names=names, kind="diagnostics")
    divergences = int(idata.sample_stats["diverging"].values.sum())
    post = idata.posterior
    scale = history.spend.max(axis=0)  # the MaxAbsScaler of the channel columns
    contribution = mmm.compute_channel_contribution_original_scale().values  # (chain, draw, date, channel)
    roi = contribution.reshape(-1, *contribution.shape[2:]).sum(axis=1) / history.spend.sum(axis=0)
    posterior = {"decay": post["adstock_alpha"].values.reshape(-1, len(channels)),
                 "half_saturation": post["saturation_kappa"].values.reshape(-1, len(channels)) * scale, "roi": roi}
    allocation, _ = mmm.optimize_budget(budget=DAILY, num_periods=FLIGHT_DAYS)
    daily = np.array([float(allocation.sel(channel=c)) for c in channels])
    flight = Flight.create(truth, history.dates[-1] + 1 + np.arange(FLIGHT_DAYS), carry_in=history.spend)
    plan = np.tile(daily / daily.sum() * DAILY, (FLIGHT_DAYS, 1))
    optimum = flight.total(plan_flight(flight, DAILY * FLIGHT_DAYS))[0]
    return {"sampler": sampler, "seconds": seconds, "max_rhat": float(summary["r_hat"].max()),
            "min_ess": float(min(summary["ess_bulk"].min(), summary["ess_tail"].min())), "divergences": divergences,
            "recovery": recovery(truth_values(truth, history), posterior), "daily_split": daily.tolist(),
            "allocation": {"optimize_budget": float(flight.total(plan)[0] / optimum)}}


def run_pymc_marketing(seed: int, sampler: str, timeout: float = PYMC_TIMEOUT) -> dict:
    """pymc_marketing_side in a fresh process of its own (its compilation counted, as nextbest's is), killed with
    its children after `timeout` seconds. Two XLA host devices let the NumPyro backend run its chains in parallel."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "result.json"
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
        process = subprocess.Popen([sys.executable, __file__, "--pymc-worker", str(seed), sampler, str(out)], env=env,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return {"sampler": sampler, "note": f"fit not finished in {timeout:.0f} s (stopped)", "timeout": timeout}
        if process.returncode != 0:
            if "No module named 'pymc_marketing'" in stderr:
                return {"sampler": sampler, "note": "PyMC-Marketing not installed (pip install -e '.[bench]')"}
            return {"sampler": sampler, "note": "failed: " + stderr.strip().splitlines()[-1]}
        return json.loads(out.read_text())


def run(directory) -> dict:
    started = time.perf_counter()
    result = {"sizes": {"seeds": SEEDS, "decay_seeds": DECAY_SEEDS, "days": DAYS, "channels": CHANNELS, "chains": CHAINS, "warmup": WARMUP,
                        "draws": DRAWS, "flight_days": FLIGHT_DAYS, "daily_budget": DAILY, "ppo_steps": PPO_STEPS,
                        "held_out_share": HELD_OUT, "pymc_timeout": PYMC_TIMEOUT, "pymc_samplers": PYMC_SAMPLERS,
                        "note": "side by side at 2 × 1,000 draws (the fit's default is 2 × 2,000); PyMC-Marketing on the first seed"}}
    result["decay_levels"] = decay_levels()
    print(result["decay_levels"], flush=True)
    result["held_out"] = held_out_density(SEEDS[0])
    print(result["held_out"], flush=True)
    result["side_by_side"] = side_by_side(directory)
    result["seconds"] = time.perf_counter() - started
    return result


def side_by_side(directory, seeds=SEEDS) -> list[dict]:
    """nextbest on every seed; PyMC-Marketing on the first, with each of PYMC_SAMPLERS."""
    from nextbest.simulators.synthesize import synthesize_carryover

    rows = []
    for seed in seeds:
        history, truth = synthesize_carryover(CHANNELS, DAYS, seed)
        (directory / str(seed)).mkdir(parents=True, exist_ok=True)
        row = {"seed": seed, "nextbest": nextbest_side(seed, history, truth, directory / str(seed))}
        print(row, flush=True)
        if seed == SEEDS[0]:
            row["pymc_marketing"] = [run_pymc_marketing(seed, sampler) for sampler in PYMC_SAMPLERS]
            print(row, flush=True)
        rows.append(row)
    return rows


def readme(result: dict) -> str:
    sizes = result["sizes"]
    lines = [f"Carryover (adstock + Hill) histories, 3 channels × {sizes['days']} days, {sizes['chains']} chains × "
             f"{sizes['draws']} draws after {sizes['warmup']} warmup for both libraries, chains in parallel; a "
             f"{sizes['flight_days']}-day flight of {sizes['daily_budget']:,.0f} a day; clicks as a share of the true optimum's "
             "(the flight and its carryover tail, under the true parameters). PyMC-Marketing models the daily total of clicks "
             "(its MMM has one target), nextbest each channel's impressions and clicks.", "",
             "| seed | library | fit s | max R-hat | min ESS | diagnostics | decay / κ / ROI in 90% | allocation / true optimum |",
             "|---:|---|---:|---:|---:|---|---:|---|"]
    inside = {"decay": 0, "half_saturation": 0, "roi": 0}
    counted = 0
    for row in result["side_by_side"]:
        peers = row.get("pymc_marketing", [])
        sides = [("nextbest", row["nextbest"])] + [(f"PyMC-Marketing ({p.get('sampler', 'pymc')} sampler)", p)
                                                   for p in (peers if isinstance(peers, list) else [peers])]
        for name, side in sides:
            if "seconds" not in side:
                lines.append(f"| {row['seed']} | {name} | {side.get('note', 'failed')} | | | | | |")
                continue
            r = side["recovery"]
            if name == "nextbest" and side.get("passed", True):
                counted += 1
                inside = {k: inside[k] + r[k] for k in inside}
            passed = "passed" if side.get("passed", side["max_rhat"] <= 1.01 and side["divergences"] == 0) else "failed"
            allocation = ", ".join(f"{k} {v:.1%}" for k, v in side["allocation"].items() if k != "true_optimum")
            lines.append(f"| {row['seed']} | {name} | {side['seconds']:.0f} | {side['max_rhat']:.3f} | {side['min_ess']:.0f} | {passed} | "
                         f"{r['decay']}/3, {r['half_saturation']}/3, {r['roi']}/3 | {allocation} |")
    total = 3 * counted
    first = result["side_by_side"][0]
    for peer in first.get("pymc_marketing", []):
        label = f"PyMC-Marketing with the {peer.get('sampler', 'pymc')} sampler"
        if "timeout" in peer:
            lines += ["", f"Fit time, same chains, warmup and draws (seed {first['seed']}): nextbest {first['nextbest']['seconds']:.0f} s "
                          f"(the whole `budget fit`), {label} not finished after {peer['timeout']:.0f} s: at least "
                          f"{peer['timeout'] / first['nextbest']['seconds']:.1f}× faster."]
        elif "seconds" in peer:
            lines += ["", f"Fit time, same chains, warmup and draws (seed {first['seed']}): nextbest {first['nextbest']['seconds']:.0f} s "
                          f"(the whole `budget fit`: posterior-predictive check and files included), {label} "
                          f"{peer['seconds']:.0f} s (its `fit`): {peer['seconds'] / first['nextbest']['seconds']:.1f}× faster."]
    lines += ["", f"Recovery over the {counted} seeds whose nextbest fit passed its diagnostics: the true decay inside the 90% "
                  f"interval for {inside['decay']} of {total} channels, the half-saturation κ for {inside['half_saturation']} of "
                  f"{total}, the ROI for {inside['roi']} of {total}."]
    lines += ["", "| decay | myopic / planner (true model) | equal / planner | planner's gain over myopic |", "|---:|---:|---:|---:|"]
    for row in result["decay_levels"]:
        lines.append(f"| {row['decay']} | {row['myopic']:.1%} | {row['equal']:.1%} | {row['planner_gain_over_myopic']:+.1%} |")
    days = result["held_out"][0]
    lines += ["", f"Held-out log predictive density (impressions and clicks) of the last {days['held_out_days']} days after fitting "
                  f"the first {days['train_days']} (2 chains × 2,000 draws; higher is better):", "",
              "| history drawn from | hill | power | hill − power | fits (R-hat, min ESS, leapfrog steps per draw, s) |",
              "|---|---:|---:|---:|---|"]
    for row in result["held_out"]:
        fits = "; ".join(f"{m} {f['max_rhat']:.3f}, {f['min_ess']:.0f}, {f['mean_leapfrog_steps']:.0f}, {f['seconds']:.0f}"
                         for m, f in row.get("fits", {}).items())
        lines.append(f"| {row['truth']} (seed {row['seed']}) | {row['hill']:,.1f} | {row['power']:,.1f} | "
                     f"{row['hill'] - row['power']:+,.1f} | {fits} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "--pymc-worker":
        seed, sampler, out = int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
        sizes = tuple(int(n) for n in sys.argv[5].split(",")) if len(sys.argv) > 5 else (CHAINS, WARMUP, DRAWS)
        out.write_text(json.dumps(pymc_marketing_side(seed, sampler, sizes)))
