"""Carryover and saturation: geometric adstock with a maximum lag, and the Hill curve.

For channel c with decay θ_c and maximum lag L, the adstocked spend of day t is the normalized
weighted sum of the last L days' spend (PyMC-Marketing's `GeometricAdstock(normalize=True)`):

    A_tc = Σ_{l=0}^{L−1} θ_c^l · s_{t−l,c} / Σ_{l=0}^{L−1} θ_c^l

so that a steady spend s has A = s, and a day's spend keeps working for L − 1 more days. The
response to A is a Hill curve (Jin et al. 2017; PyMC-Marketing's `HillSaturation`, Meridian):

    H(A) = A^s / (A^s + κ^s)           κ: the half-saturation spend, s: the slope

written on the log scale around the channel's typical spend e^m (u = log A − m, k = log κ − m):

    log H(A) − log H(e^m) = softplus(s·k) − softplus(s·(k − u))

which is 0 at the typical spend, like the power law's β·x it replaces, whose elasticity it
reproduces at low spend (s) and lowers towards saturation (s·(1 − H)). With s ≤ 1 the curve is
concave in A, and A is linear in spend, so a flight's expected clicks are a concave function of
its plan: the planner's optimum is the global one.

Everything here is numpy with a leading draw axis: spend (T, C) → (draws, T, C).
"""

from __future__ import annotations

import numpy as np

MAX_LAG = 14  # days a spend keeps working (θ^13 < 0.01 for θ ≤ 0.7; PyMC-Marketing calls it l_max)
SMALLEST = 1e-9  # adstock floor: log H and its derivative stay finite for a channel never paid


def lag_weights(decay: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """decay (..., C) → (..., L, C) normalized weights θ^l / Σ θ^l for lags l = 0 … L − 1."""
    decay = np.asarray(decay, float)
    weights = decay[..., None, :] ** np.arange(max_lag)[:, None]
    return weights / weights.sum(axis=-2, keepdims=True)


def adstock(spend: np.ndarray, decay: np.ndarray, max_lag: int = MAX_LAG, carry_in: np.ndarray | None = None,
            weights: np.ndarray | None = None) -> np.ndarray:
    """spend (T, C) or (draws, T, C), decay (draws, C) → (draws, T, C) adstocked spend.

    carry_in (L − 1, C): the spend of the L − 1 days before the first (zeros when None); weights: the
    `lag_weights` of `decay`, when already computed."""
    spend = np.asarray(spend, float)
    weights = lag_weights(decay, max_lag) if weights is None else weights  # (draws, L, C)
    channels, days = spend.shape[-1], spend.shape[-2]
    before = np.zeros((max_lag - 1, channels))
    if carry_in is not None and max_lag > 1:  # the last L − 1 days before; zeros before a shorter carry-in
        recent = np.asarray(carry_in, float)[-(max_lag - 1):]
        before[max_lag - 1 - len(recent):] = recent
    if spend.ndim == 2:  # one plan for every draw: the lagged spend (L, T, C) once, then one contraction
        padded = np.concatenate([before, spend])
        lagged = np.stack([padded[max_lag - 1 - lag: max_lag - 1 - lag + days] for lag in range(max_lag)])
        return np.einsum("dlc,ltc->dtc", weights, lagged, optimize=True)
    padded = np.concatenate([np.broadcast_to(before, (spend.shape[0], *before.shape)), spend], axis=1)
    total = np.zeros(spend.shape)
    for lag in range(max_lag):
        total += weights[:, lag, None, :] * padded[:, max_lag - 1 - lag: max_lag - 1 - lag + days, :]
    return total


def adstock_transpose(gradient: np.ndarray, decay: np.ndarray, max_lag: int = MAX_LAG,
                      weights: np.ndarray | None = None) -> np.ndarray:
    """The adjoint of `adstock` in the spend: gradient (draws, T, C) with respect to A → (T, C) with respect
    to the spend of the same T days, summed over the draws (the carry-in is fixed)."""
    weights = lag_weights(decay, max_lag) if weights is None else weights
    days = gradient.shape[1]
    total = np.zeros(gradient.shape[1:])
    for lag in range(min(max_lag, days)):  # spend on day τ reaches A on day τ + lag
        total[: days - lag] += np.einsum("dc,dtc->tc", weights[:, lag], gradient[:, lag:], optimize=True)
    return total


def log_hill_relative(adstocked: np.ndarray, center: np.ndarray, slope: np.ndarray, saturation: np.ndarray) -> np.ndarray:
    """log H(A) − log H(e^m): adstocked (draws, T, C), center m (C,), slope s and saturation k = log κ − m
    (draws, C) → (draws, T, C)."""
    u = np.log(np.maximum(adstocked, SMALLEST)) - center
    s, k = slope[:, None, :], saturation[:, None, :]
    return np.logaddexp(0.0, s * k) - np.logaddexp(0.0, s * (k - u))

