"""The pre-norm transformer block, and `transformer_lm` (a preset of `funcnn.models.decoder`).

    block:  h = x + Dropout(Attention(Norm₁(x)))
            y = h + Dropout(MLP(Norm₂(h)))

    lm:     x₀ = E[ids] + P[:T];  x_{l+1} = block_l(x_l) (causal);  logits = LN(x_L)·W + b

Norm is LayerNorm (GPT-2) or RMSNorm (Llama); Attention is multi-head, grouped-query or
multi-query, with RoPE, QK-norm, sliding window and soft-cap as options
(`multi_head_attention`); MLP is plain (GELU, tanh-GELU, ReLU²) or gated (SwiGLU, GeGLU)
(`feed_forward`). Pre-norm (Xiong et al. 2020; GPT-2) keeps an identity path from input to
output, which is why it trains without the learning-rate warmup that the post-LN original
needs so badly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from funcnn import initializers
from funcnn._validation import check_choice, check_in_range, check_positive_int
from funcnn.nn.attention import KVCache, multi_head_attention
from funcnn.nn.core import Layer, Params, Shape, as_shape, split_key
from funcnn.nn.dense import feed_forward
from funcnn.nn.dropout import dropout as dropout_layer
from funcnn.nn.norm import layer_norm, rms_norm

__all__ = [
    "NORMS",
    "transformer_block",
    "transformer_lm",
]

Array = jax.Array

NORMS = ("layer", "rms")
"""`norm=` of `transformer_block`: "layer" (LayerNorm, GPT-2) or "rms" (RMSNorm, Llama)."""


def make_norm(norm: str, *, eps: float, use_bias: bool, name: str) -> Layer:
    """LayerNorm (with or without bias) or RMSNorm, by name."""
    check_choice(norm, "norm", NORMS)
    if norm == "rms":
        return rms_norm(eps=eps, name=name)
    return layer_norm(eps=eps, use_bias=use_bias, name=name)


def transformer_block(
    dim: int,
    *,
    num_heads: int,
    mlp_ratio: int = 4,
    dropout: float = 0.0,
    causal: bool = False,
    implementation: str = "auto",
    chunk_size: int = 128,
    num_kv_heads: int | None = None,
    head_dim: int | None = None,
    mlp_hidden: int | None = None,
    mlp_activation: str = "gelu",
    gated_mlp: bool = False,
    norm: str = "layer",
    norm_eps: float = 1e-5,
    norm_bias: bool = True,
    attention_bias: bool = True,
    attention_out_bias: bool | None = None,
    mlp_bias: bool = True,
    qk_norm: bool = False,
    rope_theta: float | None = None,
    rope_interleaved: bool = False,
    window: int | None = None,
    logit_soft_cap: float | None = None,
    w_init: initializers.Initializer | None = None,
    out_init: initializers.Initializer | None = None,
    name: str = "transformer_block",
) -> Layer:
    """One pre-norm transformer block on x (..., T, dim) → (..., T, dim) (module docstring).

    params {"norm_attention": norm, "attention": multi_head_attention (q: (dim, H·dh),
    k, v: (dim, H_kv·dh), o: (H·dh, dim)), "norm_mlp": norm, "mlp": feed_forward(dim, F)}.
    Defaults are the original GPT block: LayerNorm, 4·dim exact-GELU MLP, biases everywhere.
    `num_kv_heads`, `head_dim` (default dim/num_heads), `qk_norm`, `rope_theta`,
    `rope_interleaved`, `window`, `logit_soft_cap` and the bias switches go to
    `multi_head_attention`; `mlp_hidden` (default mlp_ratio·dim), `mlp_activation`,
    `gated_mlp` and `mlp_bias` to `feed_forward`; `norm` ∈ NORMS with `norm_eps` and
    `norm_bias` (LayerNorm only). `w_init`/`out_init` initialize the input and the residual
    output projections (GPT-2: N(0, 0.02²) and N(0, 0.02²/2L)).
    Dropout (rate = drop probability) is applied to each residual branch when train=True.
    apply(params, x, *, mask=None, key=None, train=False, positions=None, cache=None);
    `mask` (..., T) hides padded keys; `positions` (T,) are absolute positions (RoPE, cache);
    with a `cache` {"k", "v"} (B, H_kv, L, dh) it returns (y, new_cache) — the same block.
    `implementation`/`chunk_size` go to `multi_head_attention` ("chunked": O(T) memory).
    """
    check_positive_int(dim, "dim")
    check_positive_int(mlp_ratio, "mlp_ratio")
    check_positive_int(num_heads, "num_heads")
    rate = check_in_range(dropout, "dropout", 0.0, 1.0, high_inclusive=True)
    if head_dim is None:
        if dim % num_heads:
            raise ValueError(
                f"{name}: dim={dim} must be divisible by num_heads={num_heads} (each head gets "
                f"dim/num_heads columns), or give head_dim."
            )
        head_dim = dim // num_heads
    head_dim = check_positive_int(head_dim, "head_dim")
    hidden = mlp_ratio * dim if mlp_hidden is None else check_positive_int(mlp_hidden, "mlp_hidden")
    norm_attention = make_norm(norm, eps=norm_eps, use_bias=norm_bias, name="norm_attention")
    attention = multi_head_attention(
        num_heads * head_dim,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        causal=causal,
        out_features=dim,
        use_bias=attention_bias,
        out_bias=attention_out_bias,
        qk_norm=qk_norm,
        qk_norm_eps=norm_eps,
        rope_theta=rope_theta,
        rope_interleaved=rope_interleaved,
        window=window,
        logit_soft_cap=logit_soft_cap,
        w_init=w_init,
        o_init=out_init,
        implementation=implementation,
        chunk_size=chunk_size,
        name="attention",
    )
    norm_mlp = make_norm(norm, eps=norm_eps, use_bias=norm_bias, name="norm_mlp")
    mlp = feed_forward(
        dim,
        hidden,
        activation=mlp_activation,
        gated=gated_mlp,
        use_bias=mlp_bias,
        w_init=w_init,
        out_init=out_init,
        name="mlp",
    )
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
            "mlp": mlp.init(k_mlp, shape)[0],
        }
        return params, shape

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
        positions: Array | None = None,
        cache: KVCache | None = None,
    ) -> Any:
        k_attention, k_mlp, k_ffn = split_key(key, 3)
        a = norm_attention.apply(params["norm_attention"], x)  # (..., T, D)
        a = attention.apply(params["attention"], a, mask=mask, positions=positions, cache=cache)
        if cache is not None:
            a, cache = a  # (..., T, D), the cache with this call's keys and values written
        h = x + drop.apply({}, a, key=k_attention, train=train)
        m = norm_mlp.apply(params["norm_mlp"], h)
        m = mlp.apply(params["mlp"], m, key=k_ffn, train=train)
        y = h + drop.apply({}, m, key=k_mlp, train=train)
        return y if cache is None else (y, cache)

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

    The funcnn layout of `funcnn.models.decoder` (LayerNorm, exact-GELU MLP of width
    mlp_ratio·dim, biases everywhere, an untied dense head with bias, learned or sinusoidal
    positions); use `funcnn.models` directly for GPT-2, Llama, nanoGPT and cached decoding.

    Logits at step t depend only on ids[≤ t] (causal self-attention), T ≤ max_len.
    params {"embedding": {"table": (vocab, dim)}, "positions": {"table": (max_len, dim)} (learned
    only), "block_0" … "block_{depth−1}", "norm": layer_norm, "head": dense(vocab)}.
    apply(params, ids, *, mask=None, key=None, train=False); mask (B, T) hides padded tokens.
    scan_layers=True: the blocks' params are stacked as "blocks" (leading axis depth) and run by
    `lax.scan` (remat=True: `jax.checkpoint` per block); nn.stack_layers/unstack_layers convert.
    `implementation`/`chunk_size` choose each block's attention (see `multi_head_attention`).
    """
    # A preset of the configured decoder, not a second implementation. Imported here: the
    # decoder lives one floor up, in funcnn.models, and builds its blocks from this module.
    from funcnn.models.decoder import DecoderConfig, decoder

    check_choice(positions, "positions", ("learned", "sinusoidal"))
    config = DecoderConfig(
        vocab_size=vocab,
        dim=dim,
        num_layers=depth,
        num_heads=num_heads,
        max_len=max_len,
        mlp_hidden=check_positive_int(mlp_ratio, "mlp_ratio") * check_positive_int(dim, "dim"),
        positions=positions,
        dropout=dropout,
    )
    model = decoder(
        config,
        implementation=implementation,
        chunk_size=chunk_size,
        scan_layers=scan_layers,
        remat=remat,
        name=name,
    )
    return model.layer
