"""Off-policy estimators against hand computations and against the exact value of a synthetic world."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.data.encoding import Features
from nextbest.errors import DataError
from nextbest.evaluation.estimators import (
    DirectMethod,
    DoublyRobust,
    DoublyRobustOptimisticShrinkage,
    InverseProbabilityWeighting,
    SelfNormalizedIPS,
    SwitchDR,
    make_estimators,
)
from nextbest.simulators.reward_models import RewardModel, Ridge, cross_fit

# A tiny log: 3 rows, 2 actions.
REWARD = np.array([1.0, 0.0, 2.0])
ACTION = np.array([0, 1, 1])
LOGGING = np.array([0.5, 0.25, 0.5])
TARGET = np.array([[0.2, 0.8], [0.5, 0.5], [0.1, 0.9]])
WEIGHTS = np.array([0.2 / 0.5, 0.5 / 0.25, 0.9 / 0.5])  # π(a_i|x_i) / μ_i, by hand
LOG = dict(reward=REWARD, action=ACTION, logging_probability=LOGGING, target_probability=TARGET)


def test_ips_equals_a_hand_computation_on_a_tiny_table():
    estimate = InverseProbabilityWeighting().estimate(**LOG, interval="normal")
    assert estimate.estimate == pytest.approx((0.4 * 1 + 2.0 * 0 + 1.8 * 2) / 3)
    terms = WEIGHTS * REWARD
    assert estimate.standard_error == pytest.approx(np.std(terms, ddof=1) / np.sqrt(3))
    assert estimate.ci_low == pytest.approx(estimate.estimate - 1.959964 * estimate.standard_error, rel=1e-5)
    assert estimate.effective_sample_size == pytest.approx(WEIGHTS.sum() ** 2 / (WEIGHTS**2).sum())


def test_clipping_caps_each_weight():
    estimate = InverseProbabilityWeighting(clip=1.0).estimate(**LOG)
    assert estimate.estimate == pytest.approx((0.4 * 1 + 1.0 * 0 + 1.0 * 2) / 3)
    assert estimate.settings == {"clip": 1.0}


def test_snips_is_invariant_to_scaling_the_weights():
    base = SelfNormalizedIPS().estimate(**LOG)
    halved = SelfNormalizedIPS().estimate(**{**LOG, "logging_probability": LOGGING / 2})  # every weight doubled
    assert base.estimate == pytest.approx((WEIGHTS * REWARD).sum() / WEIGHTS.sum())
    assert halved.estimate == pytest.approx(base.estimate)
    assert halved.effective_sample_size == pytest.approx(base.effective_sample_size)
    ips = InverseProbabilityWeighting()
    assert ips.estimate(**{**LOG, "logging_probability": LOGGING / 2}).estimate == pytest.approx(2 * ips.estimate(**LOG).estimate)


def test_dr_equals_dm_when_the_weights_are_zero():
    q_hat = np.array([[0.3, 0.6], [0.1, 0.2], [0.5, 0.4]])
    elsewhere = np.eye(2)[1 - ACTION]  # the target never takes the logged action: every weight is 0
    log = {**LOG, "target_probability": elsewhere, "expected_reward": q_hat}
    dm = DirectMethod().estimate(**log)
    assert dm.estimate == pytest.approx(np.mean([0.6, 0.1, 0.5]))
    assert DoublyRobust().estimate(**log).estimate == pytest.approx(dm.estimate)


def test_dr_equals_ips_when_the_reward_model_is_zero():
    log = {**LOG, "expected_reward": np.zeros((3, 2))}
    assert DoublyRobust().estimate(**log).estimate == pytest.approx(InverseProbabilityWeighting().estimate(**LOG).estimate)


def test_switch_dr_and_dr_os_span_dm_to_dr():
    q_hat = np.array([[0.3, 0.6], [0.1, 0.2], [0.5, 0.4]])
    log = {**LOG, "expected_reward": q_hat}
    dr, dm = DoublyRobust().estimate(**log).estimate, DirectMethod().estimate(**log).estimate
    assert SwitchDR(10.0).estimate(**log).estimate == pytest.approx(dr)
    assert SwitchDR(0.1).estimate(**log).estimate == pytest.approx(dm)
    assert SwitchDR(1.0).estimate(**log).estimate == pytest.approx(  # only row 1 (w = 0.4) keeps its correction
        dm + 0.4 * (1.0 - 0.3) / 3)
    assert DoublyRobustOptimisticShrinkage(1e12).estimate(**log).estimate == pytest.approx(dr)
    assert DoublyRobustOptimisticShrinkage(1e-12).estimate(**log).estimate == pytest.approx(dm)


def test_bootstrap_intervals_repeat_with_the_seed():
    features, a, r = draw_log(0, n=300)
    x = features.categorical[:, 0]
    log = dict(reward=r, action=a, logging_probability=LOGGING_POLICY[x, a], target_probability=TARGET_POLICY[x])
    first, again, other = (InverseProbabilityWeighting().estimate(**log, seed=s, bootstrap_samples=200) for s in (3, 3, 4))
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.ci_low < first.estimate < first.ci_high
    # with many rows the percentile bootstrap agrees with the analytic (delta-method) interval
    normal = InverseProbabilityWeighting().estimate(**log, interval="normal")
    assert first.ci_high - first.ci_low == pytest.approx(normal.ci_high - normal.ci_low, rel=0.2)


def test_deterministic_logging_has_no_support_for_ips():
    with pytest.raises(DataError, match=r"row 2: the logging policy chose action 1 with probability 1.*'ips' needs"):
        InverseProbabilityWeighting().estimate(**{**LOG, "logging_probability": np.array([0.5, 1.0, 0.5])})


def test_target_without_overlap_is_refused_by_ips_and_snips():
    elsewhere = np.eye(2)[1 - ACTION]
    for estimator in (InverseProbabilityWeighting(), SelfNormalizedIPS()):
        with pytest.raises(DataError, match=f"probability 0 to the logged action in every row, so '{estimator.name}'"):
            estimator.estimate(**{**LOG, "target_probability": elsewhere})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"logging_probability": np.array([0.5, 0.0, 0.5])}, "column 'logging_probability' is 0 in row 2"),
        ({"logging_probability": np.array([0.5, np.nan, 0.5])}, "column 'logging_probability' is empty in row 2"),
        ({"target_probability": TARGET * np.array([[1.0], [1.0], [0.5]])}, "the probabilities in row 3 sum to 0.5 instead of 1"),
        ({"action": np.array([0, 2, 1])}, "action 2 in row 2 is not one of the 2 actions"),
        ({"reward": np.array([1.0, np.inf, 0.0])}, "column 'reward' is not a finite number in row 2"),
    ],
)
def test_bad_logs_name_the_row(change, message):
    with pytest.raises(DataError, match=message):
        InverseProbabilityWeighting().estimate(**{**LOG, **change})


# --- a synthetic world whose value is known exactly ------------------------------------------------
CONTEXTS, ACTIONS = 6, 4
_world = np.random.default_rng(2024)
TRUE_Q = 1 / (1 + np.exp(-_world.normal(-0.5, 1.0, (CONTEXTS, ACTIONS))))  # conversion probability
_mu = np.exp(_world.normal(0, 1, (CONTEXTS, ACTIONS)))
LOGGING_POLICY = 0.7 * _mu / _mu.sum(1, keepdims=True) + 0.3 / ACTIONS
_pi = np.exp(2 * _world.normal(0, 1, (CONTEXTS, ACTIONS)))
TARGET_POLICY = _pi / _pi.sum(1, keepdims=True)
TRUE_VALUE = float(np.mean((TARGET_POLICY * TRUE_Q).sum(axis=1)))  # contexts are uniform


def draw_log(seed: int, n: int = 1000):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, CONTEXTS, n)
    a = (rng.random(n)[:, None] > np.cumsum(LOGGING_POLICY[x], axis=1)).sum(axis=1)
    r = (rng.random(n) < TRUE_Q[x, a]).astype(float)
    features = Features(x[:, None], np.zeros((n, 0), dtype=np.float32), (CONTEXTS,))
    return features, a, r


def test_estimators_are_unbiased_and_cover_the_true_value_over_seeds():
    errors, covered = {}, {}
    seeds = range(40)
    for seed in seeds:
        features, a, r = draw_log(seed)
        q_hat, _ = cross_fit(lambda: Ridge(ACTIONS), features, a, r, folds=5, seed=seed)
        x = features.categorical[:, 0]
        for estimator in make_estimators():
            e = estimator.estimate(reward=r, action=a, logging_probability=LOGGING_POLICY[x, a],
                                   target_probability=TARGET_POLICY[x], expected_reward=q_hat,
                                   seed=seed, bootstrap_samples=200)
            errors.setdefault(e.name, []).append(e.estimate - TRUE_VALUE)
            covered.setdefault(e.name, []).append(e.ci_low <= TRUE_VALUE <= e.ci_high)
    for name, error in errors.items():
        error = np.asarray(error)
        # the mean error over seeds is within 3 standard errors of 0 (plus a hair for the biased ones)
        slack = 0.0 if name in ("ips", "dr") else 0.005
        assert abs(error.mean()) < 3 * error.std(ddof=1) / np.sqrt(len(seeds)) + slack, name
        assert np.sqrt(np.mean(error**2)) < 0.05, name
    for name in ("ips", "snips", "dr", "switch-dr", "dr-os"):  # nominal 95%; 80% leaves room for 40 seeds
        assert np.mean(covered[name]) >= 0.8, (name, np.mean(covered[name]))


class Memorizer(RewardModel):
    """Remembers the reward of every training row by its id; unseen rows get −1."""

    name = "memorizer"
    summary = "test double"

    def fit(self, features, action, reward):
        self.seen = dict(zip(features.categorical[:, 0].tolist(), reward.tolist()))
        return self

    def predict(self, features):
        ids = features.categorical[:, 0].tolist()
        return np.array([[self.seen.get(i, -1.0)] * self.n_actions for i in ids])


def test_cross_fitting_never_scores_a_row_with_a_model_that_saw_it():
    n = 50
    features = Features(np.arange(n)[:, None], np.zeros((n, 0), dtype=np.float32), (n,))
    reward = np.arange(n, dtype=float)
    q_hat, fold = cross_fit(lambda: Memorizer(2), features, np.zeros(n, dtype=np.int64), reward, folds=5, seed=1)
    assert (q_hat == -1.0).all()  # no row was ever seen by the model that scored it
    assert sorted(np.bincount(fold).tolist()) == [10] * 5
    in_sample = Memorizer(2).fit(features, np.zeros(n, dtype=np.int64), reward).predict(features)
    assert (in_sample[:, 0] == reward).all()  # the double would have given itself away
