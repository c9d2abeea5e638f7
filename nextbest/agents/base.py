"""The interface every agent implements: `distribution`, `update`, `state_dict` / `load_state_dict`.

An agent describes its policy in one place, `distribution(features, seeds)` → `PolicyOutput`: the
exploring policy's probabilities (exploration floor included, so that no action ever has
probability zero), what greedy maximizes, and values. Everything else is built on it, once, here:

    prediction = agent.act(features, seeds)                        # draw with per-row seeds, log p
    prediction = agent.act(features, seeds, greedy=True)           # the best action, log p = 0
    p = agent.probabilities(features, seeds, greedy=False)         # (n, n_joint) what `act` draws from
    prediction = agent.act(features, seeds, excluded=out_of_stock) # only among the actions left

A policy is either joint (one probability per joint action: the bandits) or factorized (one
categorical per choice set, drawn independently: PPO); `act` draws each factor with its own
uniform of the row's seed, so a decision is reproduced by its seed and its checkpoint alone.
`snapshot()` freezes the policy for serving (`nextbest.agents.snapshot`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel

from nextbest.agents.search import SearchSpace
from nextbest.checkpoints import load_state, state_bytes
from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import Features
from nextbest.data.schema import Schema
from nextbest.errors import DataError
from nextbest.io import atomic_write_bytes
from nextbest.seeding import row_uniforms, sample_categorical

if TYPE_CHECKING:
    from nextbest.agents.snapshot import PolicySnapshot

Excluded = np.ndarray | Sequence[np.ndarray] | None
"""Actions a row may not take: a boolean mask (n, n_joint) over joint actions, or one (n, k_j) mask
per choice set (excluding an option of one choice set excludes every joint action that uses it)."""

PREDICTION_COLUMNS = ["value", "log_probability", "done", "attentive_transformer_loss", "prediction_seed"]


@dataclass
class Prediction:
    """What an agent decided for n rows: action (n, n_choices) and (n,) arrays for the rest."""

    action: np.ndarray
    value: np.ndarray
    log_probability: np.ndarray
    prediction_seed: np.ndarray
    attentive_transformer_loss: np.ndarray | None = None
    done: np.ndarray | None = None

    def to_table(self, contexts: pd.DataFrame, action_space: ActionSpace) -> pd.DataFrame:
        """The prediction table: context columns, action column(s), then the PREDICTION_COLUMNS."""
        n = len(self.action)
        table = contexts.reset_index(drop=True).copy()
        action_space.write(table, self.action)
        table["value"] = self.value.astype(np.float64)
        table["log_probability"] = self.log_probability.astype(np.float64)
        table["done"] = np.ones(n, dtype=np.int8) if self.done is None else self.done.astype(np.int8)  # 1: the episode ends here
        table["attentive_transformer_loss"] = (
            np.zeros(n) if self.attentive_transformer_loss is None else self.attentive_transformer_loss.astype(np.float64)
        )
        table["prediction_seed"] = self.prediction_seed.astype(np.int64)
        return table


@dataclass(frozen=True)
class PolicyOutput:
    """An agent's policy for n rows, as `Agent.distribution` describes it.

    probabilities: the exploring policy, exploration floor included, rows summing to 1; either one
        (n, n_joint) array over joint actions (a joint policy), or one (n, k_j) array per choice set,
        drawn independently, whose product is the joint policy (a factorized one, as PPO's).
    greedy_scores: what greedy maximizes, shaped like `probabilities`: greedy takes the joint action
        with the largest Σ_j greedy_scores[j][row, a_j] (for a joint policy simply the argmax; PPO's
        are log-probabilities, so its greedy action is the most probable one). None: the agent has no
        preference (uniform random), and greedy acts like exploring.
    action_values: (n, n_joint) the estimated expected reward of every joint action (a bandit's reward
        model); a prediction logs the chosen action's. Or else
    state_values: (n,) the value of each row's context, whatever the action (an actor-critic's critic).
    attentive_transformer_loss: (n,) TabNet's sparsity loss per row; None for other agents.
    """

    probabilities: tuple[np.ndarray, ...]
    greedy_scores: tuple[np.ndarray, ...] | None
    action_values: np.ndarray | None = None
    state_values: np.ndarray | None = None
    attentive_transformer_loss: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.action_values is None) == (self.state_values is None):
            raise ValueError("a PolicyOutput has either action_values (n, n_joint) or state_values (n,)")
        if self.greedy_scores is not None and len(self.greedy_scores) != len(self.probabilities):
            raise ValueError("greedy_scores must have one array per array of probabilities")

    @property
    def factorized(self) -> bool:
        """True when the policy is one categorical per choice set (of several)."""
        return len(self.probabilities) > 1

    def joint_probabilities(self) -> np.ndarray:
        """(n, n_joint) the probability of every joint action (row-major, the last choice fastest)."""
        return _joint_product(self.probabilities)

    def value(self, joint: np.ndarray) -> np.ndarray:
        """(n,) what a prediction logs as `value` when row i takes joint action joint[i]."""
        if self.action_values is not None:
            return self.action_values[np.arange(len(joint)), joint]
        return self.state_values


@dataclass
class Experience:
    """A batch to learn from: what was seen, done, and what it earned. Arrays have n rows."""

    features: Features
    action: np.ndarray  # (n, n_choices) int64
    reward: np.ndarray  # (n,) float64
    log_probability: np.ndarray  # (n,) log-probability of `action` under the policy that chose it
    value: np.ndarray = field(default=None)  # (n,) the critic's estimate when the action was chosen
    done: np.ndarray = field(default=None)  # (n,) bool; contextual decisions are one-step episodes

    def __post_init__(self) -> None:
        n = len(self.reward)
        if self.value is None:
            self.value = np.zeros(n)
        if self.done is None:
            self.done = np.ones(n, dtype=bool)


class AgentSettings(BaseModel):
    """Settings every agent shares."""

    model_config = {"extra": "forbid"}
    exploration_floor: float = 0.02
    """Probability mass spread uniformly over all actions, so that every action stays possible."""
    search_space: ClassVar[SearchSpace] = {}
    """The settings `nextbest tune` searches, and over what (nextbest.agents.search)."""


class Agent(ABC):
    """A decision maker over a fixed schema and action space.

    A new agent implements `distribution` and `update` (and `state_dict` / `load_state_dict` for
    what it learns); acting, probabilities, exclusions and snapshots come from this class."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = AgentSettings
    training_state: ClassVar[tuple[str, ...]] = ()
    """Attributes only training needs (optimizer, replay buffer): a snapshot does not copy them."""

    def __init__(self, schema: Schema, action_space: ActionSpace, config: BaseModel | None = None, seed: int = 0):
        self.schema = schema
        self.action_space = action_space
        self.config = config if config is not None else self.Config()
        self.seed = seed
        self.updates = 0
        self.examples = 0

    # --- the policy -------------------------------------------------------------------------
    @abstractmethod
    def distribution(self, features: Features, seeds: np.ndarray) -> PolicyOutput:
        """The policy for n rows (see `PolicyOutput`); seeds: (n,) int, the rows' prediction seeds (for
        policies that are themselves random draws, such as Thompson sampling's). Must not change the agent."""

    def with_floor(self, policy: np.ndarray) -> np.ndarray:
        """(n, n_joint) joint policy → the same with the exploration floor mixed in uniformly."""
        floor = self.config.exploration_floor
        return (1.0 - floor) * policy + floor / self.action_space.n_joint

    def act(self, features: Features, seeds: np.ndarray, *, greedy: bool = False, excluded: Excluded = None) -> Prediction:
        """Choose an action for every row. seeds: (n,) int, one per row (the `prediction_seed`).

        Exploring, factor j of the policy (the joint policy, or choice set j's categorical) is drawn by
        inverse CDF with uniform j of the row's seed (stream 0), and the logged log-probability is that
        of the whole action. Greedy takes the action with the largest greedy score, log-probability 0.
        `excluded` (see `Excluded`) removes actions: the policy is renormalized over the rest, and the
        logged probability is under that restricted policy."""
        seeds = np.asarray(seeds, dtype=np.int64)
        output = self.distribution(features, seeds)
        policy = _Restricted(output, excluded, self.action_space)
        n = len(seeds)
        if greedy and output.greedy_scores is not None:
            joint = policy.greedy()
            log_probability = np.zeros(n)
        else:
            uniforms = row_uniforms(seeds, len(output.probabilities), stream=0)
            joint, log_probability = policy.sample(uniforms)
        return Prediction(
            action=self.action_space.from_joint(joint),
            value=output.value(joint),
            log_probability=log_probability,
            prediction_seed=seeds,
            attentive_transformer_loss=output.attentive_transformer_loss,
            done=np.ones(n, dtype=bool),
        )

    def probabilities(
        self, features: Features, seeds: np.ndarray, *, greedy: bool = False, excluded: Excluded = None
    ) -> np.ndarray:
        """(n, n_joint) probabilities of the joint actions `act` draws from with the same arguments:
        the exploring policy (floor included), or with `greedy` one-hot of the action greedy takes;
        restricted to the actions `excluded` leaves. What serving, off-policy evaluation and target
        evaluation read."""
        output = self.distribution(features, np.asarray(seeds, dtype=np.int64))
        policy = _Restricted(output, excluded, self.action_space)
        if greedy and output.greedy_scores is not None:
            joint = policy.greedy()
            return np.eye(self.action_space.n_joint)[joint]
        return policy.joint_probabilities()

    def snapshot(self) -> PolicySnapshot:
        """A read-only copy of the policy as it is now, safe to predict with from many threads while this
        agent trains on (`nextbest.agents.snapshot.PolicySnapshot`). Take it between updates."""
        from nextbest.agents.snapshot import PolicySnapshot

        return PolicySnapshot(self)

    # --- learning -----------------------------------------------------------------------------
    @abstractmethod
    def update(self, experience: Experience) -> dict[str, float]:
        """Learn from a batch; returns metrics to log (names → numbers)."""

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "examples": self.examples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.examples = int(state["examples"])

    def save(self, path: str | Path) -> Path:
        """Write `state_dict()` atomically, in the weights-only checkpoint format (`nextbest.checkpoints`)."""
        return atomic_write_bytes(path, state_bytes(self.state_dict()))

    def load(self, path: str | Path) -> None:
        """Read a file `save` wrote, weights-only: opening it cannot run code (ExperimentError if unsafe or damaged)."""
        self.load_state_dict(load_state(path))


