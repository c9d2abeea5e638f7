"""The response model: the fast log density equals the NumPyro program's, and its pieces are exact."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.simulators.model import ModelData, constrain, initial_point, log_gamma, potential, response_model, zero_sum_basis
from nextbest.simulators.synthesize import synthesize


@pytest.fixture(scope="module")
def arrays():
    history, _ = synthesize(3, 90, seed=4)
    history.spend[5, 1] = 0.0  # a paused day: masked in both
    history.impressions[5, 1] = history.clicks[5, 1] = history.conversions[5, 1] = 0
    return ModelData.from_history(history).arrays()


def assert_potential_is_the_programs(program, fast, arrays: dict, start: dict) -> None:
    """`fast(z, arrays)` equals the NumPyro `program`'s potential energy up to a constant, at `start` and three
    points around it (unconstrained values)."""
    import jax
    from numpyro.infer.util import potential_energy

    rng = np.random.default_rng(0)
    points = [start] + [{k: v + rng.normal(0, 0.1, np.shape(v)) for k, v in start.items()} for _ in range(3)]
    with jax.enable_x64(True):
        reference_of = jax.jit(lambda z: potential_energy(program, (arrays,), {}, z))
        ours_of = jax.jit(lambda z: fast(z, arrays))
        reference, ours = [float(reference_of(z)) for z in points], [float(ours_of(z)) for z in points]
    np.testing.assert_allclose(np.diff(ours), np.diff(reference), rtol=1e-9, atol=1e-6)
    assert np.all(np.abs(np.diff(reference)) > 1.0)  # the points are far enough apart for this to mean something


def test_fast_potential_equals_the_numpyro_program_up_to_a_constant(arrays):
    assert_potential_is_the_programs(response_model, potential, arrays, initial_point(arrays))


def test_zero_sum_basis_is_numpyros_transform():
    import jax
    from numpyro.distributions.transforms import ZeroSumTransform

    free = np.random.default_rng(1).normal(size=(4, 6))
    with jax.enable_x64(True):
        expected = np.asarray(ZeroSumTransform(1)(free))
    np.testing.assert_allclose(free @ zero_sum_basis(), expected, atol=1e-12)
    np.testing.assert_allclose((free @ zero_sum_basis()).sum(axis=1), 0.0, atol=1e-12)


def test_log_gamma_matches_scipy_across_scales():
    import jax
    from scipy.special import digamma, gammaln

    x = np.geomspace(1e-3, 1e7, 500)
    with jax.enable_x64(True):
        values = np.asarray(log_gamma(x))
        derivative = np.asarray(jax.vmap(jax.grad(log_gamma))(x))
    np.testing.assert_allclose(values, gammaln(x), atol=1e-7, rtol=1e-12)
    np.testing.assert_allclose(derivative, digamma(x), atol=1e-7, rtol=1e-10)


def test_constrain_maps_scales_and_logits_to_the_natural_parameters(arrays):
    z = {k: np.asarray(v)[None] for k, v in initial_point(arrays).items()}
    z["inv_sqrt_dispersion"] = np.log(np.array([[0.1, 0.2, 0.5]]))
    values = constrain(z)
    np.testing.assert_allclose(values["dispersion"], [[100.0, 25.0, 4.0]])
    np.testing.assert_allclose(np.log(values["ctr"] / (1 - values["ctr"])), z["logit_ctr"])
    assert values["weekday"].shape == (1, 7)


def test_fit_runs_every_iteration_in_chunks_and_repeats_itself_for_a_seed():
    from nextbest.simulators.fit import FitConfig, fit_response

    history, _ = synthesize(3, 90, seed=4)
    config = FitConfig(model="power", draws=37, warmup=24, chains=2, seed=3)  # 61 iterations: 31 chunks of 2, one surplus dropped
    reported = []
    first = fit_response(history, config, progress=reported.append)
    assert sum(reported) == config.chains * (config.warmup + config.draws)
    beta = first.idata.posterior["beta"].values
    assert beta.shape == (2, 37, 3)
    assert not np.allclose(beta[0], beta[1])  # two chains, not one copied
    again = fit_response(history, config)
    np.testing.assert_array_equal(again.idata.posterior["beta"].values, beta)
