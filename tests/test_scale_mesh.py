"""funcnn.scale.mesh: one constructor with the two named axes, and its refusals."""

import jax
import numpy as np
import pytest

from funcnn import scale
from funcnn.scale import mesh as mesh_module


def test_one_constructor_names_the_axes_once():
    assert (scale.DATA_AXIS, scale.MODEL_AXIS) == ("data", "model")
    assert mesh_module.DATA_AXIS is scale.DATA_AXIS  # one definition, re-exported
    flat = scale.make_mesh(1)
    assert flat.axis_names == ("data",) and flat.devices.shape == (1,)
    grid = scale.make_mesh(jax.devices()[:1], model=1)
    assert grid.axis_names == ("data", "model") and grid.devices.shape == (1, 1)


def test_make_mesh_refuses_what_it_cannot_lay_out():
    with pytest.raises(ValueError, match=r"model=2 must divide the number of devices \(1\)"):
        scale.make_mesh(1, model=2)
    with pytest.raises(ValueError, match=r"devices=\d+ but only"):
        scale.make_mesh(len(jax.devices()) + 1)
    with pytest.raises(ValueError, match="must not be an empty sequence"):
        scale.make_mesh([])


def test_the_two_placements_have_two_names_and_agree_on_one_process():
    mesh = scale.make_mesh(1)
    tree = {"w": np.arange(6.0).reshape(2, 3)}
    local = scale.place_local(tree, scale.replicated_sharding(mesh))
    from_host = scale.place_global(tree, scale.replicated_sharding(mesh))
    np.testing.assert_array_equal(local["w"], from_host["w"])
    assert scale.place_local is not scale.place_global
