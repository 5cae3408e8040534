"""The Layer API: serial naming, key splitting, shape composition, parallel, residual,
activation and flatten layers, and the errors for wrong params and wrong layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.activations import relu, tanh
from funcnn.nn.core import as_shape, child_keys, get_child, split_key

KEY = jax.random.key(0)


def test_serial_names_children_by_position_and_composes_shapes():
    model = nn.serial(nn.dense(5), nn.activation(relu), nn.dense(2), nn.activation(tanh))
    params, out = model.init(KEY, (-1, 3))
    assert list(params) == ["dense_0", "relu_1", "dense_2", "tanh_3"]
    assert out == (-1, 2)
    assert params["dense_0"]["w"].shape == (3, 5) and params["dense_2"]["w"].shape == (5, 2)
    assert params["relu_1"] == {} and params["tanh_3"] == {}


def test_serial_apply_is_the_composition():
    model = nn.serial(nn.dense(4), nn.activation(relu), nn.dense(2))
    params, _ = model.init(KEY, (3,))
    x = np.random.default_rng(0).normal(size=(6, 3))
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h = np.maximum(x @ p["dense_0"]["w"] + p["dense_0"]["b"], 0)
    expected = h @ p["dense_2"]["w"] + p["dense_2"]["b"]
    y = model.apply(params, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_serial_splits_init_key_one_per_child():
    layer = nn.dense(3)
    params, _ = nn.serial(layer, layer).init(KEY, (3,))
    k0, k1 = jax.random.split(KEY, 2)
    np.testing.assert_array_equal(params["dense_0"]["w"], layer.init(k0, (3,))[0]["w"])
    np.testing.assert_array_equal(params["dense_1"]["w"], layer.init(k1, (3,))[0]["w"])
    assert not np.array_equal(params["dense_0"]["w"], params["dense_1"]["w"])


def test_serial_splits_apply_key_one_per_child():
    drop = nn.dropout(0.5)
    model = nn.serial(drop, drop)
    x = jnp.ones((200,))
    k0, k1 = jax.random.split(KEY, 2)
    expected = drop.apply({}, drop.apply({}, x, key=k0, train=True), key=k1, train=True)
    y = model.apply({"dropout_0": {}, "dropout_1": {}}, x, key=KEY, train=True)
    np.testing.assert_array_equal(y, expected)
    # Independent masks: two drops of 1/2 keep ~1/4 of the units, not 1/2.
    assert 0.15 < float(jnp.mean(y != 0)) < 0.35
    # No key, no training: the whole stack is the identity.
    np.testing.assert_array_equal(model.apply({"dropout_0": {}, "dropout_1": {}}, x), x)


def test_helpers():
    assert child_keys([nn.dense(1), nn.activation(relu)]) == ["dense_0", "relu_1"]
    assert split_key(None, 3) == [None, None, None]
    assert len(split_key(KEY, 3)) == 3
    assert as_shape([-1, 4]) == (-1, 4)
    for bad in ([0, 3], [2, -2], [2.0, 3]):
        with pytest.raises(ValueError, match="in_shape"):
            as_shape(bad)
    with pytest.raises(TypeError, match="sequence"):
        as_shape(5)


def test_missing_params_is_a_key_error_listing_what_exists():
    model = nn.serial(nn.dense(2), nn.activation(relu))
    with pytest.raises(KeyError, match=r"'dense_0'.*\['relu_1'\]"):
        model.apply({"relu_1": {}}, jnp.ones(3))
    with pytest.raises(KeyError, match="'dense_0'"):
        get_child([], "dense_0", "serial")


def test_containers_reject_non_layers_and_empty():
    with pytest.raises(TypeError, match=r"nn.activation\(fn\)"):
        nn.serial(nn.dense(2), relu)
    with pytest.raises(ValueError, match="at least one layer"):
        nn.serial()
    with pytest.raises(ValueError, match="at least one layer"):
        nn.parallel()


def test_parallel_fans_out_and_concatenates_or_sums():
    model = nn.parallel(nn.dense(2), nn.activation(tanh), nn.dense(4))
    params, shape = model.init(KEY, (-1, 3))
    assert list(params) == ["dense_0", "tanh_1", "dense_2"]
    assert shape == (-1, 9)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)), jnp.float32)
    y = model.apply(params, x)
    assert y.shape == (5, 9)
    x64, p = np.asarray(x, np.float64), jax.tree.map(np.asarray, params)
    p0, p2 = p["dense_0"], p["dense_2"]
    np.testing.assert_allclose(y[:, :2], x64 @ p0["w"] + p0["b"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[:, 2:5], np.tanh(x64), rtol=1e-6)
    np.testing.assert_allclose(y[:, 5:], x64 @ p2["w"] + p2["b"], rtol=1e-5, atol=1e-6)
    summed = nn.parallel(nn.dense(3), nn.activation(tanh), combine="sum")
    params, shape = summed.init(KEY, (-1, 3))
    assert shape == (-1, 3)
    q = jax.tree.map(np.asarray, params["dense_0"])
    np.testing.assert_allclose(
        summed.apply(params, x), x64 @ q["w"] + q["b"] + np.tanh(x64), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match=r"combine='sum'.*'dense_0' gives \(-1, 2\)"):
        nn.parallel(nn.dense(2), nn.dense(3), combine="sum").init(KEY, (-1, 3))
    with pytest.raises(ValueError, match="combine"):
        nn.parallel(nn.dense(2), combine="stack")


def test_residual_adds_input_and_checks_shape():
    inner = nn.dense(3)
    model = nn.residual(inner)
    params, out = model.init(KEY, (-1, 3))
    assert list(params) == ["dense_0"] and out == (-1, 3)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(4, 3)), jnp.float32)
    np.testing.assert_allclose(
        model.apply(params, x), x + inner.apply(params["dense_0"], x), rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"\(-1, 3\) to \(-1, 5\)"):
        nn.residual(nn.dense(5)).init(KEY, (-1, 3))


def test_activation_layer_naming_and_identity_shape():
    layer = nn.activation(jnp.tanh)
    assert layer.name == "tanh"
    assert nn.activation(relu, name="act").name == "act"
    params, out = layer.init(KEY, (-1, 7))
    assert params == {} and out == (-1, 7)
    with pytest.raises(TypeError, match="callable"):
        nn.activation(3)


def test_flatten():
    layer = nn.flatten()
    params, out = layer.init(KEY, (-1, 2, 3))
    assert params == {} and out == (-1, 6)
    x = jnp.arange(24.0).reshape(4, 2, 3)
    np.testing.assert_array_equal(layer.apply({}, x), np.arange(24.0).reshape(4, 6))
    with pytest.raises(ValueError, match="rank"):
        layer.init(KEY, (5,))
    with pytest.raises(ValueError, match="known"):
        layer.init(KEY, (-1, -1, 3))
    with pytest.raises(ValueError, match="rank"):
        layer.apply({}, jnp.ones(3))


def test_serial_model_jits_with_batch_agnostic_apply():
    model = nn.mlp([3, 4, 2])
    params, _ = model.init(KEY, (-1, 3))
    apply = jax.jit(model.apply)
    for shape in [(3,), (5, 3), (2, 5, 3)]:
        assert apply(params, jnp.ones(shape)).shape == (*shape[:-1], 2)


def _spy(seen, name="spy"):
    """A per-step layer that records what its container passed it."""

    def init(key, in_shape):
        return {}, tuple(in_shape)

    def apply(params, x, *, mask=None, key=None, train=False):
        seen.append((mask, key, train))
        return x

    return nn.Layer(init, apply, name)


def test_containers_forward_mask_train_and_split_keys():
    seen = []
    mask = jnp.asarray([[True, False]])
    x = jnp.ones((1, 2, 3))
    for model in (
        nn.serial(_spy(seen), _spy(seen)),
        nn.parallel(_spy(seen), _spy(seen), combine="sum"),
    ):
        seen.clear()
        params, _ = model.init(KEY, x.shape)
        model.apply(params, x, mask=mask, key=KEY, train=True)
        assert [m is mask for m, _, _ in seen] == [True, True]
        assert [t for _, _, t in seen] == [True, True]
        k0, k1 = jax.random.split(KEY)
        np.testing.assert_array_equal(jax.random.key_data(seen[0][1]), jax.random.key_data(k0))
        np.testing.assert_array_equal(jax.random.key_data(seen[1][1]), jax.random.key_data(k1))
    seen.clear()
    nn.residual(_spy(seen)).apply({"spy_0": {}}, x, mask=mask, train=True)
    assert seen[0][0] is mask and seen[0][2] is True


def test_serial_names_the_child_whose_out_shape_is_not_a_shape():
    def init(key, in_shape):
        return {}, (tuple(in_shape), (4, 32))  # a nested (ys, carry)-style out-shape

    nested = nn.Layer(init, lambda params, x, **kw: x, "nested")
    with pytest.raises(TypeError, match=r"child 'nested_1'.*not a shape: element 0"):
        nn.serial(nn.dense(3), nested).init(KEY, (4, 3))


def test_flatten_zeroes_padded_steps():
    x = jnp.arange(12.0).reshape(1, 4, 3)
    mask = jnp.asarray([[1, 1, 0, 0]])  # an integer 0/1 mask is converted
    y = nn.flatten().apply({}, x, mask=mask)
    np.testing.assert_array_equal(y[0, :6], np.arange(6.0))
    np.testing.assert_array_equal(y[0, 6:], np.zeros(6))
    with pytest.raises(TypeError, match=r"mask.dtype=float32"):
        nn.flatten().apply({}, x, mask=jnp.ones((1, 4)))


def test_flatten_accepts_rank_two_and_rejects_rank_one():
    # rank 2 is the smallest valid input (B, d) → (B, d); rank 1 has no feature axis.
    layer = nn.flatten()
    params, out_shape = layer.init(jax.random.PRNGKey(0), (-1, 7))
    assert params == {} and tuple(out_shape) == (-1, 7)
    x = np.arange(14.0).reshape(2, 7)
    np.testing.assert_array_equal(layer.apply(params, jnp.asarray(x)), x)
    with pytest.raises(ValueError, match=r"rank ≥ 2"):
        layer.init(jax.random.PRNGKey(0), (7,))


# ---------------------------------------------------------------------------- state


def _stateful_zoo():
    """Every stateful and stateless layer kind, composed in one serial over (B, H, W, C)."""
    from funcnn.activations import relu as relu_
    from funcnn.scale.precision import FULL_FLOAT32, with_policy

    return [
        nn.conv2d(4, 3),
        nn.batch_norm(),
        nn.activation(relu_),
        nn.dropout2d(0.25),
        nn.residual(nn.serial(nn.conv2d(4, 3, feature_group_count=4), nn.batch_norm())),
        nn.parallel(nn.batch_norm(), nn.conv2d(2, 1), combine="concat"),
        nn.max_pool2d(2, strides=1, padding="SAME"),
        nn.group_norm(2),
        nn.repeat(nn.residual(nn.batch_norm(momentum=0.5)), 2),
        nn.repeat(nn.residual(nn.batch_norm()), 2, scan=False),
        with_policy(nn.batch_norm(), FULL_FLOAT32),
        nn.instance_norm(),
        nn.conv_transpose2d(3, 2, strides=2),
        nn.layer_norm(),
        nn.avg_pool2d(2),
        nn.global_avg_pool2d(),
        nn.dense(5),
        nn.dropout(0.1),
    ]


def _manual(layers, params, state, x, key, train):
    """The composition written out: child i sees child i−1's output, its own params/state."""
    new = {}
    for (k, layer), layer_key in zip(
        zip(child_keys(layers), layers, strict=True),
        jax.random.split(key, len(layers)),
        strict=True,
    ):
        x, new[k] = nn.apply_with_state(layer, params[k], x, state[k], key=layer_key, train=train)
    return x, new


