"""Property tests: identities that must hold for every generated input (hypothesis).

Each example compares against independent math (float64 NumPy or a closed form);
`derandomize=True` makes every run draw the same examples, so CI is reproducible.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from funcnn import optim
from funcnn.activations import log_softmax, softmax

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)

shapes = st.tuples(st.integers(1, 5), st.integers(1, 7))


def x64(test):
    """Run one test body with float64 enabled, without changing the session's config."""

    @functools.wraps(test)
    def wrapped(*args, **kwargs):
        with jax.enable_x64(True):
            return test(*args, **kwargs)

    return wrapped


def _array(seed: int, shape: tuple[int, ...], scale: float) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=scale, size=shape)


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 30.0))
@x64
def test_softmax_matches_numpy_and_sums_to_one(shape, seed, scale):
    x = _array(seed, shape, scale)
    got = np.asarray(softmax(jnp.asarray(x)))
    np.testing.assert_allclose(got, np.exp(_np_log_softmax(x)), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-12)


@SETTINGS
@given(
    shape=shapes,
    seed=st.integers(0, 2**31 - 1),
    shift=st.floats(-1e3, 1e3, allow_nan=False),
)
@x64
def test_log_softmax_is_invariant_to_a_per_row_shift(shape, seed, shift):
    x = _array(seed, shape, 3.0)
    row_shift = shift * np.linspace(-1.0, 1.0, shape[0])[:, None]
    a = np.asarray(log_softmax(jnp.asarray(x)))
    b = np.asarray(log_softmax(jnp.asarray(x + row_shift)))
    np.testing.assert_allclose(a, _np_log_softmax(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), bits=st.integers(1, 2**7 - 1))
@x64
def test_masked_softmax_gives_masked_entries_exactly_zero(shape, seed, bits):
    x = _array(seed, shape, 2.0)
    where = np.array([(bits >> (j % 7)) & 1 for j in range(shape[1])], bool)
    where[0] = True  # at least one live entry per row
    where = np.broadcast_to(where, shape)
    got = np.asarray(softmax(jnp.asarray(x), where=jnp.asarray(where)))
    assert (got[~where] == 0.0).all()
    live = np.where(where, x, -np.inf)
    np.testing.assert_allclose(got, np.exp(_np_log_softmax(live)), rtol=1e-10, atol=1e-300)


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e3),
    max_norm=st.floats(1e-2, 1e2),
)
@x64
def test_clip_by_global_norm_never_increases_the_norm(seed, scale, max_norm):
    rng = np.random.default_rng(seed)
    grads = {"w": rng.normal(scale=scale, size=(3, 4)), "b": rng.normal(scale=scale, size=(4,))}
    norm = np.sqrt(sum(float((g**2).sum()) for g in grads.values()))
    np.testing.assert_allclose(float(optim.global_norm(grads)), norm, rtol=1e-12)
    tx = optim.clip_by_global_norm(max_norm)
    updates, _ = tx.update(grads, tx.init(grads), grads)
    clipped = np.sqrt(sum(float((np.asarray(u) ** 2).sum()) for u in updates.values()))
    assert clipped <= norm * (1 + 1e-12)
    np.testing.assert_allclose(clipped, min(norm, max_norm), rtol=1e-10)


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    dtype=st.sampled_from([jnp.float32, jnp.bfloat16, jnp.float16, jnp.float64]),
)
@x64
def test_apply_updates_preserves_each_leaf_dtype(seed, dtype):
    rng = np.random.default_rng(seed)
    params = {"w": jnp.asarray(rng.normal(size=(2, 3)), dtype), "b": jnp.zeros(3, dtype)}
    updates = {"w": jnp.asarray(rng.normal(size=(2, 3)), jnp.float32), "b": jnp.ones(3)}
    new = optim.apply_updates(params, updates)
    assert all(new[k].dtype == params[k].dtype for k in params)
    expect = np.asarray(params["w"], np.float64) + np.asarray(updates["w"], np.float64)
    tol = {jnp.float64: 1e-12, jnp.float32: 1e-6}.get(dtype, 2e-2)
    np.testing.assert_allclose(np.asarray(new["w"], np.float64), expect, rtol=tol, atol=tol)


@SETTINGS
@given(
    steps=st.integers(2, 9),
    vocab=st.integers(2, 6),
    seed=st.integers(0, 2**31 - 1),
    bits=st.integers(1, 2**9 - 1),
)
@x64
def test_bits_per_char_honours_its_mask(steps, vocab, seed, bits):
    from funcnn.lab.lm import bits_per_char

    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(steps, vocab))
    targets = rng.integers(0, vocab, size=steps)
    mask = np.array([(bits >> t) & 1 for t in range(steps)], bool)
    mask[0] = True
    nll = -_np_log_softmax(logits)[np.arange(steps), targets] / np.log(2.0)
    got = float(bits_per_char(jnp.asarray(logits), jnp.asarray(targets), mask=jnp.asarray(mask)))
    np.testing.assert_allclose(got, nll[mask].mean(), rtol=1e-10)
