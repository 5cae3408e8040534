"""Attention and multi-head attention against per-row float64 NumPy references; masks; causality."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.reference import (
    attention_reference,
    gqa_attention_reference,
    multi_head_attention_reference,
)

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
        real = padding[b]  # a padded query's output is meaningless (its input is zeroed first)
        np.testing.assert_allclose(got[b][real], expected[real], rtol=1e-10, atol=1e-12)


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


# ---------------------------------------------------------------- modern options (#20, #24)
def _perturbed(params, rng):
    return jax.tree.map(
        lambda a: np.asarray(a, np.float64) + 0.3 * rng.normal(size=a.shape), params
    )


def _check_against_gqa_reference(layer, params, x, reference, rng):
    """Values and projected gradients (every leaf and x) ≤ 1e-10 against the float64 loops."""
    from funcnn.reference.numerical import complex_step

    cotangent = rng.normal(size=x.shape)  # out_features defaults to the input width
    with jax.enable_x64(True):
        got = np.asarray(jax.jit(layer.apply)(_f64(params), jnp.asarray(x)))
        grads = jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) * cotangent), argnums=(0, 1))(
            _f64(params), jnp.asarray(x)
        )
    expected = np.stack([reference(params, x[b]) for b in range(x.shape[0])])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    tree = {"params": params, "x": x}
    direction = jax.tree.map(lambda a: rng.normal(size=np.shape(a)), tree)
    slope = complex_step(
        lambda t: np.sum(
            np.stack([reference(t["params"], t["x"][b]) for b in range(x.shape[0])]) * cotangent
        ),
        tree,
        direction,
    )
    got_slope = sum(
        float(np.sum(np.asarray(g) * d))
        for g, d in zip(
            jax.tree.leaves({"params": grads[0], "x": grads[1]}),
            jax.tree.leaves(direction),
            strict=True,
        )
    )
    assert abs(got_slope - slope) <= 1e-10 * abs(slope), (got_slope, slope)


@pytest.mark.parametrize("implementation", ["plain", "chunked"])
def test_grouped_query_attention_with_every_option_matches_reference(implementation, rng):
    # 4 query heads share 2 kv heads; QK-norm, RoPE, a window of 3, soft-cap 2, no biases.
    layer = nn.multi_head_attention(
        8,
        num_heads=4,
        num_kv_heads=2,
        causal=True,
        use_bias=False,
        qk_norm=True,
        rope_theta=100.0,
        window=3,
        logit_soft_cap=2.0,
        implementation=implementation,
        chunk_size=2,
    )
    params, _ = layer.init(KEY, (2, 5, 6))
    assert params["k"]["w"].shape == (6, 4) and params["q"]["w"].shape == (6, 8)
    assert "b" not in params["q"] and params["q_norm"]["scale"].shape == (2,)
    params = _perturbed(params, rng)
    steps = np.arange(5)
    allowed = (steps[None, :] <= steps[:, None]) & (steps[:, None] - steps[None, :] < 3)

    def reference(p, x):
        return gqa_attention_reference(
            x, p, 4, 2, allowed=allowed, rope_theta=100.0, logit_soft_cap=2.0
        )

    _check_against_gqa_reference(layer, params, rng.normal(size=(2, 5, 6)), reference, rng)


def test_multi_query_attention_reads_one_kv_head(rng):
    layer = nn.multi_head_attention(6, num_heads=3, num_kv_heads=1, out_bias=False)
    params, _ = layer.init(KEY, (1, 4, 5))
    assert params["k"]["w"].shape == (5, 2) and "b" not in params["o"] and "b" in params["q"]
    params = _perturbed(params, rng)
    _check_against_gqa_reference(
        layer,
        params,
        rng.normal(size=(1, 4, 5)),
        lambda p, x: gqa_attention_reference(x, p, 3, 1),
        rng,
    )


def test_gqa_with_as_many_kv_heads_as_query_heads_is_plain_multi_head_attention(rng):
    mha = nn.multi_head_attention(6, num_heads=3)
    gqa = nn.multi_head_attention(6, num_heads=3, num_kv_heads=3)
    params, _ = mha.init(KEY, (2, 4, 5))
    params = _perturbed(params, rng)
    x = rng.normal(size=(2, 4, 5))
    with jax.enable_x64(True):
        np.testing.assert_array_equal(
            np.asarray(gqa.apply(_f64(params), jnp.asarray(x))),
            np.asarray(mha.apply(_f64(params), jnp.asarray(x))),
        )
    for b in range(2):
        np.testing.assert_allclose(
            np.asarray(mha.apply(_f64(params), jnp.asarray(x)))[b],
            multi_head_attention_reference(x[b], params, 3),
            rtol=1e-5,
        )


@pytest.mark.parametrize("implementation", ["plain", "chunked"])
def test_padded_keys_never_leak_into_values_or_gradients(implementation, rng):
    # #24: a NaN (or inf, or 1e30) at a padded step used to make every output NaN.
    layer = nn.multi_head_attention(
        4, num_heads=2, causal=False, implementation=implementation, chunk_size=2
    )
    params, _ = layer.init(KEY, (2, 5, 4))
    clean = jnp.asarray(rng.normal(size=(2, 5, 4)), jnp.float32)
    mask = jnp.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    real = np.asarray(mask)[..., None]

    def loss(p, x):
        return jnp.sum(jnp.where(mask[..., None], layer.apply(p, x, mask=mask), 0.0))

    ref_out = np.asarray(layer.apply(params, clean, mask=mask))
    ref_grad = jax.grad(loss)(params, clean)
    for garbage in (jnp.nan, jnp.inf, 1e30):
        dirty = clean.at[0, 3:].set(garbage)
        out = np.asarray(layer.apply(params, dirty, mask=mask))
        np.testing.assert_array_equal(np.where(real, out, 0), np.where(real, ref_out, 0))
        grads, dx = jax.grad(loss, argnums=(0, 1))(params, dirty)
        for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grad), strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-6, atol=1e-7)
        assert np.all(np.asarray(dx)[0, 3:] == 0)


def test_kv_cache_steps_equal_the_full_call(rng):
    layer = nn.multi_head_attention(
        8, num_heads=4, num_kv_heads=2, causal=True, rope_theta=10.0, window=3
    )
    params, _ = layer.init(KEY, (2, 6, 8))
    x = jnp.asarray(rng.normal(size=(2, 6, 8)), jnp.float32)
    apply = jax.jit(layer.apply)  # as decoding runs it (three programs: T = 6, 4, 1)
    full = np.asarray(apply(params, x))
    cache = nn.init_kv_cache(2, 2, 6, 2)
    y, cache = apply(params, x[:, :4], positions=jnp.arange(4), cache=cache)
    np.testing.assert_allclose(np.asarray(y), full[:, :4], rtol=1e-5, atol=1e-6)
    for t in (4, 5):
        y, cache = apply(params, x[:, t : t + 1], positions=jnp.array([t]), cache=cache)
        np.testing.assert_allclose(np.asarray(y)[:, 0], full[:, t], rtol=1e-5, atol=1e-6)


def test_new_options_refuse_bad_values():
    with pytest.raises(ValueError, match="num_kv_heads=3 must divide num_heads=4"):
        nn.multi_head_attention(8, num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match="window"):
        nn.multi_head_attention(8, num_heads=4, window=0)
    with pytest.raises(ValueError, match="logit_soft_cap"):
        nn.multi_head_attention(8, num_heads=4, logit_soft_cap=-1.0)
    with pytest.raises(ValueError, match="even head_dim"):
        nn.multi_head_attention(6, num_heads=2, rope_theta=10.0)
    layer = nn.multi_head_attention(4, num_heads=2, causal=True)
    params, _ = layer.init(KEY, (1, 3, 4))
    with pytest.raises(ValueError, match="mask must be None with a cache"):
        layer.apply(
            params,
            jnp.ones((1, 3, 4)),
            mask=jnp.ones((1, 3), bool),
            cache=nn.init_kv_cache(1, 2, 3, 2),
        )
    with pytest.raises(ValueError, match="positions"):
        layer.apply(params, jnp.ones((1, 3, 4)), positions=jnp.arange(4))
