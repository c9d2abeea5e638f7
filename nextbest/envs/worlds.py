"""Generated customer worlds: a contextual scenario drawn from a seed, for choosing and tuning on
many worlds instead of the three written by hand (`make_scenario("world:17")`).

What a world draws, each within realistic ranges (its `kind` records the draws, to group results by):

- columns: 1–6 categorical (2–30 categories, Zipf-skewed frequencies, so the larger ones have rare
  categories) and 1–10 numeric, each one of: normal scores, log-normal amounts (heavy right tail),
  over-dispersed counts, exponential waiting times in days, bounded shares in [0, 1], and nearly
  constant flags; about a third of the numeric columns are irrelevant (no effect at all);
- actions: 2 to 32 offers, or two or three choices at once (`[4, 4]`, `[3, 2, 2]`, …), with or
  without interactions between the choices;
- reward: a Bernoulli conversion (base rate 1–30% under random actions), revenue with a cost per
  action (choice 0's levels are discounts that cost margin, persuading only the price-sensitive while
  others buy anyway), or a zero-inflated amount (a purchase, then a log-normal amount);
- form: how the context moves the reaction — linear in each column's natural scale, pairwise
  interactions, thresholds, smooth non-linear effects, effects that only a few segments have, or one
  action best for almost everyone (where exploring too long is the mistake);
- noise: from nearly deterministic (large logit spread, tight amounts) to mostly noise.

The model, for a customer x and a joint action a:

    taste(x)     = Σ_terms φ_t(x) M_t                 (r = 2–4 latent dimensions, standardized)
    η(x, a)      = α + s · (β_a + taste(x) · V_a / √r) [+ κ d_a sens(x) for discounts]
    conversion:  p = σ(η)                 E[reaction] = p
    revenue:     bought ~ p, amount = basket · (1 − d_a) · exp(σ_A z − σ_A²/2)
                                          E[reaction] = p · basket · (1 − d_a)
    amount:      bought ~ p, amount = exp(μ(x, a) + σ_A z)
                                          E[reaction] = p · exp(μ(x, a) + σ_A²/2)

so every action's expected reward is exact (closed form given the context). α is set so that the
purchase rate under random actions equals the drawn base rate; in a same-best world the taste term is
damped and one action (undiscounted) gets the smallest bonus that makes it best for 97% of customers. Reactions use one uniform and one
normal number per customer whatever the action, so agents that see the same customers in the same
order face the same draws (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nextbest.config import RewardConfig
from nextbest.envs.contextual import ContextualScenario, sigmoid

REWARD_KINDS = {"conversion": 0.5, "revenue": 0.25, "amount": 0.25}
FORMS = ["linear", "interactions", "thresholds", "smooth", "segments", "same-best"]
NUMERIC_KINDS = ["normal", "lognormal", "count", "waiting", "share", "constant"]
MULTI_SIZES = [(2, 2), (3, 2), (3, 3), (4, 2), (4, 3), (4, 4), (2, 2, 2), (3, 2, 2), (3, 3, 2)]
CATEGORICAL_NAMES = ["region", "device", "browser", "segment", "source", "plan"]
NOISE_LEVELS = ("low", "medium", "high")
CALIBRATION_ROWS = 2000
SAME_BEST_SHARE = 0.97  # in a same-best world, one action is best for about this share of customers


@dataclass
class _Numeric:
    name: str
    kind: str
    parameters: tuple[float, ...]
    relevant: bool


@dataclass
class _Categorical:
    name: str
    probabilities: np.ndarray

    @property
    def values(self) -> list[str]:
        return [f"{self.name[0]}{i}" for i in range(len(self.probabilities))]


@dataclass
class _Term:
    """One contribution to the taste: what it reads from the context, and its (r,) or (k, r) weights."""

    kind: str  # categorical | numeric | product | category-numeric | threshold | smooth | segment | segment-numeric
    columns: tuple[int, ...]
    weights: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


class World(ContextualScenario):
    """A generated world; `World(17)` is `make_scenario("world:17")`. Its knobs are in `kind`."""

    name = "world"
    summary = "a generated world, world:<seed>: columns, actions, reward, form and noise drawn from the seed"
    categorical: dict[str, list[str]]
    numeric: list[str]
    sizes: tuple[int, ...]

    def __init__(self, world_seed: int = 0):
        rng = np.random.default_rng([int(world_seed), *map(ord, "nextbest-world")])
        self.seed = int(world_seed)
        self.name = f"world:{self.seed}"  # a world's name is its own
        self._draw_columns(rng)
        self._draw_actions(rng)
        self._draw_reward(rng)
        self.numeric_bounds = (-1e6, 1e6)  # normal scores may be negative
        super().__init__(self.seed)
        self._draw_form(rng)
        self._calibrate()

    # --- drawing the knobs -------------------------------------------------------------------
    def _draw_columns(self, rng: np.random.Generator) -> None:
        n_categorical, n_numeric = int(rng.integers(1, 7)), int(rng.integers(1, 11))
        self._categorical = []
        for name in rng.choice(CATEGORICAL_NAMES, n_categorical, replace=False):
            k = int(np.round(np.exp(rng.uniform(np.log(2), np.log(30)))))
            weights = (np.arange(1, k + 1) ** -rng.uniform(0.5, 1.6))[rng.permutation(k)]  # Zipf: skewed, rare tail
            self._categorical.append(_Categorical(str(name), weights / weights.sum()))
        self._numeric = []
        for i in range(n_numeric):
            kind = str(rng.choice(NUMERIC_KINDS, p=[0.2, 0.25, 0.2, 0.15, 0.1, 0.1]))
            self._numeric.append(_Numeric(f"{_NUMERIC_PREFIX[kind]}_{i}", kind, _numeric_parameters(kind, rng),
                                          relevant=bool(rng.random() < 0.65)))
        self.categorical = {c.name: c.values for c in self._categorical}
        self.numeric = [c.name for c in self._numeric]

    def _draw_actions(self, rng: np.random.Generator) -> None:
        if rng.random() < 0.65:
            self.sizes = (int(np.round(np.exp(rng.uniform(np.log(2), np.log(32))))),)
            self._interactions = False
        else:
            self.sizes = MULTI_SIZES[int(rng.integers(len(MULTI_SIZES)))]
            self._interactions = bool(rng.random() < 0.5)

    def _draw_reward(self, rng: np.random.Generator) -> None:
        self._reward_kind = str(rng.choice(list(REWARD_KINDS), p=list(REWARD_KINDS.values())))
        self._base_rate = float(np.exp(rng.uniform(np.log(0.01), np.log(0.30))))
        self._noise = float(rng.uniform())
        self._amount_sigma = 0.1 + 1.2 * self._noise  # spread of the amounts around their mean
        self._scale = 4.0 ** (1 - self._noise) * 0.3**self._noise  # logit spread: 4 (near-deterministic) … 0.3
        n_joint = int(np.prod(self.sizes))
        self.reaction = "bernoulli" if self._reward_kind == "conversion" else "revenue"
        self._discount = np.zeros(n_joint)
        if self._reward_kind == "revenue":
            # the basket: a log-normal column (the first one, or the first column turned into one)
            basket = next((c for c in self._numeric if c.kind == "lognormal"), None)
            if basket is None:
                first = self._numeric[0]
                basket = self._numeric[0] = _Numeric(f"amount_{0}", "lognormal", _numeric_parameters("lognormal", rng),
                                                     first.relevant)
                self.numeric = [c.name for c in self._numeric]
            mu, sigma = basket.parameters
            basket.parameters = (mu, min(sigma, 1.2))  # revenue of heavier tails is a lottery, not a decision
            self._basket = basket.name
            levels = np.round(rng.choice(np.arange(1, 7) * 0.05, self.sizes[0]), 2)
            levels[0] = 0.0  # choice 0, level 0: no discount
            first_choice = np.unravel_index(np.arange(n_joint), self.sizes)[0]
            self._discount = levels[first_choice]
            mean_basket = float(np.exp(mu + min(sigma, 1.2) ** 2 / 2))
            costs = np.round(rng.uniform(0.0, 0.02, n_joint) * mean_basket, 2)
            costs[0] = 0.0
            self._sensitivity = float(rng.uniform(5.0, 15.0))  # logit per unit discount for the most sensitive
            self.reward_config = RewardConfig(reward_name="revenue-minus-cost", action_costs=costs.tolist())
        elif self._reward_kind == "amount":
            self._amount_mean = float(np.log(rng.uniform(10.0, 200.0)))

    def _draw_form(self, rng: np.random.Generator) -> None:
        self._form = FORMS[int(rng.integers(len(FORMS)))]
        self._rank = r = int(rng.integers(2, 5))
        relevant = [i for i, c in enumerate(self._numeric) if c.relevant]
        if not relevant and self._form in ("interactions", "thresholds", "smooth", "segments"):
            self._numeric[0].relevant = True  # these forms need a number to act on
            relevant = [0]
        linear = 0.6 if self._form in ("linear", "same-best") else 0.35
        terms = [_Term("categorical", (j,), linear * rng.standard_normal((len(c.probabilities), r)))
                 for j, c in enumerate(self._categorical)]
        terms += [_Term("numeric", (i,), linear * rng.standard_normal(r)) for i in relevant]
        for _ in range(int(rng.integers(1, 4))):
            terms.append(self._form_term(rng, relevant, r))
        self._terms = [t for t in terms if t is not None]
        self._action_bias = self._joint(rng, 1)[:, 0] * 0.5  # choices' own effects (and their interactions)
        self._action_taste = self._joint(rng, r)
        if self._reward_kind == "amount":
            self._amount_taste = self._joint(rng, r)
        undiscounted = np.flatnonzero(self._discount == 0)  # every action in worlds without discounts
        self._dominant = int(rng.choice(undiscounted)) if self._form == "same-best" else None
        self._bonus = 0.0
        self._taste_weight = 0.3 if self._form == "same-best" else 1.0  # there the context matters little

    def _form_term(self, rng: np.random.Generator, relevant: list[int], r: int) -> _Term | None:
        """One term of the world's form (None for the forms made of the linear terms alone)."""
        strong = 1.5 * rng.standard_normal(r)
        pick = lambda: int(rng.choice(relevant))
        if self._form == "interactions":
            if len(relevant) >= 2 and rng.random() < 0.5:
                i, j = rng.choice(relevant, 2, replace=False)
                return _Term("product", (int(i), int(j)), strong)
            c = int(rng.integers(len(self._categorical)))
            return _Term("category-numeric", (c, pick()), 1.2 * rng.standard_normal((len(self._categorical[c].probabilities), r)))
        if self._form == "thresholds":
            return _Term("threshold", (pick(),), strong, {"at": float(rng.uniform(-0.5, 1.5))})
        if self._form == "smooth":
            return _Term("smooth", (pick(),), strong, {"shape": str(rng.choice(["tanh", "sine", "bump", "square"]))})
        if self._form == "segments":
            c = int(rng.integers(len(self._categorical)))
            k = len(self._categorical[c].probabilities)
            members = rng.choice(k, min(k - 1, int(rng.integers(1, 4))) or 1, replace=False)
            kind = "segment-numeric" if rng.random() < 0.5 else "segment"
            return _Term(kind, (c, pick()), 2.0 * rng.standard_normal(r), {"members": members})
        return None

    def _joint(self, rng: np.random.Generator, r: int) -> np.ndarray:
        """(n_joint, r) action embeddings: a sum over the choices, plus pairwise interactions if drawn."""
        parts = [rng.standard_normal((size, r)) for size in self.sizes]
        choices = self.actions.from_joint(np.arange(self.actions.n_joint))
        embedding = sum(part[choices[:, j]] for j, part in enumerate(parts)) / np.sqrt(len(self.sizes))
        if self._interactions:
            for j in range(len(self.sizes)):
                for l in range(j + 1, len(self.sizes)):
                    pair = 0.8 * rng.standard_normal((self.sizes[j], self.sizes[l], r))
                    embedding = embedding + pair[choices[:, j], choices[:, l]]
        return np.asarray(embedding)

    def _calibrate(self) -> None:
        """Standardize the taste, then set the intercept α (and a same-best world's bonus) on a fixed sample."""
        sample = self.sample_contexts(CALIBRATION_ROWS, np.random.default_rng([self.seed, 7]))
        values = self._transformed(sample)
        self._center, self._spread = values.mean(axis=0), values.std(axis=0) + 1e-9
        raw = self._raw_taste(sample)
        self._taste_mean, self._taste_std = raw.mean(axis=0), raw.std(axis=0) + 1e-9
        taste = (raw - self._taste_mean) / self._taste_std
        self._intercept = 0.0
        self._set_intercept(taste)
        if self._dominant is None:
            return
        for _ in range(3):  # the smallest bonus that makes the dominant action best for SAME_BEST_SHARE; α again
            low, high = 0.0, 12.0 / self._scale  # at most 12 logits
            for _ in range(20):
                self._bonus = (low + high) / 2
                best = self._expected_rewards(sample, taste).argmax(axis=1)
                low, high = (low, self._bonus) if (best == self._dominant).mean() >= SAME_BEST_SHARE else (self._bonus, high)
            self._bonus = high
            self._set_intercept(taste)

    def _set_intercept(self, taste: np.ndarray) -> None:
        """α such that the purchase rate under uniformly random actions is the base rate (Newton's method)."""
        self._intercept = 0.0
        logit = self._logits(taste)
        alpha = float(np.log(self._base_rate / (1 - self._base_rate)) - np.median(logit))
        for _ in range(30):
            p = sigmoid(logit + alpha)
            if abs(p.mean() - self._base_rate) < 1e-4 * self._base_rate:
                break
            alpha -= float(np.clip((p.mean() - self._base_rate) / max(float((p * (1 - p)).mean()), 1e-6), -2.0, 2.0))
        self._intercept = alpha

    # --- customers --------------------------------------------------------------------------------
    def sample_contexts(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        columns: dict[str, Any] = {}
        for c in self._categorical:
            columns[c.name] = np.asarray(c.values, dtype=object)[rng.choice(len(c.probabilities), size=n, p=c.probabilities)]
        for c in self._numeric:
            columns[c.name] = _sample_numeric(c, n, rng)
        return pd.DataFrame(columns)

    def _transformed(self, contexts: pd.DataFrame) -> np.ndarray:
        """(n, n_numeric) each number on its natural scale (log of amounts, log1p of counts and days)."""
        out = np.empty((len(contexts), len(self._numeric)))
        for i, c in enumerate(self._numeric):
            x = contexts[c.name].to_numpy(float)
            if c.kind == "lognormal":
                out[:, i] = np.log(np.maximum(x, 1e-2))
            elif c.kind in ("count", "waiting"):
                out[:, i] = np.log1p(np.maximum(x, 0.0))
            elif c.kind == "constant":
                out[:, i] = (x != c.parameters[0]).astype(float)
            else:
                out[:, i] = x
        return out

    def _raw_taste(self, contexts: pd.DataFrame) -> np.ndarray:
        n = len(contexts)
        z = (self._transformed(contexts) - self._center) / self._spread  # (n, n_numeric)
        codes = [pd.Index(c.values).get_indexer(contexts[c.name].astype(str)) for c in self._categorical]
        taste = np.zeros((n, self._rank))
        for t in self._terms:
            if t.kind == "categorical":
                taste += t.weights[codes[t.columns[0]]]
            elif t.kind == "numeric":
                taste += z[:, t.columns[0], None] * t.weights
            elif t.kind == "product":
                taste += (z[:, t.columns[0]] * z[:, t.columns[1]])[:, None] * t.weights
            elif t.kind == "category-numeric":
                taste += t.weights[codes[t.columns[0]]] * z[:, t.columns[1], None]
            elif t.kind == "threshold":
                taste += (z[:, t.columns[0]] > t.extra["at"])[:, None] * t.weights
            elif t.kind == "smooth":
                taste += _smooth(t.extra["shape"], z[:, t.columns[0]])[:, None] * t.weights
            else:  # segment, segment-numeric: only the members of a few categories feel it
                member = np.isin(codes[t.columns[0]], t.extra["members"]).astype(float)
                effect = member if t.kind == "segment" else member * (1.0 + z[:, t.columns[1]])
                taste += effect[:, None] * t.weights
        return taste

    def taste(self, contexts: pd.DataFrame) -> np.ndarray:
        """(n, r) the customers' latent taste, standardized over the world's customers."""
        return (self._raw_taste(contexts) - self._taste_mean) / self._taste_std

    # --- the oracle ------------------------------------------------------------------------------
    def purchase_probabilities(self, contexts: pd.DataFrame) -> np.ndarray:
        """(n, n_joint) probability of a conversion (a purchase) under every joint action."""
        return self._purchase_probabilities(self.taste(contexts))

    def _purchase_probabilities(self, taste: np.ndarray) -> np.ndarray:
        return sigmoid(self._logits(taste))

    def _logits(self, taste: np.ndarray) -> np.ndarray:
        logit = self._intercept + self._scale * (
            self._action_bias + self._taste_weight * taste @ self._action_taste.T / np.sqrt(self._rank)
        )
        if self._dominant is not None:
            logit[:, self._dominant] += self._scale * self._bonus
        if self._reward_kind == "revenue":  # a discount persuades only the price-sensitive
            sensitive = sigmoid(1.5 * taste[:, 0] - 0.5)
            logit = logit + self._sensitivity * sensitive[:, None] * self._discount[None, :]
        return logit

    def _log_amounts(self, taste: np.ndarray) -> np.ndarray:
        """(n, n_joint) mean log amount of a purchase (zero-inflated amount worlds)."""
        return self._amount_mean + 0.3 * min(self._scale, 1.0) * (taste @ self._amount_taste.T / np.sqrt(self._rank))

    def expected_reactions(self, contexts: pd.DataFrame) -> np.ndarray:
        return self._expected_reactions(contexts, self.taste(contexts))

    def _expected_reactions(self, contexts: pd.DataFrame, taste: np.ndarray) -> np.ndarray:
        p = self._purchase_probabilities(taste)
        if self._reward_kind == "revenue":
            return p * contexts[self._basket].to_numpy(float)[:, None] * (1.0 - self._discount[None, :])
        if self._reward_kind == "amount":
            return p * np.exp(self._log_amounts(taste) + self._amount_sigma**2 / 2)
        return p

    def _expected_rewards(self, contexts: pd.DataFrame, taste: np.ndarray) -> np.ndarray:
        return self.reward.expected_reward(self._expected_reactions(contexts, taste))

    def sample_reactions(self, contexts: pd.DataFrame, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n,) reactions; one uniform and one normal number per customer whatever the actions."""
        rows, joint, taste = np.arange(len(contexts)), self.actions.to_joint(actions), self.taste(contexts)
        u, z = rng.random(len(contexts)), rng.standard_normal(len(contexts))
        bought = u < self._purchase_probabilities(taste)[rows, joint]
        if self._reward_kind == "revenue":
            basket = contexts[self._basket].to_numpy(float) * (1.0 - self._discount[joint])
            return np.where(bought, basket * np.exp(self._amount_sigma * z - self._amount_sigma**2 / 2), 0.0)
        if self._reward_kind == "amount":
            return np.where(bought, np.exp(self._log_amounts(taste)[rows, joint] + self._amount_sigma * z), 0.0)
        return bought.astype(np.float64)

    @property
    def kind(self) -> dict[str, Any]:
        """The drawn knobs, to group results by."""
        numeric_kinds = [c.kind for c in self._numeric]
        return {
            "reward": self._reward_kind,
            "form": self._form,
            "actions": "single" if len(self.sizes) == 1 else "multi",
            "interactions": self._interactions,
            "sizes": list(self.sizes),
            "n_joint": self.actions.n_joint,
            "categorical": len(self._categorical),
            "cardinalities": [len(c.probabilities) for c in self._categorical],
            "rare_categories": int(sum((c.probabilities < 0.01).sum() for c in self._categorical)),  # under 1% each
            "numeric": len(self._numeric),
            "numeric_kinds": {k: numeric_kinds.count(k) for k in NUMERIC_KINDS if k in numeric_kinds},
            "irrelevant": sum(not c.relevant for c in self._numeric),
            "base_rate": round(self._base_rate, 4),
            "noise": NOISE_LEVELS[min(2, int(3 * self._noise))],
            "noise_level": round(self._noise, 3),
        }


_NUMERIC_PREFIX = {"normal": "score", "lognormal": "amount", "count": "count", "waiting": "days", "share": "share",
                   "constant": "flag"}


def _numeric_parameters(kind: str, rng: np.random.Generator) -> tuple[float, ...]:
    if kind == "normal":
        return (float(rng.uniform(-10.0, 100.0)), float(np.exp(rng.uniform(0.0, np.log(30.0)))))  # mean, sd
    if kind == "lognormal":
        return (float(rng.uniform(2.0, 6.0)), float(rng.uniform(0.6, 1.8)))  # log mean, log sd
    if kind == "count":
        return (float(np.exp(rng.uniform(np.log(0.3), np.log(20.0)))), float(rng.uniform(0.5, 5.0)))  # mean, dispersion
    if kind == "waiting":
        return (float(rng.uniform(1.0, 60.0)),)  # mean days
    if kind == "share":
        return (float(rng.uniform(0.3, 5.0)), float(rng.uniform(0.3, 5.0)))  # beta a, b
    return (float(rng.choice([0.0, 1.0, 9.99, 30.0])), float(rng.uniform(0.003, 0.02)))  # value, share of exceptions


def _sample_numeric(column: _Numeric, n: int, rng: np.random.Generator) -> np.ndarray:
    a = column.parameters
    if column.kind == "normal":
        return np.round(rng.normal(a[0], a[1], n), 2)
    if column.kind == "lognormal":
        return np.round(np.minimum(rng.lognormal(a[0], a[1], n), 9e5), 2)
    if column.kind == "count":  # negative binomial: gamma-mixed Poisson, over-dispersed
        return rng.poisson(rng.gamma(a[1], a[0] / a[1], n)).astype(float)
    if column.kind == "waiting":
        return np.round(rng.exponential(a[0], n), 1)
    if column.kind == "share":
        return np.round(rng.beta(a[0], a[1], n), 3)
    return np.where(rng.random(n) < a[1], a[0] + 1.0, a[0])


def _smooth(shape: str, z: np.ndarray) -> np.ndarray:
    if shape == "tanh":
        return np.tanh(2.0 * z)
    if shape == "sine":
        return np.sin(1.5 * z)
    if shape == "bump":
        return 2.0 * np.exp(-(z**2)) - 1.0
    return np.minimum(z**2, 9.0) - 1.0
