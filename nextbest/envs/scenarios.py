"""The built-in personalization scenarios. Each is a known world: tests and benchmarks score
agents against its oracle. `world_seed` draws other worlds of the same shape."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.config import RewardConfig
from nextbest.envs.contextual import ContextualScenario, choice, one_hot, sigmoid


class OptimusPoC(ContextualScenario):
    """Google Optimus' proof-of-concept shape: 5 features (2 categorical, 3 numeric), 16 actions,
    Bernoulli conversion. Each customer has a latent taste (price sensitivity, engagement) that
    is a non-linear function of the context (saturating in basket value, a threshold in recency,
    device × browser effects); each of the 16 offers appeals to one direction of taste, so the
    best offer changes smoothly across customers and every offer is best for someone."""

    name = "optimus-poc"
    summary = "5 features (browser, device + 3 numeric), 16 actions, Bernoulli conversion, non-linear"
    categorical = {"browser": ["chrome", "firefox", "safari"], "device": ["android", "desktop", "iphone", "tablet"]}
    numeric = ["basket_value", "visits_30d", "days_since_visit"]
    sizes = (16,)

    def __init__(self, world_seed: int = 0):
        super().__init__(world_seed)
        w = self.world
        # Four strong offers speak to the four quadrants of taste; twelve weaker ones to random directions.
        hero = w.permutation(16)[:4]
        angles = w.uniform(0, 2 * np.pi, 16)
        angles[hero] = np.pi / 4 + np.pi / 2 * np.arange(4) + w.uniform(-0.2, 0.2, 4)
        strength = np.where(np.isin(np.arange(16), hero), 2.5, 0.7)
        self.appeal = strength * np.stack([np.cos(angles), np.sin(angles)])  # (2, 16)
        self.intercept = np.where(np.isin(np.arange(16), hero), -1.0, -1.8) + 0.2 * w.standard_normal(16)
        self.browser_taste = 0.8 * w.standard_normal((3, 2))
        self.device_taste = 0.8 * w.standard_normal((4, 2))

    def sample_contexts(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "browser": choice(rng, ["chrome", "safari", "firefox"], [0.5, 0.3, 0.2], n),
                "device": choice(rng, ["android", "iphone", "desktop", "tablet"], [0.35, 0.3, 0.25, 0.1], n),
                "basket_value": np.round(rng.lognormal(3.5, 0.6, n), 2),
                "visits_30d": rng.poisson(3.0, n).astype(float),
                "days_since_visit": np.round(rng.exponential(10.0, n), 1),
            }
        )

    def taste(self, contexts: pd.DataFrame) -> np.ndarray:
        """(n, 2) latent taste: price sensitivity and engagement."""
        basket = (np.log(contexts["basket_value"].to_numpy(float)) - 3.5) / 0.6
        visits = (contexts["visits_30d"].to_numpy(float) - 3.0) / np.sqrt(3.0)
        lapsed = (contexts["days_since_visit"].to_numpy(float) > 14.0).astype(float)
        price = np.tanh(1.5 * basket) - 0.5 * lapsed
        engagement = np.tanh(visits) * (1.0 - lapsed) - 0.8 * lapsed
        categorical = (
            one_hot(contexts["browser"], self.categorical["browser"]) @ self.browser_taste
            + one_hot(contexts["device"], self.categorical["device"]) @ self.device_taste
        )
        return np.stack([price, engagement], axis=1) + categorical

    def expected_reactions(self, contexts: pd.DataFrame) -> np.ndarray:
        return sigmoid(self.intercept + self.taste(contexts) @ self.appeal)


class Discount(ContextualScenario):
    """Show a discount (1) or not (0) at checkout. Loyal customers buy anyway, so a discount only
    costs money there; price-sensitive new customers on mobile with large baskets are persuaded.
    The reaction is the revenue paid (the basket less 15% when discounted); the reward subtracts
    the cost of serving the offer."""

    name = "discount"
    summary = "show a 15% discount or not (action space [2]); revenue reward, the discount has a cost"
    categorical = {"loyalty": ["new", "regular", "vip"], "device": ["desktop", "mobile"]}
    numeric = ["basket_value", "visits_30d", "days_since_purchase"]
    sizes = (2,)
    reaction = "revenue"
    reward_config = RewardConfig(reward_name="revenue-minus-cost", action_costs=[0.0, 1.0])
    discount = 0.15

    def __init__(self, world_seed: int = 0):
        super().__init__(world_seed)
        w = self.world
        self.base = np.array([-1.6, -0.4, 1.2]) + 0.2 * w.standard_normal(3)  # by loyalty
        self.uplift = np.array([1.4, 0.7, 0.05]) * np.exp(0.2 * w.standard_normal(3))

    def sample_contexts(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "loyalty": choice(rng, ["new", "regular", "vip"], [0.45, 0.4, 0.15], n),
                "device": choice(rng, ["mobile", "desktop"], [0.6, 0.4], n),
                "basket_value": np.round(rng.lognormal(4.0, 0.5, n), 2),
                "visits_30d": rng.poisson(4.0, n).astype(float),
                "days_since_purchase": np.round(rng.exponential(30.0, n), 1),
            }
        )

    def purchase_probabilities(self, contexts: pd.DataFrame) -> np.ndarray:
        """(n, 2) probability of buying without and with the discount."""
        loyalty = pd.Categorical(contexts["loyalty"].astype(str), categories=self.categorical["loyalty"]).codes
        mobile = (contexts["device"].astype(str) == "mobile").to_numpy(float)
        basket = (np.log(contexts["basket_value"].to_numpy(float)) - 4.0) / 0.5
        visits = (contexts["visits_30d"].to_numpy(float) - 4.0) / 2.0
        recency = np.log1p(contexts["days_since_purchase"].to_numpy(float)) / 4.0
        logit = self.base[loyalty] + 0.5 * np.tanh(visits) - 0.8 * recency - 0.3 * basket
        # price sensitivity grows with the basket, on mobile, and fades with loyalty
        uplift = self.uplift[loyalty] * (1.0 + 0.5 * mobile) * sigmoid(2.0 * basket)
        return np.stack([sigmoid(logit), sigmoid(logit + uplift)], axis=1)

    def expected_reactions(self, contexts: pd.DataFrame) -> np.ndarray:
        basket = contexts["basket_value"].to_numpy(float)[:, None]
        return self.purchase_probabilities(contexts) * basket * np.array([1.0, 1.0 - self.discount])

    def sample_reactions(self, contexts: pd.DataFrame, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        shown = actions[:, 0]
        p = self.purchase_probabilities(contexts)[np.arange(len(shown)), shown]
        bought = rng.random(len(p)) < p
        paid = contexts["basket_value"].to_numpy(float) * np.where(shown == 1, 1.0 - self.discount, 1.0)
        return np.where(bought, paid, 0.0)


class MultiOffer(ContextualScenario):
    """Two choices at once (action space [4, 4]): which offer (none, free shipping, 10% off,
    bundle) and which channel (email, sms, push, banner). Their effects interact: some offers
    only work in some channels, and the best pair depends on the customer."""

    name = "multi-offer"
    summary = "offer × channel (action space [4, 4]) with interacting effects; Bernoulli conversion"
    categorical = {"segment": ["bargain", "family", "premium", "student"], "device": ["desktop", "mobile"]}
    numeric = ["age", "basket_value", "email_opens_30d"]
    sizes = (4, 4)

    def __init__(self, world_seed: int = 0):
        super().__init__(world_seed)
        w = self.world
        self.interaction = 0.6 * w.standard_normal((4, 4))
        self.segment_offer = 0.7 * w.standard_normal((4, 4))
        self.device_channel = 0.7 * w.standard_normal((2, 4))
        self.age_channel = 0.5 * w.standard_normal(4)
        self.basket_offer = 0.5 * w.standard_normal(4)
        self.opens_channel = np.array([0.8, 0.0, 0.0, -0.2]) + 0.2 * w.standard_normal(4)

    def sample_contexts(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "segment": choice(rng, ["bargain", "family", "premium", "student"], [0.3, 0.3, 0.2, 0.2], n),
                "device": choice(rng, ["mobile", "desktop"], [0.6, 0.4], n),
                "age": np.round(np.clip(rng.normal(40, 13, n), 18, 90)),
                "basket_value": np.round(rng.lognormal(3.8, 0.5, n), 2),
                "email_opens_30d": rng.poisson(2.0, n).astype(float),
            }
        )

    def expected_reactions(self, contexts: pd.DataFrame) -> np.ndarray:
        segment = one_hot(contexts["segment"], self.categorical["segment"])
        device = one_hot(contexts["device"], self.categorical["device"])
        age = (contexts["age"].to_numpy(float)[:, None] - 40.0) / 13.0
        basket = (np.log(contexts["basket_value"].to_numpy(float))[:, None] - 3.8) / 0.5
        opens = np.tanh(contexts["email_opens_30d"].to_numpy(float)[:, None] - 1.0)
        offer = segment @ self.segment_offer + basket * self.basket_offer  # (n, 4)
        channel = device @ self.device_channel + np.tanh(age) * self.age_channel + opens * self.opens_channel
        logits = -2.0 + offer[:, :, None] + channel[:, None, :] + self.interaction[None]  # (n, offer, channel)
        return sigmoid(logits).reshape(len(contexts), 16)


SCENARIOS: dict[str, type[ContextualScenario]] = {s.name: s for s in (OptimusPoC, Discount, MultiOffer)}
