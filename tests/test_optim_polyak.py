"""Polyak's step and MoMo (funcnn/optim/polyak.py) against their float64 transcriptions and
closed forms on a quadratic, where one Polyak step with f* = 0 lands on the minimum along g."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.optim import schedules
from funcnn.optim.polyak import momo, momo_adam, scale_by_polyak
from funcnn.reference import optim as ref


def _loss(params):
    return 0.5 * jnp.sum(jnp.array([1.0, 4.0, 0.25]) * (params["x"] - 1.0) ** 2)


def _loss_numpy(flat):
    d = flat["x"] - 1.0
    return float(0.5 * np.sum(np.array([1.0, 4.0, 0.25]) * d * d)), {
        "x": np.array([1.0, 4.0, 0.25]) * d
    }


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(max_learning_rate=0.3, f_min=0.1, eps=1e-3, variant="sps+")],
    ids=["defaults", "flags"],
)
def test_polyak_step_matches_the_reference(kwargs):
    stage = scale_by_polyak(**kwargs)
    reference = ref.PolyakSGD(**kwargs)
    with jax.enable_x64(True):
        params = {"x": jnp.array([3.0, -1.0, 0.5])}
        flat = {"x": np.array([3.0, -1.0, 0.5])}
        state = stage.init(params)
        for _ in range(8):
            value, grad = jax.value_and_grad(_loss)(params)
            # polyak_sgd = −s·g, then the Polyak stage (here s = 1).
            updates, state = stage.update(jax.tree.map(jnp.negative, grad), state, value=value)
            params = jax.tree.map(lambda p, u: p + u, params, updates)
            ref_value, ref_grad = _loss_numpy(flat)
            step = reference.update(ref_grad, flat, value=ref_value)
            flat = {"x": flat["x"] + step["x"]}
            np.testing.assert_allclose(np.asarray(params["x"]), flat["x"], rtol=1e-12)


def test_one_polyak_step_on_an_isotropic_quadratic_reaches_half_the_loss():
    """f = ½‖x − c‖²: γ = f/‖g‖² = ½, so x ← x − ½(x − c) and f drops to f/4."""
    stage = scale_by_polyak(max_learning_rate=10.0)
    x = jnp.array([3.0, -1.0])
    g = {"x": x - 1.0}
    value = 0.5 * jnp.sum((x - 1.0) ** 2)
    updates, _ = stage.update(jax.tree.map(jnp.negative, g), stage.init(g), value=value)
    np.testing.assert_allclose(np.asarray(updates["x"]), -0.5 * np.asarray(x - 1.0), rtol=1e-6)


def test_zero_gradient_gives_a_zero_step_not_nan():
    stage = scale_by_polyak()
    g = {"x": jnp.zeros(2)}
    updates, _ = stage.update(g, stage.init(g), value=jnp.asarray(1.0))
    np.testing.assert_array_equal(np.asarray(updates["x"]), np.zeros(2))


def test_polyak_needs_the_value_and_a_known_variant():
    stage = scale_by_polyak()
    g = {"x": jnp.ones(2)}
    with pytest.raises(ValueError, match="value"):
        stage.update(g, stage.init(g))
    with pytest.raises(ValueError, match="variant"):
        scale_by_polyak(variant="sps++")


# --- MoMo and MoMo-Adam -------------------------------------------------------------------------

CURVATURE = np.array([1.0, 4.0, 0.25, 2.0])
CENTER = np.array([1.0, -0.5, 2.0, 0.0])


def _bowl(params):
    """f = ½Σ cᵢ(xᵢ − x*ᵢ)² + 0.1Σ(xᵢ − x*ᵢ)⁴ ≥ 0: min 0 at x*, so MoMo's default f* = 0 holds."""
    d = params["x"] - jnp.asarray(CENTER)
    return 0.5 * jnp.sum(jnp.asarray(CURVATURE) * d * d) + 0.1 * jnp.sum(d**4)


def _bowl_numpy(flat):
    d = flat["x"] - CENTER
    return float(0.5 * np.sum(CURVATURE * d * d) + 0.1 * np.sum(d**4))


def _bowl_grad_numpy(flat):
    d = flat["x"] - CENTER
    return {"x": CURVATURE * d + 0.4 * d**3}


MOMO_CASES = {
    "momo": (lambda: momo(), lambda: ref.Momo()),
    "momo_flags": (
        lambda: momo(schedules.cosine_decay(0.5, 20, 0.1), 0.5, 0.3, 0.1, True),
        lambda: ref.Momo(ref.schedule_cosine_decay(0.5, 20, 0.1), 0.5, 0.3, 0.1, True),
    ),
    "momo_adam": (lambda: momo_adam(), lambda: ref.MomoAdam()),
    "momo_adam_flags": (
        lambda: momo_adam(0.5, 0.8, 0.99, 1e-6, 0.3, 0.1, True),
        lambda: ref.MomoAdam(0.5, 0.8, 0.99, 1e-6, 0.3, 0.1, True),
    ),
}


