"""Off-policy estimators: the value of a target policy from the logs of another, one signature for all.

Row i of the logs has context x_i, logged action a_i, reward r_i and logging probability
μ_i = μ(a_i | x_i). The target policy π gives π(a | x_i) for every action a; w_i = π(a_i | x_i) / μ_i
is the importance weight and q̂(x, a) a reward model fitted without row i (cross-fitting,
`nextbest.simulators.reward_models.cross_fit`).

    DM         V = 1/n Σ_i Σ_a π(a|x_i) q̂(x_i, a)                        (direct method)
    IPS        V = 1/n Σ_i w_i r_i                                          (Horvitz–Thompson)
    SNIPS      V = Σ_i w_i r_i / Σ_i w_i                                    (Swaminathan & Joachims, 2015)
    DR         V = 1/n Σ_i [Σ_a π(a|x_i) q̂(x_i, a) + w_i (r_i − q̂(x_i, a_i))]   (Dudík et al., 2014)
    Switch-DR  DR with w_i replaced by w_i 1[w_i ≤ τ]                      (Wang et al., 2017, as in obp)
    DR-OS      DR with w_i replaced by λ w_i / (w_i² + λ)                   (Su et al., 2020)

IPS, SNIPS and DR take an optional clip M (w_i → min(w_i, M)). Switch-DR's τ and DR-OS's λ,
when not given, are chosen from a grid to minimize the estimated mean squared error
bias² + variance, where the bias of shrinking, 1/n Σ (ŵ_i − w_i)(r_i − q̂(x_i, a_i)), is replaced
by its 95% upper confidence bound (Su et al., 2020; obp's default), so that noise alone never
talks the estimator into trusting the reward model.

Every estimator is a ratio of per-row sums, V = Σ a_i / Σ b_i (b_i = 1 except for SNIPS). That
gives the analytic standard error by the delta method, se² = n/(n−1) Σ (a_i − V b_i)² / (Σ b_i)²
(conditional on the reward model), and a bootstrap over rows that needs no refitting.

    for estimator in (IPS(), SNIPS(), DoublyRobust()):
        print(estimator.name, estimator.estimate(reward=r, action=a, logging_probability=p,
                                                 target_probability=pi, expected_reward=q_hat))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import stats

from nextbest.errors import ConfigError, DataError

Interval = Literal["bootstrap", "normal"]
PROBABILITY_TOLERANCE = 1e-4  # CSV round-trips lose digits; a target off by more than this is a mistake
# A target written with probabilities rounded to 3 decimals (0.333, 0.333, 0.333) sums to 0.999: accepted and
# renormalized. A row off by more is a mistake (a missing action, a wrong column).
SUM_TOLERANCE = 2e-3


@dataclass(frozen=True)
class Estimate:
    """An estimated policy value with its interval. `settings` holds the estimator's chosen parameters."""

    name: str
    estimate: float
    ci_low: float
    ci_high: float
    standard_error: float
    effective_sample_size: float
    interval: str
    confidence: float
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "name"}


@dataclass(frozen=True)
class Logged:
    """Validated logs. reward, logging_probability: (n,) float; action: (n,) int joint index;
    target_probability: (n, k); expected_reward: (n, k) or None."""

    reward: np.ndarray
    action: np.ndarray
    logging_probability: np.ndarray
    target_probability: np.ndarray
    expected_reward: np.ndarray | None

    @property
    def rows(self) -> np.ndarray:
        return np.arange(len(self.reward))

    @property
    def weight(self) -> np.ndarray:
        """w_i = π(a_i | x_i) / μ_i."""
        return self.target_probability[self.rows, self.action] / self.logging_probability

    @property
    def direct(self) -> np.ndarray:
        """Σ_a π(a | x_i) q̂(x_i, a), the reward model's value of the target policy in each row."""
        return (self.target_probability * self.expected_reward).sum(axis=1)

    @property
    def residual(self) -> np.ndarray:
        """r_i − q̂(x_i, a_i)."""
        return self.reward - self.expected_reward[self.rows, self.action]


@dataclass(frozen=True)
class Terms:
    """V = Σ numerator / Σ denominator; `weight` are the importance weights applied to logged rewards."""

    numerator: np.ndarray
    denominator: np.ndarray | None = None
    weight: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)


