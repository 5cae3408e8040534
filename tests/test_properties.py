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
# For properties whose examples change array shapes: each new shape compiles its own kernels,
# so fewer examples keep the file within the suite's time budget.
SHAPES = settings(max_examples=10, deadline=None, derandomize=True)

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


@SHAPES
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 30.0))
@x64
def test_softmax_matches_numpy_and_sums_to_one(shape, seed, scale):
    x = _array(seed, shape, scale)
    got = np.asarray(softmax(jnp.asarray(x)))
    np.testing.assert_allclose(got, np.exp(_np_log_softmax(x)), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-12)


@SHAPES
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


@SHAPES
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


@SHAPES
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


# --- optimizer identities ------------------------------------------------------------------

FEW = settings(max_examples=12, deadline=None, derandomize=True)


def _tree(rng: np.random.Generator, scale: float = 1.0) -> dict:
    return {"w": rng.normal(scale=scale, size=(3, 2)), "b": rng.normal(scale=scale, size=(2,))}


def _run(optimizer, params, gradients):
    """θ after applying `optimizer` to each gradient in turn (float64, eager)."""
    params = jax.tree.map(jnp.asarray, params)
    state = optimizer.init(params)
    for g in gradients:
        updates, state = optimizer.update(jax.tree.map(jnp.asarray, g), state, params)
        params = optim.apply_updates(params, updates)
    return params


def _assert_trees_close(a, b, rtol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-14)


@FEW
@given(
    seed=st.integers(0, 2**31 - 1),
    lr=st.floats(1e-4, 1.0),
    b1=st.floats(0.0, 0.99),
    b2=st.floats(0.5, 0.9999),
)
@x64
def test_adamw_with_zero_weight_decay_is_adam(seed, lr, b1, b2):
    rng = np.random.default_rng(seed)
    params, gradients = _tree(rng), [_tree(rng) for _ in range(3)]
    a = _run(optim.adamw(lr, b1, b2, weight_decay=0.0), params, gradients)
    b = _run(optim.adam(lr, b1, b2), params, gradients)
    _assert_trees_close(a, b, rtol=1e-12)


@FEW
@given(seed=st.integers(0, 2**31 - 1), lr=st.floats(1e-4, 10.0))
@x64
def test_sgd_without_momentum_is_minus_learning_rate_times_the_gradient(seed, lr):
    rng = np.random.default_rng(seed)
    params, g = _tree(rng), _tree(rng)
    tx = optim.sgd(lr, momentum=0.0)
    updates, _ = tx.update(jax.tree.map(jnp.asarray, g), tx.init(params), params)
    for name in g:
        np.testing.assert_allclose(np.asarray(updates[name]), -lr * g[name], rtol=1e-14)


@FEW
@given(seed=st.integers(0, 2**31 - 1), max_norm=st.floats(0.1, 10.0), decay=st.floats(0.0, 0.99))
@x64
def test_chain_is_associative(seed, max_norm, decay):
    rng = np.random.default_rng(seed)
    params, gradients = _tree(rng), [_tree(rng, 3.0) for _ in range(3)]

    def stages():
        return optim.clip_by_global_norm(max_norm), optim.trace(decay), optim.scale_by_adam()

    a, b, c = stages()
    left = _run(optim.chain(optim.chain(a, b), c), params, gradients)
    a, b, c = stages()
    right = _run(optim.chain(a, optim.chain(b, c)), params, gradients)
    a, b, c = stages()
    flat = _run(optim.chain(a, b, c), params, gradients)
    _assert_trees_close(left, right, rtol=1e-13)
    _assert_trees_close(left, flat, rtol=1e-13)


# --- losses and schedules --------------------------------------------------------------


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    shift=st.floats(-1e3, 1e3, allow_nan=False),
    smoothing=st.floats(0.0, 1.0),
)
@x64
def test_cross_entropy_is_invariant_to_a_per_row_shift_of_the_logits(seed, shift, smoothing):
    from funcnn import losses

    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=(4, 5))
    labels = rng.integers(0, 5, size=4)
    row_shift = shift * np.linspace(-1.0, 1.0, 4)[:, None]
    a = losses.cross_entropy(jnp.asarray(z), jnp.asarray(labels), label_smoothing=smoothing)
    b = losses.cross_entropy(
        jnp.asarray(z + row_shift), jnp.asarray(labels), label_smoothing=smoothing
    )
    log_p = _np_log_softmax(z)
    target = (1 - smoothing) * np.eye(5)[labels] + smoothing / 5
    np.testing.assert_allclose(float(a), -(target * log_p).sum(-1).mean(), rtol=1e-10)
    np.testing.assert_allclose(float(b), float(a), rtol=1e-9, atol=1e-9)


