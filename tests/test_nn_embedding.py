"""Embedding, bag of words and positional encodings against float64 NumPy transcriptions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.nn.masking import lengths_to_mask
from funcnn.reference import bag_of_words_reference, sinusoidal_positions_reference

KEY = jax.random.key(0)


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def test_embedding_is_a_table_lookup_over_any_leading_dims():
    layer = nn.embedding(11, 4)
    params, out_shape = layer.init(KEY, (2, 3, 5))
    assert params["table"].shape == (11, 4)
    assert out_shape == (2, 3, 5, 4)
    ids = np.random.default_rng(0).integers(0, 11, size=(2, 3, 5))
    np.testing.assert_array_equal(
        layer.apply(params, jnp.asarray(ids)), np.asarray(params["table"])[ids]
    )


def test_embedding_refuses_float_ids():
    layer = nn.embedding(5, 2)
    params, _ = layer.init(KEY, (1, 3))
    with pytest.raises(TypeError, match="integer"):
        layer.apply(params, jnp.zeros((1, 3)))


@pytest.mark.parametrize("causal", [False, True])
def test_bag_of_words_matches_reference_with_padding(causal):
    layer = nn.bag_of_words(9, 3, causal=causal)
    params, out_shape = layer.init(KEY, (3, 6))
    assert out_shape == ((3, 6, 3) if causal else (3, 3))
    ids = jax.random.randint(jax.random.key(1), (3, 6), 0, 9)
    mask = jnp.asarray([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], bool)
    with jax.enable_x64(True):
        got = layer.apply(_f64(params), ids, mask=mask)
        expected = bag_of_words_reference(ids, params["table"], np.asarray(mask), causal=causal)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert np.all(np.asarray(got)[2] == 0.0)  # an all-padding row is zeros, not NaN


def test_bag_of_words_ignores_order_and_padding():
    layer = nn.bag_of_words(9, 3)
    params, _ = layer.init(KEY, (1, 5))
    ids = jnp.asarray([[1, 2, 3, 4, 5]])
    shuffled = jnp.asarray([[5, 3, 1, 4, 2]])
    padded = jnp.asarray([[1, 2, 3, 4, 5, 8, 8]])
    np.testing.assert_allclose(layer.apply(params, ids), layer.apply(params, shuffled), atol=1e-6)
    mask = jnp.asarray([[True] * 5 + [False] * 2])
    np.testing.assert_allclose(
        layer.apply(params, ids), layer.apply(params, padded, mask=mask), atol=1e-6
    )


def test_bag_of_words_mask_shape_error():
    layer = nn.bag_of_words(9, 3)
    params, _ = layer.init(KEY, (2, 4))
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 4\)"):
        layer.apply(params, jnp.zeros((2, 4), jnp.int32), mask=jnp.ones((2, 5), bool))
    with pytest.raises(TypeError, match="boolean"):
        layer.apply(params, jnp.zeros((2, 4), jnp.int32), mask=jnp.ones((2, 4)))


@pytest.mark.parametrize("dim", [6, 7])
def test_sinusoidal_positions_match_formula(dim):
    np.testing.assert_allclose(
        nn.sinusoidal_positions(12, dim), sinusoidal_positions_reference(12, dim), atol=1e-6
    )


def test_positional_encoding_adds_table_and_checks_length():
    fixed = nn.positional_encoding(8, kind="sinusoidal")
    params, _ = fixed.init(KEY, (2, 5, 6))
    assert params == {}
    x = jax.random.normal(KEY, (2, 5, 6))
    expected = np.asarray(x) + sinusoidal_positions_reference(8, 6)[:5][None]
    np.testing.assert_allclose(fixed.apply(params, x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="exceeds max_len=8"):
        fixed.apply(params, jnp.zeros((1, 9, 6)))

    learned = nn.positional_encoding(8, kind="learned")
    params, _ = learned.init(KEY, (2, 5, 6))
    assert params["table"].shape == (8, 6)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(learned.apply(p, x) ** 2)))(params)
    # Only the first 5 positions are used, so only their rows get gradient.
    assert np.all(np.asarray(grads["table"])[5:] == 0) and np.any(np.asarray(grads["table"])[:5])


def test_lengths_to_mask():
    mask = lengths_to_mask(jnp.asarray([0, 2, 4]), 4)
    expected = np.array([[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("bad", [11, 12, -1])
def test_out_of_range_ids_are_a_named_error_when_concrete(bad):
    # Before: id ≥ vocab gave a NaN row and −1 silently read the last row.
    layer = nn.embedding(11, 4)
    params, _ = layer.init(jax.random.key(0), (2, 3))
    ids = jnp.array([[0, 1, 2], [3, bad, 4]])
    with pytest.raises(ValueError, match=rf"token ids must lie in \[0, 11\), got \[{bad}\]"):
        layer.apply(params, ids)
    bow = nn.bag_of_words(11, 4)
    with pytest.raises(ValueError, match=r"must lie in \[0, 11\)"):
        bow.apply(bow.init(jax.random.key(0), (2, 3))[0], ids)


def test_padded_steps_may_hold_any_id_and_jit_clamps():
    layer = nn.embedding(5, 3)
    params, _ = layer.init(jax.random.key(1), (1, 4))
    table = np.asarray(params["table"])
    ids = jnp.array([[1, 4, -1, 99]])
    mask = jnp.array([[True, True, False, False]])
    out = np.asarray(layer.apply(params, ids, mask=mask))  # padding ids are not checked
    np.testing.assert_array_equal(out[0, :2], table[[1, 4]])
    # Under jit ids cannot be checked: they are clamped into [0, vocab − 1], never NaN.
    traced = np.asarray(jax.jit(layer.apply)(params, ids))
    np.testing.assert_array_equal(traced[0], table[[1, 4, 0, 4]])
    lm = nn.transformer_lm(5, 4, num_heads=2, depth=1, max_len=4)
    lm_params, _ = lm.init(jax.random.key(2), (1, 4))
    assert np.isfinite(np.asarray(lm.apply(lm_params, ids, mask=mask))).all()
    with pytest.raises(ValueError, match="must lie in"):
        lm.apply(lm_params, ids)


def test_tied_head_gradient_sums_both_uses_of_the_table(rng):
    # logits = E[ids]·Eᵀ: ∂L/∂E gets the lookup rows and the head's δᵀ·h, summed.
    table, ids = rng.normal(size=(6, 3)), np.array([[1, 4, 4, 0]])
    cotangent = rng.normal(size=(1, 4, 6))
    with jax.enable_x64(True):

        def loss(t):
            h = nn.embedding(6, 3).apply({"table": t}, jnp.asarray(ids))
            return jnp.sum(nn.tied_logits(t, h) * cotangent)

        grad = np.asarray(jax.grad(loss)(jnp.asarray(table)))
    h = table[ids[0]]  # (4, 3)
    expected = cotangent[0].T @ h  # the head's use: Σₜ δₜ ⊗ hₜ
    for t, i in enumerate(ids[0]):  # the lookup's use: row i gets δₜ·E
        expected[i] += cotangent[0, t] @ table
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="tied_logits"):
        nn.tied_logits(jnp.ones((6, 3)), jnp.ones((2, 4)))
