"""Float64 NumPy transcriptions of the modern-LM layers and the configured decoder — no JAX.

    rms_norm_reference         x / √(mean(x²) + ε) · scale
    norm_reference             LayerNorm (with or without scale/bias) or RMSNorm, by params
    rotary_reference           each pair (a, b) at position p rotated by p·θ^(−2i/dh)
    gqa_attention_reference    grouped-query attention for one example, head by head, with
                               QK-norm, RoPE, sliding window, soft-cap and biases as given
    feed_forward_reference     down(f(x·up)) or down(f(x·gate) ⊙ x·up)
    decoder_reference          the whole decoder of a `DecoderConfig` (any layout)

Written loop by loop from the equations in the docstrings of `funcnn.nn` and
`funcnn.models.decoder`, sharing no code path with them. Complex-step safe like the rest of
`funcnn.reference` (comparisons look at real parts), so `numerical.complex_step` gives exact
directional derivatives of every function here. A config is read by attribute (any object
with `DecoderConfig`'s fields), so this module imports nothing from the JAX side.
"""

from __future__ import annotations

import math

import numpy as np

from funcnn.reference.functional import relu as relu_reference
from funcnn.reference.layers import _f64, sinusoidal_positions_reference
from funcnn.reference.models import gelu_reference

__all__ = [
    "decoder_reference",
    "feed_forward_reference",
    "gelu_tanh_reference",
    "gqa_attention_reference",
    "norm_reference",
    "relu2_reference",
    "rms_norm_reference",
    "rotary_reference",
    "silu_reference",
]


def gelu_tanh_reference(z):
    """½·z·(1 + tanh(√(2/π)·(z + 0.044715·z³)))."""
    return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


def silu_reference(z):
    """z·σ(z) = z / (1 + e^{−z})."""
    return z / (1.0 + np.exp(-z))


def relu2_reference(z):
    """max(z, 0)²."""
    return relu_reference(z) ** 2


ACTIVATIONS = {
    "gelu": gelu_reference,
    "gelu_tanh": gelu_tanh_reference,
    "silu": silu_reference,
    "relu": relu_reference,
    "relu2": relu2_reference,
}


def rms_norm_reference(x, scale=None, eps=1e-6):
    """x / √(mean(x²) + ε) · scale over the last axis (scale None: no scale)."""
    (x,) = _f64(x)
    out = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    return out if scale is None else out * _f64(scale)[0]


def norm_reference(x, params, kind, eps):
    """kind "rms": `rms_norm_reference`; "layer": (x − μ)/√(σ² + ε)·scale + bias, where a
    missing "scale" or "bias" in `params` is left out (biased variance σ²)."""
    if kind == "rms":
        return rms_norm_reference(x, params.get("scale"), eps)
    (x,) = _f64(x)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out = (x - mean) / np.sqrt(var + eps)
    if "scale" in params:
        out = out * _f64(params["scale"])[0]
    if "bias" in params:
        out = out + _f64(params["bias"])[0]
    return out


