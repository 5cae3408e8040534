"""Scan over layers: scanned transformer_lm equals the unrolled one for converted params."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn


def _models(depth, dropout=0.0, remat=False):
    kw = dict(num_heads=2, depth=depth, max_len=8, dropout=dropout)
    return nn.transformer_lm(11, 8, **kw), nn.transformer_lm(
        11, 8, scan_layers=True, remat=remat, **kw
    )


@pytest.mark.parametrize("remat", [False, True])
def test_scanned_logits_and_grads_equal_unrolled(remat):
    unrolled, scanned = _models(3, dropout=0.1, remat=remat)
    key = jax.random.key(1401)
    ids = jax.random.randint(jax.random.key(1402), (2, 8), 0, 11)
    mask = jnp.array([[True] * 8, [True] * 5 + [False] * 3])
    params, _ = unrolled.init(key, ids.shape)
    sparams, _ = scanned.init(key, ids.shape)
    stacked = nn.stack_layers(params, 3)
    for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(sparams), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    dkey = jax.random.key(1403)

    def loss(model, p):
        out = model.apply(p, ids, mask=mask, key=dkey, train=True)
        return jnp.mean(jnp.where(mask[..., None], out, 0.0) ** 2)

    # Jitted: op-by-op dispatch of a 3-block transformer's gradient is slower than compiling.
    lu, gu = jax.jit(jax.value_and_grad(lambda p: loss(unrolled, p)))(params)
    ls, gs = jax.jit(jax.value_and_grad(lambda p: loss(scanned, p)))(stacked)
    np.testing.assert_allclose(float(ls), float(lu), rtol=1e-5)
    gs_un = nn.unstack_layers(gs)
    for a, b in zip(jax.tree.leaves(gs_un), jax.tree.leaves(gu), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_converters_round_trip_and_errors():
    unrolled, _ = _models(2)
    params, _ = unrolled.init(jax.random.key(1404), (1, 4))
    back = nn.unstack_layers(nn.stack_layers(params, 2))
    assert jax.tree.structure(back) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="depth"):
        nn.stack_layers(params, 3)
    with pytest.raises(ValueError, match="stacked layout"):
        nn.unstack_layers(params)
    with pytest.raises(ValueError, match="unrolled layout"):
        nn.stack_layers(nn.stack_layers(params, 2), 2)
    with pytest.raises(ValueError, match="depth"):
        nn.repeat(nn.dense(3), 0)


def test_scanned_depth_12_compiles_one_body():
    # Shapes only (eval_shape): lowering needs no parameter values.
    _, scanned = _models(12)
    params = jax.eval_shape(lambda k: scanned.init(k, (1, 8))[0], jax.random.key(1405))
    ids = jnp.zeros((1, 8), jnp.int32)
    hlo = jax.jit(scanned.apply).lower(params, ids).as_text()
    _, scanned2 = _models(2)
    p2 = jax.eval_shape(lambda k: scanned2.init(k, (1, 8))[0], jax.random.key(1406))
    hlo2 = jax.jit(scanned2.apply).lower(p2, ids).as_text()
    assert hlo.count("stablehlo.while") == 1
    assert hlo.count("dot_general") == hlo2.count("dot_general")


def test_remat_without_scan_layers_is_refused():
    with pytest.raises(ValueError, match=r"remat=True needs scan_layers=True"):
        nn.transformer_lm(11, 8, num_heads=2, depth=2, max_len=4, remat=True)


@pytest.mark.parametrize(("kwargs", "recomputes"), [({}, False), ({"remat": True}, True)])
def test_repeat_recomputes_activations_only_when_asked(kwargs, recomputes):
    # remat is off by default (memory for speed, like jax.checkpoint's absence); asked for,
    # the backward pass holds a remat'd body.
    layer = nn.repeat(nn.dense(4), 3, **kwargs)
    params, _ = layer.init(jax.random.PRNGKey(0), (2, 4))
    x = jnp.ones((2, 4))
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda p: layer.apply(p, x).sum()))(params))
    assert ("remat" in jaxpr) == recomputes