@SETTINGS
@given(
    warmup=st.integers(1, 50),
    extra=st.integers(1, 500),
    peak=st.floats(1e-4, 10.0),
    init=st.floats(0.0, 1.0),
    end=st.floats(0.0, 1e-3),
    after=st.integers(0, 10**6),
)
def test_every_schedule_hits_its_documented_boundary_values(warmup, extra, peak, init, end, after):
    total = warmup + extra
    rtol = 1e-5  # the schedules compute in float32
    s = optim.warmup_cosine_decay(init, peak, warmup, total, end_value=end)
    np.testing.assert_allclose(float(s(0)), init, rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(float(s(warmup)), peak, rtol=rtol)
    np.testing.assert_allclose(float(s(total)), end, rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(float(s(total + after)), end, rtol=rtol, atol=1e-7)
    c = optim.cosine_decay(peak, extra, end_value=end)
    np.testing.assert_allclose([float(c(0)), float(c(extra + after))], [peak, end], rtol=rtol,
                               atol=1e-7)  # fmt: skip
    lin = optim.linear_schedule(init, peak, warmup)
    np.testing.assert_allclose([float(lin(0)), float(lin(warmup + after))], [init, peak],
                               rtol=rtol, atol=1e-7)  # fmt: skip
    e = optim.exponential_decay(peak, warmup, 0.5)
    np.testing.assert_allclose([float(e(0)), float(e(warmup))], [peak, peak / 2], rtol=rtol)
    pc = optim.piecewise_constant([warmup, total], [init, peak, end])
    got = [float(pc(t)) for t in (warmup - 1, warmup, total - 1, total)]
    np.testing.assert_allclose(got, [init, peak, peak, end], rtol=rtol, atol=1e-7)


# --- checkpoints -------------------------------------------------------------------------

CHECKPOINT_DTYPES = ["bool", "int8", "int32", "int64", "uint8", "uint32", "float16",
                     "float32", "float64", "complex64", "bfloat16", "float8_e4m3fn"]  # fmt: skip


@st.composite
def pytrees(draw, depth=2):
    """Nested dicts/lists/tuples of arrays of every checkpointable dtype (and empty shapes)."""
    if depth == 0 or draw(st.booleans()):
        dtype = draw(st.sampled_from(CHECKPOINT_DTYPES))
        shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
        bits = draw(st.binary(min_size=64, max_size=64))
        raw = np.frombuffer((bits * 64)[: 8 * max(1, int(np.prod(shape)))], np.uint8)
        np_dtype = jnp.dtype(dtype)
        if dtype == "bool":
            value = (raw[: int(np.prod(shape))] & 1).astype(bool).reshape(shape)
        else:
            count = int(np.prod(shape))
            value = raw[: count * np_dtype.itemsize].view(np_dtype).reshape(shape)
        return jnp.asarray(value) if dtype not in ("int64", "uint32", "float64") else value
    kind = draw(st.sampled_from(["dict", "list", "tuple"]))
    children = draw(st.lists(pytrees(depth=depth - 1), min_size=1, max_size=3))
    if kind == "dict":
        return {f"k{i}": c for i, c in enumerate(children)}
    return list(children) if kind == "list" else tuple(children)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(tree=pytrees())
def test_checkpoint_save_then_restore_is_the_identity(tree, tmp_path_factory):
    from funcnn.train import checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tree.ckpt"
    checkpoint.save(path, tree)
    back = checkpoint.restore(path, like=tree)
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    for got, want in zip(jax.tree.leaves(back), jax.tree.leaves(tree), strict=True):
        got, want = np.asarray(got), np.asarray(want)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()  # bit for bit, NaN payloads included
