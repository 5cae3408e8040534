"""Attention and multi-head attention against per-row float64 NumPy references; masks; causality."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.reference import attention_reference, multi_head_attention_reference

KEY = jax.random.key(0)


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def test_causal_mask_layout():
    np.testing.assert_array_equal(nn.causal_mask(3), np.tril(np.ones((3, 3), bool)))
    # Queries are the last 2 of 4 keys: query 0 sees keys 0..2, query 1 sees all.
    np.testing.assert_array_equal(nn.causal_mask(2, 4), [[1, 1, 1, 0], [1, 1, 1, 1]])


def test_attention_matches_reference_with_padding_and_causal_masks(rng):
    q, k, v = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 6, 3)), rng.normal(size=(2, 6, 4))
    padding = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    with jax.enable_x64(True):
        got = nn.dot_product_attention(
            jnp.asarray(q),
            jnp.asarray(k),
            jnp.asarray(v),
            mask=nn.key_padding_mask(jnp.asarray(padding))[:, 0],
            causal=True,
        )
        weights = nn.attention_weights(jnp.asarray(q), jnp.asarray(k), causal=True)
    for b in range(2):
        allowed = padding[b][None, :] & np.asarray(nn.causal_mask(5, 6))
        ref_y, _ = attention_reference(q[b], k[b], v[b], mask=allowed)
        np.testing.assert_allclose(got[b], ref_y, rtol=1e-12, atol=1e-12)
        _, ref_w = attention_reference(q[b], k[b], v[b], mask=np.asarray(nn.causal_mask(5, 6)))
        np.testing.assert_allclose(weights[b], ref_w, rtol=1e-12, atol=1e-12)
    assert np.all(np.asarray(weights)[:, 0, 2:] == 0.0)  # exactly zero, not just small


def test_fully_masked_rows_give_zeros_and_finite_gradients(rng):
    q, k, v = (jnp.asarray(rng.normal(size=(4, 3)), jnp.float32) for _ in range(3))
    mask = jnp.asarray(rng.random((4, 4)) < 0.5).at[1].set(False)

    def loss(q, k, v):
        return jnp.sum(nn.dot_product_attention(q, k, v, mask=mask) ** 2)

    out = jax.jit(nn.dot_product_attention)(q, k, v, mask=mask)
    assert np.all(np.asarray(out)[1] == 0.0)
    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert np.all(np.asarray(grads[0])[1] == 0.0)


def test_causal_self_attention_ignores_the_future(rng):
    x = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    jac = jax.jit(jax.jacrev(lambda x: nn.dot_product_attention(x, x, x, causal=True)))(x)
    influence = np.abs(np.asarray(jac)).sum(axis=(1, 3))  # (T_out, T_in)
    assert np.all(influence[np.triu_indices(6, k=1)] == 0)
    assert np.all(influence[np.tril_indices(6)] > 0)


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_matches_reference(causal, rng):
    layer = nn.multi_head_attention(6, num_heads=3, causal=causal)
    params, out_shape = layer.init(KEY, (2, 5, 4))
    params = jax.tree.map(
        lambda a: a + 0.1 * jnp.asarray(rng.normal(size=a.shape), a.dtype), params
    )
    x = rng.normal(size=(2, 5, 4))
    padding = np.array([[1, 1, 1, 0, 0], [1] * 5], bool)
    with jax.enable_x64(True):
        got = jax.jit(layer.apply)(_f64(params), jnp.asarray(x), mask=jnp.asarray(padding))
    assert got.shape == out_shape
    for b in range(2):
        allowed = np.broadcast_to(padding[b][None, :], (5, 5))
        if causal:
            allowed = allowed & np.tril(np.ones((5, 5), bool))
        expected = multi_head_attention_reference(x[b], params, 3, mask=allowed)
        np.testing.assert_allclose(got[b], expected, rtol=1e-10, atol=1e-12)


def test_cross_attention_matches_reference(rng):
    layer = nn.multi_head_attention(4, num_heads=2, out_features=3)
    params, out_shape = layer.init(KEY, (1, 3, 5))
    assert out_shape == (1, 3, 3) and params["o"]["w"].shape == (4, 3)
    # A batch of 2 whose context masks differ: (B, Tq, D) queries, (B, Tk, D) context.
    x, context = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 7, 5))
    context_mask = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0, 0]], bool)
    with jax.enable_x64(True):
        got = jax.jit(layer.apply)(
            _f64(params),
            jnp.asarray(x),
            context=jnp.asarray(context),
            context_mask=jnp.asarray(context_mask),
        )
    for b in range(2):
        expected = multi_head_attention_reference(
            x[b], params, 2, context=context[b], mask=np.broadcast_to(context_mask[b], (3, 7))
        )
        np.testing.assert_allclose(got[b], expected, rtol=1e-10, atol=1e-12)


def test_padding_invariance_and_batch_agreement(rng):
    layer = nn.multi_head_attention(4, num_heads=2, causal=True)
    params, _ = layer.init(KEY, (2, 7, 4))
    x = jnp.asarray(rng.normal(size=(2, 7, 4)), jnp.float32)
    junk = jnp.asarray(rng.normal(size=(2, 3, 4)) * 100, jnp.float32)
    lengths = jnp.asarray([7, 5])
    padded = jnp.concatenate([x, junk], axis=1)
    mask = nn.lengths_to_mask(lengths, 10)
    apply = jax.jit(layer.apply)
    batched = apply(params, padded, mask=mask)
    for b, n in enumerate([7, 5]):
        alone = apply(params, x[b, :n])  # unbatched (T, D)
        np.testing.assert_allclose(batched[b, :n], alone, rtol=1e-5, atol=1e-5)


def test_attention_errors_are_clear():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.multi_head_attention(8, num_heads=3)
    layer = nn.multi_head_attention(4, num_heads=2)
    params, _ = layer.init(KEY, (2, 5, 4))
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 5\)"):
        layer.apply(params, jnp.zeros((2, 5, 4)), mask=jnp.ones((2, 4), bool))
    q = jnp.zeros((2, 5, 3))
    with pytest.raises(ValueError, match="same last dim"):
        nn.dot_product_attention(q, jnp.zeros((2, 5, 4)), jnp.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="does not fit the scores"):
        nn.dot_product_attention(q, q, q, mask=jnp.ones((5,), bool))
    with pytest.raises(TypeError, match="boolean"):
        nn.dot_product_attention(q, q, q, mask=jnp.ones((2, 5, 5)))
