"""Bandit agents: closed-form posteriors, honest logged probabilities, learning against an oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nextbest.agents import AGENTS, Experience
from nextbest.agents.linucb import LinUCB
from nextbest.agents.neural import NeuralBandit, _smallest_within_one_standard_error
from nextbest.agents.settings import agent_config, build_hyperparameters
from nextbest.agents.thompson import LinearThompson
from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import Features, encode
from nextbest.envs import make_scenario
from nextbest.training.simulate import simulate


@pytest.fixture(scope="module")
def world():
    scenario = make_scenario("optimus-poc")
    schema = scenario.schema()
    rng = np.random.default_rng(0)
    contexts = scenario.sample_contexts(400, rng)
    actions = rng.integers(0, 16, size=(400, 1))
    rewards = scenario.sample_reactions(contexts, actions, rng)
    return scenario, schema, encode(contexts, schema), actions, rewards


# Small ensembles and few epochs: these tests check mechanics, not learning speed.
FAST = {"neural": {"members": 3, "max_epochs": 20}}


def _agent(cls, world, **settings):
    scenario, schema, *_ = world
    config = cls.Config(**settings)
    return cls(schema, ActionSpace((16,)), config, seed=0)


def _experience(features, actions, rewards):
    return Experience(features=features, action=actions, reward=rewards, log_probability=np.zeros(len(rewards)))


def test_linear_posterior_matches_an_independent_ridge_solve(world):
    _, _, features, actions, rewards = world
    agent = _agent(LinUCB, world, ridge=2.0)
    agent.update(_experience(features.take(slice(0, 150)), actions[:150], rewards[:150]))
    agent.update(_experience(features.take(slice(150, None)), actions[150:], rewards[150:]))  # in two batches
    X = features.design_matrix()
    mean, A_inv = agent.arms.posterior()
    residuals = 0.0
    for arm in (0, 7, 15):
        rows = actions[:, 0] == arm
        A = 2.0 * np.eye(X.shape[1]) + X[rows].T @ X[rows]
        theta = np.linalg.solve(A, X[rows].T @ rewards[rows])
        np.testing.assert_allclose(mean[arm], theta, atol=1e-10)
        np.testing.assert_allclose(A_inv[arm], np.linalg.inv(A), atol=1e-10)
    for arm in range(16):
        rows = actions[:, 0] == arm
        theta = np.linalg.solve(2.0 * np.eye(X.shape[1]) + X[rows].T @ X[rows], X[rows].T @ rewards[rows])
        residuals += rewards[rows] @ rewards[rows] - (X[rows].T @ rewards[rows]) @ theta
    assert agent.arms.noise_variance == pytest.approx((1.0 + residuals) / (1.0 + len(rewards)))


def test_linear_agents_clip_each_batch_at_the_running_mean_plus_three_standard_deviations(world):
    """Revenue: each batch is clipped to the mean ± 3 std of every reward seen so far, then solved exactly;
    conversions (0/1) are never clipped."""
    _, _, features, actions, _ = world
    rewards = np.random.default_rng(2).lognormal(2.0, 1.5, len(actions))
    first, second = slice(0, 150), slice(150, None)
    agent = _agent(LinUCB, world)
    for rows in (first, second):
        agent.update(_experience(features.take(rows), actions[rows], rewards[rows]))
    clipped = []
    for rows in (first, second):
        seen = rewards[: rows.stop]
        clipped.append(np.minimum(rewards[rows], seen.mean() + 3 * seen.std()))
    clipped = np.concatenate(clipped)
    assert (clipped < rewards).sum() >= 2  # the tail was clipped, in both batches' terms
    X, arm = features.design_matrix(), actions[:, 0] == 7
    theta = np.linalg.solve(np.eye(X.shape[1]) + X[arm].T @ X[arm], X[arm].T @ clipped[arm])
    np.testing.assert_allclose(agent.arms.posterior()[0][7], theta, atol=1e-10)
    conversions = _agent(LinUCB, world)
    conversions.update(_experience(features, actions, (rewards > 20).astype(float)))
    theta = np.linalg.solve(np.eye(X.shape[1]) + X[arm].T @ X[arm], X[arm].T @ (rewards[arm] > 20))
    np.testing.assert_allclose(conversions.arms.posterior()[0][7], theta, atol=1e-10)


def test_linucb_explores_by_the_upper_bound(world):
    _, _, features, actions, rewards = world
    agent = _agent(LinUCB, world, alpha=1.5, exploration_floor=0.0)
    agent.update(_experience(features, actions, rewards))
    X = features.design_matrix()[:5]
    mean, A_inv = agent.arms.posterior()
    sigma = np.sqrt(agent.arms.noise_variance)
    bound = X @ mean.T + 1.5 * sigma * np.sqrt(np.einsum("nd,kde,ne->nk", X, A_inv, X))
    prediction = agent.act(features.take(slice(0, 5)), np.arange(5))
    np.testing.assert_array_equal(prediction.action[:, 0], bound.argmax(axis=1))


def test_thompson_probabilities_match_direct_posterior_sampling(world):
    _, _, features, actions, rewards = world
    agent = _agent(LinearThompson, world, draws=4000, exploration_floor=0.0)
    agent.update(_experience(features, actions, rewards))
    estimated = agent.probabilities(features.take(slice(0, 3)), np.arange(3))  # no floor: Thompson's own
    # independent: draw whole weight vectors θ_a ~ N(μ_a, σ²A_a⁻¹) and count the winners
    mean, A_inv = agent.arms.posterior()
    rng = np.random.default_rng(1)
    X = features.design_matrix()[:3]
    theta = np.stack([rng.multivariate_normal(mean[a], agent.arms.noise_variance * A_inv[a], size=4000) for a in range(16)])
    winners = np.einsum("nd,ksd->nsk", X, theta).argmax(axis=2)  # (3 rows, 4000 draws)
    wins = np.stack([(winners == a).mean(axis=1) for a in range(16)], axis=1)
    np.testing.assert_allclose(estimated, wins, atol=0.04)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_logged_probabilities_are_never_zero_and_match_the_policy(world, name):
    _, schema, features, actions, rewards = world
    cls = AGENTS[name]
    agent = cls(schema, ActionSpace((16,)), agent_config(build_hyperparameters(name, FAST.get(name))), seed=0)
    agent.update(_experience(features, actions, rewards))
    seeds = np.arange(len(rewards))
    probabilities = agent.probabilities(features, seeds)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities.min() >= agent.config.exploration_floor / 16 - 1e-12
    prediction = agent.act(features, seeds)
    chosen = probabilities[np.arange(len(seeds)), prediction.action[:, 0]]
    np.testing.assert_allclose(prediction.log_probability, np.log(chosen))
    again = agent.act(features, seeds)  # the same seeds give the same actions
    np.testing.assert_array_equal(again.action, prediction.action)


def test_neural_probabilities_are_the_share_of_members_voting(world):
    _, _, features, actions, rewards = world
    agent = _agent(NeuralBandit, world, members=5, exploration_floor=0.0, max_epochs=10)
    agent.update(_experience(features, actions, rewards))
    rows = features.take(slice(0, 50))
    ensemble = agent.ensembles[agent.chosen]
    with torch.no_grad():
        logits = ensemble(ensemble.inputs(torch.as_tensor(rows.categorical), torch.as_tensor(rows.numeric))).numpy()
    votes = np.stack([(logits.argmax(axis=2) == a).mean(axis=0) for a in range(16)], axis=1)
    np.testing.assert_allclose(agent.probabilities(rows, np.arange(50)), votes)  # no floor: the votes themselves
    expected = agent.distribution(rows, np.arange(50)).action_values
    np.testing.assert_allclose(expected, (1 / (1 + np.exp(-logits))).mean(axis=0), rtol=1e-5)


def test_neural_linear_member_objective_is_the_anchored_ridge_posterior(world):
    """A linear member with a Gaussian likelihood maximizes log p(r | θ) − ‖θ − θ₀‖² / 2σ²: its optimum solves
    (XᵀX + Λ) θ = Xᵀr + Λ θ₀ per action (Λ = 1/σ² on the weights, 0 on the bias), where the gradient vanishes."""
    _, _, features, actions, rewards = world
    agent = _agent(NeuralBandit, world, structures=["linear"], members=2, loss="gaussian")
    ensemble = agent.ensembles[0]
    codes, numeric = torch.as_tensor(features.categorical), torch.as_tensor(features.numeric)
    X = np.c_[ensemble.inputs(codes, numeric).double().numpy(), np.ones(len(rewards))]
    precision = np.r_[np.full(X.shape[1] - 1, 1 / ensemble.prior_std["first"] ** 2), 0.0]
    anchor = ensemble.anchor_first.double().numpy()
    with torch.no_grad():
        for member in range(2):
            for arm in range(16):
                rows = actions[:, 0] == arm
                prior_mean = np.r_[anchor[member, :, arm], 0.0]
                theta = np.linalg.solve(X[rows].T @ X[rows] + np.diag(precision),
                                        X[rows].T @ rewards[rows] + precision * prior_mean)
                ensemble.first[member, :, arm] = torch.as_tensor(theta[:-1])
                ensemble.bias[member, 0, arm] = float(theta[-1])
    loss = agent._losses(ensemble, ensemble.inputs(codes, numeric), torch.as_tensor(actions[:, 0]),
                         torch.as_tensor(rewards, dtype=torch.float32))
    (loss.sum() + ensemble.prior_penalty().sum()).backward()
    assert ensemble.first.grad.abs().max() < 1e-3 and ensemble.bias.grad.abs().max() < 1e-3


def test_neural_prefers_the_smallest_structure_within_one_standard_error():
    rng = np.random.default_rng(0)
    base = rng.exponential(size=2000)
    close = base + rng.normal(0.0, 0.5, 2000) * 0.01  # no better than the big model, within noise
    assert _smallest_within_one_standard_error([base + 0.001, close, base], sizes=[10, 5, 100]) == 1
    assert _smallest_within_one_standard_error([base + 0.05, base + 0.05, base], sizes=[10, 5, 100]) == 2


def test_neural_uses_a_gaussian_likelihood_for_revenue(world):
    _, _, features, actions, rewards = world
    agent = _agent(NeuralBandit, world, members=2, max_epochs=5)
    agent.update(_experience(features, actions, rewards))
    assert agent.bernoulli
    agent.update(_experience(features, actions, rewards * 37.5))
    expected = agent.distribution(features, np.arange(len(rewards))).action_values
    assert not agent.bernoulli and expected.max() > 2.0  # on the reward's own scale


def test_neural_clips_heavy_tailed_rewards_to_three_standard_deviations(world):
    """One order far out in the tail: fitted raw, it makes its action look best; clipped to the mean ± 3 std
    of the rewards (the default), it no longer does, and the Bernoulli path is never clipped."""
    _, _, original, actions, _ = world
    features = Features(np.tile(original.categorical, (10, 1)), np.tile(original.numeric, (10, 1)), original.cardinalities)
    actions = np.tile(actions, (10, 1))  # 4,000 rows, about 250 per action
    rewards = np.random.default_rng(1).normal(10.0, 1.0, len(actions)) + 1.0 * (actions[:, 0] == 3)  # action 3 is the best
    rewards[np.flatnonzero(actions[:, 0] == 7)[0]] += 2000.0  # one huge order on action 7
    chosen = {}
    for clip in (3.0, None):
        agent = _agent(NeuralBandit, world, structures=["linear"], members=4, clip=clip)
        agent.update(_experience(features, actions, rewards))
        chosen[clip] = int(agent.distribution(original, np.arange(400)).action_values.mean(axis=0).argmax())
        if clip:
            low, high = rewards.mean() - 3 * rewards.std(), rewards.mean() + 3 * rewards.std()
            assert agent.reward_bounds == pytest.approx((rewards.min(), high)) and low < rewards.min()
            assert agent.reward_mean == pytest.approx(np.clip(rewards, low, high).mean())
    assert chosen == {3.0: 3, None: 7}
    conversions = _agent(NeuralBandit, world, members=2, max_epochs=5)
    conversions.update(_experience(features, actions, (actions[:, 0] == 7).astype(float)))
    assert conversions.bernoulli and conversions.reward_bounds == (0.0, 1.0)


def test_neural_checkpoint_round_trip_repeats_every_decision(world, tmp_path):
    _, schema, features, actions, rewards = world
    agent = _agent(NeuralBandit, world, members=3, max_epochs=10)
    agent.update(_experience(features, actions, rewards))
    agent.save(tmp_path / "agent.pt")
    restored = NeuralBandit(schema, ActionSpace((16,)), agent.config, seed=99)
    restored.load(tmp_path / "agent.pt")
    seeds = np.arange(len(rewards))
    np.testing.assert_array_equal(restored.act(features, seeds).action, agent.act(features, seeds).action)
    np.testing.assert_allclose(restored.distribution(features, seeds).action_values,
                               agent.distribution(features, seeds).action_values)


def test_exploration_depends_on_the_context(world):
    _, _, features, actions, rewards = world
    agent = _agent(NeuralBandit, world, members=4, max_epochs=20)
    agent.update(_experience(features, actions, rewards))
    probabilities = agent.probabilities(features.take(slice(0, 50)), np.arange(50))
    assert np.abs(probabilities - probabilities.mean(axis=0)).max() > 0.2


@pytest.mark.parametrize(("name", "margin"), [("linucb", 0.5), ("thompson", 0.5), ("epsilon-greedy", 0.4), ("neural", 0.5)])
def test_agent_beats_random_on_the_discount_scenario(name, margin):
    result = simulate("discount", name, examples=1500, batch_size=500, seed=3)
    assert result.final_score > margin, [b.normalized_score for b in result.batches]


def test_neural_agent_nears_the_oracle_on_optimus_poc():
    result = simulate("optimus-poc", "neural", examples=2000, batch_size=500, seed=1)
    assert result.final_score > 0.9, [b.normalized_score for b in result.batches]


def test_random_agent_stays_near_zero():
    result = simulate("discount", "random", examples=1000, batch_size=500, seed=3)
    assert abs(result.final_score) < 0.25
