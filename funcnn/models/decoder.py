"""One configured decoder-only language model: GPT-2, Llama, nanoGPT and funcnn's own layout.

    x₀ = E[ids] (+ P[positions] for learned or sinusoidal positions)
    x_{l+1} = block_l(x_l)      pre-norm, causal (`nn.transformer_block`; RoPE inside attention)
    logits  = Norm(x_L)·Eᵀ      (tied head)   or   Norm(x_L)·W (+ b)   (untied)

What differs between the layouts is data, a `DecoderConfig`:

| layout  | positions | norm            | MLP                | attention          | head  |
|---------|-----------|-----------------|--------------------|--------------------|-------|
| gpt2    | learned   | LayerNorm       | GELU-tanh, 4·D     | MHA, biases        | tied  |
| llama   | RoPE      | RMSNorm         | SwiGLU             | GQA, no biases     | either|
| nanogpt | learned   | LayerNorm, no b | exact GELU, 4·D    | MHA, no biases     | tied  |
| funcnn  | learned   | LayerNorm       | exact GELU, 4·D    | MHA, biases        | dense |

ONE forward serves training and cached decoding: `apply(params, ids, *, positions=None,
cache=None)` — with a cache (see `Decoder.init_cache`) the keys and values of `ids` are
written at `positions` and the updated cache is returned beside the logits. `generate`
(funcnn.models.generate) is a loop around exactly this call.

Params (the layout of `nn.transformer_lm`, readable by name):
    {"embedding": {"table": (V, D)}, "positions": {"table": (max_len, D)} (learned only),
     "block_0" … "block_{L−1}" (or "blocks", stacked on a leading axis L, with scan_layers),
     "norm": {"scale", "bias"?}, "head": {"w": (D, V), "b"?} (untied only)}
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn import initializers
from funcnn._validation import check_choice, check_in_range, check_positive_int, check_real
from funcnn.nn.attention import init_kv_cache
from funcnn.nn.core import Layer, Params, Shape, as_shape, split_key
from funcnn.nn.dense import FEED_FORWARD_ACTIVATIONS, dense
from funcnn.nn.embedding import (
    check_ids_shape,
    check_token_ids,
    embedding,
    sinusoidal_positions,
    tied_logits,
)
from funcnn.nn.masking import check_mask
from funcnn.nn.transformer import NORMS, make_norm, transformer_block

__all__ = [
    "POSITIONS",
    "Cache",
    "Decoder",
    "DecoderConfig",
    "decoder",
    "gpt2_config",
    "llama_config",
    "nanogpt_config",
]

Array = jax.Array
Cache = dict[str, Any]
"""Per-layer K/V: {"block_i": {"k", "v": (B, H_kv, L, dh)}}, or {"blocks": {"k", "v":
(num_layers, B, H_kv, L, dh)}} for stacked (scan_layers) params."""

POSITIONS = ("learned", "sinusoidal", "rope", "none")
"""`DecoderConfig.positions`: a learned table (GPT-2), the fixed sinusoids, rotary (Llama),
or none at all."""
INITS = ("default", "gpt2")


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Everything that changes a decoder's math (hashable: it keys compiled programs).

    vocab_size, dim (D), num_layers (L), num_heads (H), max_len: the sizes.
    num_kv_heads: H_kv (None = H; 1 = multi-query). head_dim: dh (None = D/H).
    mlp_hidden: F (None = 4·D). mlp_activation ∈ nn.FEED_FORWARD_ACTIVATIONS; gated_mlp:
    down(f(x·gate) ⊙ x·up) (SwiGLU with "silu").
    norm ∈ ("layer", "rms"), norm_eps ε, norm_bias (LayerNorm's β).
    positions ∈ POSITIONS; rope_theta θ and rope_interleaved for "rope".
    attention_bias (q, k, v), attention_out_bias (o; None = attention_bias), mlp_bias.
    tie_embeddings: logits = h·Eᵀ; else a dense head, with a bias when head_bias.
    qk_norm (RMSNorm of each q and k head), sliding_window, logit_soft_cap: attention options.
    dropout: drop probability on the residual branches (train=True only).
    init: "default" (lecun-normal weights, N(0, 0.02²) embeddings) or "gpt2" (every weight
    N(0, 0.02²), residual output projections N(0, 0.02²/(2L)): Radford et al. 2019).
    """

    vocab_size: int
    dim: int
    num_layers: int
    num_heads: int
    max_len: int
    num_kv_heads: int | None = None
    head_dim: int | None = None
    mlp_hidden: int | None = None
    mlp_activation: str = "gelu"
    gated_mlp: bool = False
    norm: str = "layer"
    norm_eps: float = 1e-5
    norm_bias: bool = True
    positions: str = "learned"
    rope_theta: float = 10000.0
    rope_interleaved: bool = False
    attention_bias: bool = True
    attention_out_bias: bool | None = None
    mlp_bias: bool = True
    tie_embeddings: bool = False
    head_bias: bool = True
    qk_norm: bool = False
    sliding_window: int | None = None
    logit_soft_cap: float | None = None
    dropout: float = 0.0
    init: str = "default"

    def __post_init__(self) -> None:
        for field in ("vocab_size", "dim", "num_layers", "num_heads", "max_len"):
            check_positive_int(getattr(self, field), field)
        for field in ("num_kv_heads", "head_dim", "mlp_hidden", "sliding_window"):
            if getattr(self, field) is not None:
                check_positive_int(getattr(self, field), field)
        check_choice(self.norm, "norm", NORMS)
        check_choice(self.positions, "positions", POSITIONS)
        check_choice(self.init, "init", INITS)
        check_choice(self.mlp_activation, "mlp_activation", tuple(FEED_FORWARD_ACTIVATIONS))
        check_in_range(self.dropout, "dropout", 0.0, 1.0, high_inclusive=True)
        if check_real(self.norm_eps, "norm_eps") <= 0:
            raise ValueError(f"DecoderConfig: norm_eps must be > 0, got {self.norm_eps}.")
        if self.head_dim is None and self.dim % self.num_heads:
            raise ValueError(
                f"DecoderConfig: dim={self.dim} is not divisible by num_heads={self.num_heads}; "
                f"give head_dim explicitly."
            )
        if self.num_heads % self.kv_heads:
            raise ValueError(
                f"DecoderConfig: num_kv_heads={self.kv_heads} must divide "
                f"num_heads={self.num_heads}."
            )
        if self.positions == "rope" and self.dh % 2:
            raise ValueError(f"DecoderConfig: RoPE needs an even head_dim, got {self.dh}.")

    @property
    def kv_heads(self) -> int:
        """H_kv: the number of key/value heads."""
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    @property
    def dh(self) -> int:
        """The head width dh."""
        return self.dim // self.num_heads if self.head_dim is None else self.head_dim

    def replace(self, **changes: Any) -> DecoderConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def gpt2_config(
    vocab_size: int = 50257,
    dim: int = 768,
    num_layers: int = 12,
    num_heads: int = 12,
    max_len: int = 1024,
    **changes: Any,
) -> DecoderConfig:
    """GPT-2 (Radford et al. 2019): learned positions, LayerNorm (ε 1e-5), tanh-GELU MLP of
    4·D, biases everywhere, tied head, GPT-2 init. Defaults: GPT-2 small (124M)."""
    config = DecoderConfig(
        vocab_size,
        dim,
        num_layers,
        num_heads,
        max_len,
        mlp_activation="gelu_tanh",
        tie_embeddings=True,
        init="gpt2",
    )
    return config.replace(**changes)