def test_serial_threads_every_child_state_and_eval_leaves_it_unchanged():
    layers = _stateful_zoo()
    model = nn.serial(*layers)
    in_shape = (3, 5, 5, 2)
    params, out_shape = model.init(KEY, in_shape)
    state = nn.initial_state(model, in_shape)
    assert nn.is_stateful(model) and list(state) == list(params)
    stateful = [
        k for k, layer in zip(child_keys(layers), layers, strict=True) if nn.is_stateful(layer)
    ]
    assert stateful == [
        "batch_norm_1",
        "residual_4",
        "parallel_5",
        "repeat(residual)_8",
        "repeat(residual)_9",
        "batch_norm_10",
    ]
    assert state["repeat(residual)_8"]["batch_norm_0"]["mean"].shape == (2, 6)  # stacked
    assert set(state["repeat(residual)_9"]) == {"layer_0", "layer_1"}
    x = jnp.asarray(np.random.default_rng(0).normal(1.0, 2.0, size=in_shape), jnp.float32)

    run = jax.jit(lambda p, s, x, k: model.apply(p, x, state=s, key=k, train=True))
    y, new_state = run(params, state, x, KEY)
    assert y.shape == out_shape
    want_y, want_state = jax.jit(lambda p, s, x, k: _manual(layers, p, s, x, k, True))(
        params, state, x, KEY
    )
    np.testing.assert_allclose(y, want_y, rtol=1e-6, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), new_state, want_state
    )
    # Every running statistic moved (train=True), stateless children kept {}.
    for k in stateful:
        moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), new_state[k], state[k])
        assert all(jax.tree.leaves(moved)), k
    assert all(new_state[k] == {} for k in new_state if k not in stateful)

    y_eval, same = jax.jit(lambda p, s, x: model.apply(p, x, state=s))(params, new_state, x)
    jax.tree.map(np.testing.assert_array_equal, same, new_state)  # train=False: unchanged
    # Eval normalizes with the running statistics, so it differs from the batch-statistics run.
    assert np.all(np.isfinite(y_eval)) and not np.allclose(y_eval, y, rtol=1e-2, atol=0)
    with pytest.raises(ValueError, match=r"nn\.initial_state"):
        model.apply(params, x)


