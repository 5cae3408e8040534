"""The five sequence architectures, built the same way for two jobs.

    KINDS = bow, rnn, lstm, cnn, transformer

    char_lm(kind, vocab, ...)              ids (B, T) → next-token logits (B, T, vocab), causal
    sequence_regressor(kind, features, ...)  x (B, T, F) → one number per sequence (B,)

Every model is a `Layer` whose apply takes `mask=None` (B, T), True for real steps, and
threads it to each sequence layer by hand — `serial` does not carry masks.

    bow          order-blind: the (prefix) mean of per-step embeddings
    rnn / lstm   one recurrent layer, sequential in T (a lax.scan of T steps)
    cnn          a stack of dilated convolutions (dilation 1, 2, 4, …) with residuals;
                 its receptive field is 1 + (width − 1)·(2^depth − 1) steps
    transformer  pre-LN transformer blocks: every step attends to every (earlier) step,
                 with attention memory quadratic in T
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcnn import nn
from funcnn._validation import check_choice, check_positive_int
from funcnn.activations import gelu, relu
from funcnn.nn.core import Layer, Params, Shape, as_shape
from funcnn.nn.embedding import check_ids_shape, check_token_ids
from funcnn.nn.masking import check_mask, masked_mean

Array = jax.Array

KINDS = ("bow", "rnn", "lstm", "cnn", "transformer")


# ---------------------------------------------------------------- shared encoders
def _conv_stack(dim: int, depth: int, width: int, padding: str) -> list[Layer]:
    return [
        nn.conv1d(dim, width, padding=padding, dilation=2**i, name=f"conv_{i}")
        for i in range(depth)
    ]


def _apply_conv_stack(convs: list[Layer], params: Params, x: Array, mask: Array | None) -> Array:
    """x ← x + relu(conv(x)) per layer. Padded steps are zeroed before every conv, so a
    non-causal (SAME) conv sees exactly the zero padding it would see at the sequence's end."""
    keep = None if mask is None else mask[..., None].astype(x.dtype)  # (B, T, 1)
    for conv in convs:
        if keep is not None:
            x = x * keep
        x = x + relu(conv.apply(params[conv.name], x))
    return x


# ---------------------------------------------------------------- language models
def char_lm(
    kind: str,
    vocab: int,
    *,
    dim: int = 64,
    hidden: int = 128,
    depth: int = 2,
    heads: int = 4,
    width: int = 3,
    max_len: int = 256,
    dropout: float = 0.0,
) -> Layer:
    """A next-character model of the given kind: ids (B, T) → logits (B, T, vocab).

    The logits at t depend only on ids[≤ t] for every kind (the bow uses the prefix bag, the
    cnn causal padding, the transformer a causal mask), so one forward pass scores a window.
        bow          E → prefix mean → mlp([dim, hidden, vocab])
        rnn, lstm    E → rnn/lstm(hidden) → dense(vocab)
        cnn          E → `depth` causal dilated convs (dim channels, `width` taps) → dense(vocab)
        transformer  transformer_lm(vocab, dim, num_heads=heads, depth, max_len, dropout)
    """
    check_choice(kind, "kind", KINDS)
    check_positive_int(vocab, "vocab")
    if kind == "transformer":
        return nn.transformer_lm(
            vocab, dim, num_heads=heads, depth=depth, max_len=max_len, dropout=dropout
        )
    name = f"{kind}_lm"
    embed = (
        nn.bag_of_words(vocab, dim, causal=True, stddev=0.1, name="embedding")
        if kind == "bow"
        else nn.embedding(vocab, dim, stddev=0.1, name="embedding")
    )
    recurrent = {"rnn": nn.rnn, "lstm": nn.lstm}.get(kind)
    encoder = recurrent(hidden, name="encoder") if recurrent else None
    convs = _conv_stack(dim, depth, width, "CAUSAL") if kind == "cnn" else []
    head_in = hidden if recurrent else dim
    head = (
        nn.mlp([dim, hidden, vocab], activation=gelu, name="head")
        if kind == "bow"
        else nn.dense(vocab, name="head")
    )

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        check_ids_shape(shape, name)
        k_embed, k_encoder, k_head = jax.random.split(key, 3)
        features = (*shape, dim)
        params = {"embedding": embed.init(k_embed, shape)[0]}
        if encoder is not None:
            params["encoder"], _ = encoder.init(k_encoder, features)
        for conv, k in zip(convs, jax.random.split(k_encoder, max(len(convs), 1)), strict=False):
            params[conv.name], _ = conv.init(k, features)
        params["head"], _ = head.init(k_head, (*shape, head_in))
        return params, (*shape, vocab)

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
        mask = check_mask(mask, ids.shape, name)
        if kind == "bow":
            x = embed.apply(params["embedding"], ids, mask=mask)  # (B, T, D) prefix means
        else:
            x = embed.apply(params["embedding"], ids, mask=mask)  # (B, T, D)
        if encoder is not None:
            x, _ = encoder.apply(params["encoder"], x, mask=mask)  # (B, T, H)
        x = _apply_conv_stack(convs, params, x, mask)
        return head.apply(params["head"], x)  # (B, T, vocab)

    return Layer(init, apply, name)


