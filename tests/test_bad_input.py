"""A catalogue of bad input across the public API: each is a clear Python exception whose
message names the argument and the value or shapes received (never a bare XLA error)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import datasets, losses, nn, optim, train
from funcnn.train import checkpoint
from funcnn.train.checkpoint import CheckpointError, CheckpointManager

KEY = jax.random.key(0)
PARAMS = {"b": jnp.ones(2), "w": jnp.ones((2, 2))}
MLP = nn.mlp([4, 8, 2])
MLP_PARAMS, _ = MLP.init(KEY, (-1, 4))
DENSE_PARAMS, _ = nn.dense(2).init(KEY, (-1, 4))
NORM_PARAMS, _ = nn.layer_norm().init(KEY, (-1, 4))


def q(text: str) -> str:
    """A literal piece of an expected message, as a regex."""
    return re.escape(text)


def optimizer_update(opt, grads, params=PARAMS):
    return opt.update(grads, opt.init(params), params)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A valid checkpoint of PARAMS and a truncated copy."""
    folder = tmp_path_factory.mktemp("bad_input")
    good = checkpoint.save(folder / "good.npz", PARAMS)
    truncated = folder / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:60])
    return {"good": good, "truncated": truncated, "missing": folder / "missing.npz"}


# (id, call, exception type, regex the message must match). Calls taking `files` get paths.
CASES = [
    # --- optimizer hyperparameters: negative, NaN, out of range, wrong type
    ("sgd lr<0", lambda: optim.sgd(-0.1), ValueError, q("learning_rate=-0.1")),
    ("adam lr=nan", lambda: optim.adam(float("nan")), ValueError, q("learning_rate=nan")),
    ("sgd lr str", lambda: optim.sgd("0.1"), TypeError, q("learning_rate='0.1' (str)")),
    (
        "adam b1=1",
        lambda: optim.adam(0.1, b1=1.0),
        ValueError,
        q("b1 must be in [0.0, 1.0), got b1=1.0"),
    ),
    ("adam b2<0", lambda: optim.adam(0.1, b2=-0.5), ValueError, q("b2=-0.5")),
    ("adam eps=0", lambda: optim.adam(0.1, eps=0.0), ValueError, q("eps=0.0")),
    ("adamw wd<0", lambda: optim.adamw(0.1, weight_decay=-1.0), ValueError, q("weight_decay=-1.0")),
    ("rmsprop decay>1", lambda: optim.rmsprop(0.1, decay=1.5), ValueError, q("decay=1.5")),
    ("sgd momentum<0", lambda: optim.sgd(0.1, momentum=-0.5), ValueError, q("momentum=-0.5")),
    ("nesterov w/o momentum", lambda: optim.sgd(0.1, nesterov=True), ValueError, q("momentum=0")),
    ("clip max_norm<0", lambda: optim.clip_by_global_norm(-1.0), ValueError, q("max_norm=-1.0")),
    (
        "chain of str",
        lambda: optim.chain(optim.sgd(0.1), "adam"),
        TypeError,
        "got str at position 1",
    ),
    (
        "skip max_consecutive=0",
        lambda: optim.skip_nonfinite(optim.sgd(0.1), max_consecutive=0),
        ValueError,
        q("max_consecutive=0"),
    ),
    (
        "accumulate every_k=0",
        lambda: optim.accumulate(optim.sgd(0.1), every_k=0),
        ValueError,
        q("every_k=0"),
    ),
    # --- schedules: zero or negative step counts
    ("cosine decay_steps=0", lambda: optim.cosine_decay(0.1, 0), ValueError, q("decay_steps=0")),
    (
        "warmup_steps<0",
        lambda: optim.warmup_cosine_decay(0.0, 0.1, -1, 10),
        ValueError,
        q("warmup_steps=-1"),
    ),
    (
        "linear transition_steps=0",
        lambda: optim.linear_schedule(0.1, 0.0, 0),
        ValueError,
        q("transition_steps=0"),
    ),
    (
        "piecewise lengths",
        lambda: optim.piecewise_constant([10, 20], [1.0]),
        ValueError,
        "1 values and 2 boundaries",
    ),
    (
        "exponential decay_rate=0",
        lambda: optim.exponential_decay(0.1, 10, 0.0),
        ValueError,
        q("decay_rate=0.0"),
    ),
    (
        "exponential transition_steps=0",
        lambda: optim.exponential_decay(0.1, 0, 0.5),
        ValueError,
        q("transition_steps=0"),
    ),
    # --- layer construction: zero / negative / non-int sizes, dropout rate outside [0, 1)
    ("dense features=0", lambda: nn.dense(0), ValueError, q("features=0")),
    ("dense features<0", lambda: nn.dense(-3), ValueError, q("features=-3")),
    (
        "dense features float",
        lambda: nn.dense(2.5),
        TypeError,
        q("features must be a positive int, got 2.5"),
    ),
    ("mlp one size", lambda: nn.mlp([4]), ValueError, q("sizes must list [in, hidden..., out]")),
    ("mlp zero width", lambda: nn.mlp([4, 0, 2]), ValueError, q("sizes[1]=0")),
    (
        "dropout rate>1",
        lambda: nn.dropout(1.5),
        ValueError,
        q("rate must be in [0.0, 1.0], got rate=1.5"),
    ),
    ("dropout rate<0", lambda: nn.dropout(-0.1), ValueError, q("rate=-0.1")),
    ("layer_norm eps<0", lambda: nn.layer_norm(eps=-1.0), ValueError, q("eps=-1.0")),
    (
        "init in_shape str",
        lambda: nn.dense(2).init(KEY, "abc"),
        ValueError,
        q("in_shape") + ".*'abc'",
    ),
    (
        "mlp init width",
        lambda: MLP.init(KEY, (-1, 5)),
        ValueError,
        q("sizes[0]=4") + ".*" + q("(-1, 5)"),
    ),
    # --- apply: wrong width, wrong rank, integer inputs, missing params, missing key
    (
        "dense x width",
        lambda: nn.dense(2).apply(DENSE_PARAMS, jnp.ones((3, 5))),
        ValueError,
        q("x.shape=(3, 5) does not fit w.shape=(4, 2)"),
    ),
    (
        "dense x rank 0",
        lambda: nn.dense(2).apply(DENSE_PARAMS, jnp.float32(1.0)),
        ValueError,
        q("x.shape=()"),
    ),
    (
        "dense int x",
        lambda: nn.dense(2).apply(DENSE_PARAMS, jnp.ones((3, 4), jnp.int32)),
        TypeError,
        "x must be a floating-point array, got dtype int32",
    ),
    (
        "mlp params missing a layer",
        lambda: MLP.apply({"dense_0": MLP_PARAMS["dense_0"]}, jnp.ones((3, 4))),
        KeyError,
        "no entry 'relu_1'; found \\['dense_0'\\]",
    ),
    (
        "dropout train without key",
        lambda: nn.dropout(0.5).apply({}, jnp.ones(3), train=True),
        ValueError,
        q("key=None"),
    ),
    (
        "layer_norm x width",
        lambda: nn.layer_norm().apply(NORM_PARAMS, jnp.ones((3, 5))),
        ValueError,
        q("x.shape=(3, 5) does not fit scale.shape=(4,)"),
    ),
    # --- losses: mismatched / broadcastable shapes, labels out of range, bad reduction
    (
        "mse shapes",
        lambda: losses.mse(jnp.ones(3), jnp.ones(4)),
        ValueError,
        q("pred.shape=(3,) and targets.shape=(4,)"),
    ),
    (
        "mse broadcastable",
        lambda: losses.mse(jnp.ones((3, 1)), jnp.ones(3)),
        ValueError,
        q("pred.shape=(3, 1) and targets.shape=(3,)"),
    ),
    (
        "bce broadcastable",
        lambda: losses.binary_cross_entropy_with_logits(jnp.ones((3, 1)), jnp.ones(3)),
        ValueError,
        q("logits.shape=(3, 1) and targets.shape=(3,)"),
    ),
    (
        "ce label out of range",
        lambda: losses.cross_entropy(jnp.ones((2, 3)), jnp.array([0, 3])),
        ValueError,
        q("targets must be class ids in [0, 3), got [3]"),
    ),
    (
        "ce label shape",
        lambda: losses.cross_entropy(jnp.ones((4, 3)), jnp.array([0, 1, 2])),
        ValueError,
        q("targets.shape=(3,)") + ".*" + q("logits.shape=(4, 3)"),
    ),
    (
        "ce reduction",
        lambda: losses.cross_entropy(jnp.ones((2, 3)), jnp.array([0, 1]), reduction="avg"),
        ValueError,
        q("reduction='avg'"),
    ),
    (
        "ce label_smoothing>1",
        lambda: losses.cross_entropy(jnp.ones((2, 3)), jnp.array([0, 1]), label_smoothing=1.5),
        ValueError,
        q("label_smoothing=1.5"),
    ),
    # --- optimizer trees: grads / params / mask that do not match
    (
        "adam grads tree",
        lambda: optimizer_update(optim.adam(0.1), {"w": jnp.ones((2, 2))}),
        ValueError,
        "updates.*params.*structure.*'w'.*'b'",
    ),
    (
        "adamw mask tree",
        lambda: optimizer_update(optim.adamw(0.1, mask={"w": True}), PARAMS),
        ValueError,
        q("mask structure PyTreeDef({'w': *})"),
    ),
    (
        "apply_updates tree",
        lambda: optim.apply_updates(PARAMS, {"w": jnp.ones((2, 2))}),
        ValueError,
        "updates.*params.*structure.*'w'.*'b'",
    ),
    (
        "skip_nonfinite grads tree",
        lambda: optimizer_update(optim.skip_nonfinite(optim.sgd(0.1)), {"w": 1.0}),
        ValueError,
        "skip_nonfinite: updates .*same tree structure",
    ),
    # --- datasets and training loop
    (
        "batch larger than data",
        lambda: train.steps_per_epoch((np.ones((5, 2)),), 10),
        ValueError,
        q("batch_size=10 is larger than the data (5 examples)"),
    ),
    ("empty data", lambda: train.num_examples((np.ones((0, 2)),)), ValueError, "0 examples"),
    (
        "data lengths differ",
        lambda: train.num_examples((np.ones((5, 2)), np.ones(4))),
        ValueError,
        q("(5, 2), (4,)"),
    ),
    (
        "fit epochs=0",
        lambda: train.fit(None, None, None, (np.ones((4, 2)),), batch_size=2, epochs=0),
        ValueError,
        q("epochs=0"),
    ),
    ("unknown dataset", lambda: datasets.load("nope"), ValueError, q("name='nope'")),
    ("xor n=0", lambda: datasets.xor(n=0), ValueError, q("n=0")),
    # --- checkpoints: missing, truncated, wrong tree, bad metadata
    (
        "checkpoint missing",
        lambda f: checkpoint.restore(f["missing"]),
        FileNotFoundError,
        "not found: path=.*missing.npz",
    ),
    (
        "checkpoint truncated",
        lambda f: checkpoint.restore(f["truncated"]),
        CheckpointError,
        "truncated.npz.*(unreadable|truncated)",
    ),
    (
        "checkpoint wrong tree",
        lambda f: checkpoint.restore(f["good"], like={"w": jnp.ones((2, 2))}),
        CheckpointError,
        "key path 'b' that `like` does not have",
    ),
    (
        "checkpoint wrong shape",
        lambda f: checkpoint.restore(f["good"], like={**PARAMS, "w": jnp.ones((2, 3))}),
        CheckpointError,
        q("key path 'w': stored shape=(2, 2) dtype=float32, expected shape=(2, 3)"),
    ),
    (
        "checkpoint metadata",
        lambda f: checkpoint.save(f["missing"], PARAMS, metadata={"f": print}),
        TypeError,
        "metadata must be JSON-serialisable.*built-in function print",
    ),
    (
        "checkpoint keep=0",
        lambda f: CheckpointManager(f["good"].parent, keep=0),
        ValueError,
        q("keep=0"),
    ),
]


@pytest.mark.parametrize("call, error, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(call, error, pattern, files):
    with pytest.raises(error, match=pattern) as info:
        call(files) if call.__code__.co_argcount else call()
    assert "XlaRuntimeError" not in type(info.value).__name__