def one_hot_argmax(scores: np.ndarray) -> np.ndarray:
    """(n, k) scores → (n, k) one-hot of each row's maximum, ties (within 1e-12) sharing it equally."""
    best = scores >= scores.max(axis=1, keepdims=True) - 1e-12
    return best / best.sum(axis=1, keepdims=True)


# --- restricting a policy to the actions not excluded ---------------------------------------------


class _Restricted:
    """A `PolicyOutput` renormalized over the actions `excluded` leaves, and how `act` draws from it.

    Masks that follow the policy's factors (a joint mask for a joint policy, per-choice masks for a
    factorized one) restrict each factor, which stays a product. A joint mask on a factorized policy
    does not factorize: the rows that exclude something are drawn from the restricted joint policy
    (with the row's first uniform), the others exactly as without a mask."""

    def __init__(self, output: PolicyOutput, excluded: Excluded, space: ActionSpace):
        self.output, self.space = output, space
        self.factors = output.probabilities
        self.scores = output.greedy_scores
        self.factor_masks: tuple[np.ndarray, ...] | None = None
        self.joint_mask: np.ndarray | None = None  # (n, n_joint), factorized policies only
        n = len(self.factors[0])
        self.joint_rows = np.zeros(n, dtype=bool)
        if excluded is None:
            return
        factor_masks, joint_mask = _masks(excluded, space, output.factorized, n)
        if joint_mask is not None:
            self.joint_mask = joint_mask
            self.joint_rows = joint_mask.any(axis=1)
            _check_allowed(joint_mask[self.joint_rows], np.flatnonzero(self.joint_rows))
        else:
            for mask in factor_masks:
                _check_allowed(mask, np.arange(n))
            self.factor_masks = factor_masks
            self.factors = tuple(_renormalized(p, m) for p, m in zip(self.factors, factor_masks))
            if self.scores is not None:
                self.scores = tuple(_masked_scores(s, m) for s, m in zip(self.scores, factor_masks))

    def _restricted_joint(self) -> np.ndarray:
        """(rows, n_joint) the restricted joint policy of the rows a joint mask applies to."""
        rows = self.joint_rows
        return _renormalized(_joint_product([p[rows] for p in self.factors]), self.joint_mask[rows])

    def joint_probabilities(self) -> np.ndarray:
        joint = _joint_product(self.factors)
        if self.joint_rows.any():
            joint[self.joint_rows] = self._restricted_joint()
        return joint

    def sample(self, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uniforms: (n, n_factors) → (n,) joint actions and (n,) their log-probabilities."""
        n = len(uniforms)
        chosen = [sample_categorical(p, uniforms[:, j]) for j, p in enumerate(self.factors)]
        log_probability = sum(np.log(p[np.arange(n), a]) for p, a in zip(self.factors, chosen))
        joint = chosen[0] if len(chosen) == 1 else self.space.to_joint(np.stack(chosen, axis=1))
        if self.joint_rows.any():
            rows = self.joint_rows
            restricted = self._restricted_joint()
            joint[rows] = sample_categorical(restricted, uniforms[rows, 0])
            log_probability[rows] = np.log(restricted[np.arange(len(restricted)), joint[rows]])
        return joint, log_probability

    def greedy(self) -> np.ndarray:
        """(n,) the joint action with the largest Σ_j score_j (per factor: its own argmax) among those allowed."""
        chosen = [s.argmax(axis=1) for s in self.scores]
        joint = chosen[0] if len(chosen) == 1 else self.space.to_joint(np.stack(chosen, axis=1))
        if self.joint_rows.any():
            rows = self.joint_rows
            total = _joint_sum([s[rows] for s in self.scores])
            joint[rows] = _masked_scores(total, self.joint_mask[rows]).argmax(axis=1)
        return joint


def _masks(
    excluded: Excluded, space: ActionSpace, factorized: bool, n: int
) -> tuple[tuple[np.ndarray, ...] | None, np.ndarray | None]:
    """`excluded` checked against the action space → (masks per factor, None), or (None, joint mask)
    when a joint mask meets a factorized policy."""
    if isinstance(excluded, np.ndarray) or not isinstance(excluded, Sequence):
        mask = _mask(excluded, (n, space.n_joint), "excluded")
        if factorized:
            return None, mask
        return (mask,), None
    if len(excluded) != space.n_choices:
        raise DataError(f"excluded: expected one mask per choice set ({space.n_choices}), got {len(excluded)}")
    masks = tuple(_mask(m, (n, k), f"excluded[{j}]") for j, (m, k) in enumerate(zip(excluded, space.sizes)))
    if factorized or space.n_choices == 1:
        return masks, None
    # a joint policy: joint action a is excluded when any of its options is
    joint = masks[0]
    for m in masks[1:]:
        joint = (joint[:, :, None] | m[:, None, :]).reshape(n, -1)
    return (joint,), None


def _mask(mask: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.shape != shape or array.dtype != np.bool_:
        raise DataError(f"{name}: expected a boolean mask of shape {shape}, got {array.dtype} {array.shape}")
    return array


def _check_allowed(mask: np.ndarray, rows: np.ndarray) -> None:
    blocked = mask.all(axis=1)
    if blocked.any():
        raise DataError(f"excluded: row {int(rows[np.flatnonzero(blocked)[0]]) + 1} excludes every action")


def _renormalized(policy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rows of `policy` with the masked entries set to 0 and the rest rescaled to sum to 1 (uniform over
    the rest if they had no mass); rows that mask nothing are returned unchanged, to the bit."""
    masked = np.where(mask, 0.0, policy)
    total = masked.sum(axis=1, keepdims=True)
    allowed = ~mask
    with np.errstate(divide="ignore", invalid="ignore"):
        restricted = np.where(total > 0, masked / total, allowed / allowed.sum(axis=1, keepdims=True))
    return np.where(mask.any(axis=1, keepdims=True), restricted, policy)


def _masked_scores(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Greedy scores with excluded actions at −∞ and every allowed one finite, so argmax stays allowed."""
    finite = np.nan_to_num(scores.astype(np.float64), nan=-np.finfo(np.float64).max, neginf=-np.finfo(np.float64).max)
    return np.where(mask, -np.inf, np.where(mask.any(axis=1, keepdims=True), finite, scores))


def _joint_product(factors: Sequence[np.ndarray]) -> np.ndarray:
    """Per-choice probabilities [(n, k_j)] → (n, Π k_j) their products, row-major (last choice fastest)."""
    joint = factors[0]
    for p in factors[1:]:
        joint = (joint[:, :, None] * p[:, None, :]).reshape(len(joint), -1)
    return joint.copy() if len(factors) == 1 else joint


def _joint_sum(scores: Sequence[np.ndarray]) -> np.ndarray:
    """Per-choice scores [(n, k_j)] → (n, Π k_j) their sums, row-major."""
    joint = scores[0]
    for s in scores[1:]:
        joint = (joint[:, :, None] + s[:, None, :]).reshape(len(joint), -1)
    return joint
