"""GradientTransformation protocol: chain order and state, apply_updates dtypes, tree helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funcnn import optim
from funcnn.optim.base import check_hyperparameter, tree_zeros_like

PARAMS = {"a": jnp.array([[1.0, -2.0], [3.0, 0.5]]), "b": {"c": jnp.array([4.0, -1.0, 0.25])}}
GRADS = {"a": jnp.array([[3.0, 0.0], [-4.0, 1.0]]), "b": {"c": jnp.array([2.0, 2.0, -1.0])}}


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def test_chain_applies_stages_left_to_right():
    g = _flat(GRADS)
    # scale then elementwise clip: clip(2g, ±1.5); the other order gives 2·clip(g, ±1.5).
    first = optim.chain(optim.scale(2.0), optim.clip(1.5))
    second = optim.chain(optim.clip(1.5), optim.scale(2.0))
    u1, _ = first.update(GRADS, first.init(PARAMS))
    u2, _ = second.update(GRADS, second.init(PARAMS))
    np.testing.assert_allclose(_flat(u1), np.clip(2 * g, -1.5, 1.5))
    np.testing.assert_allclose(_flat(u2), 2 * np.clip(g, -1.5, 1.5))


def test_chain_state_is_a_tuple_of_stage_states():
    opt = optim.chain(optim.identity(), optim.scale_by_adam(), optim.scale_by_learning_rate(0.1))
    state = opt.init(PARAMS)
    assert isinstance(state, tuple) and len(state) == 3
    assert isinstance(state[1], optim.ScaleByAdamState)
    assert isinstance(state[2], optim.ScaleByLearningRateState)
    _, new_state = opt.update(GRADS, state, PARAMS)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)


def test_chain_rejects_non_transforms_and_wrong_states():
    with pytest.raises(TypeError, match="position 1"):
        optim.chain(optim.identity(), lambda g: g)
    opt = optim.chain(optim.identity(), optim.identity())
    with pytest.raises(ValueError, match="2 transforms got a state with 1"):
        opt.update(GRADS, (optim.EmptyState(),))


def test_apply_updates_adds_and_keeps_each_param_dtype():
    params = {"f32": jnp.ones(3, jnp.float32), "bf16": jnp.ones(2, jnp.bfloat16)}
    updates = {"f32": jnp.full(3, 0.5, jnp.float32), "bf16": jnp.full(2, 0.25, jnp.float32)}
    new = optim.apply_updates(params, updates)
    assert new["f32"].dtype == jnp.float32 and new["bf16"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(new["f32"]), 1.5)
    np.testing.assert_array_equal(np.asarray(new["bf16"], np.float32), 1.25)
    with jax.enable_x64(True):
        p = {"w": jnp.ones(2, jnp.float32)}
        new = optim.apply_updates(p, {"w": jnp.full(2, 0.5, jnp.float64)})
        assert new["w"].dtype == jnp.float32


def test_global_norm_is_the_norm_of_all_entries():
    np.testing.assert_allclose(float(optim.global_norm(GRADS)), np.linalg.norm(_flat(GRADS)))
    assert float(optim.global_norm({})) == 0.0


def test_tree_zeros_like_makes_fresh_buffers():
    zeros = tree_zeros_like(PARAMS)
    for z, p in zip(jax.tree.leaves(zeros), jax.tree.leaves(PARAMS), strict=True):
        assert z is not p and z.shape == p.shape and z.dtype == p.dtype
        np.testing.assert_array_equal(np.asarray(z), 0.0)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (-1.0, ValueError, r"x must be in \[0.0, inf\], got x=-1.0"),
        (float("nan"), ValueError, "x must be a finite number, got x=nan"),
        ("0.1", TypeError, "x must be a real number, got x='0.1'"),
        (True, TypeError, "x must be a real number"),
        (jnp.ones(2), TypeError, "x must be a real number"),
    ],
)
def test_check_hyperparameter_names_argument_and_value(value, error, match):
    with pytest.raises(error, match=match):
        check_hyperparameter(value, "x")


def test_check_hyperparameter_accepts_ints_and_numpy_scalars():
    assert check_hyperparameter(0, "b1") == 0.0
    assert check_hyperparameter(np.float32(0.5), "b1") == 0.5
    assert check_hyperparameter(jnp.asarray(0.25), "b1") == 0.25


def test_apply_updates_refuses_an_update_of_another_shape_naming_the_leaf():
    # Before: {'w': ones(3)} + {'w': ones((2, 3))} returned a (2, 3) leaf.
    with pytest.raises(
        ValueError, match=r"updates\['w'\] has shape \(2, 3\) but params\['w'\] has shape \(3,\)"
    ):
        optim.apply_updates({"w": jnp.ones(3)}, {"w": jnp.ones((2, 3))})


@pytest.mark.parametrize("build", [lambda: optim.sgd(0.1, momentum=0.9), lambda: optim.adam(1e-3)])
def test_optimizers_refuse_a_gradient_of_another_shape(build):
    opt = build()
    params = {"a": {"w": jnp.ones((3,))}}
    state = opt.init(params)
    with pytest.raises(ValueError, match=r"updates\['a'\]\['w'\] has shape \(2, 3\)"):
        opt.update({"a": {"w": jnp.ones((2, 3))}}, state, params)


def test_integer_params_are_refused_by_name():
    params = {"w": jnp.ones(3), "count": jnp.zeros((), jnp.int32)}
    with pytest.raises(TypeError, match=r"params\['count'\] has dtype int32"):
        optim.sgd(0.1).init(params)
    with pytest.raises(TypeError, match=r"params\['count'\] has dtype int32"):
        optim.apply_updates(params, jax.tree.map(jnp.zeros_like, params))


def test_float16_params_get_float32_moments_and_adamw_stays_finite():
    # float16 cannot hold g²: AdamW on float16 params with float16 moments reached NaN by
    # step 100. Moments default to float32 for float16 leaves (bf16 keeps bf16: same range).
    rng = np.random.default_rng(5)
    params = {"w": jnp.asarray(rng.standard_normal(64), jnp.float16)}
    opt = optim.adamw(1e-2)
    state = opt.init(params)
    moments = [x for x in jax.tree.leaves(state) if x.shape == (64,)]
    assert moments and all(m.dtype == jnp.float32 for m in moments)
    bf16_state = opt.init({"w": jnp.ones(4, jnp.bfloat16)})
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(bf16_state) if x.shape == (4,))

    @jax.jit
    def step(params, state):
        grads = jax.grad(lambda p: jnp.sum((p["w"].astype(jnp.float32) * 1e-3) ** 2))(params)
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    for _ in range(150):
        params, state = step(params, state)
    assert params["w"].dtype == jnp.float16
    assert np.isfinite(np.asarray(params["w"], np.float32)).all()


def test_a_schedule_giving_negative_rates_is_refused_when_the_optimizer_is_built():
    falling = optim.linear_schedule(1.0, -1.0, 1000)  # negative from step 501 on
    with pytest.raises(ValueError, match=r"learning_rate schedule gave -1.0 at step 1000"):
        optim.sgd(falling)
    with pytest.raises(ValueError, match=r"gave nan at step 0"):
        optim.adam(lambda step: jnp.float32(jnp.nan) + 0 * step)
    optim.adamw(optim.warmup_cosine_decay(0.0, 1e-3, 10, 100))  # a valid schedule is accepted


def test_an_optimizer_built_inside_vmap_over_its_learning_rate_runs():
    # The schedule closes over a traced rate, so probing it must step aside, not fail.
    def one_sgd_step(learning_rate):
        opt = optim.sgd(lambda step: learning_rate)
        updates, _ = opt.update({"w": jnp.float32(2.0)}, opt.init({"w": jnp.float32(0.0)}))
        return updates["w"]

    rates = np.array([0.1, 0.5], np.float32)
    np.testing.assert_allclose(np.asarray(jax.vmap(one_sgd_step)(rates)), -2.0 * rates)


def test_global_norm_of_bfloat16_leaves_is_accumulated_and_returned_in_float32():
    # 2¹⁶ entries of 1 in bf16: a bf16 running sum stalls at 256 (8 significand bits), the
    # float32 one reaches 65536 exactly, so ‖g‖ = 256.
    grads = {"a": jnp.ones((256, 128), jnp.bfloat16), "b": jnp.ones((128, 256), jnp.bfloat16)}
    norm = optim.global_norm(grads)
    assert norm.dtype == jnp.float32
    assert float(norm) == 256.0


# --- every transformation refuses what it cannot optimize (issue 24) --------------------------


def _alias(name):
    # schedule_free_adamw is the one alias without a default learning rate (as optax's)
    return (
        optim.schedule_free_adamw(1e-2) if name == "schedule_free_adamw" else getattr(optim, name)()
    )


# Every alias, a bare stage (no chain around it) and a wrapper: the check lives in
# GradientTransformation itself, so each of them must refuse.
TRANSFORMS = {
    **{name: (lambda name=name: _alias(name)) for name in optim.aliases.__all__},
    "scale_by_adam": lambda: optim.scale_by_adam(),
    "accumulate(adam)": lambda: optim.accumulate(optim.adam(), 2),
}
MATRIX = {"w": jnp.ones((2, 3))}  # 2-D, so Muon accepts it too


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_every_transformation_refuses_complex_int_and_bool_leaves(name):
    opt = TRANSFORMS[name]()
    with pytest.raises(TypeError, match=r"init: params\['w'\] has the complex dtype complex64"):
        opt.init({"w": jnp.ones((2, 3), jnp.complex64)})
    state = opt.init(MATRIX)
    for dtype in (jnp.int32, jnp.bool_, jnp.complex64):
        grads = {"w": jnp.ones((2, 3), dtype)}
        with pytest.raises(TypeError, match=r"update: updates\['w'\] has .*dtype"):
            opt.update(grads, state, MATRIX)
        with pytest.raises(TypeError, match=r"update: updates\['w'\] has .*dtype"):
            jax.jit(opt.update)(grads, state, MATRIX)  # refused at trace time as well


def test_a_purely_imaginary_gradient_is_refused_not_half_applied():
    # What the check prevents: Adam on complex leaves moved by the real part of g only.
    opt = optim.adam(0.1)
    state = opt.init({"w": jnp.ones(2)})
    with pytest.raises(TypeError, match="complex"):
        opt.update({"w": jnp.array([1j, -1j], jnp.complex64)}, state, {"w": jnp.ones(2)})


def test_apply_updates_refuses_complex_and_int_updates():
    params = {"w": jnp.ones(2)}
    for dtype in (jnp.complex64, jnp.int32):
        with pytest.raises(TypeError, match=r"apply_updates: updates\['w'\] has .*dtype"):
            optim.apply_updates(params, {"w": jnp.ones(2, dtype)})


def test_python_scalars_are_refused_at_init_with_the_fix():
    # They used to pass init and fail at update with "'float' object has no attribute ...".
    with pytest.raises(TypeError, match=r"params\['w'\] is a Python float \(1.0\).*asarray"):
        optim.adam(0.1).init({"w": 1.0, "b": jnp.ones(2)})
    opt = optim.sgd(0.1)
    state = opt.init({"w": jnp.ones(())})
    with pytest.raises(TypeError, match=r"updates\['w'\] is a Python float"):
        opt.update({"w": 0.5}, state, {"w": jnp.ones(())})


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda dtype: optim.adam(mu_dtype=dtype), "mu_dtype"),
        (lambda dtype: optim.adamw(nu_dtype=dtype), "nu_dtype"),
        (lambda dtype: optim.adam(amsgrad=True, nu_dtype=dtype), "nu_dtype"),
        (lambda dtype: optim.lamb(mu_dtype=dtype), "mu_dtype"),
        (lambda dtype: optim.lion(mu_dtype=dtype), "mu_dtype"),
        (lambda dtype: optim.muon(mu_dtype=dtype), "mu_dtype"),
        (lambda dtype: optim.trace(0.9, accumulator_dtype=dtype), "accumulator_dtype"),
    ],
)
def test_non_float_state_dtypes_are_refused_when_the_optimizer_is_built(build, name):
    for dtype in (jnp.int32, jnp.bool_, jnp.complex64):
        with pytest.raises(TypeError, match=rf"{name} must be None or a real floating dtype"):
            build(dtype)
    with pytest.raises(TypeError, match=rf"{name} must be None or a floating dtype"):
        build("not a dtype")
    assert build(jnp.bfloat16) is not None and build(jnp.float32) is not None


def test_a_float_mu_dtype_still_stores_the_moment_in_that_dtype():
    opt = optim.adam(0.1, mu_dtype=jnp.bfloat16)
    state = opt.init({"w": jnp.ones(3)})
    updates, state = opt.update({"w": jnp.full(3, 0.3)}, state, {"w": jnp.ones(3)})
    assert state[0].mu["w"].dtype == jnp.bfloat16 and state[0].nu["w"].dtype == jnp.float32
    # t = 1: m = 0.1·g = 0.03 (bf16-rounded), |u| = η·m̂/(√v̂ + ε) ≈ η
    np.testing.assert_allclose(np.asarray(state[0].mu["w"], np.float32), 0.03, rtol=1e-2)
    np.testing.assert_allclose(np.asarray(updates["w"]), -0.1, rtol=1e-2)


LEAF_DTYPES = [jnp.float16, jnp.bfloat16, jnp.float32, jnp.int8, jnp.int32, jnp.uint8]
LEAF_DTYPES += [jnp.bool_, jnp.complex64]


@settings(max_examples=10, deadline=None, derandomize=True)
@given(
    name=st.sampled_from(sorted(TRANSFORMS)),
    param_dtype=st.sampled_from(LEAF_DTYPES),
    grad_dtype=st.sampled_from(LEAF_DTYPES),
)
def test_dtype_sweep_real_floats_step_in_their_own_dtype_everything_else_is_refused(
    name, param_dtype, grad_dtype
):
    # A sweep over every transformation and leaf dtype: real floats (float16, bfloat16,
    # float32) take a finite step that keeps the parameter's dtype; any other dtype of the
    # params or of the gradients is a TypeError naming the leaf — nothing is cast silently.
    opt = TRANSFORMS[name]()
    params = {"w": jnp.full((2, 3), 0.5).astype(param_dtype)}
    grads = {"w": jnp.full((2, 3), 0.25).astype(grad_dtype)}
    floats = (jnp.float16, jnp.bfloat16, jnp.float32)
    if param_dtype not in floats:
        with pytest.raises(TypeError, match=r"params\['w'\]"):
            opt.init(params)
        return
    state = opt.init(params)
    if grad_dtype not in floats:
        with pytest.raises(TypeError, match=r"updates\['w'\]"):
            opt.update(grads, state, params)
        return
    updates, _ = opt.update(grads, state, params)
    new = optim.apply_updates(params, updates)
    assert new["w"].dtype == param_dtype
    assert np.all(np.isfinite(np.asarray(new["w"], np.float32)))
