"""A neural contextual bandit: ensembles of reward models of three structures; the data pick the structure.

Each structure predicts the reward of every joint action from the context:

- `linear`:   one logit (or reward) per action, linear in the one-hot categories and the numbers;
- `additive`: every action's logit is linear in the same few learned features φ(x), each a sum of
              one shape per column (one-hot categories, the numbers, and each number's piecewise-linear
              encoding on quantile bins): a reduced-rank generalized additive model;
- `deep`:     `additive` plus an MLP path into φ(x), for interactions between columns.

A rigid model learns faster when it is right, a flexible one is needed when it is not. Every
structure is an ensemble of members, and the members of every structure hold out the same random
share of the experiences. After each update the agent acts with the structure that has the fewest
weights among those whose held-out loss is within one standard error (of the paired per-row
differences) of the best one's.

Member h draws its weights θ₀ʰ from the prior N(0, s²/fan_in) and is fitted to the maximum of
log p(rewards | θ) − ‖θ − θ₀ʰ‖² / (2 s²/fan_in) ("anchored ensembles", Pearce et al., 2020: for a
linear-Gaussian model, an exact posterior sample) on the rows it does not hold out, continuing from
its weights of the previous update; it stops when its loss on the held-out rows stops improving and
keeps its best weights. When every reward seen is 0 or 1 (conversions) the models output logits and
the likelihood is Bernoulli; otherwise rewards are clipped to their mean ± 3 standard deviations,
standardized, and the likelihood is Gaussian. Revenue is heavy-tailed: one order tens of standard
deviations out would otherwise steer every member's fit and the structure choice. The models then
estimate a truncated mean, biased toward the middle, which ranked the actions far better on the
revenue and amount worlds of benchmarks/bench_worlds.py; a rare purchase is capped, never clipped away.

Exploring picks a member of the chosen structure uniformly per row and takes its best action
(Thompson sampling over the ensemble): the probability of an action is exactly the share of members
that rank it first. Greedy takes the best action of the members' mean expected reward.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from nextbest.agents.base import Agent, AgentSettings, Experience, PolicyOutput
from nextbest.agents.search import Choice, Range, SearchSpace
from nextbest.data.encoding import Features
from nextbest.nets.device import default_device
from nextbest.nets.early_stopping import EarlyStopping
from nextbest.nets.likelihood import negative_log_likelihood

Structure = Literal["linear", "additive", "deep"]
_CHUNK = 16_384  # rows per forward pass when predicting
_KNOT_EXAMPLES = 500  # the quantile bins are estimated anew at every update until this many experiences were seen


class NeuralSettings(AgentSettings):
    structures: list[Structure] = Field(["linear", "additive", "deep"], min_length=1,
                                        description="reward model structures to fit; the data pick one at every update")
    members: int = Field(8, ge=1, description="ensemble members per structure")
    features: int = Field(3, ge=1, description="shared features φ(x) of the additive and deep structures")
    bins: int = Field(8, ge=1, description="quantile bins of each number's piecewise-linear encoding")
    hidden_sizes: list[int] = Field([32], min_length=1, description="ReLU hidden layers of the deep structure's MLP path")
    prior_scale: float = Field(1.0, gt=0, description="prior standard deviation of the weights, in units of 1/√fan_in")
    learning_rate: float = Field(0.02, gt=0)
    holdout: float = Field(0.2, gt=0, lt=1, description="share of experiences each member holds out")
    patience: int = Field(20, ge=1, description="epochs without improvement on the held-out rows before stopping")
    max_epochs: int = Field(200, ge=1, description="passes over the replay buffer per update")
    batch_size: int = Field(4096, ge=1, description="rows per gradient step (the whole buffer when it is smaller)")
    loss: Literal["auto", "bernoulli", "gaussian"] = Field("auto", description="'auto': Bernoulli when every reward is 0 or 1")
    clip: float | None = Field(3.0, gt=0, description="before a Gaussian fit, rewards farther than this many standard deviations "
                               "from their mean are clipped to that distance (None: never)")
    buffer_size: int = Field(100_000, ge=1, description="most recent experiences kept for replay")
    search_space: ClassVar[SearchSpace] = {
        "learning_rate": Range(0.003, 0.1, log=True), "members": Choice((4, 8, 16)), "features": Choice((2, 3, 5)),
        "hidden_sizes": Choice(([16], [32], [64])), "prior_scale": Range(0.3, 3.0, log=True),
    }


class EnsembleNet(nn.Module):
    """H networks of one structure evaluated at once: inputs z (n, width) → (H, n, outputs).

    z (`inputs`): the one-hot categories, the numbers and, with `bins`, their piecewise-linear
    encoding on the quantile `knots`. With `features` k > 0:
    φ = z A (+ MLP(z)), out = φ V + c; with k = 0 the linear path ends in the outputs.
    Every weight has a prior standard deviation `scale / √fan_in` and an anchor (its initial draw)."""

    def __init__(self, members: int, cardinalities: list[int], n_numeric: int, outputs: int, *, hidden: list[int],
                 features: int, bins: int, scale: float, generator: torch.Generator | None = None):
        super().__init__()
        self.register_buffer("offsets", torch.tensor(np.cumsum([0, *cardinalities[:-1]]), dtype=torch.long))
        self.register_buffer("knots", torch.zeros(n_numeric, bins + 1))
        self.hidden, self.features, self.bins = list(hidden), features, bins
        inputs = max(len(cardinalities) + n_numeric, 1)
        width = features or outputs
        self.split = hidden[0] if hidden else 0  # the first layer computes the MLP's first layer and the linear path
        self.prior_std: dict[str, float] = {}

        def weight(name: str, shape: tuple[int, ...], fan_in: int) -> None:
            self.prior_std[name] = scale / math.sqrt(fan_in)
            draw = torch.randn(members, *shape, generator=generator)
            self.register_parameter(name, nn.Parameter(draw * self.prior_std[name]))

        self.n_categories = sum(cardinalities)
        weight("first", (self.n_categories + n_numeric * (1 + bins), self.split + width), inputs)
        self.bias = nn.Parameter(torch.zeros(members, 1, self.split + width))
        sizes = [*hidden, width]
        for layer, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            weight(f"weight_{layer}", (a, b), a)
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(members, 1, b)) for b in sizes[1:])
        if features:
            weight("head", (features, outputs), features)
            self.head_bias = nn.Parameter(torch.zeros(members, 1, outputs))
        for name in self.prior_std:
            self.register_buffer(f"anchor_{name}", getattr(self, name).detach().clone())

    def inputs(self, codes: Tensor, numeric: Tensor) -> Tensor:
        """codes (n, n_cat) long, numeric (n, n_num) → z (n, Σ cardinalities + n_num · (1 + bins)): the one-hot
        categories, the numbers, then how far each number fills each of its quantile bins."""
        one_hot = torch.zeros(len(numeric), self.n_categories, device=numeric.device)
        one_hot.scatter_(1, codes + self.offsets, 1.0)
        parts = [one_hot, numeric]
        if self.bins:
            low, high = self.knots[:, :-1], self.knots[:, 1:]
            x = numeric[:, :, None]
            fill = torch.where(high > low, ((x - low) / (high - low).clamp(min=1e-12)).clamp(0, 1), (x >= high).float())
            parts.append(fill.flatten(1))
        return torch.cat(parts, dim=1)

    def forward(self, z: Tensor) -> Tensor:
        """z (n, inputs) from `inputs` → (H, n, outputs)."""
        members, width = self.first.shape[0], self.first.shape[2]
        first = self.first.permute(1, 0, 2).reshape(len(self.first[0]), members * width)
        z = (z @ first).view(len(z), members, width).transpose(0, 1) + self.bias  # one GEMM for all members
        h, out = z[..., : self.split], z[..., self.split :]
        if self.hidden:
            for layer in range(len(self.hidden)):
                h = torch.baddbmm(self.biases[layer], torch.relu(h), getattr(self, f"weight_{layer}"))
            out = out + h
        if self.features:
            out = torch.baddbmm(self.head_bias, out, self.head)
        return out

    def size(self) -> int:
        """Weights of one member."""
        return sum(p[0].numel() for p in self.parameters())

    def prior_penalty(self) -> Tensor:
        """(H,) Σ ‖θ − θ₀‖² / (2 σ²) over every weight: minus the log prior, up to a constant."""
        return sum(
            ((getattr(self, name) - getattr(self, f"anchor_{name}")) ** 2).flatten(1).sum(1) / (2 * std**2)
            for name, std in self.prior_std.items()
        )


class NeuralBandit(Agent):
    name = "neural"
    summary = "ensembles of linear, additive and deep reward models, chosen by held-out fit (Thompson sampling)"
    Config = NeuralSettings
    training_state = ("buffer", "generator", "torch_generator")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # The agent's own torch random stream (initial weights, minibatch order), never the process-wide one.
        self.torch_generator = torch.Generator().manual_seed(self.seed)
        self.device = default_device()
        self.ensembles = nn.ModuleList(self._ensemble(s) for s in self.config.structures)
        self.chosen = 0
        self.generator = np.random.default_rng(self.seed)
        self.buffer: dict[str, np.ndarray] = {}
        self.bernoulli = self.config.loss == "bernoulli"
        self.reward_mean, self.reward_std = 0.0, 1.0
        self.reward_bounds = (-math.inf, math.inf)

    def _ensemble(self, structure: Structure) -> EnsembleNet:
        c = self.config
        shape = {"linear": ([], 0, 0), "additive": ([], c.features, c.bins), "deep": (c.hidden_sizes, c.features, c.bins)}
        hidden, features, bins = shape[structure]
        return EnsembleNet(c.members, self.schema.cardinalities(), len(self.schema.numeric_columns),
                           self.action_space.n_joint, hidden=hidden, features=features, bins=bins,
                           scale=c.prior_scale, generator=self.torch_generator).to(self.device)

    # --- the policy -------------------------------------------------------------------------
    def distribution(self, features: Features, seeds: np.ndarray) -> PolicyOutput:
        """Joint policy: the share of members voting for each action (floor mixed in); greedy and the values
        are the members' mean expected reward."""
        mean, votes = self._evaluate(features, policy=True)
        return PolicyOutput((self.with_floor(votes),), (mean,), action_values=mean)

    @torch.no_grad()
    def _evaluate(self, features: Features, policy: bool) -> tuple[np.ndarray, np.ndarray]:
        """(n, n_joint) mean expected reward over the chosen structure's members and, with `policy`,
        (n, n_joint) the share of those members that rank each action first."""
        n, k = len(features), self.action_space.n_joint
        ensemble = self.ensembles[self.chosen]
        mean, votes = np.empty((n, k)), np.zeros((n, k))
        for start in range(0, n, _CHUNK):
            rows = slice(start, start + _CHUNK)
            z = ensemble.inputs(torch.as_tensor(features.categorical[rows], device=self.device),
                                torch.as_tensor(features.numeric[rows], device=self.device))
            expected = self._expected(ensemble(z))  # (H, b, K)
            mean[rows] = expected.mean(dim=0).cpu().numpy()
            if policy:
                best = expected.argmax(dim=2).T.cpu()  # (b, H)
                share = torch.full(best.shape, 1.0 / len(expected), dtype=torch.float64)
                votes[rows] = torch.zeros(len(best), k, dtype=torch.float64).scatter_add_(1, best, share).numpy()
        return mean, votes

    def _expected(self, out: Tensor) -> Tensor:
        """Network outputs → expected rewards."""
        return torch.sigmoid(out) if self.bernoulli else out * self.reward_std + self.reward_mean

    # --- learning -----------------------------------------------------------------------------
    def update(self, experience: Experience) -> dict[str, float]:
        c = self.config
        n = len(experience.reward)
        batch = {
            "codes": experience.features.categorical,
            "numeric": experience.features.numeric,
            "action": self.action_space.to_joint(experience.action),
            "reward": experience.reward.astype(np.float32),
            "holdout": self.generator.random((n, c.members)) < c.holdout,  # which members hold each row out
        }
        self.buffer = {k: np.concatenate([self.buffer[k], v])[-c.buffer_size :] if self.buffer else v for k, v in batch.items()}
        rewards = self.buffer["reward"]
        self.bernoulli = c.loss == "bernoulli" or (c.loss == "auto" and bool(np.isin(rewards, (0.0, 1.0)).all()))
        # Heavy-tailed amounts: a few rows tens of standard deviations out would steer every fit and the
        # structure choice, so the Gaussian path fits the winsorized rewards (a truncated mean).
        clipped = rewards
        if not self.bernoulli and c.clip is not None:
            clipped = np.clip(rewards, rewards.mean() - c.clip * rewards.std(), rewards.mean() + c.clip * rewards.std())
        self.reward_bounds = (float(clipped.min()), float(clipped.max()))
        self.reward_mean = float(clipped.mean())
        self.reward_std = float(clipped.std()) if clipped.std() > 1e-8 else 1.0
        if self.examples < _KNOT_EXAMPLES:  # the bins of the piecewise-linear encodings, from the first experiences
            knots = torch.as_tensor(np.quantile(self.buffer["numeric"], np.linspace(0, 1, c.bins + 1), axis=0).T)
            for ensemble in self.ensembles:
                if ensemble.bins:
                    ensemble.knots.copy_(knots)
        held_out = torch.as_tensor(self.buffer["holdout"], device=self.device).T.float()  # (H, N)
        data = {k: torch.as_tensor(self.buffer[k], device=self.device) for k in ("codes", "numeric", "action")}
        target = torch.as_tensor(rewards if self.bernoulli else (clipped - self.reward_mean) / self.reward_std, device=self.device)
        losses, metrics = [], {}
        for structure, ensemble in zip(c.structures, self.ensembles):
            row_losses, epochs = self._fit(ensemble, data, target, held_out)
            losses.append(row_losses)
            metrics[f"epochs/{structure}"] = float(epochs)
            if len(row_losses):
                metrics[f"held_out_loss/{structure}"] = float(row_losses.mean())
        self.chosen = _smallest_within_one_standard_error(losses, [e.size() for e in self.ensembles])
        metrics["structure"] = float(self.chosen)
        self.updates += 1
        self.examples += n
        return metrics

    def _fit(self, ensemble: EnsembleNet, data: dict[str, Tensor], target: Tensor, held_out: Tensor) -> tuple[np.ndarray, int]:
        """Maximize each member's log posterior on its rows until its loss on the rows it holds out
        (`held_out`: (H, N) 0/1) stops improving; keep its best weights. Returns the loss of every row some
        member held out (averaged over those members) and the epochs run."""
        c = self.config
        trained = 1.0 - held_out
        size, members = len(target), held_out.shape[0]
        inputs = ensemble.inputs(data["codes"], data["numeric"])
        optimizer = torch.optim.Adam(ensemble.parameters(), lr=c.learning_rate, foreach=True)
        stopper = EarlyStopping(ensemble, c.patience, min_delta=1e-5, per_member=True)
        epochs = 0
        for epochs in range(1, c.max_epochs + 1):  # noqa: B007  (read after the loop)
            if size <= c.batch_size:
                batches: list[Any] = [slice(None)]
            else:
                order = torch.randperm(size, generator=self.torch_generator).to(self.device)
                batches = [order[start : start + c.batch_size] for start in range(0, size, c.batch_size)]
            validation = torch.zeros(members, device=self.device)
            for batch, rows in enumerate(batches):
                loss = self._losses(ensemble, inputs[rows], data["action"][rows], target[rows])  # (H, b)
                validation += (loss.detach() * held_out[:, rows]).sum(1)
                if batch == len(batches) - 1:  # the epoch's last step: judge the weights it uses
                    validation /= held_out.sum(1).clamp(min=1.0)
                    stopper.update(validation)
                # minus the log posterior per trained row; the prior is spread over the epoch's batches
                share = trained[:, rows].sum(1) / trained.sum(1).clamp(min=1.0)
                objective = ((loss * trained[:, rows]).sum(1) + ensemble.prior_penalty() * share) / trained.sum(1).clamp(min=1.0)
                optimizer.zero_grad()
                objective.sum().backward()
                optimizer.step()
            if stopper.should_stop:
                break
        stopper.restore()
        with torch.no_grad():
            loss = self._losses(ensemble, inputs, data["action"], target)  # (H, N)
            covered = held_out.sum(0) > 0
            row_losses = ((loss * held_out).sum(0)[covered] / held_out.sum(0)[covered]).cpu().numpy()
        return row_losses, epochs

    def _losses(self, ensemble: EnsembleNet, inputs: Tensor, action: Tensor, target: Tensor) -> Tensor:
        """(H, b) minus the log-likelihood of every row's (standardized) reward under every member."""
        predicted = ensemble(inputs)
        chosen = predicted.gather(2, action.view(1, -1, 1).expand(len(predicted), -1, 1))[..., 0]
        return negative_log_likelihood(chosen, target, "bernoulli" if self.bernoulli else "gaussian")

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "ensembles": self.ensembles.state_dict(),
            "chosen": self.chosen,
            "buffer": self.buffer,
            "reward_scale": (self.reward_mean, self.reward_std),
            "reward_bounds": self.reward_bounds,
            "bernoulli": self.bernoulli,
            "generator": self.generator.bit_generator.state,
            "torch_generator": self.torch_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.ensembles.load_state_dict(state["ensembles"])
        self.chosen = int(state["chosen"])
        self.buffer = state["buffer"]
        self.reward_mean, self.reward_std = state["reward_scale"]
        self.reward_bounds = tuple(state.get("reward_bounds", (-math.inf, math.inf)))  # older checkpoints: unclipped
        self.bernoulli = state["bernoulli"]
        self.generator.bit_generator.state = state["generator"]
        if "torch_generator" in state:  # checkpoints written before the agent had its own torch stream
            self.torch_generator.set_state(state["torch_generator"])


def _smallest_within_one_standard_error(losses: list[np.ndarray], sizes: list[int]) -> int:
    """Index of the model with the fewest parameters (`sizes`) whose mean held-out loss is within one
    standard error of the best one's; the standard error is that of the paired per-row differences."""
    if not len(losses[0]):  # nothing held out yet
        return int(np.argmin(sizes))
    best = int(np.argmin([loss.mean() for loss in losses]))
    for index in sorted(range(len(losses)), key=lambda i: sizes[i]):
        difference = losses[index] - losses[best]
        if difference.mean() <= difference.std() / np.sqrt(len(difference)):
            return index
    return best
