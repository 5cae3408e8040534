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


@pytest.mark.parametrize(
    "targets", [np.array([1]), np.array([[0.0, 1.0, 0.0]])], ids=["ids", "soft"]
)
def test_cross_entropy_with_every_logit_minus_inf_is_plus_inf(targets):
    # log p = −∞ for every class: the target has probability 0, so ℓ = +∞ (it was −0.0).
    z = jnp.full((1, 3), -jnp.inf)
    assert float(losses.cross_entropy(z, jnp.asarray(targets))) == np.inf
    assert float(jax.jit(losses.cross_entropy)(z, jnp.asarray(targets))) == np.inf
    # …and a padded (masked) row of −∞ logits still contributes nothing, gradient included.
    both = jnp.concatenate([z, jnp.zeros((1, 3))])
    kept = jnp.array([False, True])
    targets2 = jnp.concatenate([jnp.asarray(targets)] * 2)
    value, grad = jax.value_and_grad(lambda v: losses.cross_entropy(v, targets2, where=kept))(both)
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


# ============================================================== the rest of the catalogue
# One table: each loss beside its float64 transcription, on tiny (3, 4) inputs, checked for
# values (three reductions, with and without a mask), gradients (against central
# differences of the transcription), extremes (±1e4) and garbage in masked entries.
_C = np.random.default_rng(7)
P = _C.normal(size=(3, 4)) * 1.5  # predictions / logits / scores (B, K)
Y = _C.normal(size=(3, 4))  # regression targets
N = _C.normal(size=(3, 4))  # negatives for the triplet loss
VAR = _C.uniform(0.2, 2.0, size=(3, 4))
COUNTS = _C.integers(0, 6, size=(3, 4)).astype(np.float64)
RATES = _C.uniform(0.1, 3.0, size=(3, 4))
Q = np.array([[0.2, 0.3, 0.5, 0.0], [0.1, 0.1, 0.1, 0.7], [0.25, 0.25, 0.25, 0.25]])
LOG_Q = np.log(np.where(Q > 0, Q, 1.0)) + np.where(Q > 0, 0.0, -np.inf)
LOG_P = ref.log_softmax(P)
IDS3 = np.array([2, 0, 3])
SIGNS = np.where(_C.normal(size=(3, 4)) > 0, 1.0, -1.0)
BITS = (SIGNS > 0).astype(np.float64)
ROW = np.array([True, False, True])
ELEMENT = np.array([[True, False, True, True], [False, False, True, False], [True] * 4])

