"""Reward models q̂(x, a) for the direct method and doubly robust estimators, cross-fitted.

Cross-fitting (Chernozhukov et al., 2018): the rows are split into K folds; the model that scores
fold k is fitted on the other K − 1 folds, so no row is ever scored by a model that saw it. An
in-sample model memorizes the noise of its own rows and drags DR towards DM's bias.

A new model is a class with `fit(features, action, reward)` and `predict(features) → (n, n_actions)`
plus one line in REWARD_MODELS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, ClassVar

import numpy as np

from nextbest.agents.ridge import RidgeArms
from nextbest.data.encoding import Features
from nextbest.errors import ConfigError, DataError

FOLDS = 5  # cross-fitting folds by default
MAX_CATEGORIES = 255  # histogram gradient boosting bins a categorical feature into at most 255 codes


class RewardModel(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]

    def __init__(self, n_actions: int, seed: int = 0):
        self.n_actions = n_actions
        self.seed = seed

    @abstractmethod
    def fit(self, features: Features, action: np.ndarray, reward: np.ndarray) -> "RewardModel":
        """Learn from n rows: features, action (n,) joint index, reward (n,)."""

    @abstractmethod
    def predict(self, features: Features) -> np.ndarray:
        """(n, n_actions) expected reward of every action in every row."""


class BoostedTrees(RewardModel):
    """Histogram gradient boosting on (context, action): the action is one more categorical feature, so
    actions with few rows borrow strength from the others, and interactions come from the trees."""

    name = "gbm"
    summary = "gradient-boosted trees on the context and the action (default)"

    def fit(self, features: Features, action: np.ndarray, reward: np.ndarray) -> "BoostedTrees":
        from sklearn.ensemble import HistGradientBoostingRegressor

        categorical = [size <= MAX_CATEGORIES for size in features.cardinalities]
        mask = [*categorical, *[False] * features.numeric.shape[1], self.n_actions <= MAX_CATEGORIES]
        self.model = HistGradientBoostingRegressor(
            max_iter=100, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=20, l2_regularization=1.0,
            categorical_features=np.array(mask) if any(mask) else None, random_state=self.seed,
        )
        with _one_thread():
            self.model.fit(_inputs(features, action), reward)
        return self

    def predict(self, features: Features) -> np.ndarray:
        n, k = len(features), self.n_actions
        rows = features.take(np.repeat(np.arange(n), k))
        with _one_thread():
            return self.model.predict(_inputs(rows, np.tile(np.arange(k), n))).reshape(n, k)


class Ridge(RewardModel):
    """One Bayesian ridge regression per action on the one-hot design matrix (rewards centred first,
    so an action with no rows predicts the overall mean)."""

    name = "ridge"
    summary = "one ridge regression per action on one-hot context features"

    def fit(self, features: Features, action: np.ndarray, reward: np.ndarray) -> "Ridge":
        self.mean = float(reward.mean())
        self.arms = RidgeArms(self.n_actions, features.design_width, ridge=1.0)
        self.arms.update(features.design_matrix(), action, reward - self.mean)
        return self

    def predict(self, features: Features) -> np.ndarray:
        mean, _ = self.arms.posterior()
        return features.design_matrix() @ mean.T + self.mean


REWARD_MODELS: dict[str, type[RewardModel]] = {m.name: m for m in (BoostedTrees, Ridge)}


def reward_model_class(name: str) -> type[RewardModel]:
    try:
        return REWARD_MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown reward model {name!r}; choose one of {sorted(REWARD_MODELS)}") from None


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

    Rows are assigned to `folds` folds at random (by `seed`); fold k is predicted by a model
    from `make_model()` fitted on the rows of all other folds."""
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


def _one_thread():
    """OpenMP threads spin-wait: on a busy machine two threads run many times slower than one."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _inputs(features: Features, action: np.ndarray) -> np.ndarray:
    """(n, n_categorical + n_numeric + 1) float: category codes, standardized numbers, the action."""
    return np.column_stack([features.categorical, features.numeric, action]).astype(np.float64)
