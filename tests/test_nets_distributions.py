"""Log-probabilities and entropies of every action distribution against torch.distributions or a closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import distributions as D

from nextbest.errors import ConfigError
from nextbest.nets.distributions import Categorical, MultiCategorical, SimplexGaussian, TanhGaussian
from nextbest.nets.heads import ActionSpec, PolicyHead


@pytest.fixture(autouse=True)
def _double_precision():
    """Compare in float64 so that tolerances test the formulas, not rounding."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_categorical_log_prob_and_entropy_match_torch():
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    actions = torch.tensor([0, 4, 2, 1, 3, 3])
    reference = D.Categorical(logits=logits)
    ours = Categorical(logits)
    torch.testing.assert_close(ours.log_prob(actions), reference.log_prob(actions))
    torch.testing.assert_close(ours.entropy(), reference.entropy())


def test_categorical_floor_mixes_in_uniform_mass():
    logits = torch.tensor([[10.0, -10.0, -10.0, -10.0]])
    probs = Categorical(logits, floor=0.2).probs[0]
    expected = 0.8 * torch.softmax(logits[0], 0) + 0.2 / 4
    torch.testing.assert_close(probs, expected)
    assert float(probs.min()) >= 0.05 - 1e-12


def test_multi_categorical_log_prob_is_the_sum_over_choice_sets():
    g = torch.Generator().manual_seed(1)
    sizes = (2, 3, 4)
    logits = torch.randn(5, sum(sizes), generator=g)
    actions = torch.stack([torch.randint(0, k, (5,), generator=g) for k in sizes], dim=1)
    parts = [D.Categorical(logits=part) for part in logits.split(sizes, dim=1)]
    ours = MultiCategorical(logits, sizes)
    torch.testing.assert_close(ours.log_prob(actions), sum(p.log_prob(actions[:, j]) for j, p in enumerate(parts)))
    torch.testing.assert_close(ours.entropy(), sum(p.entropy() for p in parts))


def test_multi_categorical_joint_log_probs_are_row_major_products():
    logits = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
    ours = MultiCategorical(logits, (2, 4))
    joint = ours.joint_log_probs()
    assert joint.shape == (3, 8)
    torch.testing.assert_close(joint.exp().sum(dim=1), torch.ones(3))
    for a in range(2):
        for b in range(4):
            action = torch.tensor([[a, b]] * 3)
            torch.testing.assert_close(joint[:, a * 4 + b], ours.log_prob(action))


def test_tanh_gaussian_log_prob_matches_transformed_distribution():
    g = torch.Generator().manual_seed(3)
    mean, log_std = torch.randn(7, 2, generator=g), torch.randn(2, generator=g) * 0.3
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 10.0])
    u = torch.randn(7, 2, generator=g) * 3  # including far into the tails
    reference = D.TransformedDistribution(
        D.Independent(D.Normal(mean, log_std.exp()), 1),
        [D.TanhTransform(), D.AffineTransform(loc=(low + high) / 2, scale=(high - low) / 2)],
    )
    ours = TanhGaussian(mean, log_std, low, high)
    action = ours.to_action(u)
    assert ((action >= low) & (action <= high)).all()
    finite = (u.abs() < 5).all(dim=1)  # torch's own atanh loses precision near the bounds
    torch.testing.assert_close(ours.log_prob(u)[finite], reference.log_prob(action)[finite])
    torch.testing.assert_close(ours.from_action(action)[finite], u[finite])


def test_simplex_gaussian_log_prob_matches_the_logistic_normal_density():
    g = torch.Generator().manual_seed(4)
    d = 3  # four shares
    mean, log_std = torch.randn(5, d, generator=g), torch.randn(d, generator=g) * 0.2
    u = mean + torch.randn(5, d, generator=g) * log_std.exp()
    ours = SimplexGaussian(mean, log_std)
    shares = ours.to_action(u)
    torch.testing.assert_close(shares.sum(dim=1), torch.ones(5))
    assert (shares > 0).all()
    # Aitchison & Shen: p(x) = |2πΣ|^{-1/2} (Π_{i=1}^{d+1} x_i)^{-1} exp(−½ (log(x_{-}/x_{d+1}) − μ)ᵀ Σ⁻¹ (…))
    ratio = torch.log(shares[:, :d] / shares[:, d:])
    var = (2 * log_std).exp()
    quadratic = (((ratio - mean) ** 2) / var).sum(dim=1)
    log_density = -0.5 * (d * math.log(2 * math.pi) + torch.log(var).sum()) - torch.log(shares).sum(dim=1) - 0.5 * quadratic
    torch.testing.assert_close(ours.log_prob(u), log_density)
    torch.testing.assert_close(ours.from_action(shares), u)


def test_simplex_density_integrates_to_one_over_the_two_share_simplex():
    # two shares: x = sigmoid(u); ∫ p(x) dx over (0, 1) must be 1
    mean, log_std = torch.tensor([[0.4]]), torch.tensor([-0.3])
    x = torch.linspace(1e-6, 1 - 1e-6, 200_001)
    u = torch.log(x / (1 - x)).unsqueeze(1)
    density = SimplexGaussian(mean.expand(len(x), 1), log_std).log_prob(u).exp()
    assert float(torch.trapezoid(density, x)) == pytest.approx(1.0, abs=1e-4)


def test_samples_follow_the_distribution():
    g = torch.Generator().manual_seed(5)
    probs = torch.tensor([0.1, 0.6, 0.3])
    samples = Categorical(probs.log().expand(20_000, 3)).sample(g)
    counts = torch.bincount(samples, minlength=3) / 20_000
    torch.testing.assert_close(counts, probs, atol=0.015, rtol=0)


def test_action_spec_from_gymnasium_spaces():
    assert ActionSpec.from_space(spaces.Discrete(3)) == ActionSpec("categorical", (3,))
    assert ActionSpec.from_space(spaces.MultiDiscrete([2, 2])).sizes == (2, 2)
    box = ActionSpec.from_space(spaces.Box(-1.0, 2.0, (2,)))
    assert box.kind == "box" and box.low == (-1.0, -1.0) and box.high == (2.0, 2.0)
    assert ActionSpec.from_space(spaces.Box(0.0, 1.0, (4,)), simplex=True).n_parameters == 3
    with pytest.raises(ConfigError, match="simplex=True needs a Box"):
        ActionSpec.from_space(spaces.Discrete(3), simplex=True)
    with pytest.raises(ConfigError, match="one-dimensional"):
        ActionSpec.from_space(spaces.Box(0.0, 1.0, (2, 2)))
    with pytest.raises(ConfigError, match=r"simplex shares lie in \[0, 1\]"):
        ActionSpec.from_space(spaces.Box(0.2, 1.0, (3,)), simplex=True)


def test_policy_head_squashes_box_actions_into_bounds():
    head = PolicyHead(4, ActionSpec.from_space(spaces.Box(np.array([0.0, -5.0], np.float32), np.array([1.0, 5.0], np.float32))), log_std_init=2.0)
    distribution = head(torch.randn(1000, 4))
    actions = distribution.to_action(distribution.sample(torch.Generator().manual_seed(0)))
    assert (actions[:, 0] >= 0).all() and (actions[:, 0] <= 1).all()
    assert (actions[:, 1] >= -5).all() and (actions[:, 1] <= 5).all()