def test_stateless_containers_keep_the_one_array_contract():
    model = nn.serial(nn.conv2d(2, 3), nn.group_norm(1), nn.global_max_pool2d())
    assert not nn.is_stateful(model) and model.init_state is None
    params, _ = model.init(KEY, (1, 4, 4, 1))
    y = model.apply(params, jnp.ones((1, 4, 4, 1)))
    assert isinstance(y, jax.Array) and y.shape == (1, 2)
    assert nn.initial_state(model, (1, 4, 4, 1)) == {}
    y2, state = nn.apply_with_state(model, params, jnp.ones((1, 4, 4, 1)), {})
    np.testing.assert_array_equal(y2, y)
    assert state == {}


def test_repeat_scanned_and_unrolled_agree_with_state():
    block = nn.residual(nn.serial(nn.dense(3), nn.batch_norm()))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(6, 3)), jnp.float32)
    outs = []
    for scan in (True, False):
        model = nn.repeat(block, 3, scan=scan)
        params, _ = model.init(KEY, x.shape)
        state = nn.initial_state(model, x.shape)
        outs.append(model.apply(params, x, state=state, train=True))
    (y_scan, s_scan), (y_loop, s_loop) = outs
    np.testing.assert_allclose(y_scan, y_loop, rtol=1e-6)
    for i in range(3):
        np.testing.assert_allclose(
            s_scan["serial_0"]["batch_norm_1"]["mean"][i],
            s_loop[f"layer_{i}"]["serial_0"]["batch_norm_1"]["mean"],
            rtol=1e-6,
        )


