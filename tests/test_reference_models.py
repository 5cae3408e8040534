"""Every model against its float64 NumPy transcription (`funcnn.reference.models`): forward
values and gradients, at ≤ 1e-10 relative, in float64.

Gradients: for a fixed random cotangent R, L(θ) = Σ model(θ) ⊙ R. `jax.grad(L)` is projected
on random directions — one per parameter leaf (so a wrong leaf is named) and one through all
leaves — and compared with the complex-step derivative Im L_ref(θ + i·h·v)/h of the NumPy
transcription, which is exact to float64 rounding (no finite-difference truncation error).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import activations, nn
from funcnn.nn.sequence_models import ARCHITECTURES, char_lm, sequence_regressor
from funcnn.reference import models as ref
from funcnn.reference.numerical import complex_step, max_relative_error

TOLERANCE = 1e-10
VOCAB, BATCH, TIME = 11, 2, 6
LENGTHS = np.array([TIME, 4])  # the second row is right-padded


def padding_mask() -> np.ndarray:
    return np.arange(TIME)[None, :] < LENGTHS[:, None]


def to_float64(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def perturbed(params, seed):
    """Init values nudged at random, so no bias is exactly 0 and no scale exactly 1 (a
    forgotten bias or gain would otherwise be invisible)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: a + 0.3 * rng.standard_normal(a.shape), to_float64(params))


def check_model(apply, reference, params, inputs, seed, keep=None):
    """Forward values and projected gradients of `apply` against `reference`; `keep` (the
    padding mask, broadcast over trailing axes) limits both to the real positions — what a
    padded position outputs is not part of any layer's contract."""
    with jax.enable_x64(True):
        params64 = jax.tree.map(jnp.asarray, params)
        # jitted: one compile per program instead of one per primitive run op by op
        out = np.asarray(jax.jit(apply)(params64, inputs))
        expected = reference(params, inputs)
        assert out.shape == expected.shape
        weight = np.ones(out.shape)
        if keep is not None:
            weight = np.broadcast_to(
                keep.reshape(keep.shape + (1,) * (out.ndim - keep.ndim)), out.shape
            )
        assert max_relative_error(out * weight, expected * weight) <= TOLERANCE

        rng = np.random.default_rng(seed + 1)
        cotangent = rng.standard_normal(out.shape) * weight
        grads = jax.jit(jax.grad(lambda p: jnp.sum(apply(p, inputs) * cotangent)))(params64)
    grads = to_float64(grads)

    def ref_loss(p):
        return np.sum(reference(p, inputs) * cotangent)

    leaves, treedef = jax.tree.flatten(params)
    paths = [
        jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]
    ]
    grad_leaves = jax.tree.leaves(grads)
    directions = [rng.standard_normal(leaf.shape) for leaf in leaves]
    slopes, expected_slopes = [], []
    for i in range(len(leaves)):
        only_i = [d if j == i else np.zeros_like(d) for j, d in enumerate(directions)]
        expected_slopes.append(complex_step(ref_loss, params, jax.tree.unflatten(treedef, only_i)))
        slopes.append(float(np.sum(grad_leaves[i] * directions[i])))
    # Leaves whose true gradient is 0 (a key bias: softmax ignores a per-row shift) compare at
    # the floor φ = 1e-3 · the largest slope, as funcnn.lab.gradcheck does.
    floor = 1e-3 * max(abs(v) for v in expected_slopes)
    for path, slope, expected_slope in zip(paths, slopes, expected_slopes, strict=True):
        error = abs(slope - expected_slope) / max(abs(slope) + abs(expected_slope), floor)
        assert error <= TOLERANCE, f"gradient of {path}: {slope} vs {expected_slope}"
    everywhere = complex_step(ref_loss, params, jax.tree.unflatten(treedef, directions))
    total = sum(float(np.sum(g * d)) for g, d in zip(grad_leaves, directions, strict=True))
    assert abs(total - everywhere) <= TOLERANCE * (abs(total) + abs(everywhere))


def ids_for(seed):
    return np.random.default_rng(seed).integers(0, VOCAB, (BATCH, TIME))


@pytest.mark.parametrize("kind", ARCHITECTURES)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "padded"])
def test_char_lm_matches_reference(kind, masked):
    seed = 10 * ARCHITECTURES.index(kind) + masked
    model = char_lm(kind, VOCAB, dim=8, hidden=6, depth=2, num_heads=2, max_len=TIME)
    params, _ = model.init(jax.random.key(seed), (BATCH, TIME))
    params = perturbed(params, seed)
    ids = ids_for(seed)
    mask = padding_mask() if masked else None
    check_model(
        lambda p, x: model.apply(p, x, mask=None if mask is None else jnp.asarray(mask)),
        lambda p, x: ref.char_lm_reference(kind, x, p, num_heads=2, mask=mask),
        params,
        ids,
        seed,
        keep=mask,
    )


