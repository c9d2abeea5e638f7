"""Generated worlds (nextbest.envs.worlds): reproducible from the seed, varied within their ranges,
and with an exact oracle that the world's own sampled reactions agree with."""

from __future__ import annotations

import json
import time
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from nextbest.envs import make_scenario
from nextbest.envs.worlds import FORMS, NUMERIC_KINDS, REWARD_KINDS, World
from nextbest.errors import ConfigError


@pytest.fixture(scope="module")
def worlds() -> list[World]:
    return [World(seed) for seed in range(200)]


def _first(worlds: list[World], **kind: object) -> list[World]:
    return [w for w in worlds if all(w.kind[k] == v for k, v in kind.items())]


def test_a_world_is_determined_by_its_seed():
    a, b, other = make_scenario("world:17"), make_scenario("world:17"), make_scenario("world:18")
    assert a.name == "world:17" and a.kind == b.kind and a.columns == b.columns and a.sizes == b.sizes
    contexts = a.sample_contexts(500, np.random.default_rng(3))
    assert contexts.equals(b.sample_contexts(500, np.random.default_rng(3)))
    np.testing.assert_array_equal(a.expected_rewards(contexts), b.expected_rewards(contexts))
    actions = np.zeros((500, len(a.sizes)), dtype=np.int64)
    np.testing.assert_array_equal(a.sample_reactions(contexts, actions, np.random.default_rng(4)),
                                  b.sample_reactions(contexts, actions, np.random.default_rng(4)))
    assert other.kind != a.kind or other.columns != a.columns


def test_a_world_is_cheap_to_make_and_to_sample():
    started = time.perf_counter()
    world = World(5017)
    made = time.perf_counter() - started
    contexts = world.sample_contexts(10_000, np.random.default_rng(0))
    world.sample_reactions(contexts, np.zeros((10_000, len(world.sizes)), dtype=np.int64), np.random.default_rng(1))
    world.expected_rewards(contexts)
    assert made < 1.0 and time.perf_counter() - started < 2.0  # typically 0.05 s and 0.1 s


def test_the_knobs_stay_in_their_ranges_and_every_kind_appears(worlds):
    kinds = [w.kind for w in worlds]
    assert {k["categorical"] for k in kinds} == set(range(1, 7))
    assert {k["numeric"] for k in kinds} == set(range(1, 11))
    cardinalities = [c for k in kinds for c in k["cardinalities"]]
    assert min(cardinalities) == 2 and 25 <= max(cardinalities) <= 30
    assert sum(k["rare_categories"] > 0 for k in kinds) >= 20
    assert set(Counter(n for k in kinds for n in k["numeric_kinds"])) == set(NUMERIC_KINDS)
    assert sum(k["irrelevant"] > 0 for k in kinds) >= 40
    single = [k["n_joint"] for k in kinds if k["actions"] == "single"]
    assert min(single) == 2 and 24 <= max(single) <= 32
    multi = [k for k in kinds if k["actions"] == "multi"]
    assert {len(k["sizes"]) for k in multi} == {2, 3} and {k["interactions"] for k in multi} == {True, False}
    assert Counter(k["reward"] for k in kinds).keys() == REWARD_KINDS.keys()
    assert set(Counter(k["form"] for k in kinds)) == set(FORMS) and min(Counter(k["form"] for k in kinds).values()) >= 15
    assert set(Counter(k["noise"] for k in kinds)) == {"low", "medium", "high"}
    assert all(0.01 <= k["base_rate"] <= 0.30 for k in kinds)


def test_the_purchase_rate_under_random_actions_is_the_drawn_base_rate(worlds):
    for world in worlds[:20]:
        rate = world.purchase_probabilities(world.sample_contexts(20_000, np.random.default_rng(1))).mean()
        assert rate == pytest.approx(world.kind["base_rate"], rel=0.1, abs=0.002), world.kind