class Estimator(ABC):
    """An off-policy estimator. Subclasses give `terms`; `estimate` checks the inputs and adds intervals."""

    name: ClassVar[str]
    summary: ClassVar[str]
    uses_reward_model: ClassVar[bool] = True
    uses_weights: ClassVar[bool] = True

    @property
    def needs_support(self) -> bool:
        """Pure importance weighting has no model to fall back on where the logging policy never acted;
        the DR family falls back on the reward model there (and equals DM when no weight is positive)."""
        return self.uses_weights and not self.uses_reward_model

    def estimate(
        self,
        *,
        reward: np.ndarray,
        action: np.ndarray,
        logging_probability: np.ndarray,
        target_probability: np.ndarray,
        expected_reward: np.ndarray | None = None,
        confidence: float = 0.95,
        interval: Interval = "bootstrap",
        bootstrap_samples: int = 1000,
        seed: int = 0,
    ) -> Estimate:
        """The target policy's expected reward per decision, with a `confidence` interval.

        reward, logging_probability: (n,); action: (n,) joint action index; target_probability:
        (n, n_actions), rows summing to 1; expected_reward: (n, n_actions) cross-fitted q̂, needed by
        DM and the DR family. The bootstrap resamples rows `bootstrap_samples` times with `seed`."""
        logged = check_logged(reward, action, logging_probability, target_probability, expected_reward)
        if self.uses_reward_model and logged.expected_reward is None:
            raise ConfigError(f"estimator '{self.name}' needs expected_reward from a reward model")
        if self.needs_support:
            check_support(logged, self.name)
        terms = self.terms(logged)
        return summarize(self.name, terms, confidence=confidence, interval=interval,
                         bootstrap_samples=bootstrap_samples, seed=seed)

    @abstractmethod
    def terms(self, logged: Logged) -> Terms:
        """Per-row numerator (and denominator) of the estimate."""


class DirectMethod(Estimator):
    name = "dm"
    summary = "direct method: the reward model's value of the target policy"
    uses_weights = False

    def terms(self, logged: Logged) -> Terms:
        return Terms(logged.direct)


class _Clipped(Estimator):
    def __init__(self, clip: float | None = None):
        if clip is not None and not clip > 0:
            raise ConfigError(f"clip must be a positive maximum weight, got {clip}")
        self.clip = clip

    def clipped_weight(self, logged: Logged) -> np.ndarray:
        w = logged.weight
        return w if self.clip is None else np.minimum(w, self.clip)


class InverseProbabilityWeighting(_Clipped):
    name = "ips"
    summary = "inverse probability weighting (unbiased without clipping)"
    uses_reward_model = False

    def terms(self, logged: Logged) -> Terms:
        w = self.clipped_weight(logged)
        return Terms(w * logged.reward, weight=w, settings={"clip": self.clip})


class SelfNormalizedIPS(InverseProbabilityWeighting):
    name = "snips"
    summary = "self-normalized IPS: Σ w r / Σ w (slightly biased, much lower variance)"

    def terms(self, logged: Logged) -> Terms:
        ips = super().terms(logged)
        return Terms(ips.numerator, ips.weight, weight=ips.weight, settings=ips.settings)


class DoublyRobust(_Clipped):
    name = "dr"
    summary = "doubly robust: DM corrected by importance-weighted residuals"

    def terms(self, logged: Logged) -> Terms:
        w = self.clipped_weight(logged)
        return Terms(logged.direct + w * logged.residual, weight=w, settings={"clip": self.clip})


class _ShrunkDR(Estimator):
    """DR with shrunk weights ŵ = shrink(w, θ); θ tuned by estimated MSE when not given."""

    parameter: ClassVar[str]

    def __init__(self, value: float | None = None):
        if value is not None and not value > 0:
            raise ConfigError(f"{self.name}'s {self.parameter} must be positive, got {value}")
        self.value = value

    @staticmethod
    @abstractmethod
    def shrink(w: np.ndarray, value: float) -> np.ndarray: ...

    @staticmethod
    @abstractmethod
    def candidates(w: np.ndarray) -> np.ndarray: ...

    def terms(self, logged: Logged) -> Terms:
        w, direct, residual = logged.weight, logged.direct, logged.residual
        n = len(w)

        def mse(value: float) -> float:  # bias bounded above with 95% confidence, as obp does by default
            w_hat = self.shrink(w, value)
            gap = (w_hat - w) * residual
            bias = abs(gap.mean()) + np.sqrt(2 * np.log(2 / 0.05) * np.var(gap, ddof=1) / n)
            return bias**2 + np.var(direct + w_hat * residual, ddof=1) / n

        value = self.value if self.value is not None else min(self.candidates(w), key=mse)
        w_hat = self.shrink(w, value)
        chosen = None if np.isinf(value) else float(value)
        return Terms(direct + w_hat * residual, weight=w_hat,
                     settings={self.parameter: chosen, "tuned": self.value is None})


