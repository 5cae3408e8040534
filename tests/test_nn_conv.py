"""conv1d, conv2d, conv_transpose2d and 1-D pooling against loop-by-loop float64 NumPy
references (values, and gradients by the complex step); causality; errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.nn import conv
from funcnn.reference import (
    complex_step,
    conv1d_reference,
    conv2d_reference,
    conv_transpose2d_reference,
    pool1d_reference,
)

KEY = jax.random.key(0)
X = np.random.default_rng(0).normal(size=(2, 10, 3))


@pytest.mark.parametrize(
    ("padding", "stride", "dilation"),
    list(itertools.product(["SAME", "VALID", "CAUSAL"], [1, 2, 3], [1, 2])),
)
def test_conv1d_matches_reference(padding, stride, dilation):
    layer = nn.conv1d(4, 3, padding=padding, stride=stride, dilation=dilation)
    params, out_shape = layer.init(KEY, (2, 10, 3))
    params["b"] = jnp.arange(4.0)  # a non-zero bias, so a dropped bias would show
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        got = layer.apply(p64, jnp.asarray(X))
        expected = conv1d_reference(
            X, params["w"], params["b"], padding=padding, stride=stride, dilation=dilation
        )
        assert got.shape == expected.shape == out_shape
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("padding", "causal"), [("CAUSAL", True), ("SAME", False)])
def test_causal_conv_output_never_depends_on_the_future(padding, causal):
    layer = nn.conv1d(2, 3, padding=padding, dilation=2)
    params, _ = layer.init(KEY, (1, 7, 3))
    jac = jax.jacrev(lambda x: layer.apply(params, x[None])[0])(jnp.asarray(X[0, :7], jnp.float32))
    influence = np.abs(np.asarray(jac)).sum(axis=(1, 3))  # (T_out, T_in)
    future = np.triu(np.ones_like(influence, bool), k=1)
    assert np.all(influence[future] == 0) == causal
    assert np.all(np.diag(influence) > 0)


def test_conv1d_extra_leading_axes_match_batch_rows():
    layer = nn.conv1d(4, 3, padding="CAUSAL", stride=2)
    params, _ = layer.init(KEY, (2, 10, 3))
    batch = layer.apply(params, jnp.asarray(X, jnp.float32))
    nested = layer.apply(params, jnp.asarray(X[None], jnp.float32))  # (1, B, T, C)
    np.testing.assert_allclose(nested[0], batch, rtol=1e-6, atol=1e-6)


def test_conv1d_errors_name_the_problem():
    layer = nn.conv1d(4, 5, padding="VALID")
    params, _ = layer.init(KEY, (2, 10, 3))
    with pytest.raises(ValueError, match="2 channels but w expects 3"):
        layer.apply(params, jnp.zeros((2, 10, 2)))
    with pytest.raises(ValueError, match="VALID padding needs at least 5"):
        layer.apply(params, jnp.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="padding must be one of"):
        nn.conv1d(4, 3, padding="FULL")
    with pytest.raises(ValueError, match="dilation"):
        nn.conv1d(4, 3, dilation=0)
    with pytest.raises(TypeError, match="floating"):
        layer.apply(params, jnp.zeros((2, 10, 3), jnp.int32))


@pytest.mark.parametrize(("kind", "stride"), [("max", 2), ("avg", 3), ("avg", 1)])
def test_window_pooling_matches_reference(kind, stride):
    layer = (nn.max_pool1d if kind == "max" else nn.avg_pool1d)(3, stride=stride)
    _, out_shape = layer.init(KEY, (2, 10, 3))
    got = layer.apply({}, jnp.asarray(X, jnp.float32))
    assert got.shape == out_shape
    np.testing.assert_allclose(got, pool1d_reference(X, 3, stride, kind), rtol=1e-6, atol=1e-6)


def test_same_avg_pooling_does_not_count_padding():
    layer = nn.avg_pool1d(3, stride=1, padding="SAME")
    got = np.asarray(layer.apply({}, jnp.ones((1, 4, 1))))
    np.testing.assert_allclose(got, np.ones((1, 4, 1)), rtol=1e-6)


def test_window_max_pool_never_picks_a_masked_step():
    # Window of 2, stride 2: [3, 99] with 99 masked pools to 3; a fully masked window is 0.
    x = jnp.asarray([[3.0, 99.0, -5.0, -7.0, 1.0, 2.0]])[..., None]  # (1, 6, 1)
    mask = jnp.asarray([[True, False, True, True, False, False]])
    got = np.asarray(nn.max_pool1d(2).apply({}, x, mask=mask))[0, :, 0]
    np.testing.assert_array_equal(got, [3.0, -5.0, 0.0])


def test_conv_output_length_defaults_to_stride_one_same_padding():
    # T_out = ⌊(T + P − W)/s⌋ + 1 with SAME's P = W − 1 and s = 1: the length is kept.
    assert conv.conv_output_length(10, 3) == 10
    assert conv.conv_output_length(10, 3, padding="VALID") == 8
    assert conv.conv_output_length(10, 3, stride=2) == 5


def test_global_pools_honour_mask():
    x = jnp.asarray(X, jnp.float32)
    mask = jnp.asarray([[True] * 4 + [False] * 6, [False] * 10])
    avg = np.asarray(nn.global_avg_pool().apply({}, x, mask=mask))
    mx = np.asarray(nn.global_max_pool().apply({}, x, mask=mask))
    np.testing.assert_allclose(avg[0], X[0, :4].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(mx[0], X[0, :4].max(axis=0), rtol=1e-6)
    assert np.all(avg[1] == 0) and np.all(mx[1] == 0)
    with pytest.raises(ValueError, match="mask must have shape"):
        nn.global_max_pool().apply({}, x, mask=mask[:, :5])


# ---------------------------------------------------------------------------- conv1d groups, rank


def test_conv1d_groups_and_no_bias_match_reference():
    # Grouped conv = each group's channels convolved alone, then concatenated.
    layer = nn.conv1d(4, 3, feature_group_count=2, use_bias=False)
    params, _ = layer.init(KEY, (2, 10, 4))
    assert set(params) == {"w"} and params["w"].shape == (3, 2, 4)
    x = np.random.default_rng(1).normal(size=(2, 10, 4))
    with jax.enable_x64(True):
        got = layer.apply(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params), x)
        w = np.asarray(params["w"], np.float64)
        zero = np.zeros(2)
        expected = np.concatenate(
            [
                conv1d_reference(x[..., 2 * g : 2 * g + 2], w[..., 2 * g : 2 * g + 2], zero)
                for g in range(2)
            ],
            axis=-1,
        )
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_conv1d_refuses_the_ambiguous_rank_two_shape():
    # (4, 3) could be (B, C) or one unbatched (T, C): refused, naming (B, T, C).
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        nn.conv1d(8, 3).init(KEY, (4, 3))
    params, _ = nn.conv1d(8, 3).init(KEY, (1, 4, 3))
    with pytest.raises(ValueError, match="batch axis"):
        nn.conv1d(8, 3).apply(params, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="feature_group_count=2 must divide"):
        nn.conv1d(3, 3, feature_group_count=2).init(KEY, (1, 4, 4))


# ---------------------------------------------------------------------------- conv2d

PADDINGS_2D = ["SAME", "VALID", ((1, 0), (2, 1))]
STRIDES_2D, DILATIONS_2D = [1, (2, 1)], [1, (1, 2)]
GROUPS_2D = [(1, 3), (2, 4), (4, 4)]  # (feature_group_count, features): dense, grouped, depthwise
CONV2D_CASES = list(itertools.product(PADDINGS_2D, STRIDES_2D, DILATIONS_2D, GROUPS_2D))
TRANSPOSE_CASES = list(itertools.product(["SAME", "VALID", ((1, 0), (0, -1))], [1, (2, 3)], [1, 2]))
X2 = np.random.default_rng(2).normal(size=(1, 5, 4, 4))  # (B, H, W, C): tiny on purpose


def _conv2d_layer(padding, strides, dilation, groups):
    count, features = groups
    return nn.conv2d(
        features,
        (3, 2),
        strides=strides,
        padding=padding,
        dilation=dilation,
        feature_group_count=count,
    )


def _transpose_layer(padding, strides, dilation):
    return nn.conv_transpose2d(3, (3, 2), strides=strides, padding=padding, dilation=dilation)


@pytest.fixture(scope="module")
def runs():
    """Every conv2d and conv_transpose2d case at a random float64 point: its params, input,
    cotangent r, output y and the gradient of Σ r⊙y — all computed by ONE compiled program
    (compiled fast), since compiling ~50 small programs would dominate the suite's time."""
    rng = np.random.default_rng(0)
    cases = {str(("conv2d", *c)): (_conv2d_layer(*c), X2) for c in CONV2D_CASES}
    cases |= {str(("transpose", *c)): (_transpose_layer(*c), X2[:, :3]) for c in TRANSPOSE_CASES}
    with jax.enable_x64(True):
        inputs = {}
        for name, (layer, x) in cases.items():
            shapes = jax.eval_shape(lambda k, layer=layer, x=x: layer.init(k, x.shape)[0], KEY)
            params = jax.tree.map(lambda s: rng.normal(size=s.shape), shapes)
            out = jax.eval_shape(layer.apply, params, x)
            inputs[name] = {"params": params, "x": x, "r": rng.normal(size=out.shape)}

        def run(inputs):
            results = {}
            for name, (layer, _) in cases.items():
                tree = {"params": inputs[name]["params"], "x": inputs[name]["x"]}
                y, vjp = jax.vjp(lambda t, layer=layer: layer.apply(t["params"], t["x"]), tree)
                results[name] = (y, vjp(inputs[name]["r"])[0])
            return results

        compiled = jax.jit(run).lower(inputs).compile({"xla_backend_optimization_level": 0})
        results = jax.tree.map(np.asarray, compiled(inputs))
    return {name: (inputs[name], *results[name]) for name in cases}


