"""SAM and normalize (funcnn/optim/sharpness.py) against the float64 transcription in
`funcnn.reference.optim`, with optax's defaults and with a longer cycle whose adversarial
optimizer keeps momentum across cycles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.optim.sharpness import normalize, sam
from funcnn.reference import optim as ref
from funcnn.verify import registry, runner

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
