"""A neural contextual bandit: an ensemble of reward networks, each early-stopped on its own held-out rows.

Each of H networks predicts the reward of every joint action from the context. A network is
an MLP on the context whose last layer is a narrow linear bottleneck φ(x) shared by all actions
(every action's reward is a linear function of the same few learned features), plus a "wide"
linear model of the one-hot categories and the numbers. Each member holds out its own random
share of the experiences and stops training when its loss there stops improving, so the
members are fitted on different data and disagree where data is thin.

When every reward seen is 0 or 1 (conversions), the networks output logits and are trained
with the Bernoulli log-likelihood; otherwise rewards are standardized and the loss is squared
error. Exploring picks a member uniformly per row and takes its best action (Thompson sampling
over the ensemble): the probability of an action is exactly the share of members that rank it
first. Greedy takes the best action of the ensemble's mean expected reward.
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
    ensemble_size: int = Field(8, ge=1, description="members of the ensemble")
    hidden_sizes: list[int] = Field([64], description="ReLU hidden layer widths of each member")
    bottleneck: int = Field(8, ge=0, description="width of the linear feature layer shared by all actions (0: none)")
    wide: bool = Field(True, description="add a linear model of the one-hot categories and numbers")
    bins: int = Field(8, ge=0, description="piecewise-linear encoding of each number on this many quantile bins (0: raw only)")
    prior_scale: float = Field(0.0, ge=0, description="weight of each member's fixed random prior network")
    learning_rate: float = Field(1e-2, gt=0)
    weight_decay: float = Field(1e-3, ge=0, description="L2 penalty on the weights, per example")
    holdout: float = Field(0.2, gt=0, lt=1, description="share of experiences each member holds out for early stopping")
    patience: int = Field(50, ge=1, description="epochs without improvement on the held-out rows before stopping")
    max_epochs: int = Field(500, ge=1, description="passes over the replay buffer per update")
    batch_size: int = Field(4096, ge=1, description="rows per gradient step (the whole buffer when it is smaller)")
    refit: bool = Field(True, description="re-initialize the networks at every update instead of continuing")
    loss: str = Field("auto", pattern="^(auto|bernoulli|gaussian)$", description="'auto': Bernoulli when every reward is 0 or 1")
    buffer_size: int = Field(100_000, ge=1, description="most recent experiences kept for replay")


class EnsembleMLP(nn.Module):
    """H independent networks evaluated at once. Categorical codes index a per-member first-layer
    table (the same as a one-hot input, without building it)."""

    def __init__(self, members: int, cardinalities: list[int], n_numeric: int, hidden: list[int], bottleneck: int,
                 outputs: int, wide: bool, bins: int):
        super().__init__()
        self.register_buffer("offsets", torch.tensor(np.cumsum([0, *cardinalities[:-1]]), dtype=torch.long))
        n_categories = max(sum(cardinalities), 1)
        self.register_buffer("knots", torch.zeros(n_numeric, bins + 1))
        self.bins = bins
        inputs = len(cardinalities) + n_numeric * (1 + bins)
        sizes = [*hidden, *([bottleneck] if bottleneck else []), outputs]
        first = sizes[0]
        scale = math.sqrt(2.0 / max(inputs, 1))
        self.categorical = nn.Parameter(torch.randn(members, n_categories, first) * scale)
        self.numeric = nn.Parameter(torch.randn(members, n_numeric * (1 + bins), first) * scale)
        self.bias = nn.Parameter(torch.zeros(members, 1, first))
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(members, a, b) * math.sqrt(2.0 / a)) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(members, 1, b)) for b in sizes[1:])
        self.relu_layers = len(hidden)  # layers after which a ReLU follows; the bottleneck is linear
        self.wide_categorical = nn.Parameter(torch.zeros(members, n_categories, outputs)) if wide else None
        self.wide_numeric = nn.Parameter(torch.zeros(members, n_numeric, outputs)) if wide else None

    def forward(self, codes: Tensor, numeric: Tensor) -> Tensor:
        """codes (n, n_cat) long, numeric (n, n_num) → (H, n, outputs)."""
        h = torch.einsum("ni,hio->hno", self.encode(numeric), self.numeric) + self.bias
        if codes.shape[1]:
            h = h + self.categorical[:, codes + self.offsets].sum(dim=2)
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if layer < self.relu_layers:
                h = torch.relu(h)
            h = torch.baddbmm(bias, h, weight)
        if self.wide_numeric is not None:
            h = h + torch.einsum("ni,hio->hno", numeric, self.wide_numeric)
            if codes.shape[1]:
                h = h + self.wide_categorical[:, codes + self.offsets].sum(dim=2)
        return h

    def encode(self, numeric: Tensor) -> Tensor:
        """(n, n_num) → (n, n_num · (1 + bins)): the numbers, then how far each has filled each quantile bin."""
        if not self.bins:
            return numeric
        low, high = self.knots[:, :-1], self.knots[:, 1:]
        x = numeric[:, :, None]
        fill = torch.where(high > low, ((x - low) / (high - low).clamp(min=1e-12)).clamp(0, 1), (x >= high).float())
        return torch.cat([numeric, fill.flatten(1)], dim=1)

    def penalty(self) -> Tensor:
        """(H,) sum of squared weights (biases excluded) of every member."""
        weights = [self.categorical, self.numeric, *self.weights]
        if self.wide_numeric is not None:
            weights += [self.wide_categorical, self.wide_numeric]
        return sum((w**2).flatten(1).sum(1) for w in weights)


class NeuralBandit(Agent):
    name = "neural"
    summary = "ensemble of early-stopped reward networks with a shared bottleneck (neural Thompson sampling)"
    Config = NeuralSettings

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        c = self.config
        torch.manual_seed(self.seed)
        self.device = default_device()
        self.prior = self._network().requires_grad_(False)
        self.network = self._network()
        self.generator = np.random.default_rng(self.seed)
        self.buffer: dict[str, np.ndarray] = {}
        self.bernoulli = c.loss == "bernoulli"
        self.reward_mean, self.reward_std = 0.0, 1.0

    def _network(self) -> EnsembleMLP:
        c = self.config
        return EnsembleMLP(
            c.ensemble_size, self.schema.cardinalities(), len(self.schema.numeric_columns), c.hidden_sizes,
            c.bottleneck, self.action_space.n_joint, c.wide, c.bins,
        ).to(self.device)

    # --- the policy -------------------------------------------------------------------------
    @torch.no_grad()
    def member_scores(self, features: Features) -> Tensor:
        """(H, n, n_joint) expected reward of every action according to every member."""
        codes = torch.as_tensor(features.categorical, device=self.device)
        numeric = torch.as_tensor(features.numeric, device=self.device)
        out = self._forward(codes, numeric)
        return torch.sigmoid(out) if self.bernoulli else out * self.reward_std + self.reward_mean

    def _forward(self, codes: Tensor, numeric: Tensor) -> Tensor:
        out = self.network(codes, numeric)
        if self.config.prior_scale:
            out = out + self.config.prior_scale * self.prior(codes, numeric)
        return out

    def scores(self, features: Features) -> np.ndarray:
        return self.member_scores(features).mean(dim=0).cpu().numpy().astype(np.float64)

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
            # which members hold each row out; fixed when the row arrives so that warm starts never train on it
            "holdout": self.generator.random((n, c.ensemble_size)) < c.holdout,
        }
        self.buffer = {k: np.concatenate([self.buffer[k], v])[-c.buffer_size :] if self.buffer else v for k, v in batch.items()}
        rewards = self.buffer["reward"]
        self.bernoulli = c.loss == "bernoulli" or (c.loss == "auto" and bool(np.isin(rewards, (0.0, 1.0)).all()))
        self.reward_mean = float(rewards.mean())
        self.reward_std = float(rewards.std()) if rewards.std() > 1e-8 else 1.0
        if c.refit:
            self.network = self._network()
        if c.bins and (c.refit or self.updates == 0):
            quantiles = np.quantile(self.buffer["numeric"], np.linspace(0, 1, c.bins + 1), axis=0).T
            self.network.knots.copy_(torch.as_tensor(quantiles, dtype=torch.float32))
            self.prior.knots.copy_(self.network.knots)
        metrics = self._fit()
        self.updates += 1
        self.examples += n
        return metrics

    def _fit(self) -> dict[str, float]:
        """Train every member on its own rows until its held-out loss stops improving; keep its best weights."""
        c = self.config
        data = {k: torch.as_tensor(v, device=self.device) for k, v in self.buffer.items()}
        target = data["reward"] if self.bernoulli else (data["reward"] - self.reward_mean) / self.reward_std
        held_out = data["holdout"].T.float()  # (H, N)
        trained = 1.0 - held_out
        size, members = len(target), c.ensemble_size
        optimizer = torch.optim.Adam(self.network.parameters(), lr=c.learning_rate)
        best_loss = torch.full((members,), math.inf, device=self.device)
        best = [p.detach().clone() for p in self.network.parameters()]
        waited = torch.zeros(members, device=self.device)
        epochs = 0
        for epochs in range(1, c.max_epochs + 1):
            order = torch.randperm(size, device=self.device) if size > c.batch_size else torch.arange(size, device=self.device)
            validation = torch.zeros(members, device=self.device)
            for start in range(0, size, c.batch_size):
                rows = order[start : start + c.batch_size]
                predicted = self._forward(data["codes"][rows], data["numeric"][rows])  # (H, b, K)
                index = data["action"][rows].view(1, -1, 1).expand(members, -1, 1)
                loss = self._loss(predicted.gather(2, index)[..., 0], target[rows])  # (H, b)
                validation += (loss.detach() * held_out[:, rows]).sum(1)
                if start + c.batch_size >= size:  # the epoch's last step: judge the weights it was computed with
                    validation /= held_out.sum(1).clamp(min=1.0)
                    improved = validation < best_loss - 1e-5
                    best_loss = torch.where(improved, validation, best_loss)
                    waited = torch.where(improved, torch.zeros_like(waited), waited + 1)
                    for parameter, kept in zip(self.network.parameters(), best):
                        kept[improved] = parameter.detach()[improved]
                fit = (loss * trained[:, rows]).sum(1) / trained[:, rows].sum(1).clamp(min=1.0)
                penalty = c.weight_decay * self.network.penalty() / size
                optimizer.zero_grad()
                (fit + penalty).sum().backward()
                optimizer.step()
            if bool((waited >= c.patience).all()):
                break
        with torch.no_grad():
            for parameter, kept in zip(self.network.parameters(), best):
                parameter.copy_(kept)
        return {"reward_model_loss": float(best_loss.mean()), "epochs": float(epochs)}

    def _loss(self, predicted: Tensor, target: Tensor) -> Tensor:
        if self.bernoulli:
            return nn.functional.binary_cross_entropy_with_logits(predicted, target.expand_as(predicted), reduction="none")
        return (predicted - target) ** 2

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "network": self.network.state_dict(),
            "prior": self.prior.state_dict(),
            "buffer": self.buffer,
            "reward_scale": (self.reward_mean, self.reward_std),
            "bernoulli": self.bernoulli,
            "generator": self.generator.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.network.load_state_dict(state["network"])
        self.prior.load_state_dict(state["prior"])
        self.buffer = state["buffer"]
        self.reward_mean, self.reward_std = state["reward_scale"]
        self.bernoulli = state["bernoulli"]
        self.generator.bit_generator.state = state["generator"]
