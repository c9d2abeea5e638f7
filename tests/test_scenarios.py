"""Simulated scenarios: Gymnasium-conformant, reproducible, and their oracles agree with their draws."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from nextbest.envs import SCENARIOS, make_scenario
from nextbest.seeding import row_normals, row_uniforms, sample_categorical


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_passes_the_gymnasium_env_checker(name):
    check_env(make_scenario(name), skip_render_check=True)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_is_registered_with_gymnasium(name):
    env = gym.make("nextbest/" + "".join(p.capitalize() for p in name.split("-")) + "-v0")
    observation, info = env.reset(seed=1)
    assert env.observation_space.contains(observation) and info["expected_rewards"].shape == (env.unwrapped.actions.n_joint,)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_sampled_rewards_average_to_the_oracle(name):
    scenario = make_scenario(name)
    rng = np.random.default_rng(0)
    contexts = scenario.sample_contexts(40_000, rng)
    actions = rng.integers(0, scenario.sizes, size=(40_000, len(scenario.sizes)))
    rewards = scenario.reward.calculate_reward(actions, scenario.sample_reactions(contexts, actions, rng))
    expected = scenario.expected_rewards(contexts)[np.arange(40_000), scenario.actions.to_joint(actions)]
    assert abs(rewards.mean() - expected.mean()) < 4 * rewards.std() / np.sqrt(40_000)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_best_action_depends_on_the_customer(name):
    scenario = make_scenario(name)
    expected = scenario.expected_rewards(scenario.sample_contexts(5000, np.random.default_rng(0)))
    best = np.bincount(expected.argmax(axis=1), minlength=expected.shape[1]) / 5000
    assert (best > 0.05).sum() >= 2  # no single action is best for everyone
    oracle, best_fixed = expected.max(axis=1).mean(), expected.mean(axis=0).max()
    assert oracle > best_fixed + 0.05 * (oracle - expected.mean())  # personalization pays


def test_scenarios_are_reproducible_and_worlds_differ():
    a, b = make_scenario("optimus-poc"), make_scenario("optimus-poc")
    contexts = a.sample_contexts(100, np.random.default_rng(3))
    assert contexts.equals(b.sample_contexts(100, np.random.default_rng(3)))
    np.testing.assert_array_equal(a.expected_rewards(contexts), b.expected_rewards(contexts))
    other = make_scenario("optimus-poc", world_seed=1)
    assert not np.allclose(a.expected_rewards(contexts), other.expected_rewards(contexts))


def test_discount_is_wasted_on_customers_who_buy_anyway():
    scenario = make_scenario("discount")
    contexts = scenario.sample_contexts(5000, np.random.default_rng(0))
    best = scenario.expected_rewards(contexts).argmax(axis=1)
    assert best[contexts["loyalty"] == "vip"].mean() < 0.2 < best[contexts["loyalty"] == "new"].mean()


def test_row_random_numbers_depend_only_on_the_row_seed():
    seeds = np.array([5, 17, 2**40, -3])
    u = row_uniforms(seeds, 4, stream=2)
    np.testing.assert_array_equal(row_uniforms(seeds[::-1], 4, stream=2), u[::-1])
    assert not np.allclose(row_uniforms(seeds, 4, stream=3), u)
    assert ((0 <= u) & (u < 1)).all()
    many = row_uniforms(np.arange(200_000), 1)[:, 0]
    assert abs(many.mean() - 0.5) < 0.003 and abs(many.var() - 1 / 12) < 0.002
    z = row_normals(np.arange(100_000), 2)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01


def test_inverse_cdf_sampling_matches_the_probabilities():
    probabilities = np.tile([[0.1, 0.6, 0.3]], (60_000, 1))
    drawn = sample_categorical(probabilities, row_uniforms(np.arange(60_000), 1)[:, 0])
    np.testing.assert_allclose(np.bincount(drawn) / 60_000, [0.1, 0.6, 0.3], atol=0.01)


def test_simulate_command_reports_batches_and_draws_the_learning_curve(run_cli, tmp_path):
    result = run_cli("simulate", "--scenario", "discount", "--agent", "linucb", "--examples", "1000", "--batch-size",
                     "500", "--seed", "1", "--experiment-dir", tmp_path / "run", "--json", tmp_path / "run.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run.json").read_text())
    assert [b["examples"] for b in report["batches"]] == [0, 500, 1000]
    assert set(report["batches"][0]) == {"batch", "examples", "mean_reward", "oracle", "random", "agent", "normalized_score", "seconds"}
    assert report["final_normalized_score"] > 0.5
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 10_000
    assert any((tmp_path / "run" / "tensorboard").iterdir())
    assert "normalized" in result.stdout


def test_simulate_rejects_unknown_scenarios(run_cli):
    result = run_cli("simulate", "--scenario", "mars")
    assert result.exit_code == 2 and "unknown scenario 'mars'" in result.stderr
