"""dense / perceptron / mlp against float64 NumPy math; shapes, naming, and input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import activations, initializers, nn
from funcnn.reference import functional as ref

KEY = jax.random.key(0)


def np_dense(p, x):
    return np.asarray(x, np.float64) @ np.asarray(p["w"], np.float64) + np.asarray(
        p["b"], np.float64
    )


def test_dense_init_layout_and_default_initializers():
    params, out = nn.dense(7).init(KEY, (-1, 300))
    assert out == (-1, 7)
    assert params["w"].shape == (300, 7) and params["b"].shape == (7,)
    assert params["w"].dtype == jnp.float32
    np.testing.assert_array_equal(params["b"], 0.0)
    # lecun_normal: Var(w) = 1/fan_in (2100 samples: loose 25% band still rejects he/glorot-1/300)
    assert abs(float(jnp.var(params["w"])) * 300 - 1.0) < 0.25


@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
def test_dense_matches_numpy_over_any_leading_dims(lead):
    layer = nn.dense(4)
    params, out = layer.init(KEY, (*lead, 3))
    params["b"] = jnp.array([0.5, -1.0, 2.0, 0.0])
    x = np.random.default_rng(0).normal(size=(*lead, 3)).astype(np.float32)
    y = layer.apply(params, jnp.asarray(x))
    assert y.shape == (*lead, 4) == out
    np.testing.assert_allclose(y, np_dense(params, x), rtol=1e-5, atol=1e-6)


def test_dense_without_bias_and_custom_init():
    params, _ = nn.dense(2, use_bias=False, w_init=initializers.ones()).init(KEY, (3,))
    assert set(params) == {"w"}
    np.testing.assert_allclose(nn.dense(2, use_bias=False).apply(params, jnp.ones(3)), [3.0, 3.0])


def test_dense_gradients_match_closed_form():
    # ∂/∂w Σ y·c = xᵀc,  ∂/∂b = Σ_batch c,  ∂/∂x = c·wᵀ
    rng = np.random.default_rng(1)
    layer = nn.dense(3)
    with jax.enable_x64(True):
        params = {"w": jnp.asarray(rng.normal(size=(2, 3))), "b": jnp.asarray(rng.normal(size=3))}
        x, c = rng.normal(size=(4, 2)), rng.normal(size=(4, 3))
        gp, gx = jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) * c), argnums=(0, 1))(
            params, jnp.asarray(x)
        )
    np.testing.assert_allclose(gp["w"], x.T @ c, rtol=1e-12)
    np.testing.assert_allclose(gp["b"], c.sum(0), rtol=1e-12)
    np.testing.assert_allclose(gx, c @ np.asarray(params["w"]).T, rtol=1e-12)


@pytest.mark.parametrize("lead", [(2, 5), (2, 1, 3), (0, 4)])
def test_dense_over_leading_dims_matches_closed_form_in_float64(lead):
    # x (..., in) is multiplied as rows (N, in): y, ∂/∂w = Σ_rows xᵀc, ∂/∂b, ∂/∂x = c·wᵀ per row
    rng = np.random.default_rng(3)
    layer = nn.dense(3)
    with jax.enable_x64(True):
        params = {"w": jnp.asarray(rng.normal(size=(2, 3))), "b": jnp.asarray(rng.normal(size=3))}
        x, c = rng.normal(size=(*lead, 2)), rng.normal(size=(*lead, 3))
        y = layer.apply(params, jnp.asarray(x))
        gp, gx = jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) * c), argnums=(0, 1))(
            params, jnp.asarray(x)
        )
    w, b = np.asarray(params["w"]), np.asarray(params["b"])
    rows, c_rows = x.reshape(-1, 2), c.reshape(-1, 3)
    assert y.shape == (*lead, 3) and y.dtype == jnp.float64
    np.testing.assert_allclose(y, np.einsum("...i,io->...o", x, w) + b, rtol=1e-12)
    np.testing.assert_allclose(gp["w"], rows.T @ c_rows, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gp["b"], c_rows.sum(0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gx, np.einsum("...o,io->...i", c, w), rtol=1e-12)


def test_dense_input_errors_name_shapes():
    layer = nn.dense(4)
    params, _ = layer.init(KEY, (-1, 3))
    with pytest.raises(ValueError, match=r"x.shape=\(2, 5\).*w.shape=\(3, 4\)"):
        layer.apply(params, jnp.ones((2, 5)))
    with pytest.raises(TypeError, match="int32"):
        layer.apply(params, jnp.ones((2, 3), jnp.int32))
    with pytest.raises(KeyError, match="'b'"):
        layer.apply({"w": params["w"]}, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="known feature size"):
        layer.init(KEY, (2, -1))
    with pytest.raises(ValueError, match="features"):
        nn.dense(0)
    with pytest.raises(TypeError, match="features"):
        nn.dense(2.5)


def test_perceptron_is_single_sigmoid_neuron():
    layer = nn.perceptron()
    params, out = layer.init(KEY, (-1, 3))
    assert out == (-1, 1) and params["w"].shape == (3, 1) and params["b"].shape == (1,)
    x = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(
        layer.apply(params, jnp.asarray(x)), ref.sigmoid(np_dense(params, x)), rtol=1e-5
    )


def test_step_perceptron_computes_and_gate():
    layer = nn.perceptron(activations.step)
    params = {"w": jnp.array([[1.0], [1.0]]), "b": jnp.array([-1.5])}
    x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(layer.apply(params, x)[:, 0], [0.0, 0.0, 0.0, 1.0])


def test_mlp_param_names_shapes_and_no_final_activation():
    model = nn.mlp([4, 8, 6, 3])
    params, out = model.init(KEY, (-1, 4))
    assert out == (-1, 3)
    assert list(params) == ["dense_0", "relu_1", "dense_2", "relu_3", "dense_4"]
    assert params["relu_1"] == {} and params["dense_2"]["w"].shape == (8, 6)
    x = np.random.default_rng(3).normal(size=(2, 5, 4)).astype(np.float32)
    h = ref.relu(np_dense(params["dense_0"], x))
    h = ref.relu(np_dense(params["dense_2"], h))
    expected = np_dense(params["dense_4"], h)  # last layer linear: negative logits survive
    y = model.apply(params, jnp.asarray(x))
    assert y.shape == (2, 5, 3) and (np.asarray(y) < 0).any()
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_mlp_with_layer_norm_and_dropout_layout():
    model = nn.mlp([3, 5, 2], activations.tanh, dropout=0.5, layer_norm=True)
    params, _ = model.init(KEY, (3,))
    assert list(params) == ["dense_0", "layer_norm_1", "tanh_2", "dropout_3", "dense_4"]
    x = jnp.ones((4, 3))
    # eval is deterministic; train drops some hidden units and needs a key
    np.testing.assert_array_equal(model.apply(params, x), model.apply(params, x, key=KEY))
    assert not np.allclose(model.apply(params, x), model.apply(params, x, key=KEY, train=True))
    with pytest.raises(ValueError, match="key"):
        model.apply(params, x, train=True)


def test_mlp_validates_sizes_and_input_width():
    for bad in ([4, 0, 2], [4, -3, 2], [5]):
        with pytest.raises(ValueError, match="sizes"):
            nn.mlp(bad)
    with pytest.raises(TypeError, match="sizes"):
        nn.mlp([4, 2.0, 1])
    with pytest.raises(ValueError, match=r"sizes\[0\]=4.*\(-1, 5\)"):
        nn.mlp([4, 2]).init(KEY, (-1, 5))
    with pytest.raises(ValueError, match="dropout"):
        nn.mlp([4, 2, 1], dropout=1.5)


# ---------------------------------------------------------------- transformer MLPs
def _projected_gradient_check(apply, params, x, reference, rng):
    """Values ≤ 1e-10 and ∇·v (params and x together) ≤ 1e-10 against the complex step."""
    from funcnn.reference.numerical import complex_step

    cotangent = rng.normal(size=np.shape(reference(params, x)))
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        np.testing.assert_allclose(
            np.asarray(apply(p64, jnp.asarray(x))), reference(params, x), rtol=1e-10, atol=1e-12
        )
        grads = jax.grad(lambda p, x: jnp.sum(apply(p, x) * cotangent), argnums=(0, 1))(
            p64, jnp.asarray(x)
        )
    tree = {"p": params, "x": x}
    direction = jax.tree.map(lambda a: rng.normal(size=np.shape(a)), tree)
    slope = complex_step(lambda t: np.sum(reference(t["p"], t["x"]) * cotangent), tree, direction)
    got = sum(
        float(np.sum(np.asarray(g) * d))
        for g, d in zip(jax.tree.leaves(list(grads)), jax.tree.leaves(direction), strict=True)
    )
    assert abs(got - slope) <= 1e-10 * abs(slope)


@pytest.mark.parametrize(
    ("activation", "gated", "use_bias"),
    [
        ("silu", True, False),  # SwiGLU (Llama)
        ("gelu", True, True),  # GeGLU
        ("relu2", False, False),  # ReLU² (Primer)
        ("gelu_tanh", False, True),  # GPT-2's MLP
    ],
)
def test_feed_forward_matches_reference(activation, gated, use_bias, rng):
    from funcnn.reference import feed_forward_reference

    layer = nn.feed_forward(5, 7, activation=activation, gated=gated, use_bias=use_bias)
    params, shape = layer.init(KEY, (2, 3, 5))
    assert shape == (2, 3, 5)
    if gated:
        assert params["gate"]["w"].shape == params["up"]["w"].shape == (5, 7)
        assert params["down"]["w"].shape == (7, 5)
    assert ("b" in params["gate" if gated else "dense_0"]) == use_bias
    params = jax.tree.map(lambda a: np.asarray(a) + 0.3 * rng.normal(size=a.shape), params)
    _projected_gradient_check(
        layer.apply,
        params,
        rng.normal(size=(2, 3, 5)),
        lambda p, x: feed_forward_reference(x, p, activation, gated),
        rng,
    )


def test_feed_forward_refuses_an_unknown_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        nn.feed_forward(4, 8, activation="swish")
