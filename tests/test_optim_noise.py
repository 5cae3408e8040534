"""add_noise and noisy_sgd (funcnn/optim/noise.py): the noise has the scheduled variance
η/tᵞ, is reproducible from the key, and differs between steps."""

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.optim.noise import add_noise, noisy_sgd


def test_noise_variance_follows_the_schedule():
    opt = add_noise(eta=0.5, gamma=0.55, key=3)
    zeros = {"w": jnp.zeros((20_000,))}
    state = opt.init(zeros)
    step = jax.jit(opt.update)
    draws = []
    for t in range(1, 4):
        out, state = step(zeros, state)
        noise = np.asarray(out["w"])
        # sample variance of 20 000 normals: relative standard error √(2/n) ≈ 1 %
        np.testing.assert_allclose(noise.var(), 0.5 / t**0.55, rtol=0.05)
        assert abs(noise.mean()) < 0.05
        draws.append(noise)
    assert not np.allclose(draws[0], draws[1])


def test_same_key_same_run_and_noisy_sgd_step():
    g = {"w": jnp.array([1.0, -1.0, 2.0])}
    a, _ = noisy_sgd(0.1, key=7).update(g, noisy_sgd(0.1, key=7).init(g))
    b, _ = noisy_sgd(0.1, key=7).update(g, noisy_sgd(0.1, key=7).init(g))
    np.testing.assert_array_equal(np.asarray(a["w"]), np.asarray(b["w"]))
    # u = −η(g + σξ): recover ξ's scale from a zero-noise run
    plain, _ = noisy_sgd(0.1, eta=0.0, key=7).update(g, noisy_sgd(0.1, eta=0.0, key=7).init(g))
    np.testing.assert_allclose(np.asarray(plain["w"]), -0.1 * np.asarray(g["w"]), rtol=1e-6)
