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

import jax
import jax.numpy as jnp

from funcnn._validation import check_floating, check_positive_int

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


def masked_softmax(scores: Array, mask: Array | None, axis: int = -1) -> Array:
    """softmax over `axis` counting only entries where mask is True; all-masked rows give 0.

        wⱼ = mⱼ·exp(sⱼ − s_max) / Σₖ mₖ·exp(sₖ − s_max),   s_max over unmasked entries

    Masked scores are replaced by s_max *before* exp, so no inf ever meets the gradient.
    """
    if mask is None:
        return jax.nn.softmax(scores, axis=axis)
    mask = jnp.broadcast_to(mask, scores.shape)
    s_max = jnp.max(jnp.where(mask, scores, -jnp.inf), axis=axis, keepdims=True)
    s_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(s_max), s_max, 0.0))
    safe = jnp.where(mask, scores, jnp.broadcast_to(s_max, scores.shape))
    e = jnp.where(mask, jnp.exp(safe - s_max), 0.0)
    total = jnp.sum(e, axis=axis, keepdims=True)
    return e / jnp.where(total > 0, total, 1.0)


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
    return masked_softmax(scores, full)


def dot_product_attention(
    q: Array, k: Array, v: Array, *, mask: Array | None = None, causal: bool = False
) -> Array:
    """softmax(Q·Kᵀ/√d)·V with masks (see `attention_weights`).

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) → (..., Tq, dv).
    """
    _check_attention_shapes(q, k, v)
    weights = attention_weights(q, k, mask=mask, causal=causal)  # (..., Tq, Tk)
    return jnp.einsum("...qk,...kd->...qd", weights, v)
