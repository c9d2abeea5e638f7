"""Each generator on a small seeded customer table: marginals, a dependence, missing cells, seeds,
save/load, conditions. One fit per model (module fixture); bounds are stated per model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from nextbest.errors import ConfigError, DataError
from nextbest.generative import GENERATORS, contexts_sampler, load_generator
from nextbest.generative.datasets import crm_customers

COLUMNS = ["segment", "age", "frequency", "monetary", "churned"]
SETTINGS = {
    "vae": {"steps": 800, "batch_size": 250, "hidden": [64, 64], "latent_dim": 16, "learning_rate": 3e-3},
    "gan": {"steps": 1200, "batch_size": 250},
    "made": {"steps": 300, "batch_size": 250, "hidden": [64, 64]},
}
# Largest Kolmogorov–Smirnov statistic (numeric), total variation (categorical) and error of the share of
# empty cells allowed per model. Adversarial training converges slowest: the GAN's bounds are the loosest.
BOUNDS = {"vae": (0.08, 0.06, 0.03), "gan": (0.2, 0.12, 0.08), "made": (0.06, 0.04, 0.03)}


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return crm_customers(1500, seed=0)[COLUMNS]


@pytest.fixture(scope="module", params=list(SETTINGS))
def fitted(request, real, tmp_path_factory):
    generator = GENERATORS[request.param](SETTINGS[request.param]).fit(real)
    directory = generator.save(tmp_path_factory.mktemp(request.param))
    return request.param, generator, directory, generator.sample(3000, seed=1)


def test_sampled_marginals_are_close_to_the_real_ones(fitted, real):
    name, _, _, synthetic = fitted
    ks_bound, tv_bound, _ = BOUNDS[name]
    for column in ("age", "frequency", "monetary"):
        statistic = ks_2samp(real[column].dropna(), synthetic[column].dropna()).statistic
        assert statistic <= ks_bound, f"{name}: KS of {column} is {statistic:.3f}"
    for column in ("segment", "churned"):
        p = real[column].value_counts(normalize=True)
        q = synthetic[column].value_counts(normalize=True).reindex(p.index, fill_value=0.0)
        distance = 0.5 * float(np.abs(p - q).sum())
        assert distance <= tv_bound, f"{name}: TV of {column} is {distance:.3f}"


def test_dependence_between_frequency_and_monetary_is_kept(fitted, real):
    name, _, _, synthetic = fitted
    real_rho = real[["frequency", "monetary"]].corr(method="spearman").iloc[0, 1]
    synthetic_rho = synthetic[["frequency", "monetary"]].corr(method="spearman").iloc[0, 1]
    assert real_rho > 0.85
    assert abs(real_rho - synthetic_rho) < 0.12, f"{name}: Spearman {synthetic_rho:.3f}, real {real_rho:.3f}"
    # and across types: platinum customers spend more than bronze ones, as in the real table
    by_segment = synthetic.groupby("segment")["monetary"].median()
    assert by_segment["platinum"] > 2 * by_segment["bronze"]


def test_missing_cells_and_dtypes_look_like_the_real_table(fitted, real):
    name, _, _, synthetic = fitted
    assert list(synthetic.columns) == COLUMNS
    assert abs(synthetic["age"].isna().mean() - real["age"].isna().mean()) < BOUNDS[name][2]
    assert synthetic["frequency"].dtype == np.int64 and (synthetic["frequency"] >= 0).all()
    assert np.allclose(synthetic["monetary"], synthetic["monetary"].round(2))  # prices keep two decimals
    assert set(synthetic["segment"]) <= set(real["segment"])
    assert synthetic["age"].dropna().between(real["age"].min(), real["age"].max()).all()


def test_same_seed_same_rows_and_load_gives_the_same_generator(fitted):
    name, generator, directory, synthetic = fitted
    pd.testing.assert_frame_equal(generator.sample(3000, seed=1), synthetic)
    assert not generator.sample(50, seed=2).equals(synthetic.iloc[:50])
    pd.testing.assert_frame_equal(load_generator(directory).sample(3000, seed=1), synthetic)


def test_conditions_give_only_that_segment(fitted):
    name, generator, _, _ = fitted
    gold = generator.sample(200, seed=3, conditions="segment=gold")
    assert len(gold) == 200 and (gold["segment"] == "gold").all()
    with pytest.raises(ConfigError, match="'diamond' is not a category of 'segment'"):
        generator.sample(10, conditions="segment=diamond")
    with pytest.raises(ConfigError, match="'monetary' is numeric"):
        generator.sample(10, conditions="monetary=3")


def test_contexts_sampler_draws_reproducible_customers(fitted):
    _, _, directory, _ = fitted
    draw = contexts_sampler(directory)
    first, again = draw(100, np.random.default_rng(7)), draw(100, np.random.default_rng(7))
    assert list(first.columns) == COLUMNS and len(first) == 100
    pd.testing.assert_frame_equal(first, again)
    assert list(contexts_sampler(directory, ["monetary", "segment"])(5, np.random.default_rng(0)).columns) == ["monetary", "segment"]
    with pytest.raises(ConfigError, match=r"not \['browser'\]; fit it on a table with the columns"):
        contexts_sampler(directory, ["segment", "browser"])


def test_a_condition_the_model_never_generates_is_an_error(real):
    generator = GENERATORS["made"]({"epochs": 1, "hidden": [8]}).fit(real)
    generator._sample = lambda n, rng, conditions: real.iloc[np.zeros(n, dtype=int)].reset_index(drop=True)
    first_segment = real["segment"].iloc[0]
    other = next(s for s in ["gold", "bronze"] if s != first_segment)
    with pytest.raises(DataError, match=f"have segment={other}"):
        generator.sample(5, conditions=f"segment={other}")
