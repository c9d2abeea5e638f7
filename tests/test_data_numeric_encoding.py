"""The encoding of numeric columns: quantile normal scores (stored knots) or z-scores, and their files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from nextbest.agents.settings import build_hyperparameters
from nextbest.data.encoding import encode, encode_records, quantile_scores
from nextbest.data.schema import QUANTILE_LEVELS, Schema
from nextbest.training.setup import experiment_schema


def schema_of(table: pd.DataFrame, encoding: str) -> Schema:
    return Schema.infer(table, list(table.columns), [], numeric_encoding=encoding)


def test_quantile_knots_are_the_percentiles_of_the_column():
    values = np.arange(1.0, 1001.0)
    schema = schema_of(pd.DataFrame({"x": values}), "quantile")
    np.testing.assert_allclose(schema.numeric["x"].quantiles, np.percentile(values, 100 * np.array(QUANTILE_LEVELS)))
    assert QUANTILE_LEVELS[:2] == (0.0, 0.01) and QUANTILE_LEVELS[-2:] == (0.99, 1.0) and len(QUANTILE_LEVELS) == 33


def test_quantile_scores_are_the_normal_scores_of_the_interpolated_cdf():
    knots = np.array([0.0, 1.0, 2.0, 4.0, 8.0])  # the 0, 25, 50, 75, 100th percentiles
    x = np.array([1.0, 3.0, 6.0, 0.5])
    expected = norm.ppf([0.25, 0.625, 0.875, 0.125])  # linear between the knots' levels
    np.testing.assert_allclose(quantile_scores(x, knots, (0.0, 0.25, 0.5, 0.75, 1.0)), expected, rtol=1e-9)


def test_quantile_scores_are_clipped_at_the_first_and_last_percentile_of_the_normal():
    scores = quantile_scores(np.array([-1e9, 1e9]), np.array([0.0, 1.0, 2.0]), (0.0, 0.5, 1.0))
    np.testing.assert_allclose(scores, norm.ppf([0.01, 0.99]))


def test_a_log_normal_amount_encodes_as_the_z_score_of_its_logarithm():
    rng = np.random.default_rng(0)
    amounts = rng.lognormal(3.0, 1.5, 50_000)  # a heavy right tail: z-scores reach 30 and more
    schema = schema_of(pd.DataFrame({"amount": amounts}), "quantile")
    test = rng.lognormal(3.0, 1.5, 2000)
    scores = encode(pd.DataFrame({"amount": test}), schema).numeric[:, 0]
    z = (np.log(test) - 3.0) / 1.5
    middle, tails = np.abs(z) < 1.5, np.abs(z) < 2.2  # within the 1st … 99th percentile; bins are wider in the tails
    np.testing.assert_allclose(scores[middle], z[middle], atol=0.05)
    np.testing.assert_allclose(scores[tails], z[tails], atol=0.2)
    assert np.abs(scores).max() <= norm.ppf(0.99) + 1e-6


def test_a_rare_flag_keeps_a_distinct_score_and_a_constant_column_encodes_as_zero():
    flag = np.where(np.arange(1000) < 5, 1.0, 0.0)  # 0.5% exceptions: no knot but the maximum sits on them
    table = pd.DataFrame({"flag": flag, "constant": np.full(1000, 7.0)})
    numeric = encode(table, schema_of(table, "quantile")).numeric
    assert numeric[0, 0] == pytest.approx(norm.ppf(0.99)) and numeric[-1, 0] == pytest.approx(norm.ppf(np.mean(QUANTILE_LEVELS[:-1])))
    assert (numeric[:, 1] == 0).all()


def test_counts_with_ties_take_the_middle_level_of_their_knots():
    counts = np.repeat([0.0, 1.0, 2.0, 3.0], [500, 250, 150, 100])
    schema = schema_of(pd.DataFrame({"n": counts}), "quantile")
    knots = np.array(schema.numeric["n"].quantiles)
    levels = np.array(QUANTILE_LEVELS)
    expected = norm.ppf(np.clip([levels[knots == v].mean() for v in (0.0, 1.0, 2.0, 3.0)], 0.01, 0.99))
    np.testing.assert_allclose(quantile_scores(np.array([0.0, 1.0, 2.0, 3.0]), knots), expected)
    assert np.all(np.diff(expected) > 0)  # more purchases, a higher score


def test_standard_encoding_is_the_z_score_and_stores_no_knots():
    table = pd.DataFrame({"x": [1.0, 2.0, 3.0, 10.0]})
    schema = schema_of(table, "standard")
    assert schema.numeric["x"].quantiles is None
    np.testing.assert_allclose(encode(table, schema).numeric[:, 0], (table.x - table.x.mean()) / table.x.std(ddof=0), rtol=1e-6)


def test_knots_round_trip_through_schema_json_and_records_encode_like_tables(tmp_path):
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"spend": rng.exponential(40.0, 500).round(2), "visits": rng.poisson(3, 500).astype(float)})
    schema = schema_of(table, "quantile")
    schema.save(tmp_path / "schema.json")
    loaded = Schema.load(tmp_path / "schema.json")
    assert loaded == schema and len(json.loads((tmp_path / "schema.json").read_text())["numeric"]["spend"]["quantiles"]) == 33
    records = table.head(20).to_dict("records")
    np.testing.assert_array_equal(encode_records(records, loaded).numeric, encode(table.head(20), loaded).numeric)


def test_a_schema_json_written_before_quantiles_still_standardizes(tmp_path):
    (tmp_path / "schema.json").write_text(json.dumps({"columns": ["x"], "categorical": {}, "numeric": {"x": {"mean": 2.0, "std": 4.0}},
                                                      "unknown_category": "error"}))
    schema = Schema.load(tmp_path / "schema.json")
    np.testing.assert_allclose(encode(pd.DataFrame({"x": [6.0, -2.0]}), schema).numeric[:, 0], [1.0, -1.0])


def test_the_hyperparameter_chooses_the_encoding_of_a_new_experiment():
    table = pd.DataFrame({"x": np.arange(10.0)})
    for encoding, has_knots in (("quantile", True), ("standard", False)):
        hp = build_hyperparameters("linucb", {"numeric_encoding": encoding}, action_space=[2], columns=["x"])
        schema = experiment_schema(hp, schema_from=table)
        assert schema.numeric_encoding == encoding and (schema.numeric["x"].quantiles is not None) == has_knots
        frozen = experiment_schema(hp).with_numeric_stats(table)  # statistics frozen from the first batch
        assert (frozen.numeric["x"].quantiles is not None) == has_knots
