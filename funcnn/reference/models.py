"""Float64 NumPy transcriptions of whole models, composed from `funcnn.reference.layers`.

Each function takes the model's parameter dict (the same readable layout as `funcnn.nn`:
`params["block_0"]["attention"]["q"]["w"]`, …) and NumPy inputs, and returns float64 —
or complex128 for complex inputs: like the layer references, every function is complex-step
safe, so `funcnn.reference.numerical.complex_step` gives their exact directional
derivatives and the tests check `jax.grad` of the JAX models against them at ≤ 1e-10.

    transformer_block_reference   h = x + MHA(LN₁(x));  y = h + W₂·GELU(W₁·LN₂(h) + b₁) + b₂
    transformer_lm_reference      x₀ = E[ids] + P[:T];  blocks (causal);  LN;  dense head
    char_lm_reference             bow | rnn | lstm | cnn | transformer next-token logits
    sequence_regressor_reference  bow | rnn | lstm | cnn | transformer → one number per row
    conv_pool_reference           conv1d → relu → max-pool → conv1d → avg-pool → flatten → dense

Written from the equations in the layers' docstrings, loop by loop; no JAX.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

from funcnn.reference.functional import relu
from funcnn.reference.layers import (
    _f64,
    bag_of_words_reference,
    conv1d_reference,
    layer_norm_reference,
    lstm_reference,
    multi_head_attention_reference,
    pool1d_reference,
    rnn_reference,
    sinusoidal_positions_reference,
)

__all__ = [
    "ARCHITECTURES",
    "char_lm_reference",
    "conv_pool_reference",
    "dense_reference",
    "gelu_reference",
    "masked_mean_reference",
    "mlp_reference",
    "sequence_regressor_reference",
    "transformer_block_reference",
    "transformer_lm_reference",
]

ARCHITECTURES = ("bow", "rnn", "lstm", "cnn", "transformer")
"""The architectures `char_lm_reference` and `sequence_regressor_reference` transcribe."""


def _erf(z):
    """erf, extended to a complex step a + ib (b ≈ 0) by its first-order Taylor term:
    erf(a + ib) ≈ erf(a) + ib·(2/√π)·e^{−a²}."""
    z = np.asarray(z)
    real = np.vectorize(math.erf, otypes=[np.float64])(np.real(z))
    if not np.iscomplexobj(z):
        return real
    return real + 1j * np.imag(z) * (2 / math.sqrt(math.pi)) * np.exp(-(np.real(z) ** 2))


def gelu_reference(z):
    """Exact GELU: ½·z·(1 + erf(z/√2))."""
    return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))


def dense_reference(x, params):
    """y = x·W + b over the last axis."""
    w, b = _f64(params["w"], params["b"])
    return np.asarray(x) @ w + b


def mlp_reference(x, params, activation: Callable):
    """The `nn.mlp` serial: children "dense_0", "<act>_1", "dense_2", … in index order;
    each dense child is x·W + b, each parameterless child applies `activation`."""
    for key in sorted(params, key=lambda k: int(k.rsplit("_", 1)[1])):
        x = dense_reference(x, params[key]) if params[key] else activation(x)
    return x


def masked_mean_reference(x, mask):
    """Mean over axis 1 (time) of the real steps: Σₜ mₜxₜ / max(Σₜ mₜ, 1). x (N, T, d)."""
    if mask is None:
        return x.mean(axis=1)
    m = np.asarray(mask, np.float64)[:, :, None]
    return (x * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)


def _allowed(length: int, key_mask, causal: bool):
    """(T, T) booleans: query i may read key j when j is real (and j ≤ i if causal)."""
    allowed = np.ones((length, length), bool)
    if key_mask is not None:
        allowed &= np.asarray(key_mask, bool)[None, :]
    if causal:
        allowed &= np.tril(np.ones((length, length), bool))
    return allowed


def transformer_block_reference(x, params, num_heads: int, *, mask=None, causal=False):
    """Pre-LN block on x (N, T, D), example by example:

    a = MHA(LN₁(x)) over the allowed keys;  h = x + a
    y = h + mlp(LN₂(h))      mlp = dense → exact GELU → dense
    """
    (x,) = _f64(x)
    out = []
    for n in range(x.shape[0]):
        allowed = _allowed(x.shape[1], None if mask is None else mask[n], causal)
        norm = params["norm_attention"]
        a = layer_norm_reference(x[n], norm["scale"], norm["bias"])
        h = x[n] + multi_head_attention_reference(a, params["attention"], num_heads, mask=allowed)
        norm = params["norm_mlp"]
        m = layer_norm_reference(h, norm["scale"], norm["bias"])
        out.append(h + mlp_reference(m, params["mlp"], gelu_reference))
    return np.stack(out)


def _named(params, prefix: str) -> list[str]:
    """The keys "<prefix>_<n>" of a `serial`'s params, in index order."""
    keys = [k for k in params if re.fullmatch(rf"{prefix}_\d+", k)]
    return sorted(keys, key=lambda k: int(k.rsplit("_", 1)[1]))


def _one(params, prefix: str):
    (key,) = _named(params, prefix)
    return params[key]


def _blocks(params) -> list[str]:
    return _named(params, "block")


