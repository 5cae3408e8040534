"""Scaled dot-product attention, masks, and multi-head attention.

    Attention(Q, K, V) = softmax(Q·Kᵀ/√d + mask)·V        (Vaswani et al. 2017)

Masks are boolean, True where a query may look at a key. A masked key gets weight exactly
0; a query row whose every key is masked gets all-zero weights (so a zero output) rather
than the 0/0 = NaN of a naive softmax, and its gradients are finite too.

Mask shapes: `dot_product_attention` takes a full mask (..., Tq, Tk) with the same rank as
the scores (size-1 axes broadcast). Layers take the sequence convention of `masking.py`: a
padding mask (B, T), True for real tokens, turned into a key mask here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcnn._validation import check_floating, check_positive_int
from funcnn.activations import softmax
from funcnn.nn.core import Layer, Params, Shape, as_shape
from funcnn.nn.dense import dense
from funcnn.nn.masking import check_mask

__all__ = [
    "attention_weights",
    "causal_mask",
    "dot_product_attention",
    "key_padding_mask",
    "multi_head_attention",
]

Array = jax.Array


def causal_mask(query_len: int, key_len: int | None = None) -> Array:
    """(Tq, Tk) bool, True where key j ≤ query i + (Tk − Tq): no query sees a later key.

    With Tk > Tq the queries are the last Tq positions of the keys (decoding with a cache).
    """
    check_positive_int(query_len, "query_len")
    key_len = query_len if key_len is None else check_positive_int(key_len, "key_len")
    offset = key_len - query_len
    return jnp.arange(key_len)[None, :] <= jnp.arange(query_len)[:, None] + offset


def key_padding_mask(mask: Array) -> Array:
    """Padding mask (B, Tk) → attention mask (B, 1, 1, Tk): every query ignores padded keys."""
    return mask[:, None, None, :]


def _check_attention_shapes(q: Array, k: Array, v: Array) -> None:
    for arg, name in ((q, "q"), (k, "k"), (v, "v")):
        check_floating(arg, name)
        if jnp.ndim(arg) < 2:
            raise ValueError(f"attention: {name} must be (..., time, dim), got {jnp.shape(arg)}.")
    if not (q.ndim == k.ndim == v.ndim):
        raise ValueError(
            f"attention: q, k, v must have the same rank, got q{q.shape}, k{k.shape}, v{v.shape}."
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"attention: q and k need the same last dim, got q{q.shape} and k{k.shape}."
        )
    if k.shape[-2] != v.shape[-2] or q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(
            f"attention: expected q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) with equal "
            f"leading dims, got q{q.shape}, k{k.shape}, v{v.shape}."
        )


def _check_full_mask(mask: Array, scores_shape: tuple[int, ...]) -> Array:
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"attention: mask must be boolean (True = may attend), got {mask.dtype}.")
    ok = mask.ndim == len(scores_shape) and all(
        m in (1, s) for m, s in zip(mask.shape, scores_shape, strict=True)
    )
    if not ok:
        raise ValueError(
            f"attention: mask of shape {mask.shape} does not fit the scores {scores_shape} "
            f"(..., Tq, Tk); give it the same rank with size-1 axes to broadcast, e.g. "
            f"key_padding_mask(padding) for (B, 1, 1, Tk)."
        )
    return mask


def attention_weights(
    q: Array, k: Array, *, mask: Array | None = None, causal: bool = False
) -> Array:
    """Attention weights softmax(Q·Kᵀ/√d) over keys: q (..., Tq, d), k (..., Tk, d) → (..., Tq, Tk).

    `mask` (bool, same rank as the result, size-1 axes broadcast) and `causal` are combined
    with AND; masked weights are exactly 0 and a fully masked row is all zeros.
    """
    scores = jnp.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    full = None if mask is None else _check_full_mask(mask, scores.shape)
    if causal:
        tril = causal_mask(q.shape[-2], k.shape[-2]).reshape(
            (1,) * (q.ndim - 2) + scores.shape[-2:]
        )
        full = tril if full is None else jnp.logical_and(full, tril)
    # softmax(where=…) gives masked keys weight 0 and a fully masked row all zeros, no NaN.
    return softmax(scores, axis=-1, where=full)


def dot_product_attention(
    q: Array, k: Array, v: Array, *, mask: Array | None = None, causal: bool = False
) -> Array:
    """softmax(Q·Kᵀ/√d)·V with masks (see `attention_weights`).

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) → (..., Tq, dv).
    """
    _check_attention_shapes(q, k, v)
    weights = attention_weights(q, k, mask=mask, causal=causal)  # (..., Tq, Tk)
    return jnp.einsum("...qk,...kd->...qd", weights, v)


def _split_heads(x: Array, num_heads: int) -> Array:
    """(..., T, H·dh) → (..., H, T, dh): head j takes columns j·dh:(j+1)·dh."""
    *lead, steps, width = x.shape
    x = jnp.reshape(x, (*lead, steps, num_heads, width // num_heads))
    return jnp.swapaxes(x, -3, -2)


def _merge_heads(x: Array) -> Array:
    """(..., H, T, dh) → (..., T, H·dh), heads concatenated in order."""
    x = jnp.swapaxes(x, -3, -2)
    return jnp.reshape(x, (*x.shape[:-2], x.shape[-2] * x.shape[-1]))


def multi_head_attention(
    dim: int,
    *,
    num_heads: int,
    causal: bool = False,
    out_features: int | None = None,
    name: str = "multi_head_attention",
) -> Layer:
    """Multi-head attention (Vaswani et al. 2017) over x (..., Tq, D) and context (..., Tk, D).

        Q = x·W_q + b_q,  K = c·W_k + b_k,  V = c·W_v + b_v          (…, T, dim)
        headⱼ = Attention(Q[:, cols j], K[:, cols j], V[:, cols j]),  cols j = j·dh:(j+1)·dh
        y = [head₀ … head_{H−1}]·W_o + b_o                             (…, Tq, out_features)

    params {"q", "k", "v", "o"}, each a dense {"w", "b"}; dh = dim / num_heads.
    apply(params, x, *, mask=None, context=None, context_mask=None): self-attention by
    default (c = x). `mask` (..., Tq) marks real query steps; in self-attention it also hides
    padded keys. `context_mask` (..., Tk) hides padded context keys in cross-attention.
    `causal=True` lets step i attend only to keys j ≤ i. Outputs at padded queries are
    computed but meaningless — mask them in the loss.
    """
    check_positive_int(num_heads, "num_heads")
    check_positive_int(dim, "dim")
    if dim % num_heads:
        raise ValueError(
            f"{name}: dim={dim} must be divisible by num_heads={num_heads} (each head gets "
            f"dim/num_heads columns)."
        )
    projections = {p: dense(dim, name=p) for p in ("q", "k", "v")}

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        if len(shape) < 2 or shape[-1] == -1:
            raise ValueError(f"{name}: expects (..., time, features), got in_shape={shape}.")
        out = shape[-1] if out_features is None else out_features
        keys = jax.random.split(key, 4)
        params = {
            p: layer.init(k, shape)[0]
            for (p, layer), k in zip(projections.items(), keys[:3], strict=True)
        }
        params["o"], _ = dense(out, name="o").init(keys[3], (*shape[:-1], dim))
        return params, (*shape[:-1], out)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        context: Array | None = None,
        context_mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train
        check_floating(x, f"{name} input x")
        if jnp.ndim(x) < 2:
            raise ValueError(f"{name}: expects x of shape (..., time, features), got {x.shape}.")
        self_attention = context is None
        context = x if self_attention else context
        if context.shape[:-2] != x.shape[:-2]:
            raise ValueError(
                f"{name}: x {x.shape} and context {context.shape} need the same leading dims."
            )
        mask = check_mask(mask, x.shape[:-1], name)
        context_mask = check_mask(context_mask, context.shape[:-1], f"{name} context")
        if self_attention:
            context_mask = mask
        q = _split_heads(projections["q"].apply(params["q"], x), num_heads)  # (..., H, Tq, dh)
        k = _split_heads(
            projections["k"].apply(params["k"], context), num_heads
        )  # (..., H, Tk, dh)
        v = _split_heads(
            projections["v"].apply(params["v"], context), num_heads
        )  # (..., H, Tk, dh)
        full = None if context_mask is None else context_mask[..., None, None, :]  # (..., 1, 1, Tk)
        heads = dot_product_attention(q, k, v, mask=full, causal=causal)  # (..., H, Tq, dh)
        y = _merge_heads(heads)  # (..., Tq, dim)
        return dense(params["o"]["w"].shape[-1], name="o").apply(params["o"], y)

    return Layer(init, apply, name)
