"""Polyak's step (funcnn/optim/polyak.py) against its float64 transcription and its closed
form on a quadratic, where one Polyak step with f* = 0 lands on the minimum along g."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.optim.polyak import scale_by_polyak
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
