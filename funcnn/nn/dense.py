"""Fully connected layers: dense, the single-neuron perceptron, and the MLP built from them.

    dense:       y = x @ w + b          w: (in, out), b: (out,), x: (..., in) → y: (..., out)
    perceptron:  y = f(x @ w + b)       a single neuron: w: (in, 1), b: (1,) → y: (..., 1)
    mlp:         serial(dense, f, dense, f, …, dense)  — no activation after the last dense
    feed_forward the transformer MLP: down(f(x·up)), or gated down(f(x·gate) ⊙ x·up)
                 (SwiGLU, GeGLU; Shazeer 2020), with f ∈ FEED_FORWARD_ACTIVATIONS (ReLU² too)

Default initializers: w ~ lecun_normal (Var = 1/fan_in), b = 0; see `funcnn.initializers`
for why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from funcnn import initializers
from funcnn._validation import check_floating, check_in_range, check_positive_int
from funcnn.activations import gelu, relu, sigmoid, silu
from funcnn.nn.core import Layer, Params, Shape, as_shape, get_child, serial
from funcnn.nn.core import activation as activation_layer
from funcnn.nn.dropout import dropout as dropout_layer
from funcnn.nn.masking import zero_padding
from funcnn.nn.norm import layer_norm as layer_norm_layer

Array = jax.Array

__all__ = ["FEED_FORWARD_ACTIVATIONS", "dense", "feed_forward", "mlp", "perceptron"]


def _input_width(in_shape: Sequence[int], name: str) -> tuple[Shape, int]:
    """Validate `in_shape` = (..., in) with a known `in` and return (shape, in)."""
    shape = as_shape(in_shape)
    if len(shape) == 0 or shape[-1] == -1:
        raise ValueError(
            f"{name}: in_shape must end with a known feature size, got in_shape={shape} "
            f"(expected (..., in); only leading dimensions may be -1)."
        )
    return shape, shape[-1]


def _check_input(x: Any, w: Array, name: str) -> None:
    """x must be floating with last dimension w.shape[0] (the layer's input width)."""
    check_floating(x, f"{name}: x")  # a list or a string is refused here, by name
    shape = jnp.shape(x)
    if len(shape) == 0 or shape[-1] != w.shape[0]:
        raise ValueError(
            f"{name}: x.shape={shape} does not fit w.shape={w.shape}; expected x of shape "
            f"(..., {w.shape[0]})."
        )


def _matmul_rows(x: Array, w: Array) -> Array:
    """x (..., in) @ w (in, out) → (..., out), computed as one 2-D product (N, in) @ (in, out).

    The same numbers as `jnp.matmul(x, w)`; why: the gradient ∂L/∂w = xᵀ·δ of a 3-D x is a
    dot contracting two axes (batch, time), and XLA:CPU makes a transposed copy of an operand
    for it (2 extra copies per dense layer in a transformer MLP's loss + grad); with the rows
    flattened first it contracts one axis and needs none (MLP sublayer fwd + bwd 0.83–0.89×
    its time; `benchmarks/README.md`, "Transformer: the whole-program surplus"). The
    recurrent layers project their inputs with it too (the LSTM LM's ∂W_x, ∂b: 14.8 → 4.8 ms).
    """
    if x.ndim <= 2:
        return jnp.matmul(x, w)
    rows = jnp.reshape(x, (math.prod(x.shape[:-1]), x.shape[-1]))  # (N, in), N = ∏ leading dims
    return jnp.reshape(jnp.matmul(rows, w), (*x.shape[:-1], w.shape[-1]))


def dense(
    features: int,
    *,
    use_bias: bool = True,
    w_init: initializers.Initializer | None = None,
    b_init: initializers.Initializer | None = None,
    dtype: Any = jnp.float32,
    name: str = "dense",
) -> Layer:
    """Affine map y = x @ w + b over the last axis, for any leading dimensions.

    Shapes: x (..., in), w (in, features), b (features,), y (..., features).
    Gradients: ∂L/∂w = xᵀ·δ, ∂L/∂b = Σ δ, ∂L/∂x = δ·wᵀ (δ = ∂L/∂y summed over leading dims).
    Params {"w": (in, features), "b": (features,)} (no "b" when use_bias=False);
    w ~ lecun_normal and b = 0 unless `w_init`/`b_init` say otherwise.
    """
    features = check_positive_int(features, "features")
    w_init = w_init or initializers.lecun_normal()
    b_init = b_init or initializers.zeros()
    for arg, fn in (("w_init", w_init), ("b_init", b_init)):
        if not callable(fn):
            raise TypeError(
                f"{name}: {arg} must be an initializer (key, shape, dtype), got {fn!r}."
            )

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape, width = _input_width(in_shape, name)
        w_key, b_key = jax.random.split(key)
        params = {"w": w_init(w_key, (width, features), dtype)}
        if use_bias:
            params["b"] = b_init(b_key, (features,), dtype)
        return params, (*shape[:-1], features)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train  # deterministic
        w = get_child(params, "w", name)
        _check_input(x, w, name)
        x = zero_padding(x, mask, name)  # per-step: padded steps hold 0, whatever they held
        y = _matmul_rows(x, w)  # (..., in) @ (in, out) → (..., out)
        if use_bias:
            b = get_child(params, "b", name)
            y = y + jnp.reshape(b, (1,) * (y.ndim - 1) + b.shape)  # explicit broadcast
        return y

    return Layer(init, apply, name)


def perceptron(
    activation: Callable[[Array], Array] = sigmoid,
    *,
    w_init: initializers.Initializer | None = None,
    name: str = "perceptron",
) -> Layer:
    """A single neuron: y = f(x·w + b) with w: (in, 1), b: (1,), y: (..., 1).

    f = sigmoid (default) gives logistic regression, trainable with `jax.grad`;
    f = `activations.step` gives Rosenblatt's perceptron (zero gradient — use the perceptron
    rule w ← w + η·(t − y)·x for it). Params {"w": (in, 1), "b": (1,)}.
    """
    if not callable(activation):
        raise TypeError(f"{name}: activation must be callable, got {activation!r}.")
    neuron = dense(1, w_init=w_init, name=name)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        return activation(neuron.apply(params, x, mask=mask, key=key, train=train))

    return Layer(neuron.init, apply, name)


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"mlp: sizes must be a sequence of ints, got {sizes!r}.") from None
    if len(sizes) < 2:
        raise ValueError(
            f"mlp: sizes must list [in, hidden..., out] with at least 2 entries, got {sizes}."
        )
    for i, size in enumerate(sizes):
        check_positive_int(size, f"mlp: sizes[{i}]")
    return sizes