def llama_config(
    vocab_size: int = 32000,
    dim: int = 4096,
    num_layers: int = 32,
    num_heads: int = 32,
    max_len: int = 4096,
    **changes: Any,
) -> DecoderConfig:
    """Llama (Touvron et al. 2023): RoPE (θ = 10000, rotate-half), RMSNorm (ε 1e-6), SwiGLU
    MLP (F = 11008 for the default 7B sizes, else ⌈8D/3⌉ rounded up to 256), grouped-query
    attention by `num_kv_heads`, no biases, untied head. Defaults: Llama-2 7B."""
    hidden = 11008 if dim == 4096 else 256 * math.ceil(8 * dim / 3 / 256)
    config = DecoderConfig(
        vocab_size,
        dim,
        num_layers,
        num_heads,
        max_len,
        mlp_hidden=hidden,
        mlp_activation="silu",
        gated_mlp=True,
        norm="rms",
        norm_eps=1e-6,
        positions="rope",
        attention_bias=False,
        mlp_bias=False,
        head_bias=False,
    )
    return config.replace(**changes)


def nanogpt_config(
    vocab_size: int = 50304,
    dim: int = 768,
    num_layers: int = 12,
    num_heads: int = 12,
    max_len: int = 1024,
    **changes: Any,
) -> DecoderConfig:
    """nanoGPT (Karpathy) with bias=False: GPT-2's layout with exact GELU (`nn.GELU()`), no
    biases in the linear layers or the LayerNorms, tied head, GPT-2 init."""
    config = DecoderConfig(
        vocab_size,
        dim,
        num_layers,
        num_heads,
        max_len,
        norm_bias=False,
        attention_bias=False,
        mlp_bias=False,
        tie_embeddings=True,
        init="gpt2",
    )
    return config.replace(**changes)


