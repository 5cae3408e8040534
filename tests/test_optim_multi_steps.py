"""MultiSteps (funcnn/optim/multi_steps.py): the inner optimizer sees the mean of each
window's gradients, with a fixed k and with a schedule of k."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.optim.multi_steps import MultiSteps


def test_schedule_of_k_averages_each_window():
    """k = 2 for the first inner step, then 3: windows [g1 g2], [g3 g4 g5], [g6 g7 g8]."""
    multi = MultiSteps(optim.sgd(1.0), every_k_schedule=lambda step: jnp.where(step < 1, 2, 3))
    opt = multi.gradient_transformation()
    params = {"w": jnp.zeros(2)}
    state = opt.init(params)
    step = jax.jit(opt.update)
    grads = [np.array([float(i), -2.0 * i]) for i in range(1, 9)]
    outs, stepped = [], []
    for g in grads:
        out, state = step({"w": jnp.asarray(g)}, state, params)
        outs.append(np.asarray(out["w"]))
        stepped.append(bool(multi.has_updated(state)))
    assert stepped == [False, True, False, False, True, False, False, True]
    np.testing.assert_allclose(outs[1], -np.mean(grads[0:2], axis=0), rtol=1e-6)
    np.testing.assert_allclose(outs[4], -np.mean(grads[2:5], axis=0), rtol=1e-6)
    np.testing.assert_allclose(outs[7], -np.mean(grads[5:8], axis=0), rtol=1e-6)
    assert not np.any(outs[0]) and not np.any(outs[3])


def test_bad_k_is_named():
    with pytest.raises(ValueError, match="every_k_schedule"):
        MultiSteps(optim.sgd(1.0), 0)
    with pytest.raises(TypeError, match="GradientTransformation"):
        MultiSteps(lambda g: g, 2)
