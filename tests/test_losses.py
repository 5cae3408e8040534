"""Losses against float64 NumPy transcriptions, finite differences, and the traps at extremes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import losses
from funcnn.reference import functional as ref
from funcnn.reference.numerical import max_relative_error, numerical_grad

_DATA = np.random.default_rng(1)  # drawn once, at import: constants, not per-test draws
LOGITS = _DATA.normal(size=(4, 5)) * 2  # (B, K)
IDS = np.array([0, 3, 4, 1])  # (B,)
PROBS = _DATA.dirichlet(np.ones(5), size=4)  # (B, K), rows sum to 1
MASK = np.array([True, False, True, True])
REDUCTIONS = ["mean", "sum", "none"]


def x64(fn, *args, **kwargs):
    """Run fn in float64 and return NumPy output."""
    with jax.enable_x64(True):
        args = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
        return np.asarray(fn(*args, **kwargs))


# ----------------------------------------------------------------------------- mse


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_reference(reduction, rng):
    pred, target = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    got = x64(losses.mse, pred, target, reduction=reduction)
    np.testing.assert_allclose(got, ref.mse(pred, target, reduction), rtol=1e-12)


def test_mse_gradient_is_2_error_over_n(rng):
    pred, target = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    g = x64(jax.grad(lambda p: losses.mse(p, jnp.asarray(target))), pred)
    np.testing.assert_allclose(g, 2 * (pred - target) / pred.size, rtol=1e-12)


def test_mse_rejects_silent_broadcast_and_bad_arguments():
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        losses.mse(jnp.ones((4, 1)), jnp.ones(4))
    with pytest.raises(ValueError, match=r"\['mean', 'sum', 'none'\].*'avg'"):
        losses.mse(jnp.ones(4), jnp.ones(4), reduction="avg")
    with pytest.raises(TypeError, match="floating"):
        losses.mse(jnp.ones(4, jnp.int32), jnp.ones(4))


# ------------------------------------------------------------------- cross-entropy

CE_CASES = [
    pytest.param(IDS, {}, id="ids"),
    pytest.param(IDS, {"label_smoothing": 0.1}, id="ids-smooth"),
    pytest.param(IDS, {"where": MASK}, id="ids-where"),
    pytest.param(IDS, {"where": MASK, "label_smoothing": 0.2}, id="ids-where-smooth"),
    pytest.param(PROBS, {}, id="probs"),
    pytest.param(PROBS, {"label_smoothing": 0.3, "where": MASK}, id="probs-where-smooth"),
]


@pytest.mark.parametrize(("labels", "kwargs"), CE_CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_reference(labels, kwargs, reduction):
    got = x64(losses.cross_entropy, LOGITS, labels, reduction=reduction, **kwargs)
    expected = ref.cross_entropy(LOGITS, labels, reduction=reduction, **kwargs)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_cross_entropy_where_mean_divides_by_kept_count():
    per_row = ref.cross_entropy(LOGITS, IDS, reduction="none")
    got = x64(losses.cross_entropy, LOGITS, IDS, where=MASK)
    np.testing.assert_allclose(got, per_row[MASK].sum() / MASK.sum(), rtol=1e-12)
    nothing = x64(losses.cross_entropy, LOGITS, IDS, where=np.zeros(4, bool))
    assert nothing == 0.0


def test_cross_entropy_takes_a_traced_mask_beside_concrete_labels():
    # Labels closed over (concrete) while the mask is a jit argument (traced): the eager
    # range check must skip, not try to read the traced mask's values.
    per_row = ref.cross_entropy(LOGITS, IDS, reduction="none")
    with jax.enable_x64(True):
        logits, ids = jnp.asarray(LOGITS), jnp.asarray(IDS)
        got = jax.jit(lambda w: losses.cross_entropy(logits, ids, where=w))(jnp.asarray(MASK))
    np.testing.assert_allclose(got, per_row[MASK].sum() / MASK.sum(), rtol=1e-12)


@pytest.mark.parametrize(("labels", "kwargs"), CE_CASES)
def test_cross_entropy_gradient_matches_finite_differences(labels, kwargs):
    with jax.enable_x64(True):
        fn = lambda z: losses.cross_entropy(z, jnp.asarray(labels), **kwargs)
        g = jax.grad(fn)(jnp.asarray(LOGITS))
        fd = numerical_grad(fn, LOGITS)
    assert max_relative_error(g, fd) < 1e-6


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    g = x64(jax.grad(lambda z: losses.cross_entropy(z, jnp.asarray(IDS), reduction="sum")), LOGITS)
    np.testing.assert_allclose(g, ref.softmax(LOGITS) - np.eye(5)[IDS], rtol=1e-10, atol=1e-15)


def test_cross_entropy_extreme_logits_finite():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [0.0, 0.0, 1e4]], np.float32)
    y = np.array([0, 2, 1])
    for smoothing in (0.0, 0.1):
        loss = lambda z, s=smoothing: losses.cross_entropy(z, y, label_smoothing=s)
        value, grad = jax.jit(jax.value_and_grad(loss))(jnp.asarray(z))
        chex.assert_tree_all_finite((value, grad))
        np.testing.assert_allclose(value, ref.cross_entropy(z, y, smoothing), rtol=1e-5)
        q = (1 - smoothing) * np.eye(3)[y] + smoothing / 3
        np.testing.assert_allclose(grad, (ref.softmax(z) - q) / 3, atol=1e-6)


def test_cross_entropy_minus_inf_masked_non_targets_are_finite():
    z = np.array([[2.0, -np.inf, 0.5, -np.inf], [-np.inf, -np.inf, 1.0, -np.inf]], np.float32)
    y = np.array([0, 2])
    q_probs = np.array([[0.7, 0.0, 0.3, 0.0], [0.0, 0.0, 1.0, 0.0]], np.float32)
    for labels in (y, q_probs):
        for smoothing in (0.0, 0.2):
            fn = lambda z, labels=labels, s=smoothing: losses.cross_entropy(
                z, labels, label_smoothing=s
            )
            value, grad = jax.jit(jax.value_and_grad(fn))(jnp.asarray(z))
            chex.assert_tree_all_finite((value, grad))
            np.testing.assert_allclose(
                value, ref.cross_entropy(z, labels, smoothing), rtol=1e-6, atol=1e-7
            )
            np.testing.assert_array_equal(np.asarray(grad)[np.isinf(z)], 0.0)


def test_cross_entropy_out_of_range_labels():
    with pytest.raises(ValueError, match=r"\[0, 5\).*\[5\]"):
        losses.cross_entropy(jnp.asarray(LOGITS), jnp.array([0, 5, 1, 2]))
    with pytest.raises(ValueError, match=r"\[-1\]"):
        losses.cross_entropy(jnp.asarray(LOGITS), jnp.array([0, -1, 1, 2]))
    # Padding ids under a False mask are fine (PyTorch's ignore_index=-100 use case).
    padded = np.array([0, -100, 4, 1])
    got = losses.cross_entropy(jnp.asarray(LOGITS), padded, where=MASK)
    np.testing.assert_allclose(got, ref.cross_entropy(LOGITS, IDS, where=MASK), rtol=1e-6)
    # …but an out-of-range id at a kept position is refused, mask or not.
    with pytest.raises(ValueError, match=r"\[7\]"):
        losses.cross_entropy(jnp.asarray(LOGITS), np.array([0, -100, 7, 1]), where=MASK)
    # Under jit labels cannot be checked: the loss is NaN rather than a silent wrong number.
    traced = jax.jit(losses.cross_entropy)(jnp.asarray(LOGITS), jnp.array([0, 5, 1, 2]))
    assert np.isnan(traced)
    masked = jax.jit(lambda z, y: losses.cross_entropy(z, y, where=MASK))(
        jnp.asarray(LOGITS), padded
    )
    np.testing.assert_allclose(masked, ref.cross_entropy(LOGITS, IDS, where=MASK), rtol=1e-6)


def test_cross_entropy_shape_and_dtype_errors():
    z = jnp.asarray(LOGITS)
    with pytest.raises(ValueError, match=r"\(4,\).*\(4, 5\)"):
        losses.cross_entropy(z, jnp.zeros((4, 5), jnp.int32))
    with pytest.raises(ValueError, match=r"\(4, 1\)"):
        losses.cross_entropy(z, jnp.zeros((4, 1), jnp.int32))
    with pytest.raises(ValueError, match=r"probability targets.*\(4, 5\).*\(4,\)"):
        losses.cross_entropy(z, jnp.zeros(4))
    with pytest.raises(TypeError, match="floating"):
        losses.cross_entropy(jnp.zeros((4, 5), jnp.int32), jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match=r"where.shape=\(5,\)"):
        losses.cross_entropy(z, jnp.asarray(IDS), where=jnp.ones(5, bool))
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.cross_entropy(z, jnp.asarray(IDS), label_smoothing=1.01)
    with pytest.raises(ValueError, match="reduction"):
        losses.cross_entropy(z, jnp.asarray(IDS), reduction="batchmean")


def test_cross_entropy_language_model_shapes(rng):
    z = rng.normal(size=(2, 3, 7))  # (B, T, V)
    y = rng.integers(0, 7, size=(2, 3))
    keep = np.array([[True, True, False], [True, False, False]])
    got = x64(losses.cross_entropy, z, y, where=keep, reduction="none")
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, ref.cross_entropy(z, y, where=keep, reduction="none"), 1e-12)


# --------------------------------------------------------------- binary cross-entropy


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_reference(reduction, rng):
    z, y = rng.normal(size=(3, 4)) * 4, rng.uniform(size=(3, 4))
    got = x64(losses.binary_cross_entropy_with_logits, z, y, reduction=reduction)
    np.testing.assert_allclose(got, ref.binary_cross_entropy_with_logits(z, y, reduction), 1e-12)


def test_bce_with_logits_extremes_and_zero_have_exact_gradient():
    z = jnp.array([-1e4, -1e4, 0.0, 0.0, 1e4, 1e4, 30.0, -30.0])
    y = jnp.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.25, 0.75])
    per = jax.jit(lambda z: losses.binary_cross_entropy_with_logits(z, y, reduction="none"))(z)
    grad = jax.jit(
        jax.grad(lambda z: losses.binary_cross_entropy_with_logits(z, y, reduction="sum"))
    )(z)
    chex.assert_tree_all_finite((per, grad))
    np.testing.assert_allclose(per, ref.binary_cross_entropy_with_logits(z, y, "none"), 1e-6)
    # ∂ℓ/∂z = σ(z) − y, including ½ − y at z = 0 and exactly 0 / ±1 at saturation.
    np.testing.assert_allclose(grad, ref.sigmoid(z) - np.asarray(y), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(grad[:6], [0.0, -1.0, 0.5, -0.5, 1.0, 0.0])


def test_bce_with_logits_rejects_broadcast():
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        losses.binary_cross_entropy_with_logits(jnp.ones((4, 1)), jnp.ones(4))
    with pytest.raises(TypeError, match="floating"):
        losses.binary_cross_entropy_with_logits(jnp.ones(4, jnp.int32), jnp.ones(4))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_on_probabilities_matches_reference(reduction, rng):
    p, y = rng.uniform(0.01, 0.99, size=(5,)), rng.integers(0, 2, size=(5,)).astype(float)
    got = x64(losses.binary_cross_entropy, p, y, reduction=reduction)
    np.testing.assert_allclose(got, ref.binary_cross_entropy(p, y, reduction=reduction), 1e-12)


def test_bce_on_probabilities_clips_zero_and_one():
    p, y = jnp.array([0.0, 1.0, 0.0, 1.0]), jnp.array([1.0, 0.0, 0.0, 1.0])
    per = losses.binary_cross_entropy(p, y, reduction="none")
    chex.assert_tree_all_finite(per)
    np.testing.assert_allclose(per[:2], -np.log(losses.BCE_PROB_EPS), rtol=1e-3)
    assert float(per[2]) < 1e-6 and float(per[3]) < 1e-6
    g = jax.grad(lambda p: losses.binary_cross_entropy(p, y))(jnp.array([0.3, 0.6, 0.2, 0.9]))
    pn, yn = np.array([0.3, 0.6, 0.2, 0.9]), np.asarray(y)
    np.testing.assert_allclose(g, (pn - yn) / (pn * (1 - pn)) / 4, rtol=1e-5)
    for eps in (0.0, 0.5):  # ε ∈ (0, ½): at ½ the two clipped logs would meet
        with pytest.raises(ValueError, match=rf"eps must be in \(0.0, 0.5\), got eps={eps}"):
            losses.binary_cross_entropy(p, y, eps=eps)


def test_bce_on_bf16_probabilities_is_computed_in_float32():
    p = jnp.array([0.999999, 1e-9], jnp.bfloat16)
    out = losses.binary_cross_entropy(p, jnp.array([0.0, 1.0]), reduction="none")
    assert out.dtype == jnp.float32
    chex.assert_tree_all_finite(out)


# ------------------------------------------------------------------------- l2 penalty

PARAMS = {
    "dense_0": {"w": np.arange(6.0).reshape(2, 3) / 4, "b": np.array([1.0, -2.0, 0.5])},
    "norm_1": {"scale": np.array([3.0, 1.0])},
}
MASK_TREE = {"dense_0": {"w": True, "b": False}, "norm_1": {"scale": False}}


def test_l2_penalty_all_and_masked():
    tree = jax.tree.map(jnp.asarray, PARAMS)
    everything = ref.l2_penalty(
        [PARAMS["dense_0"]["w"], PARAMS["dense_0"]["b"], PARAMS["norm_1"]["scale"]]
    )
    np.testing.assert_allclose(losses.l2_penalty(tree), everything, rtol=1e-6)
    only_w = ref.l2_penalty([PARAMS["dense_0"]["w"]])
    np.testing.assert_allclose(losses.l2_penalty(tree, MASK_TREE), only_w, rtol=1e-6)
    np.testing.assert_allclose(losses.l2_penalty(tree, lambda p: MASK_TREE), only_w, rtol=1e-6)
    g = jax.grad(lambda p: losses.l2_penalty(p, MASK_TREE))(tree)
    np.testing.assert_allclose(g["dense_0"]["w"], PARAMS["dense_0"]["w"], rtol=1e-6)
    np.testing.assert_array_equal(g["dense_0"]["b"], 0.0)


def test_l2_penalty_mask_structure_mismatch():
    with pytest.raises(ValueError, match="structure"):
        losses.l2_penalty(jax.tree.map(jnp.asarray, PARAMS), {"dense_0": {"w": True}})


# ---------------------------------------------------------------- found by peers' test cases
def test_soft_target_gradient_is_minus_log_softmax_also_where_the_target_is_zero():
    # ∂ℓ/∂q_k = −log softmax(z)_k for every k, in closed form (optax's own test case):
    # z = (10, 1, −2), q = (0, 1, 0) → (1.3e-4, 9.0001, 12.0001). Zero targets are inputs too.
    z = np.array([10.0, 1.0, -2.0])
    q = np.array([0.0, 1.0, 0.0])
    with jax.enable_x64(True):
        grad = jax.grad(lambda t: losses.cross_entropy(jnp.asarray(z), t, reduction="sum"))(
            jnp.asarray(q)
        )
    log_softmax = z - z.max() - np.log(np.sum(np.exp(z - z.max())))
    np.testing.assert_allclose(np.asarray(grad), -log_softmax, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), [1.3e-4, 9.0001, 12.0001], atol=1e-4)


def test_soft_target_gradient_matches_finite_differences_with_smoothing():
    rng = np.random.default_rng(11)
    z, q = rng.standard_normal((3, 4)), rng.dirichlet(np.ones(4), size=3)
    # A small target (not 0: the central difference would step to a negative mass, which
    # cross_entropy refuses; q_k = 0 itself is checked in closed form above).
    q[0, 2] = 1e-4
    with jax.enable_x64(True):
        loss = lambda t: losses.cross_entropy(jnp.asarray(z), t, label_smoothing=0.2)
        grad = np.asarray(jax.grad(loss)(jnp.asarray(q)))
        fd = numerical_grad(lambda t: float(loss(jnp.asarray(t))), q)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_target_mass_on_a_minus_inf_class_is_an_infinite_loss_and_zero_mass_is_ignored():
    z = jnp.array([[0.0, -jnp.inf, 1.0]])
    assert float(losses.cross_entropy(z, jnp.array([[0.5, 0.0, 0.5]]))) < np.inf
    assert float(losses.cross_entropy(z, jnp.array([[0.5, 0.5, 0.0]]))) == np.inf


def test_label_smoothing_one_is_the_uniform_target():
    rng = np.random.default_rng(12)
    z = rng.standard_normal((5, 4))
    with jax.enable_x64(True):
        got = losses.cross_entropy(jnp.asarray(z), jnp.arange(5) % 4, label_smoothing=1.0)
    log_p = z - z.max(-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
    np.testing.assert_allclose(float(got), -log_p.mean(), rtol=1e-12)


@pytest.mark.parametrize(
    "call",
    [
        lambda: losses.mse(jnp.zeros((0, 3)), jnp.zeros((0, 3))),
        lambda: losses.cross_entropy(jnp.zeros((0, 3)), jnp.zeros((0,), jnp.int32)),
        lambda: losses.binary_cross_entropy_with_logits(jnp.zeros(0), jnp.zeros(0)),
        lambda: losses.binary_cross_entropy(jnp.zeros(0), jnp.zeros(0)),
    ],
    ids=["mse", "cross_entropy", "bce_logits", "bce"],
)
def test_the_mean_over_an_empty_batch_is_a_named_error(call):
    with pytest.raises(ValueError, match="empty batch"):
        call()


def test_the_sum_over_an_empty_batch_is_zero():
    assert float(losses.mse(jnp.zeros((0, 3)), jnp.zeros((0, 3)), reduction="sum")) == 0.0


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: losses.binary_cross_entropy_with_logits(jnp.zeros(2), jnp.array([0.0, 2.0])),
            r"targets must lie in \[0, 1\], got \[2.0\]",
        ),
        (
            lambda: losses.binary_cross_entropy(jnp.array([0.5, 1.5]), jnp.zeros(2)),
            r"probs must lie in \[0, 1\], got \[1.5\]",
        ),
        (
            lambda: losses.binary_cross_entropy(jnp.array([0.5, 0.5]), jnp.array([-0.1, 0.0])),
            r"targets must lie in \[0, 1\]",
        ),
    ],
)
def test_bce_refuses_values_outside_the_unit_interval(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_every_loss_names_its_second_argument_targets():
    import inspect

    for fn in (
        losses.mse,
        losses.cross_entropy,
        losses.binary_cross_entropy_with_logits,
        losses.binary_cross_entropy,
    ):
        assert list(inspect.signature(fn).parameters)[1] == "targets", fn.__name__


@pytest.mark.parametrize("kind", ["ids", "soft"])
def test_cross_entropy_label_smoothing_on_sequence_logits(kind, rng):
    # (B, T, K) logits with B ≠ T ≠ K and some −∞-masked classes: the smoothing mass α/K′
    # counts the allowed classes along the class axis only (K′ differs from row to row).
    z = rng.normal(size=(2, 3, 5))
    z[0, 1, 2] = z[1, 2, 0] = z[1, 2, 4] = -np.inf
    if kind == "ids":
        targets = np.array([[0, 1, 3], [4, 2, 1]])
    else:
        q = rng.uniform(0.1, 1.0, size=z.shape) * np.isfinite(z)
        targets = q / q.sum(axis=-1, keepdims=True)
    with jax.enable_x64(True):
        got = losses.cross_entropy(
            jnp.asarray(z), jnp.asarray(targets), label_smoothing=0.2, reduction="none"
        )
    want = ref.cross_entropy(z, targets, label_smoothing=0.2, reduction="none")
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, want, rtol=1e-12)


# -------------------------------------------------- #24: the two cross-entropy cases


@pytest.mark.parametrize("targets", [np.array([1]), np.array([[0.0, 1.0, 0.0]])], ids=["ids", "soft"])
def test_cross_entropy_with_every_logit_minus_inf_is_plus_inf(targets):
    # log p = −∞ for every class: the target has probability 0, so ℓ = +∞ (it was −0.0).
    z = jnp.full((1, 3), -jnp.inf)
    assert float(losses.cross_entropy(z, jnp.asarray(targets))) == np.inf
    assert float(jax.jit(losses.cross_entropy)(z, jnp.asarray(targets))) == np.inf
    # …and a padded (masked) row of −∞ logits still contributes nothing, gradient included.
    both = jnp.concatenate([z, jnp.zeros((1, 3))])
    kept = jnp.array([False, True])
    targets2 = jnp.concatenate([jnp.asarray(targets)] * 2)
    value, grad = jax.value_and_grad(lambda v: losses.cross_entropy(v, targets2, where=kept))(
        both
    )
    assert float(value) == pytest.approx(np.log(3))
    assert np.isfinite(np.asarray(grad)).all()


def test_cross_entropy_refuses_soft_targets_with_negative_mass():
    z = jnp.zeros((2, 3))
    q = jnp.array([[1.2, -0.2, 0.0], [0.5, 0.5, 0.0]])  # row 0 sums to 1 with negative mass
    with pytest.raises(ValueError, match=r"targets must be non-negative.*-0.2"):
        losses.cross_entropy(z, q)
    # Under jit the values cannot be seen: that row's loss is NaN, not a number.
    per_row = jax.jit(lambda z, q: losses.cross_entropy(z, q, reduction="none"))(z, q)
    assert np.isnan(per_row[0]) and float(per_row[1]) == pytest.approx(np.log(3))
