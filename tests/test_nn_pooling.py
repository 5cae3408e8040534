"""2-D pooling against a loop-by-loop float64 NumPy reference (values, and gradients by the
complex step), PyTorch's count_include_pad=False rule, masks, and padded steps that hold
garbage (NaN, inf, 1e30) changing neither values nor gradients (issue #24)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.nn.pooling import _explicit_pairs
from funcnn.reference import complex_step, global_pool2d_reference, pool2d_reference
from funcnn.reference.vision import same_padding

X = np.random.default_rng(0).normal(size=(2, 5, 4, 3))  # (B, H, W, C)
MASK = np.ones(X.shape[:-1], bool)
MASK[0, 3:, :] = False  # example 0: its last two rows are padding
MASK[1, :, 0] = False  # example 1: its first column is padding
CASES = list(itertools.product(["max", "avg"], ["VALID", "SAME", ((1, 0), (0, 1))], [None, (2, 1)]))
GARBAGE = [np.nan, np.inf, -np.inf, 1e30]


def _layer(kind, padding, strides):
    make = nn.max_pool2d if kind == "max" else nn.avg_pool2d
    return make((2, 3), strides=strides, padding=padding)


def _pads(padding, strides):
    s = (2, 3) if strides is None else strides
    if isinstance(padding, str):
        if padding == "VALID":
            return ((0, 0), (0, 0))
        return (same_padding(5, 2, s[0]), same_padding(4, 3, s[1]))
    return _explicit_pairs(padding, "p", signed=False)


@pytest.fixture(scope="module")
def runs():
    """Every case, masked and not, with its gradient: one fast-compiled float64 program."""
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        cotangents = {
            str((*c, m)): rng.normal(size=jax.eval_shape(_layer(*c).apply, {}, X).shape)
            for c in CASES
            for m in (False, True)
        }

        def run(x, mask):
            out = {}
            for c in CASES:
                for m in (False, True):
                    layer = _layer(*c)
                    f = lambda x, layer=layer, m=m: layer.apply({}, x, mask=mask if m else None)
                    y, vjp = jax.vjp(f, x)
                    out[str((*c, m))] = (y, vjp(cotangents[str((*c, m))])[0])
            return out

        fast = {"xla_backend_optimization_level": 0}
        results = jax.jit(run).lower(X, MASK).compile(fast)(X, MASK)
    return {k: (cotangents[k], *map(np.asarray, v)) for k, v in results.items()}


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("masked", [False, True])
def test_pool2d_values_and_gradients_match_reference(runs, case, masked):
    kind, padding, strides = case
    r, y, grad = runs[str((*case, masked))]
    s = (2, 3) if strides is None else strides
    mask = MASK if masked else None

    def reference(x):
        return pool2d_reference(x, (2, 3), s, _pads(padding, strides), kind, mask)

    _, out_shape = _layer(*case).init(None, X.shape)
    assert y.shape == out_shape
    np.testing.assert_allclose(y, reference(X), rtol=1e-12, atol=1e-12)
    direction = np.random.default_rng(2).normal(size=X.shape)
    exact = complex_step(lambda x: np.sum(r * reference(x)), X, direction)
    np.testing.assert_allclose(np.sum(grad * direction), exact, rtol=1e-10)


def test_avg_pool2d_does_not_count_padding_like_torch_count_include_pad_false():
    # A 3×3 window at stride 1 over ones with one cell of padding: every mean is exactly 1
    # (counting the padding, PyTorch's default, would give 4/9 in the corners).
    y = nn.avg_pool2d(3, strides=1, padding=1).apply({}, jnp.ones((1, 4, 4, 1)))
    np.testing.assert_array_equal(y, np.ones((1, 4, 4, 1)))
    y = nn.max_pool2d(3, strides=1, padding="SAME").apply({}, -jnp.ones((1, 4, 4, 1)))
    np.testing.assert_array_equal(y, -np.ones((1, 4, 4, 1)))  # padding is never the max


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_global_pool2d_matches_reference_with_mask(kind):
    layer = nn.global_max_pool2d() if kind == "max" else nn.global_avg_pool2d()
    assert layer.init(None, (-1, 5, 4, 3))[1] == (-1, 3)
    x = jnp.asarray(X, jnp.float32)
    for mask in (None, MASK):
        got = layer.apply({}, x, mask=None if mask is None else jnp.asarray(mask))
        np.testing.assert_allclose(got, global_pool2d_reference(X, kind, mask), rtol=1e-6)
    empty = np.zeros(X.shape[:-1], bool)
    np.testing.assert_array_equal(layer.apply({}, x, mask=jnp.asarray(empty)), np.zeros((2, 3)))


def _poisoned(value):
    return np.where(MASK[..., None], X, value).astype(np.float32)


MASKED_LAYERS = {
    "max_pool2d": nn.max_pool2d(2, strides=1, padding="SAME"),
    "avg_pool2d": nn.avg_pool2d((2, 3), strides=(1, 2), padding=1),
    "global_max_pool2d": nn.global_max_pool2d(),
    "global_avg_pool2d": nn.global_avg_pool2d(),
    "global_avg_pool (sequence)": nn.global_avg_pool(),
    "global_max_pool (sequence)": nn.global_max_pool(),
    "avg_pool1d (sequence)": nn.avg_pool1d(2, stride=1, padding="SAME"),
    "max_pool1d (sequence)": nn.max_pool1d(2, stride=1),
}


@pytest.mark.parametrize("name", sorted(MASKED_LAYERS))
def test_padded_content_changes_neither_values_nor_gradients(name):
    # Issue #24: a masked mean computed x·0, so NaN at a padded step gave NaN. Every pool
    # must select padded entries away before any arithmetic, for values and gradients.
    layer = MASKED_LAYERS[name]
    sequence = "sequence" in name
    x_of = (lambda v: _poisoned(v).reshape(2, 20, 3)) if sequence else _poisoned
    mask = jnp.asarray(MASK.reshape(2, 20) if sequence else MASK)

    @jax.jit
    def value_and_grad(x):
        return jax.value_and_grad(lambda x: jnp.sum(jnp.sin(layer.apply({}, x, mask=mask))))(x)

    clean_value, clean_grad = value_and_grad(jnp.asarray(x_of(0.0)))
    assert np.isfinite(clean_value)
    for garbage in GARBAGE:
        value, grad = value_and_grad(jnp.asarray(x_of(garbage)))
        assert value == clean_value, (garbage, value, clean_value)
        np.testing.assert_array_equal(grad, clean_grad)


def test_pool_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        nn.max_pool2d(2).init(None, (4, 4, 3))
    with pytest.raises(ValueError, match=r"\(batch, time, channels\)"):
        nn.global_avg_pool().init(None, (4, 3))  # (B, C) is not pooled over its batch
    with pytest.raises(ValueError, match="smaller than the window"):
        nn.avg_pool2d(2, padding=2)
    with pytest.raises(ValueError, match="does not fit"):
        nn.max_pool2d(3).init(None, (1, 2, 5, 1))
    with pytest.raises(ValueError, match="mask must have shape"):
        nn.max_pool2d(2).apply({}, jnp.zeros((1, 4, 4, 1)), mask=jnp.ones((1, 4), bool))
