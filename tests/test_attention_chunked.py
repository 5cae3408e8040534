"""Chunked (online-softmax, flash-style) attention: values and gradients equal the plain path
(float32, ≤ 1e-5) and a float64 NumPy transcription (values exact to 1e-12, gradients against
central finite differences); masks, fully masked rows, ragged chunks; the transformer LM; bad
arguments; and linear-in-T memory of a training step, read from the compiled program."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn

TOL = 1e-5  # float32: chunked vs plain, values and gradients


def _numpy_attention(q, k, v, allowed):
    """float64 transcription: S = Q·Kᵀ/√d; W = softmax over allowed keys (row of none → 0);
    Y = W·V. q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv), allowed broadcastable to S."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    s = np.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])
    allowed = np.broadcast_to(allowed, s.shape)
    shift = np.max(np.where(allowed, s, -np.inf), axis=-1, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    e = np.where(allowed, np.exp(s - shift), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    w = e / np.where(total == 0, 1.0, total)
    return np.einsum("...qk,...kd->...qd", w, v)


def _numpy_causal(tq, tk):
    """(Tq, Tk) True where key j ≤ query i + (Tk − Tq)."""
    return np.arange(tk)[None, :] <= np.arange(tq)[:, None] + (tk - tq)


def _inputs(seed, lead, tq, tk, d, dv, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    q = jnp.asarray(rng.normal(size=(*lead, tq, d)), dtype)
    k = jnp.asarray(rng.normal(size=(*lead, tk, d)), dtype)
    v = jnp.asarray(rng.normal(size=(*lead, tk, dv)), dtype)
    return rng, q, k, v


def _mask(rng, kind, lead, tq, tk):
    """None, a key padding mask (B, 1, 1, Tk), or an arbitrary full mask with empty rows."""
    if kind == "none":
        return None
    if kind == "padding":
        lengths = rng.integers(1, tk + 1, size=lead[0])
        lengths[0] = max(1, tk // 3)  # one sequence short, so padding matters
        pad = np.arange(tk)[None, :] < lengths[:, None]  # (B, Tk)
        return jnp.asarray(pad.reshape((lead[0],) + (1,) * (len(lead) - 1) + (1, tk)))
    full = rng.random((*lead, tq, tk)) < 0.5
    full[(0,) * len(lead) + (1,)] = False  # a fully masked row
    full[(0,) * len(lead) + (tq - 1,)] = False
    return jnp.asarray(full)


def _attend(implementation, mask, causal, chunk_size):
    def f(q, k, v):
        return nn.dot_product_attention(
            q,
            k,
            v,
            mask=mask,
            causal=causal,
            implementation=implementation,
            chunk_size=chunk_size,
        )

    return f


CASES = [
    # (seed, lead dims, Tq, Tk, d, dv, chunk_size, mask kind, causal)
    (1, (2, 3), 37, 37, 8, 8, 16, "none", True),  # T not a multiple of the chunk
    (2, (2, 3), 37, 37, 8, 5, 16, "padding", True),
    (3, (2, 2), 20, 29, 4, 6, 8, "full", False),  # Tq ≠ Tk, fully masked rows
    (4, (3, 2), 24, 24, 8, 8, 8, "full", True),  # T a multiple of the chunk
    (5, (2, 2), 9, 17, 4, 4, 4, "padding", True),  # causal with Tk > Tq (a decoding offset)
    (6, (2,), 13, 11, 6, 3, 5, "full", True),  # rank 3, causal leaves rows empty (Tk < Tq)
    (7, (), 10, 10, 4, 4, 64, "none", False),  # rank 2, chunk_size > T (clamped)
    (8, (2, 4), 33, 33, 16, 16, 1, "padding", False),  # chunk of 1
    (9, (2, 2), 14, 21, 4, 4, 8, "none", False),  # ragged Tk with nothing else hiding the pad
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{c[0]}" for c in CASES])
def test_chunked_values_and_gradients_equal_plain(case):
    seed, lead, tq, tk, d, dv, chunk, kind, causal = case
    rng, q, k, v = _inputs(seed, lead, tq, tk, d, dv)
    mask = _mask(rng, kind, lead, tq, tk)
    cotangent = jnp.asarray(rng.normal(size=(*lead, tq, dv)), jnp.float32)
    plain = _attend("plain", mask, causal, chunk)
    chunked = _attend("chunked", mask, causal, chunk)

    got, want = jax.jit(chunked)(q, k, v), jax.jit(plain)(q, k, v)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)

    def grads(f):
        return jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) * cotangent), argnums=(0, 1, 2)))(q, k, v)

    for g_chunked, g_plain in zip(grads(chunked), grads(plain), strict=True):
        assert np.all(np.isfinite(g_chunked))
        np.testing.assert_allclose(g_chunked, g_plain, rtol=TOL, atol=TOL)


