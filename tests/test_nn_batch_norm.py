"""batch_norm, group_norm and instance_norm against float64 NumPy transcriptions: values and
running statistics over several steps (train and eval, masked and not), gradients by the
complex step, PyTorch's momentum convention, padded cells that hold garbage, and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.reference import batch_norm_reference, complex_step, group_norm_reference

KEY = jax.random.key(0)
RNG = np.random.default_rng(0)
BATCHES = [RNG.normal(loc=2.0, scale=3.0, size=(3, 2, 2, 4)) for _ in range(3)]  # (B, H, W, C)
MASK = np.ones((3, 2, 2), bool)
MASK[0, 1, :] = False  # example 0: its second row is padding
MASK[2] = False  # example 2: all padding
PARAMS = {"scale": RNG.normal(size=4), "bias": RNG.normal(size=4)}


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


@pytest.mark.parametrize("masked", [False, True])
def test_batch_norm_tracks_pytorch_statistics_over_several_steps(masked):
    # Three training steps then evaluation, against the float64 transcription of PyTorch's
    # rule: mean ← 0.9·mean + 0.1·μ, var ← 0.9·var + 0.1·σ²·n/(n − 1).
    layer = nn.batch_norm(momentum=0.1)
    mask = MASK if masked else None
    with jax.enable_x64(True):
        state = nn.initial_state(layer, (-1, 2, 2, 4))
        np.testing.assert_array_equal(state["mean"], np.zeros(4))
        np.testing.assert_array_equal(state["var"], np.ones(4))
        state = _f64(state)
        mean, var = np.zeros(4), np.ones(4)
        step = jax.jit(lambda s, x, m: layer.apply(_f64(PARAMS), x, state=s, mask=m, train=True))
        for x in BATCHES:
            y, state = step(state, x, None if mask is None else jnp.asarray(mask))
            expected, mean, var = batch_norm_reference(
                np.where(MASK[..., None], x, 0.0) if masked else x,
                PARAMS["scale"],
                PARAMS["bias"],
                mean,
                var,
                train=True,
                mask=mask,
            )
            np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(state["mean"], mean, rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(state["var"], var, rtol=1e-10)
        y, after = layer.apply(_f64(PARAMS), jnp.asarray(BATCHES[0]), state=state)  # eval
        assert after is state  # train=False changes nothing
        expected, _, _ = batch_norm_reference(
            BATCHES[0], PARAMS["scale"], PARAMS["bias"], mean, var, train=False
        )
        np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_batch_norm_momentum_weights_the_new_statistic_and_uses_unbiased_variance():
    # One step from (mean, var) = (0, 1) on x = [1, 3] (per channel): μ = 2, σ² = 1 (biased),
    # unbiased 2; momentum 0.1 gives mean = 0.1·2 = 0.2, var = 0.9·1 + 0.1·2 = 1.1 —
    # flax's convention (momentum weighting the old value) would give 1.8 and 0.9·2 + 0.1.
    layer = nn.batch_norm()
    params, _ = layer.init(KEY, (2, 1))
    x = jnp.asarray([[1.0], [3.0]])
    y, state = layer.apply(params, x, state=nn.initial_state(layer, (2, 1)), train=True)
    np.testing.assert_allclose(state["mean"], [0.2], rtol=1e-6)
    np.testing.assert_allclose(state["var"], [1.1], rtol=1e-6)
    np.testing.assert_allclose(y[:, 0], np.array([-1.0, 1.0]) / np.sqrt(1 + 1e-5), rtol=1e-6)


def test_batch_norm_gradient_matches_complex_step():
    layer = nn.batch_norm()
    x = BATCHES[1]
    r = np.random.default_rng(1).normal(size=x.shape)
    state = {"mean": np.zeros(4), "var": np.ones(4)}

    def reference(t):
        y, _, _ = batch_norm_reference(
            t["x"],
            t["p"]["scale"],
            t["p"]["bias"],
            state["mean"],
            state["var"],
            train=True,
            mask=MASK,
        )
        return np.sum(r * y)

    tree = {"x": np.where(MASK[..., None], x, 0.0), "p": PARAMS}
    with jax.enable_x64(True):

        def loss(t):
            y, _ = layer.apply(t["p"], t["x"], state=_f64(state), mask=MASK, train=True)
            return jnp.sum(r * y)

        grads = jax.grad(loss)(_f64(tree))
    direction = jax.tree.map(lambda a: np.random.default_rng(2).normal(size=np.shape(a)), tree)
    direction["x"] = np.where(MASK[..., None], direction["x"], 0.0)  # padding has no influence
    along = sum(
        float(np.sum(np.asarray(g) * v))
        for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True)
    )
    exact = complex_step(reference, tree, direction)
    assert abs(along - exact) <= 1e-10 * abs(exact)


@pytest.mark.parametrize(("groups", "masked"), [(1, False), (2, True), (4, False), (4, True)])
def test_group_norm_values_and_gradients_match_reference(groups, masked):
    layer = nn.group_norm(groups) if groups < 4 else nn.instance_norm()
    mask = MASK if masked else None
    # The layer zeroes padded cells before normalizing; so does the reference's input here.
    x = np.where(MASK[..., None], BATCHES[2], 0.0) if masked else BATCHES[2]
    r = np.random.default_rng(3).normal(size=x.shape)
    tree = {"x": x, "p": PARAMS}

    def reference(t):
        return group_norm_reference(t["x"], t["p"]["scale"], t["p"]["bias"], groups, mask=mask)

    with jax.enable_x64(True):
        assert layer.init(KEY, x.shape)[1] == x.shape

        def forward(t):
            return layer.apply(t["p"], t["x"], mask=None if mask is None else jnp.asarray(mask))

        t64 = _f64(tree)
        got = forward(t64)
        grads = jax.grad(lambda t: jnp.sum(r * forward(t)))(t64)
    expected = reference(tree)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    direction = jax.tree.map(lambda a: np.random.default_rng(4).normal(size=np.shape(a)), tree)
    if masked:  # padded inputs have no influence on the layer: move only real ones
        direction["x"] = np.where(MASK[..., None], direction["x"], 0.0)
    along = sum(
        float(np.sum(np.asarray(g) * v))
        for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True)
    )
    exact = complex_step(lambda t: np.sum(r * reference(t)), tree, direction)
    assert abs(along - exact) <= 1e-10 * abs(exact)


@pytest.mark.parametrize("name", ["batch_norm", "group_norm", "instance_norm"])
def test_padded_cells_change_neither_values_nor_gradients(name):
    layer = {"batch_norm": nn.batch_norm(), "group_norm": nn.group_norm(2)}.get(
        name, nn.instance_norm()
    )
    params, _ = layer.init(KEY, BATCHES[0].shape)
    state = nn.initial_state(layer, BATCHES[0].shape)
    mask = jnp.asarray(MASK)

    def run(x):
        def loss(x):
            y, new = nn.apply_with_state(layer, params, x, state, mask=mask, train=True)
            return jnp.sum(jnp.sin(y)), new

        return jax.value_and_grad(loss, has_aux=True)(x)

    clean = run(jnp.asarray(np.where(MASK[..., None], BATCHES[0], 0.0), jnp.float32))
    for garbage in (np.nan, np.inf, -1e30):
        poisoned = np.where(MASK[..., None], BATCHES[0], garbage).astype(np.float32)
        got = run(jnp.asarray(poisoned))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(clean), strict=True):
            np.testing.assert_array_equal(a, b)


def test_batch_norm_keeps_statistics_when_a_masked_batch_has_under_two_cells():
    layer = nn.batch_norm()
    state = nn.initial_state(layer, (2, 3))
    params, _ = layer.init(KEY, (2, 3))
    _, after = layer.apply(
        params, jnp.ones((2, 3)), state=state, mask=jnp.asarray([True, False]), train=True
    )
    np.testing.assert_array_equal(after["mean"], state["mean"])
    np.testing.assert_array_equal(after["var"], state["var"])


def test_norm_errors_name_the_problem():
    layer = nn.batch_norm()
    params, _ = layer.init(KEY, (4, 3))
    with pytest.raises(ValueError, match=r"nn\.initial_state"):
        layer.apply(params, jnp.ones((4, 3)))
    with pytest.raises(ValueError, match="more than one value per channel"):
        layer.apply(params, jnp.ones((1, 3)), state=nn.initial_state(layer, (1, 3)), train=True)
    with pytest.raises(ValueError, match="momentum"):
        nn.batch_norm(momentum=1.5)
    with pytest.raises(ValueError, match="num_groups=4 must divide the 6 channels"):
        nn.group_norm(4).init(KEY, (2, 6))
    with pytest.raises(ValueError, match="with 3 channels"):
        layer.apply(params, jnp.ones((4, 5)), state=nn.initial_state(layer, (4, 3)))
