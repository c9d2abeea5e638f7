"""The carryover model: adstock and Hill curve exact, the fast log density equals the NumPyro program's, the
flight planner against an independent optimizer of the true model, the pacing environment, and `budget plan`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_budget_cli import _main  # the CLI run outside a test function
from test_budget_model import assert_potential_is_the_programs

from nextbest.simulators.adstock import adstock, adstock_transpose
from nextbest.simulators.flight import Flight, myopic_plan, plan_flight, spread
from nextbest.simulators.optimize import Bounds
from nextbest.simulators.response import ResponseParameters
from nextbest.simulators.synthesize import synthesize_carryover


@pytest.fixture(scope="module")
def world():
    return synthesize_carryover(3, 90, seed=3, decay=0.6)


def test_adstock_is_the_normalized_geometric_sum_of_the_last_days():
    rng = np.random.default_rng(0)
    spend, before, decay = rng.uniform(0, 10, (20, 2)), rng.uniform(0, 10, (3, 2)), np.array([[0.5, 0.8]])
    result = adstock(spend, decay, max_lag=4, carry_in=before)[0]
    padded = np.concatenate([before, spend])
    for t in range(20):
        for c in range(2):
            weights = decay[0, c] ** np.arange(4)
            expected = sum(weights[l] * padded[t + 3 - l, c] for l in range(4)) / weights.sum()
            assert result[t, c] == pytest.approx(expected, rel=1e-12)


def test_adstock_transpose_is_its_adjoint():
    rng = np.random.default_rng(1)
    spend, gradient, decay = rng.normal(size=(15, 3)), rng.normal(size=(4, 15, 3)), rng.uniform(0.1, 0.9, (4, 3))
    forward = (adstock(spend, decay, 6) * gradient).sum()
    assert forward == pytest.approx((spend * adstock_transpose(gradient, decay, 6)).sum(), rel=1e-10)


def test_adstock_takes_the_last_days_of_a_longer_carry_in():
    rng = np.random.default_rng(2)
    spend, history, decay = rng.uniform(0, 10, (5, 2)), rng.uniform(0, 10, (30, 2)), np.array([[0.6, 0.3]])
    np.testing.assert_allclose(adstock(spend, decay, 4, carry_in=history), adstock(spend, decay, 4, carry_in=history[-3:]))
    short = adstock(spend, decay, 4, carry_in=history[-1:])
    np.testing.assert_allclose(short, adstock(spend, decay, 4, carry_in=np.concatenate([np.zeros((2, 2)), history[-1:]])))


def test_hill_potential_equals_the_numpyro_program_up_to_a_constant(world):
    from nextbest.simulators.hill import hill_arrays, hill_initial_point, hill_potential, hill_response_model
    from nextbest.simulators.model import ModelData

    arrays = hill_arrays(ModelData.from_history(world[0]))
    assert_potential_is_the_programs(hill_response_model, hill_potential, arrays, hill_initial_point(arrays))


def test_synthetic_counts_follow_the_true_carryover_model(world):
    history, truth = world
    impressions = np.exp(truth.log_mean_impressions(history.spend, history.holiday, history.dates))[0]
    ctr, phi, psi = truth.ctr[0], truth.dispersion[0], truth.click_dispersion[0]
    clicks = impressions * ctr
    # negative-binomial impressions, then clicks around impressions · CTR: the variance of each day's clicks
    variance = ctr**2 * (impressions + impressions**2 / phi) + clicks + clicks**2 / psi
    z = (history.clicks.sum(axis=0) - clicks.sum(axis=0)) / np.sqrt(variance.sum(axis=0))
    assert np.all(np.abs(z) < 4), z  # the sampled counts average to the model's expectation


def _independent_total(truth: ResponseParameters, plan: np.ndarray, before: np.ndarray, dates: np.ndarray) -> float:
    """The true expected clicks of a flight and its tail, written out day by day from the formulas."""
    lags = truth.max_lag
    spend = np.concatenate([before, plan, np.zeros((lags - 1, plan.shape[1]))])
    all_dates = np.concatenate([dates, dates[-1] + np.arange(1, lags)])
    weekday, season, trend = truth.calendar.features(all_dates)
    total = 0.0
    for t in range(len(all_dates)):
        for c in range(plan.shape[1]):
            theta = truth.decay[0, c]
            window = spend[t: t + lags, c][::-1]  # today first
            a = (theta ** np.arange(lags) * window).sum() / (theta ** np.arange(lags)).sum()
            kappa, s = np.exp(truth.saturation[0, c] + truth.spend_center[c]), truth.slope[0, c]
            hill = a**s / (a**s + kappa**s) / (np.exp(truth.spend_center[c] * s) / (np.exp(truth.spend_center[c] * s) + kappa**s))
            level = np.exp(truth.alpha[0, c] + truth.weekday[0, weekday[t]] + truth.season[0] @ season[t]
                           + truth.trend[0, c] * trend[t]) * truth.ctr[0, c]
            total += level * hill
    return total


def test_flight_total_matches_the_formulas_written_out(world):
    history, truth = world
    dates = history.dates[-1] + 1 + np.arange(4)
    plan = np.random.default_rng(2).uniform(50, 600, (4, 3))
    flight = Flight.create(truth, dates, carry_in=history.spend)
    expected = _independent_total(truth, plan, history.spend[-(truth.max_lag - 1):], dates)
    assert flight.total(plan)[0] == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_planner_reaches_the_true_optimum_of_an_independent_optimizer(seed):
    """Small cases: 2 channels × 3 days, the optimum of the written-out model by Nelder–Mead on a softmax."""
    from scipy.optimize import minimize

    history, truth = synthesize_carryover(2, 60, seed=seed, decay=0.7)
    dates, budget = history.dates[-1] + 1 + np.arange(3), 3000.0
    before = history.spend[-(truth.max_lag - 1):]

    def negative(z):
        shares = np.exp(z - z.max())
        return -_independent_total(truth, (shares / shares.sum() * budget).reshape(3, 2), before, dates)

    reference = min((minimize(negative, start, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 8000})
                     for start in (np.zeros(6), np.random.default_rng(seed).normal(0, 1, 6))), key=lambda r: r.fun)
    plan = plan_flight(Flight.create(truth, dates, carry_in=history.spend), budget)
    assert plan.sum() == pytest.approx(budget, rel=1e-12)
    ours = _independent_total(truth, plan, before, dates)
    assert ours >= -reference.fun * (1 - 1e-6)  # at least as good as the independent optimum
    assert ours <= -reference.fun * (1 + 1e-3)  # and that optimum is the same one


def test_plan_respects_daily_bounds_and_sums_to_the_budget(world):
    history, truth = world
    flight = Flight.create(truth, history.dates[-1] + 1 + np.arange(10), carry_in=history.spend)
    bounds = Bounds.create(truth.channels, minimum={"search": 150.0}, maximum={"social": 80.0, "display": 500.0})
    for plan in (plan_flight(flight, 9000.0, bounds), myopic_plan(flight, 9000.0, bounds)):
        assert plan.sum() == pytest.approx(9000.0, rel=1e-10)
        assert np.all(plan[:, 0] >= 150 - 1e-9) and np.all(plan[:, 1] <= 80 + 1e-9) and np.all(plan[:, 2] <= 500 + 1e-9)
    free = plan_flight(flight, 9000.0)
    assert flight.total(free)[0] >= flight.total(plan_flight(flight, 9000.0, bounds))[0]


def test_planner_beats_the_myopic_optimizer_when_carryover_is_strong():
    history, truth = synthesize_carryover(3, 60, seed=5, decay=0.85)
    flight = Flight.create(truth, history.dates[-1] + 1 + np.arange(14), carry_in=history.spend)
    planned, myopic = (flight.total(f(flight, 14000.0))[0] for f in (plan_flight, myopic_plan))
    even = flight.total(spread(np.ones(14), np.ones(3), 14000.0, Bounds.none(3)))[0]
    assert planned > myopic * 1.005 and planned > even


def test_pacing_environment_passes_the_env_checker_and_spends_exactly_the_budget(world):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import nextbest.envs  # noqa: F401  (registers the environments)
    from nextbest.envs.budget_pacing import BudgetPacingEnv

    check_env(gym.make("nextbest/BudgetPacing-v0").unwrapped, skip_render_check=True)
    history, truth = world
    env = BudgetPacingEnv(truth, budget=7000.0, days=7, start=history.dates[-1] + 1, carry_in=history.spend,
                          minimum={"search": 100.0})
    env.reset(seed=0)
    rng, total, done = np.random.default_rng(0), 0.0, False
    while not done:
        _, reward, done, _, info = env.step(rng.uniform(0, 1, 4).astype(np.float32))
        assert info["allocation"][0] >= 100.0 - 1e-9
        total += reward
    assert env.plan.sum() == pytest.approx(7000.0, rel=1e-12)
    flight = Flight.create(truth, history.dates[-1] + 1 + np.arange(7), carry_in=history.spend)
    assert total * env.reward_scale == pytest.approx(flight.total(env.plan)[0], rel=1e-10)  # the return is the objective


# --- the command line on a small fitted carryover model ------------------------------------------
@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("carryover")
    _main("budget", "synthesize", "--days", 100, "--seed", 2, "--output", root / "history.csv", "--truth", root / "truth.json")
    _main("budget", "fit", root / "history.csv", "--experiment-dir", root / "exp", "--draws", 150, "--warmup", 150,
          "--max-rhat", 1.5, "--min-ess", 0, "--max-lag", 14, "--json", root / "fit.json", "--quiet")
    return root


def test_truth_keeps_every_carryover_parameter(fitted):
    truth = ResponseParameters.from_dict(json.loads((fitted / "truth.json").read_text()))
    assert truth.kind == "hill" and truth.max_lag == 14
    assert truth.decay.shape == truth.slope.shape == truth.saturation.shape == (1, 3)
    summary = json.loads((fitted / "fit.json").read_text())
    assert summary["model"] == "hill" and {"decay", "half_saturation", "roi"} <= set(summary["channels"]["search"])


def test_plan_writes_the_contract(fitted, run_cli):
    result = run_cli("budget", "plan", fitted / "exp", "--budget", 10_000, "--days", 10, "--min", "search=200",
                     "--max", "social=300", "--truth", fitted / "truth.json", "--json", fitted / "plan.json", "--quiet")
    assert result.exit_code == 0, result.output
    data = json.loads((fitted / "plan.json").read_text())
    assert {"plan", "expected_clicks", "clicks_interval", "baselines", "notes"} <= set(data)
    assert {"historical", "equal", "myopic", "posterior_mean", "true_optimum"} <= set(data["baselines"])
    history_end = np.datetime64("2025-01-01") + 99
    dates = sorted({row["date"] for row in data["plan"]})
    assert dates[0] == str(history_end + 1) and len(dates) == 10 and len(data["plan"]) == 30
    for figures in [data, *data["baselines"].values()]:
        assert sum(row["spend"] for row in figures["plan"]) == pytest.approx(10_000, abs=1e-6)
        assert all(r["spend"] >= 200 - 1e-9 for r in figures["plan"] if r["channel"] == "search")
        assert all(r["spend"] <= 300 + 1e-9 for r in figures["plan"] if r["channel"] == "social")
    low, high = data["clicks_interval"]
    assert low < data["expected_clicks"] < high
    true = {name: row["true_clicks"] for name, row in data["baselines"].items()}
    assert true["planner"] >= 0.97 * true["true_optimum"]
    assert true["planner"] > true["equal"] and true["planner"] > true["historical"]


def test_plan_starts_later_with_the_decayed_carryover(fitted, run_cli):
    result = run_cli("budget", "plan", fitted / "exp", "--budget", 5000, "--days", 5, "--start", "2025-04-20",
                     "--json", fitted / "later.json", "--quiet")
    assert result.exit_code == 0, result.output
    data = json.loads((fitted / "later.json").read_text())
    assert data["start"] == "2025-04-20" and any("after the history ends" in note for note in data["notes"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2025-02-01"], "--start 2025-02-01 is inside the history, which ends on 2025-04-10"),
        (["--min", "search=2000"], "the daily channel minimums add up to 20000 over 10 days, more than the budget 10000"),
        (["--max", "search=10,social=10,display=10"], "maximums add up to 300 over 10 days, less than the budget 10000"),
        (["--metric", "revenue"], "--metric 'revenue': expected clicks or conversions"),
        (["--risk", "2"], "--risk 2.0: expected the share of worst draws"),
        (["--max", "tv=5"], "maximum for unknown channel 'tv'"),
    ],
)
def test_plan_errors_exit_2_with_one_message(fitted, run_cli, args, message):
    result = run_cli("budget", "plan", fitted / "exp", "--budget", 10_000, "--days", 10, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_carryover_figures_draw_from_the_fit(fitted):
    from nextbest.budget import plots
    from nextbest.budget.experiment import BudgetExperiment
    from nextbest.simulators.flight import contributions

    experiment = BudgetExperiment.open(fitted / "exp")
    p, history = experiment.parameters.thin(100), experiment.history
    parts = contributions(p, history)
    assert parts.shape == (100, history.n_days + 13, 3)
    plan = json.loads((fitted / "plan.json").read_text()) if (fitted / "plan.json").exists() else None
    figures = [plots.saturation_curves(p, history), plots.carryover_curves(p, history.channels),
               plots.contributions_over_time(parts, history.dates[0] + np.arange(parts.shape[1]), history.channels)]
    if plan is not None:
        figures.append(plots.planned_spend(plan))
    assert all(len(figure.axes) >= 1 for figure in figures)
