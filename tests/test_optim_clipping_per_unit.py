"""adaptive_grad_clip and per_example_global_norm_clip (funcnn/optim/clipping_per_unit.py)
against NumPy written from the papers' definitions."""

import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.optim.clipping_per_unit import adaptive_grad_clip, per_example_global_norm_clip


def test_adaptive_grad_clip_per_output_unit():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4))
    g = 3.0 * rng.standard_normal((3, 4))
    b, gb = np.zeros(4), np.array([1e-4, -1e-4, 5.0, 0.0])
    opt = adaptive_grad_clip(0.5, eps=1e-3)
    params = {"w": jnp.asarray(w), "b": jnp.asarray(b)}
    out, _ = opt.update({"w": jnp.asarray(g), "b": jnp.asarray(gb)}, opt.init(params), params)
    # dense (in, out): one unit per column
    max_norm = 0.5 * np.maximum(np.linalg.norm(w, axis=0), 1e-3)
    g_norm = np.linalg.norm(g, axis=0)
    expected = np.where(g_norm < max_norm, g, g * max_norm / g_norm)
    np.testing.assert_allclose(np.asarray(out["w"]), expected, rtol=1e-5)
    # a zero vector bias: the whole leaf is one unit, its norm floored at ε = 1e-3
    gb_norm = np.linalg.norm(gb)
    np.testing.assert_allclose(np.asarray(out["b"]), gb * 0.5e-3 / gb_norm, rtol=1e-5)


def test_per_example_clip_sums_the_clipped_examples():
    rng = np.random.default_rng(1)
    a, c = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 4))
    a[0] *= 0.01  # this example stays under the clip
    summed, clipped = per_example_global_norm_clip({"a": jnp.asarray(a), "c": jnp.asarray(c)}, 1.0)
    norms = np.sqrt((a**2).sum(axis=(1, 2)) + (c**2).sum(axis=1))
    factor = np.minimum(1.0, 1.0 / norms)
    np.testing.assert_allclose(
        np.asarray(summed["a"]), np.einsum("b,bij->ij", factor, a), rtol=1e-5
    )
    np.testing.assert_allclose(np.asarray(summed["c"]), factor @ c, rtol=1e-5)
    assert int(clipped) == int(np.sum(norms > 1.0))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="clipping"):
        adaptive_grad_clip(0.0)
    with pytest.raises(ValueError, match="leading"):
        per_example_global_norm_clip({"a": jnp.ones((2, 3)), "b": jnp.ones((3,))}, 1.0)
    opt = adaptive_grad_clip(1.0)
    with pytest.raises(ValueError, match="params"):
        opt.update({"w": jnp.ones(2)}, opt.init({"w": jnp.ones(2)}))
