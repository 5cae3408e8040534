"""Every layer kind composes in `serial` under one contract, and a padding mask reaches it.

Table-driven: each row puts one layer kind inside `serial` (between dense layers when it
takes floats), applies it with a padding mask, a key and train=True, and checks that
garbage written into the padded steps changes no real output. Rows marked `leaks` also
check the converse — without the mask the garbage does reach a real output — so the row
fails if `serial` (or the layer) silently drops the mask.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import losses, nn, optim
from funcnn.activations import gelu, tanh
from funcnn.nn.sequence_models import char_lm, sequence_regressor
from funcnn.scale import precision

B, T, F, VOCAB = 2, 6, 4, 7
REAL = np.array([[True] * 4 + [False] * 2, [True] * T])  # row 0 padded after 4 steps


class Case(NamedTuple):
    name: str
    layer: nn.Layer
    ids: bool = False  # token ids (B, T) instead of floats (B, T, F)
    real: str = "time"  # which outputs are real: "time" (B, T, …), "all", or "pool3"
    leaks: bool = True  # without the mask, padding reaches a real output
    wrap: bool = True  # put dense layers around it


CASES = [
    Case("dense", nn.dense(5), leaks=False),
    Case("perceptron", nn.perceptron(), leaks=False),
    Case("mlp (layer_norm, dropout)", nn.mlp([F, 8, F], layer_norm=True, dropout=0.5), leaks=False),
    Case("layer_norm", nn.layer_norm(), leaks=False),
    Case("rms_norm", nn.rms_norm(), leaks=False),
    Case(
        "feed_forward (SwiGLU)", nn.feed_forward(F, 8, activation="silu", gated=True), leaks=False
    ),
    Case("dropout", nn.dropout(0.5), leaks=False),
    Case("activation", nn.activation(gelu), leaks=False),
    Case("flatten", nn.flatten(), real="all"),
    Case("reshape", nn.reshape((T, F)), leaks=False),
    Case("embedding", nn.embedding(VOCAB, F), ids=True, leaks=False),
    Case("bag_of_words", nn.bag_of_words(VOCAB, F), ids=True, real="all"),
    Case("bag_of_words (causal)", nn.bag_of_words(VOCAB, F, causal=True), ids=True, leaks=False),
    Case("positional_encoding", nn.positional_encoding(T), leaks=False),
    Case("positional_encoding (learned)", nn.positional_encoding(T, kind="learned"), leaks=False),
    Case("conv1d (SAME)", nn.conv1d(3, 3)),
    Case("conv1d (CAUSAL, dilated)", nn.conv1d(3, 2, padding="CAUSAL", dilation=2), leaks=False),
    Case("max_pool1d", nn.max_pool1d(3), real="pool3"),
    Case("avg_pool1d", nn.avg_pool1d(3), real="pool3"),
    Case("global_max_pool", nn.global_max_pool(), real="all"),
    Case("global_avg_pool", nn.global_avg_pool(), real="all"),
    Case("rnn", nn.rnn(3), leaks=False),
    Case("lstm", nn.lstm(3), leaks=False),
    Case("gru", nn.gru(3), leaks=False),
    Case("rnn (reverse)", nn.rnn(3, reverse=True)),
    Case("lstm (reverse)", nn.lstm(3, reverse=True)),
    Case("gru (reverse)", nn.gru(3, reverse=True)),
    Case("multi_head_attention", nn.multi_head_attention(F, num_heads=2)),
    Case(
        "multi_head_attention (GQA, RoPE, QK-norm, window)",
        nn.multi_head_attention(
            F, num_heads=2, num_kv_heads=1, rope_theta=10.0, qk_norm=True, window=3
        ),
    ),
    Case("transformer_block", nn.transformer_block(F, num_heads=2, dropout=0.5)),
    Case(
        "transformer_lm",
        nn.transformer_lm(VOCAB, 4, num_heads=2, depth=1, max_len=T),
        ids=True,
        leaks=False,
    ),
    Case("serial (nested)", nn.serial(nn.conv1d(3, 3), nn.activation(tanh))),
    Case("residual", nn.residual(nn.gru(F, reverse=True))),
    Case("repeat (scanned)", nn.repeat(nn.transformer_block(F, num_heads=2, dropout=0.5), 2)),
    Case("repeat (unrolled)", nn.repeat(nn.residual(nn.gru(F, reverse=True)), 2, scan=False)),
    Case("parallel (concat)", nn.parallel(nn.conv1d(3, 3), nn.lstm(2, reverse=True))),
    Case("parallel (sum)", nn.parallel(nn.dense(3), nn.rnn(3, reverse=True), combine="sum")),
    Case("with_policy", precision.with_policy(nn.lstm(3, reverse=True), precision.FULL_FLOAT32)),
    Case("char_lm (cnn)", char_lm("cnn", VOCAB, dim=4, depth=2), ids=True, leaks=False),
    Case("char_lm (lstm)", char_lm("lstm", VOCAB, dim=4, hidden=3), ids=True, leaks=False),
    Case("sequence_regressor (cnn)", sequence_regressor("cnn", F, dim=4), real="all", wrap=False),
    Case(
        "sequence_regressor (transformer)",
        sequence_regressor("transformer", F, dim=4, num_heads=2, depth=1),
        real="all",
        wrap=False,
    ),
    Case("sequence_regressor (lstm)", sequence_regressor("lstm", F, dim=4), real="all", wrap=False),
]


def _model(case: Case) -> nn.Layer:
    if not case.wrap:
        return case.layer
    head = [nn.dense(3)]
    return nn.serial(case.layer, *head) if case.ids else nn.serial(nn.dense(F), case.layer, *head)


def _inputs(case: Case, seed: int) -> tuple[jax.Array, jax.Array]:
    """x and a copy whose padded steps hold garbage (large values / other ids)."""
    rng = np.random.default_rng(seed)
    if case.ids:
        x = rng.integers(0, VOCAB, size=(B, T))
        garbage = np.where(REAL, x, (x + 1 + rng.integers(0, VOCAB - 1, size=(B, T))) % VOCAB)
        return jnp.asarray(x, jnp.int32), jnp.asarray(garbage, jnp.int32)
    x = rng.normal(size=(B, T, F))
    garbage = np.where(REAL[..., None], x, 100.0 * rng.normal(size=(B, T, F)))
    return jnp.asarray(x, jnp.float32), jnp.asarray(garbage, jnp.float32)


def _real_part(y: np.ndarray, real: str) -> np.ndarray:
    if real == "all":
        return y
    if real == "pool3":  # windows of 3 steps: window w is real when step 3w is
        return y[REAL[:, ::3]]
    return y[REAL]  # (number of real steps, …)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_padding_changes_no_real_output(case):
    seed = CASES.index(case)
    model = _model(case)
    params, out_shape = model.init(jax.random.key(seed), (B, T) if case.ids else (B, T, F))
    assert all(isinstance(d, int) for d in out_shape), out_shape  # a plain shape
    x, garbage = _inputs(case, seed + 100)
    key = jax.random.key(seed + 200)
    apply = jax.jit(lambda p, x, m: model.apply(p, x, mask=m, key=key, train=True))
    mask = jnp.asarray(REAL)
    y = np.asarray(apply(params, x, mask))
    assert y.shape == out_shape
    y_garbage = np.asarray(apply(params, garbage, mask))
    np.testing.assert_allclose(
        _real_part(y_garbage, case.real), _real_part(y, case.real), rtol=1e-5, atol=1e-5
    )
    if case.leaks:  # the mask is what protects the real outputs
        unmasked = jax.jit(lambda p, x: model.apply(p, x, key=key, train=True))
        change = _real_part(np.asarray(unmasked(params, garbage) - unmasked(params, x)), case.real)
        assert np.abs(change).max() > 1e-3


# Images (B, H, W, C) with a mask (B, H, W): image 0's last two rows are padding. Stateful
# layers (batch norm) run through nn.apply_with_state from their initial state. real: "image"
# (outputs at real cells, same resolution) or "all" (every output must ignore the padding).
H, W, C = 5, 4, 4
REAL_IMAGE = np.ones((B, H, W), bool)
REAL_IMAGE[0, 3:] = False
IMAGE_CASES = [
    Case("conv2d", nn.conv2d(C, 3), real="all"),
    Case(
        "conv2d (grouped, strided)", nn.conv2d(C, 3, strides=2, feature_group_count=2), real="all"
    ),
    Case("conv_transpose2d", nn.conv_transpose2d(C, 3, strides=2), real="all"),
    Case("max_pool2d", nn.max_pool2d(2, strides=1, padding="SAME"), real="all"),
    Case("avg_pool2d", nn.avg_pool2d(3, strides=2, padding=1), real="all"),
    Case("global_max_pool2d", nn.global_max_pool2d(), real="all"),
    Case("global_avg_pool2d", nn.global_avg_pool2d(), real="all"),
    Case("batch_norm", nn.batch_norm(), real="all"),
    Case("group_norm", nn.group_norm(2), real="all"),
    Case("instance_norm", nn.instance_norm(), real="all"),
    Case("dropout2d", nn.dropout2d(0.5), real="image", leaks=False),
    Case("serial (stateful)", nn.serial(nn.conv2d(C, 3), nn.batch_norm()), real="all"),
]


@pytest.mark.parametrize("case", IMAGE_CASES, ids=[c.name for c in IMAGE_CASES])
def test_padding_changes_no_real_output_of_image_layers(case):
    seed = IMAGE_CASES.index(case)
    model = nn.serial(nn.dense(C), case.layer, nn.dense(3))  # dense: per pixel, maskless
    params, out_shape = model.init(jax.random.key(seed), (B, H, W, C))
    state = nn.initial_state(model, (B, H, W, C))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, H, W, C))
    garbage = np.where(REAL_IMAGE[..., None], x, 100.0 * rng.normal(size=x.shape))
    key = jax.random.key(seed + 200)

    @jax.jit
    def apply(x, mask):
        y, _ = nn.apply_with_state(model, params, x, state, mask=mask, key=key, train=True)
        return y

    def real(y):
        return y if case.real == "all" else y[REAL_IMAGE]

    mask = jnp.asarray(REAL_IMAGE)
    y = np.asarray(apply(jnp.asarray(x, jnp.float32), mask))
    assert y.shape == out_shape
    y_garbage = np.asarray(apply(jnp.asarray(garbage, jnp.float32), mask))
    np.testing.assert_allclose(real(y_garbage), real(y), rtol=1e-5, atol=1e-5)
    if case.leaks:  # the mask is what protects the real outputs
        change = apply(jnp.asarray(garbage, jnp.float32), None) - apply(jnp.asarray(x), None)
        assert np.abs(np.asarray(real(change))).max() > 1e-3


def test_every_layer_constructor_has_a_row():
    """A new layer kind in funcnn.nn must join the tables above."""
    covered = {c.name.split(" ")[0] for c in CASES + IMAGE_CASES}
    not_layers = {
        "Layer", "attention_weights", "causal_mask", "dot_product_attention", "gru_cell",
        "key_padding_mask", "lengths_to_mask", "lstm_cell", "rnn_cell", "scan_steps",
        "sinusoidal_positions", "zero_carry",
        "FEED_FORWARD_ACTIVATIONS", "apply_rotary", "init_kv_cache", "repeat_kv", "rotary_angles",
        "soft_cap", "tied_logits", "window_mask",  # functions and constants of the LM layers
        "scan_apply", "stack_init", "stack_layers", "unstack_layers",  # helpers behind repeat
        "apply_with_state", "initial_state", "is_stateful",  # helpers for layer state
    }  # fmt: skip
    layer_kinds = set(nn.__all__) - not_layers
    assert layer_kinds <= covered, sorted(layer_kinds - covered)


def test_embedding_lstm_dense_trains_in_serial():
    """The issue's example: serial(embedding, lstm, dense) builds, takes a mask, and learns."""
    key = jax.random.key(11)
    model = nn.serial(nn.embedding(50, 16), nn.lstm(32), nn.dense(5))
    params, out_shape = model.init(key, (4, 10))
    assert out_shape == (4, 10, 5)
    ids = jax.random.randint(jax.random.key(12), (4, 10), 0, 50)
    labels = ids % 5  # a per-step function of the token: learnable by the embedding alone
    mask = jnp.arange(10)[None, :] < jnp.asarray([10, 7, 10, 3])[:, None]
    opt = optim.adam(learning_rate=0.03)
    state = opt.init(params)

    def loss_fn(p):
        logits = model.apply(p, ids, mask=mask)
        return losses.cross_entropy(logits, labels, where=mask)

    @jax.jit
    def step(p, s):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = opt.update(grads, s, p)
        return optim.apply_updates(p, updates), s, loss

    first = float(loss_fn(params))
    for _ in range(60):
        params, state, _ = step(params, state)
    assert first > 1.2  # ≈ ln 5 at init
    assert float(loss_fn(params)) < 0.2 * first
