"""Token embeddings, bag of words, and positional encodings.

    embedding        ids (..., T) → table[ids] (..., T, d)           params {"table": (vocab, d)}
    bag_of_words     ids (B, T)   → masked mean of table[ids] (B, d)  params {"table": (vocab, d)}
    sinusoidal_positions(max_len, d)  the fixed table of Vaswani et al. (2017)
    positional_encoding(max_len, kind="learned"|"sinusoidal")  adds P[:T] to x (B, T, d)
    tied_logits(table, h)  the output head that reuses the embedding table: h·Eᵀ (..., vocab)

Sequence layers in funcnn take an optional boolean `mask` keyword, shape (B, T), True for
real steps and False for padding: `apply(params, x, *, mask=None, key=None, train=False)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._validation import check_choice, check_floating, check_positive_int, check_real
from funcnn.nn.core import Layer, Params, Shape, as_shape
from funcnn.nn.masking import check_mask, masked_mean, prefix_mean

__all__ = [
    "bag_of_words",
    "check_ids_shape",
    "check_token_ids",
    "embedding",
    "positional_encoding",
    "sinusoidal_positions",
    "tied_logits",
]

Array = jax.Array


def check_token_ids(
    ids: Array,
    name: str,
    *,
    batched: bool = False,
    vocab: int | None = None,
    mask: Array | None = None,
) -> None:
    """Raise unless `ids` is an integer array — of shape (batch, time) when `batched` — and,
    where the ids are concrete (not traced) and `vocab` is given, every id at a real step
    (`mask` True, or everywhere) lies in [0, vocab). Under `jit` the values cannot be seen:
    `lookup` then clamps them (see `embedding`)."""
    dtype = jnp.result_type(ids)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(
            f"{name}: expects integer token ids, got dtype {dtype}; a float array is never "
            f"truncated — convert with ids.astype(jnp.int32) if that is what you mean."
        )
    if batched and jnp.ndim(ids) != 2:
        raise ValueError(f"{name}: expects ids of shape (batch, time), got {jnp.shape(ids)}.")
    if vocab is None or isinstance(ids, jax.core.Tracer) or isinstance(mask, jax.core.Tracer):
        return
    values = np.asarray(ids)
    if mask is not None:
        values = values[np.broadcast_to(np.asarray(mask, bool), values.shape)]
    bad = (values < 0) | (values >= vocab)
    if bad.any():
        raise ValueError(
            f"{name}: token ids must lie in [0, {vocab}), got {values[bad][:5].tolist()} "
            f"({int(bad.sum())} of {values.size} ids outside; the table has {vocab} rows)."
        )


def lookup(table: Array, ids: Array) -> Array:
    """table[ids] with ids clamped into [0, vocab − 1]: deterministic under `jit`, where ids
    cannot be checked (without the clamp, jnp.take gives NaN rows past the end and wraps −1
    to the last row). Concrete ids are checked before this by `check_token_ids`."""
    return jnp.take(table, jnp.clip(ids, 0, table.shape[0] - 1), axis=0)


def check_ids_shape(shape: Shape, name: str) -> None:
    """Raise unless an init `in_shape` is (batch, time)."""
    if len(shape) != 2:
        raise ValueError(f"{name}: expects ids of shape (batch, time), got in_shape={shape}.")


def _init_table(key: Array, vocab: int, dim: int, stddev: float) -> Array:
    return stddev * jax.random.normal(key, (vocab, dim), jnp.float32)


def embedding(vocab: int, dim: int, *, stddev: float = 1.0, name: str = "embedding") -> Layer:
    """Look up a learned vector per token: y[..., t, :] = table[ids[..., t]].

    params {"table": (vocab, dim)}, initialised N(0, stddev²). ids: any integer shape
    (..., T) → (..., T, dim). Ids outside [0, vocab) — at real steps, if a padding `mask` is
    given — are a ValueError naming them when the ids are concrete; under `jit` they cannot
    be checked and are clamped to [0, vocab − 1].
    """
    check_positive_int(vocab, "vocab")
    check_positive_int(dim, "dim")
    stddev = check_real(stddev, "stddev")

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        return {"table": _init_table(key, vocab, dim, stddev)}, (*shape, dim)

    def apply(
        params: Params,
        ids: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train
        check_token_ids(ids, name, vocab=vocab, mask=mask)  # padded steps may hold any id
        return lookup(params["table"], ids)  # (..., T, d)

    return Layer(init, apply, name)


def bag_of_words(
    vocab: int,
    dim: int,
    *,
    causal: bool = False,
    stddev: float = 1.0,
    name: str = "bag_of_words",
) -> Layer:
    """Order-blind summary of a token sequence: the mean of its embeddings over time.

        y = Σₜ mₜ·table[idsₜ] / Σₜ mₜ            (B, T) → (B, d)       causal=False
        yₜ = Σ_{s≤t} mₛ·table[idsₛ] / Σ_{s≤t} mₛ  (B, T) → (B, T, d)    causal=True

    m is the padding mask (True = real token); a row with no real token gives zeros, not NaN.
    params {"table": (vocab, dim)} — the same layout as `embedding` (PyTorch's EmbeddingBag).
    `causal=True` gives the bag of the prefix at every step, which makes it a language model's
    context summary. Permuting the real tokens never changes y: that is the point of the baseline.
    """
    check_positive_int(vocab, "vocab")
    check_positive_int(dim, "dim")
    stddev = check_real(stddev, "stddev")

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        check_ids_shape(shape, name)
        out_shape = (*shape, dim) if causal else (shape[0], dim)
        return {"table": _init_table(key, vocab, dim, stddev)}, out_shape

    def apply(
        params: Params,
        ids: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train
        check_token_ids(ids, name, batched=True)
        mask = check_mask(mask, jnp.shape(ids), name)
        check_token_ids(ids, name, vocab=vocab, mask=mask)  # padded steps may hold any id
        vectors = lookup(params["table"], ids)  # (B, T, d)
        return prefix_mean(vectors, mask) if causal else masked_mean(vectors, mask)

    return Layer(init, apply, name)


def sinusoidal_positions(max_len: int, dim: int) -> np.ndarray:
    """The fixed sinusoidal table P (max_len, dim) of "Attention is all you need":

        P[p, 2i] = sin(p / 10000^(2i/d)),   P[p, 2i+1] = cos(p / 10000^(2i/d))

    Computed and returned in float64 NumPy (an odd dim drops the last cosine); the layer
    casts it to the activations' dtype, so a float64 model gets float64 positions.
    """
    check_positive_int(max_len, "max_len")
    check_positive_int(dim, "dim")
    position = np.arange(max_len, dtype=np.float64)[:, None]  # (L, 1)
    two_i = np.arange(0, dim, 2, dtype=np.float64)[None, :]  # (1, ⌈d/2⌉)
    angle = position / 10000.0 ** (two_i / dim)  # (L, ⌈d/2⌉)
    table = np.zeros((max_len, dim))
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle[:, : dim // 2])
    return table


def positional_encoding(
    max_len: int,
    *,
    kind: str = "learned",
    stddev: float = 0.02,
    name: str = "positions",
) -> Layer:
    """Add a position vector to every step: y[b, t] = x[b, t] + P[t], x (..., T, d), T ≤ max_len.

    kind="sinusoidal": P is `sinusoidal_positions(max_len, d)`, fixed, params {}.
    kind="learned":    P is params["table"] (max_len, d), initialised N(0, stddev²) (GPT-2).
    """
    check_positive_int(max_len, "max_len")
    check_choice(kind, "kind", ("sinusoidal", "learned"))
    stddev = check_real(stddev, "stddev")

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        if len(shape) < 2 or shape[-1] == -1:
            raise ValueError(f"{name}: expects (..., time, dim) with a known dim, got {shape}.")
        if shape[-2] > max_len:
            raise ValueError(f"{name}: sequence length {shape[-2]} exceeds max_len={max_len}.")
        if kind == "sinusoidal":
            return {}, shape
        return {"table": _init_table(key, max_len, shape[-1], stddev)}, shape

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False):
        del key, train
        if jnp.ndim(x) < 2:
            raise ValueError(f"{name}: expects (..., time, dim), got x.shape={jnp.shape(x)}.")
        steps, dim = jnp.shape(x)[-2:]
        if steps > max_len:
            raise ValueError(
                f"{name}: sequence length {steps} exceeds max_len={max_len}; build the layer "
                f"with a larger max_len or feed shorter windows."
            )
        table = sinusoidal_positions(max_len, dim) if kind == "sinusoidal" else params["table"]
        if table.shape[-1] != dim:
            raise ValueError(f"{name}: table has dim {table.shape[-1]}, x has dim {dim}.")
        return x + jnp.broadcast_to(table[:steps].astype(x.dtype), jnp.shape(x))

    return Layer(init, apply, name)


def tied_logits(table: Array, h: Array) -> Array:
    """Output head tied to the input embedding (Press & Wolf 2017; GPT-2): logits = h·Eᵀ.

    table E (vocab, d), h (..., d) → (..., vocab). The one table gets both gradients — the
    rows looked up at the input and ∂L/∂E = δᵀ·h from the head — summed by `jax.grad`.
    """
    check_floating(h, "tied_logits: h")
    if jnp.ndim(table) != 2 or jnp.ndim(h) < 1 or h.shape[-1] != table.shape[-1]:
        raise ValueError(
            f"tied_logits: expects table (vocab, d) and h (..., d), got table{jnp.shape(table)} "
            f"and h{jnp.shape(h)}."
        )
    return jnp.einsum("...d,vd->...v", h, table.astype(h.dtype))  # (..., vocab)
