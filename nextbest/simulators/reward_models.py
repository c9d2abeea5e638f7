"""Reward models for pretraining: learn E[outcome | context, action] from history, predict it for every action.

    model, check = fit_reward_model("neural", features, actions, outcomes, action_space)
    model.predict(features)   # (n, n_joint) expected outcome of every joint action

Every model has one signature (`fit`, `predict`); `REWARD_MODELS` lists them. `fit_reward_model`
first fits on a random share of the rows and scores the rest (the held-out check: is the model
better than predicting the average?), then refits on every row. Rows can carry weights: with the
history's `logging_probability` p, weights 1/p make a skewed logger look uniform to the model.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import Features
from nextbest.errors import ConfigError, DataError
from nextbest.nets.mlp import MLPEncoder


class RewardModel(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]

    def __init__(self, action_space: ActionSpace, seed: int = 0):
        self.action_space = action_space
        self.seed = seed
        self.binary = False  # set by fit: outcomes all 0 or 1 → probabilities

    @abstractmethod
    def fit(self, features: Features, actions: np.ndarray, outcomes: np.ndarray,
            weights: np.ndarray | None = None) -> "RewardModel":
        """features: n rows; actions (n, n_choices) int; outcomes (n,) float; weights (n,) or None."""

    @abstractmethod
    def predict(self, features: Features) -> np.ndarray:
        """(n, n_joint) expected outcome of every joint action (a probability for 0/1 outcomes)."""

    def predict_taken(self, features: Features, actions: np.ndarray) -> np.ndarray:
        """(n,) expected outcome of the actions that were taken."""
        joint = self.action_space.to_joint(actions)
        return self.predict(features)[np.arange(len(joint)), joint]


class NeuralRewardModel(RewardModel):
    """An MLP over categorical embeddings and numbers with one output per joint action (the actions
    share what they learn about the customer); trained on the taken action's output with the
    logistic loss for 0/1 outcomes, squared error otherwise; early stopping on a validation tenth."""

    name = "neural"
    summary = "MLP with one output per joint action, early stopping (default)"

    def __init__(self, action_space: ActionSpace, seed: int = 0, *, hidden_sizes: tuple[int, ...] = (64, 64),
                 learning_rate: float = 3e-3, weight_decay: float = 1e-4, batch_size: int = 128,
                 max_epochs: int = 200, patience: int = 10):
        super().__init__(action_space, seed)
        self.settings = dict(hidden_sizes=list(hidden_sizes), learning_rate=learning_rate, weight_decay=weight_decay,
                             batch_size=batch_size, max_epochs=max_epochs, patience=patience)
        self.network: nn.Module | None = None
        self.mean, self.std = 0.0, 1.0

    def fit(self, features, actions, outcomes, weights=None):
        s = self.settings
        self.binary = bool(np.isin(outcomes, (0.0, 1.0)).all())
        if not self.binary:
            self.mean, self.std = float(outcomes.mean()), float(outcomes.std()) or 1.0
        target = (outcomes - self.mean) / self.std
        weights = np.ones(len(outcomes)) if weights is None else weights / weights.mean()
        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            encoder = MLPEncoder(list(features.cardinalities), features.numeric.shape[1], s["hidden_sizes"])
            self.network = nn.Sequential()
            self.network.add_module("encoder", encoder)
            self.network.add_module("head", nn.Linear(encoder.width, self.action_space.n_joint))
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=s["learning_rate"], weight_decay=s["weight_decay"])
        codes, numeric = torch.as_tensor(features.categorical), torch.as_tensor(features.numeric)
        joint = torch.as_tensor(self.action_space.to_joint(actions))
        y = torch.as_tensor(target, dtype=torch.float32)
        w = torch.as_tensor(weights, dtype=torch.float32)
        order = torch.randperm(len(y), generator=generator)
        n_valid = max(1, len(y) // 10) if len(y) >= 20 else 0
        valid, train = order[:n_valid], order[n_valid:]
        best, best_loss, waited = None, float("inf"), 0
        for _epoch in range(s["max_epochs"]):
            self.network.train()
            for batch in train[torch.randperm(len(train), generator=generator)].split(s["batch_size"]):
                loss = self._loss(codes[batch], numeric[batch], joint[batch], y[batch], w[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if not n_valid:
                continue
            with torch.no_grad():
                valid_loss = float(self._loss(codes[valid], numeric[valid], joint[valid], y[valid], w[valid]))
            if valid_loss < best_loss - 1e-6:
                best, best_loss, waited = copy.deepcopy(self.network.state_dict()), valid_loss, 0
            else:
                waited += 1
                if waited >= s["patience"]:
                    break
        if best is not None:
            self.network.load_state_dict(best)
        return self

    def _outputs(self, codes: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        h, _ = self.network.encoder(codes, numeric)
        return self.network.head(h)

    def _loss(self, codes, numeric, joint, y, w) -> torch.Tensor:
        taken = self._outputs(codes, numeric).gather(1, joint.view(-1, 1)).squeeze(1)
        if self.binary:
            per_row = nn.functional.binary_cross_entropy_with_logits(taken, y, reduction="none")
        else:
            per_row = (taken - y) ** 2
        return (w * per_row).sum() / w.sum()

    @torch.no_grad()
    def predict(self, features):
        self.network.eval()
        out = self._outputs(torch.as_tensor(features.categorical), torch.as_tensor(features.numeric)).double()
        out = torch.sigmoid(out) if self.binary else out * self.std + self.mean
        return out.numpy()


class GradientBoostingRewardModel(RewardModel):
    """scikit-learn's histogram gradient boosting on the context plus the action (categorical codes
    and action columns as native categorical features); predicts every action by scoring each
    context once per joint action."""

    name = "gradient-boosting"
    summary = "histogram gradient-boosted trees (scikit-learn) on context + action"

    def __init__(self, action_space: ActionSpace, seed: int = 0, **settings: Any):
        super().__init__(action_space, seed)
        self.settings = {"max_iter": 300, "learning_rate": 0.05, "early_stopping": True, **settings}
        self.model = None

    def _design(self, features: Features, actions: np.ndarray) -> np.ndarray:
        return np.concatenate([features.categorical, actions, features.numeric], axis=1).astype(np.float64)

    def fit(self, features, actions, outcomes, weights=None):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        self.binary = bool(np.isin(outcomes, (0.0, 1.0)).all())
        n_categorical = features.categorical.shape[1] + actions.shape[1]
        mask = [True] * n_categorical + [False] * features.numeric.shape[1]
        cls = HistGradientBoostingClassifier if self.binary else HistGradientBoostingRegressor
        if self.binary and len(np.unique(outcomes)) < 2:
            raise DataError("every outcome in the history is the same; a reward model cannot learn from that")
        self.model = cls(categorical_features=mask, random_state=self.seed, **self.settings)
        self.model.fit(self._design(features, actions), outcomes, sample_weight=weights)
        return self

    def predict(self, features):
        n, n_joint = len(features), self.action_space.n_joint
        every = self.action_space.from_joint(np.arange(n_joint))
        design = self._design(features.take(np.repeat(np.arange(n), n_joint)), np.tile(every, (n, 1)))
        out = self.model.predict_proba(design)[:, 1] if self.binary else self.model.predict(design)
        return out.reshape(n, n_joint)


REWARD_MODELS: dict[str, type[RewardModel]] = {m.name: m for m in (NeuralRewardModel, GradientBoostingRewardModel)}


def make_reward_model(name: str, action_space: ActionSpace, seed: int = 0) -> RewardModel:
    try:
        return REWARD_MODELS[name](action_space, seed)
    except KeyError:
        raise ConfigError(f"unknown reward model {name!r}; choose one of {sorted(REWARD_MODELS)}") from None


def fit_reward_model(
    name: str | RewardModel,
    features: Features,
    actions: np.ndarray,
    outcomes: np.ndarray,
    action_space: ActionSpace,
    *,
    weights: np.ndarray | None = None,
    held_out: float = 0.2,
    seed: int = 0,
) -> tuple[RewardModel, dict[str, Any]]:
    """Fit on 1 − held_out of the rows, score the rest against predicting the training mean, then
    refit on every row. Returns the refitted model and the check (held-out metrics)."""
    if not 0.0 <= held_out < 1.0:
        raise ConfigError(f"held_out must be in [0, 1), got {held_out}")
    def fresh() -> RewardModel:
        return copy.deepcopy(name) if isinstance(name, RewardModel) else make_reward_model(name, action_space, seed)

    n = len(outcomes)
    n_test = int(round(n * held_out))
    check: dict[str, Any] = {"reward_model": fresh().name, "rows": n, "held_out_rows": n_test}
    if n_test >= 10 and n - n_test >= 10:
        order = np.random.default_rng(seed).permutation(n)
        test, train = order[:n_test], order[n_test:]
        model = fresh().fit(features.take(train), actions[train], outcomes[train],
                            None if weights is None else weights[train])
        predicted = model.predict_taken(features.take(test), actions[test])
        check |= held_out_metrics(outcomes[test], predicted, float(outcomes[train].mean()), model.binary)
    model = fresh().fit(features, actions, outcomes, weights)
    return model, check


def held_out_metrics(outcome: np.ndarray, predicted: np.ndarray, baseline: float, binary: bool) -> dict[str, float]:
    """Errors of the model and of a constant (the training mean) on held-out rows; for 0/1 outcomes the
    log-loss and AUC, otherwise RMSE and R². `improvement` is the share of the constant's error removed."""
    if binary:
        p = np.clip(predicted, 1e-6, 1 - 1e-6)
        b = np.clip(baseline, 1e-6, 1 - 1e-6)
        loss = float(-np.mean(outcome * np.log(p) + (1 - outcome) * np.log(1 - p)))
        constant = float(-np.mean(outcome * np.log(b) + (1 - outcome) * np.log(1 - b)))
        metrics = {"metric": "log_loss", "model": loss, "constant": constant, "auc": _auc(outcome, predicted)}
    else:
        rmse = float(np.sqrt(np.mean((outcome - predicted) ** 2)))
        constant = float(np.sqrt(np.mean((outcome - baseline) ** 2)))
        metrics = {"metric": "rmse", "model": rmse, "constant": constant}
    metrics["improvement"] = 1.0 - metrics["model"] / metrics["constant"] if metrics["constant"] > 0 else 0.0
    return metrics


def _auc(outcome: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    from scipy.stats import rankdata

    positives = outcome == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
