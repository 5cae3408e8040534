"""Adafactor, Muon and schedule-free AdamW (funcnn/optim/factored.py, modern.py,
schedule_free.py, aliases.py).

Each registry configuration against its float64 transcription in both dtypes, closed forms
written by hand from the equations (an exactly factorable V̂, the relative-step cap,
Newton–Schulz's singular values, Muon's first step on a tall matrix, the schedule-free
average at steps 1 and 2), Muon next to AdamW through `partition`, validation naming the
argument, dtypes, checkpoints.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.lab.compare import race
from funcnn.reference import optim as ref
from funcnn.train import checkpoint
from funcnn.verify import registry

MORE_CONFIGS = [
    "adafactor",
    "adafactor_relative_step_cap_strong_decay",
    "adafactor_floors_clip_mask_cosine",
    "muon_partition_adamw",
    "muon_plain_momentum_match_rms_adamw_cosine",
    "muon_cubic_newton_schulz_no_decay",
    "schedule_free_adamw",
    "schedule_free_adamw_warmup_weight_decay",
    "schedule_free_adamw_warmup_cosine_power_1",
]


# --- every configuration against its float64 transcription --------------------------------


def test_every_configuration_is_registered_so_the_reference_agreement_test_runs_it():
    # tests/test_reference_agreement.py runs every registry.CONFIGS entry for 500 steps in both
    # dtypes against its float64 transcription (≤ 1e-10 float64, ≤ 1e-5 float32); running the
    # same registry entries again here would only repeat that computation.
    assert set(MORE_CONFIGS) <= set(registry.CONFIGS)


# --- helpers -----------------------------------------------------------------------------


def _one_step(optimizer):
    def step(params, state, grads):
        updates, state = optimizer.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    return step


def _run(optimizer, params, grads_sequence):
    """float64: the params after each gradient (each a dict like params), and the state."""
    with jax.enable_x64(True):
        params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
        state = optimizer.init(params)
        step = jax.jit(_one_step(optimizer))
        out = []
        for grads in grads_sequence:
            grads = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), grads)
            params, state = step(params, state, grads)
            out.append(jax.tree.map(np.asarray, params))
    return out, state


def _stage(stage, grads, params=None):
    """One update of a single stage in float64: (direction, state)."""
    with jax.enable_x64(True):
        grads = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), grads)
        params = grads if params is None else jax.tree.map(jnp.asarray, params)
        out, state = jax.jit(stage.update)(grads, stage.init(params), params)
    return jax.tree.map(np.asarray, out), state


# --- Adafactor ---------------------------------------------------------------------------


def test_factored_v_is_the_outer_product_of_row_and_column_means_over_their_mean():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(2, 3, 4))  # rank 3: factored over the last two axes per index
    d, state = _stage(optim.scale_by_factored_rms(), {"w": g})
    g2 = g * g
    rows, cols = g2.mean(axis=-1), g2.mean(axis=-2)  # (2, 3), (2, 4): t = 1, β̂₂ = 0
    v_hat = rows[:, :, None] * cols[:, None, :] / rows.mean(axis=-1)[:, None, None]
    np.testing.assert_allclose(np.asarray(state.v_row["w"]), rows, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(state.v_col["w"]), cols, rtol=1e-14)
    assert state.v["w"].shape == (0,)
    np.testing.assert_allclose(d["w"], g / np.sqrt(v_hat), rtol=1e-13)
    # a second step: β̂₂₂ = 1 − 2^−0.8 on both factors
    g_next = rng.normal(size=(2, 3, 4))
    stage = optim.scale_by_factored_rms()
    with jax.enable_x64(True):
        _, state = stage.update({"w": jnp.asarray(g_next)}, state)
    beta = 1 - 2**-0.8
    np.testing.assert_allclose(
        np.asarray(state.v_row["w"]), beta * rows + (1 - beta) * (g_next**2).mean(-1), rtol=1e-14
    )


def test_factored_v_is_exact_for_a_rank_one_square_so_the_direction_is_the_sign():
    """G² = a·bᵀ ⇒ R = a·mean(b), C = mean(a)·b, V̂ = R⊗C/mean(R) = G²: d = sign(G)."""
    g = np.outer([1.0, -2.0, 0.5], [3.0, -0.1, 1.0, 2.0])
    d, _ = _stage(optim.scale_by_factored_rms(), {"w": g, "b": np.array([2.0, -0.5, 0.0])})
    np.testing.assert_allclose(d["w"], np.sign(g), rtol=1e-14)
    np.testing.assert_array_equal(d["b"], [1.0, -1.0, 0.0])  # unfactored: G/|G|, 0 → 0


def test_factored_rms_floors_with_eps1():
    # ε₁ = 0.5: √V̂ < 0.5 is floored, and so is the mean of R in V̂'s denominator
    g = np.array([[0.1, 0.2], [0.3, 0.05]])
    d, _ = _stage(optim.scale_by_factored_rms(eps=0.5), {"w": g})
    rows, cols = (g**2).mean(-1), (g**2).mean(-2)
    v_hat = np.outer(rows, cols) / max(rows.mean(), 0.5)
    np.testing.assert_allclose(d["w"], g / np.maximum(np.sqrt(v_hat), 0.5), rtol=1e-14)
    # None: the machine epsilon of the leaf's dtype, torch's default
    d, _ = _stage(optim.scale_by_factored_rms(), {"w": np.zeros((2, 2))})
    np.testing.assert_array_equal(d["w"], np.zeros((2, 2)))  # 0/ε₁, no NaN


def test_relative_step_cap_and_clipping_closed_forms():
    stage = optim.scale_by_relative_step(0.5)
    with jax.enable_x64(True):
        state = stage.init({"x": jnp.ones(1)})
        factors = []
        for _ in range(6):
            d, state = stage.update({"x": jnp.ones(1, jnp.float64)}, state)
            factors.append(float(d["x"][0]))
    expected = [min(0.5, 1 / np.sqrt(t)) / 0.5 for t in range(1, 7)]  # ρₜ/η
    np.testing.assert_allclose(factors, expected, rtol=1e-15)
    assert expected[3] == 1.0 and expected[4] < 1.0  # capped from t = 5
    d, _ = _stage(optim.scale_by_relative_step(0.0), {"x": np.ones(2)})
    np.testing.assert_array_equal(d["x"], np.ones(2))  # η = 0: factor 1, no ∞·0
    # block-RMS clipping: RMS((3, 4)) = √12.5 > 2 → scaled to RMS 2; (0.3, 0.4) unchanged
    d, _ = _stage(
        optim.clip_by_block_rms(2.0), {"a": np.array([3.0, 4.0]), "b": np.array([0.3, 0.4])}
    )
    np.testing.assert_allclose(d["a"], np.array([3.0, 4.0]) * 2 / np.sqrt(12.5), rtol=1e-15)
    np.testing.assert_array_equal(d["b"], [0.3, 0.4])
    # parameter scale max(ε₂, RMS(θ))
    params = {"a": np.array([3.0, 4.0]), "b": np.array([1e-4, 0.0])}
    d, _ = _stage(optim.scale_by_param_block_rms(1e-3), {"a": np.ones(2), "b": np.ones(2)}, params)
    np.testing.assert_allclose(d["a"], np.sqrt(12.5) * np.ones(2), rtol=1e-15)
    np.testing.assert_allclose(d["b"], 1e-3 * np.ones(2), rtol=1e-15)


def test_adafactor_first_step_closed_form():
    """t = 1: ρ = min(η, 1), U = G/√V̂, Û = U/max(1, RMS(U)/d),
    θ ← θ(1 − ηλ) − ρ·max(ε₂, RMS θ)·Û."""
    lr, wd, d = 0.3, 0.2, 1.0
    theta = {"w": np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]), "b": np.array([0.4, -0.2])}
    g = {"w": np.array([[0.5, -1.0, 2.0], [0.1, 0.0, -3.0]]), "b": np.array([1.0, -4.0])}
    (after,), state = _run(optim.adafactor(lr, weight_decay=wd, d=d), theta, [g])
    rows, cols = (g["w"] ** 2).mean(-1), (g["w"] ** 2).mean(-2)
    u_w = g["w"] / np.sqrt(np.outer(rows, cols) / rows.mean())
    u_b = np.sign(g["b"])
    for key, u in (("w", u_w), ("b", u_b)):
        rms = lambda x: np.sqrt(np.mean(x * x))
        alpha = lr * max(1e-3, rms(theta[key]))
        expected = theta[key] * (1 - lr * wd) - alpha * u / max(1.0, rms(u) / d)
        np.testing.assert_allclose(after[key], expected, rtol=1e-13, err_msg=key)
    assert np.sqrt(np.mean(u_w**2)) > 1  # the clipping branch was taken for w
    assert [s.shape for s in jax.tree.leaves(state[0].v_row)] == [(0,), (2,)]  # b, w


# --- Muon --------------------------------------------------------------------------------


def test_newton_schulz_singular_values_near_one_and_cubic_iteration_converges_to_uv():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(5, 3)) * np.array([10.0, 1.0, 0.1])  # tall, condition ≈ 100
    d, _ = _stage(optim.orthogonalize_by_newton_schulz(), {"w": g})
    s = np.linalg.svd(d["w"], compute_uv=False)
    assert s.min() > 0.6 and s.max() < 1.25, s  # Keller Jordan's quintic: ≈ [0.7, 1.2]
    np.testing.assert_allclose(d["w"], ref.newton_schulz_reference(g), rtol=1e-12, atol=1e-14)
    # the classical cubic (1.5, −0.5, 0) converges to U·Vᵀ of the SVD
    d, _ = _stage(optim.orthogonalize_by_newton_schulz((1.5, -0.5, 0.0), 40), {"w": g.T})
    u, _, vt = np.linalg.svd(g.T, full_matrices=False)
    np.testing.assert_allclose(d["w"], u @ vt, atol=1e-10)
    # zero steps: the Frobenius-normalized input
    d, _ = _stage(optim.orthogonalize_by_newton_schulz(ns_steps=0), {"w": g})
    np.testing.assert_allclose(d["w"], g / np.linalg.norm(g), rtol=1e-14)


@pytest.mark.parametrize(
    ("adjust", "ratio"), [(None, np.sqrt(5 / 3)), ("match_rms_adamw", 0.2 * np.sqrt(5))]
)
def test_muon_first_steps_on_a_tall_matrix(adjust, ratio):
    """t = 1 with Nesterov: B₁ = (1−μ)g and B̃ = (1−μ²)g, whose NS equals NS(g) (it
    normalizes), so θ₁ = θ₀(1 − ηλ) − η·r·NS(g); then two more steps against the float64
    transcription (a tall (5, 3) leaf, where "original" gives r = √(5/3))."""
    lr, wd = 0.05, 0.1
    rng = np.random.default_rng(2)
    theta = {"w": rng.normal(size=(5, 3))}
    grads = [{"w": rng.normal(size=(5, 3))} for _ in range(3)]
    thetas, _ = _run(optim.muon(lr, weight_decay=wd, adjust_lr_fn=adjust), theta, grads)
    ns = ref.newton_schulz_reference(grads[0]["w"])
    expected = theta["w"] * (1 - lr * wd) - lr * ratio * ns
    np.testing.assert_allclose(thetas[0]["w"], expected, rtol=1e-12)
    reference = ref.Muon(lr, weight_decay=wd, adjust_lr_fn=adjust)
    params = {"w": theta["w"].copy()}
    for g, ours in zip(grads, thetas, strict=True):
        params = reference.step(params, g)
        np.testing.assert_allclose(ours["w"], params["w"], rtol=1e-12)


def test_muon_momentum_is_torchs_moving_average():
    mu = 0.9
    g1, g2 = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[0.0, 1.0], [3.0, 0.0]])
    stage = optim.ema_momentum(mu, nesterov=True)
    with jax.enable_x64(True):
        state = stage.init({"w": jnp.zeros((2, 2))})
        d1, state = stage.update({"w": jnp.asarray(g1)}, state)
        d2, state = stage.update({"w": jnp.asarray(g2)}, state)
    b1 = (1 - mu) * g1
    b2 = mu * b1 + (1 - mu) * g2
    np.testing.assert_allclose(np.asarray(d1["w"]), (1 - mu) * g1 + mu * b1, rtol=1e-15)
    np.testing.assert_allclose(np.asarray(d2["w"]), (1 - mu) * g2 + mu * b2, rtol=1e-15)
    np.testing.assert_allclose(np.asarray(state.mu["w"]), b2, rtol=1e-15)


def test_muon_rejects_non_matrix_leaves_naming_them_and_suggesting_partition():
    params = {"dense": {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}}
    with pytest.raises(ValueError, match=r"params\['dense'\]\['b'\] has shape \(2,\)") as info:
        optim.muon().init(params)
    assert "optim.partition" in str(info.value)
    stage = optim.orthogonalize_by_newton_schulz()
    with pytest.raises(ValueError, match=r"updates\['c'\] has shape \(2, 2, 2\)"):
        stage.update({"c": jnp.ones((2, 2, 2))}, optim.OrthogonalizeState())


def test_muon_on_matrices_and_adamw_on_the_rest_through_partition():
    rng = np.random.default_rng(3)
    shapes = {"dense": {"w": (4, 3), "b": (3,)}, "embed": (2, 3, 2), "head": (3, 2)}
    leaves = {
        "dense": {k: rng.normal(size=s) for k, s in shapes["dense"].items()},
        "embed": rng.normal(size=shapes["embed"]),
        "head": rng.normal(size=shapes["head"]),
    }
    grads = [jax.tree.map(lambda x: rng.normal(size=x.shape), leaves) for _ in range(3)]

    def labels(tree):
        return jax.tree.map(lambda x: "muon" if x.ndim == 2 else "adamw", tree)

    optimizer = optim.partition({"muon": optim.muon(0.02), "adamw": optim.adamw(1e-2)}, labels)
    thetas, state = _run(optimizer, leaves, grads)
    assert set(state.inner_states) == {"muon", "adamw"}
    reference = ref.Partition(
        {"muon": ref.Muon(0.02), "adamw": ref.AdamW(1e-2)},
        lambda flat: {k: "muon" if x.ndim == 2 else "adamw" for k, x in flat.items()},
    )
    params = ref.flatten_params(leaves)
    for g, ours in zip(grads, thetas, strict=True):
        params = reference.step(params, ref.flatten_params(g))
        flat = ref.flatten_params(ours)
        for k in params:
            np.testing.assert_allclose(flat[k], params[k], rtol=1e-12, err_msg=k)


# --- schedule-free AdamW -----------------------------------------------------------------


def test_schedule_free_first_two_steps_and_eval_params_closed_form():
    """Constant γ: c₁ = 1 so x₁ = y₁ = z₁; c₂ = γ²/(2γ²) = ½ so x₂ = (z₁ + z₂)/2 and
    y₂ = β₁·x₂ + (1−β₁)·z₂. z steps are bias-corrected RMS steps (no momentum)."""
    lr, b1, b2, eps, wd = 0.1, 0.9, 0.99, 1e-8, 0.05
    y0 = np.array([1.0, -2.0, 0.5])
    g1, g2 = np.array([0.5, -3.0, 1.0]), np.array([-1.0, 1.0, 0.2])
    optimizer = optim.schedule_free_adamw(lr, b1, b2, eps, weight_decay=wd)
    with jax.enable_x64(True):
        params = {"x": jnp.asarray(y0)}
        state = optimizer.init(params)
        np.testing.assert_allclose(
            np.asarray(optim.schedule_free_eval_params(params, state)["x"]), y0, rtol=1e-15
        )  # before any update x = y
        step = jax.jit(_one_step(optimizer))
        params, state = step(params, state, {"x": jnp.asarray(g1)})
        y1, x1 = (
            np.asarray(params["x"]),
            np.asarray(optim.schedule_free_eval_params(params, state)["x"]),
        )
        params, state = step(params, state, {"x": jnp.asarray(g2)})
        y2, x2 = (
            np.asarray(params["x"]),
            np.asarray(optim.schedule_free_eval_params(params, state)["x"]),
        )
    z1 = y0 - lr * (g1 / (np.abs(g1) + eps) + wd * y0)  # v̂₁ = g₁²
    np.testing.assert_allclose(y1, z1, rtol=1e-14)
    np.testing.assert_allclose(x1, z1, rtol=1e-13)
    v2 = b2 * (1 - b2) * g1**2 + (1 - b2) * g2**2
    z2 = z1 - lr * (g2 / (np.sqrt(v2 / (1 - b2**2)) + eps) + wd * y1)
    np.testing.assert_allclose(np.asarray(state.z["x"]), z2, rtol=1e-14)
    np.testing.assert_allclose(x2, (z1 + z2) / 2, rtol=1e-13)
    np.testing.assert_allclose(y2, b1 * (z1 + z2) / 2 + (1 - b1) * z2, rtol=1e-14)


def test_schedule_free_warmup_weights_read_the_schedule_one_step_ahead():
    """W = 4: the z step uses γ(t−1) = η(t−1)/4, the average weight γ(t) (optax): step 1
    moves nothing (γ(0) = 0) yet has weight (η/4)², so x₁ = z₁ = y₀; step 2 has c = 4/5."""
    lr, b1 = 0.2, 0.9
    y0, g = np.array([1.0, -1.0]), np.array([2.0, 0.5])
    optimizer = optim.schedule_free_adamw(lr, b1, warmup_steps=4)
    (y1, y2), state = _run(optimizer, {"x": y0}, [{"x": g}, {"x": g}])
    np.testing.assert_allclose(y1["x"], y0, rtol=1e-15)
    z2 = y0 - (lr / 4) * g / (np.abs(g) + 1e-8)  # v̂₂ = g² for a constant gradient
    c2 = (lr / 2) ** 2 / ((lr / 4) ** 2 + (lr / 2) ** 2)  # = 4/5
    x2 = (1 - c2) * y0 + c2 * z2
    np.testing.assert_allclose(y2["x"], b1 * x2 + (1 - b1) * z2, rtol=1e-14)
    assert float(state.max_lr) == pytest.approx(lr / 2)


def test_schedule_free_eval_params_match_the_reference_after_many_steps():
    config = registry.CONFIGS["schedule_free_adamw_warmup_weight_decay"]
    start = ref.flatten_params(registry.problem_params(0))
    reference = config.build_reference()
    params = {k: v.copy() for k, v in start.items()}
    for _ in range(60):
        params = reference.step(params, registry.problem_grad_numpy(params))
    expected = reference.eval_params(params)
    optimizer = config.build()
    step = _one_step(optimizer)

    @jax.jit
    def run(theta):
        def body(carry, _):
            theta, state = carry
            return step(theta, state, jax.grad(registry.problem_loss)(theta)), None

        (theta, state), _ = jax.lax.scan(body, (theta, optimizer.init(theta)), length=60)
        return optim.schedule_free_eval_params(theta, state)

    with jax.enable_x64(True):
        x = run(jax.tree.map(jnp.asarray, registry.problem_params(0)))
        x = ref.flatten_params(jax.tree.map(np.asarray, x))
    for k in expected:
        np.testing.assert_allclose(x[k], expected[k], rtol=1e-11, err_msg=k)
        assert np.max(np.abs(expected[k] - params[k])) > 1e-3  # x ≠ y: the check can fail


def test_schedule_free_eval_params_needs_exactly_one_schedule_free_state():
    params = {"x": jnp.ones(2)}
    with pytest.raises(ValueError, match="exactly one ScheduleFreeState"):
        optim.schedule_free_eval_params(params, optim.adamw().init(params))
    chained = optim.chain(optim.clip_by_global_norm(1.0), optim.schedule_free_adamw(0.1))
    state = chained.init(params)  # found inside a chain
    np.testing.assert_array_equal(
        np.asarray(optim.schedule_free_eval_params(params, state)["x"]), 1
    )


# --- validation: a clear error naming the argument and the value --------------------------

_BAD = [
    (optim.adafactor, {"learning_rate": -1e-2}, ValueError, "learning_rate=-0.01"),
    (optim.adafactor, {"beta2_decay": 0.5}, ValueError, "beta2_decay=0.5"),
    (optim.adafactor, {"eps": (None, 1e-3, 1.0)}, ValueError, "eps=(None, 0.001, 1.0)"),
    (optim.adafactor, {"eps": 1e-3}, TypeError, "eps=0.001"),
    (optim.adafactor, {"eps": (0.0, 1e-3)}, ValueError, "eps[0]=0.0"),
    (optim.adafactor, {"eps": (None, -1.0)}, ValueError, "eps[1]=-1.0"),
    (optim.adafactor, {"d": 0.5}, ValueError, "d=0.5"),
    (optim.adafactor, {"weight_decay": -0.1}, ValueError, "weight_decay=-0.1"),
    (optim.muon, {"learning_rate": "fast"}, TypeError, "learning_rate='fast'"),
    (optim.muon, {"momentum": 1.0}, ValueError, "momentum=1.0"),
    (optim.muon, {"nesterov": 1}, TypeError, "nesterov=1"),
    (optim.muon, {"ns_coefficients": (3.4, -4.7)}, ValueError, "ns_coefficients=(3.4, -4.7)"),
    (optim.muon, {"ns_coefficients": 3.0}, TypeError, "ns_coefficients=3.0"),
    (optim.muon, {"eps": 0.0}, ValueError, "eps=0.0"),
    (optim.muon, {"ns_steps": 100}, ValueError, "ns_steps=100"),
    (optim.muon, {"ns_steps": 2.5}, TypeError, "2.5"),
    (optim.muon, {"adjust_lr_fn": "sqrt"}, ValueError, "adjust_lr_fn='sqrt'"),
    (optim.muon, {"weight_decay": -0.1}, ValueError, "weight_decay=-0.1"),
    (optim.schedule_free_adamw, {"learning_rate": -1.0}, ValueError, "learning_rate=-1.0"),
    (optim.schedule_free_adamw, {"learning_rate": 0.1, "b1": 0.0}, ValueError, "b1=0.0"),
    (optim.schedule_free_adamw, {"learning_rate": 0.1, "b2": 1.0}, ValueError, "b2=1.0"),
    (optim.schedule_free_adamw, {"learning_rate": 0.1, "eps": 0.0}, ValueError, "eps=0.0"),
    (optim.schedule_free_adamw, {"learning_rate": 0.1, "warmup_steps": -1}, ValueError,
     "warmup_steps=-1"),
    (optim.schedule_free_adamw, {"learning_rate": 0.1, "weight_decay": -1.0}, ValueError,
     "weight_decay=-1.0"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "kwargs", "error", "text"),
    [pytest.param(*case, id=f"{case[0].__name__}-{case[3]}") for case in _BAD],
)
def test_bad_hyperparameters_raise_at_build_naming_argument_and_value(build, kwargs, error, text):
    with pytest.raises(error) as info:
        build(**kwargs)
    assert text in str(info.value), str(info.value)


# --- dtypes, checkpoints, race ---------------------------------------------------------------


def _muon_and_adamw():
    return optim.partition(
        {"muon": optim.muon(0.02), "adamw": optim.adamw(1e-2)},
        lambda p: jax.tree.map(lambda x: "muon" if x.ndim == 2 else "adamw", p),
    )


ZOO = {
    "adafactor": lambda: optim.adafactor(weight_decay=0.1),
    "muon_partition": _muon_and_adamw,
    "schedule_free_adamw": lambda: optim.schedule_free_adamw(1e-2, weight_decay=0.1),
}


def _params(dtype, seed):
    rng = np.random.default_rng(seed)
    b, w, c = rng.normal(size=(2,)), rng.normal(size=(3, 2)), rng.normal(size=(2, 2, 3))
    return {"b": jnp.asarray(b, dtype), "w": jnp.asarray(w, dtype), "c": jnp.asarray(c, dtype)}


@pytest.mark.parametrize("name", list(ZOO))
def test_bf16_params_keep_bf16_state(name):
    optimizer = ZOO[name]()
    params = _params(jnp.bfloat16, seed=3)
    state = optimizer.init(params)
    params, state = jax.jit(_one_step(optimizer))(params, state, _params(jnp.bfloat16, seed=4))
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(params))
    per_param = [leaf for leaf in jax.tree.leaves(state) if leaf.ndim > 0]
    assert per_param and all(leaf.dtype == jnp.bfloat16 for leaf in per_param), name
    chex.assert_tree_all_finite(params)


def test_float32_state_stays_float32_with_x64_and_counters_are_int32():
    with jax.enable_x64(True):
        for name, build in ZOO.items():
            optimizer = build()
            params = _params(jnp.float32, seed=7)
            state = optimizer.init(params)
            step = jax.jit(_one_step(optimizer))
            for seed in (8, 9):
                params, state = step(params, state, _params(jnp.float32, seed=seed))
            for path, leaf in jax.tree_util.tree_leaves_with_path(state):
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
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    grads = _params(jnp.float32, seed=13)
    chex.assert_trees_all_equal(step(params, restored, grads), step(params, state, grads))


def _least_squares_problem():
    """½‖A·W + b − Y‖²/N with W (4, 3): Muon gets a matrix, AdamW the bias."""
    rng = np.random.default_rng(14)
    a = jnp.asarray(rng.normal(size=(16, 4)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)

    def loss(params):
        return 0.5 * jnp.mean(jnp.sum((a @ params["w"] + params["b"][None, :] - y) ** 2, axis=-1))

    # not zeros: Adafactor's steps are relative to RMS(θ) (only ε₂ = 1e-3 at θ = 0)
    init = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32), "b": jnp.zeros(3, jnp.float32)}
    return race.Problem("least_squares", loss, init, 0.0, 30, "tiny least squares")


def test_race_runs_the_new_optimizers_and_scores_schedule_free_at_x():
    problem = _least_squares_problem()
    for name in ("adafactor", "muon"):
        curve = np.asarray(jax.jit(race.trajectory_fn(problem, race.RACE_OPTIMIZERS[name]))(0.1))
        assert np.all(np.isfinite(curve)) and curve[-1] < 0.9 * curve[0], name
    # the schedule-free curve is f(xₖ), not f(yₖ): equal at k = 0 (x₀ = y₀), then apart
    make = race.RACE_OPTIMIZERS["schedule_free_adamw"]
    at_x = np.asarray(jax.jit(race.trajectory_fn(problem, make))(0.1))
    at_y = np.asarray(jax.jit(race.trajectory_fn(problem, make, evaluate_at_x=False))(0.1))
    assert at_x[-1] < 0.9 * at_x[0]
    assert at_x[0] == pytest.approx(at_y[0], rel=1e-6)  # x₀ = y₀ up to rounding
    assert np.max(np.abs(at_x[2:] - at_y[2:])) > 1e-3