class SwitchDR(_ShrunkDR):
    name = "switch-dr"
    summary = "switch-DR: DR where weights ≤ τ, DM where larger"
    parameter = "threshold"

    @staticmethod
    def shrink(w: np.ndarray, value: float) -> np.ndarray:
        return np.where(w <= value, w, 0.0)

    @staticmethod
    def candidates(w: np.ndarray) -> np.ndarray:
        positive = w[w > 0]
        grid = np.quantile(positive, np.linspace(0.5, 1.0, 11)) if len(positive) else np.array([])
        return np.unique(np.append(grid, np.inf))


class DoublyRobustOptimisticShrinkage(_ShrunkDR):
    name = "dr-os"
    summary = "DR with optimistic shrinkage of the weights: λw / (w² + λ)"
    parameter = "shrinkage"

    @staticmethod
    def shrink(w: np.ndarray, value: float) -> np.ndarray:
        return w if np.isinf(value) else value * w / (w**2 + value)

    @staticmethod
    def candidates(w: np.ndarray) -> np.ndarray:
        scale = max(float(np.max(w)) ** 2, 1e-12)
        return np.append(scale * np.geomspace(1e-4, 1e2, 13), np.inf)


ESTIMATORS: dict[str, type[Estimator]] = {
    e.name: e
    for e in (DirectMethod, InverseProbabilityWeighting, SelfNormalizedIPS, DoublyRobust, SwitchDR,
              DoublyRobustOptimisticShrinkage)
}


def make_estimators(
    names: list[str] | None = None, *, clip: float | None = None, threshold: float | None = None,
    shrinkage: float | None = None,
) -> list[Estimator]:
    """Estimators by name (all when None); `clip` goes to IPS, SNIPS and DR, `threshold` to switch-DR,
    `shrinkage` to DR-OS."""
    names = list(ESTIMATORS) if not names else names
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown:
        raise ConfigError(f"unknown estimator(s) {unknown}; choose from {list(ESTIMATORS)}")
    out: list[Estimator] = []
    for name in dict.fromkeys(names):
        cls = ESTIMATORS[name]
        if issubclass(cls, _Clipped):
            out.append(cls(clip))
        elif issubclass(cls, _ShrunkDR):
            out.append(cls(threshold if cls is SwitchDR else shrinkage))
        else:
            out.append(cls())
    return out


# --- checks ------------------------------------------------------------------------------------
def check_logged(
    reward: np.ndarray, action: np.ndarray, logging_probability: np.ndarray, target_probability: np.ndarray,
    expected_reward: np.ndarray | None = None, *, logs: str = "the logs", target: str = "the target",
) -> Logged:
    """Shapes and values of the logs; errors name `logs` or `target` and the first bad row (from 1)."""
    reward = np.asarray(reward, dtype=np.float64)
    action = np.asarray(action)
    mu = np.asarray(logging_probability, dtype=np.float64)
    pi = np.asarray(target_probability, dtype=np.float64)
    n = len(reward)
    if n == 0:
        raise DataError(f"{logs}: no rows")
    if pi.ndim != 2 or action.shape != (n,) or mu.shape != (n,) or pi.shape[0] != n:
        raise DataError(f"expected reward, action and logging_probability of shape ({n},) and target_probability "
                        f"of shape ({n}, n_actions); got {action.shape}, {mu.shape} and {pi.shape}")
    if not np.issubdtype(action.dtype, np.integer):
        raise DataError(f"{logs}: action must hold integer action indices")
    k = pi.shape[1]
    _first_bad(~np.isfinite(reward), f"{logs}: column 'reward' is not a finite number in row {{row}}")
    _first_bad((action < 0) | (action >= k), f"{logs}: action {{value}} in row {{row}} is not one of the "
               f"{k} actions of the target policy (0 … {k - 1})", action)
    _first_bad(~np.isfinite(mu), f"{logs}: column 'logging_probability' is empty in row {{row}}; expected the "
               "probability with which the logging policy chose the logged action")
    _first_bad(mu <= 0, f"{logs}: column 'logging_probability' is {{value}} in row {{row}}; expected the probability "
               "(> 0) with which the logging policy chose the logged action", mu)
    _first_bad(mu > 1 + PROBABILITY_TOLERANCE,
               f"{logs}: column 'logging_probability' is {{value}} in row {{row}}; a probability is at most 1", mu)
    _first_bad(~np.isfinite(pi).all(axis=1), f"{target}: a probability is empty or not a number in row {{row}}")
    _first_bad((pi < -PROBABILITY_TOLERANCE).any(axis=1), f"{target}: a probability is negative in row {{row}}")
    sums = pi.sum(axis=1)
    _first_bad(np.abs(sums - 1) > SUM_TOLERANCE, f"{target}: the probabilities in row {{row}} sum to "
               "{value} instead of 1; each row must give a probability to every action", sums)
    pi = np.clip(pi, 0.0, None)
    pi = pi / pi.sum(axis=1, keepdims=True)
    if expected_reward is not None:
        expected_reward = np.asarray(expected_reward, dtype=np.float64)
        if expected_reward.shape != pi.shape:
            raise DataError(f"expected_reward has shape {expected_reward.shape}; expected {pi.shape}")
        _first_bad(~np.isfinite(expected_reward).all(axis=1), "the reward model's prediction is not finite in row {row}")
    return Logged(reward, action.astype(np.int64), np.minimum(mu, 1.0), pi, expected_reward)


