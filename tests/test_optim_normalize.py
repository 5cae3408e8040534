"""scale_by_sign, centralize, normalize_by_update_norm and zero_nans
(funcnn/optim/normalize.py) against their one-line definitions in NumPy."""

import jax.numpy as jnp
import numpy as np

from funcnn.optim.normalize import centralize, normalize_by_update_norm, scale_by_sign, zero_nans

G = {"w": jnp.array([[1.0, -2.0, 0.0], [4.0, 0.5, -3.0]]), "b": jnp.array([2.0, -1.0])}


def _apply(stage, grads=G):
    out, state = stage.update(grads, stage.init(grads))
    return {k: np.asarray(v) for k, v in out.items()}, state


def test_sign_centralize_normalize():
    w, b = np.asarray(G["w"]), np.asarray(G["b"])
    out, _ = _apply(scale_by_sign())
    np.testing.assert_array_equal(out["w"], np.sign(w))
    out, _ = _apply(centralize())
    np.testing.assert_allclose(out["w"], w - w.mean(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(out["b"], b)  # rank 1: unchanged
    out, _ = _apply(normalize_by_update_norm(2.0, eps=1e-6))
    norm = np.sqrt(np.sum(w**2) + np.sum(b**2))
    np.testing.assert_allclose(out["w"], 2.0 * w / (norm + 1e-6), rtol=1e-6)


def test_zero_nans_zeroes_and_records():
    grads = {"w": jnp.array([1.0, jnp.nan, jnp.inf]), "b": jnp.array([2.0])}
    out, state = _apply(zero_nans(), grads)
    np.testing.assert_array_equal(out["w"], [1.0, 0.0, np.inf])
    assert bool(state.found_nan["w"]) and not bool(state.found_nan["b"])
