"""A systematic sweep of the public API (hypothesis): every input a careful user might pass —
ranks, dtypes (int, bool, complex, float16, bfloat16, float64), zero-size dims, NaN/inf,
masks of the wrong dtype or shape, Python scalars where arrays are expected — either gets a
clear ValueError/TypeError raised by funcnn itself (not by XLA or NumPy inside it) that
names the argument, or a correct result. "Correct" is checked against an independent
answer: the same input as float32 (a layer's output may not depend on how its numbers were
typed), a float64 NumPy transcription in `funcnn.reference` (losses), or the exact values
given (checkpoints).

The mask property: for every layer that takes a `mask`, values and gradients (parameters
and real inputs) are independent of what the padded steps hold — NaN, ±inf or 1e30 — as
they are when the padded steps hold zeros.

Families and inputs (derandomized; each family is its own test so a failure names it):
    layer inputs    13 layers × dtype ∈ 7 × batch dims (), (0,), (2,), (1, 2) × T ∈ {0, 1, 3}
                    × right/wrong feature width; Python scalars, lists, None, str as x
    masks           13 layers given a mask × garbage ∈ {nan, inf, −inf, 1e30} × lengths
                    (values and gradients), and masks of float dtype / wrong shape
    losses          cross_entropy: class ids in/out of range, soft targets, bool or float
                    ids, a wrong batch; logits with NaN/±inf/1e4 — against
                    reference.cross_entropy (float64); mse, BCE-with-logits and BCE × 7 dtypes
                    × shapes (), (3,), (2, 2), (0,) × matching or mismatched targets
    optimizers      sgd, momentum, adam, adamw, rmsprop, lion × float32/16/bfloat16 × shapes
                    (3,), (0,), () (dtype kept, finite, sgd's −η·g); × complex params, int,
                    bool, complex gradients, Python floats; adam(mu_dtype=int32)
    token ids       embedding, bag_of_words (plain, causal) × id dtype ∈ int32, uint8, int64,
                    bool, float32 × shapes incl. T = 0 and B = 0 × ids out of range at a real
                    step × garbage ids at padded steps — against table rows in float64
    checkpoints     16 storable dtypes × arbitrary bit patterns (NaN payloads, extremes) ×
                    shapes with 0/1/3-sized dims × like = None / NumPy / ShapeDtypeStruct

Cases in modules other branches own are pinned as `xfail(strict=True)` with the owner and
the exact input in the reason, so the suite turns red once they are fixed (remove the mark).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funcnn
from funcnn import losses, nn, optim, reference
from funcnn.train import checkpoint

FUNCNN_DIR = os.path.dirname(funcnn.__file__)
KEY = jax.random.key(0)
SWEEP = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CHEAP = settings(SWEEP, max_examples=25)  # no compilation per example (file round trips)
DTYPES = ["float32", "float16", "bfloat16", "float64", "int32", "bool", "complex64"]


@pytest.fixture(autouse=True, scope="module")
def _full_tracebacks():
    """JAX trims its own frames from tracebacks; the sweep needs them to tell an error funcnn
    raised from one XLA raised inside funcnn."""
    before = jax.config.jax_traceback_filtering
    jax.config.update("jax_traceback_filtering", "off")
    yield
    jax.config.update("jax_traceback_filtering", before)


def raised_by_funcnn(err: BaseException) -> bool:
    """True when the innermost frame of `err`'s traceback is funcnn's own code."""
    tb, last = err.__traceback__, None
    while tb is not None:
        last, tb = tb.tb_frame.f_code.co_filename, tb.tb_next
    return last is not None and os.path.abspath(last).startswith(FUNCNN_DIR)


def outcome(fn: Callable[[], Any], *names: str) -> Any:
    """fn()'s result, or None when it raised a clear refusal: a ValueError/TypeError raised
    by funcnn whose message names one of `names`. Anything else fails the test."""
    try:
        return fn()
    except (ValueError, TypeError) as err:
        message = str(err)
        assert raised_by_funcnn(err), f"bare {type(err).__name__} from below funcnn: {message}"
        assert any(name in message for name in names), f"names none of {names}: {message}"
        return None


def make_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> Any:
    """Values in a range every dtype holds (ints −3…3, bools), as JAX (NumPy for float64,
    which JAX would narrow with x64 off)."""
    values = rng.normal(size=shape)
    if dtype == "bool":
        return jnp.asarray(values > 0)
    if dtype == "int32":
        return jnp.asarray(np.clip(np.round(values * 2), -3, 3).astype(np.int32))
    if dtype == "complex64":
        return jnp.asarray((values + 1j * rng.normal(size=shape)).astype(np.complex64))
    if dtype == "float64":
        return values
    return jnp.asarray(values, dtype)


def as_float32(x: Any) -> jax.Array:
    return jnp.asarray(np.asarray(x, np.float64).astype(np.float32))


TOLERANCE = {"float16": 2e-2, "bfloat16": 1e-1}  # of the float32 answer, per input dtype


# ----------------------------------------------------------------------------- layer inputs


class Family(NamedTuple):
    layer: nn.Layer
    features: int  # the input's last axis
    sequence: bool  # takes (..., T, C) with T meaningful (mask-taking)
    real_only: bool = True  # complex input must be refused (it has no meaning here)


FAMILIES: dict[str, Family] = {
    "dense": Family(nn.dense(3), 5, False),
    "mlp": Family(nn.mlp([5, 4, 3]), 5, False),
    "layer_norm": Family(nn.layer_norm(), 5, False),
    "conv1d": Family(nn.conv1d(3, 2), 4, True),
    "conv1d_causal": Family(nn.conv1d(3, 2, padding="CAUSAL"), 4, True),
    "avg_pool1d": Family(nn.avg_pool1d(2), 4, True),
    "max_pool1d": Family(nn.max_pool1d(2), 4, True),
    "global_avg_pool": Family(nn.global_avg_pool(), 4, True),
    "global_max_pool": Family(nn.global_max_pool(), 4, True),
    "multi_head_attention": Family(nn.multi_head_attention(4, num_heads=2), 4, True),
    "multi_head_attention_chunked": Family(
        nn.multi_head_attention(4, num_heads=2, implementation="chunked", chunk_size=2), 4, True
    ),
    "rnn": Family(nn.rnn(3), 4, True),
    "lstm": Family(nn.lstm(3), 4, True),
    "gru": Family(nn.gru(3), 4, True),
}


# Known cases, each the exact input that shows it; the family's sweep is xfail until fixed.
INPUT_XFAILS = {}


def family_params(xfails: dict[str, str], names: Any) -> list:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=xfails[name]))
        if name in xfails
        else name
        for name in names
    ]


@st.composite
def layer_inputs(draw, family: Family):
    # A small universe of shapes (so compiled programs are reused across draws): batch dims
    # none, one of size 0/1/2 or two; T of 3, 1 or 0; the right feature width or 1.
    batch = draw(st.sampled_from([(2,), (), (0,), (1, 2)]))
    steps = (draw(st.sampled_from([3, 1, 0])),) if family.sequence else ()
    features = draw(st.sampled_from([family.features, 1]))
    dtype = draw(st.sampled_from(DTYPES))
    return (*batch, *steps, features), dtype


JITTED: dict[str, Any] = {}  # name → jax.jit(layer.apply)


def check_layer_input(name: str, shape: tuple[int, ...], dtype: str) -> None:
    family = FAMILIES[name]
    rng = np.random.default_rng(len(shape) * 31 + sum(shape))
    x = make_array(rng, shape, dtype)
    # init on the shape: a refusal there must name the shape; then apply must agree with it.
    # init refuses zero-size dims (there is nothing to infer from), so a zero-size x is
    # applied with the params of its size-1 twin (params depend on the feature width only).
    sized = tuple(max(d, 1) for d in shape[:-1]) + shape[-1:]
    built = outcome(lambda: family.layer.init(KEY, sized), "shape", "x")
    if built is None:
        return
    params, out_shape = built
    apply = JITTED.setdefault(name, jax.jit(family.layer.apply))  # one compile per shape
    y = outcome(lambda: apply(params, x), "x", "dtype", "shape")
    if y is None:
        return
    assert not (family.real_only and dtype == "complex64"), (
        f"{name}: complex x {shape} gave a {y.dtype} result instead of a TypeError naming x"
    )
    want = apply(params, as_float32(x))  # the same numbers, typed as float32
    expected = out_shape if sized == shape else want.shape
    assert tuple(y.shape) == tuple(expected), (name, shape, dtype, y.shape, expected)
    got = np.asarray(jnp.asarray(y, jnp.float32))
    if y.size:
        assert np.isfinite(got).all(), f"{name}: finite x {shape} {dtype} gave non-finite y"
    tol = TOLERANCE.get(dtype, 1e-5)
    np.testing.assert_allclose(got, np.asarray(want), rtol=tol, atol=tol, err_msg=name)


# The chunked attention shares its input checks with the plain one (its masks are swept).
@pytest.mark.parametrize(
    "name", family_params(INPUT_XFAILS, [n for n in FAMILIES if not n.endswith("_chunked")])
)
def test_layer_inputs_are_refused_clearly_or_computed_correctly(name):
    family = FAMILIES[name]
    # Pinned first (the shapes that show the known cases), then the drawn ones.
    for dtype in ("bfloat16", "bool", "complex64"):
        shape = (2, 3, family.features) if family.sequence else (2, family.features)
        check_layer_input(name, shape, dtype)
    if family.sequence:
        check_layer_input(name, (2, 0, family.features), "float32")

    @SWEEP
    @given(layer_inputs(family))
    def sweep(case):
        check_layer_input(name, *case)

    sweep()


NOT_ARRAYS = {"float": 1.0, "int": 3, "list": [[1.0, 2.0]], "None": None, "str": "x"}
SCALAR_XFAILS: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize(
    "name, kind",
    [
        pytest.param(
            name,
            kind,
            marks=[pytest.mark.xfail(strict=True, reason=SCALAR_XFAILS[name, kind])]
            if (name, kind) in SCALAR_XFAILS
            else [],
        )
        for name in ("dense", "layer_norm", "conv1d", "rnn", "max_pool1d")
        for kind in NOT_ARRAYS
    ],
)
def test_python_scalars_and_lists_for_x_are_refused_or_computed(name, kind):
    family = FAMILIES[name]
    params, _ = family.layer.init(KEY, (2, 3, family.features))
    x = NOT_ARRAYS[kind]
    y = outcome(lambda: family.layer.apply(params, x), "x", "shape", "dtype")
    if y is not None:  # a list of the right width is an array like any other
        np.testing.assert_allclose(y, family.layer.apply(params, as_float32(x)), rtol=1e-6)


# ----------------------------------------------------------------------------- masks

# Per-step layers take the mask too: they zero padded steps, so ∂L/∂w never sees 0·NaN.
PER_STEP_WITH_MASK = {
    "rms_norm": Family(nn.rms_norm(), 4, False),
    "feed_forward": Family(nn.feed_forward(4, 6), 4, False),
    "activation": Family(nn.activation(funcnn.activations.sigmoid), 4, False),
    "pool_then_dense": Family(
        nn.serial(nn.conv1d(3, 2), nn.global_avg_pool(), nn.dense(2)), 4, False
    ),
}
MASK_FAMILIES = [n for n, f in FAMILIES.items() if f.sequence] + [
    "rnn_reverse",
    "dense",
    "mlp",
    "layer_norm",
    *PER_STEP_WITH_MASK,
]
FAMILIES_WITH_MASK = {
    **FAMILIES,
    **PER_STEP_WITH_MASK,
    "rnn_reverse": Family(nn.rnn(3, reverse=True), 4, True),
}

MASK_XFAILS: dict[str, str] = {}


MASK_STEPS = 4  # one shape (2, 4, C) per family, so the jitted check compiles once


@st.composite
def padded_inputs(draw):
    lengths = draw(st.lists(st.integers(1, MASK_STEPS), min_size=2, max_size=2))
    garbage = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e30]))
    return lengths, garbage


def _value_and_grads(layer: nn.Layer):
    def loss(params, x, mask, weights):
        y = layer.apply(params, x, mask=mask)
        if y.ndim == 3 and y.shape[1] == MASK_STEPS:  # per-step output: only real steps count
            y = jnp.where(mask[..., None], y, 0.0)
        return jnp.sum(y * weights)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


MASK_CHECKS: dict[str, Any] = {}  # name → jitted value-and-gradients, built on first use


def check_padding_never_leaks(name: str, lengths: list[int], garbage: float) -> None:
    family = FAMILIES_WITH_MASK[name]
    shape = (2, MASK_STEPS, family.features)
    params, out_shape = family.layer.init(KEY, shape)
    step = MASK_CHECKS.setdefault(name, _value_and_grads(family.layer))
    mask = np.arange(MASK_STEPS)[None, :] < np.asarray(lengths)[:, None]  # (B, T)
    rng = np.random.default_rng(sum(lengths))
    clean = np.where(mask[..., None], rng.normal(size=shape), 0.0).astype(np.float32)
    dirty = np.where(mask[..., None], clean, garbage).astype(np.float32)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=out_shape), jnp.float32)
    want, (want_gp, want_gx) = step(params, jnp.asarray(clean), jnp.asarray(mask), weights)
    got, (got_gp, got_gx) = step(params, jnp.asarray(dirty), jnp.asarray(mask), weights)
    where = f"{name}: garbage {garbage} at padded steps (lengths {lengths} of {MASK_STEPS})"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=where + ": value")
    for a, b in zip(jax.tree.leaves(got_gp), jax.tree.leaves(want_gp), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=where + ": ∂/∂params")
    real = mask[..., None]
    np.testing.assert_allclose(
        np.where(real, got_gx, 0),
        np.where(real, want_gx, 0),
        rtol=1e-5,
        atol=1e-5,
        err_msg=where + ": ∂/∂x at real steps",
    )


@pytest.mark.parametrize("name", family_params(MASK_XFAILS, MASK_FAMILIES))
def test_padded_steps_never_change_values_or_gradients(name):
    for garbage in (math.nan, math.inf):  # pinned: two rows, one half padded
        check_padding_never_leaks(name, [4, 2], garbage)

    @SWEEP
    @given(padded_inputs())
    def sweep(case):
        check_padding_never_leaks(name, *case)

    sweep()


WRONG_MASKS = {
    "float": np.ones((2, 3), np.float32),
    "short": np.ones((2, 2), bool),
    "unbatched": np.ones(3, bool),
    "extra-axis": np.ones((2, 3, 1), bool),
}


def wrong_mask_cases() -> list:
    # A per-step layer after a windowed pool sees fewer steps than the mask counts: it has
    # nothing to select and passes x on (nn.masking.zero_padding), so "short" is not wrong
    # for it; its rank and dtype are still checked.
    return [
        pytest.param(name, WRONG_MASKS[kind], id=f"{kind}-{name}")
        for kind in WRONG_MASKS
        for name in MASK_FAMILIES
        if kind != "short" or FAMILIES_WITH_MASK[name].sequence
    ]


@pytest.mark.parametrize(("name", "mask"), wrong_mask_cases())
def test_masks_of_the_wrong_dtype_or_shape_are_refused_naming_mask(name, mask):
    family = FAMILIES_WITH_MASK[name]
    params, _ = family.layer.init(KEY, (2, 3, family.features))
    x = jnp.ones((2, 3, family.features))
    result = outcome(lambda: family.layer.apply(params, x, mask=jnp.asarray(mask)), "mask")
    assert result is None, f"{name} accepted mask {mask.dtype}{mask.shape}"


# ----------------------------------------------------------------------------- losses


@st.composite
def classification_batches(draw):
    """(logits, targets, kind): class ids in or out of range, soft targets, bool or float ids,
    logits with NaN/±inf entries."""
    batch, classes = draw(st.sampled_from([(2, 3), (3, 2), (1, 4)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    logits = rng.normal(size=(batch, classes)).astype(np.float32) * 3
    special = draw(st.sampled_from([None, math.nan, math.inf, -math.inf, 1e4]))
    if special is not None:
        logits[0, 0] = special
    kind = draw(
        st.sampled_from(["ids", "ids", "out of range", "soft", "bool", "float ids", "wrong B"])
    )
    ids = rng.integers(0, classes, size=batch)
    targets: Any = {
        "ids": ids.astype(np.int32),
        "out of range": np.where(np.arange(batch) == 0, classes, ids).astype(np.int32),
        "soft": rng.dirichlet(np.ones(classes), size=batch).astype(np.float32),
        "bool": ids.astype(bool),
        "float ids": ids.astype(np.float32),
        "wrong B": rng.integers(0, classes, size=batch + 1).astype(np.int32),
    }[kind]
    return logits, targets, kind


@SWEEP
@given(classification_batches())
def test_cross_entropy_is_refused_clearly_or_matches_float64(batch):
    logits, targets, kind = batch
    got = outcome(
        lambda: losses.cross_entropy(jnp.asarray(logits), jnp.asarray(targets)),
        "targets",
        "labels",
        "logits",
    )
    if got is None:
        assert kind in ("out of range", "bool", "float ids", "wrong B"), kind
        return
    assert kind in ("ids", "soft"), f"cross_entropy accepted {kind} targets"
    want = reference.cross_entropy(logits, targets)
    np.testing.assert_allclose(np.float64(got), want, rtol=1e-5, atol=1e-5)


def test_cross_entropy_of_all_minus_inf_logits_is_plus_inf():
    assert float(losses.cross_entropy(jnp.full((2, 3), -jnp.inf), jnp.asarray([0, 1]))) == np.inf


def test_soft_targets_with_negative_mass_are_refused():
    soft = jnp.asarray([[1.5, -0.5, 0.0], [1.0, 0.0, 0.0]])
    assert outcome(lambda: losses.cross_entropy(jnp.zeros((2, 3)), soft), "targets") is None


@SWEEP
@given(
    st.sampled_from(["mse", "bce_with_logits", "bce"]),
    st.sampled_from(DTYPES),
    st.sampled_from([(3,), (2, 2), (0,), ()]),
    st.booleans(),
)
def test_elementwise_losses_are_refused_clearly_or_match_float64(name, dtype, shape, same):
    rng = np.random.default_rng(len(shape))
    fn, ref = {
        "mse": (losses.mse, reference.mse),
        "bce_with_logits": (
            losses.binary_cross_entropy_with_logits,
            reference.binary_cross_entropy_with_logits,
        ),
        "bce": (losses.binary_cross_entropy, reference.binary_cross_entropy),
    }[name]
    pred = make_array(rng, shape, dtype)
    if name == "bce" and dtype not in ("bool", "int32", "complex64"):
        pred = jnp.asarray(1 / (1 + np.exp(-np.asarray(pred, np.float64))), jnp.asarray(pred).dtype)
    target_shape = shape if same else (*shape, 2)
    targets = jnp.asarray(rng.uniform(size=target_shape) > 0.5, jnp.float32)
    got = outcome(lambda: fn(pred, targets), "pred", "targets", "logits", "probs", "empty")
    if got is None:
        return
    assert dtype not in ("bool", "int32", "complex64"), f"{name} accepted {dtype} input"
    assert same and math.prod(shape) > 0, f"{name} accepted {shape} vs {target_shape}"
    want = ref(np.asarray(pred, np.float64), np.asarray(targets))
    np.testing.assert_allclose(np.float64(got), want, rtol=TOLERANCE.get(dtype, 1e-5))


# ----------------------------------------------------------------------------- optimizers

OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.1),
    "momentum": lambda: optim.sgd(0.1, momentum=0.9),
    "adam": lambda: optim.adam(0.1),
    "adamw": lambda: optim.adamw(0.1),
    "rmsprop": lambda: optim.rmsprop(0.1),
    "lion": lambda: optim.lion(0.1),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizers_keep_every_float_dtype(name):
    @SWEEP
    @given(st.sampled_from(["float32", "float16", "bfloat16"]), st.sampled_from([(3,), (0,), ()]))
    def sweep(dtype, shape):
        opt = OPTIMIZERS[name]()
        params = {"w": jnp.ones(shape, dtype)}
        grads = {"w": jnp.full(shape, 0.5, dtype)}
        updates, _ = opt.update(grads, opt.init(params), params)
        assert updates["w"].dtype == jnp.dtype(dtype) and updates["w"].shape == shape
        assert np.isfinite(np.asarray(updates["w"], np.float32)).all()
        if name == "sgd":  # closed form: −η·g
            np.testing.assert_allclose(np.asarray(updates["w"], np.float32), -0.05, rtol=1e-2)

    sweep()


NOT_FLOAT = {  # (params, grads): each must be a TypeError naming params or the gradients
    "complex params": ({"w": jnp.ones(3, jnp.complex64)}, {"w": jnp.full(3, 1j, jnp.complex64)}),
    "int grads": ({"w": jnp.ones(3)}, {"w": jnp.ones(3, jnp.int32)}),
    "bool grads": ({"w": jnp.ones(3)}, {"w": jnp.ones(3, bool)}),
    "complex grads": ({"w": jnp.ones(3)}, {"w": jnp.full(3, 1j, jnp.complex64)}),
    "Python floats": ({"w": 1.0}, {"w": 0.5}),
}


@pytest.mark.parametrize(
    "name, case",
    [pytest.param(name, case) for name in OPTIMIZERS for case in NOT_FLOAT],
)
def test_optimizers_refuse_parameters_and_gradients_that_are_not_real_floats(name, case):
    params, grads = NOT_FLOAT[case]
    opt = OPTIMIZERS[name]()

    def step():
        return opt.update(grads, opt.init(params), params)

    assert outcome(step, "params", "grads", "updates", "gradient") is None


def test_adam_refuses_an_integer_moment_dtype():
    assert outcome(lambda: optim.adam(0.1, mu_dtype=jnp.int32), "mu_dtype") is None


# ----------------------------------------------------------------------------- checkpoints

STORABLE = [
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", "complex64", "complex128", "bfloat16", "float8_e4m3fn",
]  # fmt: skip


@st.composite
def storable_arrays(draw):
    name = draw(st.sampled_from(STORABLE))
    dtype = np.dtype(getattr(ml_dtypes, name)) if hasattr(ml_dtypes, name) else np.dtype(name)
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 3]), max_size=3)))
    raw = draw(st.binary(min_size=dtype.itemsize, max_size=dtype.itemsize))
    size = math.prod(shape)
    # Arbitrary bit patterns: every value the dtype holds, NaN payloads and extremes included.
    array = np.frombuffer((raw * max(size, 1))[: size * dtype.itemsize], dtype=dtype)
    if name == "bool":
        array = array.view(np.uint8) % 2 == 1
    return array.reshape(shape)


@CHEAP
@given(storable_arrays(), st.sampled_from(["none", "numpy", "struct"]))
def test_checkpoints_round_trip_every_dtype_bit_for_bit(array, like_kind):
    with tempfile.TemporaryDirectory() as folder:
        path = checkpoint.save(Path(folder) / "c.npz", {"a": array, "s": array.ravel()[:1]})
        tree = {"a": array, "s": array.ravel()[:1]}
        like = {
            "none": None,
            "numpy": tree,
            "struct": jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree),
        }[like_kind]
        restored = outcome(lambda: checkpoint.restore(path, like=like), "dtype")
    if restored is None:  # a device copy cannot hold it with x64 off: refused, never narrowed
        return
    for key in tree:
        got = np.asarray(restored[key])
        assert got.dtype == tree[key].dtype and got.shape == tree[key].shape
        assert got.tobytes() == tree[key].tobytes()


# ----------------------------------------------------------------------------- token ids

ID_LAYERS = {
    "embedding": nn.embedding(5, 3),
    "bag_of_words": nn.bag_of_words(5, 3),
    "bag_of_words_causal": nn.bag_of_words(5, 3, causal=True),
}


def ids_reference(name: str, table: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float64: rows of the table; their (prefix) mean over the real steps for the bags."""
    rows = table.astype(np.float64)[np.where(mask, ids, 0)]  # (B, T, d)
    if name == "embedding":
        return rows
    weights = mask[..., None].astype(np.float64)
    if name == "bag_of_words":
        return (rows * weights).sum(-2) / np.maximum(weights.sum(-2), 1)
    return np.cumsum(rows * weights, -2) / np.maximum(np.cumsum(weights, -2), 1)


