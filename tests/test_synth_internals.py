"""What each model promises inside: the VAE's ELBO, MADE's masks and exact likelihood, the GAN's
training-by-sampling, and the normal-score transform they share."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import kstest

from nextbest.generative import GENERATORS
from nextbest.generative.datasets import crm_customers
from nextbest.generative.gan import Conditions
from nextbest.generative.made import Bins, MADENet
from nextbest.generative.transform import NormalScores


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return crm_customers(1200, seed=1)[["segment", "tenure_months", "frequency", "monetary", "recency_days", "churned"]]


def test_vae_elbo_rises_during_training(customers):
    vae = GENERATORS["vae"]({"steps": 200, "batch_size": 200, "hidden": [32, 32], "latent_dim": 8, "learning_rate": 3e-3})
    vae.fit(customers)
    elbo = [h["elbo"] for h in vae.history]
    held_out = [h["validation_elbo"] for h in vae.history]
    assert elbo[-1] > elbo[0] + 3.0  # nats per row
    assert held_out[-1] > held_out[0] + 3.0
    assert np.mean(elbo[-5:]) > np.mean(elbo[5:10])  # still rising after the first epochs, not a lucky start
    assert vae.summary["validation_elbo"] == max(held_out)  # the weights kept are the best epoch's
    assert held_out[vae.summary["best_epoch"] - 1] == max(held_out)


def test_made_outputs_never_depend_on_their_own_or_later_columns():
    sizes = [3, 1, 4, 2, 5]
    degrees = np.repeat(np.arange(1, len(sizes) + 1), sizes)
    torch.manual_seed(0)
    net = MADENet(degrees, [16, 16])
    x = torch.randn(len(degrees), requires_grad=True)
    for output in range(len(degrees)):
        (gradient,) = torch.autograd.grad(net(x[None])[0, output], x)
        own = degrees[output]
        assert torch.all(gradient[torch.as_tensor(degrees >= own)] == 0), f"output {output} sees column ≥ {own}"
        if own > 1:  # and it does use the earlier columns (a network that ignores everything also passes the first check)
            assert torch.any(gradient[torch.as_tensor(degrees < own)] != 0)


def test_made_probabilities_sum_to_one_over_every_possible_row():
    table = pd.DataFrame({"a": list("xyzxyzxxyy") * 3, "b": list("pqpqpqqqpp") * 3, "c": ["1", "2", "3"] * 10})
    made = GENERATORS["made"]({"epochs": 3, "hidden": [8], "validation_fraction": 0.0}).fit(table)
    rows = pd.DataFrame(list(itertools.product("xyz", "pq", "123")), columns=["a", "b", "c"])
    assert np.exp(made.log_likelihood(rows)).sum() == pytest.approx(1.0, abs=1e-5)
    assert np.exp(made.marginal_log_likelihood(rows)).sum() == pytest.approx(1.0, abs=1e-9)
    assert made.marginals[0][0] == pytest.approx((12 + 0.5) / (30 + 1.5))  # 'x' in 12 of 30 rows, add-½ smoothing


def test_made_held_out_log_likelihood_beats_independent_marginals(customers):
    made = GENERATORS["made"]({"steps": 300, "batch_size": 200, "hidden": [64, 64], "validation_fraction": 0.25}).fit(customers)
    summary = made.summary
    assert summary["validation_rows"] == 300
    assert summary["validation_log_likelihood"] > summary["validation_marginals_log_likelihood"] + 1.0


def test_made_stops_early_and_keeps_the_best_held_out_epoch(customers):
    made = GENERATORS["made"]({"epochs": 300, "batch_size": 100, "hidden": [128, 128], "patience": 5})
    made.fit(customers.iloc[:400])  # 360 rows, a big network: it overfits within a few dozen epochs
    held_out = [h["validation_log_likelihood"] for h in made.history]
    assert len(held_out) < 300 and len(held_out) == made.summary["best_epoch"] + 5
    assert made.summary["validation_log_likelihood"] == pytest.approx(max(held_out), abs=1e-4)
    assert held_out[-1] < max(held_out)


def test_bins_keep_point_masses_and_sample_within_the_bin():
    rng = np.random.default_rng(0)
    values = np.where(rng.random(5000) < 0.4, 0.0, rng.lognormal(3, 1, 5000))
    values[:100] = np.nan
    bins = Bins.fit(values, 10)
    assert 0.0 in bins.atoms and bins.missing
    codes = bins.codes(values)
    assert (codes[:100] == bins.n_codes - 1).all()
    back = bins.values(codes, rng)
    assert (back[values == 0] == 0).all()
    lower, upper = bins.edges[codes[100:] - len(bins.atoms)], bins.edges[codes[100:] - len(bins.atoms) + 1]
    inside = values[100:] != 0
    assert np.all((back[100:][inside] >= lower[inside] - 1e-9) & (back[100:][inside] <= upper[inside] + 1e-9))


def test_training_by_sampling_picks_categories_by_log_frequency():
    codes = np.array([[0]] * 990 + [[1]] * 10)
    conditions = Conditions.from_codes(codes, [2])
    rng = np.random.default_rng(0)
    column, category, row = conditions.draw(20000, rng, "log")
    expected_rare = np.log1p(10) / (np.log1p(990) + np.log1p(10))  # ≈ 0.26, against 0.01 in the data
    assert abs(category.mean() - expected_rare) < 0.01
    assert (codes[row, 0] == category).all()  # each real row has the category it was drawn for
    _, real_weights, rows = conditions.draw(20000, rng, "real")
    assert abs(real_weights.mean() - 0.01) < 0.003 and rows is None


def test_gan_uses_dcgan_initialization_and_batch_normalization(customers):
    gan = GENERATORS["gan"]({"epochs": 1})
    gan.fit(customers.iloc[:100])
    weights = torch.cat([m.weight.flatten() for m in gan.discriminator.modules() if isinstance(m, torch.nn.Linear)])
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in gan.generator.modules())
    assert any(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.2 for m in gan.discriminator.modules())
    assert 0.015 < float(weights.detach().std()) < 0.03  # N(0, 0.02), moved a little by one epoch


def test_normal_scores_are_standard_normal_and_invert_exactly():
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.5, 20000).astype(float)  # many ties: 0, 1, 2, …
    prices = np.round(rng.lognormal(3, 0.8, 20000), 2)
    for values in (counts, prices):
        transform = NormalScores.fit(values)
        assert kstest(transform.to_scores(values, rng), "norm").statistic < 0.01
    transform = NormalScores.fit(counts)  # a tie holding ≥ 2 grid steps of the rows comes back as exactly its value
    frequent = counts <= 5
    back = transform.from_scores(transform.to_scores(counts, rng))
    np.testing.assert_allclose(back[frequent], counts[frequent], rtol=0, atol=1e-9)
    transform = NormalScores.fit(prices)  # and a continuous value as itself, between the extreme grid points
    inside = (prices > np.quantile(prices, 0.001)) & (prices < np.quantile(prices, 0.999))
    np.testing.assert_allclose(transform.from_scores(transform.to_scores(prices, rng))[inside], prices[inside], rtol=1e-9)
