"""The generic PPO: its math against hand computations, learning on small Gymnasium tasks, save/load."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from test_ppo_fixtures import one_thread  # noqa: F401  (autouse: one CPU thread)

from nextbest.agents.gym_ppo import PPO, PPOConfig
from nextbest.agents.ppo_loss import (
    PPOLossSettings,
    RolloutBatch,
    clipped_surrogate,
    generalized_advantages,
    ppo_update,
)
from nextbest.errors import ConfigError

FAST = dict(n_envs=8, n_steps=32, batch_size=64, n_epochs=4, learning_rate=3e-3)


# --- the math -------------------------------------------------------------------------------------


def test_clipped_surrogate_matches_a_hand_computation():
    old = torch.zeros(3, dtype=torch.float64)
    new = torch.log(torch.tensor([1.5, 0.5, 1.1], dtype=torch.float64)).requires_grad_()
    advantage = torch.tensor([1.0, 1.0, -2.0], dtype=torch.float64)
    loss = clipped_surrogate((new - old).exp(), advantage, clip=0.2)
    # min(1.5·1, 1.2·1) = 1.2;  min(0.5·1, 0.8·1) = 0.5;  min(1.1·−2, 1.1·−2) = −2.2
    assert loss.item() == pytest.approx(-(1.2 + 0.5 - 2.2) / 3)
    loss.backward()
    # d/d log π of −ρA/3 where the unclipped term is the minimum, 0 where the clipped one is
    torch.testing.assert_close(new.grad, torch.tensor([0.0, -0.5 / 3, 2.2 / 3], dtype=torch.float64))


def test_value_clipping_and_the_attentive_loss_weight_enter_the_loss_as_written():
    value = torch.nn.Parameter(torch.tensor([2.0, 0.0]))  # the critic's new values of two rows
    old_values, returns, zeros = torch.tensor([0.0, 0.0]), torch.tensor([3.0, -1.0]), torch.zeros(2)
    sparsity = torch.tensor([3.0, 1.0])

    def evaluate(observations, actions):
        rows = observations[0]  # the "observation" of a row is its index
        return zeros[rows], zeros[rows], value[rows], sparsity[rows]

    batch = RolloutBatch((torch.arange(2),), torch.zeros(2), zeros, zeros, returns, old_values, evaluate)
    settings = PPOLossSettings(batch_size=2, n_epochs=1, clip_range_vf=0.5, normalize_advantage=False, vf_coef=0.5)
    metrics = ppo_update(batch, settings, torch.optim.SGD([value], lr=0.0), torch.Generator().manual_seed(0),
                         extra_coef=0.1)
    # row 0: max((2 − 3)², (0 + clip(2, ±0.5) − 3)²) = max(1, 6.25); row 1: the value did not move, (0 + 1)² = 1
    assert metrics["value_loss"] == pytest.approx((6.25 + 1.0) / 2)
    assert metrics["extra_loss"] == pytest.approx(2.0)
    assert metrics["loss"] == pytest.approx(0.5 * 3.625 + 0.1 * 2.0)  # policy and entropy terms are 0 here
    unclipped = ppo_update(batch, settings.model_copy(update={"clip_range_vf": None}), torch.optim.SGD([value], lr=0.0),
                           torch.Generator().manual_seed(0))
    assert unclipped["value_loss"] == pytest.approx((1.0 + 1.0) / 2)


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value():
    rewards = np.array([[1.0], [2.0], [3.0], [4.0]])
    values = np.array([[0.5], [0.1], [0.2], [0.3]])
    done = np.array([[0.0], [1.0], [0.0], [0.0]])  # an episode ends after step 1
    gamma, bootstrap = 0.9, np.array([10.0])
    advantages = generalized_advantages(rewards, values, bootstrap, done, gamma, 1.0)
    returns = [1 + 0.9 * 2, 2, 3 + 0.9 * 4 + 0.81 * 10, 4 + 0.9 * 10]
    np.testing.assert_allclose(advantages[:, 0], np.array(returns) - values[:, 0])


def test_gae_with_lambda_zero_is_the_td_error():
    rewards = np.array([[1.0, 0.0], [2.0, 1.0]])
    values = np.array([[0.5, 1.0], [0.1, 2.0]])
    done = np.array([[0.0, 1.0], [0.0, 0.0]])
    advantages = generalized_advantages(rewards, values, np.array([3.0, 4.0]), done, 0.9, 0.0)
    expected = [[1 + 0.9 * 0.1 - 0.5, 0.0 - 1.0], [2 + 0.9 * 3 - 0.1, 1 + 0.9 * 4 - 2.0]]
    np.testing.assert_allclose(advantages, expected)


# --- small tasks ----------------------------------------------------------------------------------


class Target(gym.Env):
    """One-step task: observe x ∈ [−1, 1]², the best action is 0.5·x (a box action)."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.x, {}

    def step(self, action):
        reward = -float(np.sum((action - 0.5 * self.x) ** 2)) * 4
        return self.reset()[0], reward, True, False, {}