def transformer_lm_reference(ids, params, num_heads: int, *, mask=None, positions="learned"):
    """ids (N, T) → logits (N, T, V): x₀ = E[ids] + P[:T] (learned table, or sinusoidal),
    every block causal with padded keys hidden, then LN and the dense head."""
    ids = np.asarray(ids)
    table = _f64(params["embedding"]["table"])[0]
    length, dim = ids.shape[1], table.shape[1]
    if positions == "learned":
        pos = _f64(params["positions"]["table"])[0][:length]
    else:
        pos = sinusoidal_positions_reference(length, dim)
    x = table[ids] + pos[None]
    for key in _blocks(params):
        x = transformer_block_reference(x, params[key], num_heads, mask=mask, causal=True)
    x = layer_norm_reference(x, params["norm"]["scale"], params["norm"]["bias"])
    return dense_reference(x, params["head"])


def _conv_stack(x, params, mask, padding: str):
    """x ← x + relu(conv_i(x · m)) for the residual convs conv_0, conv_1, … (dilation 2^i);
    padded steps enter every conv as zeros. Their params sit at
    params["conv_<i>_<k>"]["conv_<i>_0"]["conv1d_0"] (a residual around a serial)."""
    keep = None if mask is None else np.asarray(mask, np.float64)[:, :, None]
    keys = [k for k in params if re.fullmatch(r"conv_\d+_\d+", k)]
    for i, key in enumerate(sorted(keys, key=lambda k: int(k.split("_")[1]))):
        c = params[key][f"conv_{i}_0"]["conv1d_0"]
        inp = x if keep is None else x * keep
        conv = conv1d_reference(inp, c["w"], c["b"], padding=padding, dilation=2**i)
        x = x + relu(conv)
    return x


def char_lm_reference(kind: str, ids, params, *, num_heads: int = 4, mask=None):
    """Next-token logits (N, T, V) of `funcnn.nn.sequence_models.char_lm(kind, …)`:

    bow          causal prefix mean of E[ids] → mlp (GELU)
    rnn / lstm   E[ids] → recurrent outputs hₜ (zeros at padded steps) → dense
    cnn          E[ids] → causal dilated conv stack with residuals → dense
    transformer  `transformer_lm_reference`
    """
    if kind not in ARCHITECTURES:
        raise ValueError(f"kind must be one of {ARCHITECTURES}, got {kind!r}.")
    if kind == "transformer":
        return transformer_lm_reference(ids, params, num_heads, mask=mask)
    ids = np.asarray(ids)
    if kind == "bow":
        table = _f64(_one(params, "bag_of_words")["table"])[0]
        x = bag_of_words_reference(ids, table, mask, causal=True)
        return mlp_reference(x, _one(params, "head"), gelu_reference)
    x = _f64(_one(params, "embedding")["table"])[0][ids]
    if kind in ("rnn", "lstm"):
        x = _recurrent(kind, x, _one(params, kind), mask, forget_bias=0.0)[0]
    else:
        x = _conv_stack(x, params, mask, "CAUSAL")
    return dense_reference(x, _one(params, "head"))


def _recurrent(kind, x, p, mask, *, forget_bias):
    """(outputs (N, T, H), h_T) of the rnn or lstm reference (which return (carry, outputs))."""
    if kind == "rnn":
        h, hs = rnn_reference(x, p["w_x"], p["w_h"], p["b"], mask=mask)
        return hs, h
    (h, _), hs = lstm_reference(x, p["w_x"], p["w_h"], p["b"], forget_bias=forget_bias, mask=mask)
    return hs, h


def sequence_regressor_reference(
    kind: str, x, params, *, num_heads: int = 4, mask=None, forget_bias: float = 1.0
):
    """One number per sequence (N,) of `funcnn.nn.sequence_models.sequence_regressor`:

    rnn / lstm   the final hidden state h_T (padded steps skipped) → dense
    bow          masked mean of relu(x·W + b) → mlp (ReLU)
    cnn          x·W + b → SAME dilated conv stack with residuals → masked mean → dense
    transformer  x·W + b + sinusoidal P → blocks (padded keys hidden) → masked mean → dense
    """
    if kind not in ARCHITECTURES:
        raise ValueError(f"kind must be one of {ARCHITECTURES}, got {kind!r}.")
    (x,) = _f64(x)
    head = _one(params, "head")
    if kind in ("rnn", "lstm"):
        summary = _recurrent(kind, x, _one(params, "encoder"), mask, forget_bias=forget_bias)[1]
        return dense_reference(summary, head)[:, 0]
    h = dense_reference(x, _one(params, "input"))
    if kind == "bow":
        h = relu(h)
    h = _conv_stack(h, params, mask, "SAME")
    if kind == "transformer":
        h = h + sinusoidal_positions_reference(h.shape[1], h.shape[2])[None]
        for key in _blocks(params):
            h = transformer_block_reference(h, params[key], num_heads, mask=mask)
    summary = masked_mean_reference(h, mask)
    out = mlp_reference(summary, head, relu) if "w" not in head else dense_reference(summary, head)
    return out[:, 0]


def conv_pool_reference(x, params):
    """The small CNN classifier of the tests, x (N, T, C) → logits (N, K):

    conv1d (SAME) → relu → max-pool(2) → conv1d (VALID, dilation 2) → avg-pool(2)
    → flatten → dense,   children "conv1d_0", "relu_1", "max_pool1d_2", "conv1d_3",
    "avg_pool1d_4", "flatten_5", "dense_6" (the `serial` naming).
    """
    (x,) = _f64(x)
    h = conv1d_reference(x, params["conv1d_0"]["w"], params["conv1d_0"]["b"], padding="SAME")
    h = pool1d_reference(relu(h), 2, 2, "max")
    c = params["conv1d_3"]
    h = conv1d_reference(h, c["w"], c["b"], padding="VALID", dilation=2)
    h = pool1d_reference(h, 2, 2, "avg")
    return dense_reference(h.reshape(h.shape[0], -1), params["dense_6"])
