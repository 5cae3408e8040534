"""Data parallelism: 4 simulated CPU devices train exactly like one (up to f32 summation order).

Everything runs in ONE subprocess, because the device count is fixed when JAX starts
(XLA_FLAGS=--xla_force_host_platform_device_count=4). The worker prints a JSON report and
the tests below check it.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from funcnn import scale

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from funcnn import optim, scale, train

    def init_params(key):
        k1, k2 = jax.random.split(key)
        return {"dense_0": {"w": 0.5 * jax.random.normal(k1, (3, 8)), "b": jnp.zeros(8)},
                "dense_1": {"w": 0.5 * jax.random.normal(k2, (8, 1)), "b": jnp.zeros(1)}}

    def loss_fn(params, batch, key):
        del key
        x, y = batch
        h = jnp.tanh(x @ params["dense_0"]["w"] + params["dense_0"]["b"])
        pred = h @ params["dense_1"]["w"] + params["dense_1"]["b"]
        return jnp.mean((pred - y) ** 2), {}

    key = jax.random.PRNGKey(0)
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 3))
    y = jnp.sin(x.sum(axis=1, keepdims=True))
    optimizer = optim.adam(1e-2)
    fresh = lambda: train.init_state(init_params(key), optimizer, jax.random.PRNGKey(0))
    report = {"devices": jax.device_count()}

    # --- make_step: same step function, one device vs a 4-device mesh
    step = train.make_step(loss_fn, optimizer)
    single = fresh()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    for b in batches:
        single, _ = step(single, b)

    mesh = scale.make_mesh(4)
    multi = scale.replicate(fresh(), mesh)
    for b in batches:
        sharded = scale.shard_batch(b, mesh)
        multi, _ = step(multi, sharded)
    report["batch_spec"] = list(sharded[0].sharding.spec)
    report["batch_shard_shapes"] = [list(s.data.shape) for s in sharded[0].addressable_shards]
    report["param_spec"] = list(multi.params["dense_0"]["w"].sharding.spec)
    report["param_devices"] = len(multi.params["dense_0"]["w"].sharding.device_set)
    hlo = step.lower(multi, sharded).compile().as_text()
    report["all_reduce"] = "all-reduce" in hlo
    report["step_max_diff"] = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(multi.params)))
    report["step_max_abs"] = max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(single.params))

    # --- optimizer-state sharding (ZeRO-1 style): same result, moments split 4 ways
    zero = fresh()
    zero = train.TrainState(scale.replicate(zero.params, mesh),
                            scale.shard_opt_state(zero.opt_state, mesh),
                            scale.replicate(zero.step, mesh), scale.replicate(zero.key, mesh))
    mu_w = zero.opt_state[0].mu["dense_1"]["w"]  # (8, 1): 8 rows split 4 ways
    report["mu_shard_shapes"] = [list(s.data.shape) for s in mu_w.addressable_shards]
    for b in batches:
        zero, _ = step(zero, scale.shard_batch(b, mesh))
    report["zero_max_diff"] = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(zero.params)))

    # --- fit: the same call on sharded data fuses sharded steps
    fit_single, _ = train.fit(fresh(), loss_fn, optimizer, (x, y), batch_size=16, epochs=2,
                              progress=False)
    fit_multi, _ = train.fit(scale.replicate(fresh(), mesh), loss_fn, optimizer,
                             scale.shard_batch((x, y), mesh), batch_size=16, epochs=2,
                             progress=False)
    report["fit_max_diff"] = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(fit_single.params), jax.tree.leaves(fit_multi.params)))
    # plain host data and mesh=: fit replicates it and splits every batch
    fit_ctx, _ = train.fit(fresh(), loss_fn, optimizer, (np.asarray(x), np.asarray(y)),
                           batch_size=16, epochs=2, progress=False, mesh=mesh)
    report["ctx_param_devices"] = len(fit_ctx.params["dense_0"]["w"].sharding.device_set)
    report["ctx_max_diff"] = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(fit_single.params), jax.tree.leaves(fit_ctx.params)))
    report["fit_moved"] = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(fit_single.params), jax.tree.leaves(fresh().params)))

    # --- batch_norm: the statistics are the global batch's on 4 devices, as on 1
    from funcnn import nn
    from funcnn.train import objectives
    # No bias before batch_norm (it would cancel): its true gradient is 0, and Adam turns
    # that 0's rounding noise into full-size steps that differ between 1 and 4 devices.
    bn = nn.serial(nn.dense(8, use_bias=False), nn.batch_norm(), nn.activation(jnp.tanh),
                   nn.dense(1))
    bn_loss = objectives.supervised_loss(bn.apply, "regression", stateful=True)
    bn_fresh = lambda: train.init_state(bn.init(key, (-1, 3))[0], optimizer,
                                        jax.random.PRNGKey(0), nn.initial_state(bn, (-1, 3)))
    bn_step = train.make_step(bn_loss, optimizer)
    one, _ = bn_step(bn_fresh(), batches[0])
    four, _ = bn_step(scale.replicate(bn_fresh(), mesh), scale.shard_batch(batches[0], mesh))
    dense_0 = bn_fresh().params["dense_0"]
    h = batches[0][0] @ dense_0["w"]  # what batch_norm saw: (16, 8)
    report["bn_global_mean_err"] = float(jnp.max(jnp.abs(
        four.model_state["batch_norm_1"]["mean"] - 0.1 * h.mean(0))))
    report["bn_local_mean_gap"] = float(jnp.max(jnp.abs(0.1 * h[:4].mean(0) - 0.1 * h.mean(0))))
    bn_fit_1, _ = train.fit(bn_fresh(), bn_loss, optimizer, (x, y), batch_size=16, epochs=2,
                            progress=False)
    bn_fit_4, _ = train.fit(scale.replicate(bn_fresh(), mesh), bn_loss, optimizer,
                            scale.shard_batch((x, y), mesh), batch_size=16, epochs=2,
                            progress=False)
    report["bn_fit_max_diff"] = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves((bn_fit_1.params, bn_fit_1.model_state)),
                        jax.tree.leaves((bn_fit_4.params, bn_fit_4.model_state))))
    report["bn_fit_moved"] = float(jnp.max(jnp.abs(bn_fit_1.model_state["batch_norm_1"]["mean"])))
    print("REPORT " + json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def report() -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("REPORT "))
    return json.loads(line[len("REPORT ") :])


def test_four_devices_exist(report):
    assert report["devices"] == 4


def test_batch_is_split_along_data_axis(report):
    assert report["batch_spec"] == ["data"]
    assert report["batch_shard_shapes"] == [[4, 3]] * 4  # 16 rows → 4 per device


def test_params_stay_replicated_and_gradients_are_all_reduced(report):
    assert report["param_spec"] in ([], [None, None])
    assert report["param_devices"] == 4
    assert report["all_reduce"]


def test_sharded_steps_match_single_device(report):
    assert report["step_max_diff"] <= 1e-5 * max(1.0, report["step_max_abs"])


def test_sharded_optimizer_state_matches_and_is_split(report):
    assert report["mu_shard_shapes"] == [[2, 1]] * 4
    assert report["zero_max_diff"] <= 1e-5 * max(1.0, report["step_max_abs"])


def test_fit_on_sharded_data_matches_single_device(report):
    assert report["fit_moved"] > 1e-3  # training did something, so agreement means something
    assert report["fit_max_diff"] <= 1e-5 * max(1.0, report["step_max_abs"])


def test_fit_given_a_mesh_matches_single_device(report):
    assert report["ctx_param_devices"] == 4
    assert report["ctx_max_diff"] <= 1e-5 * max(1.0, report["step_max_abs"])


def test_batch_norm_statistics_are_the_global_batchs_on_four_devices(report):
    # One step on 4 devices: running mean = 0.1 × the mean over all 16 rows of the batch —
    # not of a device's 4 rows, which differ by far more than rounding.
    assert report["bn_global_mean_err"] <= 1e-6
    assert report["bn_local_mean_gap"] > 1e-2
    # Two epochs of fit with batch_norm: params and running statistics match one device.
    assert report["bn_fit_moved"] > 1e-3
    assert report["bn_fit_max_diff"] <= 1e-5


def test_shard_batch_rejects_indivisible_batch():
    mesh = scale.make_mesh(1)
    with pytest.raises(ValueError, match="shape"):
        scale.shard_batch(np.zeros(()), mesh)
    with pytest.raises(ValueError, match=r"devices=\d+ but only"):
        scale.make_mesh(len(jax.devices()) + 1)