# name: (funcnn loss, transcription, inputs, keyword arguments, mask of the loss shape)
CATALOGUE = {
    "l1_loss": (losses.l1_loss, ref.l1_loss, (P, Y), {}, ELEMENT),
    "smooth_l1_loss": (losses.smooth_l1_loss, ref.smooth_l1_loss, (P, Y), {"beta": 0.5}, ELEMENT),
    "huber_loss": (losses.huber_loss, ref.huber_loss, (P, Y), {"delta": 0.7}, ELEMENT),
    "log_cosh": (losses.log_cosh, ref.log_cosh, (P, Y), {}, ELEMENT),
    "gaussian_nll_loss": (
        losses.gaussian_nll_loss,
        ref.gaussian_nll_loss,
        (P, Y, VAR),
        {},
        ELEMENT,
    ),
    "gaussian_nll_full": (
        losses.gaussian_nll_loss,
        ref.gaussian_nll_loss,
        (P, Y, VAR),
        {"full": True},
        ELEMENT,
    ),
    "poisson_nll_loss": (losses.poisson_nll_loss, ref.poisson_nll_loss, (P, COUNTS), {}, ELEMENT),
    "poisson_nll_rates_full": (
        losses.poisson_nll_loss,
        ref.poisson_nll_loss,
        (RATES, COUNTS),
        {"log_input": False, "full": True},
        ELEMENT,
    ),
    "kl_divergence": (losses.kl_divergence, ref.kl_divergence, (LOG_P, Q), {}, ROW),
    "kl_divergence_with_log_targets": (
        losses.kl_divergence_with_log_targets,
        ref.kl_divergence_with_log_targets,
        (LOG_P, LOG_Q),
        {},
        ROW,
    ),
    "nll_loss": (losses.nll_loss, ref.nll_loss, (LOG_P, IDS3), {}, ROW),
    "poly_loss_ids": (
        losses.poly_loss_cross_entropy,
        ref.poly_loss_cross_entropy,
        (P, IDS3),
        {"epsilon": 1.5},
        ROW,
    ),
    "poly_loss_probs": (
        losses.poly_loss_cross_entropy,
        ref.poly_loss_cross_entropy,
        (P, Q),
        {},
        ROW,
    ),
    "hinge_loss": (losses.hinge_loss, ref.hinge_loss, (P, SIGNS), {}, ELEMENT),
    "perceptron_loss": (losses.perceptron_loss, ref.perceptron_loss, (P, SIGNS), {}, ELEMENT),
    "multiclass_hinge_loss": (
        losses.multiclass_hinge_loss,
        ref.multiclass_hinge_loss,
        (P, IDS3),
        {},
        ROW,
    ),
    "sigmoid_focal_loss": (
        losses.sigmoid_focal_loss,
        ref.sigmoid_focal_loss,
        (P, BITS),
        {"alpha": 0.25},
        ELEMENT,
    ),
    "sigmoid_focal_gamma_half": (
        losses.sigmoid_focal_loss,
        ref.sigmoid_focal_loss,
        (P, BITS),
        {"gamma": 0.5},
        ELEMENT,
    ),
    "sparsemax_loss": (losses.sparsemax_loss, ref.sparsemax_loss, (P, BITS), {}, ELEMENT),
    "multiclass_sparsemax_loss": (
        losses.multiclass_sparsemax_loss,
        ref.multiclass_sparsemax_loss,
        (P, IDS3),
        {},
        ROW,
    ),
    "entmax15_loss": (losses.entmax15_loss, ref.entmax15_loss, (P, IDS3), {}, ROW),
    "entmax_bisect_loss": (
        losses.entmax_bisect_loss,
        ref.entmax_bisect_loss,
        (P, IDS3),
        {"alpha": 1.3},
        ROW,
    ),
    "entmax_bisect_loss_alpha3": (
        losses.entmax_bisect_loss,
        ref.entmax_bisect_loss,
        (P, IDS3),
        {"alpha": 3.0},
        ROW,
    ),
    "cosine_similarity": (losses.cosine_similarity, ref.cosine_similarity, (P, Y), {}, ROW),
    "cosine_distance": (
        losses.cosine_distance,
        lambda a, b: 1 - ref.cosine_similarity(a, b),
        (P, Y),
        {},
        ROW,
    ),
    "triplet_margin_loss": (
        losses.triplet_margin_loss,
        ref.triplet_margin_loss,
        (P, Y, N),
        {"margin": 2.0},
        ROW,
    ),
    "triplet_margin_l3": (
        losses.triplet_margin_loss,
        ref.triplet_margin_loss,
        (P, Y, N),
        {"margin": 2.0, "norm_degree": 3.0},
        ROW,
    ),
}
NAMES = list(CATALOGUE)


def _call(name, *inputs, **extra):
    fn, _, _, kwargs, _ = CATALOGUE[name]
    return fn(*[jnp.asarray(a) for a in inputs], **kwargs, **extra)


@pytest.mark.parametrize("name", NAMES)
def test_catalogue_values_match_the_transcription_for_every_reduction_and_mask(name):
    _, reference, inputs, kwargs, mask = CATALOGUE[name]
    per_element = reference(*inputs, **kwargs)
    with jax.enable_x64(True):
        for reduction in REDUCTIONS:
            for where in (None, mask):
                got = _call(name, *inputs, reduction=reduction, where=where)
                want = ref.reduce_losses(per_element, reduction, where)
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_catalogue_gradient_matches_central_differences_of_the_transcription(name):
    _, reference, inputs, kwargs, _ = CATALOGUE[name]
    first, rest = inputs[0], inputs[1:]
    with jax.enable_x64(True):
        grad = jax.grad(lambda x: _call(name, x, *rest, reduction="sum"))(jnp.asarray(first))
    fd = numerical_grad(lambda x: float(np.sum(reference(x, *rest, **kwargs))), first)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_catalogue_is_finite_at_plus_minus_1e4_in_float32(name):
    _, reference, inputs, kwargs, _ = CATALOGUE[name]
    first = np.where(P > 0, 1e4, -1e4).astype(np.float32)
    if name.startswith(("kl_divergence", "nll")):  # log-probabilities: ≤ 0
        first = -np.abs(first)
    if name.startswith("poisson"):  # e^1e4 is +∞ (the loss itself is that large)
        first = -np.abs(first) if "rates" not in name else np.abs(first)
    rest = [
        np.asarray(a, np.float32) if np.asarray(a).dtype == np.float64 else a for a in inputs[1:]
    ]
    value, grad = jax.value_and_grad(lambda x: _call(name, x, *rest))(jnp.asarray(first))
    chex.assert_tree_all_finite((value, grad))
    if not name.startswith(("multiclass_sparsemax", "kl_divergence_with")):
        want = ref.reduce_losses(reference(first, *rest, **kwargs))
        # The triplet loss subtracts two distances of size 1e4: float32 keeps ~1e-3 of it.
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-2 if "triplet" in name else 0)


