"""freeze and selective_transform (funcnn/optim/freezing.py): frozen leaves stay bitwise,
the optimizer keeps no state for them and trains the rest as it would alone."""

import jax.numpy as jnp
import numpy as np

from funcnn import optim
from funcnn.optim.freezing import freeze, selective_transform, set_to_zero

PARAMS = {"encoder": {"w": jnp.array([1.0, 2.0])}, "head": {"w": jnp.array([3.0, -1.0])}}
GRADS = {"encoder": {"w": jnp.array([0.5, 0.5])}, "head": {"w": jnp.array([1.0, -2.0])}}


def test_selective_transform_trains_only_the_unfrozen_leaves():
    opt = selective_transform(optim.adam(0.1), freeze_mask={"encoder": True, "head": False})
    state = opt.init(PARAMS)
    updates, state = opt.update(GRADS, state, PARAMS)
    np.testing.assert_array_equal(np.asarray(updates["encoder"]["w"]), [0.0, 0.0])
    alone = optim.adam(0.1)
    expected, _ = alone.update(GRADS["head"], alone.init(PARAMS["head"]), PARAMS["head"])
    np.testing.assert_allclose(np.asarray(updates["head"]["w"]), np.asarray(expected["w"]))
    new = optim.apply_updates(PARAMS, updates)
    assert np.array_equal(np.asarray(new["encoder"]["w"]), np.asarray(PARAMS["encoder"]["w"]))


def test_freeze_zeroes_the_masked_updates():
    opt = optim.chain(optim.sgd(0.1), freeze({"encoder": False, "head": True}))
    updates, _ = opt.update(GRADS, opt.init(PARAMS), PARAMS)
    np.testing.assert_allclose(np.asarray(updates["encoder"]["w"]), [-0.05, -0.05])
    np.testing.assert_array_equal(np.asarray(updates["head"]["w"]), [0.0, 0.0])
    zero, _ = set_to_zero().update(GRADS, set_to_zero().init(PARAMS))
    assert all(not np.any(np.asarray(x)) for x in (zero["encoder"]["w"], zero["head"]["w"]))