class Decoder(NamedTuple):
    """A configured decoder: the `Layer` pair plus its config and the cache it decodes with.

    init(key, (B, T)) → (params, (B, T, vocab)).
    apply(params, ids, *, mask=None, key=None, train=False, positions=None, cache=None) →
    logits (B, T, vocab), or (logits, new_cache) when a cache is given.
    """

    init: Callable[..., tuple[Params, Shape]]
    apply: Callable[..., Any]
    name: str
    config: DecoderConfig
    scan_layers: bool
    options: tuple[str, int, bool] = ("auto", 128, False)  # implementation, chunk_size, remat

    @property
    def layer(self) -> Layer:
        """The model as a plain `Layer` (for `serial`, `fit`, …)."""
        return Layer(self.init, self.apply, self.name)

    def init_cache(self, batch: int, length: int | None = None, dtype: Any = jnp.float32) -> Cache:
        """A zero K/V cache for `batch` sequences of up to `length` (default max_len) steps:
        per layer {"k", "v"} (B, H_kv, length, dh) — stacked (L, …) under "blocks" for
        scan_layers params."""
        c = self.config
        length = c.max_len if length is None else check_positive_int(length, "length")
        if length > c.max_len and c.positions in ("learned", "sinusoidal"):
            raise ValueError(
                f"init_cache: length={length} exceeds the model's max_len={c.max_len}."
            )
        one = init_kv_cache(batch, c.kv_heads, length, c.dh, dtype)
        if self.scan_layers:
            return {"blocks": jax.tree.map(lambda a: jnp.stack([a] * c.num_layers), one)}
        return {f"block_{i}": dict(one) for i in range(c.num_layers)}


def _initializers(config: DecoderConfig) -> tuple[Any, Any]:
    """(w_init, out_init) of the blocks: None (lecun-normal) or GPT-2's pair."""
    if config.init == "gpt2":
        residual = 0.02 / math.sqrt(2 * config.num_layers)
        return initializers.normal(0.02), initializers.normal(residual)
    return None, None


