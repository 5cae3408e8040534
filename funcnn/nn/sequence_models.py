"""The five sequence architectures, built the same way for two jobs.

    ARCHITECTURES = bow, rnn, lstm, cnn, transformer

    char_lm(kind, vocab, ...)              ids (B, T) → next-token logits (B, T, vocab), causal
    sequence_regressor(kind, features, ...)  x (B, T, F) → one number per sequence (B,)

Every model is a `serial` of library layers, so the padding `mask` (B, T), True for real
steps, reaches each sequence layer through `serial` — nothing is threaded by hand.

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
from funcnn.nn.masking import check_mask

Array = jax.Array

__all__ = ["ARCHITECTURES", "char_lm", "sequence_regressor"]

ARCHITECTURES = ("bow", "rnn", "lstm", "cnn", "transformer")
"""The sequence architectures `char_lm` and `sequence_regressor` build, by `kind`."""
"""The architectures `char_lm` and `sequence_regressor` build, by name."""


# ---------------------------------------------------------------- shared encoders
def _conv_stack(dim: int, depth: int, width: int, padding: str) -> list[Layer]:
    """`depth` residual blocks x ← x + relu(conv(x)), dilation 1, 2, 4, …

    conv1d zeroes padded steps before it convolves (given the mask), so a non-causal (SAME)
    conv sees exactly the zero padding it would see at the sequence's end.
    """
    return [
        nn.residual(
            nn.serial(
                nn.conv1d(dim, width, padding=padding, dilation=2**i),
                nn.activation(relu),
                name=f"conv_{i}",
            ),
            name=f"conv_{i}",
        )
        for i in range(depth)
    ]


def _squeeze_last(layer: Layer, name: str) -> Layer:
    """`layer` with its size-1 last axis dropped: (..., 1) → (...)."""

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        params, out_shape = layer.init(key, in_shape)
        return params, tuple(out_shape[:-1])

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        return layer.apply(params, x, mask=mask, key=key, train=train)[..., 0]

    return Layer(init, apply, name)


# ---------------------------------------------------------------- language models
def char_lm(
    kind: str,
    vocab: int,
    *,
    dim: int = 64,
    hidden: int = 128,
    depth: int = 2,
    num_heads: int = 4,
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
        transformer  transformer_lm(vocab, dim, num_heads=num_heads, depth, max_len, dropout)
    The bow, rnn, lstm and cnn kinds start their table E at N(0, 0.1²): small, so the first
    logits are nearly uniform.
    apply(params, ids, *, mask=None, key=None, train=False).
    """
    check_choice(kind, "kind", ARCHITECTURES)
    check_positive_int(vocab, "vocab")
    if kind == "transformer":
        return nn.transformer_lm(
            vocab, dim, num_heads=num_heads, depth=depth, max_len=max_len, dropout=dropout
        )
    name = f"{kind}_lm"
    if kind == "bow":
        layers = [
            nn.bag_of_words(vocab, dim, causal=True, stddev=0.1),
            nn.mlp([dim, hidden, vocab], activation=gelu, name="head"),
        ]
    else:
        body: list[Layer] = (
            _conv_stack(dim, depth, width, "CAUSAL")
            if kind == "cnn"
            else [{"rnn": nn.rnn, "lstm": nn.lstm}[kind](hidden)]
        )
        layers = [nn.embedding(vocab, dim, stddev=0.1), *body, nn.dense(vocab, name="head")]
    model = nn.serial(*layers, name=name)

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        check_ids_shape(shape, name)
        return model.init(key, shape)

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
        return model.apply(params, ids, mask=mask, key=key, train=train)  # (B, T, vocab)

    return Layer(init, apply, name)


# ---------------------------------------------------------------- sequence → number
def sequence_regressor(
    kind: str,
    features: int,
    *,
    dim: int = 32,
    depth: int = 2,
    num_heads: int = 4,
    width: int = 3,
    max_len: int = 1024,
    forget_bias: float = 1.0,
) -> Layer:
    """x (B, T, features) → y (B,): one prediction per sequence (e.g. the adding problem).

    bow          mean over real steps of relu(x·W + b) → mlp([dim, dim, 1])
    rnn, lstm    final hidden state h_T → dense(1)
    cnn          x·W → `depth` dilated SAME convs → mean over real steps → dense(1)
    transformer  x·W + sinusoidal P → `depth` blocks → mean over real steps → dense(1)
    apply(params, x, *, mask=None, key=None, train=False).
    """
    check_choice(kind, "kind", ARCHITECTURES)
    check_positive_int(features, "features")
    name = f"{kind}_regressor"
    if kind in ("rnn", "lstm"):
        # forget_bias = 1 starts the cell remembering (Jozefowicz et al. 2015): without it
        # the adding problem's long plateau at MSE ≈ 0.167 lasts much longer.
        encoder = (
            nn.lstm(dim, forget_bias=forget_bias, name="encoder")
            if kind == "lstm"
            else nn.rnn(dim, name="encoder")
        )
        head = nn.dense(1, name="head")
        model = _squeeze_last(nn.serial(_final_state(encoder), head, name=name), name)
    else:
        if kind == "bow":
            body = [nn.activation(relu)]
        elif kind == "cnn":
            body = _conv_stack(dim, depth, width, "SAME")
        else:
            body = [
                nn.positional_encoding(max_len, kind="sinusoidal"),
                *[
                    nn.transformer_block(dim, num_heads=num_heads, name="block")
                    for _ in range(depth)
                ],
            ]
        head = nn.mlp([dim, dim, 1], name="head") if kind == "bow" else nn.dense(1, name="head")
        layers = [nn.dense(dim, name="input"), *body, nn.global_avg_pool(), head]
        model = _squeeze_last(nn.serial(*layers, name=name), name)

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        if len(shape) != 3 or shape[-1] != features:
            raise ValueError(
                f"{name}: in_shape must be (batch, time, {features}), got in_shape={shape}."
            )
        return model.init(key, shape)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        if jnp.ndim(x) != 3 or x.shape[-1] != features:
            raise ValueError(
                f"{name}: x must be (batch, time, {features}), got x.shape={jnp.shape(x)}."
            )
        mask = check_mask(mask, x.shape[:-1], name)
        return model.apply(params, x, mask=mask, key=key, train=train)  # (B,)

    return Layer(init, apply, name)


def _final_state(encoder: Layer) -> Layer:
    """A recurrent layer's final hidden state h_T (B, H) instead of its sequence (B, T, H)."""

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        params, (*lead, _steps, hidden) = encoder.init(key, in_shape)
        return params, (*lead, hidden)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        carry, _ = encoder.apply(params, x, mask=mask, key=key, train=train, return_carry=True)
        return carry[0] if isinstance(carry, tuple) else carry  # h_T; an LSTM's (h, c) → h

    return Layer(init, apply, encoder.name)
