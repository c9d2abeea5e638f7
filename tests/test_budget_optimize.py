"""The response model's day form, the optimizer's first-order condition, bounds and feasible allocations."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.errors import ConfigError
from nextbest.simulators.optimize import Bounds, allocate_shares, optimize
from nextbest.simulators.response import DayResponse
from nextbest.simulators.synthesize import synthesize


@pytest.fixture(scope="module")
def truth():
    return synthesize(channels=4, days=60, seed=5)[1]


def test_day_response_matches_the_model_formula(truth):
    """scale·s^β equals CTR · exp(log μ) from the full linear predictor on that date."""
    date = np.datetime64("2025-02-14")
    spend = np.array([[120.0, 300.0, 50.0, 400.0]])
    full = truth.ctr[:, None] * np.exp(truth.log_mean_impressions(spend, np.array([1]), np.array([date])))
    np.testing.assert_allclose(truth.day(True, date).per_channel(spend), full, rtol=1e-12)


def test_gradient_of_the_posterior_mean_matches_finite_differences():
    rng = np.random.default_rng(0)
    response = DayResponse(rng.uniform(1, 5, (50, 3)), rng.uniform(0.3, 0.9, (50, 3)))
    spend, h = np.array([100.0, 250.0, 40.0]), 1e-4
    numeric = [(response.mean().value(spend + h * e) - response.mean().value(spend - h * e)) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(response.mean().gradient(spend), numeric, rtol=1e-6)


def _closed_form(scale: np.ndarray, beta: np.ndarray, budget: float) -> np.ndarray:
    """Single-draw power laws: β_c K_c s_c^(β_c − 1) = λ gives s_c(λ); bisect λ so that Σ s = budget."""
    def spend(lam):
        return (beta * scale / lam) ** (1 / (1 - beta))

    low, high = 1e-12, 1e12
    for _ in range(400):
        mid = np.sqrt(low * high)
        low, high = (mid, high) if spend(mid).sum() > budget else (low, mid)
    return spend(np.sqrt(low * high))


def test_optimizer_matches_the_closed_form_optimum_of_one_draw(truth):
    day = truth.day(False)
    expected = _closed_form(day.scale[0], day.elasticity[0], 1000.0)
    np.testing.assert_allclose(optimize(day, 1000.0), expected, rtol=1e-4)


def test_optimizer_satisfies_the_first_order_condition_on_a_posterior():
    """Equal marginal clicks per unit spend across unconstrained channels, for a 200-draw posterior."""
    rng = np.random.default_rng(1)
    response = DayResponse(rng.lognormal(1.0, 0.3, (200, 4)), rng.uniform(0.4, 0.8, (200, 4)))
    free = optimize(response, 1000.0)
    np.testing.assert_allclose(response.mean().gradient(free), response.mean().gradient(free).mean(), rtol=1e-4)
    cap = free[0] / 2  # a binding maximum on channel a
    bounds = Bounds.create(["a", "b", "c", "d"], maximum={"a": cap})
    spend = optimize(response, 1000.0, bounds)
    marginal = response.mean().gradient(spend)
    assert spend.sum() == pytest.approx(1000.0, rel=1e-12)
    assert spend[0] == pytest.approx(cap, rel=1e-9)
    np.testing.assert_allclose(marginal[1:], marginal[1:].mean(), rtol=1e-4)
    assert marginal[0] > marginal[1:].mean()  # the capped channel is worth more at the margin
    assert response.mean().value(spend) >= response.mean().value(allocate_shares(np.ones(4), 1000.0, bounds))


def test_minimums_are_respected_and_bind_when_they_should(truth):
    day = truth.day(False)
    free = optimize(day, 1000.0)
    weakest = int(np.argmin(free))
    bounds = Bounds.create(truth.channels, minimum={truth.channels[weakest]: free[weakest] + 100})
    spend = optimize(day, 1000.0, bounds)
    assert spend[weakest] == pytest.approx(free[weakest] + 100, rel=1e-9)
    assert spend.sum() == pytest.approx(1000.0, rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_allocate_shares_always_sums_to_the_budget_within_bounds(seed):
    rng = np.random.default_rng(seed)
    channels = ["a", "b", "c", "d"]
    bounds = Bounds.create(channels, minimum={"a": 50.0, "b": 10.0}, maximum={"c": 120.0, "d": 400.0})
    for shares in [rng.dirichlet(np.ones(4) * 0.3), np.zeros(4), np.array([np.nan, 1, 0, 0]), np.array([0, 0, 1.0, 0])]:
        spend = allocate_shares(shares, 900.0, bounds)
        assert spend.sum() == pytest.approx(900.0, rel=1e-12)
        assert np.all(spend >= bounds.minimum - 1e-9) and np.all(spend <= bounds.maximum + 1e-9)


def test_allocate_shares_reaches_any_feasible_allocation():
    bounds = Bounds.create(["a", "b", "c"], minimum={"a": 100.0})
    target = np.array([400.0, 250.0, 350.0])
    shares = (target - bounds.minimum) / (1000.0 - bounds.minimum.sum())
    np.testing.assert_allclose(allocate_shares(shares, 1000.0, bounds), target)


def test_infeasible_bounds_are_refused_with_the_numbers():
    bounds = Bounds.create(["a", "b"], minimum={"a": 600.0, "b": 600.0})
    with pytest.raises(ConfigError, match="minimums add up to 1200, more than the budget 1000"):
        bounds.check(1000.0)
    with pytest.raises(ConfigError, match="maximums add up to 300, less than the budget 1000"):
        Bounds.create(["a", "b"], maximum={"a": 100.0, "b": 200.0}).check(1000.0)
    with pytest.raises(ConfigError, match="minimum for unknown channel 'tv'"):
        Bounds.create(["a", "b"], minimum={"tv": 1.0})
