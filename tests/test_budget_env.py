"""`nextbest/BudgetAllocation-v0`: the Gymnasium contract, allocations that sum to the budget, rewards."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import nextbest.envs  # noqa: F401  (registers the environments)
from nextbest.envs.budget import BudgetAllocationEnv
from nextbest.errors import ConfigError
from nextbest.simulators.response import ResponseParameters
from nextbest.simulators.synthesize import synthesize


def _posterior(truth: ResponseParameters, draws: int = 20, seed: int = 0) -> ResponseParameters:
    """A fake posterior: the truth with its elasticities jittered per draw."""
    rng = np.random.default_rng(seed)
    posterior = truth.take(np.zeros(draws, int))
    return ResponseParameters(**{**posterior.__dict__, "beta": posterior.beta + rng.normal(0, 0.05, posterior.beta.shape)})


def test_registered_environment_passes_the_env_checker():
    env = gym.make("nextbest/BudgetAllocation-v0")
    check_env(env.unwrapped, skip_render_check=True)


def test_allocations_sum_to_the_budget_and_respect_bounds_for_any_action():
    env = BudgetAllocationEnv(minimum={"search": 100.0}, maximum={"social": 200.0}, budget=(600.0, 1400.0))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(0, 1, 3) for _ in range(200)] + [np.zeros(3), np.array([0, 1, 0]), np.array([1, 0, 0])]
    for action in actions:
        _, _, _, _, info = env.step(action.astype(np.float32))
        spend = info["allocation"]
        assert spend.sum() == pytest.approx(info["budget"], rel=1e-12)
        assert spend[0] >= 100.0 - 1e-9 and spend[1] <= 200.0 + 1e-9 and np.all(spend >= 0)


def test_reward_is_minus_log_cost_per_click_of_the_true_response():
    history, truth = synthesize(3, 60, seed=2)
    env = BudgetAllocationEnv(truth, budget=1000.0)
    env.reset(seed=1)
    env.set_day(1000.0, holiday=True, weekday=4)
    action = np.array([0.2, 0.5, 0.3], np.float32)
    _, reward, _, _, info = env.step(action)
    spend = action.astype(float) / action.astype(float).sum() * 1000.0
    # The env's day: an average season, the trend where the history ends, and the weekday's effect.
    clicks = truth.day(True).per_channel(spend)[0].sum() * np.exp(truth.weekday[0, 4])
    assert info["clicks"] == pytest.approx(clicks, rel=1e-10)
    assert reward == pytest.approx(-np.log(1000.0 / clicks), rel=1e-10)


def test_each_episode_draws_a_parameter_set_from_the_posterior():
    truth = synthesize(3, 60, seed=2)[1]
    env = BudgetAllocationEnv(_posterior(truth), budget=1000.0)
    draws = {env.reset(seed=s)[1]["draw"] for s in range(40)}
    assert len(draws) > 10
    env.reset(seed=3)
    action = np.full(3, 1 / 3, np.float32)
    env.set_day(1000.0, False, 0, draw=0)
    first = env.step(action)[1]
    env.set_day(1000.0, False, 0, draw=1)
    assert env.step(action)[1] != first


def test_same_seed_gives_the_same_episode():
    def episode(seed):
        env = BudgetAllocationEnv(reward="clicks", sample_counts=True)
        observations = [env.reset(seed=seed)[0]]
        rewards = []
        for _ in range(5):
            observation, reward, *_ = env.step(np.array([0.3, 0.3, 0.4], np.float32))
            observations.append(observation), rewards.append(reward)
        return np.array(observations), np.array(rewards)

    a, b = episode(7), episode(7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_episode_is_truncated_after_its_days():
    env = BudgetAllocationEnv(episode_days=3)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert flags == [False, False, True]


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="unknown reward 'roas'"):
        BudgetAllocationEnv(reward="roas")
    truth = synthesize(3, 60, seed=2, conversions=False)[1]
    with pytest.raises(ConfigError, match="reward 'conversions' needs a model fitted on a history with a 'conversions'"):
        BudgetAllocationEnv(truth, budget=1000.0, reward="conversions")
    with pytest.raises(ConfigError, match="minimums add up to 2000, more than the budget 1000"):
        BudgetAllocationEnv(budget=1000.0, minimum={"search": 2000.0})


def test_a_directory_is_refused_with_the_way_to_open_it():
    with pytest.raises(ConfigError, match=r"BudgetExperiment.open\('runs/budget'\).make_env\(\)"):
        BudgetAllocationEnv("runs/budget")
