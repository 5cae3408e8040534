"""funcnn.optim.accumulators: each transform's defaults against its closed form (float64 NumPy).

The full optimizers built from these transforms are compared with PyTorch's equations in
tests/test_optim_zoo_torch.py; here the transforms are called with their own defaults."""

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import optim


def test_scale_by_adagrad_defaults_start_from_zero_accumulator(rng):
    # Defaults s₀ = 0, ε = 1e-10 (torch): d₁ = g₁/(|g₁| + ε), d₂ = g₂/(√(g₁² + g₂²) + ε).
    g1, g2 = rng.normal(size=(2, 7))
    with jax.enable_x64(True):
        transform = optim.scale_by_adagrad()
        state = transform.init(jnp.zeros(7))
        np.testing.assert_array_equal(jax.tree.leaves(state)[0], 0.0)
        d1, state = transform.update(jnp.asarray(g1), state)
        d2, _ = transform.update(jnp.asarray(g2), state)
    np.testing.assert_allclose(d1, g1 / (np.abs(g1) + 1e-10), rtol=1e-12)
    np.testing.assert_allclose(d2, g2 / (np.sqrt(g1**2 + g2**2) + 1e-10), rtol=1e-12)
