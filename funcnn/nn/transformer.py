"""The pre-LayerNorm transformer block and a decoder-only (GPT-style) language model.

    block:  h = x + Dropout(MHSA(LN₁(x)))
            y = h + Dropout(W₂·GELU(W₁·LN₂(h) + b₁) + b₂)

    lm:     x₀ = E[ids] + P[:T];  x_{l+1} = block_l(x_l) (causal);  logits = LN(x_L)·W + b

Pre-LN (Xiong et al. 2020; GPT-2) keeps an identity path from input to output, which is why
it trains without the learning-rate warmup that the post-LN original needs so badly.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax

from funcnn._validation import check_choice, check_in_range, check_positive_int
from funcnn.activations import gelu
from funcnn.nn.attention import multi_head_attention
from funcnn.nn.core import Layer, Params, Shape, as_shape, split_key
from funcnn.nn.dense import dense, mlp
from funcnn.nn.dropout import dropout as dropout_layer
from funcnn.nn.embedding import (
    check_ids_shape,
    check_token_ids,
    embedding,
    positional_encoding,
)
from funcnn.nn.masking import check_mask
from funcnn.nn.norm import layer_norm
from funcnn.nn.stack import scan_apply, stack_init

__all__ = [
    "transformer_block",
    "transformer_lm",
]

Array = jax.Array


def transformer_block(
    dim: int,
    *,
    num_heads: int,
    mlp_ratio: int = 4,
    dropout: float = 0.0,
    causal: bool = False,
    implementation: str = "auto",
    chunk_size: int = 128,
    name: str = "transformer_block",
) -> Layer:
    """One pre-LN transformer block on x (..., T, dim) → (..., T, dim) (see module docstring).

    params {"norm_attention": layer_norm, "attention": multi_head_attention,
            "norm_mlp": layer_norm, "mlp": mlp([dim, mlp_ratio·dim, dim], gelu)}.
    Dropout (rate = drop probability) is applied to each residual branch when train=True.
    apply(params, x, *, mask=None, key=None, train=False); `mask` (..., T) hides padded keys.
    `implementation`/`chunk_size` go to `multi_head_attention` ("chunked": O(T) memory).
    """
    check_positive_int(dim, "dim")
    check_positive_int(mlp_ratio, "mlp_ratio")
    rate = check_in_range(dropout, "dropout", 0.0, 1.0, high_inclusive=True)
    norm_attention = layer_norm(name="norm_attention")
    attention = multi_head_attention(
        dim,
        num_heads=num_heads,
        causal=causal,
        implementation=implementation,
        chunk_size=chunk_size,
        name="attention",
    )
    norm_mlp = layer_norm(name="norm_mlp")
    feed_forward = mlp([dim, mlp_ratio * dim, dim], activation=gelu, name="mlp")
    drop = dropout_layer(rate)

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        if len(shape) < 2 or shape[-1] != dim:
            raise ValueError(f"{name}: expects in_shape (..., time, {dim}), got {shape}.")
        k_attention, k_mlp = jax.random.split(key)
        params = {
            "norm_attention": norm_attention.init(key, shape)[0],
            "attention": attention.init(k_attention, shape)[0],
            "norm_mlp": norm_mlp.init(key, shape)[0],
            "mlp": feed_forward.init(k_mlp, shape)[0],
        }
        return params, shape

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        k_attention, k_mlp, k_ffn = split_key(key, 3)
        a = norm_attention.apply(params["norm_attention"], x)  # (..., T, D)
        a = attention.apply(params["attention"], a, mask=mask)  # (..., T, D)
        h = x + drop.apply({}, a, key=k_attention, train=train)
        m = norm_mlp.apply(params["norm_mlp"], h)
        m = feed_forward.apply(params["mlp"], m, key=k_ffn, train=train)
        return h + drop.apply({}, m, key=k_mlp, train=train)

    return Layer(init, apply, name)


def transformer_lm(
    vocab: int,
    dim: int,
    *,
    num_heads: int,
    depth: int,
    max_len: int,
    mlp_ratio: int = 4,
    dropout: float = 0.0,
    positions: str = "learned",
    implementation: str = "auto",
    chunk_size: int = 128,
    name: str = "transformer_lm",
    scan_layers: bool = False,
    remat: bool = False,
) -> Layer:
    """Decoder-only transformer language model: ids (B, T) → next-token logits (B, T, vocab).

    Logits at step t depend only on ids[≤ t] (causal self-attention), T ≤ max_len.
    params {"embedding": {"table": (vocab, dim)}, "positions": {"table": (max_len, dim)} (learned
    only), "block_0" … "block_{depth−1}", "norm": layer_norm, "head": dense(vocab)}.
    apply(params, ids, *, mask=None, key=None, train=False); mask (B, T) hides padded tokens.
    scan_layers=True: the blocks' params are stacked as "blocks" (leading axis depth) and run by
    `lax.scan` (remat=True: `jax.checkpoint` per block); nn.stack_layers/unstack_layers convert.
    `implementation`/`chunk_size` choose each block's attention (see `multi_head_attention`).
    """
    for value, arg in (
        (vocab, "vocab"),
        (dim, "dim"),
        (num_heads, "num_heads"),
        (depth, "depth"),
        (max_len, "max_len"),
    ):
        check_positive_int(value, arg)
    check_choice(positions, "positions", ("learned", "sinusoidal"))
    if remat and not scan_layers:
        raise ValueError(
            "remat=True needs scan_layers=True (it rematerializes the scanned block body); "
            f"got remat={remat!r}, scan_layers={scan_layers!r}."
        )
    embed = embedding(vocab, dim, stddev=0.02, name="embedding")
    position = positional_encoding(max_len, kind=positions, name="positions")
    blocks = [
        transformer_block(
            dim,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            causal=True,
            implementation=implementation,
            chunk_size=chunk_size,
        )
        for _ in range(depth)
    ]
    block_keys = [f"block_{i}" for i in range(depth)]
    final_norm = layer_norm(name="norm")
    head = dense(vocab, name="head")

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        check_ids_shape(shape, name)
        if shape[1] != -1 and shape[1] > max_len:
            raise ValueError(f"{name}: time {shape[1]} exceeds max_len={max_len}.")
        keys = jax.random.split(key, depth + 3)
        hidden = (*shape, dim)
        params = {"embedding": embed.init(keys[0], shape)[0]}
        position_params, _ = position.init(keys[1], (1, 1, dim))
        if position_params:
            params["positions"] = position_params
        if scan_layers:
            params["blocks"], _ = stack_init(blocks[0], keys[3:], hidden)
        for block_key, block, k in zip(block_keys, blocks, keys[3:], strict=True):
            if not scan_layers:
                params[block_key], _ = block.init(k, hidden)
        params["norm"], _ = final_norm.init(keys[2], hidden)
        params["head"], _ = head.init(keys[2], hidden)
        return params, (*shape, vocab)

    def apply(
        params: Params,
        ids: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        check_token_ids(ids, name, batched=True)
        mask = check_mask(mask, ids.shape, name)
        x = embed.apply(params["embedding"], ids, mask=mask)  # (B, T, D)
        x = position.apply(params.get("positions", {}), x)
        if scan_layers:
            keys = None if key is None else jax.random.split(key, depth)
            x = scan_apply(
                blocks[0], params["blocks"], x, keys=keys, mask=mask, train=train, remat=remat
            )
        for block_key, block, k in zip(block_keys, blocks, split_key(key, depth), strict=True):
            if scan_layers:
                break
            x = block.apply(params[block_key], x, mask=mask, key=k, train=train)
        x = final_norm.apply(params["norm"], x)
        return head.apply(params["head"], x)  # (B, T, vocab)

    return Layer(init, apply, name)