@pytest.mark.parametrize("name", NAMES)
def test_catalogue_garbage_under_the_mask_changes_nothing_and_all_masked_is_zero(name):
    _, _, inputs, _, mask = CATALOGUE[name]
    first, rest = inputs[0], inputs[1:]
    row_mask = mask if mask.shape == first.shape else np.broadcast_to(mask[:, None], first.shape)
    dirty = np.where(row_mask, first, np.nan)
    with jax.enable_x64(True):
        loss = lambda x, w: _call(name, x, *rest, where=w)
        clean_value, clean_grad = jax.value_and_grad(loss)(jnp.asarray(first), mask)
        value, grad = jax.value_and_grad(loss)(jnp.asarray(dirty), mask)
        np.testing.assert_allclose(value, clean_value, rtol=1e-12)
        np.testing.assert_allclose(grad, clean_grad, rtol=1e-12, atol=1e-15)
        assert (np.asarray(grad)[~row_mask] == 0).all()
        nothing, no_grad = jax.value_and_grad(loss)(jnp.asarray(dirty), np.zeros_like(mask))
        assert float(nothing) == 0.0 and (np.asarray(no_grad) == 0).all()


def test_every_catalogue_loss_names_its_second_argument_targets_or_says_why():
    import inspect

    second = {
        name: list(inspect.signature(fn).parameters)[1] for name, (fn, *_) in CATALOGUE.items()
    }
    assert {n: s for n, s in second.items() if s != "targets"} == {
        "kl_divergence_with_log_targets": "log_targets",
        "triplet_margin_loss": "positives",
        "triplet_margin_l3": "positives",
    }


def test_ntxent_matches_the_transcription_and_finite_differences():
    e = _C.normal(size=(6, 3))
    labels = np.array([0, 0, 1, 1, 2, 2])
    with jax.enable_x64(True):
        value, grad = jax.jit(jax.value_and_grad(losses.ntxent), static_argnums=2)(
            jnp.asarray(e), labels, 0.5
        )
        pairs = jax.jit(lambda v: losses.ntxent(v, labels, 0.5, reduction="none"))(e)
    np.testing.assert_allclose(value, ref.ntxent(e, labels, 0.5), rtol=1e-10)
    assert pairs.shape == (6, 6) and np.count_nonzero(pairs) == 6
    fd = numerical_grad(lambda x: ref.ntxent(x, labels, 0.5), e)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)
    big = jax.jit(jax.grad(losses.ntxent))(
        jnp.asarray(np.where(e > 0, 1e4, 0.0), jnp.float32), labels
    )
    chex.assert_tree_all_finite(big)  # zero rows and 1e4 entries alike


def test_dice_loss_matches_the_transcription_and_finite_differences():
    z = _C.normal(size=(2, 3, 3, 4))  # (B, H, W, C)
    y = np.eye(4)[_C.integers(0, 4, size=(2, 3, 3))]
    with jax.enable_x64(True):
        for reduction in REDUCTIONS:
            got = losses.dice_loss(jnp.asarray(z), jnp.asarray(y), reduction=reduction)
            want = ref.reduce_losses(ref.dice_loss(z, y), reduction)
            np.testing.assert_allclose(got, want, rtol=1e-12)
        grad = jax.jit(
            jax.grad(lambda v: losses.dice_loss(v, jnp.asarray(y), alpha=0.3, beta=0.7))
        )(jnp.asarray(z))
    fd = numerical_grad(lambda v: float(ref.dice_loss(v, y, alpha=0.3, beta=0.7).mean()), z)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)
    sig = losses.dice_loss(jnp.asarray(z[..., :1]), jnp.asarray(y[..., :1]), reduction="none")
    np.testing.assert_allclose(sig, ref.dice_loss(z[..., :1], y[..., :1]), rtol=1e-6)


