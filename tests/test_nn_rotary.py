"""Rotary position embedding against a float64 loop transcription; the relative-position law."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.reference import rotary_reference


@pytest.mark.parametrize("interleaved", [False, True], ids=["rotate_half", "interleaved"])
def test_rotary_matches_reference_values_and_gradients(interleaved, rng):
    x = rng.normal(size=(2, 3, 5, 8))  # (B, H, T, dh)
    positions = np.array([0, 3, 4, 9, 17])
    cotangent = rng.normal(size=x.shape)
    with jax.enable_x64(True):
        pos = jnp.asarray(positions)
        f = lambda x: nn.apply_rotary(x, pos, theta=500.0, interleaved=interleaved)
        got = np.asarray(f(jnp.asarray(x)))
        grad = np.asarray(jax.grad(lambda x: jnp.sum(f(x) * cotangent))(jnp.asarray(x)))
    expected = np.zeros_like(x)
    expected_grad = np.zeros_like(x)
    for b in range(2):
        for h in range(3):
            expected[b, h] = rotary_reference(x[b, h], positions, 500.0, interleaved)
            # A rotation's gradient is the inverse rotation of the cotangent: R(−p)·g.
            expected_grad[b, h] = rotary_reference(cotangent[b, h], -positions, 500.0, interleaved)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)


def test_conventions_differ_and_position_zero_is_identity(rng):
    x = jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)
    half = nn.apply_rotary(x, jnp.arange(4))
    pairs = nn.apply_rotary(x, jnp.arange(4), interleaved=True)
    np.testing.assert_array_equal(np.asarray(half)[0], np.asarray(x)[0])  # p = 0: no rotation
    assert not np.allclose(np.asarray(half)[1:], np.asarray(pairs)[1:])


def test_scores_depend_only_on_the_distance(rng):
    # q at position p and k at position s: q_p·k_s is a function of p − s alone.
    q, k = rng.normal(size=(1, 16)), rng.normal(size=(1, 16))
    with jax.enable_x64(True):

        def score(p, s):
            qp = nn.apply_rotary(q, jnp.array([p]), theta=100.0)
            ks = nn.apply_rotary(k, jnp.array([s]), theta=100.0)
            return float(jnp.sum(qp * ks))

        for shift in (1, 5, 40):
            assert abs(score(7, 3) - score(7 + shift, 3 + shift)) < 1e-11
        assert abs(score(7, 3) - score(7, 4)) > 1e-3  # but it does depend on the distance


def test_rotary_refuses_bad_input():
    with pytest.raises(ValueError, match="even"):
        nn.apply_rotary(jnp.ones((3, 5)), jnp.arange(3))
    with pytest.raises(ValueError, match="positions"):
        nn.apply_rotary(jnp.ones((3, 4)), jnp.arange(4))
    with pytest.raises(TypeError, match="integers"):
        nn.apply_rotary(jnp.ones((3, 4)), jnp.arange(3.0))
    with pytest.raises(ValueError, match="theta"):
        nn.apply_rotary(jnp.ones((3, 4)), jnp.arange(3), theta=1.0)
