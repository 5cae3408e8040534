"""KV-cache incremental decoding for `transformer_lm` params.

Cache per block: {"k": (B, H, L, dh), "v": (B, H, L, dh)}, L = cache length ≤ max_len.
    prefill:     run the prompt (B, T) once, write K/V into slots [0, T).
    decode_step: one token (B,) at position p; write K/V into slot p and attend to slots ≤ p
                 (slots > p are masked: not yet written).
Same math as the model (pre-LN blocks, GELU MLP, dropout off):
    softmax(q·kᵀ/√dh + mask)·v per head.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from funcnn.activations import gelu
from funcnn.nn.core import Params
from funcnn.nn.dense import dense, mlp
from funcnn.nn.embedding import positional_encoding
from funcnn.nn.norm import layer_norm

__all__ = ["decode_step", "generate_cached", "init_cache", "prefill"]

Array = jax.Array
Cache = dict[str, dict[str, Array]]


def _blocks(params: Params) -> list[str]:
    return sorted((k for k in params if k.startswith("block_")), key=lambda s: int(s[6:]))


def init_cache(
    params: Params, batch: int, max_len: int, *, num_heads: int, dtype: jnp.dtype = jnp.float32
) -> Cache:
    """Zero cache {"block_i": {"k": (B, H, L, dh), "v": (B, H, L, dh)}}, dh = dim / H."""
    dim = params["embedding"]["table"].shape[-1]
    if dim % num_heads:
        raise ValueError(f"init_cache: num_heads={num_heads} must divide dim={dim}.")
    shape = (batch, num_heads, max_len, dim // num_heads)
    return {
        b: {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)} for b in _blocks(params)
    }


def _position_table(params: Params, length: int, dim: int) -> Array:
    if "positions" in params:
        return params["positions"]["table"][:length]  # (L, D)
    pe = positional_encoding(length, kind="sinusoidal")
    return pe.apply({}, jnp.zeros((1, length, dim)))[0]  # (L, D)


def _forward(params: Params, ids: Array, start: Array | int, cache: Cache) -> tuple[Array, Cache]:
    """ids (B, T) at positions start … start+T−1 → logits (B, T, V), updated cache."""
    batch, steps = ids.shape
    table = params["embedding"]["table"]
    dim = table.shape[-1]
    first = next(iter(cache.values()))["k"]
    _, heads, length, dh = first.shape
    x = jnp.take(table, ids, axis=0)  # (B, T, D)
    pos = _position_table(params, length, dim)
    x = x + jax.lax.dynamic_slice_in_dim(pos, start, steps, axis=0)[None]
    ln = layer_norm()
    slots = jnp.arange(length)  # (L,)
    query_pos = start + jnp.arange(steps)  # (T,)
    visible = slots[None, :] <= query_pos[:, None]  # (T, L)
    new_cache: Cache = {}
    for b in _blocks(params):
        p = params[b]
        a = ln.apply(p["norm_attention"], x)
        att = p["attention"]

        def proj(name: str, h: Array, att: Params = att) -> Array:
            y = dense(att[name]["w"].shape[-1]).apply(att[name], h)  # (B, T, D)
            return jnp.swapaxes(jnp.reshape(y, (batch, steps, heads, dh)), 1, 2)

        q, k, v = proj("q", a), proj("k", a), proj("v", a)  # (B, H, T, dh)
        ck = jax.lax.dynamic_update_slice_in_dim(cache[b]["k"], k.astype(first.dtype), start, 2)
        cv = jax.lax.dynamic_update_slice_in_dim(cache[b]["v"], v.astype(first.dtype), start, 2)
        new_cache[b] = {"k": ck, "v": cv}
        scores = jnp.einsum("bhtd,bhld->bhtl", q, ck) / jnp.sqrt(jnp.asarray(dh, q.dtype))
        scores = jnp.where(visible[None, None], scores, -jnp.inf)
        w = jax.nn.softmax(scores, axis=-1)
        y = jnp.einsum("bhtl,bhld->bhtd", w, cv)
        y = jnp.reshape(jnp.swapaxes(y, 1, 2), (batch, steps, dim))
        h = x + dense(dim).apply(att["o"], y)
        m = ln.apply(p["norm_mlp"], h)
        widths = [dim, p["mlp"]["dense_0"]["w"].shape[-1], dim]
        x = h + mlp(widths, activation=gelu).apply(p["mlp"], m)
    x = ln.apply(params["norm"], x)
    return dense(params["head"]["w"].shape[-1]).apply(params["head"], x), new_cache


def prefill(params: Params, tokens: Array, cache: Cache) -> tuple[Array, Cache]:
    """Prompt tokens (B, T) int → logits (B, T, V) and cache with slots [0, T) filled."""
    if not jnp.issubdtype(tokens.dtype, jnp.integer) or tokens.ndim != 2:
        raise ValueError(f"prefill: tokens must be int (B, T), got {tokens.dtype} {tokens.shape}.")
    first = next(iter(cache.values()))["k"]
    if tokens.shape[0] != first.shape[0] or tokens.shape[1] > first.shape[2]:
        raise ValueError(
            f"prefill: tokens {tokens.shape} do not fit cache (batch {first.shape[0]}, "
            f"max_len {first.shape[2]})."
        )
    return _forward(params, tokens, 0, cache)


def decode_step(
    params: Params, token: Array, position: Array | int, cache: Cache
) -> tuple[Array, Cache]:
    """One token (B,) int at `position` → logits (B, V) and cache with slot `position` filled."""
    logits, cache = _forward(params, token[:, None], position, cache)
    return logits[:, 0], cache


def generate_cached(
    params: Params,
    prompt: Array,
    *,
    key: Array,
    length: int,
    num_heads: int,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> Array:
    """Like `funcnn.sampling.generate` (same key splitting) for transformer_lm params with a
    KV cache: prefill once, then one `decode_step` per token in one `lax.fori_loop`.
    prompt (P,) int → (P + length,) ids. Needs P + length ≤ the model's max_len (no window).
    """

    prompt = jnp.asarray(prompt, jnp.int32)
    start = prompt.shape[0]
    total = start + length
    if "positions" in params and total > params["positions"]["table"].shape[0]:
        raise ValueError(
            f"generate_cached: prompt + length = {total} exceeds max_len "
            f"{params['positions']['table'].shape[0]}."
        )

    run = _compiled(start, total, num_heads, float(temperature), top_k)
    return run(params, prompt, key)


@functools.lru_cache(maxsize=32)
def _compiled(start: int, total: int, num_heads: int, temperature: float, top_k: int | None):
    """One jitted generation per static configuration (reused: no recompilation per call)."""
    from funcnn.sampling import sample_next

    @jax.jit
    def run(params: Params, prompt: Array, key: Array) -> Array:
        cache = init_cache(params, 1, total, num_heads=num_heads)
        logits, cache = prefill(params, prompt[None], cache)
        buffer = jnp.zeros((total,), jnp.int32).at[:start].set(prompt)
        last = logits[0, -1]

        def body(t: Array, state: tuple) -> tuple:
            buffer, key, last, cache = state
            key, draw = jax.random.split(key)
            token = sample_next(draw, last, temperature=temperature, top_k=top_k).astype(jnp.int32)
            buffer = buffer.at[t].set(token)
            out, cache = decode_step(params, token[None], t, cache)
            return buffer, key, out[0], cache

        buffer, *_ = jax.lax.fori_loop(start, total, body, (buffer, key, last, cache))
        return buffer

    return run