def decoder(
    config: DecoderConfig,
    *,
    implementation: str = "auto",
    chunk_size: int = 128,
    scan_layers: bool = False,
    remat: bool = False,
    name: str = "decoder",
) -> Decoder:
    """The decoder-only language model of `config` (module docstring): ids (B, T) → logits.

    `implementation`/`chunk_size` choose each block's attention kernel ("chunked": O(T)
    memory); `scan_layers=True` stacks the blocks' params under "blocks" and runs them with
    one `lax.scan` (remat=True: `jax.checkpoint` per block). None of these change the math.
    apply(params, ids, *, mask=None, key=None, train=False, positions=None, cache=None):
    `mask` (B, T) hides padded tokens (training; not with a cache); `positions` (T,) int are
    the absolute positions of the ids (default 0 … T−1); with `cache` the new keys/values
    are written at `positions` and (logits, new_cache) is returned.
    """
    if not isinstance(config, DecoderConfig):
        raise TypeError(f"decoder: config must be a DecoderConfig, got {type(config).__name__}.")
    if remat and not scan_layers:
        raise ValueError(
            "remat=True needs scan_layers=True (it rematerializes the scanned block body); "
            f"got remat={remat!r}, scan_layers={scan_layers!r}."
        )
    c = config
    depth = c.num_layers
    w_init, out_init = _initializers(c)
    embed = embedding(c.vocab_size, c.dim, stddev=0.02, name="embedding")
    block = transformer_block(
        c.dim,
        num_heads=c.num_heads,
        dropout=c.dropout,
        causal=True,
        implementation=implementation,
        chunk_size=chunk_size,
        num_kv_heads=c.num_kv_heads,
        head_dim=c.dh,
        mlp_hidden=4 * c.dim if c.mlp_hidden is None else c.mlp_hidden,
        mlp_activation=c.mlp_activation,
        gated_mlp=c.gated_mlp,
        norm=c.norm,
        norm_eps=c.norm_eps,
        norm_bias=c.norm_bias,
        attention_bias=c.attention_bias,
        attention_out_bias=c.attention_out_bias,
        mlp_bias=c.mlp_bias,
        qk_norm=c.qk_norm,
        rope_theta=c.rope_theta if c.positions == "rope" else None,
        rope_interleaved=c.rope_interleaved,
        window=c.sliding_window,
        logit_soft_cap=c.logit_soft_cap,
        w_init=w_init,
        out_init=out_init,
        name="block",
    )
    block_keys = [f"block_{i}" for i in range(depth)]
    final_norm = make_norm(c.norm, eps=c.norm_eps, use_bias=c.norm_bias, name="norm")
    head = dense(c.vocab_size, use_bias=c.head_bias, w_init=w_init, name="head")

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        check_ids_shape(shape, name)
        if shape[1] != -1 and shape[1] > c.max_len:
            raise ValueError(f"{name}: time {shape[1]} exceeds max_len={c.max_len}.")
        keys = jax.random.split(key, depth + 3)
        hidden = (*shape, c.dim)
        params: dict[str, Any] = {"embedding": embed.init(keys[0], shape)[0]}
        if c.positions == "learned":
            table = 0.02 * jax.random.normal(keys[1], (c.max_len, c.dim), jnp.float32)
            params["positions"] = {"table": table}
        if scan_layers:
            params["blocks"] = jax.vmap(lambda k: block.init(k, hidden)[0])(keys[3:])
        else:
            for block_key, k in zip(block_keys, keys[3:], strict=True):
                params[block_key], _ = block.init(k, hidden)
        params["norm"], _ = final_norm.init(keys[2], hidden)
        if not c.tie_embeddings:
            params["head"], _ = head.init(keys[2], hidden)
        return params, (*shape, c.vocab_size)

    def embed_positions(params: Params, x: Array, positions: Array) -> Array:
        if c.positions == "learned":
            return x + params["positions"]["table"][positions].astype(x.dtype)[None]
        if c.positions == "sinusoidal":
            table = jnp.asarray(sinusoidal_positions(c.max_len, c.dim), x.dtype)
            return x + table[positions][None]
        return x  # "rope" rotates q and k inside attention; "none" has no positions at all

    def run_blocks(
        params: Params, x: Array, mask: Any, key: Any, train: bool, positions: Array, cache: Any
    ) -> tuple[Array, Any]:
        if scan_layers:
            keys = None if key is None else jax.random.split(key, depth)

            def body(h: Array, layer: tuple[Params, Any, Any]) -> tuple[Array, Any]:
                p, k, kv = layer
                out = block.apply(
                    p, h, mask=mask, key=k, train=train, positions=positions, cache=kv
                )
                return out if kv is not None else (out, None)

            if remat:
                body = jax.checkpoint(body)
            stacked = None if cache is None else cache["blocks"]
            x, new = jax.lax.scan(body, x, (params["blocks"], keys, stacked))
            return x, None if cache is None else {"blocks": new}
        new_cache = {}
        for block_key, k in zip(block_keys, split_key(key, depth), strict=True):
            kv = None if cache is None else cache[block_key]
            out = block.apply(
                params[block_key], x, mask=mask, key=k, train=train, positions=positions, cache=kv
            )
            x, new_cache[block_key] = out if kv is not None else (out, None)
        return x, None if cache is None else new_cache

    def apply(
        params: Params,
        ids: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
        positions: Array | None = None,
        cache: Cache | None = None,
    ) -> Any:
        check_token_ids(ids, name, batched=True)
        mask = check_mask(mask, ids.shape, name)
        steps = ids.shape[1]
        if positions is None:
            if steps > c.max_len:
                raise ValueError(
                    f"{name}: sequence length {steps} exceeds max_len={c.max_len}; feed "
                    f"shorter windows or build the model with a larger max_len."
                )
            positions = jnp.arange(steps)
        positions = jnp.asarray(positions)
        if not jnp.issubdtype(positions.dtype, jnp.integer) or positions.shape != (steps,):
            raise ValueError(
                f"{name}: positions must be integers of shape ({steps},), got dtype "
                f"{positions.dtype} and shape {positions.shape}."
            )
        if cache is not None:
            _check_cache_tree(cache, scan_layers, block_keys, name)
        x = embed.apply(params["embedding"], ids, mask=mask)  # (B, T, D)
        x = embed_positions(params, x, positions)
        x, new_cache = run_blocks(params, x, mask, key, train, positions, cache)
        x = final_norm.apply(params["norm"], x)  # (B, T, D)
        if c.tie_embeddings:
            logits = tied_logits(params["embedding"]["table"], x)  # (B, T, V)
        else:
            logits = head.apply(params["head"], x)  # (B, T, V)
        return logits if cache is None else (logits, new_cache)

    return Decoder(init, apply, name, config, scan_layers, (implementation, chunk_size, remat))


def _check_cache_tree(cache: Any, scan_layers: bool, block_keys: list[str], name: str) -> None:
    expected = ["blocks"] if scan_layers else block_keys
    if not isinstance(cache, dict) or sorted(cache) != sorted(expected):
        found = sorted(cache) if isinstance(cache, dict) else type(cache).__name__
        raise ValueError(
            f"{name}: cache must hold {expected[0]!r}… ({len(expected)} entries, as made by "
            f"Decoder.init_cache for {'stacked' if scan_layers else 'unrolled'} params); "
            f"got {found}."
        )