@pytest.mark.parametrize("reward", sorted(REWARD_KINDS))
def test_the_oracle_agrees_with_the_worlds_own_reactions(worlds, reward):
    rng = np.random.default_rng(0)
    for world in _first(worlds, reward=reward)[:3]:
        n = 80_000
        contexts = world.sample_contexts(n, rng)
        actions = rng.integers(0, world.sizes, size=(n, len(world.sizes)))
        joint = world.actions.to_joint(actions)
        reactions = world.sample_reactions(contexts, actions, rng)
        every = world.expected_rewards(contexts)
        # The reward's residual has mean zero given every (context, action) if the oracle is exact; a weight that
        # depends on the context only keeps it so and tames the heavy tails of amounts (a 30,000 basket).
        scale = np.abs(every).mean(axis=1) + np.abs(every).mean()
        residual = (world.reward.calculate_reward(actions, reactions) - every[np.arange(n), joint]) / scale
        assert abs(residual.mean()) < 4.5 * residual.std() / np.sqrt(n), world.kind
        # and each action's purchases (a conversion, or a non-zero amount) happen at the oracle's rate
        bought = (reactions > 0) - world.purchase_probabilities(contexts)[np.arange(n), joint]
        for action in range(world.actions.n_joint):
            rows = joint == action
            assert abs(bought[rows].mean()) < 4.5 * bought[rows].std() / np.sqrt(rows.sum()) + 1e-9, (world.kind, action)


def test_the_oracle_scores_one_and_random_actions_about_zero(worlds):
    rng = np.random.default_rng(5)
    for world in worlds[:12]:
        expected = world.expected_rewards(world.sample_contexts(20_000, rng))
        assert expected.max(axis=1).mean() > expected.mean()
        assert _normalized(expected, expected.argmax(axis=1)) == pytest.approx(1.0)
        uniform = rng.integers(0, world.actions.n_joint, len(expected))
        assert abs(_normalized(expected, uniform)) < 0.08, world.kind


def _normalized(expected: np.ndarray, chosen: np.ndarray) -> float:
    """(policy − random) / (oracle − random) from (n, n_joint) expected rewards and (n,) chosen actions."""
    oracle, random = expected.max(axis=1).mean(), expected.mean()
    return float((expected[np.arange(len(chosen)), chosen].mean() - random) / (oracle - random))


def test_same_best_worlds_have_one_action_best_for_almost_everyone(worlds):
    for world in _first(worlds, form="same-best")[:5]:
        best = world.expected_rewards(world.sample_contexts(5000, np.random.default_rng(2))).argmax(axis=1)
        assert np.bincount(best).max() / len(best) > 0.93, world.kind


@pytest.mark.parametrize("seed", [17, 3, 10, 7])  # amount [5], revenue [4], revenue [3, 3, 2], conversion [3, 3, 2]
def test_worlds_pass_the_gymnasium_env_checker(seed):
    check_env(make_scenario(f"world:{seed}"), skip_render_check=True)


def test_worlds_are_registered_with_gymnasium():
    env = gym.make("nextbest/World-v0", world_seed=17)
    observation, info = env.reset(seed=1)
    assert env.observation_space.contains(observation)
    assert info["expected_rewards"].shape == (env.unwrapped.actions.n_joint,) and env.unwrapped.name == "world:17"


def test_a_world_name_needs_an_integer_seed():
    with pytest.raises(ConfigError, match="must be an integer"):
        make_scenario("world:seventeen")


def test_simulate_command_runs_on_a_world(run_cli, tmp_path):
    result = run_cli("simulate", "--scenario", "world:17", "--examples", "1000", "--json", tmp_path / "run.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["scenario"] == "world:17" and [b["examples"] for b in report["batches"]] == [0, 500, 1000]
    assert all(-1.0 < b["normalized_score"] <= 1.0 + 1e-9 for b in report["batches"])


def test_scenarios_command_lists_the_worlds(run_cli):
    result = run_cli("scenarios")
    assert result.exit_code == 0 and "world:<seed>" in result.stdout
