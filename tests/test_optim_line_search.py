"""L-BFGS and the zoom line search (funcnn/optim/line_search.py) against the float64
transcription in `funcnn.reference.optim` (step by step, and the number of line-search
evaluations), L-BFGS against Adam on Rosenbrock and an ill-conditioned quadratic, and the
errors a missing extra argument gives.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.optim import line_search
from funcnn.reference import optim as ref

CENTER = np.array([1.0, -2.0, 0.5, 3.0, -1.5, 2.0])
SCALES = np.array([1.0, 3.0, 0.5, 10.0, 2.0, 0.2])


def quartic(params):
    """f(x) = Σ sᵢ(xᵢ − cᵢ)²/2 + 0.1·Σ(xᵢ − cᵢ)⁴ + 0.05·(Σ(xᵢ − cᵢ))²: smooth, convex,
    not quadratic (the line search has work to do), minimum 0 at c."""
    d = params["x"] - CENTER
    return 0.5 * jnp.sum(SCALES * d * d) + 0.1 * jnp.sum(d**4) + 0.05 * jnp.sum(d) ** 2


def quartic_numpy(flat):
    d = flat["x"] - CENTER
    value = 0.5 * np.sum(SCALES * d * d) + 0.1 * np.sum(d**4) + 0.05 * np.sum(d) ** 2
    return float(value), {"x": SCALES * d + 0.4 * d**3 + 0.1 * np.sum(d)}


def rosenbrock(params):
    x = params["x"]
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _run(opt, loss, start, steps):
    """θ after each of `steps` updates (one jitted step reused), and the line-search
    evaluation counts (from the state) when the optimizer has a line search."""

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=loss)
        return optim.apply_updates(params, updates), state, value

    params, state = start, opt.init(start)
    trajectory, values = [], []
    for _ in range(steps):
        params, state, value = step(params, state)
        trajectory.append(np.asarray(params["x"]))
        values.append(float(value))
    return np.array(trajectory), np.array(values), state


def test_lbfgs_matches_the_float64_transcription_step_by_step():
    start = np.array([3.0, 1.0, -2.0, 0.0, 2.0, -1.0])
    with jax.enable_x64(True):
        ours, _, _ = _run(optim.lbfgs(), quartic, {"x": jnp.asarray(start)}, 12)
    reference = ref.LBFGS()
    params, expected = {"x": start.copy()}, []
    for _ in range(12):
        value, grads = quartic_numpy(params)
        updates = reference.update(grads, params, value=value, value_fn=quartic_numpy)
        params = {"x": params["x"] + updates["x"]}
        expected.append(params["x"])
    error = np.max(np.abs(ours - np.array(expected))) / np.max(np.abs(CENTER))
    assert error <= 1e-10, error


def test_zoom_line_search_takes_the_references_step_and_evaluations():
    """A direction far too long: phase 1 brackets, phase 2 zooms (several evaluations)."""
    theta = np.array([3.0, 1.0, -2.0, 0.0, 2.0, -1.0])
    value, grad = quartic_numpy({"x": theta})
    direction = {"x": -4.0 * grad["x"]}
    step, _, _, count = ref.zoom_linesearch_reference(
        quartic_numpy, {"x": theta}, direction, value, grad
    )
    assert count >= 3  # the search did zoom
    with jax.enable_x64(True):
        search = line_search.scale_by_zoom_linesearch(20, initial_guess_strategy="one")
        params = {"x": jnp.asarray(theta)}
        grads = {"x": jnp.asarray(grad["x"])}
        updates, state = search.update(
            {"x": jnp.asarray(direction["x"])},
            search.init(params),
            params,
            value=jnp.asarray(value),
            grad=grads,
            value_fn=quartic,
        )
    assert int(state.num_linesearch_steps) == count
    np.testing.assert_allclose(float(state.learning_rate), step, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(updates["x"]), step * direction["x"], rtol=1e-12)


# f(x) = ½(x − 1)ᵀQΛQᵀ(x − 1), Λ = logspace(0, 4, 8): κ = 10⁴ along rotated axes (an
# axis-aligned one would be easy for Adam, whose scaling is per coordinate).
ROTATION, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((8, 8)))
HESSIAN = ROTATION @ np.diag(np.logspace(0, 4, 8)) @ ROTATION.T


def rotated_quadratic(params):
    d = params["x"] - 1.0
    return 0.5 * d @ jnp.asarray(HESSIAN) @ d


def _steps_to_reach(values, target):
    below = np.nonzero(values <= target)[0]
    return int(below[0]) if below.size else None


@pytest.mark.parametrize(
    "loss, start, steps",
    [
        (rosenbrock, np.array([-1.2, 1.0, -0.5, 0.8]), 300),
        (rotated_quadratic, np.zeros(8), 300),
    ],
    ids=["rosenbrock", "ill_conditioned_quadratic"],
)
def test_lbfgs_reaches_the_minimum_in_far_fewer_steps_than_adam(loss, start, steps):
    with jax.enable_x64(True):
        params = {"x": jnp.asarray(start)}
        _, lbfgs_values, _ = _run(optim.lbfgs(), loss, params, 80)
        _, adam_values, _ = _run(optim.adam(1e-2), loss, params, steps)
    lbfgs_steps = _steps_to_reach(lbfgs_values, 1e-10)
    assert lbfgs_steps is not None and lbfgs_steps < 80
    assert np.min(adam_values) > 1e-6  # Adam (η = 1e-2) is still far after 300 steps


def test_lbfgs_without_line_search_is_the_preconditioned_step():
    """First update, no line search: u = −min(1, 1/‖g‖)·g."""
    g = {"x": jnp.array([3.0, -4.0])}
    opt = optim.lbfgs(linesearch=None)
    updates, _ = opt.update(g, opt.init(g), {"x": jnp.zeros(2)})
    np.testing.assert_allclose(np.asarray(updates["x"]), -np.array([3.0, -4.0]) / 5.0, rtol=1e-6)


def test_line_search_without_its_extra_arguments_says_what_to_pass():
    params = {"x": jnp.zeros(2)}
    search = line_search.scale_by_zoom_linesearch(5)
    with pytest.raises(ValueError, match="value_fn"):
        search.update(params, search.init(params), params)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: line_search.scale_by_lbfgs(memory_size=0), "memory_size"),
        (lambda: line_search.scale_by_zoom_linesearch(0), "max_linesearch_steps"),
        (lambda: line_search.scale_by_zoom_linesearch(5, curv_rtol=2.0), "curv_rtol"),
        (lambda: line_search.scale_by_zoom_linesearch(5, initial_guess_strategy="x"), "strategy"),
    ],
)
def test_bad_settings_name_the_argument(build, message):
    with pytest.raises(ValueError, match=message):
        build()
