"""Proximal policy optimization (Schulman et al., 2017) for any Gymnasium environment.

    ppo = PPO(env.observation_space, env.action_space, PPOConfig(n_envs=4, n_steps=128))
    history = ppo.learn(lambda: gymnasium.make("CartPole-v1"), total_steps=200_000)
    actions = ppo.predict(observations)          # (n, …) batch in, (n, …) actions out
    ppo.save("cartpole.pt"); ppo = PPO.load("cartpole.pt")

Discrete actions get a categorical policy, MultiDiscrete one categorical per choice, Box a
diagonal Gaussian squashed by tanh onto its bounds (or with `simplex=True` onto the probability
simplex). Defaults are Stable-Baselines3's. The update itself (`ppo_update`) and the advantage
estimator (`generalized_advantages`) are shared with the tabular agents in `nextbest.agents.ppo`.
"""

from __future__ import annotations

import io
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
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from nextbest.errors import ConfigError
from nextbest.io import atomic_write_bytes
from nextbest.nets.device import default_device
from nextbest.nets.heads import ActionSpec, PolicyHead, ValueHead
from nextbest.nets.mlp import TwinMLP


class PPOLossSettings(BaseModel):
    """What one PPO update does with a batch of experience (shared by every PPO in nextbest)."""

    model_config = ConfigDict(extra="forbid")
    learning_rate: float = Field(3e-4, gt=0, description="Adam step size (the start of the schedule)")
    batch_size: int = Field(64, ge=1, description="rows per minibatch")
    n_epochs: int = Field(10, ge=1, description="passes over the batch per update")
    gamma: float = Field(0.99, ge=0, le=1, description="discount of future rewards")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE bias-variance trade-off")
    clip_range: float = Field(0.2, gt=0, description="policy ratio clipped to [1 − clip, 1 + clip]")
    clip_range_vf: float | None = Field(None, gt=0, description="value change clipped around the old value; None: off")
    normalize_advantage: bool = True
    ent_coef: float = Field(0.0, ge=0, description="weight of the entropy bonus")
    vf_coef: float = Field(0.5, ge=0, description="weight of the value loss")
    max_grad_norm: float = Field(0.5, gt=0, description="gradients are rescaled to at most this norm")
    target_kl: float | None = Field(None, gt=0, description="stop the update's epochs once approx. KL > 1.5 × this")
    adam_eps: float = Field(1e-5, gt=0)


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


# --- the shared math ----------------------------------------------------------------------------


def generalized_advantages(
    rewards: np.ndarray, values: np.ndarray, next_value: np.ndarray, done: np.ndarray, gamma: float, lam: float
) -> np.ndarray:
    """GAE(γ, λ) (Schulman et al., 2016). rewards, values, done: (T, n_envs), done[t] meaning the
    episode ended after step t; next_value: (n_envs,) value of the state after the last step.

        δ_t = r_t + γ (1 − done_t) V_{t+1} − V_t,     A_t = δ_t + γ λ (1 − done_t) A_{t+1}."""
    T = len(rewards)
    advantages = np.zeros_like(rewards, dtype=np.float64)
    following = np.zeros(rewards.shape[1:], dtype=np.float64)
    for t in reversed(range(T)):
        v_next = next_value if t == T - 1 else values[t + 1]
        not_done = 1.0 - done[t]
        delta = rewards[t] + gamma * not_done * v_next - values[t]
        following = delta + gamma * lam * not_done * following
        advantages[t] = following
    return advantages


def clipped_surrogate(ratio: Tensor, advantage: Tensor, clip: float) -> Tensor:
    """PPO's policy loss: −E[min(ρ A, clip(ρ, 1 − ε, 1 + ε) A)] with ρ = π_new / π_old."""
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip)
    return -torch.min(ratio * advantage, clipped * advantage).mean()


Evaluate = Callable[[Tensor], tuple[Tensor, Tensor, Tensor, Tensor | None]]
METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm", "extra_loss", "loss")


