"""Backprop by hand: y = σ(W₂·ReLU(W₁x + b₁) + b₂), chain rule in float64 NumPy, compared
with jax.grad through funcnn's layers and losses and with central finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import activations, losses, nn
from funcnn.reference.numerical import max_relative_error, numerical_grad

_DATA = np.random.default_rng(0)  # drawn once, at import: constants, not per-test draws
N, D, H = 5, 3, 4
X = _DATA.normal(size=(N, D))
T = _DATA.integers(0, 2, size=(N, 1)).astype(np.float64)  # binary targets
MODEL = nn.serial(nn.dense(H), nn.activation(activations.relu), nn.dense(1))
PARAMS = jax.tree.map(
    lambda a: np.asarray(a, np.float64), MODEL.init(jax.random.key(0), (-1, D))[0]
)


def funcnn_loss(kind):
    """Loss through funcnn: logits from the serial model, σ and the loss from funcnn."""

    def loss(params):
        z2 = MODEL.apply(params, jnp.asarray(X))  # (N, 1) logits
        if kind == "bce":
            return losses.binary_cross_entropy_with_logits(z2, jnp.asarray(T))
        return losses.mse(activations.sigmoid(z2), jnp.asarray(T))

    return jax.jit(loss)


def hand_backprop(params, kind):
    """Forward and backward pass written out with the chain rule."""
    w1, b1 = params["dense_0"]["w"], params["dense_0"]["b"]
    w2, b2 = params["dense_2"]["w"], params["dense_2"]["b"]
    # forward
    z1 = X @ w1 + b1  # (N, H)
    a1 = np.maximum(z1, 0.0)  # (N, H)
    z2 = a1 @ w2 + b2  # (N, 1)
    p = 1.0 / (1.0 + np.exp(-z2))  # (N, 1)
    if kind == "bce":
        loss = np.mean(-(T * np.log(p) + (1 - T) * np.log(1 - p)))
        dz2 = (p - T) / N  # ∂L/∂z₂ = (σ(z₂) − t)/N
    else:
        loss = np.mean((p - T) ** 2)
        dp = 2 * (p - T) / N  # ∂L/∂p
        dz2 = dp * p * (1 - p)  # σ′(z₂) = p(1 − p)
    # backward
    dw2 = a1.T @ dz2  # (H, 1)
    db2 = dz2.sum(0)  # (1,)
    da1 = dz2 @ w2.T  # (N, H)
    dz1 = da1 * (z1 > 0)  # ReLU′ = 1[z₁ > 0]
    dw1 = X.T @ dz1  # (D, H)
    db1 = dz1.sum(0)  # (H,)
    grads = {"dense_0": {"w": dw1, "b": db1}, "relu_1": {}, "dense_2": {"w": dw2, "b": db2}}
    return loss, grads


@pytest.mark.parametrize("kind", ["bce", "mse"])
def test_jax_grad_matches_hand_chain_rule_and_finite_differences(kind):
    expected_loss, expected = hand_backprop(PARAMS, kind)
    with jax.enable_x64(True):
        loss = funcnn_loss(kind)
        params = jax.tree.map(jnp.asarray, PARAMS)
        value, grads = jax.value_and_grad(loss)(params)
        assert grads["dense_0"]["w"].dtype == jnp.float64
        fd = numerical_grad(lambda p: loss(jax.tree.map(jnp.asarray, p)), PARAMS)
    np.testing.assert_allclose(value, expected_loss, rtol=1e-12)
    assert max_relative_error(grads, expected) < 1e-10
    assert max_relative_error(fd, expected) < 1e-6


def test_numerical_grad_on_closed_form():
    # f(a, b) = Σ sin(a)·a² + Σ b³ → ∂f/∂a = cos(a)·a² + 2a·sin(a), ∂f/∂b = 3b²
    tree = {"a": np.array([0.3, -1.2, 2.0]), "nested": [np.array([[0.5, -0.7]])]}

    def f(t):
        a, b = t["a"], t["nested"][0]
        return np.sum(np.sin(a) * a**2) + np.sum(b**3)

    g = numerical_grad(f, tree)
    a, b = tree["a"], tree["nested"][0]
    assert isinstance(g["nested"], list) and g["nested"][0].shape == (1, 2)
    np.testing.assert_allclose(g["a"], np.cos(a) * a**2 + 2 * a * np.sin(a), rtol=1e-8)
    np.testing.assert_allclose(g["nested"][0], 3 * b**2, rtol=1e-8)


def test_max_relative_error():
    assert max_relative_error({"x": np.ones(3)}, {"x": np.ones(3)}) == 0.0
    np.testing.assert_allclose(max_relative_error([np.array([1.0])], [np.array([1.1])]), 0.1 / 2.1)
    with pytest.raises(ValueError, match="shapes"):
        max_relative_error([np.ones(2)], [np.ones(3)])
