"""The quality report: exact metric values against independent computations, and detection / privacy
behaving as they must on copies, resamples and shuffled tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from nextbest.errors import ConfigError, DataError, SchemaError
from nextbest.generative.datasets import crm_customers
from nextbest.generative.quality import quality_report, total_variation


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return crm_customers(4000, seed=2)


def _shuffled(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: table[c].to_numpy()[rng.permutation(len(table))] for c in table.columns})


def test_column_shapes_and_pair_trends_match_independent_computations():
    rng = np.random.default_rng(0)
    real = pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(size=300), "c": rng.choice(list("ab"), 300)})
    real["y"] += real["x"]
    synthetic = pd.DataFrame({"x": rng.normal(0.3, 1, 200), "y": rng.normal(size=200), "c": rng.choice(list("abb"), 200)})
    report = quality_report(real, synthetic, target="c")
    shapes = {s["column"]: s for s in report.column_shapes}
    assert shapes["x"]["score"] == pytest.approx(1 - ks_2samp(real["x"], synthetic["x"]).statistic)
    p, q = real["c"].value_counts(normalize=True), synthetic["c"].value_counts(normalize=True)
    assert shapes["c"]["score"] == pytest.approx(1 - 0.5 * np.abs(p - q[p.index]).sum())
    xy = next(pair for pair in report.pair_trends if {pair["column_a"], pair["column_b"]} == {"x", "y"})
    r, s = np.corrcoef(real["x"], real["y"])[0, 1], np.corrcoef(synthetic["x"], synthetic["y"])[0, 1]
    assert xy["score"] == pytest.approx(1 - abs(r - s) / 2)
    assert report.scores["quality"] == pytest.approx((report.scores["column_shapes"] + report.scores["pair_trends"]) / 2)


def test_total_variation_of_two_count_vectors():
    assert total_variation([1, 1, 2], [2, 0, 2]) == pytest.approx(0.25)
    assert total_variation([5, 0], [0, 3]) == pytest.approx(1.0)


def test_detection_auc_is_near_half_for_a_resample_of_the_same_table(customers):
    half = len(customers) // 2
    report = quality_report(customers.iloc[:half], customers.iloc[half:].reset_index(drop=True))
    assert 0.42 < report.detection["auc"] < 0.58
    assert report.scores["column_shapes"] > 0.95 and report.scores["pair_trends"] > 0.93


def test_detection_auc_is_near_one_for_shuffled_columns(customers):
    report = quality_report(customers, _shuffled(customers, 0))
    assert report.detection["auc"] > 0.9
    assert report.scores["column_shapes"] == pytest.approx(1.0)  # marginals untouched …
    assert report.scores["pair_trends"] < 0.93  # … relations gone
    assert report.ml_efficacy["train_synthetic"] < report.ml_efficacy["train_real"] - 0.1  # churn no longer predictable


def test_privacy_flags_copies_of_real_rows(customers):
    train, holdout = customers.iloc[:3000], customers.iloc[3000:]
    copied = quality_report(train, train.sample(1000, random_state=0), holdout=holdout)
    assert copied.privacy["exact_copies_synthetic"] == 1.0
    assert copied.privacy["exact_copies_holdout"] < 0.05
    assert copied.scores["privacy"] == 0.0
    fresh = quality_report(train, crm_customers(1000, seed=9), holdout=holdout)
    assert fresh.scores["privacy"] > 0.9


def test_ml_efficacy_regression_target_and_unknown_target(customers):
    report = quality_report(customers.iloc[:2000], customers.iloc[2000:], target="monetary")
    assert report.ml_efficacy["task"] == "regression" and report.ml_efficacy["metric"] == "r2"
    assert report.ml_efficacy["train_real"] > 0.8
    with pytest.raises(ConfigError, match="target 'ltv' is not a column"):
        quality_report(customers, customers, target="ltv")


def test_synthetic_table_must_have_the_real_columns_and_numbers(customers):
    with pytest.raises(SchemaError, match="missing column"):
        quality_report(customers, customers.drop(columns=["age"]), sources=("real.csv", "fake.csv", "h.csv"))
    broken = customers.astype({"monetary": object})
    broken.loc[5, "monetary"] = "lots"
    with pytest.raises(DataError, match=r"fake.csv: column 'monetary' has 'lots' in row 6; expected a number"):
        quality_report(customers, broken, sources=("real.csv", "fake.csv", "h.csv"))
