"""The modern half of the optimizer zoo: AMSGrad on adam/adamw, Lion, LAMB (and its trust
ratio stage), and `partition` (funcnn/optim/modern.py, partition.py, aliases.py).

Each registry configuration of these against its float64 transcription in both dtypes
(and AMSGrad's fused sibling-loop path too), closed forms of the first steps written by
hand from the papers' equations, validation naming the argument, dtypes, checkpoints.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.reference import optim as ref
from funcnn.train import checkpoint
from funcnn.verify import registry

MODERN_CONFIGS = [
    "adam_amsgrad",
    "adam_amsgrad_b2_0.9_weight_decay",
    "adamw_amsgrad",
    "adamw_amsgrad_mask_warmup_cosine",
    "lion_cosine",
    "lion_weight_decay_mask_linear",
    "lion_sign_flips_cosine",
    "lamb",
    "lamb_weight_decay",
    "lamb_mask_warmup_cosine",
    "chain_trust_ratio_options_trace",
    "partition_tree_sgd_adamw",
    "partition_fn_lamb_clipped_scale",
    "partition_fn_amsgrad_lion",
]


# --- every configuration against its float64 transcription --------------------------------


def test_every_configuration_is_registered_so_the_reference_agreement_test_runs_it():
    # tests/test_reference_agreement.py runs every registry.CONFIGS entry for 500 steps in both
    # dtypes against its float64 transcription (≤ 1e-10 float64, ≤ 1e-5 float32); running the
    # same registry entries again here would only repeat that computation.
    assert set(MODERN_CONFIGS) <= set(registry.CONFIGS)


def test_amsgrad_configs_exercise_the_maximum():
    """On the registry problem v_max ≠ v for many entries: the max changes the trajectory."""
    start = ref.flatten_params(registry.problem_params(0))
    grad = registry.problem_grad_numpy
    plain, _ = ref.run_reference(ref.Adam(1e-2, 0.8, 0.9, 1e-6, 0.1), start, grad, 500)
    amsgrad = ref.Adam(1e-2, 0.8, 0.9, 1e-6, 0.1, amsgrad=True)
    final, _ = ref.run_reference(amsgrad, start, grad, 500)
    assert max(np.max(np.abs(final[k] - plain[k])) for k in final) > 1e-2
    assert any(np.any(amsgrad.v_max[k] > amsgrad.v[k]) for k in final)


# --- closed forms -------------------------------------------------------------------------

G = np.array([0.5, -3.0, 0.0, 2e-3])
THETA = np.array([1.0, -2.0, 0.5, 0.0])


def _one_step(optimizer):
    def step(params, state, grads):
        updates, state = optimizer.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    return step


def _run(optimizer, grads_sequence, theta=THETA):
    """θ after each of the given gradients (float64, one leaf "x"), with the final state."""
    with jax.enable_x64(True):
        params = {"x": jnp.asarray(theta)}
        state = optimizer.init(params)
        step = jax.jit(_one_step(optimizer))
        thetas = []
        for g in grads_sequence:
            params, state = step(params, state, {"x": jnp.asarray(g)})
            thetas.append(np.asarray(params["x"]))
    return thetas, state


def test_amsgrad_second_step_uses_max_of_uncorrected_v_with_current_correction():
    lr, b1, b2, eps = 0.1, 0.9, 0.99, 1e-8
    g1, g2 = G, G / 10  # v₂ = β₂v₁ + (1−β₂)g₂² < v₁ wherever g ≠ 0
    (t1, t2), state = _run(optim.adam(lr, b1, b2, eps, amsgrad=True), [g1, g2])
    v1 = (1 - b2) * g1**2
    v2 = b2 * v1 + (1 - b2) * g2**2
    m2 = b1 * (1 - b1) * g1 + (1 - b1) * g2
    m_hat = m2 / (1 - b1**2)
    np.testing.assert_allclose(t1, THETA - lr * g1 / (np.abs(g1) + eps), rtol=1e-14)
    torch_step = m_hat / (np.sqrt(np.maximum(v1, v2)) / np.sqrt(1 - b2**2) + eps)
    np.testing.assert_allclose(t2, t1 - lr * torch_step, rtol=1e-13)
    # optax's placement max(v̂₁, v̂₂) gives another step (the check can tell them apart)
    optax_step = m_hat / (np.sqrt(np.maximum(v1 / (1 - b2), v2 / (1 - b2**2))) + eps)
    assert np.max(np.abs(optax_step - torch_step)) > 1e-3
    np.testing.assert_allclose(np.asarray(state[0].nu_max["x"]), np.maximum(v1, v2), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(state[0].nu["x"]), v2, rtol=1e-14)


def test_amsgrad_false_keeps_the_three_field_adam_state():
    state = optim.adamw().init({"x": jnp.zeros(3)})
    assert type(state[0]) is optim.ScaleByAdamState
    state = optim.adamw(amsgrad=True).init({"x": jnp.zeros(3)})
    assert type(state[0]) is optim.ScaleByAmsgradState


def test_lion_first_steps_closed_form():
    lr, b1, b2, wd = 0.01, 0.8, 0.95, 0.3
    g2 = np.array([-0.1, -1.0, 1.0, -0.01])
    (t1, t2), state = _run(optim.lion(lr, b1, b2), [G, g2])
    np.testing.assert_array_equal(t1, THETA - lr * np.sign(G))  # m₀ = 0: −η·sign(g), sign(0) = 0
    m1 = (1 - b2) * G
    c2 = b1 * m1 + (1 - b1) * g2  # entry 0: 0.8·0.025 − 0.02 > 0 opposes sign(g₂)
    assert np.sign(c2[0]) != np.sign(g2[0])
    np.testing.assert_allclose(t2, t1 - lr * np.sign(c2), rtol=1e-15)
    np.testing.assert_allclose(np.asarray(state[0].mu["x"]), b2 * m1 + (1 - b2) * g2, rtol=1e-15)
    # decoupled weight decay: θ ← θ − η·(sign(c) + λθ)
    (t1,), _ = _run(optim.lion(lr, b1, b2, weight_decay=wd), [G])
    np.testing.assert_allclose(t1, THETA - lr * (np.sign(G) + wd * THETA), rtol=1e-15)


def test_lamb_trust_ratio_on_hand_computable_leaves():
    lr, eps, wd = 0.1, 1e-6, 0.5
    with jax.enable_x64(True):
        params = {"w": jnp.asarray([3.0, 4.0]), "zero": jnp.zeros(2), "still": jnp.ones(2)}
        grads = {"w": jnp.asarray([2.0, -2.0]), "zero": jnp.asarray([1.0, -1.0]),
                 "still": jnp.zeros(2)}  # fmt: skip
        optimizer = optim.lamb(lr, eps=eps, weight_decay=wd)
        updates, _ = optimizer.update(grads, optimizer.init(params), params)
    # t = 1: m̂ = g, √v̂ = |g|, so r = g/(|g| + ε) + λθ
    r_w = np.array([2.0, -2.0]) / (2.0 + eps) + wd * np.array([3.0, 4.0])
    phi = 5.0 / np.linalg.norm(r_w)  # ‖θ‖ = 5
    np.testing.assert_allclose(np.asarray(updates["w"]), -lr * phi * r_w, rtol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(updates["w"])), lr * 5.0, rtol=1e-14)
    # ‖θ‖ = 0 (decay adds nothing): φ = 1, the plain Adam step
    r_zero = np.array([1.0, -1.0]) / (1.0 + eps)
    np.testing.assert_allclose(np.asarray(updates["zero"]), -lr * r_zero, rtol=1e-14)
    # g = 0, decay only: r = λθ, ‖r‖ = λ‖θ‖ so φ = 1/λ and u = −η·θ
    np.testing.assert_allclose(np.asarray(updates["still"]), -lr * np.ones(2), rtol=1e-14)


def test_trust_ratio_stage_options_and_zero_norms():
    with jax.enable_x64(True):
        params = {"a": jnp.asarray([0.3, 0.4]), "b": jnp.zeros(3), "c": jnp.asarray([6.0, 8.0])}
        grads = {"a": jnp.asarray([1.0, 0.0]), "b": jnp.asarray([1.0, 2.0, 2.0]),
                 "c": jnp.zeros(2)}  # fmt: skip
        stage = optim.scale_by_trust_ratio()
        plain, _ = stage.update(grads, stage.init(params), params)
        stage = optim.scale_by_trust_ratio(1.0, trust_coefficient=0.5, eps=0.25)
        floored, _ = stage.update(grads, stage.init(params), params)
    np.testing.assert_allclose(np.asarray(plain["a"]), [0.5, 0.0], rtol=1e-15)  # ‖θ‖/‖g‖ = 0.5
    np.testing.assert_array_equal(np.asarray(plain["b"]), [1.0, 2.0, 2.0])  # ‖θ‖ = 0: φ = 1
    np.testing.assert_array_equal(np.asarray(plain["c"]), [0.0, 0.0])  # ‖g‖ = 0: φ = 1, no NaN
    # n₀ = 1: ‖θ_a‖ → 1, ‖θ_b‖ → 1 (no longer 0); φ = 0.5·‖θ‖/(‖g‖ + 0.25)
    np.testing.assert_allclose(np.asarray(floored["a"]), [0.5 / 1.25, 0.0], rtol=1e-15)
    np.testing.assert_allclose(np.asarray(floored["b"]), np.array([1.0, 2.0, 2.0]) * 0.5 / 3.25)


def test_partition_routes_each_label_to_its_own_transform():
    lr = 0.1
    params = {"dense": {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}, "head": jnp.ones(4)}
    grads = {"dense": {"w": jnp.full((2, 3), 2.0), "b": jnp.full(3, 3.0)}, "head": jnp.ones(4)}
    optimizer = optim.partition(
        {"train": optim.sgd(lr), "frozen": optim.scale(0.0)}, {"dense": "train", "head": "frozen"}
    )
    state = optimizer.init(params)
    updates, state = jax.jit(optimizer.update)(grads, state, params)
    np.testing.assert_array_equal(np.asarray(updates["head"]), np.zeros(4))
    np.testing.assert_allclose(np.asarray(updates["dense"]["w"]), -lr * 2.0 * np.ones((2, 3)))
    np.testing.assert_allclose(np.asarray(updates["dense"]["b"]), -lr * 3.0 * np.ones(3))
    assert set(state.inner_states) == {"train", "frozen"}
    assert float(optim.current_learning_rate(state)) == pytest.approx(lr)  # the one rate


def test_partition_with_labels_function_gives_each_transform_only_its_leaves():
    """A global-norm clip under one label measures that label's leaves only; the state of a
    label holds arrays for its own leaves only."""
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2), "c": jnp.ones(3)}
    grads = {"w": jnp.full((2, 2), 10.0), "b": jnp.asarray([3.0, 4.0]), "c": jnp.zeros(3)}

    def labels(tree):
        return jax.tree.map(lambda x: "matrix" if x.ndim == 2 else "vector", tree)

    optimizer = optim.partition(
        {"matrix": optim.adam(0.01), "vector": optim.clip_by_global_norm(1.0)}, labels
    )
    state = optimizer.init(params)
    updates, state = optimizer.update(grads, state, params)
    np.testing.assert_allclose(np.asarray(updates["b"]), [0.6, 0.8], rtol=1e-6)  # ‖(3, 4)‖ = 5
    np.testing.assert_array_equal(np.asarray(updates["c"]), np.zeros(3))
    np.testing.assert_allclose(np.asarray(updates["w"]), -0.01 * np.ones((2, 2)), rtol=1e-6)
    adam_state = state.inner_states["matrix"][0]
    assert [leaf.shape for leaf in jax.tree.leaves(adam_state.mu)] == [(2, 2)]
    assert jax.tree.leaves(state.inner_states["vector"]) == []
    # update without params: the labels function runs on the updates
    again, _ = optimizer.update(grads, state)
    np.testing.assert_allclose(np.asarray(again["b"]), [0.6, 0.8], rtol=1e-6)


# --- validation: a clear error naming the argument and the value --------------------------

_BAD = [
    (optim.lion, {"learning_rate": -1e-4}, ValueError, "learning_rate=-0.0001"),
    (optim.lion, {"b1": 1.0}, ValueError, "b1=1.0"),
    (optim.lion, {"b2": -0.1}, ValueError, "b2=-0.1"),
    (optim.lion, {"weight_decay": -0.1}, ValueError, "weight_decay=-0.1"),
    (optim.lamb, {"learning_rate": "fast"}, TypeError, "learning_rate='fast'"),
    (optim.lamb, {"b1": 1.5}, ValueError, "b1=1.5"),
    (optim.lamb, {"b2": 1.0}, ValueError, "b2=1.0"),
    (optim.lamb, {"eps": 0.0}, ValueError, "eps=0.0"),
    (optim.lamb, {"weight_decay": -1.0}, ValueError, "weight_decay=-1.0"),
    (optim.adam, {"amsgrad": "yes"}, TypeError, "amsgrad='yes'"),
    (optim.adamw, {"amsgrad": 1}, TypeError, "amsgrad=1"),
    (optim.scale_by_trust_ratio, {"min_norm": -1.0}, ValueError, "min_norm=-1.0"),
    (optim.scale_by_trust_ratio, {"trust_coefficient": 0.0}, ValueError, "trust_coefficient=0.0"),
    (optim.scale_by_trust_ratio, {"eps": -1e-8}, ValueError, "eps=-1e-08"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "kwargs", "error", "text"),
    [pytest.param(*case, id=f"{case[0].__name__}-{case[3]}") for case in _BAD],
)
def test_bad_hyperparameters_raise_at_build_naming_argument_and_value(build, kwargs, error, text):
    with pytest.raises(error) as info:
        build(**kwargs)
    assert text in str(info.value), str(info.value)


def test_partition_errors_name_the_label():
    params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    optimizer = optim.partition({"adam": optim.adam()}, {"w": "adam", "b": "sgd"})
    with pytest.raises(ValueError, match=r"no transform for label 'sgd' \(at labels\['b'\]\)"):
        optimizer.init(params)
    optimizer = optim.partition({"adam": optim.adam()}, {"w": "adam", "b": 3})
    with pytest.raises(TypeError, match=r"labels\['b'\]=3"):
        optimizer.init(params)
    optimizer = optim.partition({"adam": optim.adam()}, {"w": "adam"})
    with pytest.raises(ValueError, match="structure of the params"):
        optimizer.init(params)
    with pytest.raises(TypeError, match="non-empty dict"):
        optim.partition({}, {"w": "adam"})
    with pytest.raises(TypeError, match=r"transforms\['adam'\] must be a GradientTransformation"):
        optim.partition({"adam": optim.adam}, {"w": "adam"})
    # a transform that no leaf uses is allowed: its state holds no per-parameter arrays
    optimizer = optim.partition({"adam": optim.adam(), "spare": optim.lion()}, "adam")
    state = optimizer.init(params)
    assert jax.tree.leaves(state.inner_states["spare"][0].mu) == []
    updates, _ = optimizer.update(params, state, params)
    np.testing.assert_allclose(np.asarray(updates["b"]), -3e-4 * np.ones(2), rtol=1e-5)


# --- dtypes, checkpoints ------------------------------------------------------------------

ZOO = {
    "adam_amsgrad": lambda: optim.adam(1e-2, amsgrad=True),
    "adamw_amsgrad": lambda: optim.adamw(1e-2, weight_decay=0.1, amsgrad=True),
    "lion": lambda: optim.lion(1e-3, weight_decay=0.1),
    "lamb": lambda: optim.lamb(1e-2, weight_decay=0.1),
    "partition": lambda: optim.partition(
        {"m": optim.lion(1e-3), "v": optim.adamw(1e-2, amsgrad=True)},
        lambda p: jax.tree.map(lambda x: "m" if x.ndim == 2 else "v", p),
    ),
}


def _params(dtype, seed):
    rng = np.random.default_rng(seed)
    b, w = rng.normal(size=(2,)), rng.normal(size=(3, 2))
    return {"b": jnp.asarray(b, dtype), "w": jnp.asarray(w, dtype)}


@pytest.mark.parametrize("name", list(ZOO))
def test_bf16_params_keep_bf16_state_and_mu_dtype_overrides(name):
    optimizer = ZOO[name]()
    params = _params(jnp.bfloat16, seed=3)
    state = optimizer.init(params)
    params, state = jax.jit(_one_step(optimizer))(params, state, _params(jnp.bfloat16, seed=4))
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(params))
    per_param = [leaf for leaf in jax.tree.leaves(state) if leaf.ndim > 0]
    assert per_param and all(leaf.dtype == jnp.bfloat16 for leaf in per_param), name
    chex.assert_tree_all_finite(params)


def test_mu_dtype_and_nu_dtype_store_the_moments_in_float32_for_bf16_params():
    params = _params(jnp.bfloat16, seed=5)
    for optimizer, fields in [
        (optim.lion(mu_dtype=jnp.float32), ["mu"]),
        (optim.lamb(mu_dtype=jnp.float32, nu_dtype=jnp.float32), ["mu", "nu"]),
        (optim.adamw(amsgrad=True, nu_dtype=jnp.float32), ["nu", "nu_max"]),
    ]:
        state = optimizer.init(params)
        _, state = jax.jit(_one_step(optimizer))(params, state, _params(jnp.bfloat16, seed=6))
        for field in fields:
            assert {x.dtype for x in jax.tree.leaves(getattr(state[0], field))} == {
                np.dtype(jnp.float32)
            }, field


def test_float32_state_stays_float32_with_x64_and_counters_are_int32():
    with jax.enable_x64(True):
        for name, build in ZOO.items():
            optimizer = build()
            params = _params(jnp.float32, seed=7)
            state = optimizer.init(params)
            step = jax.jit(_one_step(optimizer))
            for seed in (8, 9):
                params, state = step(params, state, _params(jnp.float32, seed=seed))
            leaves = jax.tree_util.tree_leaves_with_path(state)
            for path, leaf in leaves:
                key = jax.tree_util.keystr(path)
                expected = jnp.int32 if key.endswith(".count") else jnp.float32
                assert leaf.dtype == expected, (name, key, leaf.dtype)
            assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params)), name


@pytest.mark.parametrize("name", list(ZOO))
def test_state_checkpoint_round_trip_is_exact_and_resumes_identically(tmp_path, name):
    optimizer = ZOO[name]()
    step = jax.jit(_one_step(optimizer))
    params = _params(jnp.float32, seed=10)
    state = optimizer.init(params)
    for seed in (11, 12):
        params, state = step(params, state, _params(jnp.float32, seed=seed))
    path = checkpoint.save(tmp_path / "opt.npz", state)
    restored = checkpoint.restore(path, like=optimizer.init(params))
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    grads = _params(jnp.float32, seed=13)
    chex.assert_trees_all_equal(step(params, restored, grads), step(params, state, grads))


def test_lion_defaults_are_lr_1e_4_betas_0_9_0_99_and_no_decay():
    # Closed form from m₀ = 0: step 1 moves by −η·sign(g₁); step 2's direction is
    # sign(β₁·m₁ + (1 − β₁)·g₂) with m₁ = (1 − β₂)·g₁, i.e. sign(0.009·g₁ + 0.1·g₂).
    g1, g2 = np.array([1.0, 1.0]), np.array([-0.05, -0.2])  # 0.004 > 0, −0.011 < 0
    theta0 = np.array([2.0, -3.0])
    with jax.enable_x64(True):
        optimizer = optim.lion()
        theta = jnp.asarray(theta0)
        state = optimizer.init(theta)
        for g in (g1, g2):
            theta, state = optim.optimizer_step(optimizer, jnp.asarray(g), state, theta)
    expected = theta0 - 1e-4 * np.sign(g1) - 1e-4 * np.array([1.0, -1.0])
    np.testing.assert_allclose(np.asarray(theta), expected, rtol=0, atol=1e-15)


def test_trust_ratio_defaults_give_each_leaf_its_parameters_norm():
    # n₀ = 0, c = 1, ε = 0: u = (‖θ‖/‖g‖)·g, so ‖u‖ = ‖θ‖ — here 5·[0.6, 0.8] = [3, 4].
    params = {"w": jnp.array([3.0, 4.0]), "b": jnp.zeros(2)}
    grads = {"w": jnp.array([0.6, 0.8]), "b": jnp.array([1.0, -2.0])}
    transform = optim.scale_by_trust_ratio()
    updates, _ = transform.update(grads, transform.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["w"]), [3.0, 4.0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(updates["b"]), [1.0, -2.0])  # ‖θ‖ = 0: unchanged
