"""Dropout: rate is the DROP probability, inverted scaling keeps E[y] = x, eval is identity."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn

KEY = jax.random.key(0)


def test_eval_mode_is_identity_whatever_the_key():
    layer = nn.dropout(0.5)
    x = jnp.arange(12.0).reshape(3, 4)
    for key in (None, KEY, jax.random.key(7)):
        assert layer.apply({}, x, key=key) is x
        assert layer.apply({}, x, key=key, train=False) is x


def test_rate_zero_is_identity_in_training():
    x = jnp.arange(6.0)
    np.testing.assert_array_equal(nn.dropout(0.0).apply({}, x, key=KEY, train=True), x)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_rate_is_drop_probability_and_mean_is_preserved(rate):
    n = 40_000
    x = jnp.full((n,), 3.0)
    y = np.asarray(jax.jit(lambda k: nn.dropout(rate).apply({}, x, key=k, train=True))(KEY))
    dropped = y == 0
    # Kept entries are scaled by 1/(1 − p) exactly.
    np.testing.assert_allclose(y[~dropped], 3.0 / (1 - rate), rtol=1e-6)
    # Drop fraction ~ Binomial(n, p)/n: allow 5 binomial standard deviations.
    std = math.sqrt(rate * (1 - rate) / n)
    assert abs(dropped.mean() - rate) < 5 * std
    # E[y] = x: mean(y) = 3·(kept fraction)/(1 − p), std 3·std/(1 − p).
    assert abs(y.mean() - 3.0) < 5 * 3.0 * std / (1 - rate)


def test_masks_differ_across_keys_and_repeat_for_same_key():
    layer, x = nn.dropout(0.5), jnp.ones((64,))
    a = layer.apply({}, x, key=KEY, train=True)
    np.testing.assert_array_equal(a, layer.apply({}, x, key=KEY, train=True))
    assert not np.array_equal(a, layer.apply({}, x, key=jax.random.key(1), train=True))


def test_train_without_key_is_clear_error():
    with pytest.raises(ValueError, match="key"):
        nn.dropout(0.3).apply({}, jnp.ones(3), train=True)


@pytest.mark.parametrize("rate", [-0.1, 1.01, 1.5])
def test_rate_is_validated(rate):
    with pytest.raises(ValueError, match=r"rate must be in \[0.0, 1.0\]"):
        nn.dropout(rate)


def test_rate_one_drops_everything_with_zero_gradient():
    # PyTorch and flax accept p = 1: zeros, no NaN from 1/(1 − p), and a zero gradient.
    layer, x = nn.dropout(1.0), jnp.linspace(-1.0, 1.0, 8)
    y = layer.apply({}, x, key=jax.random.key(3), train=True)
    grad = jax.grad(lambda v: jnp.sum(layer.apply({}, v, key=jax.random.key(3), train=True)))(x)
    np.testing.assert_array_equal(np.asarray(y), np.zeros(8))
    np.testing.assert_array_equal(np.asarray(grad), np.zeros(8))
    np.testing.assert_array_equal(np.asarray(layer.apply({}, x)), np.asarray(x))  # eval: identity


def test_shape_inference_and_dtype():
    params, out = nn.dropout(0.2).init(KEY, (-1, 5))
    assert params == {} and out == (-1, 5)
    y = nn.dropout(0.2).apply({}, jnp.ones((2, 3, 5), jnp.bfloat16), key=KEY, train=True)
    assert y.dtype == jnp.bfloat16 and y.shape == (2, 3, 5)


def test_gradient_is_mask_over_keep_prob():
    layer, x = nn.dropout(0.25), jnp.linspace(-1.0, 1.0, 16)
    y = layer.apply({}, x, key=KEY, train=True)
    g = jax.grad(lambda x: jnp.sum(layer.apply({}, x, key=KEY, train=True)))(x)
    np.testing.assert_allclose(g, np.where(np.asarray(y) != 0, 1 / 0.75, 0.0), rtol=1e-6)


def test_dropout2d_drops_whole_channels_and_keeps_the_mean():
    # One Bernoulli draw per (example, channel), shared by every cell of the feature map.
    x = jnp.ones((4, 3, 5, 64))
    y = np.asarray(nn.dropout2d(0.25).apply({}, x, key=KEY, train=True))
    per_map = y.reshape(4, 15, 64)
    assert np.all(per_map == per_map[:, :1, :])  # a map is all kept or all dropped
    assert set(np.unique(y).tolist()) <= {0.0, np.float32(1.0) / np.float32(0.75)}
    assert 0.1 < np.mean(per_map[:, 0] == 0) < 0.4  # about a quarter of the maps dropped
    np.testing.assert_array_equal(nn.dropout2d(0.25).apply({}, x, key=KEY), x)  # eval
    with pytest.raises(ValueError, match="channels-last images"):
        nn.dropout2d(0.5).init(KEY, (4, 64))
