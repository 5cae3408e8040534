"""layer_norm against float64 NumPy math, with large offsets and bf16 inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn

KEY = jax.random.key(0)


def np_layer_norm(x, scale, bias, eps=1e-5):
    x = np.asarray(x, np.float64)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # biased
    return (x - mu) / np.sqrt(var + eps) * np.asarray(scale, np.float64) + np.asarray(
        bias, np.float64
    )


LAYER = nn.layer_norm()
APPLY = jax.jit(LAYER.apply)


def test_init_is_ones_and_zeros_and_keeps_shape():
    params, out = LAYER.init(KEY, (-1, 7, 6))
    assert out == (-1, 7, 6)
    np.testing.assert_array_equal(params["scale"], np.ones(6))
    np.testing.assert_array_equal(params["bias"], np.zeros(6))


@pytest.mark.parametrize("lead", [(), (3,), (2, 3)])
def test_matches_numpy_any_leading_dims(lead, rng):
    params = {
        "scale": jnp.asarray(rng.normal(size=6), jnp.float32),
        "bias": jnp.asarray(rng.normal(size=6), jnp.float32),
    }
    x = rng.normal(size=(*lead, 6)).astype(np.float32) * 3 + 1
    y = APPLY(params, jnp.asarray(x))
    assert y.shape == x.shape and y.dtype == jnp.float32
    np.testing.assert_allclose(y, np_layer_norm(x, params["scale"], params["bias"]), atol=2e-5)


def test_large_offset_normalizes_correctly(rng):
    # x ≈ 2000 ± 1: the one-pass E[x²] − μ² loses every digit in float32.
    params, _ = LAYER.init(KEY, (16,))
    noise = rng.normal(size=(4, 16))
    x = (2000.0 + noise).astype(np.float32)
    y = np.asarray(APPLY(params, jnp.asarray(x)))
    np.testing.assert_allclose(y, np_layer_norm(x, np.ones(16), np.zeros(16)), atol=1e-3)
    np.testing.assert_allclose(y.std(-1), 1.0, atol=1e-3)


def test_bfloat16_input_normalizes_and_keeps_dtype(rng):
    params, _ = LAYER.init(KEY, (32,))
    x = jnp.asarray(rng.normal(size=(3, 32)) * 4 + 100, jnp.bfloat16)
    y = APPLY(params, x)
    assert y.dtype == jnp.bfloat16
    expected = np_layer_norm(np.asarray(x, np.float64), np.ones(32), np.zeros(32))
    np.testing.assert_allclose(np.asarray(y, np.float64), expected, atol=0.05)
    np.testing.assert_allclose(np.asarray(y, np.float64).std(-1), 1.0, atol=0.02)


def test_constant_rows_give_bias_not_nan():
    params = {"scale": jnp.full(4, 2.0), "bias": jnp.arange(4.0)}
    y = APPLY(params, jnp.full((2, 4), 5.0))
    np.testing.assert_array_equal(y, np.tile(np.arange(4.0), (2, 1)))


def test_gradient_matches_finite_differences_in_float64(rng):
    from funcnn.reference.numerical import max_relative_error, numerical_grad

    x = rng.normal(size=(2, 5))
    c = rng.normal(size=(2, 5))
    params = {"scale": rng.normal(size=5), "bias": rng.normal(size=5)}
    with jax.enable_x64(True):
        loss = jax.jit(lambda p, x: jnp.sum(jnp.asarray(c) * LAYER.apply(p, x)))
        p64 = jax.tree.map(jnp.asarray, params)
        gp, gx = jax.grad(loss, argnums=(0, 1))(p64, jnp.asarray(x))
        fd_p = numerical_grad(lambda p: loss(jax.tree.map(jnp.asarray, p), jnp.asarray(x)), params)
        fd_x = numerical_grad(lambda x: loss(p64, jnp.asarray(x)), x)
    assert max_relative_error(gp, fd_p) < 1e-6
    assert max_relative_error(gx, fd_x) < 1e-6


def test_errors_name_shapes_and_arguments():
    params, _ = LAYER.init(KEY, (4,))
    with pytest.raises(ValueError, match=r"x.shape=\(2, 5\).*scale.shape=\(4,\)"):
        LAYER.apply(params, jnp.ones((2, 5)))
    with pytest.raises(TypeError, match="floating"):
        LAYER.apply(params, jnp.ones((2, 4), jnp.int32))
    with pytest.raises(KeyError, match="scale"):
        LAYER.apply({"bias": params["bias"]}, jnp.ones(4))
    with pytest.raises(ValueError, match="eps"):
        nn.layer_norm(eps=0.0)
    with pytest.raises(ValueError, match="feature size"):
        LAYER.init(KEY, (3, -1))


def test_float64_values_and_gradients_match_the_reference_to_1e_10(rng):
    # Values against funcnn.reference's transcription; gradients against the closed form of
    # L = Σ c ⊙ y with x̂ = (x − μ)/σ, σ = √(var + ε), g = c ⊙ scale (per row of d entries):
    #   ∂L/∂bias = Σ c,  ∂L/∂scale = Σ c ⊙ x̂,  ∂L/∂x = (g − mean(g) − x̂·mean(g ⊙ x̂))/σ.
    from funcnn.reference.layers import layer_norm_reference

    x = rng.normal(size=(3, 4, 6)) * 3 + 1
    c = rng.normal(size=x.shape)
    params = {"scale": rng.normal(size=6), "bias": rng.normal(size=6)}
    with jax.enable_x64(True):
        p64 = jax.tree.map(jnp.asarray, params)
        y = np.asarray(LAYER.apply(p64, jnp.asarray(x)))
        loss = lambda p, x: jnp.sum(jnp.asarray(c) * LAYER.apply(p, x))
        gp, gx = jax.grad(loss, argnums=(0, 1))(p64, jnp.asarray(x))
    assert y.dtype == np.float64
    expected = layer_norm_reference(x, params["scale"], params["bias"])
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    mu = x.mean(-1, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    x_hat = (x - mu) / sigma
    g = c * params["scale"]
    dx = (g - g.mean(-1, keepdims=True) - x_hat * (g * x_hat).mean(-1, keepdims=True)) / sigma
    np.testing.assert_allclose(gp["bias"], c.sum((0, 1)), rtol=1e-10)
    np.testing.assert_allclose(gp["scale"], (c * x_hat).sum((0, 1)), rtol=1e-10)
    np.testing.assert_allclose(gx, dx, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- RMSNorm and the switches
def _values_and_gradient(layer, params, x, reference, rng):
    from funcnn.reference.numerical import complex_step

    cotangent = rng.normal(size=x.shape)
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        got = np.asarray(layer.apply(p64, jnp.asarray(x)))
        grads = jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) * cotangent), argnums=(0, 1))(
            p64, jnp.asarray(x)
        )
    np.testing.assert_allclose(got, reference(params, x), rtol=1e-10, atol=1e-12)
    tree = {"p": jax.tree.map(np.asarray, params), "x": x}
    direction = jax.tree.map(lambda a: rng.normal(size=np.shape(a)), tree)
    slope = complex_step(lambda t: np.sum(reference(t["p"], t["x"]) * cotangent), tree, direction)
    got_slope = sum(
        float(np.sum(np.asarray(g) * d))
        for g, d in zip(jax.tree.leaves(list(grads)), jax.tree.leaves(direction), strict=True)
    )
    assert abs(got_slope - slope) <= 1e-10 * abs(slope)


@pytest.mark.parametrize("use_scale", [True, False])
def test_rms_norm_matches_reference(use_scale, rng):
    from funcnn.nn.norm import rms_norm
    from funcnn.reference import rms_norm_reference

    layer = rms_norm(eps=1e-3, use_scale=use_scale)
    params, shape = layer.init(KEY, (2, 3, 5))
    assert shape == (2, 3, 5) and list(params) == (["scale"] if use_scale else [])
    params = jax.tree.map(lambda a: np.asarray(a) + rng.normal(size=a.shape), params)
    _values_and_gradient(
        layer,
        params,
        rng.normal(size=(2, 3, 5)),
        lambda p, x: rms_norm_reference(x, p.get("scale"), 1e-3),
        rng,
    )


@pytest.mark.parametrize(("use_scale", "use_bias"), [(True, False), (False, True), (False, False)])
def test_layer_norm_switches_match_reference(use_scale, use_bias, rng):
    from funcnn.reference import norm_reference

    layer = nn.layer_norm(use_scale=use_scale, use_bias=use_bias)
    params, _ = layer.init(KEY, (4, 6))
    assert ("scale" in params, "bias" in params) == (use_scale, use_bias)
    params = jax.tree.map(lambda a: np.asarray(a) + rng.normal(size=a.shape), params)
    _values_and_gradient(
        layer,
        params,
        rng.normal(size=(4, 6)),
        lambda p, x: norm_reference(x, p, "layer", 1e-5),
        rng,
    )


def test_rms_norm_is_finite_at_zero_and_refuses_bad_input():
    from funcnn.nn.norm import rms_norm

    layer = rms_norm()
    params, _ = layer.init(KEY, (3,))
    assert np.all(np.asarray(layer.apply(params, jnp.zeros((2, 3)))) == 0)
    with pytest.raises(ValueError, match=r"x.shape=\(2, 4\).*scale.shape=\(3,\)"):
        layer.apply(params, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="eps must be > 0"):
        rms_norm(eps=0.0)
