"""The PPO update shared by every PPO in nextbest (Schulman et al., 2017): the clipped surrogate,
generalized advantage estimation, the optimizer and its schedule, running statistics.

    batch = RolloutBatch(observations, actions, old_log_prob, advantages, returns, old_values, evaluate)
    metrics = ppo_update(batch, settings, optimizer, generator)

The Gymnasium PPO (`nextbest.agents.gym_ppo`) and the tabular agents (`nextbest.agents.ppo`) both
use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn


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


Evaluate = Callable[[tuple[Tensor, ...], Tensor], tuple[Tensor, Tensor, Tensor, Tensor | None]]
METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm", "extra_loss", "loss")


@dataclass(frozen=True)
class RolloutBatch:
    """The N rows one PPO update learns from, fixed while it runs.

    observations: what the network reads, a tuple of (N, …) tensors (the Gymnasium PPO's flattened
    observations; a tabular agent's category codes and standardized numbers); actions: (N, …) the
    actions taken, as the policy's distribution scores them; old_log_prob, advantages, returns,
    old_values: (N,) each. `evaluate(observations, actions)` on a minibatch of them → log-probability,
    entropy, value and an extra loss or None (TabNet's attentive-transformer sparsity loss), each
    (b,), under the current network."""

    observations: tuple[Tensor, ...]
    actions: Tensor
    old_log_prob: Tensor
    advantages: Tensor
    returns: Tensor
    old_values: Tensor
    evaluate: Evaluate

    def __len__(self) -> int:
        return len(self.advantages)


def ppo_update(
    batch: RolloutBatch,
    settings: PPOLossSettings,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    extra_coef: float = 0.0,
) -> dict[str, float]:
    """Several epochs of minibatch steps on the clipped objective; returns the update's metrics.

    Minibatches are drawn with `generator`; `optimizer` steps every parameter it holds, their
    gradient norm clipped to `settings.max_grad_norm`. The extra loss of `batch.evaluate` is added
    with weight `extra_coef`. The value loss is SB3's (mean squared error, no ½), optionally clipped
    as in the original implementation (max of the clipped and unclipped errors)."""
    s = settings
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    n = len(batch)
    totals = torch.zeros(len(METRICS))
    zero = batch.advantages.new_zeros(())
    steps, stopped_early, approx_kl_value = 0, False, 0.0
    for _epoch in range(s.n_epochs):
        order = torch.randperm(n, generator=generator).to(batch.advantages.device)
        for start in range(0, n, s.batch_size):
            rows = order[start : start + s.batch_size]
            observations = tuple(x[rows] for x in batch.observations)
            new_log_prob, entropy, value, extra = batch.evaluate(observations, batch.actions[rows])
            advantage = batch.advantages[rows]
            if s.normalize_advantage and len(rows) > 1:
                std, mean = torch.std_mean(advantage)
                advantage = (advantage - mean) / (std + 1e-8)

            log_ratio = new_log_prob - batch.old_log_prob[rows]
            ratio = log_ratio.exp()
            policy_loss = clipped_surrogate(ratio, advantage, s.clip_range)
            returns = batch.returns[rows]
            value_error = (value - returns) ** 2
            if s.clip_range_vf is not None:
                old = batch.old_values[rows]
                clipped_value = old + (value - old).clamp(-s.clip_range_vf, s.clip_range_vf)
                value_error = torch.max(value_error, (clipped_value - returns) ** 2)
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
    metrics["explained_variance"] = explained_variance(batch.old_values, batch.returns)
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