# ---------------------------------------------------------------- sequence → number
def sequence_regressor(
    kind: str,
    features: int,
    *,
    dim: int = 32,
    depth: int = 2,
    heads: int = 4,
    width: int = 3,
    max_len: int = 1024,
    forget_bias: float = 1.0,
) -> Layer:
    """x (B, T, features) → y (B,): one prediction per sequence (e.g. the adding problem).

    bow          mean over real steps of relu(x·W + b) → mlp([dim, dim, 1])
    rnn, lstm    final hidden state h_T → dense(1)
    cnn          x·W → `depth` dilated SAME convs → mean over real steps → dense(1)
    transformer  x·W + sinusoidal P → `depth` blocks → mean over real steps → dense(1)
    """
    check_choice(kind, "kind", KINDS)
    check_positive_int(features, "features")
    name = f"{kind}_regressor"
    if kind == "lstm":
        # forget_bias = 1 starts the cell remembering (Jozefowicz et al. 2015): without it
        # the adding problem's long plateau at MSE ≈ 0.167 lasts much longer.
        encoder = nn.lstm(dim, forget_bias=forget_bias, name="encoder")
    else:
        encoder = nn.rnn(dim, name="encoder") if kind == "rnn" else None
    recurrent = encoder is not None
    project = None if recurrent else nn.dense(dim, name="input")
    convs = _conv_stack(dim, depth, width, "SAME") if kind == "cnn" else []
    blocks = (
        [nn.transformer_block(dim, num_heads=heads, name=f"block_{i}") for i in range(depth)]
        if kind == "transformer"
        else []
    )
    positions = (
        nn.positional_encoding(max_len, kind="sinusoidal") if kind == "transformer" else None
    )
    head = nn.mlp([dim, dim, 1], name="head") if kind == "bow" else nn.dense(1, name="head")

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        if len(shape) != 3 or shape[-1] != features:
            raise ValueError(f"{name}: expects (batch, time, {features}), got in_shape={shape}.")
        keys = list(jax.random.split(key, 3 + depth))
        hidden = (*shape[:-1], dim)
        params: Params = {}
        if encoder is not None:
            params["encoder"], _ = encoder.init(keys[0], shape)
        if project is not None:
            params["input"], _ = project.init(keys[0], shape)
        for layer, k in zip([*convs, *blocks], keys[3:], strict=False):
            params[layer.name], _ = layer.init(k, hidden)
        params["head"], _ = head.init(keys[1], (shape[0], dim))
        return params, (shape[0],)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train
        if jnp.ndim(x) != 3 or x.shape[-1] != features:
            raise ValueError(f"{name}: expects x (batch, time, {features}), got {jnp.shape(x)}.")
        mask = check_mask(mask, x.shape[:-1], name)
        if encoder is not None:
            _, carry = encoder.apply(params["encoder"], x, mask=mask)
            summary = carry[0] if isinstance(carry, tuple) else carry  # h_T (B, dim)
        else:
            h = project.apply(params["input"], x)  # (B, T, dim)
            if kind == "bow":
                h = relu(h)
            h = _apply_conv_stack(convs, params, h, mask)
            if positions is not None:
                h = positions.apply({}, h)
            for block in blocks:
                h = block.apply(params[block.name], h, mask=mask)
            summary = masked_mean(h, mask)  # (B, dim)
        return head.apply(params["head"], summary)[:, 0]

    return Layer(init, apply, name)
