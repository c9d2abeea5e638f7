"""Minus the log-likelihood of observed rewards under a network's outputs, per element.

- `bernoulli`: the output is a logit and the target 0 or 1 (conversions):
  −[y log σ(f) + (1 − y) log(1 − σ(f))];
- `gaussian`: the output is the mean of a unit-variance normal (rewards standardized first):
  ½ (f − y)², the negative log-density up to its constant ½ log 2π.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from nextbest.errors import ConfigError

Likelihood = Literal["bernoulli", "gaussian"]


def _bernoulli(logit: Tensor, target: Tensor) -> Tensor:
    logit, target = torch.broadcast_tensors(logit, target)
    return nn.functional.binary_cross_entropy_with_logits(logit, target, reduction="none")


def _gaussian(mean: Tensor, target: Tensor) -> Tensor:
    return 0.5 * (mean - target) ** 2


LIKELIHOODS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"bernoulli": _bernoulli, "gaussian": _gaussian}


def negative_log_likelihood(prediction: Tensor, target: Tensor, kind: Likelihood) -> Tensor:
    """−log p(target | prediction) per element, no reduction; `prediction` and `target` broadcast
    (e.g. (H, n) outputs of H members against (n,) rewards → (H, n)). `kind` is a key of LIKELIHOODS."""
    try:
        likelihood = LIKELIHOODS[kind]
    except KeyError:
        raise ConfigError(f"unknown likelihood {kind!r}; choose one of {sorted(LIKELIHOODS)}") from None
    return likelihood(prediction, target)
