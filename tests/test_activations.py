"""Activations against float64 NumPy transcriptions: values, derivatives, and extremes."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import activations as act
from funcnn.reference import functional as ref
from funcnn.reference.numerical import numerical_grad

# A grid through the interesting regions, including exactly 0 and large magnitudes.
GRID = np.array([-30.0, -8.0, -2.5, -1.0, -0.3, 0.0, 0.2, 0.7, 1.5, 3.0, 9.0, 30.0])
EXTREMES = np.array([-1e4, -1e3, -50.0, 50.0, 1e3, 1e4])

ELEMENTWISE = [
    ("relu", act.relu, ref.relu, ref.relu_grad),
    ("sigmoid", act.sigmoid, ref.sigmoid, ref.sigmoid_grad),
    ("softplus", act.softplus, ref.softplus, ref.softplus_grad),
    ("tanh", act.tanh, ref.tanh, ref.tanh_grad),
    ("silu", act.silu, ref.silu, ref.silu_grad),
    ("leaky_relu", act.leaky_relu, ref.leaky_relu, ref.leaky_relu_grad),
    ("gelu", act.gelu, ref.gelu, ref.gelu_grad),
    (
        "gelu_tanh",
        lambda x: act.gelu(x, approximate=True),
        lambda x: ref.gelu(x, approximate=True),
        lambda x: ref.gelu_grad(x, approximate=True),
    ),
    ("elu", act.elu, ref.elu, ref.elu_grad),
    (
        "elu_alpha",
        lambda x: act.elu(x, 0.3),
        lambda x: ref.elu(x, 0.3),
        lambda x: ref.elu_grad(x, 0.3),
    ),
    (
        "celu",
        lambda x: act.celu(x, 2.5),
        lambda x: ref.celu(x, 2.5),
        lambda x: ref.celu_grad(x, 2.5),
    ),
    ("selu", act.selu, ref.selu, ref.selu_grad),
    ("softsign", act.softsign, ref.softsign, ref.softsign_grad),
    ("log_sigmoid", act.log_sigmoid, ref.log_sigmoid, ref.log_sigmoid_grad),
    ("relu6", act.relu6, ref.relu6, ref.relu6_grad),
    ("hard_sigmoid", act.hard_sigmoid, ref.hard_sigmoid, ref.hard_sigmoid_grad),
    ("hard_swish", act.hard_swish, ref.hard_swish, ref.hard_swish_grad),
    ("hard_tanh", act.hard_tanh, ref.hard_tanh, ref.hard_tanh_grad),
    (
        "hard_tanh_bounds",
        lambda x: act.hard_tanh(x, -2.0, 5.0),
        lambda x: ref.hard_tanh(x, -2.0, 5.0),
        lambda x: ref.hard_tanh_grad(x, -2.0, 5.0),
    ),
    ("mish", act.mish, ref.mish, ref.mish_grad),
    ("squareplus", act.squareplus, ref.squareplus, ref.squareplus_grad),
    (
        "squareplus_b",
        lambda x: act.squareplus(x, 0.5),
        lambda x: ref.squareplus(x, 0.5),
        lambda x: ref.squareplus_grad(x, 0.5),
    ),
]
IDS = [case[0] for case in ELEMENTWISE]


def elementwise_grad(fn):
    return jax.jit(jax.vmap(jax.grad(fn)))


@pytest.mark.parametrize(("name", "fn", "ref_fn", "ref_grad"), ELEMENTWISE, ids=IDS)
def test_elementwise_values_and_derivatives_float64(name, fn, ref_fn, ref_grad):
    with jax.enable_x64(True):
        x = jnp.asarray(GRID, jnp.float64)
        np.testing.assert_allclose(fn(x), ref_fn(GRID), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(elementwise_grad(fn)(x), ref_grad(GRID), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(("name", "fn", "ref_fn", "ref_grad"), ELEMENTWISE, ids=IDS)
def test_elementwise_float32_close_to_float64(name, fn, ref_fn, ref_grad):
    x = jnp.asarray(GRID, jnp.float32)
    y = fn(x)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, ref_fn(GRID), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(elementwise_grad(fn)(x), ref_grad(GRID), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "fn", "ref_fn", "ref_grad"), ELEMENTWISE, ids=IDS)
def test_elementwise_finite_at_extremes(name, fn, ref_fn, ref_grad):
    x = jnp.asarray(EXTREMES, jnp.float32)
    y, g = fn(x), elementwise_grad(fn)(x)
    chex.assert_tree_all_finite((y, g))
    np.testing.assert_allclose(y, ref_fn(EXTREMES), rtol=1e-6)
    np.testing.assert_allclose(g, ref_grad(EXTREMES), rtol=1e-6, atol=1e-30)


def test_relu_derivative_at_zero_is_zero():
    assert float(jax.grad(act.relu)(0.0)) == 0.0


def test_sigmoid_is_exact_at_saturation_and_zero():
    y = act.sigmoid(jnp.array([-1e4, 0.0, 1e4]))
    np.testing.assert_array_equal(y, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(
        elementwise_grad(act.sigmoid)(jnp.array([-1e4, 0.0, 1e4])), [0.0, 0.25, 0.0]
    )


def test_gelu_defaults_to_exact_and_differs_from_tanh_form():
    x = jnp.linspace(-3.0, 3.0, 13)
    # jax.nn.gelu defaults to the tanh approximation; ours (like PyTorch) defaults to exact.
    np.testing.assert_allclose(act.gelu(x), jax.nn.gelu(x, approximate=False), atol=1e-6)
    np.testing.assert_allclose(act.gelu(x, approximate=True), jax.nn.gelu(x), atol=1e-6)
    assert float(jnp.max(jnp.abs(act.gelu(x) - act.gelu(x, approximate=True)))) > 1e-4


def test_leaky_relu_slope_argument():
    x = np.array([-2.0, -0.5, 0.0, 1.0])
    np.testing.assert_allclose(act.leaky_relu(jnp.asarray(x), 0.2), ref.leaky_relu(x, 0.2))


# ------------------------------------------------------------------- softmax family

X = np.random.default_rng(0).normal(size=(3, 5)) * 3  # a constant, drawn at import


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_and_log_softmax_match_reference(axis):
    with jax.enable_x64(True):
        x = jnp.asarray(X)
        np.testing.assert_allclose(act.softmax(x, axis=axis), ref.softmax(X, axis=axis), 1e-12)
        np.testing.assert_allclose(
            act.log_softmax(x, axis=axis), ref.log_softmax(X, axis=axis), 1e-12
        )
        np.testing.assert_allclose(np.exp(ref.log_softmax(X, axis)).sum(axis), 1.0, 1e-12)


def test_softmax_and_log_softmax_default_to_the_last_axis_of_a_sequence_batch(rng):
    # (B, T, V) logits: the default must normalise over V — axis 1 (T) would pass on 2-D.
    x3 = rng.normal(size=(2, 3, 4)) * 3
    with jax.enable_x64(True):
        np.testing.assert_allclose(act.softmax(jnp.asarray(x3)), ref.softmax(x3, axis=2), 1e-12)
        np.testing.assert_allclose(
            act.log_softmax(jnp.asarray(x3)), ref.log_softmax(x3, axis=2), 1e-12
        )


def test_softmax_where_mask_broadcasts_explicitly():
    mask = np.array([True, False, True, True, False])  # (5,) against x (3, 5)
    with jax.enable_x64(True):
        x = jnp.asarray(X)
        s = act.softmax(x, where=mask)
        ls = act.log_softmax(x, where=mask)
    np.testing.assert_allclose(s, ref.softmax(X, where=mask), rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(s)[:, ~mask], 0.0)
    np.testing.assert_allclose(ls, ref.log_softmax(X, where=mask), rtol=1e-12)
    assert np.all(np.isneginf(np.asarray(ls)[:, ~mask]))


def test_log_softmax_gradient_matches_analytic_with_mask(rng):
    # ∂/∂x_j Σ_i w_i·ℓ_i = w_j − s_j·Σ_i w_i over kept entries, 0 at dropped ones.
    mask = np.array([[True, True, False, True, True]] * 3)
    w = rng.normal(size=X.shape)
    with jax.enable_x64(True):
        g = jax.grad(
            lambda x: jnp.sum(jnp.where(mask, jnp.asarray(w) * act.log_softmax(x, where=mask), 0))
        )(jnp.asarray(X))
    s = ref.softmax(X, where=mask)
    wk = np.where(mask, w, 0.0)
    expected = np.where(mask, wk - s * wk.sum(-1, keepdims=True), 0.0)
    np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-14)


def test_softmax_gradient_matches_analytic(rng):
    # ∂/∂x_j Σ_i w_i·s_i = s_j·(w_j − Σ_i w_i s_i)
    w = rng.normal(size=X.shape)
    with jax.enable_x64(True):
        g = jax.grad(lambda x: jnp.sum(jnp.asarray(w) * act.softmax(x)))(jnp.asarray(X))
    s = ref.softmax(X)
    np.testing.assert_allclose(g, s * (w - (w * s).sum(-1, keepdims=True)), rtol=1e-10)


def test_fully_masked_or_minus_inf_rows_give_zeros_and_zero_gradient():
    x = jnp.array([[-jnp.inf] * 3, [1.0, 2.0, 3.0], [0.0, -jnp.inf, 5.0]])
    mask = jnp.array([[True] * 3, [False] * 3, [True] * 3])
    for fn in (act.softmax, act.log_softmax):
        y = jax.jit(fn)(x, where=mask)
        np.testing.assert_array_equal(y[:2], 0.0)
        finite = jnp.isfinite(y)  # log_softmax is −∞ at x = −∞ in the partial row
        g = jax.jit(
            jax.grad(lambda x, fn=fn, keep=finite: jnp.sum(jnp.where(keep, fn(x, where=mask), 0)))
        )(x)
        chex.assert_tree_all_finite(g)
        np.testing.assert_array_equal(g[:2], 0.0)
    np.testing.assert_allclose(
        act.softmax(x)[2], ref.softmax(np.array([0.0, -np.inf, 5.0])), rtol=1e-6
    )


def test_softmax_family_finite_at_extremes():
    x = jnp.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    w = jnp.array([[0.3, -1.0, 2.0], [1.0, 0.5, -0.5]])
    for fn in (act.softmax, act.log_softmax):
        y, g = jax.jit(jax.value_and_grad(lambda x, fn=fn: jnp.sum(w * fn(x))))(x)
        chex.assert_tree_all_finite((y, g))
    np.testing.assert_allclose(act.log_softmax(x), ref.log_softmax(np.asarray(x)), rtol=1e-6)
    np.testing.assert_allclose(act.softmax(x), ref.softmax(np.asarray(x)), atol=1e-7)


def test_softmax_rejects_bad_inputs():
    with pytest.raises(TypeError, match="floating"):
        act.softmax(jnp.arange(3))
    with pytest.raises(TypeError, match="boolean"):
        act.log_softmax(jnp.ones(3), where=jnp.ones(3))
    with pytest.raises(ValueError, match=r"where.shape=\(4,\)"):
        act.softmax(jnp.ones((2, 3)), where=jnp.ones(4, bool))


def test_softmax_jits_and_preserves_dtype():
    x = jnp.asarray(X, jnp.bfloat16)
    y = jax.jit(act.softmax)(x)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float64), ref.softmax(np.asarray(x)), atol=1e-2)


ELEMENTWISE_NAMES = [
    *("relu", "step", "leaky_relu", "sigmoid", "softplus", "tanh", "silu", "gelu", "elu"),
    *("celu", "selu", "softsign", "log_sigmoid", "relu6", "hard_sigmoid", "hard_swish"),
    *("hard_tanh", "mish", "squareplus"),
]


@pytest.mark.parametrize("name", ELEMENTWISE_NAMES)
def test_nan_propagates_through_every_elementwise_activation(name):
    # A branch test like `x > 0` is False for NaN; a NaN input must not come out as a number
    # (relu(NaN) was 0: the NaN vanished from the loss while the params went NaN).
    fn = getattr(act, name)
    x = jnp.array([jnp.nan, -2.0, 0.0, 3.0])
    y = np.asarray(fn(x))
    assert np.isnan(y[0]) and np.isfinite(y[1:]).all()
    grad = np.asarray(jax.grad(lambda v: jnp.sum(fn(v)))(x))
    assert np.isfinite(grad[1:]).all()


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_nan_in_a_row_makes_that_row_nan_and_leaves_other_rows_alone(name):
    fn = getattr(act, name)
    x = jnp.array([[jnp.nan, 0.0, 1.0], [0.0, 1.0, 2.0], [-jnp.inf, -jnp.inf, -jnp.inf]])
    y = np.asarray(fn(x))
    assert np.isnan(y[0]).all()
    expected = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    np.testing.assert_allclose(y[1], expected if name == "softmax" else np.log(expected), rtol=1e-6)
    assert not np.isnan(y[2]).any()  # an all −∞ row still gives zeros, not NaN


def test_step_is_heaviside_with_zero_at_zero_and_zero_gradient():
    # f(x) = 1 if x > 0 else 0 — so f(0) = 0 (and f(−0) = 0); f′ = 0 everywhere.
    x = np.concatenate([GRID, [-0.0, 1e-30, -1e-30]])
    expected = (x > 0).astype(np.float64)
    y = act.step(jnp.asarray(x, jnp.float32))
    assert y.dtype == jnp.float32
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(elementwise_grad(act.step)(jnp.asarray(x, jnp.float32)), 0.0)


# ------------------------------------------ finite differences, glu, sparsemax, entmax
# Away from the kinks (0, ±1, ±3, 6) every elementwise activation is smooth there.
SMOOTH = np.array([-7.3, -2.2, -0.6, 0.35, 1.7, 4.4, 8.1])


@pytest.mark.parametrize(("name", "fn", "ref_fn", "ref_grad"), ELEMENTWISE, ids=IDS)
def test_elementwise_gradient_matches_central_differences_float64(name, fn, ref_fn, ref_grad):
    h = 1e-6
    with jax.enable_x64(True):
        x = jnp.asarray(SMOOTH)
        fd = (fn(x + h) - fn(x - h)) / (2 * h)
        np.testing.assert_allclose(elementwise_grad(fn)(x), fd, rtol=1e-7, atol=1e-9)


def test_glu_halves_the_axis_and_matches_reference_and_finite_differences():
    x = np.random.default_rng(3).normal(size=(2, 6)) * 3
    with jax.enable_x64(True):
        for axis in (-1, 0):
            got = act.glu(jnp.asarray(x), axis=axis)
            np.testing.assert_allclose(got, ref.glu(x, axis=axis), rtol=1e-12)
        loss = lambda v: jnp.sum(act.glu(v) ** 2)
        g = jax.grad(loss)(jnp.asarray(x))
        fd = numerical_grad(lambda v: float(np.sum(ref.glu(v) ** 2)), x)
    assert act.glu(jnp.ones((3, 4))).shape == (3, 2)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match=r"even.*\(2, 5\)"):
        act.glu(jnp.ones((2, 5)))


SIMPLEX = [
    ("sparsemax", act.sparsemax, ref.sparsemax, 2.0),
    ("entmax15", act.entmax15, ref.entmax15, 1.5),
    *[
        (
            f"entmax_bisect({alpha})",
            lambda x, axis=-1, a=alpha: act.entmax_bisect(x, a, axis),
            lambda x, axis=-1, a=alpha: ref.entmax_bisect(x, a, axis),
            alpha,
        )
        for alpha in (1.3, 1.5, 2.0, 3.0)
    ],
]
Z = np.array([[0.3, -1.2, 2.0, 1.9, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0], [5.0, 0.1, 0.2, -3.0, 4.6]])


@pytest.mark.parametrize(("name", "fn", "ref_fn", "alpha"), SIMPLEX, ids=[c[0] for c in SIMPLEX])
def test_sparse_maps_match_bisection_and_their_jacobian(name, fn, ref_fn, alpha):
    v = np.random.default_rng(4).normal(size=Z.shape)
    with jax.enable_x64(True):
        p = fn(jnp.asarray(Z))
        np.testing.assert_allclose(p, ref_fn(Z), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fn(jnp.asarray(Z.T), axis=0), ref_fn(Z).T, atol=1e-12)
        _, vjp = jax.vjp(fn, jnp.asarray(Z))
        np.testing.assert_allclose(vjp(jnp.asarray(v))[0], ref.entmax_vjp(p, v, alpha), atol=1e-10)
        fd = numerical_grad(lambda x: float(np.sum(v * ref_fn(x))), Z)
        np.testing.assert_allclose(vjp(jnp.asarray(v))[0], fd, atol=1e-6)
    assert (np.asarray(p) == 0).any(), "both maps give exact zeros"


@pytest.mark.parametrize(("name", "fn", "ref_fn", "alpha"), SIMPLEX, ids=[c[0] for c in SIMPLEX])
def test_sparse_maps_are_finite_at_extremes(name, fn, ref_fn, alpha):
    x = jnp.asarray([[1e4, -1e4, 0.0, 1e4 - 0.5], [-1e4, -1e4, -1e4, -1e4]], jnp.float32)
    p, vjp = jax.vjp(fn, x)
    chex.assert_tree_all_finite((p, vjp(jnp.ones_like(x))))
    np.testing.assert_allclose(p, ref_fn(np.asarray(x, np.float64)), atol=1e-6)
    np.testing.assert_allclose(np.sum(p, axis=-1), 1.0, rtol=1e-6)
    with pytest.raises(TypeError, match="floating"):
        fn(jnp.ones(3, jnp.int32))


# --------------------------------------------------------------- α-entmax by bisection


def _sparsemax_jacobian(p):
    """Closed form for α = 2: diag(s) − s·sᵀ/|S|, s the support indicator."""
    s = (p > 0).astype(np.float64)
    return np.diag(s) - np.outer(s, s) / s.sum()


def _entmax15_jacobian(p):
    """Closed form for α = 1.5: diag(√p) − √p·√pᵀ/Σ√p."""
    r = np.sqrt(p)
    return np.diag(r) - np.outer(r, r) / r.sum()


@pytest.mark.parametrize(
    ("alpha", "exact", "jacobian"),
    [(2.0, act.sparsemax, _sparsemax_jacobian), (1.5, act.entmax15, _entmax15_jacobian)],
    ids=["sparsemax", "entmax15"],
)
def test_entmax_bisect_is_the_sort_based_map_with_its_closed_form_jacobian(alpha, exact, jacobian):
    with jax.enable_x64(True):
        x = jnp.asarray(Z)
        p = np.asarray(act.entmax_bisect(x, alpha))
        np.testing.assert_allclose(p, exact(x), atol=1e-14)  # the exact threshold by sorting
        rows = range(len(Z))  # (B, K, B, K) Jacobians: row b depends on row b only
        backward = np.asarray(jax.jacrev(act.entmax_bisect)(x, alpha))
        forward = np.asarray(jax.jacfwd(act.entmax_bisect)(x, alpha))
        for b in rows:
            want = jacobian(p[b])
            np.testing.assert_allclose(backward[b, :, b], want, atol=1e-13)
            np.testing.assert_allclose(forward[b, :, b], want, atol=1e-13)
            others = [c for c in rows if c != b]
            assert not backward[b][:, others].any() and not forward[b][:, others].any()


def test_entmax_bisect_at_alpha_one_is_softmax_and_tends_to_it():
    x = np.random.default_rng(5).normal(size=(4, 6)) * 2
    with jax.enable_x64(True):
        np.testing.assert_allclose(
            act.entmax_bisect(jnp.asarray(x), 1.0), ref.softmax(x), rtol=1e-13
        )
        gaps = [
            np.abs(act.entmax_bisect(jnp.asarray(x), 1 + eps) - ref.softmax(x)).max()
            for eps in (1e-2, 1e-3, 1e-4)
        ]
    # p(1 + ε) − softmax = O(ε): each tenfold smaller ε gives a roughly tenfold smaller gap.
    assert gaps[0] < 0.05 and 7 < gaps[0] / gaps[1] < 13 and 7 < gaps[1] / gaps[2] < 13, gaps


def test_entmax_bisect_at_plus_minus_1e4_minus_inf_and_narrow_dtypes():
    x = jnp.asarray(
        [[1e4, -1e4, 0.0, 1e4 - 0.5], [-1e4] * 4, [-jnp.inf, 1.0, 2.0, -jnp.inf], [-jnp.inf] * 4],
        jnp.float32,
    )
    v = jnp.asarray(np.random.default_rng(6).normal(size=x.shape), jnp.float32)
    for alpha in (1.2, 1.5, 2.0, 3.0):
        p, vjp = jax.vjp(lambda z, a=alpha: act.entmax_bisect(z, a), x)
        (grad,) = vjp(v)
        chex.assert_tree_all_finite((p, grad))
        finite = np.asarray(x[:3], np.float64)
        np.testing.assert_allclose(p[:3], ref.entmax_bisect(finite, alpha), atol=1e-6)
        np.testing.assert_allclose(np.sum(p[:3], axis=-1), 1.0, rtol=1e-6)
        assert (np.asarray(p[2])[[0, 3]] == 0).all() and (np.asarray(p[3]) == 0).all()
        assert (np.asarray(grad)[3] == 0).all()  # the empty row: zeros, zero gradient
        want = ref.entmax_vjp(np.asarray(p[:3], np.float64), np.asarray(v[:3]), alpha)
        np.testing.assert_allclose(grad[:3], want, atol=1e-5)
    half = act.entmax_bisect(jnp.asarray(Z, jnp.bfloat16), 1.5)
    assert half.dtype == jnp.bfloat16  # computed in float32, handed back in the input's dtype
    np.testing.assert_allclose(np.asarray(half, np.float32), ref.entmax15(Z), atol=1e-2)


def test_entmax_bisect_refuses_bad_arguments_by_name():
    x = jnp.ones(3)
    with pytest.raises(ValueError, match=r"alpha must be .*≥ 1.*alpha=0.5"):
        act.entmax_bisect(x, 0.5)
    with pytest.raises(ValueError, match="alpha=inf"):
        act.entmax_bisect(x, float("inf"))
    with pytest.raises(TypeError, match="alpha must be a real number"):
        act.entmax_bisect(x, "1.5")
    with pytest.raises(ValueError, match="n_iter must be an int ≥ 1, got n_iter=0"):
        act.entmax_bisect(x, 1.5, n_iter=0)
    with pytest.raises(TypeError, match=re.escape("n_iter must be an int ≥ 1, got n_iter=2.5")):
        act.entmax_bisect(x, 1.5, n_iter=2.5)
    with pytest.raises(TypeError, match="floating"):
        act.entmax_bisect(jnp.ones(3, jnp.int32))
