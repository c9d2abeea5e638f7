"""Reward models q̂(x, a): the expected outcome of every action in every context, learned from logged
(context, action, outcome) rows. One registry serves both users:

- pretraining (`nextbest.training.pretrain`) fits one on the history, checks it on held-out rows
  (`fit_reward_model`) and lets the agent practise against its predictions;
- off-policy evaluation (`nextbest.evaluation.ope`) uses cross-fitted predictions (`cross_fit`) for
  the direct method and the doubly robust family.

Every model has one signature:

    model = REWARD_MODELS["gbm"](n_actions, seed)
    model.fit(features, action, reward, weights=None)   # action: (n,) joint index; weights: (n,) or None
    model.predict(features)                             # (n, n_actions) expected outcome of every action

After `fit`, `model.binary` says whether the outcomes were all 0 or 1 (predictions are then
probabilities). Weights 1/p with p the history's `logging_probability` make a skewed logger look
uniform to the model. A new model is a class here plus one line in REWARD_MODELS.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nextbest.data.encoding import Features
from nextbest.errors import ConfigError, DataError
from nextbest.nets.early_stopping import EarlyStopping
from nextbest.nets.likelihood import negative_log_likelihood
from nextbest.nets.mlp import MLPEncoder
from nextbest.nets.ridge import RidgeArms

FOLDS = 5  # cross-fitting folds by default
MAX_CATEGORIES = 255  # histogram gradient boosting bins a categorical feature into at most 255 codes


class RewardModel(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]

    def __init__(self, n_actions: int, seed: int = 0):
        self.n_actions = n_actions
        self.seed = seed
        self.binary = False  # set by fit: outcomes all 0 or 1 → predictions are probabilities

    @abstractmethod
    def fit(self, features: Features, action: np.ndarray, reward: np.ndarray,
            weights: np.ndarray | None = None) -> RewardModel:
        """Learn from n rows: features, action (n,) joint index, reward (n,), optional weights (n,)."""

    @abstractmethod
    def predict(self, features: Features) -> np.ndarray:
        """(n, n_actions) expected reward of every action in every row."""

    def predict_taken(self, features: Features, action: np.ndarray) -> np.ndarray:
        """(n,) expected reward of the actions taken (joint indices)."""
        return self.predict(features)[np.arange(len(action)), action]


def _is_binary(reward: np.ndarray) -> bool:
    return bool(np.isin(reward, (0.0, 1.0)).all())


class BoostedTrees(RewardModel):
    """Histogram gradient boosting on (context, action): the action is one more categorical feature, so
    actions with few rows borrow strength from the others, and interactions come from the trees."""

    name = "gbm"
    summary = "gradient-boosted trees (scikit-learn) on the context and the action"

    def fit(self, features, action, reward, weights=None):
        from sklearn.ensemble import HistGradientBoostingRegressor

        self.binary = _is_binary(reward)
        categorical = [size <= MAX_CATEGORIES for size in features.cardinalities]
        mask = [*categorical, *[False] * features.numeric.shape[1], self.n_actions <= MAX_CATEGORIES]
        self.model = HistGradientBoostingRegressor(
            max_iter=100, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=20, l2_regularization=1.0,
            categorical_features=np.array(mask) if any(mask) else None, random_state=self.seed,
        )
        with _one_thread():
            self.model.fit(_inputs(features, action), reward, sample_weight=weights)
        return self

    def predict(self, features):
        n, k = len(features), self.n_actions
        rows = features.take(np.repeat(np.arange(n), k))
        with _one_thread():
            return self.model.predict(_inputs(rows, np.tile(np.arange(k), n))).reshape(n, k)


class Ridge(RewardModel):
    """One Bayesian ridge regression per action on the one-hot design matrix (rewards centred first,
    so an action with no rows predicts the overall mean). Weights w scale each row by √w (weighted
    least squares)."""

    name = "ridge"
    summary = "one ridge regression per action on one-hot context features"

    def fit(self, features, action, reward, weights=None):
        self.binary = _is_binary(reward)
        w = np.ones(len(reward)) if weights is None else weights / weights.mean()
        self.mean = float(np.average(reward, weights=w))
        root = np.sqrt(w)
        self.arms = RidgeArms(self.n_actions, features.design_width, ridge=1.0)
        self.arms.update(features.design_matrix() * root[:, None], action, (reward - self.mean) * root)
        return self

    def predict(self, features):
        mean, _ = self.arms.posterior()
        return features.design_matrix() @ mean.T + self.mean


class NeuralRewardModel(RewardModel):
    """An MLP over categorical embeddings and numbers with one output per action (the actions share
    what they learn about the customer); trained on the taken action's output with the logistic loss
    for 0/1 outcomes, squared error otherwise; early stopping on a validation tenth."""

    name = "neural"
    summary = "MLP with one output per action, early stopping"

    def __init__(self, n_actions: int, seed: int = 0, *, hidden_sizes: tuple[int, ...] = (64, 64),
                 learning_rate: float = 3e-3, weight_decay: float = 1e-4, batch_size: int = 128,
                 max_epochs: int = 200, patience: int = 10):
        super().__init__(n_actions, seed)
        self.settings = dict(hidden_sizes=list(hidden_sizes), learning_rate=learning_rate, weight_decay=weight_decay,
                             batch_size=batch_size, max_epochs=max_epochs, patience=patience)
        self.network: nn.Module | None = None
        self.mean, self.std = 0.0, 1.0

    def fit(self, features, action, reward, weights=None):
        s = self.settings
        self.binary = _is_binary(reward)
        if not self.binary:
            self.mean, self.std = float(reward.mean()), float(reward.std()) or 1.0
        target = (reward - self.mean) / self.std
        weights = np.ones(len(reward)) if weights is None else weights / weights.mean()
        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            encoder = MLPEncoder(list(features.cardinalities), features.numeric.shape[1], s["hidden_sizes"])
            self.network = nn.Sequential()
            self.network.add_module("encoder", encoder)
            self.network.add_module("head", nn.Linear(encoder.width, self.n_actions))
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=s["learning_rate"], weight_decay=s["weight_decay"])
        codes, numeric = torch.as_tensor(features.categorical), torch.as_tensor(features.numeric)
        joint = torch.as_tensor(np.asarray(action, dtype=np.int64))
        y = torch.as_tensor(target, dtype=torch.float32)
        w = torch.as_tensor(weights, dtype=torch.float32)
        order = torch.randperm(len(y), generator=generator)
        n_valid = max(1, len(y) // 10) if len(y) >= 20 else 0
        valid, train = order[:n_valid], order[n_valid:]
        min_delta = 1e-6 if self.binary else 5e-7  # 1e-6 of squared error: the Gaussian's ½ squared error halves it
        stopper = EarlyStopping(self.network, s["patience"], min_delta=min_delta)
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
            if stopper.update(valid_loss):
                break
        stopper.restore()
        return self

    def _outputs(self, codes: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        h, _ = self.network.encoder(codes, numeric)
        return self.network.head(h)

    def _loss(self, codes, numeric, joint, y, w) -> torch.Tensor:
        taken = self._outputs(codes, numeric).gather(1, joint.view(-1, 1)).squeeze(1)
        per_row = negative_log_likelihood(taken, y, "bernoulli" if self.binary else "gaussian")
        return (w * per_row).sum() / w.sum()

    @torch.no_grad()
    def predict(self, features):
        self.network.eval()
        out = self._outputs(torch.as_tensor(features.categorical), torch.as_tensor(features.numeric)).double()
        out = torch.sigmoid(out) if self.binary else out * self.std + self.mean
        return out.numpy()


REWARD_MODELS: dict[str, type[RewardModel]] = {m.name: m for m in (BoostedTrees, Ridge, NeuralRewardModel)}


def reward_model_class(name: str) -> type[RewardModel]:
    try:
        return REWARD_MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown reward model {name!r}; choose one of {sorted(REWARD_MODELS)}") from None


# --- how a model is checked: held-out rows (pretraining), cross-fitting (off-policy evaluation) ----


def fit_reward_model(
    name: str | RewardModel,
    features: Features,
    action: np.ndarray,
    reward: np.ndarray,
    n_actions: int,
    *,
    weights: np.ndarray | None = None,
    held_out: float = 0.2,
    seed: int = 0,
) -> tuple[RewardModel, dict[str, Any]]:
    """Fit on 1 − held_out of the rows, score the rest against predicting the training mean, then
    refit on every row. action: (n,) joint indices. Returns the refitted model and the check."""
    if not 0.0 <= held_out < 1.0:
        raise ConfigError(f"held_out must be in [0, 1), got {held_out}")

    def fit(rows: np.ndarray | slice) -> RewardModel:
        model = copy.deepcopy(name) if isinstance(name, RewardModel) else reward_model_class(name)(n_actions, seed)
        extra = {} if weights is None else {"weights": weights[rows]}
        return model.fit(features.take(rows), action[rows], reward[rows], **extra)

    n = len(reward)
    n_test = int(round(n * held_out))
    check: dict[str, Any] = {"reward_model": name.name if isinstance(name, RewardModel) else reward_model_class(name).name,
                             "rows": n, "held_out_rows": n_test}
    if n_test >= 10 and n - n_test >= 10:
        order = np.random.default_rng(seed).permutation(n)
        test, train = order[:n_test], order[n_test:]
        model = fit(train)
        predicted = model.predict_taken(features.take(test), action[test])
        check |= held_out_metrics(reward[test], predicted, float(reward[train].mean()), model.binary)
    return fit(slice(None)), check


def cross_fit(
    make_model: Callable[[], RewardModel],
    features: Features,
    action: np.ndarray,
    reward: np.ndarray,
    *,
    folds: int = FOLDS,
    seed: int = 0,
    on_fold: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(n, n_actions) out-of-fold predictions q̂ and the (n,) fold of every row.

    Cross-fitting (Chernozhukov et al., 2018): rows are assigned to `folds` folds at random (by
    `seed`); fold k is predicted by a model from `make_model()` fitted on the rows of all other
    folds, so no row is scored by a model that saw it (an in-sample model memorizes the noise of its
    own rows and drags DR towards DM's bias)."""
    n = len(reward)
    if folds < 2:
        raise ConfigError(f"cross-fitting needs at least 2 folds, got {folds}")
    if n < folds:
        raise DataError(f"the logs have {n} rows; cross-fitting with {folds} folds needs at least {folds} (use --folds)")
    fold = np.random.default_rng(seed).permutation(n) % folds
    predictions: np.ndarray | None = None
    for k in range(folds):
        held_out = fold == k
        model = make_model().fit(features.take(~held_out), action[~held_out], reward[~held_out])
        scored = model.predict(features.take(held_out))
        if predictions is None:
            predictions = np.empty((n, scored.shape[1]))
        predictions[held_out] = scored
        if on_fold:
            on_fold(k)
    return predictions, fold


def held_out_metrics(outcome: np.ndarray, predicted: np.ndarray, baseline: float, binary: bool) -> dict[str, float]:
    """Errors of the model and of a constant (the training mean) on held-out rows; for 0/1 outcomes the
    log-loss and AUC, otherwise RMSE. `improvement` is the share of the constant's error removed."""
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


def _one_thread():
    """OpenMP threads spin-wait: on a busy machine two threads run many times slower than one."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _inputs(features: Features, action: np.ndarray) -> np.ndarray:
    """(n, n_categorical + n_numeric + 1) float: category codes, standardized numbers, the action."""
    return np.column_stack([features.categorical, features.numeric, action]).astype(np.float64)