class Shares(gym.Env):
    """One-step task: observe one of two segments; the best split of a budget over three channels is
    TARGETS[segment] (a simplex action)."""

    TARGETS = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    observation_space = spaces.Discrete(2)
    action_space = spaces.Box(0.0, 1.0, (3,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.segment = int(self.np_random.integers(2))
        return self.segment, {}

    def step(self, action):
        reward = -float(np.sum((action - self.TARGETS[self.segment]) ** 2)) * 10
        return self.reset()[0], reward, True, False, {}


class TwoChoices(gym.Env):
    """One-step task with two choice sets: the best (a0, a1) is (x0 > 0, which third x1 falls in)."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.MultiDiscrete([2, 3])

    def best(self, x: np.ndarray) -> np.ndarray:
        return np.stack([(x[..., 0] > 0).astype(int), np.digitize(x[..., 1], [-1 / 3, 1 / 3])], axis=-1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.x, {}

    def step(self, action):
        reward = float(np.sum(np.asarray(action) == self.best(self.x)))
        return self.reset()[0], reward, True, False, {}


def test_ppo_learns_a_continuous_box_action():
    ppo = PPO(Target.observation_space, Target.action_space, PPOConfig(**FAST), seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (500, 2)).astype(np.float32)
    before = float(np.mean((ppo.predict(x) - 0.5 * x) ** 2))
    ppo.learn(Target, 10_000)
    after = float(np.mean((ppo.predict(x) - 0.5 * x) ** 2))
    assert before == pytest.approx(np.mean((0.5 * x) ** 2), rel=0.05)  # starts near the middle of the box
    assert after < 0.005, after


def test_ppo_learns_a_simplex_action_per_segment():
    ppo = PPO(Shares.observation_space, Shares.action_space, PPOConfig(**FAST), seed=0, simplex=True)
    ppo.learn(Shares, 10_000)
    shares = ppo.predict(np.array([0, 1]))
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(shares, Shares.TARGETS, atol=0.05)


def test_ppo_learns_independent_choices_of_a_multi_discrete_action():
    env = TwoChoices()
    ppo = PPO(env.observation_space, env.action_space, PPOConfig(**FAST), seed=0)
    ppo.learn(TwoChoices, 10_000)
    x = np.random.default_rng(1).uniform(-1, 1, (1000, 2)).astype(np.float32)
    accuracy = (ppo.predict(x) == env.best(x)).mean(axis=0)
    assert (accuracy > 0.93).all(), accuracy


def test_ppo_improves_cartpole_far_beyond_random():
    config = PPOConfig(n_envs=4, n_steps=128, batch_size=128, n_epochs=4, learning_rate=1e-3, ent_coef=0.01)
    env = gym.make("CartPole-v1")
    ppo = PPO(env.observation_space, env.action_space, config, seed=0)
    history = ppo.learn(lambda: gym.make("CartPole-v1"), 30_000)
    assert history[0]["episode_return_mean"] < 40  # a random policy lasts about 22 steps
    assert history[-1]["episode_return_mean"] > 150
    assert history[-1]["steps"] == 30_208  # whole rollouts: 59 × 512


def test_callback_sees_every_update_and_can_stop_training():
    seen = []
    ppo = PPO(Target.observation_space, Target.action_space, PPOConfig(**FAST), seed=0)
    history = ppo.learn(Target, 10_000, callback=lambda m: seen.append(m) or len(seen) < 3)
    assert len(history) == len(seen) == 3
    for key in ("approx_kl", "clip_fraction", "explained_variance", "entropy", "policy_loss", "value_loss",
                "episode_return_mean", "steps", "seconds", "learning_rate"):
        assert np.isfinite(seen[-1][key]), key
    assert [m["steps"] for m in seen] == [256, 512, 768]


def test_linear_schedule_reaches_zero_at_the_last_update_in_environment_steps():
    config = PPOConfig(**{**FAST, "lr_schedule": "linear"})
    ppo = PPO(Target.observation_space, Target.action_space, config, seed=0)
    rates = [m["learning_rate"] for m in ppo.learn(Target, 1024)]
    np.testing.assert_allclose(rates, [3e-3, 2.25e-3, 1.5e-3, 0.75e-3])


def test_target_kl_stops_the_epochs_early():
    config = PPOConfig(**{**FAST, "n_epochs": 30, "learning_rate": 0.05, "target_kl": 0.001})
    ppo = PPO(Target.observation_space, Target.action_space, config, seed=0)
    history = ppo.learn(Target, 2048)
    assert any(m["stopped_early"] for m in history)
    assert min(m["gradient_steps"] for m in history) < 30 * 4


def test_save_and_load_round_trip(tmp_path):
    ppo = PPO(Shares.observation_space, Shares.action_space, PPOConfig(**FAST), seed=3, simplex=True)
    ppo.learn(Shares, 512)
    path = ppo.save(tmp_path / "ppo.pt")
    loaded = PPO.load(path)
    assert loaded.steps == ppo.steps == 512 and loaded.simplex
    observations = np.array([0, 1, 1])
    np.testing.assert_array_equal(loaded.predict(observations), ppo.predict(observations))
    np.testing.assert_array_equal(loaded.predict(observations, deterministic=False),
                                  ppo.predict(observations, deterministic=False))  # random state restored too


def test_load_rejects_a_file_that_is_not_a_ppo(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="junk.pt: not a PPO file"):
        PPO.load(path)


def test_predict_takes_a_batch_and_names_the_expected_shape():
    ppo = PPO(Target.observation_space, Target.action_space, seed=0)
    assert ppo.predict(np.zeros((5, 2), np.float32)).shape == (5, 2)
    with pytest.raises(ConfigError, match=r"expected a batch of observations of shape \(n, 2\), got \(2,\)"):
        ppo.predict(np.zeros(2, np.float32))


def test_learn_refuses_an_environment_with_other_spaces():
    ppo = PPO(Target.observation_space, Target.action_space, seed=0)
    with pytest.raises(ConfigError, match="action space"):
        ppo.learn(TwoChoices, 100)