@pytest.mark.parametrize("name", sorted(MOMO_CASES))
def test_momo_matches_its_float64_transcription(name):
    build, build_reference = MOMO_CASES[name]
    start = np.array([3.0, -1.0, 0.5, 2.0])
    with jax.enable_x64(True):
        opt = build()
        params = {"x": jnp.asarray(start)}
        state = opt.init(params)

        @jax.jit
        def step(params, state):
            value, grad = jax.value_and_grad(_bowl)(params)
            updates, state = opt.update(grad, state, params, value=value)
            return jax.tree.map(lambda p, u: p + u, params, updates), state

        rows = []
        for _ in range(20):
            params, state = step(params, state)
            rows.append(np.asarray(params["x"]))
    expected, _ = ref.run_reference(
        build_reference(), {"x": start}, _bowl_grad_numpy, 20, loss_fn=_bowl_numpy
    )
    assert np.max(np.abs(rows[-1] - start)) > 1e-2, "the run must move θ"
    np.testing.assert_allclose(rows[-1], expected["x"], rtol=1e-12, atol=1e-14)


def test_momo_first_step_is_a_polyak_step():
    """ρ = 0 at the first step: m = g, f̄ = f, γ = ⟨g, θ⟩, so τ = min(α, (f − f*)/‖g‖²). On
    f = ½‖x − c‖², τ = ½ and θ moves half-way to c."""
    x, c = jnp.array([3.0, -1.0]), jnp.array([1.0, 1.0])
    opt = momo()
    params = {"x": x}
    value, grad = jax.value_and_grad(lambda p: 0.5 * jnp.sum((p["x"] - c) ** 2))(params)
    updates, state = opt.update(grad, opt.init(params), params, value=value)
    np.testing.assert_allclose(np.asarray(updates["x"]), -0.5 * np.asarray(x - c), rtol=1e-6)
    assert float(state.barf) == pytest.approx(float(value))


def test_momo_takes_no_step_below_its_lower_bound_or_without_a_gradient():
    params = {"x": jnp.array([1.0, 2.0])}
    for opt in (momo(), momo_adam()):
        below, _ = opt.update({"x": jnp.ones(2)}, opt.init(params), params, value=jnp.asarray(-5.0))
        flat, _ = opt.update({"x": jnp.zeros(2)}, opt.init(params), params, value=jnp.asarray(5.0))
        np.testing.assert_array_equal(np.asarray(below["x"]), np.zeros(2))
        np.testing.assert_array_equal(np.asarray(flat["x"]), np.zeros(2))


@pytest.mark.parametrize("build", [momo, momo_adam])
def test_momo_needs_the_value_and_the_params(build):
    opt = build()
    params = {"x": jnp.ones(2)}
    with pytest.raises(ValueError, match="value"):
        opt.update(params, opt.init(params), params)
    with pytest.raises(ValueError, match="params"):
        opt.update(params, opt.init(params), value=jnp.asarray(1.0))


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: momo(beta=1.0), ValueError, "beta"),
        (lambda: momo(learning_rate=-1.0), ValueError, "learning_rate"),
        (lambda: momo(weight_decay=-1.0), ValueError, "weight_decay"),
        (lambda: momo(lower_bound=float("nan")), ValueError, "lower_bound"),
        (lambda: momo(adapt_lower_bound=1), TypeError, "adapt_lower_bound"),
        (lambda: momo_adam(b1=-0.1), ValueError, "b1"),
        (lambda: momo_adam(b2=1.0), ValueError, "b2"),
        (lambda: momo_adam(eps=-1.0), ValueError, "eps"),
    ],
)
def test_momo_refuses_bad_hyperparameters(build, error, message):
    with pytest.raises(error, match=message):
        build()


@pytest.mark.parametrize("build", [momo, momo_adam])
def test_momo_keeps_float32_under_x64_and_bf16_leaves(build):
    """Buffers keep each leaf's dtype (scalars at least float32); updates keep g's dtype."""
    for dtype, x64 in ((jnp.float32, True), (jnp.bfloat16, False)):
        with jax.enable_x64(x64):
            params = {"w": jnp.ones((3,), dtype)}
            opt = build()
            state = opt.init(params)
            updates, state = jax.jit(
                lambda g, s, p, opt=opt, dtype=dtype: opt.update(
                    g, s, p, value=jnp.asarray(1.0, dtype)
                )
            )(params, state, params)
            assert updates["w"].dtype == dtype
            floats = {
                x.dtype for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)
            }
            assert floats <= {jnp.dtype(dtype), jnp.dtype(jnp.float32)}, floats