def test_ctc_loss_matches_the_forward_algorithm_with_padding_repeats_and_impossible_rows():
    z = _C.normal(size=(3, 6, 4)) * 2  # (B, T, K), blank 0
    targets = np.array([[1, 1, 2], [3, 2, 0], [2, 3, 1]])  # a repeat; a padded label
    t_len, s_len = np.array([6, 4, 2]), np.array([3, 2, 3])  # row 2: 3 labels in 2 steps
    keep_t = np.arange(6)[None, :] < t_len[:, None]
    keep_s = np.arange(3)[None, :] < s_len[:, None]
    dirty = np.where(keep_t[..., None], z, np.nan)  # garbage in padded steps
    with jax.enable_x64(True):
        loss = lambda v: losses.ctc_loss(
            v, jnp.asarray(targets), logit_where=keep_t, target_where=keep_s, reduction="none"
        )
        got = jax.jit(loss)(jnp.asarray(dirty))
        grad = jax.jit(jax.grad(lambda v: jnp.sum(loss(v)[:2])))(jnp.asarray(dirty))
    want = ref.ctc_loss(z, targets, t_len, s_len)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert np.isinf(got[2]) and np.isinf(want[2])
    fd = numerical_grad(lambda v: float(ref.ctc_loss(v, targets, t_len, s_len)[:2].sum()), z)
    np.testing.assert_allclose(np.where(keep_t[..., None], grad, 0), fd, rtol=1e-5, atol=1e-8)
    assert np.isfinite(np.asarray(grad)).all()
    with pytest.raises(ValueError, match="other than the blank 0"):
        losses.ctc_loss(jnp.asarray(z), jnp.asarray(targets))  # the padded 0 is not masked


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: losses.l1_loss(jnp.ones(3), jnp.ones((3, 1))), ValueError, "same shape"),
        (lambda: losses.huber_loss(jnp.ones(3), jnp.ones(3), delta=0), ValueError, "delta"),
        (lambda: losses.smooth_l1_loss(jnp.ones(3), jnp.ones(3), beta=-1), ValueError, "beta"),
        (
            lambda: losses.l1_loss(jnp.ones(3), jnp.ones(3), where=jnp.ones(2, bool)),
            ValueError,
            r"where.shape=\(2,\)",
        ),
        (lambda: losses.log_cosh(jnp.ones(3), jnp.ones(3), where=jnp.ones(3)), TypeError, "bool"),
        (lambda: losses.hinge_loss(jnp.ones(2), jnp.array([1.0, 0.0])), ValueError, "±1"),
        (
            lambda: losses.gaussian_nll_loss(jnp.ones(2), jnp.ones(2), -jnp.ones(2)),
            ValueError,
            "non-negative",
        ),
        (lambda: losses.poisson_nll_loss(jnp.ones(2), -jnp.ones(2)), ValueError, "≥ 0"),
        (
            lambda: losses.kl_divergence(jnp.zeros((1, 2)), jnp.array([[1.5, -0.5]])),
            ValueError,
            "≥ 0",
        ),
        (lambda: losses.nll_loss(jnp.zeros((2, 3)), jnp.array([0, 3])), ValueError, r"\[0, 3\)"),
        (lambda: losses.nll_loss(jnp.zeros((2, 3)), jnp.zeros(2)), TypeError, "integer class"),
        (
            lambda: losses.multiclass_hinge_loss(jnp.zeros((2, 3)), jnp.array([0, 5])),
            ValueError,
            "5",
        ),
        (lambda: losses.sparsemax_loss(jnp.zeros(2), jnp.array([0.0, 2.0])), ValueError, "0 or 1"),
        (
            lambda: losses.sigmoid_focal_loss(jnp.zeros(2), jnp.zeros(2), gamma=-1),
            ValueError,
            "gamma",
        ),
        (lambda: losses.ntxent(jnp.zeros((3, 2)), jnp.zeros(2, int)), ValueError, r"\(B, D\)"),
        (lambda: losses.dice_loss(jnp.zeros(3), jnp.zeros(3)), ValueError, "B, …, C"),
        (lambda: losses.ctc_loss(jnp.zeros((2, 3)), jnp.zeros((2, 1), int)), ValueError, "B, T, K"),
        (
            lambda: losses.cosine_distance(jnp.ones(3), jnp.ones(3), reduction="avg"),
            ValueError,
            "reduction",
        ),
    ],
)
def test_catalogue_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("labels", [IDS, PROBS], ids=["ids", "probs"])
def test_cross_entropy_garbage_in_masked_rows_reaches_neither_value_nor_gradient(labels):
    dirty = np.where(MASK[:, None], LOGITS, np.nan)
    with jax.enable_x64(True):
        loss = lambda z: losses.cross_entropy(z, jnp.asarray(labels), where=MASK)
        value, grad = jax.value_and_grad(loss)(jnp.asarray(dirty))
    np.testing.assert_allclose(value, ref.cross_entropy(LOGITS, labels, where=MASK), rtol=1e-12)
    assert np.isfinite(np.asarray(grad)).all() and (np.asarray(grad)[~MASK] == 0).all()


