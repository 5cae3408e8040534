"""SAM and normalize (funcnn/optim/sharpness.py) against the float64 transcription in
`funcnn.reference.optim`, with optax's defaults and with a longer cycle whose adversarial
optimizer keeps momentum across cycles; opaque mode (the cycle inside one update, ascent
gradients from `grad_fn`) against the transcription and against optax's iterates recorded
in tests/fixtures/optim/sam_opaque.npz."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.optim.sharpness import normalize, sam
from funcnn.reference import optim as ref
from funcnn.verify import registry, runner

FIXTURES = Path(__file__).parent / "fixtures" / "optim"

CASES = {
    "sam": (
        lambda: sam(optim.sgd(0.05), optim.chain(normalize(), optim.scale(-0.05))),
        lambda: ref.SAM(ref.SGD(0.05), ref.Chain(ref.Normalize(), ref.Scale(-0.05))),
    ),
    "sam_3_no_reset_adam": (
        lambda: sam(
            optim.adam(1e-2),
            optim.chain(normalize(), optim.trace(0.5), optim.scale(-0.02)),
            sync_period=3,
            reset_state=False,
        ),
        lambda: ref.SAM(
            ref.Adam(1e-2),
            ref.Chain(ref.Normalize(), ref.Trace(0.5), ref.Scale(-0.02)),
            sync_period=3,
            reset_state=False,
        ),
    ),
}


def test_sam_matches_its_float64_transcription():
    start = registry.problem_params(0)
    with jax.enable_x64(True):
        theta = jax.tree.map(jnp.asarray, start)
        results = runner.run_funcnn({n: b() for n, (b, _) in CASES.items()}, theta, 30)
    for name, (_, build_reference) in CASES.items():
        expected, _ = ref.run_reference(
            build_reference(), ref.flatten_params(start), registry.problem_grad_numpy, 30
        )
        ours = ref.flatten_params(jax.tree.map(np.asarray, results[name][0]))
        for k in expected:
            error = np.max(np.abs(ours[k] - expected[k])) / np.max(np.abs(expected[k]))
            assert error <= 1e-10, (name, k, error)


def test_one_cycle_by_hand():
    """k = 2, SGD(η) outer, ascent ρ·g/‖g‖: call 1 moves to θ₀ + ρĝ; call 2 returns to θ₀
    and steps −η·g(θ₀ + ρĝ)."""
    opt = sam(optim.sgd(0.1), optim.chain(normalize(), optim.scale(-0.5)))
    theta0 = {"w": jnp.array([3.0, 4.0])}
    state = opt.init(theta0)
    u1, state = opt.update({"w": jnp.array([3.0, 4.0])}, state, theta0)
    np.testing.assert_allclose(np.asarray(u1["w"]), [0.3, 0.4], rtol=1e-6)
    theta1 = optim.apply_updates(theta0, u1)
    u2, state = opt.update({"w": jnp.array([1.0, -1.0])}, state, theta1)
    theta2 = optim.apply_updates(theta1, u2)
    np.testing.assert_allclose(np.asarray(theta2["w"]), [3.0 - 0.1, 4.0 + 0.1], rtol=1e-6)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="sync_period"):
        sam(optim.sgd(0.1), normalize(), sync_period=0)
    with pytest.raises(TypeError, match="adv_optimizer"):
        sam(optim.sgd(0.1), lambda g: g)


# --- opaque mode: the whole cycle inside one update, ascent gradients from grad_fn --------


def _grad_fn(i_scale):
    """grad_fn(θ, i) = (1 + i_scale·i)·∇f(θ): the index must reach it (0-based)."""
    grad = jax.grad(registry.problem_loss)

    def grad_fn(params, i):
        return jax.tree.map(lambda g: (1.0 + i_scale * i) * g, grad(params))

    def grad_fn_numpy(flat, i):
        return {k: (1.0 + i_scale * i) * g for k, g in registry.problem_grad_numpy(flat).items()}

    return grad_fn, grad_fn_numpy


OPAQUE_CASES = {
    "sam_opaque": (
        lambda: sam(
            optim.sgd(0.05),
            optim.chain(normalize(), optim.trace(0.5), optim.scale(-0.05)),
            opaque_mode=True,
        ),
        lambda: ref.SAM(
            ref.SGD(0.05),
            ref.Chain(ref.Normalize(), ref.Trace(0.5), ref.Scale(-0.05)),
            opaque_mode=True,
        ),
    ),
    "sam_opaque_3_no_reset_adamw": (
        lambda: sam(
            optim.adamw(1e-2, weight_decay=0.1),
            optim.chain(normalize(), optim.trace(0.5), optim.scale(-0.02)),
            sync_period=3,
            reset_state=False,
            opaque_mode=True,
        ),
        lambda: ref.SAM(
            ref.AdamW(1e-2, weight_decay=0.1),
            ref.Chain(ref.Normalize(), ref.Trace(0.5), ref.Scale(-0.02)),
            sync_period=3,
            reset_state=False,
            opaque_mode=True,
        ),
    ),
}


def test_opaque_sam_matches_its_float64_transcription():
    grad_fn, grad_fn_numpy = _grad_fn(0.5)
    start = registry.problem_params(0)
    for name, (build, build_reference) in OPAQUE_CASES.items():
        opt = build()
        with jax.enable_x64(True):
            params = jax.tree.map(jnp.asarray, start)
            state = opt.init(params)
            step = jax.jit(
                lambda p, s, opt=opt: optim.optimizer_step(
                    opt, jax.grad(registry.problem_loss)(p), s, p, grad_fn=grad_fn
                )
            )
            for _ in range(20):
                params, state = step(params, state)
            ours = ref.flatten_params(jax.tree.map(np.asarray, params))
        twin, expected = build_reference(), ref.flatten_params(start)
        for _ in range(20):
            updates = twin.update(registry.problem_grad_numpy(expected), expected, grad_fn_numpy)
            expected = {k: expected[k] + updates[k] for k in expected}
        for k in expected:
            error = np.max(np.abs(ours[k] - expected[k])) / np.max(np.abs(expected[k]))
            assert error <= 1e-10, (name, k, error)


def test_opaque_sam_matches_optax_fixture():
    """optax.contrib.sam(opaque_mode=True)'s iterates, recorded by
    benchmarks/oracles/optim_fixtures.py (float64, the registry's problem)."""
    fixture = np.load(FIXTURES / "sam_opaque.npz")
    grad_fn, _ = _grad_fn(0.5)
    for name, build in (
        ("k2", OPAQUE_CASES["sam_opaque"][0]),
        ("k3_adamw", OPAQUE_CASES["sam_opaque_3_no_reset_adamw"][0]),
    ):
        opt = build()
        expected = fixture[name]  # (steps, 30): the flat params after each step
        with jax.enable_x64(True):
            params = jax.tree.map(jnp.asarray, registry.problem_params(0))
            state = opt.init(params)
            step = jax.jit(
                lambda p, s, opt=opt: optim.optimizer_step(
                    opt, jax.grad(registry.problem_loss)(p), s, p, grad_fn=grad_fn
                )
            )
            for k in range(expected.shape[0]):
                params, state = step(params, state)
                flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(params)])
                assert np.max(np.abs(flat - expected[k])) <= 1e-12, (name, k)


