"""Customer tables for demos, tests and benchmarks; nothing is downloaded.

- `crm_customers(n, seed)`: a generated CRM table whose columns depend on each other the way they
  do in a retailer's data (segment → spend and frequency, frequency → recency, age → channel,
  recency and tenure → churn), with skewed money columns, integer counts and empty cells.
  `wide=True` adds 17 columns (spend per product category, campaign opens, device, payment,
  loyalty points, …) for a 30-column table.
- `cdnow_customers()`: a real table, one row per customer of the CDNOW music store (23,570 people
  who first bought in Q1 1997, followed to mid-1998), derived from the transactions that the
  Lifetimes package ships; see data/README.md for provenance and licence.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.errors import ConfigError

DATA = Path(__file__).parent / "data"
SEGMENTS = ["bronze", "silver", "gold", "platinum"]
CHANNELS = ["email", "sms", "app", "direct_mail"]
CATEGORIES = ["fashion", "beauty", "home", "electronics", "sports", "books", "toys", "grocery"]


def crm_customers(n: int = 5000, seed: int = 0, *, wide: bool = False) -> pd.DataFrame:
    """(n, 13) or, with `wide`, (n, 30) generated customers (see the module docstring)."""
    rng = np.random.default_rng(seed)
    segment = rng.choice(4, size=n, p=[0.5, 0.3, 0.15, 0.05])
    age = np.clip(np.round(rng.normal(44 - 2 * segment, 13)), 18, 90)
    tenure = np.round(1 + rng.gamma(2.0, 8.0 + 6.0 * segment)).astype(int)  # months
    frequency = rng.poisson(np.array([2.0, 5.0, 10.0, 20.0])[segment] * (0.6 + 0.4 * np.minimum(tenure, 60) / 60))
    average_order = np.round(rng.lognormal(np.log([35.0, 50.0, 70.0, 110.0])[segment], 0.45), 2)
    monetary = np.round(frequency * average_order * rng.lognormal(0.0, 0.15, n), 2)
    recency = np.where(frequency > 0, rng.exponential(365.0 / (frequency + 1.0)), rng.uniform(365, 730, n)).astype(int)
    young = 1 / (1 + np.exp((age - 38) / 6))
    channel_p = np.stack([0.45 - 0.25 * young, 0.15 + 0.1 * young, 0.1 + 0.35 * young, 0.3 - 0.2 * young], axis=1)
    channel = _choose(rng, channel_p)
    opt_in = rng.random(n) < np.where(channel == 0, 0.95, 0.6)
    churn_logit = -1.2 + 0.006 * recency - 0.15 * frequency - 0.02 * np.minimum(tenure, 48) - 0.3 * segment
    churned = rng.random(n) < 1 / (1 + np.exp(-churn_logit))
    satisfaction = np.clip(np.round(rng.normal(3.2 + 0.4 * segment - 1.0 * churned, 0.9)), 1, 5)
    table = pd.DataFrame(
        {
            "segment": np.array(SEGMENTS)[segment],
            "region": rng.choice(["north", "south", "east", "west"], size=n, p=[0.3, 0.25, 0.25, 0.2]),
            "age": np.where(rng.random(n) < 0.08, np.nan, age),  # not everyone gives an age
            "tenure_months": tenure,
            "recency_days": recency,
            "frequency": frequency,
            "monetary": monetary,
            "average_order_value": np.where(frequency > 0, average_order, np.nan),  # no orders, no average
            "channel_preference": np.array(CHANNELS)[channel],
            "email_opt_in": np.where(opt_in, "yes", "no"),
            "satisfaction": np.where(rng.random(n) < 0.3, np.nan, satisfaction),  # survey not answered
            "churned": np.where(churned, "yes", "no"),
        }
    )
    table.insert(11, "support_tickets", rng.poisson(0.3 + 0.8 * churned + 0.1 * segment))
    if wide:
        table = pd.concat([table, _wide_columns(rng, segment, frequency, monetary, channel, age)], axis=1)
    return table


def _wide_columns(rng, segment, frequency, monetary, channel, age) -> pd.DataFrame:
    n = len(segment)
    preference = rng.dirichlet(np.ones(len(CATEGORIES)) * 0.6, size=4)[segment]  # segments like different things
    shares = np.stack([rng.dirichlet(0.5 + 8 * p) for p in preference]) if n else np.zeros((0, len(CATEGORIES)))
    spend = np.round(shares * monetary[:, None], 2)
    opens_rate = np.clip(0.15 + 0.35 * (channel == 0) + 0.05 * segment, 0, 0.95)
    columns = {f"spend_{c}": spend[:, j] for j, c in enumerate(CATEGORIES)}
    columns |= {f"opens_campaign_{k}": rng.binomial(3, opens_rate) for k in range(1, 5)}
    columns["preferred_category"] = np.where(frequency > 0, np.array(CATEGORIES)[spend.argmax(axis=1)], "none")
    mobile = 1 / (1 + np.exp((age - 40) / 8))
    columns["device"] = np.array(["desktop", "mobile", "tablet"])[_choose(rng, np.stack(
        [0.6 - 0.4 * mobile, 0.3 + 0.45 * mobile, 0.1 - 0.05 * mobile], axis=1))]
    columns["payment_method"] = rng.choice(["card", "paypal", "invoice", "gift_card"], size=n, p=[0.5, 0.3, 0.15, 0.05])
    columns["loyalty_points"] = np.round(monetary * (1 + 0.5 * segment) + rng.normal(0, 20, n)).clip(0).astype(int)
    columns["discount_share"] = np.round(rng.beta(1 + 3 * (segment == 0), 6, n), 3)
    return pd.DataFrame(columns)


def _choose(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """(n,) one category per row from (n, k) probabilities."""
    cumulative = np.cumsum(probabilities / probabilities.sum(axis=1, keepdims=True), axis=1)
    return (rng.random((len(probabilities), 1)) > cumulative).sum(axis=1).clip(max=probabilities.shape[1] - 1)


def cdnow_customers() -> pd.DataFrame:
    """(23570, 10) real CDNOW customers: cohort, first order, repeat orders, recency, spend, activity in 1998 H1."""
    return pd.read_csv(DATA / "cdnow_customers.csv.gz")


DATASETS: dict[str, tuple[str, Callable[[int | None, int], pd.DataFrame]]] = {
    "crm": ("generated CRM table, 13 columns (segment, RFM, channel, churn, …), any number of rows",
            lambda n, seed: crm_customers(n or 5000, seed)),
    "crm-wide": ("generated CRM table, 30 columns (adds spend per category, campaign opens, device, …)",
                 lambda n, seed: crm_customers(n or 5000, seed, wide=True)),
    "cdnow": ("real: 23,570 CDNOW customers (1997–98), 10 columns; rows are a seeded subsample when --rows is given",
              lambda n, seed: _subsample(cdnow_customers(), n, seed)),
}


def load_dataset(name: str, rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    if rows is not None and rows < 1:
        raise ConfigError(f"--rows must be positive, got {rows}")
    return DATASETS[name][1](rows, seed)


def _subsample(table: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    if n is None or n >= len(table):
        return table
    return table.sample(n=n, random_state=seed).reset_index(drop=True)
