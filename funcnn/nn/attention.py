"""Scaled dot-product attention, masks, and multi-head attention.

    Attention(Q, K, V) = softmax(Q·Kᵀ/√d + mask)·V        (Vaswani et al. 2017)

Masks are boolean, True where a query may look at a key. A masked key gets weight exactly
0; a query row whose every key is masked gets all-zero weights (so a zero output) rather
than the 0/0 = NaN of a naive softmax, and its gradients are finite too.

Options of the modern decoders, all in both implementations below:
- sliding window (Mistral, Gemma 2): query i sees only keys j with i − j < window;
- logit soft-cap (Gemma 2): each score s becomes c·tanh(s/c) before the softmax;
- in `multi_head_attention`: grouped-query heads (`num_kv_heads`; query head j reads kv head
  j // (H/H_kv)), QK-norm, rotary embeddings (`nn.rotary`), bias switches, and a KV cache
  {"k", "v"} (B, H_kv, L, dh) written at absolute positions — the same layer for training
  and for decoding.

Mask shapes: `dot_product_attention` takes a full mask (..., Tq, Tk) with the same rank as
the scores (size-1 axes broadcast). Layers take the sequence convention of `masking.py`: a
padding mask (B, T), True for real tokens, turned into a key mask here.

Implementations (`implementation=` on `dot_product_attention`, `multi_head_attention`, and
through them the transformer), all computing the same function:

- "plain": the scores (..., Tq, Tk) are materialized, softmax, then ·V. Memory O(Tq·Tk).
- "chunked": flash-style online softmax (Milakov & Gimelshein 2018; Dao et al. 2022).
  Queries and keys are cut into blocks of `chunk_size`; for each query block a `lax.scan`
  over key blocks keeps a running max m, running sum ℓ and accumulator a:
      m' = max(m, maxⱼ sᵢⱼ),  ℓ' = ℓ·e^{m−m'} + Σⱼ e^{sᵢⱼ−m'},  a' = a·e^{m−m'} + Σⱼ e^{sᵢⱼ−m'}·vⱼ
  and y = a/ℓ at the end. The backward pass is a custom VJP that keeps only y and the
  log-sum-exp L = m + log ℓ per row and recomputes each block's weights pᵢⱼ = e^{sᵢⱼ−Lᵢ}
  (flash-attention backward: dV = Pᵀ·dY, dS = P ⊙ (dY·Vᵀ − rowsum(dY ⊙ Y)),
  dQ = dS·K/√d, dK = dSᵀ·Q/√d), so neither pass stores a (Tq, Tk) array: memory
  O((Tq + Tk)·d + chunk_size²) per batch·head. T not a multiple of `chunk_size` is zero-padded
  to one, the padded keys are masked out and the padded queries dropped. A chunk_size larger
  than T is clamped to T. Masks, causal and fully masked rows (zeros, zero gradients) behave
  exactly as in "plain"; values agree to float32 rounding (≤ 1e-5), not bitwise, since the
  sum is accumulated block by block. An explicit (Tq, Tk) mask is an input and is of course
  still held in memory; `causal=True` and key padding masks (..., 1, 1, Tk) are not.
- "auto" (default): `jax.nn.dot_product_attention(implementation="cudnn")` — the fused cuDNN
  flash kernel — when the backend is GPU and the call fits it (rank 4 (B, H, T, dh), float16
  or bfloat16, dh ≤ 128 and a multiple of 8, no `mask` since cuDNN would give a fully masked
  row the mean of V instead of zeros, and not causal with Tq ≠ Tk); otherwise "plain". On
  CPU/TPU "auto" is therefore exactly "plain", bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn import initializers
from funcnn._validation import check_choice, check_floating, check_positive_int, check_real
from funcnn.activations import softmax
from funcnn.nn.core import Layer, Params, Shape, as_shape
from funcnn.nn.dense import dense
from funcnn.nn.masking import check_mask
from funcnn.nn.norm import rms_norm
from funcnn.nn.rotary import apply_rotary

__all__ = [
    "IMPLEMENTATIONS",
    "KVCache",
    "attention_weights",
    "causal_mask",
    "dot_product_attention",
    "init_kv_cache",
    "key_padding_mask",
    "multi_head_attention",
    "repeat_kv",
    "soft_cap",
    "window_mask",
]

Array = jax.Array

IMPLEMENTATIONS = ("auto", "plain", "chunked")
"""Valid values of `implementation=`: "auto" (cuDNN on GPU where it fits, else "plain"),
"plain" (materialized scores) and "chunked" (online softmax, linear memory)."""


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


def window_mask(query_len: int, key_len: int, window: int) -> Array:
    """(Tq, Tk) bool, True where query i is fewer than `window` steps after key j:
    (i + Tk − Tq) − j < window (sliding-window attention, Mistral/Gemma 2). Keys after the
    query are not hidden by this mask — combine it with `causal`."""
    check_positive_int(window, "window")
    offset = key_len - query_len
    return jnp.arange(query_len)[:, None] + offset - jnp.arange(key_len)[None, :] < window


def soft_cap(scores: Array, cap: float) -> Array:
    """Logit soft-capping (Gemma 2): s ↦ cap·tanh(s/cap), smooth and bounded by ±cap."""
    return cap * jnp.tanh(scores / cap)


def _check_score_options(window: int | None, logit_cap: float | None) -> None:
    if window is not None:
        check_positive_int(window, "window")
    if logit_cap is not None and check_real(logit_cap, "logit_soft_cap") <= 0:
        raise ValueError(f"attention: logit_soft_cap must be > 0, got {logit_cap}.")


def attention_weights(
    q: Array,
    k: Array,
    *,
    mask: Array | None = None,
    causal: bool = False,
    window: int | None = None,
    logit_soft_cap: float | None = None,
) -> Array:
    """Attention weights softmax(Q·Kᵀ/√d) over keys: q (..., Tq, d), k (..., Tk, d) → (..., Tq, Tk).

    `mask` (bool, same rank as the result, size-1 axes broadcast), `causal` and `window`
    (a query sees only the last `window` keys up to its own position: `window_mask`) are
    combined with AND; masked weights are exactly 0 and a fully masked row is all zeros.
    `logit_soft_cap` c replaces each score s by c·tanh(s/c) before the softmax.
    """
    _check_score_options(window, logit_soft_cap)
    scores = jnp.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if logit_soft_cap is not None:
        scores = soft_cap(scores, logit_soft_cap)
    full = None if mask is None else _check_full_mask(mask, scores.shape)
    lead = (1,) * (q.ndim - 2)
    if causal:
        tril = causal_mask(q.shape[-2], k.shape[-2]).reshape(lead + scores.shape[-2:])
        full = tril if full is None else jnp.logical_and(full, tril)
    if window is not None:
        band = window_mask(q.shape[-2], k.shape[-2], window).reshape(lead + scores.shape[-2:])
        full = band if full is None else jnp.logical_and(full, band)
    # softmax(where=…) gives masked keys weight 0 and a fully masked row all zeros, no NaN.
    return softmax(scores, axis=-1, where=full)


def _check_implementation(implementation: str, chunk_size: int) -> None:
    check_choice(implementation, "implementation", IMPLEMENTATIONS)
    check_positive_int(chunk_size, "chunk_size")


def dot_product_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    mask: Array | None = None,
    causal: bool = False,
    implementation: str = "auto",
    chunk_size: int = 128,
    window: int | None = None,
    logit_soft_cap: float | None = None,
) -> Array:
    """softmax(Q·Kᵀ/√d)·V with masks, sliding window and soft-cap (see `attention_weights`).

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) → (..., Tq, dv).
    `implementation` ∈ IMPLEMENTATIONS chooses how it is computed (see the module docstring):
    "plain" materializes the (..., Tq, Tk) scores; "chunked" runs an online softmax over
    blocks of `chunk_size` queries × keys with O(T) memory in both passes; "auto" uses the
    fused cuDNN kernel on GPU where it fits, else "plain". All give the same values and
    gradients (float32: ≤ 1e-5), masked keys weight 0 and fully masked rows zeros.
    """
    _check_implementation(implementation, chunk_size)
    _check_score_options(window, logit_soft_cap)
    _check_attention_shapes(q, k, v)
    if mask is not None:
        scores_shape = (*q.shape[:-1], k.shape[-2])
        mask = _check_full_mask(mask, scores_shape)
    if implementation == "chunked":
        return _chunked_attention(q, k, v, mask, causal, chunk_size, window, logit_soft_cap)
    if implementation == "auto" and window is None and logit_soft_cap is None:
        fused = _cudnn_attention(q, k, v, mask, causal)
        if fused is not None:
            return fused
    weights = attention_weights(
        q, k, mask=mask, causal=causal, window=window, logit_soft_cap=logit_soft_cap
    )  # (..., Tq, Tk)
    return jnp.einsum("...qk,...kd->...qd", weights, v)


def _cudnn_attention(
    q: Array, k: Array, v: Array, mask: Array | None, causal: bool
) -> Array | None:
    """The fused cuDNN kernel for (B, H, T, dh) on GPU, or None where it does not apply."""
    if jax.default_backend() != "gpu" or mask is not None or q.ndim != 4:
        return None
    dtype = jnp.result_type(q, k, v)
    head_dim = q.shape[-1]
    if (
        dtype not in (jnp.float16, jnp.bfloat16)
        or q.dtype != k.dtype
        or k.dtype != v.dtype
        or v.shape[-1] != head_dim
        or head_dim > 128
        or head_dim % 8
        or (causal and q.shape[-2] != k.shape[-2])
    ):
        return None
    try:  # jax checks cuDNN's version and limits at trace time and raises where it cannot
        out = jax.nn.dot_product_attention(
            jnp.swapaxes(q, 1, 2),  # (B, T, H, dh): jax's layout
            jnp.swapaxes(k, 1, 2),
            jnp.swapaxes(v, 1, 2),
            is_causal=causal,
            implementation="cudnn",
        )
    except (NotImplementedError, RuntimeError, ValueError, TypeError):
        return None
    return jnp.swapaxes(out, 1, 2)


class _ChunkPlan(NamedTuple):
    """Static layout of a chunked attention call (hashable: a custom_vjp nondiff arg)."""

    causal: bool
    q_chunk: int
    k_chunk: int
    q_len: int  # true Tq, before padding
    k_len: int  # true Tk, before padding
    window: int | None = None  # sliding window (keys within `window` steps before the query)
    logit_cap: float | None = None  # soft-cap c: s ↦ c·tanh(s/c)


def _pad_axis(x: Array, axis: int, size: int, value: Any = 0) -> Array:
    """Pad axis `axis` of x at the end to `size` with `value` (no-op if already that size)."""
    extra = size - x.shape[axis]
    if extra == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, extra)
    return jnp.pad(x, widths, constant_values=value)


def _chunked_attention(
    q: Array,
    k: Array,
    v: Array,
    mask: Array | None,
    causal: bool,
    chunk_size: int,
    window: int | None = None,
    logit_cap: float | None = None,
) -> Array:
    """Pad to whole chunks, run the online-softmax kernel, drop the padded queries."""
    tq, tk = q.shape[-2], k.shape[-2]
    cq, ck = min(chunk_size, tq), min(chunk_size, tk)
    tq_pad, tk_pad = -(-tq // cq) * cq, -(-tk // ck) * ck
    full = jnp.ones((1,) * q.ndim, bool) if mask is None else mask
    if full.shape[-2] != 1:
        full = _pad_axis(full, -2, tq_pad, False)
    if full.shape[-1] != 1:
        full = _pad_axis(full, -1, tk_pad, False)
    cap = None if logit_cap is None else float(logit_cap)
    plan = _ChunkPlan(bool(causal), cq, ck, tq, tk, window, cap)
    out = _flash(
        _pad_axis(q, -2, tq_pad),
        _pad_axis(k, -2, tk_pad),
        _pad_axis(v, -2, tk_pad),
        full,
        plan,
    )
    return out[..., :tq, :]


def _block_allowed(mask: Array, i: Array, j: Array, plan: _ChunkPlan, rank: int) -> Array:
    """Bool (..., cq, ck) (size-1 axes broadcast): may query block i look at key block j."""
    cq, ck = plan.q_chunk, plan.k_chunk
    allowed = mask
    if allowed.shape[-2] != 1:
        allowed = jax.lax.dynamic_slice_in_dim(allowed, i * cq, cq, axis=rank - 2)
    if allowed.shape[-1] != 1:
        allowed = jax.lax.dynamic_slice_in_dim(allowed, j * ck, ck, axis=rank - 1)
    cols = j * ck + jnp.arange(ck)  # (ck,) key positions
    if -(-plan.k_len // ck) * ck != plan.k_len:  # padded keys exist: hide them
        real = (cols < plan.k_len).reshape((1,) * (rank - 1) + (ck,))
        allowed = jnp.logical_and(allowed, real)
    rows = i * cq + jnp.arange(cq) + (plan.k_len - plan.q_len)  # (cq,) query positions
    if plan.causal:
        seen = cols[None, :] <= rows[:, None]  # as causal_mask
        allowed = jnp.logical_and(allowed, seen.reshape((1,) * (rank - 2) + (cq, ck)))
    if plan.window is not None:
        near = rows[:, None] - cols[None, :] < plan.window  # as window_mask
        allowed = jnp.logical_and(allowed, near.reshape((1,) * (rank - 2) + (cq, ck)))
    return allowed


def _scores(qi: Array, kj: Array, plan: _ChunkPlan, scale: float, dtype: Any) -> Array:
    """One block's scores s = q·kᵀ/√d (soft-capped when asked), in the accumulator dtype."""
    s = (jnp.einsum("...qd,...kd->...qk", qi, kj) / scale).astype(dtype)
    return s if plan.logit_cap is None else soft_cap(s, plan.logit_cap)


