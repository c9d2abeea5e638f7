"""A neural contextual bandit: a bootstrapped ensemble of reward networks with randomized priors.

Each of H networks predicts the reward of every joint action from the context; each is
trained on its own bootstrap weights of the experience replay and carries a fixed random
"prior" network added to its output (Osband et al., 2018, randomized prior functions), so
the members disagree where data is thin. Exploring picks a member uniformly per row and
takes its best action (Thompson sampling over the ensemble): the probability of an action is
exactly the share of members that rank it first. Greedy takes the best action of the mean.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from nextbest.agents.base import Agent, AgentSettings, Experience
from nextbest.data.encoding import Features
from nextbest.nets.device import default_device


class NeuralSettings(AgentSettings):
    ensemble_size: int = Field(10, ge=1, description="members of the bootstrapped ensemble")
    hidden_sizes: list[int] = Field([64, 64], description="hidden layer widths of each member")
    prior_scale: float = Field(1.0, ge=0, description="weight of each member's fixed random prior network")
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(256, ge=1)
    epochs: int = Field(60, ge=1, description="passes over the replay buffer per update, capped by max_gradient_steps")
    max_gradient_steps: int = Field(1000, ge=1)
    buffer_size: int = Field(100_000, ge=1, description="most recent experiences kept for replay")


class EnsembleMLP(nn.Module):
    """H independent MLPs evaluated at once. Categorical codes index a per-member first-layer table
    (the same as a one-hot input, without building it)."""

    def __init__(self, members: int, cardinalities: list[int], n_numeric: int, hidden: list[int], outputs: int):
        super().__init__()
        self.register_buffer("offsets", torch.tensor(np.cumsum([0, *cardinalities[:-1]]), dtype=torch.long))
        width = hidden[0]
        scale = 1.0 / math.sqrt(len(cardinalities) + n_numeric + 1)
        self.categorical = nn.Parameter(torch.randn(members, max(sum(cardinalities), 1), width) * scale)
        self.numeric = nn.Parameter(torch.randn(members, n_numeric, width) * scale)
        self.bias = nn.Parameter(torch.zeros(members, 1, width))
        sizes = [*hidden, outputs]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(members, a, b) / math.sqrt(a)) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(members, 1, b)) for b in sizes[1:])
        # The "wide" part: a linear model of the one-hot categories and the numbers, beside the MLP.
        self.wide_categorical = nn.Parameter(torch.zeros(members, max(sum(cardinalities), 1), outputs))
        self.wide_numeric = nn.Parameter(torch.zeros(members, n_numeric, outputs))

    def forward(self, codes: Tensor, numeric: Tensor) -> Tensor:
        """codes (n, n_cat) long, numeric (n, n_num) → (H, n, outputs)."""
        h = torch.einsum("ni,hio->hno", numeric, self.numeric) + self.bias
        wide = torch.einsum("ni,hio->hno", numeric, self.wide_numeric)
        if codes.shape[1]:
            h = h + self.categorical[:, codes + self.offsets].sum(dim=2)
            wide = wide + self.wide_categorical[:, codes + self.offsets].sum(dim=2)
        for weight, bias in zip(self.weights, self.biases):
            h = torch.baddbmm(bias, torch.relu(h), weight)
        return h + wide


class NeuralBandit(Agent):
    name = "neural"
    summary = "bootstrapped ensemble of reward networks with randomized priors (neural Thompson sampling)"
    Config = NeuralSettings

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        c = self.config
        torch.manual_seed(self.seed)
        self.device = default_device()
        shape = (c.ensemble_size, self.schema.cardinalities(), len(self.schema.numeric_columns), c.hidden_sizes)
        self.network = EnsembleMLP(*shape, self.action_space.n_joint).to(self.device)
        self.prior = EnsembleMLP(*shape, self.action_space.n_joint).to(self.device).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)
        self.generator = np.random.default_rng(self.seed)
        self.buffer: dict[str, np.ndarray] = {}
        self.reward_mean, self.reward_std = 0.0, 1.0

    # --- the policy -------------------------------------------------------------------------
    @torch.no_grad()
    def member_scores(self, features: Features) -> Tensor:
        """(H, n, n_joint) standardized reward predictions of every member."""
        codes = torch.as_tensor(features.categorical, device=self.device)
        numeric = torch.as_tensor(features.numeric, device=self.device)
        return self._forward(codes, numeric)

    def _forward(self, codes: Tensor, numeric: Tensor) -> Tensor:
        return self.network(codes, numeric) + self.config.prior_scale * self.prior(codes, numeric)

    def scores(self, features: Features) -> np.ndarray:
        mean = self.member_scores(features).mean(dim=0).cpu().numpy()
        return mean * self.reward_std + self.reward_mean

    def policy(self, features: Features, seeds: np.ndarray) -> np.ndarray:
        best = self.member_scores(features).argmax(dim=2)  # (H, n)
        votes = torch.nn.functional.one_hot(best, self.action_space.n_joint).float().mean(dim=0)
        return votes.cpu().numpy().astype(np.float64)

    # --- learning -----------------------------------------------------------------------------
    def update(self, experience: Experience) -> dict[str, float]:
        c = self.config
        n = len(experience.reward)
        batch = {
            "codes": experience.features.categorical,
            "numeric": experience.features.numeric,
            "action": self.action_space.to_joint(experience.action),
            "reward": experience.reward.astype(np.float32),
            "weight": self.generator.poisson(1.0, size=(n, c.ensemble_size)).astype(np.float32),
        }
        self.buffer = {k: np.concatenate([self.buffer[k], v])[-c.buffer_size :] if self.buffer else v for k, v in batch.items()}
        rewards = self.buffer["reward"]
        self.reward_mean = float(rewards.mean())
        self.reward_std = float(rewards.std()) if len(rewards) > 1 and rewards.std() > 1e-8 else 1.0

        data = {k: torch.as_tensor(v, device=self.device) for k, v in self.buffer.items()}
        target = (data["reward"] - self.reward_mean) / self.reward_std
        size = len(target)
        losses = []
        for _ in range(min(c.max_gradient_steps, max(1, c.epochs * size // c.batch_size))):
            rows = torch.as_tensor(self.generator.integers(0, size, min(c.batch_size, size)), device=self.device)
            predicted = self._forward(data["codes"][rows], data["numeric"][rows])  # (H, b, K)
            chosen = predicted.gather(2, data["action"][rows].view(1, -1, 1).expand(predicted.shape[0], -1, 1))[..., 0]
            weight = data["weight"][rows].T  # (H, b)
            loss = (weight * (chosen - target[rows]) ** 2).sum() / weight.sum().clamp(min=1.0)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.updates += 1
        self.examples += n
        return {"reward_model_loss": float(np.mean(losses[-20:]))}

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "network": self.network.state_dict(),
            "prior": self.prior.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer,
            "reward_scale": (self.reward_mean, self.reward_std),
            "generator": self.generator.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.network.load_state_dict(state["network"])
        self.prior.load_state_dict(state["prior"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer = state["buffer"]
        self.reward_mean, self.reward_std = state["reward_scale"]
        self.generator.bit_generator.state = state["generator"]
