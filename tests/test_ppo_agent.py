"""The contextual PPO agents (ppo-tabnet, ppo-mlp): prediction, the PPO update on logged tables, learning, resuming."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_ppo_fixtures import one_thread  # noqa: F401  (autouse: one CPU thread)

from nextbest.agents.base import Experience
from nextbest.agents.settings import build_hyperparameters
from nextbest.envs import make_scenario
from nextbest.training.experiment import Experiment
from nextbest.training.simulate import simulate

AGENTS = ["ppo-tabnet", "ppo-mlp"]


def experiment_for(scenario: str, agent: str, directory=None, **overrides) -> Experiment:
    world = make_scenario(scenario)
    hp = build_hyperparameters(agent, overrides or None, action_space=list(world.sizes), columns=world.columns,
                               categorical_columns=list(world.categorical), reward_name=world.reward_config.reward_name,
                               action_costs=world.reward_config.action_costs, seed=0)
    return Experiment.create(directory, hp, world.schema())


def experiences(experiment: Experiment, scenario: str, n: int, seed: int) -> pd.DataFrame:
    """A prediction table of n fresh customers with simulated reactions."""
    world, rng = make_scenario(scenario), np.random.default_rng(seed)
    table = experiment.predict(world.sample_contexts(n, rng), seed=seed)
    table["reaction"] = world.sample_reactions(table, experiment.action_space.read(table), rng)
    return table


@pytest.mark.parametrize("agent", AGENTS)
def test_ppo_beats_random_by_a_clear_margin_on_discount(agent):
    result = simulate("discount", agent, examples=3000, batch_size=500, seed=0)
    assert result.batches[0].normalized_score < 0.3
    assert result.final_score > 0.6, [b.normalized_score for b in result.batches]


@pytest.mark.parametrize("agent", AGENTS)
def test_prediction_of_a_row_does_not_depend_on_its_batch_and_differs_between_contexts(agent):
    experiment = experiment_for("discount", agent)
    for seed in range(3):
        experiment.train(experiences(experiment, "discount", 400, seed))
    contexts = make_scenario("discount").sample_contexts(40, np.random.default_rng(7))
    features = experiment.features(contexts)
    batch = experiment.agent.probabilities(features, np.arange(40))
    alone = np.concatenate([experiment.agent.probabilities(features.take(slice(i, i + 1)), np.arange(1)) for i in range(40)])
    np.testing.assert_allclose(alone, batch, atol=1e-6)
    assert np.ptp(batch[:, 1]) > 0.2  # the probability of the discount varies with the customer


def test_probabilities_are_the_joint_products_that_act_samples_from():
    experiment = experiment_for("multi-offer", "ppo-mlp")
    experiment.train(experiences(experiment, "multi-offer", 300, 0))
    context = make_scenario("multi-offer").sample_contexts(1, np.random.default_rng(3))
    many = pd.concat([context] * 4000, ignore_index=True)
    features = experiment.features(many)
    probabilities = experiment.agent.probabilities(features, np.arange(4000))
    assert probabilities.shape == (4000, 16)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    prediction = experiment.agent.act(features, np.arange(4000))
    joint = experiment.action_space.to_joint(prediction.action)
    np.testing.assert_allclose(prediction.log_probability, np.log(probabilities[np.arange(4000), joint]), rtol=1e-6)
    frequencies = np.bincount(joint, minlength=16) / 4000
    np.testing.assert_allclose(frequencies, probabilities[0], atol=0.025)
    floor = experiment.agent.config.exploration_floor
    assert probabilities.min() >= (floor / 4) ** 2 - 1e-12  # every joint action stays possible


def test_greedy_takes_the_most_probable_action_with_log_probability_zero():
    experiment = experiment_for("multi-offer", "ppo-tabnet")
    contexts = make_scenario("multi-offer").sample_contexts(30, np.random.default_rng(4))
    features = experiment.features(contexts)
    greedy = experiment.agent.act(features, np.arange(30), greedy=True)
    best = experiment.agent.probabilities(features, np.arange(30)).argmax(axis=1)
    np.testing.assert_array_equal(experiment.action_space.to_joint(greedy.action), best)
    np.testing.assert_array_equal(greedy.log_probability, 0.0)


def test_prediction_table_logs_value_and_the_attentive_transformer_loss_per_row():
    tabnet, mlp = experiment_for("discount", "ppo-tabnet"), experiment_for("discount", "ppo-mlp")
    contexts = make_scenario("discount").sample_contexts(20, np.random.default_rng(5))
    table = tabnet.predict(contexts, seed=1)
    assert (table["attentive_transformer_loss"] > 0).all() and table["attentive_transformer_loss"].nunique() > 1
    assert table["done"].all() and np.isfinite(table["value"]).all()
    assert (mlp.predict(contexts, seed=1)["attentive_transformer_loss"] == 0).all()


def test_update_ratio_uses_the_logged_probability():
    # One minibatch step with a negligible learning rate: the reported KL and clip fraction are those
    # of π_current / p_logged, which an independent computation reproduces.
    experiment = experiment_for("discount", "ppo-mlp", learning_rate=1e-12, n_epochs=1, batch_size=1000)
    agent = experiment.agent
    contexts = make_scenario("discount").sample_contexts(300, np.random.default_rng(6))
    features = experiment.features(contexts)
    action = np.random.default_rng(7).integers(0, 2, (300, 1))
    logged = np.log(np.random.default_rng(8).uniform(0.2, 0.8, 300))  # another policy's probabilities
    current = agent.probabilities(features, np.arange(300))[np.arange(300), action[:, 0]]
    log_ratio = np.log(current) - logged
    metrics = agent.update(Experience(features, action, np.ones(300), logged))
    assert metrics["approx_kl"] == pytest.approx(np.mean(np.expm1(log_ratio) - log_ratio), rel=1e-4)
    assert metrics["clip_fraction"] == pytest.approx(np.mean(np.abs(np.expm1(log_ratio)) > 0.2))


def test_learning_rate_schedule_counts_trained_examples_and_says_when_it_reaches_zero():
    experiment = experiment_for("discount", "ppo-mlp", learning_rate_decay_examples=400)
    rates = [experiment.train(experiences(experiment, "discount", 200, seed))["learning_rate"] for seed in range(2)]
    assert rates == pytest.approx([3e-3, 1.5e-3])
    before = {k: v.clone() for k, v in experiment.agent.network.state_dict().items()}
    with pytest.warns(UserWarning, match="learning rate reached 0 after 400 examples"):
        metrics = experiment.train(experiences(experiment, "discount", 200, 2))
    assert metrics["learning_rate"] == 0.0
    for name, value in experiment.agent.network.state_dict().items():
        torch.testing.assert_close(value, before[name])


@pytest.mark.parametrize("agent", AGENTS)
def test_resume_after_a_crash_reproduces_the_same_next_update(agent, tmp_path):
    first, second = (experiences(experiment_for("discount", agent), "discount", 300, s) for s in (10, 11))
    straight = experiment_for("discount", agent, tmp_path / "straight")
    straight.train(first)
    expected = straight.train(second)

    crashed = experiment_for("discount", agent, tmp_path / "crashed")
    crashed.train(first)
    del crashed  # the process dies here; only the directory remains
    resumed = Experiment.open(tmp_path / "crashed")
    metrics = resumed.train(second)

    assert metrics.keys() == expected.keys()
    for key in metrics:
        if key != "seconds":
            assert metrics[key] == pytest.approx(expected[key], nan_ok=True), key
    for name, value in resumed.agent.network.state_dict().items():
        torch.testing.assert_close(value, straight.agent.network.state_dict()[name])


def test_training_metrics_reach_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    experiment = experiment_for("discount", "ppo-tabnet", tmp_path / "run")
    experiment.train(experiences(experiment, "discount", 200, 0))
    experiment.close()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("reward/mean", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                "explained_variance", "attentive_transformer_loss", "learning_rate"):
        assert tag in tags, tag


def test_nearly_constant_rewards_keep_the_value_loss_of_order_one():
    # Pretraining feeds a reward model's expectations (0.5 ± 0.001): dividing by their standard deviation
    # made them ~500 and the value loss ~10⁵; the following live 0/1 rewards then blew the policy apart.
    experiment = experiment_for("discount", "ppo-mlp", n_epochs=1)
    contexts = make_scenario("discount").sample_contexts(256, np.random.default_rng(9))
    features = experiment.features(contexts)
    action = np.random.default_rng(10).integers(0, 2, (256, 1))
    rewards = 0.5 + np.random.default_rng(11).normal(0, 0.001, 256)
    metrics = experiment.agent.update(Experience(features, action, rewards, np.full(256, np.log(0.5))))
    assert metrics["value_loss"] < 5.0