def _flash_forward(
    q: Array, k: Array, v: Array, mask: Array, plan: _ChunkPlan
) -> tuple[Array, Array]:
    """Online softmax over key blocks for each query block → (y (..., Tq', dv), L (..., Tq'))."""
    rank, lead = q.ndim, q.shape[:-2]
    cq, ck = plan.q_chunk, plan.k_chunk
    nq, nk = q.shape[-2] // cq, k.shape[-2] // ck
    scale = math.sqrt(q.shape[-1])
    acc_dtype = jnp.promote_types(jnp.result_type(q, k, v), jnp.float32)
    neg_inf = jnp.asarray(-jnp.inf, acc_dtype)

    def query_block(_: None, i: Array) -> tuple[None, tuple[Array, Array]]:
        qi = jax.lax.dynamic_slice_in_dim(q, i * cq, cq, axis=rank - 2)  # (..., cq, d)

        def key_block(
            carry: tuple[Array, Array, Array], j: Array
        ) -> tuple[tuple[Array, Array, Array], None]:
            m, total, acc = carry  # (..., cq), (..., cq), (..., cq, dv)
            kj = jax.lax.dynamic_slice_in_dim(k, j * ck, ck, axis=rank - 2)
            vj = jax.lax.dynamic_slice_in_dim(v, j * ck, ck, axis=rank - 2)
            s = _scores(qi, kj, plan, scale, acc_dtype)
            allowed = _block_allowed(mask, i, j, plan, rank)
            m_new = jnp.maximum(m, jnp.max(jnp.where(allowed, s, neg_inf), axis=-1))
            m_safe = jnp.where(jnp.isfinite(m_new), m_new, jnp.zeros_like(m_new))
            p = jnp.where(allowed, jnp.exp(s - m_safe[..., None]), jnp.zeros_like(s))
            correction = jnp.exp(m - m_safe)  # 0 while m = −∞ (nothing seen yet)
            total = total * correction + jnp.sum(p, axis=-1)
            acc = acc * correction[..., None] + jnp.einsum(
                "...qk,...kd->...qd", p, vj.astype(acc_dtype)
            )
            return (m_new, total, acc), None

        init = (
            jnp.full((*lead, cq), -jnp.inf, acc_dtype),
            jnp.zeros((*lead, cq), acc_dtype),
            jnp.zeros((*lead, cq, v.shape[-1]), acc_dtype),
        )
        (m, total, acc), _ = jax.lax.scan(key_block, init, jnp.arange(nk))
        empty = total == 0  # a fully masked row: zeros, like softmax(where=…)
        safe_total = jnp.where(empty, jnp.ones_like(total), total)
        m_safe = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))
        lse = jnp.where(empty, jnp.zeros_like(m), m_safe + jnp.log(safe_total))
        return None, (acc / safe_total[..., None], lse)

    _, (ys, lses) = jax.lax.scan(query_block, None, jnp.arange(nq))  # (nq, ..., cq, dv)
    y = jnp.moveaxis(ys, 0, -3).reshape((*lead, nq * cq, v.shape[-1]))
    lse = jnp.moveaxis(lses, 0, -2).reshape((*lead, nq * cq))
    return y.astype(jnp.result_type(q, k, v)), lse


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def _flash(q: Array, k: Array, v: Array, mask: Array, plan: _ChunkPlan) -> Array:
    return _flash_forward(q, k, v, mask, plan)[0]


