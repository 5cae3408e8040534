"""funcnn.optim.routing: `masked` and `partition` resolve prefix trees against the params,
and a parameterless layer (`"relu_1": {}`, as `nn.serial` names it) needs no entry."""

import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim

# The params of serial(dense, relu, dense): the relu holds no arrays.
PARAMS = {
    "dense_0": {"w": jnp.array([[1.0, -2.0]]), "b": jnp.array([0.5, 0.0])},
    "relu_1": {},
    "dense_2": {"w": jnp.array([[3.0], [-1.0]]), "b": jnp.array([2.0])},
}
GRADS = {
    "dense_0": {"w": jnp.array([[0.5, 1.0]]), "b": jnp.array([-1.0, 2.0])},
    "relu_1": {},
    "dense_2": {"w": jnp.array([[1.0], [4.0]]), "b": jnp.array([-3.0])},
}


def test_partition_prefix_labels_need_no_entry_for_a_parameterless_layer():
    opt = optim.partition(
        {"fast": optim.sgd(0.1), "slow": optim.sgd(0.01)}, {"dense_0": "fast", "dense_2": "slow"}
    )
    updates, _ = opt.update(GRADS, opt.init(PARAMS), PARAMS)
    for layer, lr in (("dense_0", 0.1), ("dense_2", 0.01)):
        for name in ("w", "b"):
            np.testing.assert_allclose(updates[layer][name], -lr * GRADS[layer][name], rtol=1e-6)
    assert updates["relu_1"] == {}


def test_masked_prefix_needs_no_entry_for_a_parameterless_layer():
    # u = g + λθ on dense_0 only (λ = 0.5); dense_2 passes through.
    opt = optim.add_decayed_weights(0.5, mask={"dense_0": True, "dense_2": False})
    updates, _ = opt.update(GRADS, opt.init(PARAMS), PARAMS)
    for name in ("w", "b"):
        want = GRADS["dense_0"][name] + 0.5 * PARAMS["dense_0"][name]
        np.testing.assert_allclose(updates["dense_0"][name], want)
        np.testing.assert_array_equal(updates["dense_2"][name], GRADS["dense_2"][name])


def test_a_prefix_missing_a_layer_with_parameters_is_still_an_error_naming_it():
    opt = optim.partition({"fast": optim.sgd(0.1)}, {"dense_0": "fast"})
    with pytest.raises(ValueError, match=r"missing \['dense_2'\] \(they hold parameters\)"):
        opt.init(PARAMS)
    opt = optim.masked(optim.scale(2.0), {"dense_0": True, "dense_2": True, "dense_9": True})
    with pytest.raises(ValueError, match=r"mask must be a pytree of bools.*unknown \['dense_9'\]"):
        opt.init(PARAMS)