def rotary_reference(x, positions, theta=10000.0, interleaved=False):
    """x (T, dh): the pair (a, b) of coordinate pair i at step t is rotated by
    φ = positions[t]·θ^(−2i/dh):  a' = a·cos φ − b·sin φ,  b' = b·cos φ + a·sin φ.
    Pairs (i, i + dh/2) (rotate-half), or (2i, 2i + 1) when `interleaved`."""
    (x,) = _f64(x)
    steps, dh = x.shape
    out = np.array(x)
    for t in range(steps):
        for i in range(dh // 2):
            phi = positions[t] * theta ** (-2.0 * i / dh)
            ia, ib = (2 * i, 2 * i + 1) if interleaved else (i, i + dh // 2)
            a, b = x[t, ia], x[t, ib]
            out[t, ia] = a * math.cos(phi) - b * math.sin(phi)
            out[t, ib] = b * math.cos(phi) + a * math.sin(phi)
    return out


def _dense(x, params):
    out = x @ _f64(params["w"])[0]
    return out + _f64(params["b"])[0] if "b" in params else out


def gqa_attention_reference(
    x,
    params,
    num_heads,
    num_kv_heads,
    *,
    allowed=None,
    positions=None,
    rope_theta=None,
    rope_interleaved=False,
    qk_norm_eps=1e-6,
    logit_soft_cap=None,
):
    """Grouped-query self-attention for one example x (T, D):

    Q = x·W_q (+ b_q), K = x·W_k (+ b_k), V = x·W_v (+ b_v); head j uses Q columns
    j·dh:(j+1)·dh and K, V columns g·dh:(g+1)·dh of kv head g = j // (H / H_kv).
    With "q_norm"/"k_norm" in params each head is RMS-normalized (scale (dh,)); with
    `rope_theta` q and k heads are rotated at `positions` (default 0 … T−1). Scores
    sᵢₖ = qᵢ·kₖ/√dh (then c·tanh(s/c) with a soft-cap c) over the allowed keys
    (allowed[i, k]); softmax; a row with none gives zeros. y = [heads]·W_o (+ b_o).
    """
    (x,) = _f64(x)
    steps = x.shape[0]
    positions = np.arange(steps) if positions is None else np.asarray(positions)
    allowed = np.ones((steps, steps), bool) if allowed is None else np.asarray(allowed, bool)
    q, k, v = (_dense(x, params[n]) for n in ("q", "k", "v"))
    dh = q.shape[1] // num_heads
    group = num_heads // num_kv_heads
    heads = []
    for j in range(num_heads):
        g = j // group
        qj, kg, vg = (
            q[:, j * dh : (j + 1) * dh],
            k[:, g * dh : (g + 1) * dh],
            v[:, g * dh : (g + 1) * dh],
        )
        if "q_norm" in params:
            qj = rms_norm_reference(qj, params["q_norm"]["scale"], qk_norm_eps)
            kg = rms_norm_reference(kg, params["k_norm"]["scale"], qk_norm_eps)
        if rope_theta is not None:
            qj = rotary_reference(qj, positions, rope_theta, rope_interleaved)
            kg = rotary_reference(kg, positions, rope_theta, rope_interleaved)
        out = np.zeros((steps, dh), np.result_type(qj, kg, vg))
        for i in range(steps):
            keys = [t for t in range(steps) if allowed[i, t]]
            if not keys:
                continue
            scores = np.array([qj[i] @ kg[t] / math.sqrt(dh) for t in keys])
            if logit_soft_cap is not None:
                scores = logit_soft_cap * np.tanh(scores / logit_soft_cap)
            e = np.exp(scores - scores.real.max())
            weights = e / e.sum()
            out[i] = sum(w * vg[t] for w, t in zip(weights, keys, strict=True))
        heads.append(out)
    return _dense(np.concatenate(heads, axis=1), params["o"])


def feed_forward_reference(x, params, activation, gated):
    """gated: (f(x·W_gate) ⊙ (x·W_up))·W_down; plain: f(x·W₀ + b₀)·W₂ + b₂ (keys dense_0,
    dense_2); biases where params hold them. f = ACTIVATIONS[activation]."""
    f = ACTIVATIONS[activation]
    (x,) = _f64(x)
    if gated:
        return _dense(f(_dense(x, params["gate"])) * _dense(x, params["up"]), params["down"])
    return _dense(f(_dense(x, params["dense_0"])), params["dense_2"])


def _allowed(steps, key_mask, window):
    """(T, T): query i reads key t when t ≤ i, t is real, and i − t < window (if given)."""
    allowed = np.tril(np.ones((steps, steps), bool))
    if key_mask is not None:
        allowed &= np.asarray(key_mask, bool)[None, :]
    if window is not None:
        rows, cols = np.arange(steps)[:, None], np.arange(steps)[None, :]
        allowed &= rows - cols < window
    return allowed


def decoder_reference(ids, params, config, *, mask=None):
    """ids (N, T) → logits (N, T, V) for the decoder of `config` (unrolled params
    "block_0" …), example by example:

    x = E[ids] + P[:T] (learned table or sinusoidal; nothing for "rope"/"none")
    per block: h = x + Attn(Norm₁(x)) (causal, padded keys hidden, window);
               x = h + FF(Norm₂(h))
    logits = Norm(x)·Eᵀ (tied) or Norm(x)·W (+ b).
    """
    c = config
    ids = np.asarray(ids)
    (table,) = _f64(params["embedding"]["table"])
    steps = ids.shape[1]
    kv_heads = c.num_kv_heads or c.num_heads
    logits = []
    for n in range(ids.shape[0]):
        x = table[ids[n]]
        if c.positions == "learned":
            x = x + _f64(params["positions"]["table"])[0][:steps]
        elif c.positions == "sinusoidal":
            x = x + sinusoidal_positions_reference(steps, c.dim)
        allowed = _allowed(steps, None if mask is None else mask[n], c.sliding_window)
        for layer in range(c.num_layers):
            p = params[f"block_{layer}"]
            a = norm_reference(x, p["norm_attention"], c.norm, c.norm_eps)
            h = x + gqa_attention_reference(
                a,
                p["attention"],
                c.num_heads,
                kv_heads,
                allowed=allowed,
                rope_theta=c.rope_theta if c.positions == "rope" else None,
                rope_interleaved=c.rope_interleaved,
                qk_norm_eps=c.norm_eps,
                logit_soft_cap=c.logit_soft_cap,
            )
            m = norm_reference(h, p["norm_mlp"], c.norm, c.norm_eps)
            x = h + feed_forward_reference(m, p["mlp"], c.mlp_activation, c.gated_mlp)
        x = norm_reference(x, params["norm"], c.norm, c.norm_eps)
        logits.append(x @ table.T if c.tie_embeddings else _dense(x, params["head"]))
    return np.stack(logits)