def check_support(logged: Logged, name: str) -> None:
    """Importance weighting needs the logging policy to have tried every action the target may take."""
    pi_logged = logged.target_probability[logged.rows, logged.action]
    deterministic = (logged.logging_probability >= 1.0) & (pi_logged < 1.0 - PROBABILITY_TOLERANCE)
    if deterministic.any():
        row = int(np.flatnonzero(deterministic)[0])
        raise DataError(
            f"row {row + 1}: the logging policy chose action {logged.action[row]} with probability 1, so it never "
            f"tried the other actions, but the target policy gives them probability {1 - pi_logged[row]:.3g}; "
            f"'{name}' needs the logging policy to give every action the target may take a positive probability "
            f"(use 'dm' or 'dr', which fall back on a reward model, or logs from an exploring policy)"
        )
    if not (pi_logged > 0).any():
        raise DataError(
            f"the target policy gives probability 0 to the logged action in every row, so '{name}' has no logged "
            f"reward to reweight: the two policies do not overlap (use 'dm' or 'dr', which fall back on a reward model)"
        )


def _first_bad(bad: np.ndarray, message: str, values: np.ndarray | None = None) -> None:
    """Raise `message` (with {row} from 1 and {value}) for the first True of `bad`."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = "" if values is None else f"{values[row]:.6g}"
        raise DataError(message.format(row=row + 1, value=value))


# --- intervals ---------------------------------------------------------------------------------
def summarize(
    name: str, terms: Terms, *, confidence: float = 0.95, interval: Interval = "bootstrap",
    bootstrap_samples: int = 1000, seed: int = 0,
) -> Estimate:
    """Point estimate, delta-method standard error, effective sample size and interval of Σa / Σb."""
    check_interval(confidence, interval, bootstrap_samples)
    a = terms.numerator
    b = np.ones_like(a) if terms.denominator is None else terms.denominator
    n = len(a)
    value = a.sum() / b.sum()
    se = float(np.sqrt(np.sum((a - value * b) ** 2) / b.sum() ** 2 * n / max(n - 1, 1)))
    w = np.ones(n) if terms.weight is None else terms.weight
    ess = float(w.sum() ** 2 / np.sum(w**2)) if np.any(w) else 0.0
    if interval == "normal":
        z = stats.norm.ppf(0.5 + confidence / 2)
        low, high = value - z * se, value + z * se
    else:
        low, high = np.quantile(bootstrap(a, b, bootstrap_samples, seed), [(1 - confidence) / 2, (1 + confidence) / 2])
    return Estimate(name, float(value), float(low), float(high), se, ess, interval, confidence, terms.settings)


def check_interval(confidence: float, interval: str, bootstrap_samples: int) -> None:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie between 0 and 1, got {confidence}")
    if interval not in ("bootstrap", "normal"):
        raise ConfigError(f"interval must be 'bootstrap' or 'normal', got {interval!r}")
    if interval == "bootstrap" and bootstrap_samples < 10:
        raise ConfigError(f"use at least 10 bootstrap samples, got {bootstrap_samples}")


def bootstrap(a: np.ndarray, b: np.ndarray, samples: int, seed: int, chunk: int = 100) -> np.ndarray:
    """(samples,) values of Σa/Σb over rows resampled with replacement (the same `seed` → the same draws)."""
    rng = np.random.default_rng(seed)
    n, out = len(a), np.empty(samples)
    for start in range(0, samples, chunk):
        rows = rng.integers(0, n, size=(min(chunk, samples - start), n))
        denominators = b[rows].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + len(rows)] = a[rows].sum(axis=1) / denominators
    return out[np.isfinite(out)] if not np.isfinite(out).all() else out
