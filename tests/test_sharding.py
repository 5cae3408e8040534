"""Sharded parameters on simulated CPU devices: FSDP over 4, tensor parallelism over 2 × 4.

Each mesh runs in its own subprocess, because the device count is fixed when JAX starts
(XLA_FLAGS=--xla_force_host_platform_device_count=N). A worker prints a JSON report; the
tests check it against one device's run and against the bytes the shapes imply.
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
from jax.sharding import PartitionSpec as P

from funcnn import scale
from funcnn.scale import sharding

ROOT = Path(__file__).resolve().parents[1]

COMMON = textwrap.dedent(
    """
    import json, re
    import jax, jax.numpy as jnp, numpy as np
    from funcnn import losses, nn, optim, scale, train
    from funcnn.scale import sharding

    def max_diff(a, b):
        return max(float(jnp.max(jnp.abs(x - y)))
                   for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))

    def train_on(step, state, batches, put=lambda b: b):
        for b in batches:
            state, _ = step(state, put(b))
        return state
    """
)

FSDP_WORKER = COMMON + textwrap.dedent(
    """
    def init_params(key):
        k1, k2 = jax.random.split(key)
        return {"dense_0": {"w": 0.3 * jax.random.normal(k1, (16, 64)), "b": jnp.zeros(64)},
                "dense_1": {"w": 0.3 * jax.random.normal(k2, (64, 6)), "b": jnp.zeros(6)}}

    def loss_fn(params, batch, key):
        del key
        x, y = batch
        h = jnp.tanh(x @ params["dense_0"]["w"] + params["dense_0"]["b"])
        return jnp.mean((h @ params["dense_1"]["w"] + params["dense_1"]["b"] - y) ** 2), {}

    optimizer = optim.adam(1e-2)
    params = init_params(jax.random.PRNGKey(0))
    fresh = lambda: train.init_state(jax.tree.map(jnp.copy, params), optimizer,
                                     jax.random.PRNGKey(1))
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(20):
        x = rng.normal(size=(16, 16)).astype(np.float32)
        batches.append((x, np.sin(x[:, :6] + x[:, 6:12])))
    single = train_on(train.make_step(loss_fn, optimizer), fresh(), batches)

    mesh = scale.make_mesh(4)
    shardings = sharding.fsdp_state_shardings(fresh(), mesh, min_size=64)
    step = train.make_sharded_step(loss_fn, optimizer, shardings, scale.data_sharding(mesh))
    state = scale.place_local(fresh(), shardings)
    per_device = sharding.bytes_per_device((state.params, state.opt_state))
    hlo = step.lower(state, jax.device_put(batches[0], scale.data_sharding(mesh)))
    hlo = hlo.compile().as_text()
    put = lambda b: jax.device_put(b, scale.data_sharding(mesh))
    state = train_on(step, state, batches, put)
    specs = {sharding.path_string(p): list(s.sharding.spec)
             for p, s in jax.tree_util.tree_leaves_with_path(state)}
    # A checkpoint of the sharded state, restored onto it: every leaf lands on like's layout.
    import os, tempfile
    from funcnn.train import checkpoint
    saved = checkpoint.save(os.path.join(tempfile.mkdtemp(), "state.npz"), state)
    back = checkpoint.restore(saved, like=state)
    restored_specs = {sharding.path_string(p): list(getattr(s.sharding, "spec", ["unsharded"]))
                      for p, s in jax.tree_util.tree_leaves_with_path(back)}
    report = {
        "devices": jax.device_count(),
        "specs": specs,
        "per_device": sorted(per_device.values()),
        "after_per_device": sorted(sharding.bytes_per_device(
            (state.params, state.opt_state)).values()),
        "scalar_bytes": sum(x.nbytes for x in jax.tree.leaves((state.params, state.opt_state))
                            if x.ndim == 0),
        "max_diff": max_diff(single.params, state.params),
        "opt_diff": max_diff(single.opt_state, state.opt_state),
        "restored_specs": restored_specs,
        "restored_diff": max_diff(state.params, back.params),
        "moved": max_diff(single.params, fresh().params),
        "all_gather": len(re.findall(r"= [^=]*all-gather(-start)?\\(", hlo)),
        "reduce_scatter_or_all_reduce": len(
            re.findall(r"= [^=]*(reduce-scatter|all-reduce)(-start)?\\(", hlo)),
    }
    print("REPORT " + json.dumps(report))
    """
)

TP_WORKER = COMMON + textwrap.dedent(
    """
    V, D, H, DEPTH, T, B = 16, 32, 4, 2, 8, 4
    model = nn.transformer_lm(V, D, num_heads=H, depth=DEPTH, max_len=T)
    params, _ = model.init(jax.random.PRNGKey(0), (B, T))

    def loss_fn(p, batch, key):
        del key
        ids, targets = batch
        return losses.cross_entropy(model.apply(p, ids), targets), {}

    # SGD, not Adam: the key bias b_k has an exactly zero gradient (softmax ignores a shift
    # shared by all keys), and Adam would turn its rounding noise into ±lr steps.
    optimizer = optim.sgd(0.1, momentum=0.9)
    fresh = lambda: train.init_state(jax.tree.map(jnp.copy, params), optimizer,
                                     jax.random.PRNGKey(1))
    rng = np.random.default_rng(0)
    data = [rng.integers(0, V, size=(B, T + 1)).astype(np.int32) for _ in range(20)]
    batches = [(d[:, :-1], d[:, 1:]) for d in data]
    single = train_on(train.make_step(loss_fn, optimizer), fresh(), batches)

    mesh = scale.make_mesh(8, model=4)
    shardings = sharding.rule_shardings(fresh(), mesh, sharding.TRANSFORMER_RULES)
    batch_sharding = scale.data_sharding(mesh)
    step = train.make_sharded_step(loss_fn, optimizer, shardings, batch_sharding)
    state = train_on(step, scale.place_local(fresh(), shardings), batches,
                     lambda b: jax.device_put(b, batch_sharding))
    forward = jax.jit(lambda p, b: loss_fn(p, b, None)[0],
                      in_shardings=(shardings.params, batch_sharding))
    hlo = forward.lower(state.params, jax.device_put(batches[0], batch_sharding))
    hlo = hlo.compile().as_text()
    collectives = []
    for line in hlo.splitlines():
        found = re.search(r"= [^=]*?(all-reduce|all-gather|reduce-scatter|all-to-all)"
                          r"(?:-start)?\\(", line)
        if found:
            groups = re.search(r"replica_groups=(\\{\\{[^=]*?\\}\\}|\\S+)", line)
            collectives.append([found.group(1), groups.group(1) if groups else ""])
    q_w = state.params["block_0"]["attention"]["q"]["w"]
    report = {
        "devices": jax.device_count(),
        "q_w_shards": sorted({tuple(s.data.shape) for s in q_w.addressable_shards}),
        "o_w_shards": sorted({tuple(s.data.shape) for s in
                              state.params["block_1"]["attention"]["o"]["w"].addressable_shards}),
        "mlp_out_shards": sorted({tuple(s.data.shape) for s in
                                  state.params["block_0"]["mlp"]["dense_2"]["w"].addressable_shards}),
        "mu_spec": list(state.opt_state[0].trace["block_0"]["mlp"]["dense_0"]["w"].sharding.spec)
                   if hasattr(state.opt_state[0], "trace") else None,
        "max_diff": max_diff(single.params, state.params),
        "max_abs": max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(single.params)),
        "moved": max_diff(single.params, fresh().params),
        "collectives": collectives,
        "depth": DEPTH,
    }
    print("REPORT " + json.dumps(report))
    """
)


def _run(worker: str, devices: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", worker], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("REPORT "))
    return json.loads(line[len("REPORT ") :])


@pytest.fixture(scope="module")
def fsdp():
    return _run(FSDP_WORKER, 4)


@pytest.fixture(scope="module")
def tp():
    return _run(TP_WORKER, 8)


def test_fsdp_splits_each_leaf_on_its_largest_divisible_axis(fsdp):
    specs = fsdp["specs"]
    assert specs["params/dense_0/w"] == [None, "data"]  # (16, 64): 64 is the larger axis
    assert specs["params/dense_1/w"] == ["data"]  # (64, 6): 6 does not divide by 4
    assert specs["params/dense_0/b"] == ["data"]  # (64,): 64 elements ≥ min_size=64
    assert specs["params/dense_1/b"] == []  # (6,): small, replicated
    assert specs["opt_state/0/mu/dense_0/w"] == [None, "data"]  # moments follow θ
    assert specs["opt_state/0/count"] == [] and specs["step"] == []


def test_fsdp_stores_a_quarter_of_params_and_state_per_device(fsdp):
    # θ, m, v in float32: each w (16·64 + 64·6) and b (64) split 4 ways, b (6) whole;
    # the optimizer's scalars (step counters, the learning rate) replicated.
    floats_split = 16 * 64 + 64 * 6 + 64
    total = 3 * 4 * (floats_split + 6) + fsdp["scalar_bytes"]
    expected = 3 * 4 * (floats_split // 4 + 6) + fsdp["scalar_bytes"]
    assert fsdp["per_device"] == [expected] * 4
    assert fsdp["after_per_device"] == [expected] * 4  # the step keeps the layout
    assert expected / total < 0.26  # ≈ 1/4 of the total


def test_fsdp_checkpoint_restores_onto_the_sharded_layout(fsdp):
    assert fsdp["restored_specs"] == fsdp["specs"]
    assert fsdp["restored_diff"] == 0.0


def test_fsdp_trajectory_equals_one_device(fsdp):
    assert fsdp["moved"] > 0.05
    assert fsdp["max_diff"] <= 1e-5
    assert fsdp["opt_diff"] <= 1e-5
    assert fsdp["all_gather"] >= 1  # XLA gathers the split weights for the matmuls


def test_tensor_parallel_splits_heads_and_megatron_mlp(tp):
    assert tp["devices"] == 8
    assert tp["q_w_shards"] == [[32, 8]]  # columns over "model": one head (dh = 8) per device
    assert tp["o_w_shards"] == [[8, 32]]  # rows
    assert tp["mlp_out_shards"] == [[32, 32]]  # W₂ (128, 32) split by rows
    assert tp["mu_spec"] == [None, "model"]  # momentum of W₁ follows W₁


def test_tensor_parallel_forward_has_two_model_all_reduces_per_block(tp):
    model_groups = "{{0,1,2,3},{4,5,6,7}}"
    kinds = [kind for kind, _ in tp["collectives"]]
    assert "all-gather" not in kinds and "all-to-all" not in kinds, tp["collectives"]
    over_model = [c for c in tp["collectives"] if c == ["all-reduce", model_groups]]
    assert len(over_model) == 2 * tp["depth"], tp["collectives"]  # after attention, after MLP
    assert len(tp["collectives"]) == 2 * tp["depth"] + 1  # + the loss mean over "data"


def test_tensor_parallel_trains_like_one_device(tp):
    assert tp["moved"] > 0.05
    assert tp["max_diff"] <= 1e-5 * max(1.0, tp["max_abs"]), tp["max_diff"]


def test_rules_reject_indivisible_split_and_fsdp_spec_rule():
    assert sharding.fsdp_spec((16, 64), 4, min_size=1) == P(None, "data")
    assert sharding.fsdp_spec((64, 64), 4, min_size=1) == P("data")  # tie: leading axis
    assert sharding.fsdp_spec((6, 10), 4, min_size=1) == P()
    assert sharding.fsdp_spec((1024,), 4) == P("data")
    assert sharding.fsdp_spec((1023,), 4) == P()  # below min_size
    mesh = scale.make_mesh(1, model=1)
    tree = {"attention": {"q": {"w": np.zeros((4, 6))}}}
    shardings = sharding.rule_shardings(tree, mesh, [(r"q/w$", P(None, "model"))])
    assert shardings["attention"]["q"]["w"].spec == P(None, "model")
    with pytest.raises(ValueError, match="more axes"):
        sharding.rule_shardings(tree, mesh, [(r"q/w$", P(None, None, "model"))])
    too_many = len(jax.devices()) + 1
    with pytest.raises(ValueError, match=f"devices={too_many} but only"):
        scale.make_mesh(too_many, model=1)
