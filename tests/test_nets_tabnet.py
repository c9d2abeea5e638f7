"""TabNet's masks (sparsemax, entmax) against independent computations; the encoder's per-row behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_ppo_fixtures import one_thread  # noqa: F401  (autouse: one CPU thread)

from nextbest.nets.mlp import MLPEncoder
from nextbest.nets.sparse import entmax15, sparsemax
from nextbest.nets.tabnet import TabNetEncoder


def _threshold(z: np.ndarray, mass, lo: float, hi: float) -> float:
    """Bisection for the τ with mass(z, τ) = 1 (mass decreases in τ)."""
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mass(z, mid) > 1 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("seed", range(5))
def test_sparsemax_is_the_euclidean_projection_onto_the_simplex(seed):
    z = np.random.default_rng(seed).normal(size=7) * 2
    tau = _threshold(z, lambda z, t: np.maximum(z - t, 0).sum(), z.min() - 1, z.max())
    expected = np.maximum(z - tau, 0)
    np.testing.assert_allclose(sparsemax(torch.tensor(z)).numpy(), expected, atol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_entmax15_matches_its_threshold_definition(seed):
    z = np.random.default_rng(seed).normal(size=7) * 2
    tau = _threshold(z, lambda z, t: (np.maximum(z / 2 - t, 0) ** 2).sum(), z.min() / 2 - 1, z.max() / 2)
    expected = np.maximum(z / 2 - tau, 0) ** 2
    np.testing.assert_allclose(entmax15(torch.tensor(z)).numpy(), expected, atol=1e-9)


@pytest.mark.parametrize("mask", [sparsemax, entmax15])
def test_mask_gradients_match_finite_differences(mask):
    # values away from the kinks where an entry enters or leaves the support
    z = torch.tensor([[0.3, -1.2, 0.9, 0.05], [2.0, 1.1, -0.5, 1.6]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: mask(x) * torch.arange(1.0, 5.0, dtype=torch.float64), (z,))


@pytest.mark.parametrize("mask_type", ["sparsemax", "entmax"])
def test_attentive_masks_sum_to_one_per_row(mask_type):
    torch.manual_seed(0)
    encoder = TabNetEncoder([3, 4], 3, n_steps=3, mask_type=mask_type)
    codes = torch.stack([torch.randint(0, 3, (64,)), torch.randint(0, 4, (64,))], dim=1)
    masks = encoder.masks(codes, torch.randn(64, 3))
    assert masks.shape == (3, 64, 5)  # steps, rows, columns (2 categorical + 3 numeric)
    assert (masks >= 0).all()
    torch.testing.assert_close(masks.sum(dim=2), torch.ones(3, 64))


def test_attentive_loss_is_the_mean_mask_entropy_per_row():
    torch.manual_seed(1)
    encoder = TabNetEncoder([3], 2, n_steps=2, mask_type="entmax")
    codes, numeric = torch.randint(0, 3, (10, 1)), torch.randn(10, 2)
    _, loss = encoder(codes, numeric)
    masks = encoder.masks(codes, numeric)
    entropy = -(masks * torch.log(masks + 1e-15)).sum(dim=2).mean(dim=0)
    torch.testing.assert_close(loss, entropy)
    assert loss.shape == (10,) and (loss >= 0).all()


@pytest.mark.parametrize("make", [
    lambda: TabNetEncoder([3, 4], 3),
    lambda: MLPEncoder([3, 4], 3, [32, 32]),
])
def test_a_rows_representation_does_not_depend_on_its_batch(make):
    torch.manual_seed(2)
    encoder = make().train()  # training mode too: no batch statistics anywhere
    codes = torch.stack([torch.randint(0, 3, (50,)), torch.randint(0, 4, (50,))], dim=1)
    numeric = torch.randn(50, 3)
    batch, _ = encoder(codes, numeric)
    alone = torch.cat([encoder(codes[i : i + 1], numeric[i : i + 1])[0] for i in range(50)])
    torch.testing.assert_close(alone, batch, atol=1e-5, rtol=1e-5)
    assert batch.std(dim=0).max() > 1e-3  # and rows differ


def test_categorical_column_mask_spreads_over_its_embedding_units():
    encoder = TabNetEncoder([10, 2], 1, embedding_dim=3)
    assert encoder.embed.width == 3 + 3 + 1
    assert encoder.embed.column_of_output.tolist() == [0, 0, 0, 1, 1, 1, 2]