def test_reshape_keeps_the_batch_axis_and_refuses_a_size_mismatch():
    layer = nn.reshape((2, 3, 1))
    params, out = layer.init(KEY, (-1, 6))
    assert params == {} and out == (-1, 2, 3, 1)
    x = np.arange(12.0).reshape(2, 6)
    np.testing.assert_array_equal(layer.apply({}, jnp.asarray(x)), x.reshape(2, 2, 3, 1))
    with pytest.raises(ValueError, match="must multiply to 6"):
        layer.init(KEY, (-1, 7))
    with pytest.raises(ValueError, match="known positive sizes"):
        nn.reshape((-1, 3))


def test_serial_carries_the_mask_past_per_step_layers_and_ends_it_at_a_pool():
    # dense → tanh → global mean over real steps → dense, against float64 NumPy: the pool
    # must still see the mask after two per-step layers, and the head (after the time axis
    # is gone) must not be handed a mask that no longer fits.
    model = nn.serial(nn.dense(3), nn.activation(tanh), nn.global_avg_pool(), nn.dense(2))
    params, _ = model.init(jax.random.key(0), (2, 5, 4))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 4)).astype(np.float32)
    mask = np.arange(5)[None, :] < np.array([[5], [2]])
    x[~mask] = np.nan  # padding holds garbage; it must change nothing
    got = np.asarray(model.apply(params, jnp.asarray(x), mask=jnp.asarray(mask)))
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h = np.tanh(np.where(mask[..., None], x, 0.0) @ p["dense_0"]["w"] + p["dense_0"]["b"])
    pooled = (h * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    want = pooled @ p["dense_3"]["w"] + p["dense_3"]["b"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", [nn.dense(3), nn.layer_norm(), nn.activation(tanh)])
def test_a_per_step_layer_names_the_mask_shape_it_expects(layer):
    params, _ = layer.init(jax.random.key(0), (2, 3, 4))
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\) .* got mask.shape=\(3,\)"):
        layer.apply(params, jnp.ones((2, 3, 4)), mask=jnp.ones(3, bool))
