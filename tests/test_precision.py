"""Mixed precision: bf16 matmuls, f32 master params / grads / loss, and training still converges."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn, optim, train
from funcnn.nn.core import Layer, activation, serial
from funcnn.scale import precision


def linear(features: int, name: str = "dense") -> Layer:
    """A minimal y = x @ w + b layer, local to this test so it depends only on the Layer API."""

    def init(key, in_shape):
        w = jax.random.normal(key, (in_shape[-1], features)) / np.sqrt(in_shape[-1])
        return {"w": w, "b": jnp.zeros(features)}, (*in_shape[:-1], features)

    def apply(params, x, *, key=None, train=False):
        del key, train
        return x @ params["w"] + params["b"][None, :]  # (B, out)

    return Layer(init, apply, name)


NET = serial(linear(32), activation(jnp.tanh), linear(32), activation(jnp.tanh), linear(1))
MIXED = precision.with_policy(NET)


def make_data():
    # NumPy data: no eager JAX ops (each would compile) in the test's setup.
    x = np.random.default_rng(1).uniform(-2.0, 2.0, (256, 2)).astype(np.float32)
    y = np.sin(x[:, :1]) * np.cos(x[:, 1:])
    return x, y


@pytest.fixture(scope="module")
def params():
    return MIXED.init(jax.random.PRNGKey(0), (-1, 2))[0]


def mse_loss(net):
    def loss_fn(params, batch, key):
        del key
        x, y = batch
        pred = net.apply(params, x)
        return jnp.mean((pred - y) ** 2), {}

    return loss_fn


@pytest.fixture(scope="module")
def trained(params):
    data = make_data()
    params = jax.tree.map(jnp.copy, params)  # fit donates its state
    opt = optim.adam(1e-2)
    state = train.init_state(params, opt, jax.random.PRNGKey(0))
    initial = float(mse_loss(NET)(params, data, None)[0])
    state, history = train.fit(
        state, mse_loss(MIXED), opt, data, batch_size=32, epochs=30, progress=False
    )
    return initial, state, history


def test_every_matmul_takes_bf16_inputs_and_the_loss_is_f32(params):
    jaxpr = jax.make_jaxpr(lambda p, b: mse_loss(MIXED)(p, b, None)[0])(params, make_data())
    dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 3
    for eqn in dots:
        assert [v.aval.dtype for v in eqn.invars] == [jnp.bfloat16, jnp.bfloat16]
    assert jaxpr.out_avals[0].dtype == jnp.float32


def test_gradients_with_respect_to_master_params_are_f32(params):
    grads = jax.grad(lambda p: mse_loss(MIXED)(p, make_data(), None)[0])(params)
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}


def test_params_and_optimizer_state_stay_f32_and_training_converges(trained):
    initial, state, history = trained
    assert {p.dtype for p in jax.tree.leaves(state.params)} == {jnp.dtype(jnp.float32)}
    moments = [x for x in jax.tree.leaves(state.opt_state) if x.ndim > 0]
    assert {m.dtype for m in moments} == {jnp.dtype(jnp.float32)}
    # The bf16 network learned: the f32 evaluation of the same master params improved ≥ 10×.
    final = float(mse_loss(NET)(state.params, make_data(), None)[0])
    assert final < initial / 10, (initial, final)
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_integer_inputs_pass_through_and_bad_arguments_are_named():
    policy = precision.MIXED_BFLOAT16
    ids = jnp.arange(4, dtype=jnp.int32)
    cast = policy.cast_to_compute({"ids": ids, "x": jnp.ones(2)})
    assert cast["ids"].dtype == jnp.int32 and cast["x"].dtype == jnp.bfloat16
    with pytest.raises(TypeError, match="Layer"):
        precision.with_policy(lambda x: x)
    with pytest.raises(TypeError, match="Policy"):
        precision.with_policy(NET, "bf16")


@pytest.mark.parametrize(
    "policy, expected",
    [
        (precision.MIXED_BFLOAT16, jnp.float32),
        (precision.Policy(jnp.float32, jnp.bfloat16, jnp.bfloat16), jnp.bfloat16),
        (precision.Policy(jnp.float32, jnp.float32, jnp.bfloat16), jnp.bfloat16),
    ],
)
def test_the_output_has_the_policys_output_dtype_and_the_dense_value(policy, expected):
    layer = precision.with_policy(nn.dense(3), policy)
    params, _ = layer.init(jax.random.key(0), (-1, 4))
    x = jnp.asarray(np.linspace(-2.0, 2.0, 8).reshape(2, 4), jnp.float32)
    y = layer.apply(params, x)
    assert y.dtype == expected
    # The value is x @ w + b computed from inputs rounded to the compute dtype.
    rounded = [np.asarray(jnp.asarray(a, policy.compute_dtype), np.float64)
               for a in (x, params["w"], params["b"])]  # fmt: skip
    np.testing.assert_allclose(
        np.asarray(y, np.float64), rounded[0] @ rounded[1] + rounded[2], rtol=2e-2, atol=2e-2
    )
