"""reduce_on_plateau (funcnn/optim/plateau.py) against its float64 transcription, on a loss
sequence that improves, stalls, recovers and stalls again."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.optim.plateau import reduce_on_plateau
from funcnn.reference import optim as ref

VALUES = [5.0, 4.0, 3.0, 3.0, 3.1, 2.9995, 3.0, 3.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(patience=2),
        dict(factor=0.5, patience=1, rtol=0.0, atol=0.05, cooldown=2, min_scale=0.1),
        dict(patience=1, accumulation_size=2),
    ],
    ids=["patience", "atol_cooldown_min_scale", "accumulated"],
)
def test_scale_follows_the_reference(kwargs):
    opt = reduce_on_plateau(**kwargs)
    reference = ref.ReduceOnPlateau(**kwargs)
    grads = {"w": jnp.array([2.0, -1.0])}
    state = opt.init(grads)
    step = jax.jit(lambda g, s, v: opt.update(g, s, None, value=v))
    scales = []
    for value in VALUES:
        updates, state = step(grads, state, jnp.asarray(value))
        expected = reference.update({"w": np.array([2.0, -1.0])}, None, value=value)
        np.testing.assert_allclose(np.asarray(updates["w"]), expected["w"], rtol=1e-6)
        scales.append(float(state.scale))
    assert min(scales) < 1.0  # the plateau was detected at least once


def test_reduce_on_plateau_needs_the_value():
    opt = reduce_on_plateau()
    grads = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="value"):
        opt.update(grads, opt.init(grads))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(factor=1.0), "factor"),
        (dict(rtol=0.0, atol=0.0), "rtol"),
        (dict(patience=-1), "patience"),
        (dict(accumulation_size=0), "accumulation_size"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        reduce_on_plateau(**kwargs)
