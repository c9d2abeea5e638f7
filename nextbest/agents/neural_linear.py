"""Neural-linear Thompson sampling (Riquelme et al., 2018): a network learns a representation
of the context; per-action Bayesian ridge regressions on that representation explore.

The network (embeddings of the categorical columns, the numeric columns, two hidden layers,
one output per joint action) is trained on every experience so far to predict the reward of
the action taken. Its last hidden layer φ(x) is the representation: after each update the
per-action posteriors are recomputed from all experiences on the new φ, so exploration is
Thompson sampling with closed-form uncertainty, as for `thompson`, on features that capture
non-linear effects. The probability of the chosen action is estimated by sampling (see
`LinearThompson`) and the action is drawn from that estimate, so the logged probability is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from nextbest.agents.base import Agent, AgentSettings, Experience
from nextbest.agents.ridge import RidgeArms
from nextbest.data.encoding import Features
from nextbest.nets.device import default_device
from nextbest.seeding import row_normals

_CHUNK = 4096


class NeuralLinearSettings(AgentSettings):
    hidden_sizes: list[int] = Field([64, 32], description="hidden layer widths; the last is the representation")
    embedding_dim: int = Field(4, ge=1, description="largest embedding width of a categorical column")
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(20, ge=1, description="passes over the replay buffer per update, capped by max_gradient_steps")
    max_gradient_steps: int = Field(1000, ge=1)
    ridge: float = Field(1.0, gt=0, description="prior precision of the per-action regressions")
    scale: float = Field(1.0, gt=0, description="multiplies the posterior standard deviation when sampling")
    draws: int = Field(100, ge=1, description="posterior draws per row that estimate the action probabilities")
    buffer_size: int = Field(100_000, ge=1, description="most recent experiences kept for replay")


class RewardNetwork(nn.Module):
    def __init__(self, cardinalities: list[int], n_numeric: int, hidden: list[int], outputs: int, embedding_dim: int):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, min(embedding_dim, c)) for c in cardinalities)
        width = sum(min(embedding_dim, c) for c in cardinalities) + n_numeric
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, outputs)

    def representation(self, codes: Tensor, numeric: Tensor) -> Tensor:
        parts = [embedding(codes[:, j]) for j, embedding in enumerate(self.embeddings)]
        return self.body(torch.cat([*parts, numeric], dim=1))

    def forward(self, codes: Tensor, numeric: Tensor) -> Tensor:
        return self.head(self.representation(codes, numeric))


class NeuralLinear(Agent):
    name = "neural-linear"
    summary = "neural-linear Thompson sampling: Bayesian regressions on a learned representation"
    Config = NeuralLinearSettings

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        c = self.config
        torch.manual_seed(self.seed)
        self.device = default_device()
        self.network = RewardNetwork(
            self.schema.cardinalities(), len(self.schema.numeric_columns), c.hidden_sizes,
            self.action_space.n_joint, c.embedding_dim,
        ).to(self.device)
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)
        self.generator = np.random.default_rng(self.seed)
        self.arms = RidgeArms(self.action_space.n_joint, c.hidden_sizes[-1] + 1, ridge=c.ridge)
        self.buffer: dict[str, np.ndarray] = {}

    @torch.no_grad()
    def representation(self, features: Features) -> np.ndarray:
        """(n, d + 1) float64: φ(x) and a bias."""
        self.network.eval()
        phi = self.network.representation(
            torch.as_tensor(features.categorical, device=self.device), torch.as_tensor(features.numeric, device=self.device)
        )
        return np.concatenate([phi.cpu().numpy().astype(np.float64), np.ones((len(features), 1))], axis=1)

    def scores(self, features: Features) -> np.ndarray:
        mean, _ = self.arms.posterior()
        return self.representation(features) @ mean.T

    def policy(self, features: Features, seeds: np.ndarray) -> np.ndarray:
        X = self.representation(features)
        k, draws = self.action_space.n_joint, self.config.draws
        out = np.empty((len(X), k))
        for start in range(0, len(X), _CHUNK):
            rows = slice(start, start + _CHUNK)
            mean, variance = self.arms.mean_and_variance(X[rows])
            noise = row_normals(seeds[rows], draws * k, stream=1).reshape(-1, draws, k)
            winners = (mean[:, None, :] + self.config.scale * np.sqrt(variance)[:, None, :] * noise).argmax(axis=2)
            out[rows] = (winners[:, :, None] == np.arange(k)).mean(axis=1)
        return out

    def update(self, experience: Experience) -> dict[str, float]:
        c = self.config
        batch = {
            "codes": experience.features.categorical,
            "numeric": experience.features.numeric,
            "action": self.action_space.to_joint(experience.action),
            "reward": experience.reward.astype(np.float32),
        }
        self.buffer = {k: np.concatenate([self.buffer[k], v])[-c.buffer_size :] if self.buffer else v for k, v in batch.items()}
        loss = self._fit_network()
        stored = Features(self.buffer["codes"], self.buffer["numeric"], experience.features.cardinalities)
        self.arms = RidgeArms(self.action_space.n_joint, c.hidden_sizes[-1] + 1, ridge=c.ridge)
        self.arms.update(self.representation(stored), self.buffer["action"], self.buffer["reward"].astype(np.float64))
        self.updates += 1
        self.examples += len(experience.reward)
        return {"reward_model_loss": loss, "noise_std": float(np.sqrt(self.arms.noise_variance))}

    def _fit_network(self) -> float:
        c = self.config
        data = {k: torch.as_tensor(v, device=self.device) for k, v in self.buffer.items()}
        size = len(data["reward"])
        mean, std = data["reward"].mean(), data["reward"].std().clamp(min=1e-6) if size > 1 else torch.tensor(1.0)
        target = (data["reward"] - mean) / std
        steps = min(c.max_gradient_steps, max(1, c.epochs * size // c.batch_size))
        self.network.train()
        losses = []
        for _ in range(steps):
            rows = torch.as_tensor(self.generator.integers(0, size, min(c.batch_size, size)), device=self.device)
            predicted = self.network(data["codes"][rows], data["numeric"][rows])
            chosen = predicted.gather(1, data["action"][rows].view(-1, 1))[:, 0]
            loss = ((chosen - target[rows]) ** 2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses[-20:]))

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "arms": self.arms.state_dict(),
            "buffer": self.buffer,
            "generator": self.generator.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.arms.load_state_dict(state["arms"])
        self.buffer = state["buffer"]
        self.generator.bit_generator.state = state["generator"]
