"""Action distributions for policy heads: categorical, one categorical per choice set, and diagonal
Gaussians squashed onto a box (tanh) or onto the probability simplex (additive logistic).

Every distribution works on a batch and speaks the same five words:

    sample(generator) → raw actions          log_prob(raw) → (batch,)       entropy() → (batch,)
    mode() → raw actions                     to_action(raw) → what the environment receives

"Raw" is what PPO stores and re-scores: class indices for the categoricals, the Gaussian draw u
*before* squashing for the continuous ones (re-scoring u avoids inverting tanh or softmax, which
loses precision at the bounds). `log_prob(u)` is the log-density of the squashed action, i.e.
corrected by the log-determinant of the squashing Jacobian; the ratio of two policies does not
depend on that correction, but densities reported to users do.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_LOG_2PI = math.log(2.0 * math.pi)


class Categorical:
    """One choice among k. logits: (batch, k); raw actions: (batch,) long.

    `floor` mixes in a uniform share so that every action keeps at least floor / k probability
    (the exploration floor that keeps logged data usable for off-policy evaluation)."""

    def __init__(self, logits: Tensor, floor: float = 0.0):
        log_p = F.log_softmax(logits, dim=-1)
        if floor > 0.0:
            k = logits.shape[-1]
            log_p = torch.logaddexp(log_p + math.log1p(-floor), torch.full_like(log_p, math.log(floor / k)))
        self.log_probs = log_p  # (batch, k), normalized

    @property
    def probs(self) -> Tensor:
        return self.log_probs.exp()

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        # Gumbel-max: one uniform per class, no Python loop, reproducible with a generator.
        u = torch.rand(self.log_probs.shape, generator=generator, device=self.log_probs.device)
        return (self.log_probs - torch.log(-torch.log(u.clamp_min(1e-20)))).argmax(dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        return -(self.log_probs.exp() * self.log_probs).sum(dim=-1)

    def mode(self) -> Tensor:
        return self.log_probs.argmax(dim=-1)

    def to_action(self, raw: Tensor) -> Tensor:
        return raw


class MultiCategorical:
    """Independent choices, one categorical per choice set (action space [2, 2], [4, 4], …).

    logits: (batch, Σ sizes); raw actions: (batch, n_choices) long. The joint probability is the
    product over choice sets, so log-probabilities and entropies add."""

    def __init__(self, logits: Tensor, sizes: tuple[int, ...] | list[int], floor: float = 0.0):
        self.sizes = tuple(int(s) for s in sizes)
        self.parts = [Categorical(part, floor) for part in torch.split(logits, self.sizes, dim=-1)]

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return torch.stack([p.sample(generator) for p in self.parts], dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        return sum(p.log_prob(actions[..., j]) for j, p in enumerate(self.parts))

    def entropy(self) -> Tensor:
        return sum(p.entropy() for p in self.parts)

    def mode(self) -> Tensor:
        return torch.stack([p.mode() for p in self.parts], dim=-1)

    def to_action(self, raw: Tensor) -> Tensor:
        return raw

    def joint_log_probs(self) -> Tensor:
        """(batch, Π sizes) log-probability of every joint action, row-major (the last choice fastest)."""
        joint = self.parts[0].log_probs
        for part in self.parts[1:]:
            joint = (joint.unsqueeze(-1) + part.log_probs.unsqueeze(-2)).flatten(-2)
        return joint


class DiagonalGaussian:
    """Unbounded continuous actions. mean: (batch, d); log_std: (d,) or (batch, d); raw = action."""

    def __init__(self, mean: Tensor, log_std: Tensor):
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device)
        return self.mean + noise * self.log_std.exp()

    def gaussian_log_prob(self, u: Tensor) -> Tensor:
        z = (u - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * _LOG_2PI).sum(dim=-1)

    def log_prob(self, raw: Tensor) -> Tensor:
        return self.gaussian_log_prob(raw)

    def entropy(self) -> Tensor:
        """Entropy of the Gaussian before squashing (a squashed Gaussian has no closed form; SB3 and
        SAC use the same stand-in for the entropy bonus)."""
        return (self.log_std + 0.5 * (1.0 + _LOG_2PI)).sum(dim=-1)

    def mode(self) -> Tensor:
        return self.mean

    def to_action(self, raw: Tensor) -> Tensor:
        return raw


class TanhGaussian(DiagonalGaussian):
    """Actions in a box [low, high]^d: a = low + (tanh(u) + 1) (high − low) / 2 with u Gaussian.

    log p(a) = log N(u) − Σ log((1 − tanh²u) (high − low) / 2)."""

    def __init__(self, mean: Tensor, log_std: Tensor, low: Tensor, high: Tensor):
        super().__init__(mean, log_std)
        self.low, self.half_width = low, (high - low) / 2.0

    def log_prob(self, raw: Tensor) -> Tensor:
        # log(1 − tanh²u) = 2 (log 2 − u − softplus(−2u)), stable for large |u|
        log_det = 2.0 * (math.log(2.0) - raw - F.softplus(-2.0 * raw)) + torch.log(self.half_width)
        return self.gaussian_log_prob(raw) - log_det.sum(dim=-1)

    def to_action(self, raw: Tensor) -> Tensor:
        return self.low + (torch.tanh(raw) + 1.0) * self.half_width

    def from_action(self, action: Tensor, eps: float = 1e-6) -> Tensor:
        """The u that squashes to `action` (clamped just inside the bounds)."""
        return torch.atanh(((action - self.low) / self.half_width - 1.0).clamp(-1 + eps, 1 - eps))


class SimplexGaussian(DiagonalGaussian):
    """Actions on the probability simplex in d + 1 dimensions (shares that sum to 1), from a
    d-dimensional Gaussian u through the additive logistic map a = softmax([u, 0]): the
    logistic-normal distribution (Aitchison and Shen, 1980).

    The map is a bijection from R^d onto the open simplex; the density of the first d shares
    (the last is 1 minus their sum) is log p(a) = log N(u) − Σ_{i=1}^{d+1} log a_i."""

    def log_prob(self, raw: Tensor) -> Tensor:
        log_shares = F.log_softmax(F.pad(raw, (0, 1)), dim=-1)
        return self.gaussian_log_prob(raw) - log_shares.sum(dim=-1)

    def to_action(self, raw: Tensor) -> Tensor:
        return torch.softmax(F.pad(raw, (0, 1)), dim=-1)

    def from_action(self, action: Tensor, eps: float = 1e-12) -> Tensor:
        """The u with softmax([u, 0]) = action: log(a_i / a_last)."""
        log_a = torch.log(action.clamp_min(eps))
        return log_a[..., :-1] - log_a[..., -1:]


ActionDistribution = Categorical | MultiCategorical | DiagonalGaussian
