"""ema, incremental_update, periodic_update and lookahead (funcnn/optim/slow_weights.py)
against their closed forms, written from the equations by hand."""

import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.optim.slow_weights import (
    LookaheadParams,
    ema,
    incremental_update,
    lookahead,
    periodic_update,
)


@pytest.mark.parametrize("debias", [True, False])
def test_ema_of_updates(debias):
    opt = ema(0.5, debias=debias)
    grads = [np.array([1.0, -2.0]), np.array([3.0, 0.0]), np.array([-1.0, 4.0])]
    state = opt.init({"w": jnp.zeros(2)})
    m = np.zeros(2)
    for t, g in enumerate(grads, start=1):
        out, state = opt.update({"w": jnp.asarray(g)}, state)
        m = 0.5 * m + 0.5 * g
        expected = m / (1 - 0.5**t) if debias else m
        np.testing.assert_allclose(np.asarray(out["w"]), expected, rtol=1e-6)


def test_incremental_and_periodic_updates():
    new, old = {"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([3.0, -2.0])}
    np.testing.assert_allclose(
        np.asarray(incremental_update(new, old, 0.25)["w"]),
        0.25 * np.array([1, 2]) + 0.75 * np.array([3, -2]),
    )
    np.testing.assert_array_equal(
        np.asarray(periodic_update(new, old, jnp.asarray(6), 3)["w"]), [1.0, 2.0]
    )
    np.testing.assert_array_equal(
        np.asarray(periodic_update(new, old, jnp.asarray(7), 3)["w"]), [3.0, -2.0]
    )
    with pytest.raises(ValueError, match="step_size"):
        incremental_update(new, old, 1.5)
    with pytest.raises(ValueError, match="update_period"):
        periodic_update(new, old, jnp.asarray(0), 0)


def test_lookahead_with_sgd_matches_the_algorithm_by_hand():
    """k = 3, α = 0.5, SGD(0.1) on f = ½‖θ‖²: fast steps φ ← 0.9φ; every 3rd step
    s ← s + α(φ − s) and φ ← s."""
    opt = lookahead(optim.sgd(0.1), sync_period=3, slow_step_size=0.5)
    params = LookaheadParams.init_synced({"w": jnp.array([1.0, -2.0])})
    state = opt.init(params)
    fast = slow = np.array([1.0, -2.0])
    for step in range(1, 8):
        updates, state = opt.update({"w": params.fast["w"]}, state, params)
        params = optim.apply_updates(params, updates)
        fast = 0.9 * fast
        if step % 3 == 0:
            slow = slow + 0.5 * (fast - slow)
            fast = slow.copy()
        np.testing.assert_allclose(np.asarray(params.fast["w"]), fast, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(params.slow["w"]), slow, rtol=1e-6)


def test_lookahead_needs_lookahead_params():
    opt = lookahead(optim.sgd(0.1), 2, 0.5)
    with pytest.raises(TypeError, match="LookaheadParams"):
        opt.init({"w": jnp.ones(2)})