def test_fully_masked_rows_give_zeros_and_zero_gradients_like_plain():
    rng, q, k, v = _inputs(11, (2, 2), 19, 19, 4, 4)
    mask = jnp.asarray(rng.random((2, 2, 19, 19)) < 0.5).at[:, :, 5].set(False)
    mask = mask.at[1].set(False)  # a whole batch entry with nothing to attend to
    chunked = _attend("chunked", mask, False, 8)
    out = jax.jit(chunked)(q, k, v)
    assert np.all(np.asarray(out)[:, :, 5] == 0.0)
    assert np.all(np.asarray(out)[1] == 0.0)
    dq, dk, dv = jax.jit(jax.grad(lambda *a: jnp.sum(chunked(*a) ** 2), argnums=(0, 1, 2)))(q, k, v)
    assert all(np.all(np.isfinite(g)) for g in (dq, dk, dv))
    assert np.all(np.asarray(dq)[:, :, 5] == 0.0)
    assert np.all(np.asarray(dq)[1] == 0.0)
    assert np.all(np.asarray(dk)[1] == 0.0) and np.all(np.asarray(dv)[1] == 0.0)


def test_masked_keys_get_exactly_zero_weight():
    """Changing a masked key's value (or a padded one) leaves every output bit unchanged."""
    _, q, k, v = _inputs(12, (2,), 11, 11, 4, 3)
    pad = jnp.asarray(np.arange(11)[None, :] < np.array([[7], [11]]))[:, None, :]  # (2, 1, 11)
    chunked = jax.jit(_attend("chunked", pad, True, 4))
    moved = v.at[0, 7:].set(1e6)
    np.testing.assert_array_equal(chunked(q, k, v), chunked(q, k, moved))


def test_chunked_float64_matches_numpy_transcription_and_finite_differences():
    rng = np.random.default_rng(13)
    q, k, v = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 7, 3)), rng.normal(size=(2, 7, 2))
    allowed = (rng.random((2, 5, 7)) < 0.6) & _numpy_causal(5, 7)[None]
    allowed[0, 2] = False  # a fully masked row
    weight = rng.normal(size=(2, 5, 2))

    def numpy_loss(q, k, v):
        return float(np.sum(_numpy_attention(q, k, v, allowed) * weight))

    with jax.enable_x64(True):
        f = _attend("chunked", jnp.asarray(allowed), True, 3)
        args = tuple(jnp.asarray(a, jnp.float64) for a in (q, k, v))
        got = jax.jit(f)(*args)
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, _numpy_attention(q, k, v, allowed), rtol=1e-12, atol=1e-12)
        grads = jax.jit(
            jax.grad(lambda *a: jnp.sum(f(*a) * jnp.asarray(weight)), argnums=(0, 1, 2))
        )(*args)
    eps = 1e-6
    arrays = [q, k, v]
    for which, grad in enumerate(grads):
        numeric = np.zeros_like(arrays[which])
        for index in np.ndindex(arrays[which].shape):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[which][index] += eps
            minus[which][index] -= eps
            numeric[index] = (numpy_loss(*plus) - numpy_loss(*minus)) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-8)


def test_chunked_under_vmap_matches_numpy():
    _, q, k, v = _inputs(14, (3,), 10, 10, 4, 4)
    f = jax.vmap(_attend("chunked", None, True, 4))
    want = _numpy_attention(q, k, v, _numpy_causal(10, 10))
    np.testing.assert_allclose(jax.jit(f)(q, k, v), want, rtol=1e-5, atol=1e-5)


def test_default_on_float32_is_bitwise_the_plain_path():
    """ "auto" only leaves "plain" for the cuDNN kernel (GPU, half precision, no mask)."""
    rng, q, k, v = _inputs(15, (2, 2), 12, 12, 8, 8)
    mask = _mask(rng, "padding", (2, 2), 12, 12)
    default = jax.jit(lambda q, k, v: nn.dot_product_attention(q, k, v, mask=mask, causal=True))
    plain = jax.jit(_attend("plain", mask, True, 128))
    np.testing.assert_array_equal(default(q, k, v), plain(q, k, v))


def _jitter(params, seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: a + 0.1 * jnp.asarray(rng.normal(size=a.shape), a.dtype), params)