def mlp(
    sizes: Sequence[int],
    activation: Callable[[Array], Array] = relu,
    *,
    dropout: float = 0.0,
    layer_norm: bool = False,
    w_init: initializers.Initializer | None = None,
    name: str = "mlp",
) -> Layer:
    """Multi-layer perceptron: h₀ = x, h_{l+1} = f(h_l @ W_l + b_l), y = h_{L−1} @ W_{L−1} + b.

    `sizes` = [in, hidden₁, …, out]; `sizes[0]` is checked against the input width at init.
    It is a `serial` of, per hidden layer, dense → [layer_norm] → f → [dropout], then a final
    dense with no activation (the loss applies softmax/sigmoid). `dropout` is the drop
    probability in [0, 1) (0 adds no dropout layers); `w_init` is passed to every dense.
    Param keys follow position:
    mlp([784, 512, 10]) → dense_0, relu_1, dense_2; with layer_norm and dropout:
    dense_0, layer_norm_1, relu_2, dropout_3, dense_4.

    >>> import jax, jax.numpy as jnp
    >>> from funcnn import nn
    >>> model = nn.mlp([4, 8, 2])
    >>> params, out_shape = model.init(jax.random.key(0), (-1, 4))
    >>> list(params), params["dense_0"]["w"].shape, out_shape
    (['dense_0', 'relu_1', 'dense_2'], (4, 8), (-1, 2))
    >>> model.apply(params, jnp.ones((5, 3, 4))).shape  # any leading batch dims
    (5, 3, 2)
    """
    sizes = _check_sizes(sizes)
    if not callable(activation):
        raise TypeError(f"{name}: activation must be callable, got {activation!r}.")
    rate = check_in_range(dropout, "dropout", 0.0, 1.0, high_inclusive=True)
    layers: list[Layer] = []
    for width in sizes[1:-1]:
        layers.append(dense(width, w_init=w_init))
        if layer_norm:
            layers.append(layer_norm_layer())
        layers.append(activation_layer(activation))
        if rate > 0:
            layers.append(dropout_layer(rate))
    layers.append(dense(sizes[-1], w_init=w_init))
    body = serial(*layers, name=name)

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape, width = _input_width(in_shape, name)
        if width != sizes[0]:
            raise ValueError(
                f"{name}: sizes[0]={sizes[0]} is the input width, but in_shape={shape} ends "
                f"in {width}."
            )
        return body.init(key, shape)

    return Layer(init, body.apply, name)