def test_value_checks_skip_masked_padding():
    # Padding may hold anything: the ±1 / counts / probability checks look only at kept entries.
    keep = jnp.array([True, False])
    assert float(losses.hinge_loss(jnp.zeros(2), jnp.array([1.0, 7.0]), where=keep)) == 1.0
    assert np.isfinite(
        float(losses.poisson_nll_loss(jnp.zeros(2), jnp.array([1.0, -5.0]), where=keep))
    )
    with pytest.raises(ValueError, match=r"±1, got \[7.0\]"):
        losses.hinge_loss(jnp.zeros(2), jnp.array([1.0, 7.0]))


# ----------------------------------------------------------------------- entmax losses


def test_entmax_bisect_loss_spans_cross_entropy_to_sparsemax_with_gradient_p_minus_onehot():
    onehot = np.eye(4)[IDS3]
    with jax.enable_x64(True):
        at = lambda alpha: losses.entmax_bisect_loss(
            jnp.asarray(P), IDS3, alpha=alpha, reduction="none"
        )
        np.testing.assert_allclose(at(1.0), ref.cross_entropy(P, IDS3, reduction="none"))
        np.testing.assert_allclose(at(2.0), ref.multiclass_sparsemax_loss(P, IDS3), atol=1e-14)
        np.testing.assert_allclose(at(1.5), ref.entmax15_loss(P, IDS3), atol=1e-14)
        for alpha, p in [(1.0, ref.softmax(P)), (1.3, ref.entmax_bisect(P, 1.3))]:
            grad = jax.grad(
                lambda s, a=alpha: losses.entmax_bisect_loss(s, IDS3, alpha=a, reduction="sum")
            )(jnp.asarray(P))
            np.testing.assert_allclose(grad, p - onehot, atol=1e-13)  # Danskin: ∂ℓ/∂s = p − e_y
        grad15 = jax.grad(lambda s: losses.entmax15_loss(s, IDS3, reduction="sum"))(jnp.asarray(P))
        np.testing.assert_allclose(grad15, ref.entmax15(P) - onehot, atol=1e-13)
    # Sparse: a margin of 2/(α − 1)·… puts all mass on the target, and the loss is exactly 0.
    clear = jnp.asarray([[10.0, 0.0, 0.0], [0.0, 0.0, 10.0]])
    assert float(losses.entmax15_loss(clear, jnp.array([0, 2]))) == 0.0
    assert float(losses.entmax_bisect_loss(clear, jnp.array([0, 2]), alpha=1.2)) == 0.0


