"""Transformer block against a float64 NumPy composition of its equations; the decoder-only LM."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.nn.transformer import transformer_block, transformer_lm
from funcnn.reference import layer_norm_reference, multi_head_attention_reference

KEY = jax.random.key(0)
ERF = np.vectorize(math.erf)


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _jitter(params):
    """Move every parameter off its init (LayerNorm scale 1, biases 0) so each one matters."""
    rng = np.random.default_rng(1)  # the same offsets at every call, whatever ran before
    return jax.tree.map(lambda a: a + 0.1 * jnp.asarray(rng.normal(size=a.shape), a.dtype), params)


def _block_reference(x, p, heads, mask):
    """h = x + MHA(LN₁(x)); y = h + W₂·gelu(W₁·LN₂(h) + b₁) + b₂ — exact (erf) GELU, float64."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
    a = layer_norm_reference(x, p["norm_attention"]["scale"], p["norm_attention"]["bias"])
    h = x + multi_head_attention_reference(a, p["attention"], heads, mask=mask)
    m = layer_norm_reference(h, p["norm_mlp"]["scale"], p["norm_mlp"]["bias"])
    hidden = m @ p["mlp"]["dense_0"]["w"] + p["mlp"]["dense_0"]["b"]
    hidden = 0.5 * hidden * (1.0 + ERF(hidden / math.sqrt(2.0)))
    return h + hidden @ p["mlp"]["dense_2"]["w"] + p["mlp"]["dense_2"]["b"]


def test_block_matches_reference(rng):
    block = transformer_block(8, num_heads=2, mlp_ratio=2, causal=True)
    params, out_shape = block.init(KEY, (2, 5, 8))
    assert set(params) == {"norm_attention", "attention", "norm_mlp", "mlp"}
    params = _jitter(params)
    x = rng.normal(size=(2, 5, 8))
    padding = np.array([[1, 1, 1, 1, 0], [1] * 5], bool)
    with jax.enable_x64(True):
        got = jax.jit(block.apply)(_f64(params), jnp.asarray(x), mask=jnp.asarray(padding))
    assert got.shape == out_shape
    for b in range(2):
        allowed = np.tril(np.ones((5, 5), bool)) & padding[b][None, :]
        real = padding[b]  # a padded step's output is meaningless (its input is zeroed first)
        np.testing.assert_allclose(
            got[b][real], _block_reference(x[b], params, 2, allowed)[real], rtol=1e-9, atol=1e-10
        )


def test_block_dropout_is_train_only(rng):
    block = transformer_block(8, num_heads=2, dropout=0.5)
    params, _ = block.init(KEY, (1, 4, 8))
    x = jnp.asarray(rng.normal(size=(1, 4, 8)), jnp.float32)
    apply = jax.jit(block.apply, static_argnames="train")
    evaluation = apply(params, x)
    np.testing.assert_array_equal(evaluation, apply(params, x, key=KEY))
    trained = apply(params, x, key=KEY, train=True)
    assert not np.allclose(trained, evaluation)
    with pytest.raises(ValueError, match="key"):
        block.apply(params, x, train=True)


@pytest.fixture(scope="module")
def lm():
    model = transformer_lm(13, 16, num_heads=2, depth=2, max_len=12)
    params, _ = model.init(KEY, (-1, 10))
    return model, _jitter(params), jax.jit(model.apply)


def test_lm_param_layout_and_shapes(lm):
    model, params, apply = lm
    assert set(params) == {"embedding", "positions", "block_0", "block_1", "norm", "head"}
    assert params["embedding"]["table"].shape == (13, 16)
    assert params["positions"]["table"].shape == (12, 16)
    assert params["head"]["w"].shape == (16, 13)
    ids = jax.random.randint(KEY, (3, 10), 0, 13)
    assert apply(params, ids).shape == (3, 10, 13)
    with pytest.raises(ValueError, match="exceeds max_len=12"):
        model.apply(params, jnp.zeros((1, 13), jnp.int32))
    with pytest.raises(ValueError, match="time 13 exceeds max_len=12"):
        model.init(KEY, (1, 13))


def test_lm_is_causal(lm):
    _, params, apply = lm
    ids = jax.random.randint(KEY, (1, 10), 0, 13)
    base = np.asarray(apply(params, ids))
    for s in (0, 4, 9):
        changed = np.asarray(apply(params, ids.at[0, s].set((ids[0, s] + 1) % 13)))
        np.testing.assert_array_equal(changed[0, :s], base[0, :s])  # the past: bitwise equal
        assert np.all(np.abs(changed[0, s:] - base[0, s:]).max(axis=-1) > 0)  # the rest moves


def test_lm_gradient_wrt_embeddings_is_causal(lm):
    model, params, _ = lm
    ids = jax.random.randint(KEY, (1, 6), 0, 13)
    # Feed the embedded inputs directly, so the gradient w.r.t. each input step is defined.
    steps = jnp.arange(6)
    x = params["embedding"]["table"][ids[0]]

    def logits_from_embedded(x):
        table = jnp.zeros((6, 16)).at[steps].set(x)  # token i ↦ row i: embedding(steps) = x
        return model.apply({**params, "embedding": {"table": table}}, steps[None, :])[0]

    jac = jax.jit(jax.jacrev(logits_from_embedded))(x)  # (T, vocab, T, D)
    influence = np.abs(np.asarray(jac)).sum(axis=(1, 3))
    assert np.all(influence[np.triu_indices(6, k=1)] == 0)
    assert np.all(influence[np.tril_indices(6)] > 0)


def test_lm_padding_mask_changes_nothing_at_real_steps(lm):
    _, params, apply = lm
    ids = jax.random.randint(KEY, (2, 10), 0, 13)
    mask = nn.lengths_to_mask(jnp.asarray([10, 6]), 10)
    masked = np.asarray(apply(params, ids, mask=mask))
    alone = np.asarray(apply(params, ids[1:, :6]))
    np.testing.assert_allclose(masked[1, :6], alone[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="mask must have shape"):
        apply(params, ids, mask=mask[:, :5])


def test_block_draws_independent_dropout_masks_for_its_two_branches():
    # y = x + D₁⊙a/(1−p) + D₂⊙m/(1−p). Masks depend on the key and shape only, so each can be
    # read off on its own: zero the MLP's output layer (m = 0) to see D₁, zero the attention's
    # output projection (a = 0) to see D₂. Independent masks agree on ≈ half the entries;
    # masks drawn from one key would agree everywhere.
    block = transformer_block(16, num_heads=2, dropout=0.5)
    params, _ = block.init(KEY, (2, 8, 16))
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 8, 16)), jnp.float32)
    zero = lambda tree: jax.tree.map(jnp.zeros_like, tree)
    no_mlp = {**params, "mlp": {**params["mlp"], "dense_2": zero(params["mlp"]["dense_2"])}}
    no_attention = {
        **params,
        "attention": {**params["attention"], "o": zero(params["attention"]["o"])},
    }
    key = jax.random.key(7)
    kept_attention = np.asarray(block.apply(no_mlp, x, key=key, train=True) != x)
    kept_mlp = np.asarray(block.apply(no_attention, x, key=key, train=True) != x)
    for kept in (kept_attention, kept_mlp):
        assert 0.35 < kept.mean() < 0.65  # rate 0.5 drops about half of each branch
    assert np.mean(kept_attention == kept_mlp) < 0.65
