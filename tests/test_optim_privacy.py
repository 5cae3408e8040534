"""DP-SGD (funcnn/optim/privacy.py): each example clipped on its own and the noise's mean and
std (σC/B) against closed forms; with σ = 0, `dpsgd` step by step against its float64
transcription in `funcnn.reference.optim`; with noise, against optax.contrib.dpsgd's iterates
recorded in tests/fixtures/optim/dpsgd.npz (benchmarks/oracles/optim_fixtures.py)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.reference import optim as ref

FIXTURES = Path(__file__).parent / "fixtures" / "optim"


def _examples(rng, batch=6):
    """Per-example gradients whose norms straddle C = 1: a few stay, the rest are clipped."""
    a = rng.standard_normal((batch, 3, 2))
    b = rng.standard_normal((batch, 4))
    a[:2] *= 0.05
    b[:2] *= 0.05
    return {"a": a, "b": b}


def test_each_example_is_clipped_on_its_own_then_averaged():
    per_example = _examples(np.random.default_rng(0))
    opt = optim.differentially_private_aggregate(l2_norm_clip=1.0, noise_multiplier=0.0, key=0)
    out, _ = opt.update(jax.tree.map(jnp.asarray, per_example), opt.init(None))
    norms = np.sqrt((per_example["a"] ** 2).sum(axis=(1, 2)) + (per_example["b"] ** 2).sum(1))
    assert (norms[:2] < 1.0).all() and (norms[2:] > 1.0).all()
    scale = np.minimum(1.0, 1.0 / norms) / len(norms)  # (B,)
    np.testing.assert_allclose(
        np.asarray(out["a"]), np.einsum("i,ijk->jk", scale, per_example["a"]), rtol=1e-5
    )
    np.testing.assert_allclose(np.asarray(out["b"]), scale @ per_example["b"], rtol=1e-5)


def test_noise_has_mean_zero_and_std_sigma_c_over_b():
    """Zero gradients: u = σC·ξ/B exactly; 2·20 000 draws per step, three steps."""
    sigma, clip, batch = 1.3, 0.7, 8
    opt = optim.differentially_private_aggregate(clip, sigma, key=5)
    zeros = {"w": jnp.zeros((batch, 20_000)), "v": jnp.zeros((batch, 100, 200))}
    state = opt.init(None)
    step = jax.jit(opt.update)
    draws = []
    for _ in range(3):
        out, state = step(zeros, state)
        for leaf in jax.tree.leaves(out):
            noise = np.asarray(leaf).ravel()
            # sample std of n = 20 000 normals: relative standard error 1/√(2n) = 0.5 %
            np.testing.assert_allclose(noise.std(), sigma * clip / batch, rtol=0.03)
            assert abs(noise.mean()) < 4 * sigma * clip / batch / np.sqrt(noise.size)
        draws.append(np.asarray(out["w"]))
    assert not np.allclose(draws[0], draws[1])  # fresh noise every step
    assert not np.allclose(np.asarray(out["w"]), np.asarray(out["v"]).ravel())  # and leaf


def test_dpsgd_without_noise_matches_its_float64_transcription():
    rng = np.random.default_rng(1)
    cases = {
        "plain": (dict(), dict()),
        "nesterov": (dict(momentum=0.8, nesterov=True), dict(momentum=0.8, nesterov=True)),
        "momentum": (dict(momentum=0.5), dict(momentum=0.5)),
    }
    batches = [_examples(rng) for _ in range(4)]
    params0 = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)}
    for name, (ours_kw, ref_kw) in cases.items():
        with jax.enable_x64(True):
            opt = optim.dpsgd(0.1, l2_norm_clip=1.0, noise_multiplier=0.0, seed=0, **ours_kw)
            params = jax.tree.map(jnp.asarray, params0)
            state = opt.init(params)
            for batch in batches:
                u, state = opt.update(jax.tree.map(jnp.asarray, batch), state, params)
                params = optim.apply_updates(params, u)
            ours = jax.tree.map(np.asarray, params)
        twin = ref.DPSGD(0.1, 1.0, 0.0, **ref_kw)
        expected = {k: v.copy() for k, v in params0.items()}
        for batch in batches:
            expected = twin.step(expected, batch)
        for k in expected:
            assert np.max(np.abs(ours[k] - expected[k])) <= 1e-12, (name, k)


def test_same_seed_same_noise_and_bad_input_is_named():
    g = {"w": jnp.ones((4, 3))}
    runs = [optim.dpsgd(0.1, 1.0, 1.0, seed=3) for _ in range(2)]
    a, b = (opt.update(g, opt.init({"w": jnp.ones(3)}))[0]["w"] for opt in runs)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="one of key or seed"):
        optim.differentially_private_aggregate(1.0, 1.0, key=1, seed=2)
    with pytest.raises(ValueError, match="noise_multiplier"):
        optim.dpsgd(0.1, 1.0, -1.0, seed=0)
    with pytest.raises(TypeError, match="seed"):
        optim.dpsgd(0.1, 1.0, 1.0, seed=1.5)
    # in a chain it must be updated without params (chain checks updates against params);
    # dpsgd composes its stages itself and takes them
    chained = optim.chain(optim.differentially_private_aggregate(1.0, 0.0), optim.scale(-0.1))
    out, _ = chained.update(g, chained.init({"w": jnp.ones(3)}))
    np.testing.assert_allclose(np.asarray(out["w"]), -0.1 * np.ones(3) / np.sqrt(3), rtol=1e-6)
    opt = optim.differentially_private_aggregate(1.0, 1.0)
    with pytest.raises(ValueError, match="leading"):
        opt.update({"a": jnp.ones((2, 3)), "b": jnp.ones((3,))}, opt.init(None))


def test_dpsgd_with_noise_matches_optax_fixture():
    """Same seed, same key splits: optax's noise is drawn identically (measured: bitwise)."""
    fixture = np.load(FIXTURES / "dpsgd.npz")
    opt = optim.dpsgd(
        0.1, l2_norm_clip=1.0, noise_multiplier=1.1, seed=3, momentum=0.9, nesterov=True
    )
    with jax.enable_x64(True):
        params = {"a": jnp.asarray(fixture["params_a"]), "b": jnp.asarray(fixture["params_b"])}
        state = opt.init(params)
        for k, expected in enumerate(fixture["expected"]):
            batch = {name: jnp.asarray(fixture[f"grads_{name}"][k]) for name in ("a", "b")}
            updates, state = opt.update(batch, state, params)
            params = optim.apply_updates(params, updates)
            flat = np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(params)])
            assert np.max(np.abs(flat - expected)) <= 1e-12, k
