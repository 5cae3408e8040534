"""conv1d and pooling against loop-by-loop float64 NumPy references; causality; errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.nn import conv
from funcnn.reference import conv1d_reference, pool1d_reference

KEY = jax.random.key(0)
X = np.random.default_rng(0).normal(size=(2, 10, 3))


@pytest.mark.parametrize(
    ("padding", "stride", "dilation"),
    list(itertools.product(["SAME", "VALID", "CAUSAL"], [1, 2, 3], [1, 2])),
)
def test_conv1d_matches_reference(padding, stride, dilation):
    layer = nn.conv1d(4, 3, padding=padding, stride=stride, dilation=dilation)
    params, out_shape = layer.init(KEY, (2, 10, 3))
    params["b"] = jnp.arange(4.0)  # a non-zero bias, so a dropped bias would show
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        got = layer.apply(p64, jnp.asarray(X))
        expected = conv1d_reference(
            X, params["w"], params["b"], padding=padding, stride=stride, dilation=dilation
        )
        assert got.shape == expected.shape == out_shape
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("padding", "causal"), [("CAUSAL", True), ("SAME", False)])
def test_causal_conv_output_never_depends_on_the_future(padding, causal):
    layer = nn.conv1d(2, 3, padding=padding, dilation=2)
    params, _ = layer.init(KEY, (7, 3))
    jac = jax.jacrev(lambda x: layer.apply(params, x))(jnp.asarray(X[0, :7], jnp.float32))
    influence = np.abs(np.asarray(jac)).sum(axis=(1, 3))  # (T_out, T_in)
    future = np.triu(np.ones_like(influence, bool), k=1)
    assert np.all(influence[future] == 0) == causal
    assert np.all(np.diag(influence) > 0)


def test_conv1d_single_example_matches_batch_row():
    layer = nn.conv1d(4, 3, padding="CAUSAL", stride=2)
    params, _ = layer.init(KEY, (2, 10, 3))
    batch = layer.apply(params, jnp.asarray(X, jnp.float32))
    single = layer.apply(params, jnp.asarray(X[1], jnp.float32))
    np.testing.assert_allclose(single, batch[1], rtol=1e-6, atol=1e-6)


def test_conv1d_errors_name_the_problem():
    layer = nn.conv1d(4, 5, padding="VALID")
    params, _ = layer.init(KEY, (2, 10, 3))
    with pytest.raises(ValueError, match="2 channels but w expects 3"):
        layer.apply(params, jnp.zeros((2, 10, 2)))
    with pytest.raises(ValueError, match="VALID padding needs at least 5"):
        layer.apply(params, jnp.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="padding must be one of"):
        nn.conv1d(4, 3, padding="FULL")
    with pytest.raises(ValueError, match="dilation"):
        nn.conv1d(4, 3, dilation=0)
    with pytest.raises(TypeError, match="floating"):
        layer.apply(params, jnp.zeros((2, 10, 3), jnp.int32))


@pytest.mark.parametrize(("kind", "stride"), [("max", 2), ("avg", 3), ("avg", 1)])
def test_window_pooling_matches_reference(kind, stride):
    layer = (nn.max_pool1d if kind == "max" else nn.avg_pool1d)(3, stride=stride)
    _, out_shape = layer.init(KEY, (2, 10, 3))
    got = layer.apply({}, jnp.asarray(X, jnp.float32))
    assert got.shape == out_shape
    np.testing.assert_allclose(got, pool1d_reference(X, 3, stride, kind), rtol=1e-6, atol=1e-6)


def test_same_avg_pooling_does_not_count_padding():
    layer = nn.avg_pool1d(3, stride=1, padding="SAME")
    got = np.asarray(layer.apply({}, jnp.ones((1, 4, 1))))
    np.testing.assert_allclose(got, np.ones((1, 4, 1)), rtol=1e-6)


def test_window_max_pool_never_picks_a_masked_step():
    # Window of 2, stride 2: [3, 99] with 99 masked pools to 3; a fully masked window is 0.
    x = jnp.asarray([[3.0, 99.0, -5.0, -7.0, 1.0, 2.0]])[..., None]  # (1, 6, 1)
    mask = jnp.asarray([[True, False, True, True, False, False]])
    got = np.asarray(nn.max_pool1d(2).apply({}, x, mask=mask))[0, :, 0]
    np.testing.assert_array_equal(got, [3.0, -5.0, 0.0])


def test_conv_output_length_defaults_to_stride_one_same_padding():
    # T_out = ⌊(T + P − W)/s⌋ + 1 with SAME's P = W − 1 and s = 1: the length is kept.
    assert conv.conv_output_length(10, 3) == 10
    assert conv.conv_output_length(10, 3, padding="VALID") == 8
    assert conv.conv_output_length(10, 3, stride=2) == 5


def test_global_pools_honour_mask():
    x = jnp.asarray(X, jnp.float32)
    mask = jnp.asarray([[True] * 4 + [False] * 6, [False] * 10])
    avg = np.asarray(nn.global_avg_pool().apply({}, x, mask=mask))
    mx = np.asarray(nn.global_max_pool().apply({}, x, mask=mask))
    np.testing.assert_allclose(avg[0], X[0, :4].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(mx[0], X[0, :4].max(axis=0), rtol=1e-6)
    assert np.all(avg[1] == 0) and np.all(mx[1] == 0)
    with pytest.raises(ValueError, match="mask must have shape"):
        nn.global_max_pool().apply({}, x, mask=mask[:, :5])
