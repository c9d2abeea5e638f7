"""Proximal policy optimization (Schulman et al., 2017) for any Gymnasium environment.

    ppo = PPO(env.observation_space, env.action_space, PPOConfig(n_envs=4, n_steps=128))
    history = ppo.learn(lambda: gymnasium.make("CartPole-v1"), total_steps=200_000)
    actions = ppo.predict(observations)          # (n, …) batch in, (n, …) actions out
    ppo.save("cartpole.pt"); ppo = PPO.load("cartpole.pt")

Discrete actions get a categorical policy, MultiDiscrete one categorical per choice, Box a
diagonal Gaussian squashed by tanh onto its bounds (or with `simplex=True` onto the probability
simplex). Defaults are Stable-Baselines3's. The update itself (`ppo_update`) and the advantage
estimator (`generalized_advantages`) live in `nextbest.agents.ppo_loss`, shared with the tabular
agents in `nextbest.agents.ppo`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from pydantic import Field
from torch import Tensor, nn

from nextbest.agents.ppo_loss import (
    PPOLossSettings,
    RolloutBatch,
    RunningMeanStd,
    generalized_advantages,
    make_optimizer,
    ppo_update,
    set_learning_rate,
)
from nextbest.checkpoints import load_state, state_bytes
from nextbest.errors import ConfigError, ExperimentError
from nextbest.io import atomic_write_bytes
from nextbest.nets.device import default_device
from nextbest.nets.heads import ActionSpec, PolicyHead, ValueHead
from nextbest.nets.mlp import TwinMLP
from nextbest.nets.spaces import space_from_dict, space_to_dict


class PPOConfig(PPOLossSettings):
    """PPO on Gymnasium environments: rollouts, networks, schedule. Defaults are SB3's PPO defaults."""

    n_envs: int = Field(1, ge=1, description="environment copies stepped side by side")
    n_steps: int = Field(2048, ge=1, description="steps per environment between updates")
    lr_schedule: Literal["constant", "linear"] = Field(
        "constant", description="'linear' decays the learning rate to 0 over the environment steps of a learn() call"
    )
    hidden_sizes: list[int] = Field([64, 64], min_length=1, description="layers of the actor and of the critic")
    activation: Literal["tanh", "relu"] = "tanh"
    log_std_init: float = Field(0.0, description="initial log standard deviation of Gaussian policies")
    normalize_observations: bool = Field(False, description="standardize observations with running statistics")


# --- observations ---------------------------------------------------------------------------------


class ObservationFlattener:
    """Batches of Box, Discrete, MultiDiscrete or Dict observations → (n, dim) float32 (one-hot for discrete)."""

    def __init__(self, space: spaces.Space):
        self.space = space
        self.dim = self._dim(space)

    def _dim(self, space: spaces.Space) -> int:
        if isinstance(space, spaces.Box):
            return int(np.prod(space.shape))
        if isinstance(space, spaces.Discrete):
            return int(space.n)
        if isinstance(space, spaces.MultiDiscrete):
            return int(np.sum(space.nvec))
        if isinstance(space, spaces.Dict):
            return sum(self._dim(s) for s in space.spaces.values())
        raise ConfigError(f"unsupported observation space {space}; use Box, Discrete, MultiDiscrete or a Dict of them")

    def __call__(self, batch: Any) -> np.ndarray:
        return self._flatten(self.space, batch).astype(np.float32, copy=False)

    def _flatten(self, space: spaces.Space, batch: Any) -> np.ndarray:
        if isinstance(space, spaces.Dict):
            return np.concatenate([self._flatten(s, batch[k]) for k, s in space.spaces.items()], axis=1)
        array = np.asarray(batch)
        if isinstance(space, spaces.Box):
            if array.shape[1:] != space.shape:
                raise ConfigError(f"expected a batch of observations of shape (n, {', '.join(map(str, space.shape))}), "
                                  f"got {array.shape}")
            return array.reshape(len(array), -1)
        if isinstance(space, spaces.Discrete):
            return np.eye(int(space.n), dtype=np.float32)[array.reshape(-1) - int(space.start)]
        nvec = np.ravel(space.nvec)
        array = array.reshape(len(array), len(nvec))
        return np.concatenate([np.eye(int(k), dtype=np.float32)[array[:, j]] for j, k in enumerate(nvec)], axis=1)