def _flash_fwd(
    q: Array, k: Array, v: Array, mask: Array, plan: _ChunkPlan
) -> tuple[Array, tuple[Array, ...]]:
    y, lse = _flash_forward(q, k, v, mask, plan)
    return y, (q, k, v, mask, y, lse)


def _flash_bwd(
    plan: _ChunkPlan, residuals: tuple[Array, ...], dy: Array
) -> tuple[Array, Array, Array, None]:
    """Recompute each block's weights from L; accumulate dQ, dK, dV block by block."""
    q, k, v, mask, y, lse = residuals
    rank, lead = q.ndim, q.shape[:-2]
    cq, ck = plan.q_chunk, plan.k_chunk
    nq, nk = q.shape[-2] // cq, k.shape[-2] // ck
    scale = math.sqrt(q.shape[-1])
    acc_dtype = lse.dtype
    dy = dy.astype(acc_dtype)
    delta = jnp.sum(dy * y.astype(acc_dtype), axis=-1)  # (..., Tq') rowsum(dY ⊙ Y)

    def key_block(dq: Array, j: Array) -> tuple[Array, tuple[Array, Array]]:
        kj = jax.lax.dynamic_slice_in_dim(k, j * ck, ck, axis=rank - 2)  # (..., ck, d)
        vj = jax.lax.dynamic_slice_in_dim(v, j * ck, ck, axis=rank - 2)

        def query_block(
            carry: tuple[Array, Array, Array], i: Array
        ) -> tuple[tuple[Array, Array, Array], None]:
            dq, dk_j, dv_j = carry
            qi = jax.lax.dynamic_slice_in_dim(q, i * cq, cq, axis=rank - 2)  # (..., cq, d)
            dyi = jax.lax.dynamic_slice_in_dim(dy, i * cq, cq, axis=rank - 2)
            lse_i = jax.lax.dynamic_slice_in_dim(lse, i * cq, cq, axis=rank - 2)
            delta_i = jax.lax.dynamic_slice_in_dim(delta, i * cq, cq, axis=rank - 2)
            s = _scores(qi, kj, plan, scale, acc_dtype)
            allowed = _block_allowed(mask, i, j, plan, rank)
            p = jnp.where(allowed, jnp.exp(s - lse_i[..., None]), jnp.zeros_like(s))
            dv_j = dv_j + jnp.einsum("...qk,...qd->...kd", p, dyi)
            dp = jnp.einsum("...qd,...kd->...qk", dyi, vj.astype(acc_dtype))
            ds = p * (dp - delta_i[..., None]) / scale  # ∂/∂(q·k) = ∂/∂s · 1/√d
            if plan.logit_cap is not None:  # s = c·tanh(r/c): ∂s/∂r = 1 − (s/c)²
                ds = ds * (1.0 - jnp.square(s / plan.logit_cap))
            dk_j = dk_j + jnp.einsum("...qk,...qd->...kd", ds, qi.astype(acc_dtype))
            dq_i = jax.lax.dynamic_slice_in_dim(dq, i * cq, cq, axis=rank - 2)
            dq_i = dq_i + jnp.einsum("...qk,...kd->...qd", ds, kj.astype(acc_dtype))
            dq = jax.lax.dynamic_update_slice_in_dim(dq, dq_i, i * cq, axis=rank - 2)
            return (dq, dk_j, dv_j), None

        init = (
            dq,
            jnp.zeros((*lead, ck, k.shape[-1]), acc_dtype),
            jnp.zeros((*lead, ck, v.shape[-1]), acc_dtype),
        )
        (dq, dk_j, dv_j), _ = jax.lax.scan(query_block, init, jnp.arange(nq))
        return dq, (dk_j, dv_j)

    dq, (dks, dvs) = jax.lax.scan(key_block, jnp.zeros(q.shape, acc_dtype), jnp.arange(nk))
    dk = jnp.moveaxis(dks, 0, -3).reshape(k.shape)
    dv = jnp.moveaxis(dvs, 0, -3).reshape(v.shape)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None