@st.composite
def token_ids(draw):
    batch, steps = draw(st.sampled_from([(2, 4), (1, 1), (2, 0), (0, 3)]))
    dtype = draw(st.sampled_from(["int32", "uint8", "int64", "bool", "float32"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    ids = rng.integers(0, 5, size=(batch, steps))
    if draw(st.booleans()) and ids.size:
        ids.flat[0] = draw(st.sampled_from([5, -1, 1000]))  # out of range at a real step
    lengths = rng.integers(0 if steps == 0 else 1, steps + 1, size=batch)
    mask = np.arange(steps)[None, :] < lengths[:, None]
    garbage = draw(st.sampled_from([0, 7, -3]))  # what the padded steps hold
    return np.where(mask, ids, garbage).astype(dtype), mask, draw(st.booleans())


ID_XFAILS: dict[str, str] = {}


@pytest.mark.parametrize("name", family_params(ID_XFAILS, ID_LAYERS))
def test_token_ids_are_refused_clearly_or_looked_up_exactly(name):
    layer = ID_LAYERS[name]
    params, _ = layer.init(KEY, (2, 4))

    @SWEEP
    @given(token_ids())
    def sweep(case):
        ids, mask, with_mask = case
        if not with_mask:
            mask = np.ones(ids.shape, bool)
        y = outcome(
            lambda: layer.apply(params, ids, mask=jnp.asarray(mask) if with_mask else None),
            "ids",
        )
        real = np.where(mask, ids.astype(np.int64), 0)
        bad = ids.dtype.kind not in "iu" or ((real < 0) | (real >= 5)).any()
        if y is None:
            assert bad, f"{name} refused valid ids {ids.tolist()} (mask {mask.tolist()})"
            return
        assert not bad, f"{name} accepted ids {ids.tolist()} of dtype {ids.dtype}"
        want = ids_reference(name, np.asarray(params["table"]), real, mask)
        np.testing.assert_allclose(np.asarray(y), want, rtol=1e-6, atol=1e-7)

    sweep()