def test_entmax_losses_refuse_bad_arguments_by_name():
    s, y = jnp.zeros((2, 3)), jnp.array([0, 1])
    with pytest.raises(ValueError, match=r"alpha must be in \[1.0, inf\), got alpha=0.9"):
        losses.entmax_bisect_loss(s, y, alpha=0.9)
    with pytest.raises(ValueError, match="n_iter"):
        losses.entmax_bisect_loss(s, y, n_iter=0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        losses.entmax15_loss(s, jnp.array([0, 3]))
    with pytest.raises(TypeError, match="integer class ids"):
        losses.entmax_bisect_loss(s, jnp.zeros(2))


# -------------------------------------------------------- dice: class weights and masks
SEG_Z = _C.normal(size=(3, 3, 4, 4)) * 2  # (B, H, W, C)
SEG_Y = np.eye(4)[_C.integers(0, 4, size=(3, 3, 4))]
SEG_W = np.array([0.0, 1.0, 2.5, 0.5])  # class 0 (background) dropped
SEG_KEEP = _C.uniform(size=(3, 3, 4)) > 0.3
SEG_KEEP[2] = False  # the last sample has no kept pixel


def _dice_rows(keep):
    return np.broadcast_to(keep.reshape(len(keep), -1).any(1)[:, None], (len(keep), 4))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_dice_loss_class_weights_and_pixel_mask_match_the_transcription(reduction):
    kwargs = {"class_weights": SEG_W, "alpha": 0.3, "beta": 0.7}
    dirty = np.where(SEG_KEEP[..., None], SEG_Z, np.nan)  # garbage under the mask
    with jax.enable_x64(True):
        got = losses.dice_loss(
            jnp.asarray(dirty), jnp.asarray(SEG_Y), where=SEG_KEEP, reduction=reduction, **kwargs
        )
        weighted = losses.dice_loss(
            jnp.asarray(SEG_Z), jnp.asarray(SEG_Y), **kwargs, reduction=reduction
        )
    per = ref.dice_loss(SEG_Z, SEG_Y, where=SEG_KEEP, **kwargs)
    np.testing.assert_allclose(
        got, ref.reduce_losses(per, reduction, _dice_rows(SEG_KEEP)), rtol=1e-12
    )
    # "mean" divides by C × (samples with a kept pixel) = 4 × 2, not by B·C or Σ w.
    if reduction == "mean":
        np.testing.assert_allclose(got, per[:2].sum() / 8, rtol=1e-12)
    unmasked = ref.reduce_losses(ref.dice_loss(SEG_Z, SEG_Y, **kwargs), reduction)
    np.testing.assert_allclose(weighted, unmasked, rtol=1e-12)


def test_dice_loss_mask_gradient_matches_finite_differences_and_ignores_garbage():
    kwargs = {"class_weights": SEG_W}
    dirty = np.where(SEG_KEEP[..., None], SEG_Z, np.inf)
    with jax.enable_x64(True):
        loss = lambda z, w: losses.dice_loss(z, jnp.asarray(SEG_Y), where=w, **kwargs)
        value, grad = jax.jit(jax.value_and_grad(loss))(jnp.asarray(dirty), SEG_KEEP)
        nothing, no_grad = jax.jit(jax.value_and_grad(loss))(
            jnp.asarray(dirty), np.zeros_like(SEG_KEEP)
        )
        sigmoid = losses.dice_loss(
            jnp.asarray(dirty[..., :1]),
            jnp.asarray(SEG_Y[..., :1]),
            where=SEG_KEEP,
            reduction="none",
        )
    rows = _dice_rows(SEG_KEEP)
    fd = numerical_grad(
        lambda z: float(
            ref.reduce_losses(ref.dice_loss(z, SEG_Y, where=SEG_KEEP, **kwargs), "mean", rows)
        ),
        SEG_Z,
    )
    np.testing.assert_allclose(
        value,
        ref.reduce_losses(ref.dice_loss(SEG_Z, SEG_Y, where=SEG_KEEP, **kwargs), "mean", rows),
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-9)
    assert (np.asarray(grad)[~SEG_KEEP] == 0).all() and np.isfinite(np.asarray(grad)).all()
    assert float(nothing) == 0.0 and (np.asarray(no_grad) == 0).all()  # all masked: 0, not 0/0
    want = ref.reduce_losses(
        ref.dice_loss(SEG_Z[..., :1], SEG_Y[..., :1], where=SEG_KEEP),
        "none",
        _dice_rows(SEG_KEEP)[:, :1],
    )
    np.testing.assert_allclose(sigmoid, want, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"where": np.ones((3, 3, 4), int)}, TypeError, "where must be a boolean mask"),
        (
            {"where": np.ones((3, 3, 4, 4), bool)},
            ValueError,
            r"where.shape=\(3, 3, 4, 4\).*\(3, 3, 4\)",
        ),
        ({"where": np.ones((3,), bool)}, ValueError, r"where.shape=\(3,\)"),
        (
            {"class_weights": np.ones(3)},
            ValueError,
            r"class_weights.shape=\(3,\) must be \(C,\) = \(4,\)",
        ),
        ({"class_weights": np.ones((1, 4))}, ValueError, r"class_weights.shape=\(1, 4\)"),
        ({"class_weights": -np.ones(4)}, ValueError, "class_weights must be ≥ 0"),
        ({"class_weights": np.ones(4, bool)}, TypeError, "class_weights must be real"),
    ],
)
def test_dice_loss_refuses_bad_masks_and_weights_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        losses.dice_loss(jnp.asarray(SEG_Z), jnp.asarray(SEG_Y), **kwargs)