_flash.defvjp(_flash_fwd, _flash_bwd)


def _split_heads(x: Array, num_heads: int) -> Array:
    """(..., T, H·dh) → (..., H, T, dh): head j takes columns j·dh:(j+1)·dh."""
    *lead, steps, width = x.shape
    x = jnp.reshape(x, (*lead, steps, num_heads, width // num_heads))
    return jnp.swapaxes(x, -3, -2)


def _merge_heads(x: Array) -> Array:
    """(..., H, T, dh) → (..., T, H·dh), heads concatenated in order."""
    x = jnp.swapaxes(x, -3, -2)
    return jnp.reshape(x, (*x.shape[:-2], x.shape[-2] * x.shape[-1]))


def repeat_kv(x: Array, groups: int) -> Array:
    """(..., H_kv, T, dh) → (..., H_kv·groups, T, dh): kv head g serves query heads
    g·groups … (g+1)·groups − 1, so query head j reads kv head j // groups (Llama's order)."""
    return x if groups == 1 else jnp.repeat(x, groups, axis=-3)


KVCache = dict[str, Array]
"""One attention layer's cache: {"k": (B, H_kv, L, dh), "v": (B, H_kv, L, dh)}; slot j holds
the (rotated) key and value of absolute position j."""


def init_kv_cache(
    batch: int, num_kv_heads: int, length: int, head_dim: int, dtype: Any = jnp.float32
) -> KVCache:
    """Zero K/V cache {"k", "v"} of shape (batch, num_kv_heads, length, head_dim) each."""
    for value, arg in (
        (batch, "batch"),
        (num_kv_heads, "num_kv_heads"),
        (length, "length"),
        (head_dim, "head_dim"),
    ):
        check_positive_int(value, arg)
    shape = (batch, num_kv_heads, length, head_dim)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def multi_head_attention(
    dim: int,
    *,
    num_heads: int,
    num_kv_heads: int | None = None,
    causal: bool = False,
    out_features: int | None = None,
    use_bias: bool = True,
    out_bias: bool | None = None,
    qk_norm: bool = False,
    qk_norm_eps: float = 1e-6,
    rope_theta: float | None = None,
    rope_interleaved: bool = False,
    window: int | None = None,
    logit_soft_cap: float | None = None,
    w_init: initializers.Initializer | None = None,
    o_init: initializers.Initializer | None = None,
    implementation: str = "auto",
    chunk_size: int = 128,
    name: str = "multi_head_attention",
) -> Layer:
    """Multi-head attention (Vaswani et al. 2017) with grouped-query heads (Ainslie et al. 2023)
    over x (..., Tq, D) and context (..., Tk, D):

        Q = x·W_q + b_q  (…, Tq, H·dh)    K = c·W_k + b_k,  V = c·W_v + b_v  (…, Tk, H_kv·dh)
        [qk_norm]  Q_j ← rms_norm(Q_j)·s_q,  K_g ← rms_norm(K_g)·s_k   per head, over dh
        [rope]     Q_j ← R(pos)·Q_j,  K_g ← R(pos)·K_g                 (`nn.rotary`)
        headⱼ = Attention(Q_j, K_{j // (H/H_kv)}, V_{j // (H/H_kv)})  (columns j·dh:(j+1)·dh)
        y = [head₀ … head_{H−1}]·W_o + b_o                             (…, Tq, out_features)

    dh = dim / num_heads. `num_kv_heads` (default num_heads: plain multi-head attention;
    1: multi-query attention) must divide num_heads; query head j reads kv head
    j // (num_heads / num_kv_heads). params {"q": (D, H·dh), "k", "v": (D, H_kv·dh), "o":
    (H·dh, out)} each a dense {"w", "b"} ("b" only with `use_bias`; `out_bias` defaults to
    `use_bias`), plus {"q_norm", "k_norm": {"scale": (dh,)}} with `qk_norm`.
    `rope_theta` (None: no rotation) rotates q and k by their absolute positions
    (rotate-half; `rope_interleaved=True` for RoFormer's pairs). `window` limits each query
    to the last `window` keys up to itself; `logit_soft_cap` c caps scores at c·tanh(s/c).
    `w_init`/`o_init` initialize the q, k, v and the output weights (default lecun_normal).

    apply(params, x, *, mask=None, context=None, context_mask=None, positions=None,
    cache=None): self-attention by default (c = x). `mask` (..., Tq) marks real query steps;
    in self-attention it also hides padded keys. `context_mask` (..., Tk) hides padded context
    keys in cross-attention. Padded keys and values are zeroed before any arithmetic, so what
    a padded step holds (even NaN or inf) changes no output or gradient at the real steps.
    `causal=True` lets step i attend only to keys j ≤ i. Outputs at padded queries are
    computed but meaningless — mask them in the loss. `positions` (T,) int are the absolute
    positions of x's steps (default 0 … T−1), used by RoPE and by the cache.

    KV cache (self-attention, decoding): with `cache` = {"k", "v"} (B, H_kv, L, dh) (see
    `init_kv_cache`), the new keys and values are written into the slots `positions`, each
    query at position p attends to the slots j ≤ p (and p − j < window), and apply returns
    (y, new_cache) — the same projections, norms and rotation as the uncached call, so the
    outputs agree with it. `mask` must be None there (every cached step is real).
    `implementation` ("auto", "plain", "chunked") and `chunk_size` choose how
    `dot_product_attention` computes the heads ("chunked" needs O(T) instead of O(T²)
    memory and supports every option above).
    """
    _check_implementation(implementation, chunk_size)
    _check_score_options(window, logit_soft_cap)
    check_positive_int(num_heads, "num_heads")
    check_positive_int(dim, "dim")
    kv_heads = (
        num_heads if num_kv_heads is None else check_positive_int(num_kv_heads, "num_kv_heads")
    )
    if dim % num_heads:
        raise ValueError(
            f"{name}: dim={dim} must be divisible by num_heads={num_heads} (each head gets "
            f"dim/num_heads columns)."
        )
    if num_heads % kv_heads:
        raise ValueError(
            f"{name}: num_kv_heads={kv_heads} must divide num_heads={num_heads} (each kv head "
            f"serves num_heads/num_kv_heads query heads)."
        )
    head_dim, groups = dim // num_heads, num_heads // kv_heads
    if rope_theta is not None and head_dim % 2:
        raise ValueError(f"{name}: rotary embedding needs an even head_dim, got {head_dim}.")
    out_bias = use_bias if out_bias is None else out_bias
    projections = {
        "q": dense(dim, use_bias=use_bias, w_init=w_init, name="q"),
        "k": dense(kv_heads * head_dim, use_bias=use_bias, w_init=w_init, name="k"),
        "v": dense(kv_heads * head_dim, use_bias=use_bias, w_init=w_init, name="v"),
    }
    norms = {"q_norm": rms_norm(eps=qk_norm_eps, name="q_norm")} if qk_norm else {}
    if qk_norm:
        norms["k_norm"] = rms_norm(eps=qk_norm_eps, name="k_norm")

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
        output = dense(out, use_bias=out_bias, w_init=o_init or w_init, name="o")
        params["o"], _ = output.init(keys[3], (*shape[:-1], dim))
        for n, layer in norms.items():
            params[n], _ = layer.init(key, (head_dim,))
        return params, (*shape[:-1], out)

    def heads(p: str, params: Params, h: Array, count: int, positions: Array) -> Array:
        """Project, split into heads (..., count, T, dh), qk-norm and rotate."""
        y = _split_heads(projections[p].apply(params[p], h), count)
        if p == "v":
            return y  # values are neither normalized nor rotated
        if qk_norm:
            y = norms[f"{p}_norm"].apply(params[f"{p}_norm"], y)
        if rope_theta is not None:
            y = apply_rotary(y, positions, theta=rope_theta, interleaved=rope_interleaved)
        return y

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        context: Array | None = None,
        context_mask: Array | None = None,
        positions: Array | None = None,
        cache: KVCache | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array | tuple[Array, KVCache]:
        del key, train
        check_floating(x, f"{name} input x")
        if jnp.ndim(x) < 2:
            raise ValueError(f"{name}: expects x of shape (..., time, features), got {x.shape}.")
        self_attention = context is None
        if cache is not None and not self_attention:
            raise ValueError(f"{name}: a KV cache is for self-attention; got a context too.")
        context = x if context is None else context
        if context.shape[:-2] != x.shape[:-2]:
            raise ValueError(
                f"{name}: x {x.shape} and context {context.shape} need the same leading dims."
            )
        mask = check_mask(mask, x.shape[:-1], name)
        context_mask = check_mask(context_mask, context.shape[:-1], f"{name} context")
        if self_attention:
            context_mask = mask
        # Padded steps are zeroed before any arithmetic (where, not multiply: 0·NaN = NaN), so
        # their content reaches neither the real outputs nor the gradients.
        if mask is not None:
            x = jnp.where(mask[..., None], x, jnp.zeros_like(x))
        if context_mask is not None:
            context = x if self_attention else context
            context = jnp.where(context_mask[..., None], context, jnp.zeros_like(context))
        steps = x.shape[-2]
        positions = _check_positions(positions, steps, name)
        context_positions = positions if self_attention else jnp.arange(context.shape[-2])
        q = heads("q", params, x, num_heads, positions)  # (..., H, Tq, dh)
        k = heads("k", params, context, kv_heads, context_positions)  # (..., H_kv, Tk, dh)
        v = heads("v", params, context, kv_heads, context_positions)  # (..., H_kv, Tk, dh)
        if cache is None and (steps == 0 or context.shape[-2] == 0):
            # No queries, or nothing to attend to: the empty sum, never a max over nothing.
            y = jnp.zeros((*q.shape[:-1], v.shape[-1]), q.dtype)  # (..., H, Tq, dh)
            return _output(params, y)
        if cache is None:
            full = None if context_mask is None else context_mask[..., None, None, :]
            y = dot_product_attention(
                q,
                repeat_kv(k, groups),
                repeat_kv(v, groups),
                mask=full,  # (..., 1, 1, Tk)
                causal=causal,
                window=window,
                logit_soft_cap=logit_soft_cap,
                implementation=implementation,
                chunk_size=chunk_size,
            )  # (..., H, Tq, dh)
            return _output(params, y)
        if mask is not None:
            raise ValueError(f"{name}: mask must be None with a cache (every cached step is real).")
        cache = _check_cache(cache, (*x.shape[:-2], kv_heads), head_dim, name)
        # Slot j of the cache holds position j: write the new steps into their slots. v is
        # written in reverse step order (the same slots, the same values) so that the two
        # writes share no index array: two sibling scatters with the same indices abort
        # jaxlib 0.10's XLA:CPU compiler when multi-output fusion is on (funcnn._cpu_fusion).
        new_cache = {
            "k": cache["k"].at[..., positions, :].set(k.astype(cache["k"].dtype)),
            "v": cache["v"]
            .at[..., positions[::-1], :]
            .set(jnp.flip(v, axis=-2).astype(cache["v"].dtype)),
        }
        slots = jnp.arange(new_cache["k"].shape[-2])  # (L,)
        seen = slots[None, :] <= positions[:, None] if causal else slots[None, :] >= 0
        if window is not None:
            seen = jnp.logical_and(seen, positions[:, None] - slots[None, :] < window)
        seen = jnp.reshape(seen, (1,) * (q.ndim - 2) + seen.shape)  # (..., 1, Tq, L)
        y = dot_product_attention(
            q,
            repeat_kv(new_cache["k"].astype(q.dtype), groups),
            repeat_kv(new_cache["v"].astype(q.dtype), groups),
            mask=seen,
            logit_soft_cap=logit_soft_cap,
            implementation=implementation,
            chunk_size=chunk_size,
        )
        return _output(params, y), new_cache

    def _output(params: Params, y: Array) -> Array:
        y = _merge_heads(y)  # (..., Tq, H·dh)
        return dense(params["o"]["w"].shape[-1], use_bias=out_bias, name="o").apply(params["o"], y)

    return Layer(init, apply, name)


def _check_positions(positions: Array | None, steps: int, name: str) -> Array:
    """(T,) int absolute positions of the steps; default 0 … T−1."""
    if positions is None:
        return jnp.arange(steps)
    positions = jnp.asarray(positions)
    if not jnp.issubdtype(positions.dtype, jnp.integer) or positions.shape != (steps,):
        raise ValueError(
            f"{name}: positions must be an integer array of shape ({steps},) (one absolute "
            f"position per step), got dtype {positions.dtype} and shape {positions.shape}."
        )
    return positions


def _check_cache(cache: Any, lead: tuple[int, ...], head_dim: int, name: str) -> KVCache:
    if not isinstance(cache, dict) or set(cache) != {"k", "v"}:
        raise ValueError(f"{name}: cache must be a dict {{'k', 'v'}} (see init_kv_cache).")
    for part in ("k", "v"):
        shape = cache[part].shape
        if shape[:-2] != lead or shape[-1] != head_dim:
            raise ValueError(
                f"{name}: cache[{part!r}] must be (*batch, num_kv_heads, L, head_dim) = "
                f"({', '.join(map(str, lead))}, L, {head_dim}), got {shape}."
            )
    return cache
