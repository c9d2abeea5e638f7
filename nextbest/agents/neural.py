"""A neural contextual bandit: an ensemble of reward networks, each a sample from an approximate posterior.

Each of H networks predicts the reward of every joint action from the context: an MLP whose
last layer is a narrow linear bottleneck φ(x) shared by all actions (every action's reward is
a linear function of the same few learned features), plus a "wide" linear model of the
one-hot categories and the numbers.

Member h draws its initial weights θ₀ʰ from the prior N(0, s²/fan_in) and is fitted to the
maximum of  log p(rewards | θ) − ‖θ − θ₀ʰ‖² / (2 s²/fan_in)  ("anchored ensembles", Pearce et
al., 2020): for a linear model this is an exact posterior sample, and it keeps the members
apart where data is thin and together where it is plentiful. Each member also holds out its
own random share of the experiences and stops when its loss there stops improving.

When every reward seen is 0 or 1 (conversions) the networks output logits and the likelihood
is Bernoulli; otherwise rewards are standardized and the likelihood is Gaussian. Exploring
picks a member uniformly per row and takes its best action (Thompson sampling over the
ensemble): the probability of an action is exactly the share of members that rank it first.
Greedy takes the best action of the ensemble's mean expected reward.
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
    linear: bool = Field(True, description="add a linear path from the inputs to the shared features")
    bins: int = Field(8, ge=0)
    penalty: float = Field(1.0, ge=0)
    prior_scale: float = Field(1.0, gt=0, description="prior standard deviation of the weights, in units of 1/√fan_in")
    learning_rate: float = Field(1e-2, gt=0)
    holdout: float = Field(0.2, ge=0, lt=1, description="share of experiences each member holds out for early stopping")
    patience: int = Field(50, ge=1, description="epochs without improvement on the held-out rows before stopping")
    max_epochs: int = Field(500, ge=1, description="passes over the replay buffer per update")
    batch_size: int = Field(4096, ge=1, description="rows per gradient step (the whole buffer when it is smaller)")
    refit: bool = Field(True, description="draw new members at every update instead of continuing")
    anchored: bool = Field(True)
    optimizer: str = Field("adam")
    loss: str = Field("auto", pattern="^(auto|bernoulli|gaussian)$", description="'auto': Bernoulli when every reward is 0 or 1")
    buffer_size: int = Field(100_000, ge=1, description="most recent experiences kept for replay")


class EnsembleMLP(nn.Module):
    """H independent networks evaluated at once.

    Inputs z: one-hot categories (a per-member table indexed by the codes, without building the
    one-hot), the numbers, and each number's piecewise-linear encoding on quantile bins (`knots`).
    Shared features φ = z A + MLP(z) (a linear and a non-linear path into `bottleneck` features),
    then one linear output per action: out = φ V + c. Without a bottleneck both paths end in the outputs.
    Every weight has a prior standard deviation `scale / √fan_in` (`prior_std`) and an anchor."""

    def __init__(self, members: int, cardinalities: list[int], n_numeric: int, hidden: list[int], bottleneck: int,
                 outputs: int, linear: bool, scale: float, anchored: bool = True, bins: int = 0):
        super().__init__()
        self.register_buffer("offsets", torch.tensor(np.cumsum([0, *cardinalities[:-1]]), dtype=torch.long))
        self.register_buffer("knots", torch.zeros(n_numeric, bins + 1))
        self.bins = bins
        n_categories = max(sum(cardinalities), 1)
        n_dense = n_numeric * (1 + bins)
        inputs = max(len(cardinalities) + n_numeric, 1)
        width = bottleneck or outputs
        self.hidden = list(hidden)
        self.linear = linear
        first = (hidden[0] if hidden else 0) + (width if linear else 0)
        self.split = hidden[0] if hidden else 0
        self.prior_std: dict[str, float] = {}

        def weight(name: str, shape: tuple[int, ...], fan_in: int) -> None:
            self.prior_std[name] = scale / math.sqrt(fan_in)
            self.register_parameter(name, nn.Parameter(torch.randn(members, *shape) * self.prior_std[name]))

        weight("categorical", (n_categories, first), inputs)
        weight("numeric", (n_dense, first), inputs)
        self.bias = nn.Parameter(torch.zeros(members, 1, first))
        sizes = [*hidden, width]
        for layer, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            weight(f"weight_{layer}", (a, b), a)
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(members, 1, b)) for b in sizes[1:])
        self.bottleneck = bottleneck
        if bottleneck:
            weight("head", (bottleneck, outputs), bottleneck)
            self.head_bias = nn.Parameter(torch.zeros(members, 1, outputs))
        for name in self.prior_std:
            self.register_buffer(f"anchor_{name}", getattr(self, name).detach().clone() * anchored)

    def encode(self, numeric: Tensor) -> Tensor:
        """(n, n_num) → (n, n_num · (1 + bins)): the numbers, then how far each has filled each quantile bin."""
        if not self.bins:
            return numeric
        low, high = self.knots[:, :-1], self.knots[:, 1:]
        x = numeric[:, :, None]
        fill = torch.where(high > low, ((x - low) / (high - low).clamp(min=1e-12)).clamp(0, 1), (x >= high).float())
        return torch.cat([numeric, fill.flatten(1)], dim=1)

    def forward(self, codes: Tensor, numeric: Tensor) -> Tensor:
        """codes (n, n_cat) long, numeric (n, n_num) → (H, n, outputs)."""
        z = torch.einsum("ni,hio->hno", self.encode(numeric), self.numeric) + self.bias
        if codes.shape[1]:
            z = z + self.categorical[:, codes + self.offsets].sum(dim=2)
        h, phi = z[..., : self.split], z[..., self.split :]
        if self.hidden:
            for layer in range(len(self.hidden)):
                h = torch.baddbmm(self.biases[layer], torch.relu(h), getattr(self, f"weight_{layer}"))
            phi = h + phi if self.linear else h
        if self.bottleneck:
            return torch.baddbmm(self.head_bias, phi, self.head)
        return phi

    def prior_penalty(self) -> Tensor:
        """(H,) Σ ‖θ − θ₀‖² / (2 σ²) over every weight: minus the log prior, up to a constant."""
        return sum(
            ((getattr(self, name) - getattr(self, f"anchor_{name}")) ** 2).flatten(1).sum(1) / (2 * std**2)
            for name, std in self.prior_std.items()
        )


class NeuralBandit(Agent):
    name = "neural"
    summary = "anchored ensemble of reward networks with a shared bottleneck (neural Thompson sampling)"
    Config = NeuralSettings

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        torch.manual_seed(self.seed)
        self.device = default_device()
        self.network = self._network()
        self.generator = np.random.default_rng(self.seed)
        self.buffer: dict[str, np.ndarray] = {}
        self.bernoulli = self.config.loss == "bernoulli"
        self.reward_mean, self.reward_std = 0.0, 1.0

    def _network(self) -> EnsembleMLP:
        c = self.config
        return EnsembleMLP(
            c.ensemble_size, self.schema.cardinalities(), len(self.schema.numeric_columns), c.hidden_sizes,
            c.bottleneck, self.action_space.n_joint, c.linear, c.prior_scale, c.anchored, c.bins,
        ).to(self.device)

    # --- the policy -------------------------------------------------------------------------
    @torch.no_grad()
    def member_scores(self, features: Features) -> Tensor:
        """(H, n, n_joint) expected reward of every action according to every member."""
        codes = torch.as_tensor(features.categorical, device=self.device)
        numeric = torch.as_tensor(features.numeric, device=self.device)
        out = self.network(codes, numeric)
        return torch.sigmoid(out) if self.bernoulli else out * self.reward_std + self.reward_mean

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
        metrics = self._fit()
        self.updates += 1
        self.examples += n
        return metrics

    def _fit_lbfgs(self) -> dict[str, float]:
        c = self.config
        data = {k: torch.as_tensor(v, device=self.device) for k, v in self.buffer.items()}
        target = data["reward"] if self.bernoulli else (data["reward"] - self.reward_mean) / self.reward_std
        members = c.ensemble_size
        index = data["action"].view(1, -1, 1).expand(members, -1, 1)
        optimizer = torch.optim.LBFGS(self.network.parameters(), lr=1, max_iter=c.max_epochs, history_size=20,
                                      line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)
        evals = [0]
        def closure():
            optimizer.zero_grad()
            predicted = self.network(data["codes"], data["numeric"])
            loss = self._negative_log_likelihood(predicted.gather(2, index)[..., 0], target).mean(1)
            objective = (loss + c.penalty * self.network.prior_penalty() / len(target)).sum()
            objective.backward()
            evals[0] += 1
            return objective
        optimizer.step(closure)
        return {"epochs": float(evals[0])}

    def _fit(self) -> dict[str, float]:
        if self.config.optimizer == "lbfgs":
            return self._fit_lbfgs()
        """Maximize every member's log posterior on its own rows until its held-out loss stops improving;
        keep its best weights."""
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
                predicted = self.network(data["codes"][rows], data["numeric"][rows])  # (H, b, K)
                index = data["action"][rows].view(1, -1, 1).expand(members, -1, 1)
                loss = self._negative_log_likelihood(predicted.gather(2, index)[..., 0], target[rows])  # (H, b)
                validation += (loss.detach() * held_out[:, rows]).sum(1)
                if start + c.batch_size >= size and c.holdout:  # the epoch's last step: judge the weights it uses
                    validation /= held_out.sum(1).clamp(min=1.0)
                    improved = validation < best_loss - 1e-5
                    best_loss = torch.where(improved, validation, best_loss)
                    waited = torch.where(improved, torch.zeros_like(waited), waited + 1)
                    for parameter, kept in zip(self.network.parameters(), best):
                        kept[improved] = parameter.detach()[improved]
                rows_trained = trained[:, rows].sum(1)
                objective = (loss * trained[:, rows]).sum(1) + c.penalty * self.network.prior_penalty() * rows_trained / trained.sum(1)
                optimizer.zero_grad()
                (objective / trained.sum(1).clamp(min=1.0)).sum().backward()
                optimizer.step()
            if c.holdout and bool((waited >= c.patience).all()):
                break
        if c.holdout:
            with torch.no_grad():
                for parameter, kept in zip(self.network.parameters(), best):
                    parameter.copy_(kept)
        return {"reward_model_loss": float(best_loss.mean()), "epochs": float(epochs)}

    def _negative_log_likelihood(self, predicted: Tensor, target: Tensor) -> Tensor:
        if self.bernoulli:
            return nn.functional.binary_cross_entropy_with_logits(predicted, target.expand_as(predicted), reduction="none")
        return 0.5 * (predicted - target) ** 2

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "network": self.network.state_dict(),
            "buffer": self.buffer,
            "reward_scale": (self.reward_mean, self.reward_std),
            "bernoulli": self.bernoulli,
            "generator": self.generator.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.network.load_state_dict(state["network"])
        self.buffer = state["buffer"]
        self.reward_mean, self.reward_std = state["reward_scale"]
        self.bernoulli = state["bernoulli"]
        self.generator.bit_generator.state = state["generator"]
