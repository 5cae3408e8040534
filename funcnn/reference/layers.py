"""Float64 NumPy transcriptions of the sequence layers, written loop by loop from the equations.

Deliberately naive (explicit loops over time, heads and kernel taps, no lax, no einsum
tricks) so that they share no code path with `funcnn.nn`. Every function takes NumPy arrays
and returns float64 NumPy arrays — or complex128 ones when given complex inputs: every
function here is written to be *complex-step safe* (comparisons and maxima look at real
parts only, buffers take the inputs' dtype), so `funcnn.reference.numerical.complex_step`
differentiates them to machine precision. Masks are boolean, True for real steps / allowed
keys.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "attention_reference",
    "bag_of_words_reference",
    "conv1d_reference",
    "gru_reference",
    "layer_norm_reference",
    "lstm_reference",
    "multi_head_attention_reference",
    "pool1d_reference",
    "rnn_reference",
    "sinusoidal_positions_reference",
]


def _f64(*arrays):
    """float64 arrays — complex128 where the input is complex (a complex-step probe)."""
    return [np.asarray(a, np.complex128 if np.iscomplexobj(a) else np.float64) for a in arrays]


def _dtype(*arrays):
    return np.result_type(np.float64, *arrays)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def conv1d_reference(x, w, b, *, padding="SAME", stride=1, dilation=1):
    """y[n, t, o] = b[o] + Σₖ Σᵢ x̃[n, t·s + k·δ, i]·w[k, i, o] for x (N, T, C), w (K, C, O).

    x̃ is x padded with zeros: VALID none, CAUSAL (K−1)·δ before, SAME TensorFlow's split.
    """
    x, w, b = _f64(x, w, b)
    n, length, _ = x.shape
    width, _, out_ch = w.shape
    span = (width - 1) * dilation + 1
    if padding == "VALID":
        before = after = 0
    elif padding == "CAUSAL":
        before, after = span - 1, 0
    else:
        out_len = -(-length // stride)
        total = max((out_len - 1) * stride + span - length, 0)
        before, after = total // 2, total - total // 2
    dtype = _dtype(x, w, b)
    padded = np.concatenate(
        [np.zeros((n, before, x.shape[2]), dtype), x, np.zeros((n, after, x.shape[2]), dtype)],
        axis=1,
    )
    out_len = (padded.shape[1] - span) // stride + 1
    y = np.zeros((n, out_len, out_ch), dtype)
    for t in range(out_len):
        for k in range(width):
            y[:, t, :] += padded[:, t * stride + k * dilation, :] @ w[k]
        y[:, t, :] += b
    return y


def pool1d_reference(x, window, stride, kind):
    """VALID max/avg pooling: y[n, t] = max/mean of x[n, t·s : t·s + window]. x (N, T, C)."""
    (x,) = _f64(x)
    out_len = (x.shape[1] - window) // stride + 1
    return np.stack(
        [_reduce(x[:, t * stride : t * stride + window, :], kind) for t in range(out_len)], 1
    )


def _reduce(x, kind):
    """max (the entry with the largest real part) or mean over axis 1."""
    if kind != "max":
        return np.mean(x, axis=1)
    best = np.argmax(x.real, axis=1)[:, None, :]
    return np.take_along_axis(x, best, axis=1)[:, 0, :]


def _run(step, x, carry, mask, reverse):
    """Loop a step function over time with the padding rule: masked steps keep the carry.

    Returns (final carry, outputs (N, T, H)) — carry first, the order of `funcnn.nn`'s
    recurrent layers with return_carry=True.
    """
    _n, length, _ = x.shape
    outputs: list[np.ndarray] = [np.empty(0)] * length
    order = range(length - 1, -1, -1) if reverse else range(length)
    for t in order:
        new_carry, y = step(carry, x[:, t, :])
        if mask is not None:
            keep = np.asarray(mask[:, t], dtype=bool)[:, None]
            new_carry = tuple(np.where(keep, nc, c) for nc, c in zip(new_carry, carry, strict=True))
            y = np.where(keep, y, 0.0)
        carry = new_carry
        outputs[t] = y
    return carry, np.stack(outputs, axis=1)


def rnn_reference(x, w_x, w_h, b, *, mask=None, reverse=False):
    """Elman RNN, hₜ = tanh(xₜW_x + hₜ₋₁W_h + b), h₀ = 0. Returns (h_T, hs (N, T, H))."""
    x, w_x, w_h, b = _f64(x, w_x, w_h, b)
    h0 = np.zeros((x.shape[0], w_h.shape[0]))

    def step(carry, x_t):
        (h,) = carry
        h = np.tanh(x_t @ w_x + h @ w_h + b)
        return (h,), h

    (h,), hs = _run(step, x, (h0,), mask, reverse)
    return h, hs


def lstm_reference(x, w_x, w_h, b, *, forget_bias=0.0, mask=None, reverse=False):
    """LSTM with gate blocks i, f, g, o in that column order of W_x, W_h, b:

    i = σ(·), f = σ(· + forget_bias), g = tanh(·), o = σ(·); c' = f·c + i·g; h' = o·tanh(c').
    Returns ((h_T, c_T), hs (N, T, H)).
    """
    x, w_x, w_h, b = _f64(x, w_x, w_h, b)
    hidden = w_h.shape[0]
    zero = np.zeros((x.shape[0], hidden))

    def step(carry, x_t):
        h, c = carry
        z = x_t @ w_x + h @ w_h + b
        i = _sigmoid(z[:, 0 * hidden : 1 * hidden])
        f = _sigmoid(z[:, 1 * hidden : 2 * hidden] + forget_bias)
        g = np.tanh(z[:, 2 * hidden : 3 * hidden])
        o = _sigmoid(z[:, 3 * hidden : 4 * hidden])
        c = f * c + i * g
        h = o * np.tanh(c)
        return (h, c), h

    (h, c), hs = _run(step, x, (zero, zero), mask, reverse)
    return (h, c), hs


def gru_reference(x, w_x, w_h, b_x, b_h, *, mask=None, reverse=False):
    """GRU (PyTorch convention, blocks r, z, n): n = tanh(xW_xn + b_xn + r·(hW_hn + b_hn)),
    h' = (1 − z)·n + z·h. Returns (h_T, hs (N, T, H))."""
    x, w_x, w_h, b_x, b_h = _f64(x, w_x, w_h, b_x, b_h)
    hidden = w_h.shape[0]
    blocks = [slice(j * hidden, (j + 1) * hidden) for j in range(3)]

    def step(carry, x_t):
        (h,) = carry
        gx = x_t @ w_x + b_x
        gh = h @ w_h + b_h
        r = _sigmoid(gx[:, blocks[0]] + gh[:, blocks[0]])
        z = _sigmoid(gx[:, blocks[1]] + gh[:, blocks[1]])
        n = np.tanh(gx[:, blocks[2]] + r * gh[:, blocks[2]])
        h = (1.0 - z) * n + z * h
        return (h,), h

    (h,), hs = _run(step, x, (np.zeros((x.shape[0], hidden)),), mask, reverse)
    return h, hs


def attention_reference(q, k, v, *, mask=None):
    """Per query row i: sᵢⱼ = qᵢ·kⱼ/√d over allowed keys j (mask[i, j] True), wᵢ = softmax(sᵢ),
    yᵢ = Σⱼ wᵢⱼ vⱼ; a row with no allowed key gives yᵢ = 0. q (Tq, d), k (Tk, d), v (Tk, dv),
    mask (Tq, Tk). Returns (y (Tq, dv), w (Tq, Tk))."""
    q, k, v = _f64(q, k, v)
    tq, tk = q.shape[0], k.shape[0]
    allowed = np.ones((tq, tk), bool) if mask is None else np.asarray(mask, bool)
    weights = np.zeros((tq, tk), _dtype(q, k))
    for i in range(tq):
        keys = [j for j in range(tk) if allowed[i, j]]
        if not keys:
            continue
        scores = np.array([q[i] @ k[j] / math.sqrt(q.shape[1]) for j in keys])
        e = np.exp(scores - scores.real.max())  # a constant shift: softmax is unchanged
        weights[i, keys] = e / e.sum()
    return weights @ v, weights


def multi_head_attention_reference(x, params, num_heads, *, mask=None, context=None):
    """Multi-head attention for one example: x (Tq, D), context (Tk, D) (default x).

    Q = xW_q + b_q, K = cW_k + b_k, V = cW_v + b_v; head j uses columns j·dh:(j+1)·dh;
    heads are concatenated in order and projected: y = [h₀ … h_H−1]W_o + b_o.
    params: {"q"|"k"|"v"|"o": {"w", "b"}} (NumPy-convertible). mask (Tq, Tk).
    """
    (x,) = _f64(x)
    context = x if context is None else _f64(context)[0]
    p = {name: {key: _f64(val)[0] for key, val in sub.items()} for name, sub in params.items()}
    q = x @ p["q"]["w"] + p["q"]["b"]
    k = context @ p["k"]["w"] + p["k"]["b"]
    v = context @ p["v"]["w"] + p["v"]["b"]
    head_dim = q.shape[1] // num_heads
    heads = []
    for j in range(num_heads):
        cols = slice(j * head_dim, (j + 1) * head_dim)
        heads.append(attention_reference(q[:, cols], k[:, cols], v[:, cols], mask=mask)[0])
    return np.concatenate(heads, axis=1) @ p["o"]["w"] + p["o"]["b"]


def layer_norm_reference(x, scale, bias, eps=1e-5):
    """(x − mean)/√(var + ε)·scale + bias over the last axis, biased variance."""
    x, scale, bias = _f64(x, scale, bias)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def bag_of_words_reference(ids, table, mask=None, *, causal=False):
    """Mean of table[ids] over real tokens (all of them, or the prefix ≤ t when causal);
    no real token → zeros. ids (N, T)."""
    (table,) = _f64(table)
    ids = np.asarray(ids)
    n, length = ids.shape
    real = np.ones((n, length), bool) if mask is None else np.asarray(mask, bool)

    def mean_of(row, stop):
        rows = [table[ids[row, t]] for t in range(stop) if real[row, t]]
        return np.mean(rows, axis=0) if rows else np.zeros(table.shape[1])

    if causal:
        return np.array([[mean_of(r, t + 1) for t in range(length)] for r in range(n)])
    return np.array([mean_of(r, length) for r in range(n)])


def sinusoidal_positions_reference(max_len, dim):
    """P[p, 2i] = sin(p/10000^(2i/d)), P[p, 2i+1] = cos(p/10000^(2i/d)), one entry at a time."""
    table = np.zeros((max_len, dim))
    for p in range(max_len):
        for col in range(dim):
            i2 = col - col % 2
            angle = p / 10000.0 ** (i2 / dim)
            table[p, col] = math.sin(angle) if col % 2 == 0 else math.cos(angle)
    return table
