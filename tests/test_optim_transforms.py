"""Each small transform against its equation written out in float64 NumPy, plus the traps
for clipping and masking and the equivalent compositions (RMS scaling ≡ Adam with β₁ = 0)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim

PARAMS = {"w": jnp.array([[0.5, -1.0], [2.0, 0.0]]), "b": jnp.array([0.1, -0.3, 0.7])}
GRAD_SEQUENCE = [
    {"w": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.array([0.2, 0.0, -1.0])},
    {"w": jnp.array([[-0.5, 1.0], [0.25, 2.0]]), "b": jnp.array([0.4, 1.0, 0.5])},
    {"w": jnp.array([[2.0, 0.5], [-1.0, 0.0]]), "b": jnp.array([-0.1, 0.3, 2.0])},
]


def _np(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def _run(transform, grads_sequence=GRAD_SEQUENCE, params=PARAMS):
    """Outputs u₁, u₂, … of `transform` fed the gradient sequence (params held fixed)."""
    state = transform.init(params)
    outputs = []
    for g in grads_sequence:
        u, state = transform.update(g, state, params)
        outputs.append(_np(u))
    return outputs, state


def _assert_trees_close(actual, expected, rtol=1e-6, atol=1e-7):
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


# --- learning rate ----------------------------------------------------------------------


def test_scale_by_learning_rate_flips_sign_and_follows_schedule_from_zero():
    schedule = lambda step: 0.1 * (step + 1.0)  # η = 0.1, 0.2, 0.3
    transform = optim.scale_by_learning_rate(schedule)
    state = transform.init(PARAMS)
    np.testing.assert_allclose(float(optim.current_learning_rate(state)), 0.1)
    for k, g in enumerate(GRAD_SEQUENCE):
        u, state = transform.update(g, state)
        eta = 0.1 * (k + 1)
        _assert_trees_close(_np(u), jax.tree.map(lambda x, e=eta: -e * x, _np(g)))
        np.testing.assert_allclose(float(optim.current_learning_rate(state)), eta, rtol=1e-6)
        assert int(state.count) == k + 1 and state.count.dtype == jnp.int32


def test_current_learning_rate_finds_the_stage_in_nested_states_and_rejects_ambiguity():
    opt = optim.chain(
        optim.clip_by_global_norm(1.0), optim.adamw(0.02, mask={"w": True, "b": False})
    )
    assert float(optim.current_learning_rate(opt.init(PARAMS))) == pytest.approx(0.02)
    two = optim.chain(optim.sgd(0.1), optim.sgd(0.2))
    with pytest.raises(ValueError, match="found 2"):
        optim.current_learning_rate(two.init(PARAMS))
    with pytest.raises(ValueError, match="found 0"):
        optim.current_learning_rate(optim.scale_by_adam().init(PARAMS))


# --- momentum, RMS, Adam -----------------------------------------------------------------


@pytest.mark.parametrize("nesterov", [False, True])
def test_trace_is_heavy_ball_momentum(nesterov):
    mu = 0.8
    outputs, _ = _run(optim.trace(mu, nesterov=nesterov))
    v = jax.tree.map(np.zeros_like, _np(PARAMS))
    for g, u in zip(map(_np, GRAD_SEQUENCE), outputs, strict=True):
        v = jax.tree.map(lambda v_, g_: mu * v_ + g_, v, g)
        expected = jax.tree.map(lambda g_, v_: g_ + mu * v_, g, v) if nesterov else v
        _assert_trees_close(u, expected)


@pytest.mark.parametrize("eps_in_sqrt", [False, True])
@pytest.mark.parametrize("centered", [False, True])
def test_scale_by_rms_matches_its_equation(eps_in_sqrt, centered):
    rho, eps = 0.9, 1e-3
    transform = optim.scale_by_rms(rho, eps, eps_in_sqrt=eps_in_sqrt, centered=centered)
    outputs, _ = _run(transform)
    s = jax.tree.map(np.zeros_like, _np(PARAMS))
    m = jax.tree.map(np.zeros_like, _np(PARAMS))
    for g, u in zip(map(_np, GRAD_SEQUENCE), outputs, strict=True):
        s = jax.tree.map(lambda s_, g_: rho * s_ + (1 - rho) * g_**2, s, g)
        m = jax.tree.map(lambda m_, g_: rho * m_ + (1 - rho) * g_, m, g)
        var = jax.tree.map(lambda s_, m_: s_ - m_**2, s, m) if centered else s
        if eps_in_sqrt:
            expected = jax.tree.map(lambda g_, v_: g_ / np.sqrt(v_ + eps), g, var)
        else:
            expected = jax.tree.map(lambda g_, v_: g_ / (np.sqrt(v_) + eps), g, var)
        _assert_trees_close(u, expected)


def test_scale_by_adam_matches_its_equation():
    b1, b2, eps = 0.9, 0.99, 1e-3
    outputs, state = _run(optim.scale_by_adam(b1, b2, eps))
    m = jax.tree.map(np.zeros_like, _np(PARAMS))
    v = jax.tree.map(np.zeros_like, _np(PARAMS))
    for t, (g, u) in enumerate(zip(map(_np, GRAD_SEQUENCE), outputs, strict=True), start=1):
        m = jax.tree.map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, m, g)
        v = jax.tree.map(lambda v_, g_: b2 * v_ + (1 - b2) * g_**2, v, g)
        expected = jax.tree.map(
            lambda m_, v_, t=t: (m_ / (1 - b1**t)) / (np.sqrt(v_ / (1 - b2**t)) + eps), m, v
        )
        _assert_trees_close(u, expected)
    assert int(state.count) == 3 and state.count.dtype == jnp.int32
    _assert_trees_close(_np(state.mu), m)
    _assert_trees_close(_np(state.nu), v)


def test_rms_scaling_is_adam_with_b1_zero_up_to_bias_correction():
    """Composition check: Adam(β₁=0, β₂=ρ) keeps the same second moment as RMS(ρ), and its
    direction is g/(√(s/(1−ρᵗ)) + ε) where s is the RMS state."""
    rho, eps = 0.95, 1e-4
    rms, adam = optim.scale_by_rms(rho, eps), optim.scale_by_adam(0, rho, eps)
    rms_state, adam_state = rms.init(PARAMS), adam.init(PARAMS)
    for t, g in enumerate(GRAD_SEQUENCE, start=1):
        _, rms_state = rms.update(g, rms_state)
        adam_u, adam_state = adam.update(g, adam_state)
        _assert_trees_close(_np(adam_state.nu), _np(rms_state.nu))
        expected = jax.tree.map(
            lambda g_, s_, t=t: g_ / (np.sqrt(s_ / (1 - rho**t)) + eps),
            _np(g),
            _np(rms_state.nu),
        )
        _assert_trees_close(_np(adam_u), expected)


def test_moments_keep_param_dtype_unless_asked():
    params = {"w": jnp.ones((2, 2), jnp.bfloat16)}
    grads = {"w": jnp.full((2, 2), 0.5, jnp.bfloat16)}
    state = optim.scale_by_adam().init(params)
    u, state = optim.scale_by_adam().update(grads, state)
    assert state.mu["w"].dtype == state.nu["w"].dtype == u["w"].dtype == jnp.bfloat16
    wide = optim.scale_by_adam(mu_dtype=jnp.float32, nu_dtype=jnp.float32)
    _, state = wide.update(grads, wide.init(params))
    assert state.mu["w"].dtype == state.nu["w"].dtype == jnp.float32


# --- weight decay, clipping, masking ------------------------------------------------------


def test_add_decayed_weights_adds_lambda_theta_and_needs_params():
    outputs, _ = _run(optim.add_decayed_weights(0.1), GRAD_SEQUENCE[:1])
    expected = jax.tree.map(lambda g, p: g + 0.1 * p, _np(GRAD_SEQUENCE[0]), _np(PARAMS))
    _assert_trees_close(outputs[0], expected)
    transform = optim.add_decayed_weights(0.1)
    with pytest.raises(ValueError, match="needs the params"):
        transform.update(GRAD_SEQUENCE[0], transform.init(PARAMS))


def _clip(grads, max_norm, eps=0.0):
    transform = optim.clip_by_global_norm(max_norm, eps=eps)
    return transform.update(grads, transform.init(grads))[0]


def test_clip_by_global_norm_leaves_small_gradients_bitwise_untouched():
    g = GRAD_SEQUENCE[0]
    norm = np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(g)))
    out = _clip(g, max_norm=norm * 1.01)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(g), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_clip_by_global_norm_rescales_large_gradients_to_the_threshold():
    g = GRAD_SEQUENCE[0]
    g64 = _np(g)
    norm = np.sqrt(sum(np.sum(x**2) for x in jax.tree.leaves(g64)))
    out = _clip(g, max_norm=1.0)
    _assert_trees_close(_np(out), jax.tree.map(lambda x: x / norm, g64))
    np.testing.assert_allclose(float(optim.global_norm(out)), 1.0, rtol=1e-6)


def test_clip_by_global_norm_is_exact_at_zero_gradient():
    zeros = jax.tree.map(jnp.zeros_like, PARAMS)
    for eps in (0.0, 1e-6):
        out = _clip(zeros, max_norm=1.0, eps=eps)
        for x in jax.tree.leaves(out):
            np.testing.assert_array_equal(np.asarray(x), 0.0)  # no 0/0 NaN


def test_clip_by_global_norm_eps_is_pytorchs_form():
    """PyTorch: g·min(1, c/(‖g‖ + 1e-6)) — shrinks slightly even just below the threshold."""
    g = GRAD_SEQUENCE[1]
    g64 = _np(g)
    norm = np.sqrt(sum(np.sum(x**2) for x in jax.tree.leaves(g64)))
    for max_norm in (norm, 0.5 * norm):
        out = _clip(g, max_norm=max_norm, eps=1e-6)
        factor = min(1.0, max_norm / (norm + 1e-6))
        _assert_trees_close(_np(out), jax.tree.map(lambda x, f=factor: f * x, g64), rtol=1e-7)
    assert np.asarray(_clip(g, max_norm=norm, eps=1e-6)["b"])[0] < np.asarray(g["b"])[0]


def test_masked_applies_inner_only_to_selected_leaves():
    transform = optim.masked(optim.scale(-3.0), {"w": True, "b": False})
    outputs, state = _run(transform, GRAD_SEQUENCE[:1])
    g = _np(GRAD_SEQUENCE[0])
    _assert_trees_close(outputs[0], {"w": -3.0 * g["w"], "b": g["b"]})
    # The inner state only covers the selected leaves.
    inner = optim.masked(optim.scale_by_adam(), lambda p: {"w": False, "b": True})
    state = inner.init(PARAMS)
    assert [x.shape for x in jax.tree.leaves(state.inner_state.mu)] == [(3,)]
    u, _ = inner.update(GRAD_SEQUENCE[0], state, PARAMS)
    np.testing.assert_array_equal(np.asarray(u["w"]), np.asarray(GRAD_SEQUENCE[0]["w"]))


def test_masked_broadcasts_a_prefix_mask_and_rejects_bad_masks():
    params = {"a": {"x": jnp.ones(2), "y": jnp.ones(3)}, "b": jnp.ones(1)}
    transform = optim.masked(optim.scale(0.0), {"a": True, "b": False})
    u, _ = transform.update(params, transform.init(params))
    assert float(jnp.sum(u["a"]["x"]) + jnp.sum(u["a"]["y"])) == 0.0 and float(u["b"][0]) == 1
    with pytest.raises(ValueError, match="mask must be a pytree of bools"):
        optim.masked(optim.identity(), {"c": True}).init(params)
    with pytest.raises(TypeError, match="mask leaves must be Python bools"):
        optim.masked(optim.identity(), {"a": jnp.array(True), "b": False}).init(params)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: optim.scale_by_adam(b1=1.0), r"b1 must be in \[0.0, 1.0\), got b1=1.0"),
        (lambda: optim.scale_by_adam(b2=-0.1), "b2 must be in"),
        (lambda: optim.scale_by_adam(eps=0.0), r"eps must be in \(0.0, inf\], got eps=0.0"),
        (lambda: optim.scale_by_rms(decay=1.5), "decay must be in"),
        (lambda: optim.trace(-0.5), "momentum must be in"),
        (lambda: optim.clip_by_global_norm(0.0), "max_norm must be in"),
        (lambda: optim.clip_by_global_norm(1.0, eps=-1e-6), "eps must be in"),
        (lambda: optim.add_decayed_weights(-1e-4), "weight_decay must be in"),
        (lambda: optim.scale_by_learning_rate(-0.1), "learning_rate must be in"),
        (lambda: optim.scale_by_learning_rate(float("nan")), "learning_rate must be a finite"),
    ],
)
def test_bad_transform_hyperparameters_raise_naming_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_masked_requires_a_transform():
    with pytest.raises(TypeError, match="masked expects a GradientTransformation"):
        optim.masked(lambda g: g, {"w": True})