def stack(space: spaces.Space, observations: list[Any]) -> Any:
    """A list of single observations → one batch (a dict of batches for Dict spaces)."""
    if isinstance(space, spaces.Dict):
        return {k: stack(s, [o[k] for o in observations]) for k, s in space.spaces.items()}
    return np.stack([np.asarray(o) for o in observations])


# --- the agent ------------------------------------------------------------------------------------


class PPO:
    """Actor-critic PPO on Gymnasium spaces; see the module docstring."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        config: PPOConfig | None = None,
        *,
        seed: int = 0,
        simplex: bool = False,
    ):
        self.config = c = config if config is not None else PPOConfig()
        self.observation_space, self.action_space = observation_space, action_space
        self.seed, self.simplex = seed, simplex
        self.spec = ActionSpec.from_space(action_space, simplex)
        self.flatten = ObservationFlattener(observation_space)
        self.device = default_device()
        with torch.random.fork_rng(devices=[]):  # seeded initialization without touching the caller's RNG
            torch.manual_seed(seed)
            self.trunk = TwinMLP(self.flatten.dim, c.hidden_sizes, c.activation)
            self.policy_head = PolicyHead(self.trunk.width, self.spec, log_std_init=c.log_std_init)
            self.value_head = ValueHead(self.trunk.width)
        self.modules = nn.ModuleDict({"trunk": self.trunk, "policy": self.policy_head, "value": self.value_head}).to(self.device)
        self.parameters = list(self.modules.parameters())
        self.optimizer = make_optimizer(self.parameters, c.learning_rate, c.adam_eps)
        self.generator = torch.Generator().manual_seed(seed)
        self.observation_stats = RunningMeanStd(self.flatten.dim) if c.normalize_observations else None
        self.steps = 0  # environment steps over every learn() call
        self.updates = 0
        self.learning_rate = c.learning_rate

    # --- the policy -----------------------------------------------------------------------------
    def _inputs(self, observations: Any, update_stats: bool = False) -> Tensor:
        x = self.flatten(observations)
        if self.observation_stats is not None:
            if update_stats:
                self.observation_stats.update(x)
            x = self.observation_stats.normalize(x)
        return torch.as_tensor(x, device=self.device)

    def _forward(self, x: Tensor):
        actor, critic = self.trunk(x)
        return self.policy_head(actor), self.value_head(critic)

    @torch.no_grad()
    def predict(self, observations: Any, deterministic: bool = True) -> np.ndarray:
        """A batch of observations (n, *obs_shape), or a dict of such batches → (n, *action_shape) actions.

        Deterministic takes the mode (the most probable class, or the squashed Gaussian mean)."""
        distribution, _ = self._forward(self._inputs(observations))
        raw = distribution.mode() if deterministic else distribution.sample(self.generator)
        return self._env_actions(distribution, raw)

    def _env_actions(self, distribution, raw: Tensor) -> np.ndarray:
        actions = distribution.to_action(raw).cpu().numpy()
        if isinstance(self.action_space, spaces.Discrete):
            return actions.astype(np.int64) + int(self.action_space.start)
        if isinstance(self.action_space, spaces.MultiDiscrete):
            return actions.astype(np.int64)
        return actions.astype(self.action_space.dtype or np.float32)

    @torch.no_grad()
    def value(self, observations: Any) -> np.ndarray:
        """(n,) the critic's estimate of the discounted return from each observation."""
        return self._forward(self._inputs(observations))[1].cpu().numpy()

    def evaluate(self, env_fn: Callable[[], gymnasium.Env], episodes: int = 10, *, seed: int = 0,
                 deterministic: bool = True) -> list[float]:
        """Undiscounted return of each of `episodes` episodes (seeded seed, seed + 1, …)."""
        env, returns = env_fn(), []
        try:
            for episode in range(episodes):
                observation, _ = env.reset(seed=seed + episode)
                total, over = 0.0, False
                while not over:
                    action = self.predict(stack(self.observation_space, [observation]), deterministic)[0]
                    observation, reward, terminated, truncated, _ = env.step(action)
                    total, over = total + float(reward), terminated or truncated
                returns.append(total)
        finally:
            env.close()
        return returns

    # --- learning -------------------------------------------------------------------------------
    def learn(
        self,
        env_fn: Callable[[], gymnasium.Env],
        total_steps: int,
        *,
        callback: Callable[[dict], Any] | None = None,
        tensorboard_dir: Path | None = None,
    ) -> list[dict]:
        """Collect `n_envs × n_steps` environment steps, update, repeat until `total_steps` (rounded up to
        whole rollouts). `callback(metrics)` runs after every update; returning False stops training.
        Returns every update's metrics."""
        from nextbest.tensorboard import MetricsWriter

        c = self.config
        if total_steps < 1:
            raise ConfigError(f"total_steps must be positive, got {total_steps}")
        envs = [env_fn() for _ in range(c.n_envs)]
        self._check_spaces(envs[0])
        writer = MetricsWriter(Path(tensorboard_dir) if tensorboard_dir is not None else None)
        observations = [env.reset(seed=self.seed + 10_000 * self.updates + i)[0] for i, env in enumerate(envs)]
        episode_return, episode_length = np.zeros(c.n_envs), np.zeros(c.n_envs, dtype=np.int64)
        finished: deque[tuple[float, int]] = deque(maxlen=100)  # SB3's ep_info_buffer
        rollout_size = c.n_envs * c.n_steps
        n_updates = math.ceil(total_steps / rollout_size)
        history: list[dict] = []
        started = time.perf_counter()
        try:
            for update in range(n_updates):
                if c.lr_schedule == "linear":
                    self._set_learning_rate(c.learning_rate * (1.0 - update / n_updates))
                rollout, observations, episodes = self._collect(envs, observations, episode_return, episode_length)
                finished.extend(episodes)
                metrics = self._update(rollout)
                self.steps += rollout_size
                metrics |= {
                    "steps": self.steps,
                    "seconds": time.perf_counter() - started,
                    "learning_rate": self.learning_rate,
                    "episodes": len(episodes),
                    "episode_return_mean": float(np.mean([r for r, _ in finished])) if finished else float("nan"),
                    "episode_length_mean": float(np.mean([n for _, n in finished])) if finished else float("nan"),
                }
                metrics["steps_per_second"] = metrics["steps"] / max(metrics["seconds"], 1e-9)
                history.append(metrics)
                writer.write({k: v for k, v in metrics.items() if k != "steps"}, step=self.steps)
                if callback is not None and callback(metrics) is False:
                    break
        finally:
            writer.close()
            for env in envs:
                env.close()
        return history

    def _check_spaces(self, env: gymnasium.Env) -> None:
        for what, mine, theirs in (("observation", self.observation_space, env.observation_space),
                                   ("action", self.action_space, env.action_space)):
            if mine != theirs:
                raise ConfigError(f"the environment's {what} space {theirs} is not the agent's {mine}")

    def _set_learning_rate(self, rate: float) -> None:
        self.learning_rate = rate
        set_learning_rate(self.optimizer, rate)

    @torch.no_grad()
    def _collect(self, envs, observations, episode_return, episode_length):
        """One rollout of n_steps per environment. Truncated episodes are bootstrapped: the reward of the
        last step gains γ V(final observation), as SB3 does, so a time limit is not mistaken for an end."""
        c, n_envs = self.config, len(envs)
        inputs, raws, log_probs, values = [], [], [], []
        rewards = np.zeros((c.n_steps, n_envs))
        done = np.zeros((c.n_steps, n_envs))
        episodes: list[tuple[float, int]] = []
        for t in range(c.n_steps):
            x = self._inputs(stack(self.observation_space, observations), update_stats=True)
            distribution, value = self._forward(x)
            raw = distribution.sample(self.generator)
            actions = self._env_actions(distribution, raw)
            inputs.append(x), raws.append(raw), log_probs.append(distribution.log_prob(raw)), values.append(value)
            truncated_at, final_observations = [], []
            for i, env in enumerate(envs):
                observation, reward, terminated, truncated, _ = env.step(actions[i])
                rewards[t, i] = reward
                episode_return[i] += reward
                episode_length[i] += 1
                if terminated or truncated:
                    done[t, i] = 1.0
                    episodes.append((float(episode_return[i]), int(episode_length[i])))
                    episode_return[i], episode_length[i] = 0.0, 0
                    if truncated and not terminated:
                        truncated_at.append(i), final_observations.append(observation)
                    observation, _ = env.reset()
                observations[i] = observation
            if truncated_at:
                final_values = self._forward(self._inputs(stack(self.observation_space, final_observations)))[1]
                rewards[t, truncated_at] += c.gamma * final_values.cpu().numpy()
        next_value = self._forward(self._inputs(stack(self.observation_space, observations)))[1].cpu().numpy()
        values_np = torch.stack(values).cpu().numpy()
        advantages = generalized_advantages(rewards, values_np, next_value, done, c.gamma, c.gae_lambda)
        rollout = {
            "inputs": torch.cat(inputs),
            "raw": torch.cat(raws),
            "log_prob": torch.cat(log_probs),
            "values": torch.cat(values),
            "advantages": torch.as_tensor(advantages.reshape(-1), dtype=torch.float32, device=self.device),
        }
        rollout["returns"] = rollout["advantages"] + rollout["values"]
        return rollout, observations, episodes

    def _update(self, rollout: dict[str, Tensor]) -> dict[str, float]:
        batch = RolloutBatch(
            (rollout["inputs"],), rollout["raw"], rollout["log_prob"], rollout["advantages"], rollout["returns"],
            rollout["values"], self._evaluate_actions,
        )
        metrics = ppo_update(batch, self.config, self.optimizer, self.generator)
        metrics.pop("extra_loss", None)
        self.updates += 1
        return metrics

    def _evaluate_actions(self, observations: tuple[Tensor], raw: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        """Log-probability and entropy of the stored raw actions and the value, each (b,), under the
        current network; observations: ((b, dim) flattened inputs,)."""
        distribution, value = self._forward(observations[0])
        return distribution.log_prob(raw), distribution.entropy(), value, None

    # --- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        stats = self.observation_stats
        return {
            "config": self.config.model_dump(mode="json"),
            "observation_space": space_to_dict(self.observation_space),  # plain dicts: the file loads weights-only
            "action_space": space_to_dict(self.action_space),
            "seed": self.seed,
            "simplex": self.simplex,
            "modules": self.modules.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "observation_stats": None if stats is None else (stats.mean, stats.var, stats.count),
            "steps": self.steps,
            "updates": self.updates,
            "learning_rate": self.learning_rate,
        }

    def save(self, path: str | Path) -> Path:
        """Write everything needed to resume (networks, optimizer, random state, counters) atomically."""
        return atomic_write_bytes(path, state_bytes(self.state_dict()))

    @classmethod
    def load(cls, path: str | Path) -> PPO:
        """A PPO saved by `save`, read weights-only (opening the file cannot run code)."""
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such PPO file")
        try:
            state = load_state(path)
        except ExperimentError as error:  # a truncated, foreign or unsafe file
            reason = str(error).removeprefix(f"{path}: ")
            raise ConfigError(f"{path}: not a PPO file saved by nextbest ({reason})") from None
        if not isinstance(state, dict) or "observation_space" not in state:
            raise ConfigError(f"{path}: not a PPO file saved by nextbest (no observation space)")
        return cls.from_state(state)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PPO:
        spaces_ = [space if isinstance(space, spaces.Space) else space_from_dict(space)
                   for space in (state["observation_space"], state["action_space"])]
        ppo = cls(*spaces_, PPOConfig(**state["config"]), seed=state["seed"], simplex=state["simplex"])
        ppo.modules.load_state_dict(state["modules"])
        ppo.optimizer.load_state_dict(state["optimizer"])
        ppo.generator.set_state(state["generator"])
        if state["observation_stats"] is not None:
            ppo.observation_stats.mean, ppo.observation_stats.var, ppo.observation_stats.count = state["observation_stats"]
        ppo.steps, ppo.updates = state["steps"], state["updates"]
        ppo._set_learning_rate(state["learning_rate"])
        return ppo