# ------------------------------------------------------------------------ ntxent masks
NT_E = _C.normal(size=(7, 3))
NT_LABELS = np.array([0, 0, 1, 1, 2, 2, 1])
NT_KEEP = np.array([True, True, False, True, True, True, False])  # 3's partner gone: no pair


def test_ntxent_mask_drops_examples_as_anchors_positives_and_negatives():
    dirty = np.where(NT_KEEP[:, None], NT_E, np.nan)

    @jax.jit
    def run(e, keep):  # one program: value, gradient, the pair matrix and the sum
        loss = lambda v, w: losses.ntxent(v, NT_LABELS, 0.5, where=w)
        value, grad = jax.value_and_grad(loss)(e, keep)
        pairs = losses.ntxent(e, NT_LABELS, 0.5, where=keep, reduction="none")
        total = losses.ntxent(e, NT_LABELS, 0.5, where=keep, reduction="sum")
        return value, grad, pairs, total

    with jax.enable_x64(True):
        value, grad, pairs, total = run(jnp.asarray(dirty), NT_KEEP)
        nothing, no_grad, _, _ = run(jnp.asarray(dirty), np.zeros(7, bool))
    want = ref.ntxent(NT_E, NT_LABELS, 0.5, where=NT_KEEP)
    np.testing.assert_allclose(value, want, rtol=1e-12)
    np.testing.assert_allclose(
        value, ref.ntxent(NT_E[NT_KEEP], NT_LABELS[NT_KEEP], 0.5), rtol=1e-12
    )
    # 4 positive pairs survive: (0, 1), (1, 0), (4, 5), (5, 4); 3 has lost its partners.
    pairs = np.asarray(pairs)
    assert (
        np.count_nonzero(pairs) == 4 and not pairs[~NT_KEEP].any() and not pairs[:, ~NT_KEEP].any()
    )
    np.testing.assert_allclose(total, 4 * want, rtol=1e-12)
    fd = numerical_grad(lambda e: ref.ntxent(e, NT_LABELS, 0.5, where=NT_KEEP), NT_E)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)
    assert (np.asarray(grad)[~NT_KEEP] == 0).all()
    assert float(nothing) == 0.0 and (np.asarray(no_grad) == 0).all()  # no pair: 0, not 0/0


def test_ntxent_is_finite_and_exact_at_small_temperature():
    run = jax.jit(jax.value_and_grad(lambda e: losses.ntxent(e, NT_LABELS, 1e-3)))
    with jax.enable_x64(True):
        value, _ = run(jnp.asarray(NT_E))
    np.testing.assert_allclose(value, ref.ntxent(NT_E, NT_LABELS, 1e-3), rtol=1e-10)
    value, grad = run(jnp.asarray(NT_E, jnp.float32))
    chex.assert_tree_all_finite((value, grad))
    np.testing.assert_allclose(value, ref.ntxent(NT_E, NT_LABELS, 1e-3), rtol=1e-4)


def test_ntxent_refuses_a_bad_mask_by_name():
    with pytest.raises(TypeError, match="ntxent: where must be a boolean mask"):
        losses.ntxent(jnp.asarray(NT_E), NT_LABELS, where=np.ones(7))
    with pytest.raises(
        ValueError, match=r"ntxent: where.shape=\(6,\) must equal the labels' shape"
    ):
        losses.ntxent(jnp.asarray(NT_E), NT_LABELS, where=np.ones(6, bool))
