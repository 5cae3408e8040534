"""Initializers: empirical variance on a large sample against the fan formulas, uniform bounds."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import initializers as init

KEY = jax.random.key(0)
SHAPE = (300, 200)  # fan_in = 300, fan_out = 200; 60 000 samples
CONV = (3, 40, 500)  # conv1d (width, in, out): fan_in = 120, fan_out = 1500


def variance_formula(name, fan_in, fan_out):
    return {
        "glorot": 2.0 / (fan_in + fan_out),
        "he": 2.0 / fan_in,
        "lecun": 1.0 / fan_in,
    }[name]


def check_variance(sample, expected, kurtosis):
    # Var of the sample variance ≈ σ⁴·(κ − 1)/n; allow 5 standard errors.
    n = sample.size
    tolerance = 5 * expected * math.sqrt((kurtosis - 1) / n)
    assert abs(float(np.var(sample)) - expected) < tolerance, (np.var(sample), expected)
    assert abs(float(np.mean(sample))) < 5 * math.sqrt(expected / n)


@pytest.mark.parametrize("family", ["glorot", "he", "lecun"])
@pytest.mark.parametrize("shape", [SHAPE, CONV], ids=["dense", "conv"])
def test_scaled_normal_variance(family, shape):
    fan_in, fan_out = math.prod(shape[:-1]), shape[-1] * math.prod(shape[:-2])
    w = np.asarray(getattr(init, f"{family}_normal")()(KEY, shape), np.float64)
    assert w.shape == shape
    check_variance(w, variance_formula(family, fan_in, fan_out), kurtosis=3.0)


@pytest.mark.parametrize("family", ["glorot", "he", "lecun"])
@pytest.mark.parametrize("shape", [SHAPE, CONV], ids=["dense", "conv"])
def test_scaled_uniform_variance_and_bounds(family, shape):
    fan_in, fan_out = math.prod(shape[:-1]), shape[-1] * math.prod(shape[:-2])
    variance = variance_formula(family, fan_in, fan_out)
    w = np.asarray(getattr(init, f"{family}_uniform")()(KEY, shape), np.float64)
    limit = math.sqrt(3 * variance)
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit  # fills the interval
    check_variance(w, variance, kurtosis=1.8)


def test_compute_fans_conventions():
    assert init.compute_fans(()) == (1, 1)
    assert init.compute_fans((7,)) == (7, 7)
    assert init.compute_fans((5, 3)) == (5, 3)
    assert init.compute_fans((4, 5, 3)) == (20, 12)  # conv1d (width, in, out)


def test_normal_and_uniform_and_constants():
    w = np.asarray(init.normal(0.5)(KEY, SHAPE), np.float64)
    check_variance(w, 0.25, kurtosis=3.0)
    u = np.asarray(init.uniform(0.3)(KEY, SHAPE), np.float64)
    assert u.min() >= -0.3 and u.max() <= 0.3 and u.min() < -0.29  # symmetric, unlike jax's
    check_variance(u, 0.09 / 3, kurtosis=1.8)
    np.testing.assert_array_equal(init.zeros()(KEY, (2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(init.ones()(KEY, (4,)), np.ones(4))
    np.testing.assert_array_equal(init.constant(2.5)(None, (2,)), [2.5, 2.5])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dtype_is_respected_and_default_float32(dtype):
    assert init.he_normal()(KEY, (3, 4)).dtype == jnp.float32
    for factory in (init.zeros(), init.normal(), init.glorot_uniform(), init.lecun_normal()):
        assert factory(KEY, (3, 4), dtype).dtype == dtype


def test_deterministic_per_key_and_different_across_keys():
    f = init.lecun_normal()
    np.testing.assert_array_equal(f(KEY, (4, 4)), f(KEY, (4, 4)))
    assert not np.array_equal(f(KEY, (4, 4)), f(jax.random.key(1), (4, 4)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="stddev"):
        init.normal(-1.0)
    with pytest.raises(ValueError, match="scale"):
        init.uniform(-0.1)
    with pytest.raises(ValueError, match=r"mode must be one of \['fan_in', 'fan_out', 'fan_avg'\]"):
        init.variance_scaling(1.0, "fan_sum", "normal")
    with pytest.raises(ValueError, match="distribution"):
        init.variance_scaling(1.0, "fan_in", "cauchy")
    with pytest.raises(ValueError, match="shape"):
        init.lecun_normal()(KEY, (3, -1))