@pytest.mark.parametrize("kind", ARCHITECTURES)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "padded"])
def test_sequence_regressor_matches_reference(kind, masked):
    seed = 100 + 10 * ARCHITECTURES.index(kind) + masked
    features = 3
    model = sequence_regressor(kind, features, dim=8, depth=2, num_heads=2, max_len=16)
    params, _ = model.init(jax.random.key(seed), (BATCH, TIME, features))
    params = perturbed(params, seed)
    x = np.random.default_rng(seed).standard_normal((BATCH, TIME, features))
    mask = padding_mask() if masked else None
    check_model(
        lambda p, v: model.apply(p, v, mask=None if mask is None else jnp.asarray(mask)),
        lambda p, v: ref.sequence_regressor_reference(kind, v, p, num_heads=2, mask=mask),
        params,
        x,
        seed,
    )


@pytest.mark.parametrize("causal", [False, True])
def test_transformer_block_matches_reference(causal):
    seed = 200 + causal
    block = nn.transformer_block(8, num_heads=2, causal=causal)
    params, _ = block.init(jax.random.key(seed), (BATCH, TIME, 8))
    params = perturbed(params, seed)
    x = np.random.default_rng(seed).standard_normal((BATCH, TIME, 8))
    mask = padding_mask()
    check_model(
        lambda p, v: block.apply(p, v, mask=jnp.asarray(mask)),
        lambda p, v: ref.transformer_block_reference(v, p, 2, mask=mask, causal=causal),
        params,
        x,
        seed,
        keep=mask,  # padded steps are zeroed before attention: their outputs are not compared
    )


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_transformer_lm_matches_reference(positions):
    seed = 300 + (positions == "learned")
    model = nn.transformer_lm(VOCAB, 8, num_heads=2, depth=2, max_len=TIME, positions=positions)
    params, _ = model.init(jax.random.key(seed), (BATCH, TIME))
    params = perturbed(params, seed)
    mask = padding_mask()
    check_model(
        lambda p, x: model.apply(p, x, mask=jnp.asarray(mask)),
        lambda p, x: ref.transformer_lm_reference(x, p, 2, mask=mask, positions=positions),
        params,
        ids_for(seed),
        seed,
        keep=mask,  # padded steps are zeroed before attention: their outputs are not compared
    )


def test_conv_and_pooling_classifier_matches_reference():
    seed = 400
    model = nn.serial(
        nn.conv1d(5, 3, padding="SAME"),
        nn.activation(activations.relu, name="relu"),
        nn.max_pool1d(2),
        nn.conv1d(4, 2, padding="VALID", dilation=2),
        nn.avg_pool1d(2),
        nn.flatten(),
        nn.dense(3),
    )
    params, _ = model.init(jax.random.key(seed), (BATCH, 12, 3))
    assert set(params) >= {"conv1d_0", "conv1d_3", "dense_6"}
    params = perturbed(params, seed)
    x = np.random.default_rng(seed).standard_normal((BATCH, 12, 3))
    check_model(model.apply, lambda p, v: ref.conv_pool_reference(v, p), params, x, seed)


def test_the_check_catches_a_wrong_model():
    # The harness must be able to fail: the transformer LM without its final LayerNorm
    # differs from the reference by far more than the tolerance, in values and gradients.
    model = nn.transformer_lm(VOCAB, 8, num_heads=2, depth=1, max_len=TIME)
    params, _ = model.init(jax.random.key(0), (BATCH, TIME))
    params = perturbed(params, 0)

    def no_final_norm(p, ids):
        p = dict(p, norm={"scale": jnp.ones(8), "bias": jnp.zeros(8)})
        return model.apply(p, ids)

    with pytest.raises(AssertionError):
        check_model(
            no_final_norm,
            lambda p, x: ref.transformer_lm_reference(x, p, 2),
            params,
            ids_for(0),
            0,
        )


def test_complex_step_is_exact_on_a_closed_form():
    # d/dθ Σ sin(θ)·θ² along v is Σ (cos θ·θ² + 2θ·sin θ)·v — to float64 rounding.
    rng = np.random.default_rng(7)
    theta, v = rng.standard_normal(5), rng.standard_normal(5)
    slope = complex_step(lambda p: np.sum(np.sin(p["t"]) * p["t"] ** 2), {"t": theta}, {"t": v})
    exact = np.sum((np.cos(theta) * theta**2 + 2 * theta * np.sin(theta)) * v)
    assert abs(slope - exact) <= 1e-14 * abs(exact)


@pytest.mark.parametrize("kind", ["bow", "rnn", "lstm", "cnn"])
def test_char_lm_tables_start_at_the_documented_scale(kind):
    # E ~ N(0, 0.1²): 60·40 = 2400 draws put the sample std within ±5% of 0.1 (≈ 3.5 σ).
    params, _ = char_lm(kind, 60, dim=40, hidden=8).init(jax.random.PRNGKey(0), (2, 8))
    tables = [
        leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
        if jax.tree_util.keystr(path).endswith("['table']")
    ]
    assert len(tables) == 1 and tables[0].shape == (60, 40)
    np.testing.assert_allclose(float(np.std(np.asarray(tables[0]))), 0.1, rtol=0.05)
