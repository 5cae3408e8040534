"""Scaled dot-product attention, masks, and multi-head attention.

    Attention(Q, K, V) = softmax(Q·Kᵀ/√d + mask)·V        (Vaswani et al. 2017)

Masks are boolean, True where a query may look at a key. A masked key gets weight exactly
0; a query row whose every key is masked gets all-zero weights (so a zero output) rather
than the 0/0 = NaN of a naive softmax, and its gradients are finite too.

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

from funcnn._validation import check_choice, check_floating, check_positive_int
from funcnn.activations import softmax
from funcnn.nn.core import Layer, Params, Shape, as_shape
from funcnn.nn.dense import dense
from funcnn.nn.masking import check_mask

__all__ = [
    "IMPLEMENTATIONS",
    "attention_weights",
    "causal_mask",
    "dot_product_attention",
    "key_padding_mask",
    "multi_head_attention",
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
) -> Array:
    """softmax(Q·Kᵀ/√d)·V with masks (see `attention_weights`).

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) → (..., Tq, dv).
    `implementation` ∈ IMPLEMENTATIONS chooses how it is computed (see the module docstring):
    "plain" materializes the (..., Tq, Tk) scores; "chunked" runs an online softmax over
    blocks of `chunk_size` queries × keys with O(T) memory in both passes; "auto" uses the
    fused cuDNN kernel on GPU where it fits, else "plain". All give the same values and
    gradients (float32: ≤ 1e-5), masked keys weight 0 and fully masked rows zeros.
    """
    _check_implementation(implementation, chunk_size)
    _check_attention_shapes(q, k, v)
    if mask is not None:
        scores_shape = (*q.shape[:-1], k.shape[-2])
        mask = _check_full_mask(mask, scores_shape)
    if implementation == "chunked":
        return _chunked_attention(q, k, v, mask, causal, chunk_size)
    if implementation == "auto":
        fused = _cudnn_attention(q, k, v, mask, causal)
        if fused is not None:
            return fused
    weights = attention_weights(q, k, mask=mask, causal=causal)  # (..., Tq, Tk)
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


def _pad_axis(x: Array, axis: int, size: int, value: Any = 0) -> Array:
    """Pad axis `axis` of x at the end to `size` with `value` (no-op if already that size)."""
    extra = size - x.shape[axis]
    if extra == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, extra)
    return jnp.pad(x, widths, constant_values=value)


def _chunked_attention(
    q: Array, k: Array, v: Array, mask: Array | None, causal: bool, chunk_size: int
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
    plan = _ChunkPlan(bool(causal), cq, ck, tq, tk)
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
    if plan.causal:
        rows = i * cq + jnp.arange(cq)  # (cq,) query positions
        seen = cols[None, :] <= rows[:, None] + (plan.k_len - plan.q_len)  # as causal_mask
        allowed = jnp.logical_and(allowed, seen.reshape((1,) * (rank - 2) + (cq, ck)))
    return allowed


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
            s = (jnp.einsum("...qd,...kd->...qk", qi, kj) / scale).astype(acc_dtype)
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
            s = (jnp.einsum("...qd,...kd->...qk", qi, kj) / scale).astype(acc_dtype)
            allowed = _block_allowed(mask, i, j, plan, rank)
            p = jnp.where(allowed, jnp.exp(s - lse_i[..., None]), jnp.zeros_like(s))
            dv_j = dv_j + jnp.einsum("...qk,...qd->...kd", p, dyi)
            dp = jnp.einsum("...qd,...kd->...qk", dyi, vj.astype(acc_dtype))
            ds = p * (dp - delta_i[..., None]) / scale  # ∂/∂(q·k) = ∂/∂s · 1/√d
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


def multi_head_attention(
    dim: int,
    *,
    num_heads: int,
    causal: bool = False,
    out_features: int | None = None,
    implementation: str = "auto",
    chunk_size: int = 128,
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
    computed but meaningless — mask them in the loss. `implementation` ("auto", "plain",
    "chunked") and `chunk_size` choose how `dot_product_attention` computes the heads (same
    values; "chunked" needs O(T) instead of O(T²) memory).
    """
    _check_implementation(implementation, chunk_size)
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
        context = x if context is None else context
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
        heads = dot_product_attention(
            q, k, v, mask=full, causal=causal, implementation=implementation, chunk_size=chunk_size
        )  # (..., H, Tq, dh)
        y = _merge_heads(heads)  # (..., Tq, dim)
        return dense(params["o"]["w"].shape[-1], name="o").apply(params["o"], y)

    return Layer(init, apply, name)