def _check_values_and_gradient(run, reference, seed):
    """Values, and the gradient of L = Σ r⊙f(θ, x) along a random direction of (θ, x),
    against the float64 reference (its derivative by the complex step), ≤ 1e-10 relative."""
    inputs, y, grads = run
    tree = {"params": inputs["params"], "x": inputs["x"]}
    expected = reference(tree["params"], tree["x"])
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    rng = np.random.default_rng(seed)
    direction = jax.tree.map(lambda a: rng.normal(size=np.shape(a)), tree)
    along = sum(
        float(np.sum(g * v))
        for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True)
    )
    r = inputs["r"]
    exact = complex_step(lambda t: np.sum(r * reference(t["params"], t["x"])), tree, direction)
    assert abs(along - exact) <= 1e-10 * abs(exact), (along, exact)


@pytest.mark.parametrize("case", CONV2D_CASES, ids=str)
def test_conv2d_values_and_gradients_match_reference(runs, case):
    padding, strides, dilation, _ = case
    s, d = conv._pair(strides, "s"), conv._pair(dilation, "d")
    pads = conv.resolve_padding2d(padding, X2.shape[1:3], (3, 2), s, d)
    _, out_shape = _conv2d_layer(*case).init(KEY, X2.shape)
    assert runs[str(("conv2d", *case))][1].shape == out_shape

    def reference(p, x):
        return conv2d_reference(x, p["w"], p["b"], strides=s, padding=pads, dilation=d)

    _check_values_and_gradient(runs[str(("conv2d", *case))], reference, seed=1)