def test_multi_head_attention_chunked_equals_plain_with_padding():
    plain = nn.multi_head_attention(12, num_heads=3, causal=True, implementation="plain")
    chunked = nn.multi_head_attention(
        12, num_heads=3, causal=True, implementation="chunked", chunk_size=4
    )
    params, _ = plain.init(jax.random.key(16), (2, 11, 6))
    params = _jitter(params, 16)
    rng = np.random.default_rng(16)
    x = jnp.asarray(rng.normal(size=(2, 11, 6)), jnp.float32)
    padding = jnp.asarray(np.arange(11)[None, :] < np.array([[6], [11]]))

    def loss(layer):
        return lambda p: jnp.sum(jnp.tanh(layer.apply(p, x, mask=padding)))

    np.testing.assert_allclose(
        jax.jit(chunked.apply)(params, x, mask=padding),
        jax.jit(plain.apply)(params, x, mask=padding),
        rtol=TOL,
        atol=TOL,
    )
    g_c, g_p = jax.jit(jax.grad(loss(chunked)))(params), jax.jit(jax.grad(loss(plain)))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL), g_c, g_p)


def test_transformer_lm_chunked_gives_the_same_logits_and_gradients():
    kwargs = {"num_heads": 2, "depth": 1, "max_len": 16}
    plain = nn.transformer_lm(11, 8, implementation="plain", **kwargs)
    chunked = nn.transformer_lm(11, 8, implementation="chunked", chunk_size=4, **kwargs)
    params, _ = plain.init(jax.random.key(17), (3, 14))
    params = _jitter(params, 17)
    rng = np.random.default_rng(17)
    ids = jnp.asarray(rng.integers(0, 11, size=(3, 14)))
    mask = jnp.asarray(np.arange(14)[None, :] < np.array([[9], [14], [5]]))

    def loss(model):
        def f(p):
            logits = model.apply(p, ids, mask=mask)
            return jnp.sum(jax.nn.log_softmax(logits)[..., 0] * mask)

        return f

    np.testing.assert_allclose(
        jax.jit(chunked.apply)(params, ids, mask=mask),
        jax.jit(plain.apply)(params, ids, mask=mask),
        rtol=TOL,
        atol=TOL,
    )
    g_c, g_p = jax.jit(jax.grad(loss(chunked)))(params), jax.jit(jax.grad(loss(plain)))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL), g_c, g_p)


def test_transformer_block_passes_implementation_through():
    plain = nn.transformer_block(8, num_heads=2, causal=True, implementation="plain")
    chunked = nn.transformer_block(
        8, num_heads=2, causal=True, implementation="chunked", chunk_size=3
    )
    params, _ = plain.init(jax.random.key(18), (2, 10, 8))
    params = _jitter(params, 18)
    x = jnp.asarray(np.random.default_rng(18).normal(size=(2, 10, 8)), jnp.float32)
    np.testing.assert_allclose(
        jax.jit(chunked.apply)(params, x), jax.jit(plain.apply)(params, x), rtol=TOL, atol=TOL
    )


BAD = [
    ({"implementation": "flash"}, ValueError, r"implementation must be one of .*'flash'"),
    ({"implementation": None}, ValueError, r"implementation must be one of"),
    ({"chunk_size": 0}, ValueError, r"chunk_size must be a positive int .*chunk_size=0"),
    ({"chunk_size": 2.5}, TypeError, r"chunk_size must be a positive int, got 2.5"),
    ({"chunk_size": True}, TypeError, r"chunk_size must be a positive int"),
]


@pytest.mark.parametrize(("kwargs", "error", "pattern"), BAD)
def test_bad_implementation_or_chunk_size_is_a_clear_error(kwargs, error, pattern):
    x = jnp.ones((4, 2), jnp.float32)
    with pytest.raises(error, match=pattern):
        nn.dot_product_attention(x, x, x, **kwargs)
    with pytest.raises(error, match=pattern):
        nn.multi_head_attention(4, num_heads=2, **kwargs)
    with pytest.raises(error, match=pattern):
        nn.transformer_block(4, num_heads=2, **kwargs)
    with pytest.raises(error, match=pattern):
        nn.transformer_lm(5, 4, num_heads=2, depth=1, max_len=4, **kwargs)


def _training_step_temp_bytes(implementation, steps):
    """Temp bytes XLA allocates for ∇(q, k, v) Σ attention(q, k, v), causal, (1, 2, T, 32)."""
    spec = jax.ShapeDtypeStruct((1, 2, steps, 32), jnp.float32)

    def loss(q, k, v):
        return jnp.sum(_attend(implementation, None, True, 128)(q, k, v))

    compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(spec, spec, spec).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_training_step_memory_is_linear_in_time_for_chunked_and_quadratic_for_plain():
    chunked = [_training_step_temp_bytes("chunked", t) for t in (512, 1024)]
    plain = [_training_step_temp_bytes("plain", t) for t in (512, 1024)]
    assert chunked[1] / chunked[0] < 2.5, chunked
    assert plain[1] / plain[0] > 3.5, plain  # the (T, T) scores and weights dominate
    # The plain program holds at least the T×T float32 weights; chunked far less at 1024.
    assert plain[1] >= 2 * 1024 * 1024 * 4
    assert chunked[1] < plain[1] / 8, (chunked, plain)