def test_opaque_mode_needs_grad_fn_and_keeps_no_cache():
    opt = sam(optim.sgd(0.1), normalize(), opaque_mode=True)
    params = {"w": jnp.array([3.0, 4.0])}
    state = opt.init(params)
    assert state.cache is None
    with pytest.raises(ValueError, match="grad_fn"):
        opt.update(params, state, params)


def test_opaque_mode_averages_the_ascent_gradient_over_batch_axis_name():
    """Under vmap(axis_name="devices") each lane's grad_fn gives c_lane·w; with
    batch_axis_name the outer SGD step uses their mean, the same on every lane."""
    opt = sam(optim.sgd(0.1), optim.chain(normalize(), optim.scale(-0.5)), opaque_mode=True,
              batch_axis_name="devices")  # fmt: skip
    params = {"w": jnp.array([3.0, 4.0])}

    def lane(c):
        updates, _ = opt.update(
            params, opt.init(params), params, grad_fn=lambda p, i: {"w": c * p["w"]}
        )
        return updates["w"]

    out = np.asarray(jax.vmap(lane, axis_name="devices")(jnp.array([1.0, 3.0])))
    ascended = np.array([3.0, 4.0]) * (1 + 0.5 / 5.0)  # θ + ρ·θ/‖θ‖
    np.testing.assert_allclose(out, np.stack([-0.1 * 2.0 * ascended] * 2), rtol=1e-6)
