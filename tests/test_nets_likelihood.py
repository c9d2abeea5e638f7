"""Minus the log-likelihood of rewards against a direct computation of the Bernoulli and Gaussian densities."""

from __future__ import annotations

import math

import pytest
import torch

from nextbest.errors import ConfigError
from nextbest.nets.likelihood import negative_log_likelihood


def test_bernoulli_is_minus_the_log_probability_of_the_outcome():
    logit = torch.tensor([[-2.0, 0.0, 3.0], [1.0, -1.0, 0.5]], dtype=torch.float64)  # (H, n)
    target = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)  # (n,), broadcast over the members
    p = torch.sigmoid(logit)
    expected = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))
    nll = negative_log_likelihood(logit, target, "bernoulli")
    assert nll.shape == (2, 3)
    torch.testing.assert_close(nll, expected)


def test_gaussian_is_minus_the_log_density_of_a_unit_normal_up_to_its_constant():
    mean = torch.randn(2, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.randn(5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    log_density = torch.distributions.Normal(mean, 1.0).log_prob(target)
    torch.testing.assert_close(negative_log_likelihood(mean, target, "gaussian"), -log_density - 0.5 * math.log(2 * math.pi))


def test_an_unknown_likelihood_names_the_choices():
    with pytest.raises(ConfigError, match="bernoulli"):
        negative_log_likelihood(torch.zeros(2), torch.zeros(2), "poisson")
