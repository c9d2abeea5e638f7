"""Actor-critic agents for tabular contexts trained with PPO: `ppo-tabnet` (Optimus' design) and `ppo-mlp`.

An encoder (TabNet or an MLP over categorical embeddings and standardized numbers) feeds a
policy head with one categorical per choice set and a value head. A decision is an episode of
one step (`done` = 1), so the advantage is the reward minus the critic's value; rows with
`done` = 0 chain into episodes and get generalized advantage estimation.

`update` is PPO on an experience table: the ratio is π_new(a|x) / p_logged, with p_logged the
`log_probability` the table carries. For the agent's own predictions that is the policy that
acted; for logged data from another policy the ratio is an importance weight, and clipping keeps
the update inside a trust region around *that* policy — valid, but the further the logger is
from the current policy, the more rows are clipped and the less they teach (docs/ppo.md).

The exploration floor applies per choice set: each choice keeps at least floor / k probability,
so the joint policy stays a product of per-choice distributions and every joint action stays
possible (what off-policy evaluation needs).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from nextbest.agents.base import Agent, AgentSettings, Experience, PolicyOutput
from nextbest.agents.ppo_loss import (
    PPOLossSettings,
    RolloutBatch,
    RunningMeanStd,
    generalized_advantages,
    make_optimizer,
    ppo_update,
    set_learning_rate,
)
from nextbest.agents.search import Choice, Range, SearchSpace
from nextbest.data.encoding import Features
from nextbest.nets.device import default_device
from nextbest.nets.distributions import MultiCategorical
from nextbest.nets.heads import ActionSpec, PolicyHead, ValueHead
from nextbest.nets.mlp import MLPEncoder
from nextbest.nets.tabnet import TabNetEncoder

CHUNK = 65_536  # rows per forward pass when predicting: bounds memory, keeps the batch fast path


class PPOAgentSettings(AgentSettings, PPOLossSettings):
    """PPO for contextual decisions; the defaults are tuned on the built-in scenarios (benchmarks/bench_ppo.py)."""

    learning_rate: float = Field(3e-3, gt=0, description="Adam step size (the start of the schedule)")
    batch_size: int = Field(128, ge=1, description="rows per minibatch")
    n_epochs: int = Field(10, ge=1, description="passes over each training table")
    ent_coef: float = Field(0.01, ge=0, description="weight of the entropy bonus")
    learning_rate_decay_examples: int | None = Field(
        None, ge=1, description="decay the learning rate linearly to 0 over this many trained examples; None: constant"
    )
    embedding_dim: int | None = Field(None, ge=1, description="embedding width per categorical column; None: 1.6·n^0.56")
    search_space: ClassVar[SearchSpace] = {
        "learning_rate": Range(1e-3, 1e-2, log=True), "ent_coef": Range(1e-3, 0.05, log=True),
        "n_epochs": Choice((5, 10, 20)), "batch_size": Choice((64, 128, 256)),
    }


class TabNetSettings(PPOAgentSettings):
    learning_rate: float = Field(5e-3, gt=0, description="Adam step size (the start of the schedule)")
    batch_size: int = Field(256, ge=1, description="rows per minibatch")
    n_d: int = Field(16, ge=1, description="width of each decision step's output")
    n_a: int = Field(16, ge=1, description="width of the attention input")
    n_steps: int = Field(2, ge=1, description="decision steps")
    relaxation: float = Field(1.3, ge=1, description="TabNet's γ: how freely a column can be reused across steps")
    # One shared GLU block and none per step (the paper and pytorch-tabnet use 2 + 2): on optimus-poc the
    # shallower encoder reaches a normalized score of 0.95 in ~6,500 examples instead of ~11,000, and it
    # learns no worse on other worlds, discount and multi-offer (docs/ppo.md, "Why one GLU block").
    n_shared: int = Field(1, ge=0, description="GLU blocks shared by all steps")
    n_independent: int = Field(0, ge=0, description="GLU blocks of each step")
    mask_type: Literal["sparsemax", "entmax"] = Field("entmax", description="1.5-entmax (learns faster here) or sparsemax")
    lambda_sparse: float = Field(1e-3, ge=0, description="weight of the attentive-transformer (mask entropy) loss")


class MlpSettings(PPOAgentSettings):
    hidden_sizes: list[int] = Field([64, 64], min_length=1)
    search_space: ClassVar[SearchSpace] = PPOAgentSettings.search_space | {"hidden_sizes": Choice(([32, 32], [64, 64], [128, 128]))}
    activation: Literal["relu", "tanh"] = "relu"


class ContextualPPO(Agent):
    """Shared by the PPO agents; subclasses choose the encoder.

    The network is in evaluation mode except while `update` runs (in training mode); predictions
    never switch it, so a snapshot's copy is never switched at all."""

    training_state = ("optimizer", "generator")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.device = default_device()
        self.spec = ActionSpec.discrete(self.action_space.sizes)
        with torch.random.fork_rng(devices=[]):  # seeded initialization without touching the caller's RNG
            torch.manual_seed(self.seed)
            encoder = self.build_encoder(self.schema.cardinalities(), len(self.schema.numeric_columns))
            self.network = nn.ModuleDict({
                "encoder": encoder, "policy": PolicyHead(encoder.width, self.spec), "value": ValueHead(encoder.width),
            }).to(self.device).eval()
        c = self.config
        self.optimizer = make_optimizer(list(self.network.parameters()), c.learning_rate, c.adam_eps)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.reward_stats = RunningMeanStd(1)
        self.learning_rate = c.learning_rate

    def build_encoder(self, cardinalities: list[int], n_numeric: int) -> nn.Module:
        raise NotImplementedError

    @property
    def extra_coef(self) -> float:
        """Weight of the encoder's sparsity loss in the PPO loss."""
        return 0.0

    # --- the policy -------------------------------------------------------------------------
    def _tensors(self, features: Features) -> tuple[Tensor, Tensor]:
        return (torch.as_tensor(features.categorical, device=self.device),
                torch.as_tensor(features.numeric, device=self.device))

    def _forward(self, codes: Tensor, numeric: Tensor) -> tuple[MultiCategorical, Tensor, Tensor]:
        """→ policy (one categorical per choice set, floor included), value (n,), sparsity loss (n,)."""
        h, sparsity = self.network["encoder"](codes, numeric)
        logits = self.network["policy"].linear(h)
        policy = MultiCategorical(logits, self.spec.sizes, self.config.exploration_floor)
        return policy, self.network["value"](h), sparsity

    @torch.inference_mode()
    def _evaluate(self, features: Features) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Per choice set (n, k_j) probabilities, values (n,) in reward units, sparsity losses (n,)."""
        codes, numeric = self._tensors(features)
        probs, values, sparsity = [], [], []
        for start in range(0, max(len(features), 1), CHUNK):
            policy, value, loss = self._forward(codes[start : start + CHUNK], numeric[start : start + CHUNK])
            probs.append([_normalized(p.log_probs) for p in policy.parts])
            values.append(value.double().cpu().numpy())
            sparsity.append(loss.double().cpu().numpy())
        per_choice = [np.concatenate([chunk[j] for chunk in probs]) for j in range(len(self.spec.sizes))]
        return per_choice, np.concatenate(values) * self._reward_scale(), np.concatenate(sparsity)

    def distribution(self, features: Features, seeds: np.ndarray) -> PolicyOutput:
        """Factorized: one categorical per choice set (floor included), drawn independently; greedy takes
        the most probable option of each (its scores are the log-probabilities); the critic's value per row."""
        per_choice, values, sparsity = self._evaluate(features)
        with np.errstate(divide="ignore"):  # a probability of 0 (no floor) is a score of −∞
            log_probabilities = tuple(np.log(p) for p in per_choice)
        return PolicyOutput(tuple(per_choice), log_probabilities, state_values=values, attentive_transformer_loss=sparsity)

    # --- learning -----------------------------------------------------------------------------
    def update(self, experience: Experience) -> dict[str, float]:
        """One PPO update on the table; counts it as a training call and its rows as trained examples."""
        metrics = self._ppo(experience)
        self.updates += 1
        self.examples += len(experience.reward)
        return metrics

    def pretrain_update(self, experience: Experience) -> dict[str, float]:
        """A PPO update on simulated experience: same step, but live counters and schedule stay put."""
        return self._ppo(experience)

    def _ppo(self, experience: Experience) -> dict[str, float]:
        c = self.config
        rate = self._scheduled_learning_rate()
        self._set_learning_rate(rate)
        self.reward_stats.update(experience.reward.reshape(-1, 1))
        scale = self._reward_scale()
        codes, numeric = self._tensors(experience.features)
        actions = torch.as_tensor(experience.action, dtype=torch.long, device=self.device)
        self.network.train()
        try:
            with torch.no_grad():
                _, values, _ = self._forward(codes, numeric)
            rewards = experience.reward.reshape(-1, 1) / scale
            values_np = values.double().cpu().numpy().reshape(-1, 1)
            done = experience.done.astype(np.float64).reshape(-1, 1)
            done[-1] = 1.0  # the table ends an episode: its next state is not in it
            advantages = generalized_advantages(rewards, values_np, np.zeros(1), done, c.gamma, c.gae_lambda)
            advantages_t = torch.as_tensor(advantages.reshape(-1), dtype=torch.float32, device=self.device)
            old_log_prob = torch.tensor(experience.log_probability, dtype=torch.float32, device=self.device)
            batch = RolloutBatch((codes, numeric), actions, old_log_prob, advantages_t, advantages_t + values, values,
                                 self._evaluate_actions)
            if rate > 0.0:
                metrics = ppo_update(batch, c, self.optimizer, self.generator, extra_coef=self.extra_coef)
            else:
                metrics = {"gradient_steps": 0.0}
        finally:
            self.network.eval()
        metrics["attentive_transformer_loss"] = metrics.pop("extra_loss", 0.0)
        metrics["learning_rate"] = rate
        return metrics

    def _evaluate_actions(self, observations: tuple[Tensor, Tensor], actions: Tensor) -> tuple[Tensor, ...]:
        """Log-probability and entropy of `actions` (b, n_choices), the value and the sparsity loss (or None
        when it has no weight), each (b,), under the current network; observations: (codes, numbers)."""
        policy, value, sparsity = self._forward(*observations)
        return policy.log_prob(actions), policy.entropy(), value, sparsity if self.extra_coef else None

    def _reward_scale(self) -> float:
        """Rewards are divided by their running root mean square, so the value loss has the same scale
        whether the reward is a conversion (0/1) or revenue in euros. Not by the standard deviation: nearly
        constant rewards (a reward model's expectations in pretraining) would be blown up to hundreds."""
        stats = self.reward_stats
        rms = float(np.sqrt(stats.var[0] + stats.mean[0] ** 2))
        return rms if stats.count > 1 and rms > 1e-8 else 1.0

    def _scheduled_learning_rate(self) -> float:
        c = self.config
        if c.learning_rate_decay_examples is None:
            return c.learning_rate
        rate = c.learning_rate * max(0.0, 1.0 - self.examples / c.learning_rate_decay_examples)
        if rate == 0.0 and self.learning_rate > 0.0:
            warnings.warn(f"the learning rate reached 0 after {self.examples} examples "
                          f"(learning_rate_decay_examples = {c.learning_rate_decay_examples}); "
                          f"further training does not change the agent", stacklevel=3)
        return rate

    def _set_learning_rate(self, rate: float) -> None:
        self.learning_rate = rate
        set_learning_rate(self.optimizer, rate)

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        stats = self.reward_stats
        return super().state_dict() | {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "reward_stats": (stats.mean, stats.var, stats.count),
            "learning_rate": self.learning_rate,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.reward_stats.mean, self.reward_stats.var, self.reward_stats.count = state["reward_stats"]
        self.learning_rate = state["learning_rate"]


class TabNetPPO(ContextualPPO):
    name = "ppo-tabnet"
    summary = "TabNet actor-critic trained with PPO (Optimus' design), one categorical per choice set"
    Config = TabNetSettings

    def build_encoder(self, cardinalities: list[int], n_numeric: int) -> nn.Module:
        c = self.config
        return TabNetEncoder(cardinalities, n_numeric, n_d=c.n_d, n_a=c.n_a, n_steps=c.n_steps, gamma=c.relaxation,
                             n_shared=c.n_shared, n_independent=c.n_independent, mask_type=c.mask_type,
                             embedding_dim=c.embedding_dim)

    @property
    def extra_coef(self) -> float:
        return self.config.lambda_sparse

    def feature_importance(self, features: Features) -> np.ndarray:
        """(n, n_columns) mean attention per column over the decision steps, columns in schema order."""
        with torch.inference_mode():
            masks = self.network["encoder"].masks(*self._tensors(features)).mean(dim=0).cpu().numpy()
        order = [*self.schema.categorical_columns, *self.schema.numeric_columns]
        return masks[:, [order.index(c) for c in self.schema.columns]]


class MlpPPO(ContextualPPO):
    name = "ppo-mlp"
    summary = "MLP actor-critic trained with PPO (the light alternative to ppo-tabnet)"
    Config = MlpSettings

    def build_encoder(self, cardinalities: list[int], n_numeric: int) -> nn.Module:
        c = self.config
        return MLPEncoder(cardinalities, n_numeric, c.hidden_sizes, c.activation, c.embedding_dim)


def _normalized(log_probs: Tensor) -> np.ndarray:
    """Probabilities in float64 that sum to 1 per row (float32 rounding would leave ~1e-7 off)."""
    probs = log_probs.double().exp()
    return (probs / probs.sum(dim=-1, keepdim=True)).cpu().numpy()