def test_conv2d_params_layout_and_torch_permutation():
    layer = nn.conv2d(6, (3, 2), feature_group_count=2, use_bias=False)
    params, out = layer.init(KEY, (-1, 5, 6, 4))
    assert set(params) == {"w"} and params["w"].shape == (3, 2, 2, 6)
    assert out == (-1, 5, 6, 6)
    # PyTorch keeps weight (F, C/G, kH, kW): w = weight.permute(2, 3, 1, 0); here a 1×1 check.
    torch_weight = np.arange(6 * 2).reshape(6, 2, 1, 1).astype(np.float64)
    w = torch_weight.transpose(2, 3, 1, 0)
    x = np.random.default_rng(3).normal(size=(1, 1, 1, 4))
    with jax.enable_x64(True):
        got = nn.conv2d(6, 1, feature_group_count=2, use_bias=False).apply({"w": w}, x)
    expected = [
        torch_weight[o, :, 0, 0] @ x[0, 0, 0, 2 * (o // 3) : 2 * (o // 3) + 2] for o in range(6)
    ]
    np.testing.assert_allclose(got[0, 0, 0], expected, rtol=1e-12)


def test_conv2d_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        nn.conv2d(3, 3).init(KEY, (5, 5, 2))
    params, _ = nn.conv2d(3, 3).init(KEY, (1, 5, 5, 2))
    with pytest.raises(ValueError, match="3 channels but w expects 2"):
        nn.conv2d(3, 3).apply(params, jnp.zeros((1, 5, 5, 3)))
    with pytest.raises(ValueError, match="fewer than the kernel's span 5"):
        nn.conv2d(3, 3, padding="VALID", dilation=2).init(KEY, (1, 4, 8, 2))
    with pytest.raises(ValueError, match="padding must be"):
        nn.conv2d(3, 3, padding=((1, 1),))
    with pytest.raises(ValueError, match="padding must be"):
        nn.conv2d(3, 3, padding=-1)
    with pytest.raises(TypeError, match="kernel_size"):
        nn.conv2d(3, (3, 3, 3))
    with pytest.raises(ValueError, match="feature_group_count=2 must divide"):
        nn.conv2d(3, 3, feature_group_count=2).init(KEY, (1, 5, 5, 4))


# ---------------------------------------------------------------------------- conv_transpose2d


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv_transpose2d_values_and_gradients_match_reference(runs, case):
    padding, strides, dilation = case
    s, d = conv._pair(strides, "s"), conv._pair(dilation, "d")
    crops = conv._transpose_crops(padding, (3, 2), s, d, "t")
    _, out_shape = _transpose_layer(*case).init(KEY, X2[:, :3].shape)
    assert runs[str(("transpose", *case))][1].shape == out_shape

    def reference(p, x):
        return conv_transpose2d_reference(x, p["w"], p["b"], strides=s, crops=crops, dilation=d)

    _check_values_and_gradient(runs[str(("transpose", *case))], reference, seed=2)


def test_conv_transpose2d_same_is_the_adjoint_of_conv2d_same():
    # ⟨conv2d(u), v⟩ = ⟨u, conv2dᵀ(v)⟩ with the kernel's in/out swapped: SAME maps H → H·s,
    # for kernels wider and narrower than the stride (odd and even total padding).
    rng = np.random.default_rng(5)
    with jax.enable_x64(True):
        for strides, kernel in [(2, (3, 4)), (3, (2, 1))]:
            u = rng.normal(size=(1, 3 * strides, 3 * strides, 2))
            v = rng.normal(size=(1, 3, 3, 3))
            w = rng.normal(size=(*kernel, 2, 3))  # conv2d: 2 → 3 channels
            conv_ = nn.conv2d(3, kernel, strides=strides, use_bias=False)
            forward = conv_.apply({"w": w}, jnp.asarray(u))
            back = nn.conv_transpose2d(2, kernel, strides=strides, use_bias=False).apply(
                {"w": w.transpose(0, 1, 3, 2)}, jnp.asarray(v)
            )
            assert back.shape == u.shape
            np.testing.assert_allclose(np.sum(forward * v), np.sum(u * back), rtol=1e-12)


def test_conv_transpose2d_output_size_rule():
    # H_out = (H − 1)·s + (k − 1)·δ + 1 − p_before − p_after; SAME gives H·s.
    for padding, expected in [("VALID", (9, 12)), ("SAME", (8, 12)), (((1, 2), (0, -1)), (6, 13))]:
        _, out = nn.conv_transpose2d(2, 3, strides=(2, 3), padding=padding).init(KEY, (1, 4, 4, 1))
        assert out[1:3] == expected, (padding, out)
    with pytest.raises(ValueError, match="crops the whole output"):
        nn.conv_transpose2d(2, 1, padding=((1, 0), (0, 0))).init(KEY, (1, 1, 1, 1))


@pytest.mark.parametrize("kind", ["conv1d", "conv2d", "conv_transpose2d"])
def test_padded_content_changes_neither_values_nor_gradients(kind):
    # Issue #24's rule for every mask-taking layer: padded entries are selected away first.
    if kind == "conv1d":
        layer, x = nn.conv1d(2, 3, padding="SAME"), np.asarray(X, np.float32)
    elif kind == "conv2d":
        layer, x = nn.conv2d(2, 3, feature_group_count=2), np.asarray(X2, np.float32)
    else:
        layer, x = nn.conv_transpose2d(2, 2, strides=2), np.asarray(X2, np.float32)
    mask = np.ones(x.shape[:-1], bool)
    mask[0, 3:] = False
    params, _ = layer.init(KEY, x.shape)

    @jax.jit
    def value_and_grad(x):
        f = lambda x: jnp.sum(jnp.sin(layer.apply(params, x, mask=jnp.asarray(mask))))
        return jax.value_and_grad(f)(x)

    clean = value_and_grad(np.where(mask[..., None], x, 0.0))
    for garbage in (np.nan, np.inf, 1e30):
        got = value_and_grad(np.where(mask[..., None], x, garbage))
        np.testing.assert_array_equal(got[0], clean[0])
        np.testing.assert_array_equal(got[1], clean[1])