def ppo_update(
    evaluate: Evaluate,
    old_log_prob: Tensor,
    advantages: Tensor,
    returns: Tensor,
    old_values: Tensor,
    settings: PPOLossSettings,
    optimizer: torch.optim.Optimizer,
    parameters: list[nn.Parameter],
    generator: torch.Generator,
    extra_coef: float = 0.0,
) -> dict[str, float]:
    """Several epochs of minibatch steps on the clipped objective; returns the update's metrics.

    `evaluate(rows)` → (log-probability, entropy, value, extra loss or None), each (len(rows),), of
    the stored actions under the current network; the extra loss (TabNet's attentive-transformer
    sparsity loss) is added with weight `extra_coef`. The other tensors are (N,) and fixed for the
    update. The value loss is SB3's (mean squared error, no ½), optionally clipped as in the
    original implementation (max of the clipped and unclipped errors)."""
    s = settings
    n = len(advantages)
    totals = torch.zeros(len(METRICS))
    zero = advantages.new_zeros(())
    steps, stopped_early, approx_kl_value = 0, False, 0.0
    for _epoch in range(s.n_epochs):
        order = torch.randperm(n, generator=generator).to(advantages.device)
        for start in range(0, n, s.batch_size):
            rows = order[start : start + s.batch_size]
            new_log_prob, entropy, value, extra = evaluate(rows)
            advantage = advantages[rows]
            if s.normalize_advantage and len(rows) > 1:
                std, mean = torch.std_mean(advantage)
                advantage = (advantage - mean) / (std + 1e-8)

            log_ratio = new_log_prob - old_log_prob[rows]
            ratio = log_ratio.exp()
            policy_loss = clipped_surrogate(ratio, advantage, s.clip_range)
            value_error = (value - returns[rows]) ** 2
            if s.clip_range_vf is not None:
                old = old_values[rows]
                clipped_value = old + (value - old).clamp(-s.clip_range_vf, s.clip_range_vf)
                value_error = torch.max(value_error, (clipped_value - returns[rows]) ** 2)
            value_loss = value_error.mean()
            entropy_loss = -entropy.mean()
            loss = policy_loss + s.ent_coef * entropy_loss + s.vf_coef * value_loss
            extra_loss = zero
            if extra is not None:
                extra_loss = extra.mean()
                loss = loss + extra_coef * extra_loss

            with torch.no_grad():
                approx_kl = ((ratio - 1.0) - log_ratio).mean()  # k3 estimator, always ≥ 0
                clip_fraction = ((ratio - 1.0).abs() > s.clip_range).float().mean()
            if s.target_kl is not None:
                approx_kl_value = float(approx_kl)
                if approx_kl_value > 1.5 * s.target_kl:
                    stopped_early = True
                    break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(parameters, s.max_grad_norm, foreach=True)
            optimizer.step()
            steps += 1
            totals += torch.stack([policy_loss, value_loss, -entropy_loss, approx_kl, clip_fraction, grad_norm,
                                   extra_loss, loss]).detach().cpu()
        if stopped_early:
            break
    metrics = {name: float(total) / steps if steps else float("nan") for name, total in zip(METRICS, totals)}
    if steps == 0:  # stopped before the first step: report the KL that stopped it
        metrics["approx_kl"] = approx_kl_value
    metrics["explained_variance"] = explained_variance(old_values, returns)
    metrics["gradient_steps"] = float(steps)
    metrics["stopped_early"] = float(stopped_early)
    return metrics


def make_optimizer(parameters: list[nn.Parameter], learning_rate: float, eps: float) -> torch.optim.Adam:
    """Adam with the fused kernel where PyTorch has one for the device (a third of the optimizer's
    time on a CPU for small networks), else the multi-tensor one."""
    try:
        return torch.optim.Adam(parameters, lr=learning_rate, eps=eps, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(parameters, lr=learning_rate, eps=eps, foreach=True)


def set_learning_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    """Every parameter group of `optimizer` steps with `rate` from now on."""
    for group in optimizer.param_groups:
        group["lr"] = rate


def explained_variance(predicted: Tensor, target: Tensor) -> float:
    """1 − Var[target − predicted] / Var[target]: 1 is perfect, 0 no better than a constant, NaN if Var[target] = 0."""
    variance = float(target.var()) if len(target) > 1 else 0.0
    return float("nan") if variance == 0 else 1.0 - float((target - predicted).var()) / variance


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


class RunningMeanStd:
    """Mean and variance over every row seen (Chan et al.'s parallel update, as SB3's VecNormalize)."""

    def __init__(self, dim: int):
        self.mean, self.var, self.count = np.zeros(dim), np.ones(dim), 1e-4

    def update(self, x: np.ndarray) -> None:
        n, mean, var = len(x), x.mean(axis=0), x.var(axis=0)
        delta, total = mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def normalize(self, x: np.ndarray, clip: float = 10.0) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -clip, clip).astype(np.float32)


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
        inputs, raw = rollout["inputs"], rollout["raw"]

        def evaluate(rows: Tensor):
            distribution, value = self._forward(inputs[rows])
            return distribution.log_prob(raw[rows]), distribution.entropy(), value, None

        metrics = ppo_update(
            evaluate, rollout["log_prob"], rollout["advantages"], rollout["returns"], rollout["values"],
            self.config, self.optimizer, self.parameters, self.generator,
        )
        metrics.pop("extra_loss", None)
        self.updates += 1
        return metrics

    # --- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        stats = self.observation_stats
        return {
            "config": self.config.model_dump(mode="json"),
            "observation_space": self.observation_space,
            "action_space": self.action_space,
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
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        return atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> PPO:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such PPO file") from None
        except Exception as error:  # a truncated or foreign file, whatever torch raises for it
            raise ConfigError(f"{path}: not a PPO file saved by nextbest ({type(error).__name__})") from None
        return cls.from_state(state)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PPO:
        ppo = cls(state["observation_space"], state["action_space"], PPOConfig(**state["config"]),
                  seed=state["seed"], simplex=state["simplex"])
        ppo.modules.load_state_dict(state["modules"])
        ppo.optimizer.load_state_dict(state["optimizer"])
        ppo.generator.set_state(state["generator"])
        if state["observation_stats"] is not None:
            ppo.observation_stats.mean, ppo.observation_stats.var, ppo.observation_stats.count = state["observation_stats"]
        ppo.steps, ppo.updates = state["steps"], state["updates"]
        ppo._set_learning_rate(state["learning_rate"])
        return ppo