def gelu_tanh(x: Array) -> Array:
    """GELU's tanh form ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GPT-2's "gelu_new")."""
    return gelu(x, approximate=True)


def relu2(x: Array) -> Array:
    """Squared ReLU, max(x, 0)² (So et al. 2021, "Primer")."""
    return jnp.square(relu(x))


FEED_FORWARD_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": gelu,
    "gelu_tanh": gelu_tanh,
    "silu": silu,
    "relu": relu,
    "relu2": relu2,
}
"""Activations of `feed_forward` by name: exact GELU, tanh-GELU, SiLU (swish), ReLU, ReLU²."""


def feed_forward(
    dim: int,
    hidden: int,
    *,
    activation: str = "gelu",
    gated: bool = False,
    use_bias: bool = True,
    w_init: initializers.Initializer | None = None,
    out_init: initializers.Initializer | None = None,
    name: str = "mlp",
) -> Layer:
    """The transformer's position-wise MLP on x (..., D) → (..., dim), hidden width F:

        plain:  y = f(x·W_up + b_up)·W_down + b_down
                params {"dense_0": (D, F), "<f>_1": {}, "dense_2": (F, dim)} — `mlp`'s layout
        gated:  y = (f(x·W_gate) ⊙ (x·W_up))·W_down
                params {"gate", "up": (D, F), "down": (F, dim)}

    f = FEED_FORWARD_ACTIVATIONS[activation]: gated with "silu" is SwiGLU (Llama), with
    "gelu" GeGLU; plain with "relu2" is ReLU² (Primer), with "gelu_tanh" GPT-2's MLP.
    Biases only with `use_bias`. `w_init` initializes the input weights (default
    lecun_normal), `out_init` the output weight (default `w_init`): GPT-2 scales the
    residual projection down by 1/√(2L).
    """
    check_positive_int(dim, "dim")
    check_positive_int(hidden, "hidden")
    if activation not in FEED_FORWARD_ACTIVATIONS:
        raise ValueError(
            f"{name}: activation must be one of {sorted(FEED_FORWARD_ACTIVATIONS)}, got "
            f"{activation!r}."
        )
    fn = FEED_FORWARD_ACTIVATIONS[activation]
    out_init = out_init or w_init
    if not gated:
        return serial(
            dense(hidden, use_bias=use_bias, w_init=w_init),
            activation_layer(fn, name=activation),
            dense(dim, use_bias=use_bias, w_init=out_init),
            name=name,
        )
    parts = {
        "gate": dense(hidden, use_bias=use_bias, w_init=w_init, name="gate"),
        "up": dense(hidden, use_bias=use_bias, w_init=w_init, name="up"),
        "down": dense(dim, use_bias=use_bias, w_init=out_init, name="down"),
    }

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape, _ = _input_width(in_shape, name)
        keys = jax.random.split(key, 3)
        params = {
            "gate": parts["gate"].init(keys[0], shape)[0],
            "up": parts["up"].init(keys[1], shape)[0],
            "down": parts["down"].init(keys[2], (*shape[:-1], hidden))[0],
        }
        return params, (*shape[:-1], dim)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train  # deterministic
        x = zero_padding(x, mask, name)  # per-step: padded steps hold 0, whatever they held
        gate = fn(parts["gate"].apply(get_child(params, "gate", name), x))  # (..., F)
        up = parts["up"].apply(get_child(params, "up", name), x)  # (..., F)
        return parts["down"].apply(get_child(params, "down", name), gate * up)  # (..., dim)

    return Layer(init, apply, name)
