"""The Layer API and its combinators.

A layer is two pure functions and a name:

    params, out_shape = layer.init(key, in_shape)      # in_shape may use -1 for the batch
    y = layer.apply(params, x, *, key=None, train=False)

Parameters are nested dicts with readable string keys: `serial` stores child `i` under
`"<child name>_<i>"` (PyTorch's `nn.Sequential` also names children by position), so an
MLP's first weight is `params["dense_0"]["w"]`. Parameterless layers own `{}`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

Array = jax.Array
Shape = tuple[int, ...]
Params = dict[str, Any]


class InitFn(Protocol):
    def __call__(self, key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]: ...


class ApplyFn(Protocol):
    def __call__(
        self, params: Params, x: Any, *, key: Array | None = None, train: bool = False
    ) -> Any: ...


class Layer(NamedTuple):
    """A layer: `init(key, in_shape) -> (params, out_shape)` and pure `apply(params, x, ...)`.

    `name` is the prefix of this layer's key in a parent's parameter dict.
    """

    init: InitFn
    apply: ApplyFn
    name: str = "layer"


def as_shape(in_shape: Sequence[int], name: str = "in_shape") -> Shape:
    """Validate an input shape (ints, `-1` allowed for unknown sizes) and return it as a tuple."""
    try:
        shape = tuple(in_shape)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {in_shape!r}.") from None
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int) or (d < 1 and d != -1):
            raise ValueError(
                f"{name} must contain positive ints (or -1 for the batch), got {in_shape!r}."
            )
    return shape


def child_keys(layers: Sequence[Layer]) -> list[str]:
    """Parameter keys of a container's children: `"<name>_<position>"`."""
    return [f"{layer.name}_{i}" for i, layer in enumerate(layers)]


def split_key(key: Array | None, n: int) -> list[Array | None]:
    """Split `key` into `n` independent keys; `None` stays `None` for every child."""
    if key is None:
        return [None] * n
    return list(jax.random.split(key, n))


def get_child(params: Params, child: str, container: str) -> Params:
    """`params[child]`, or a KeyError that lists what the container's params do hold."""
    if not isinstance(params, dict) or child not in params:
        found = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise KeyError(
            f"{container}: params has no entry {child!r}; found {found}. Were these params "
            f"made by this model's init?"
        )
    return params[child]


def check_layers(layers: Sequence[Layer], container: str) -> Sequence[Layer]:
    """Raise unless `layers` is a non-empty sequence of `Layer`s."""
    if not layers:
        raise ValueError(f"{container} needs at least one layer, got none.")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"{container}: argument {i} must be a Layer, got {type(layer).__name__}. "
                f"Did you pass an activation function? Wrap it: nn.activation(fn)."
            )
    return layers


def serial(*layers: Layer, name: str = "serial") -> Layer:
    """Compose layers: y = fₙ(…f₂(f₁(x))). Child i's params live at `"<name>_<i>"`.

    `key` is split into one independent key per child; shapes are composed at init.
    """
    keys = child_keys(check_layers(layers, name))

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        params = {}
        for k, layer, layer_key in zip(keys, layers, split_key(key, len(layers)), strict=True):
            params[k], shape = layer.init(layer_key, shape)
        return params, shape

    def apply(params: Params, x: Any, *, key: Array | None = None, train: bool = False) -> Any:
        for k, layer, layer_key in zip(keys, layers, split_key(key, len(layers)), strict=True):
            x = layer.apply(get_child(params, k, name), x, key=layer_key, train=train)
        return x

    return Layer(init, apply, name)


def parallel(*layers: Layer, name: str = "parallel") -> Layer:
    """Fan out: feed the same x to every child and return the tuple (f₁(x), …, fₙ(x))."""
    keys = child_keys(check_layers(layers, name))

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, tuple[Shape, ...]]:
        shape = as_shape(in_shape)
        params, shapes = {}, []
        for k, layer, layer_key in zip(keys, layers, split_key(key, len(layers)), strict=True):
            params[k], out = layer.init(layer_key, shape)
            shapes.append(out)
        return params, tuple(shapes)

    def apply(params: Params, x: Any, *, key: Array | None = None, train: bool = False) -> Any:
        return tuple(
            layer.apply(get_child(params, k, name), x, key=layer_key, train=train)
            for k, layer, layer_key in zip(keys, layers, split_key(key, len(layers)), strict=True)
        )

    return Layer(init, apply, name)


def residual(layer: Layer, *, name: str = "residual") -> Layer:
    """Skip connection: y = x + f(x). f must preserve the shape; its params live under `"<f>_0"`."""
    inner = serial(layer, name=name)

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        params, out_shape = inner.init(key, shape)
        if tuple(out_shape) != shape:
            raise ValueError(
                f"residual: the wrapped layer must keep the shape, but maps {shape} to "
                f"{tuple(out_shape)}."
            )
        return params, shape

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        return x + inner.apply(params, x, key=key, train=train)

    return Layer(init, apply, name)


def activation(fn: Callable[[Array], Array], *, name: str | None = None) -> Layer:
    """A parameterless layer y = fn(x), applied elementwise (or over the last axis for softmax).

    Its name defaults to the function's name, so `activation(relu)` stores `{}` at `"relu_<i>"`.
    """
    if not callable(fn):
        raise TypeError(f"activation needs a callable fn, got {fn!r}.")
    layer_name = name or getattr(fn, "__name__", "activation")

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        return {}, as_shape(in_shape)

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del params, key, train
        return fn(x)

    return Layer(init, apply, layer_name)


def flatten(*, name: str = "flatten") -> Layer:
    """Flatten all but the leading (batch) axis: (B, d₁, …, dₖ) → (B, d₁·…·dₖ)."""

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        shape = as_shape(in_shape)
        if len(shape) < 2:
            raise ValueError(f"flatten needs (batch, ...) with rank ≥ 2, got in_shape={shape}.")
        size = 1
        for d in shape[1:]:
            if d == -1:
                raise ValueError(f"flatten needs known non-batch sizes, got in_shape={shape}.")
            size *= d
        return {}, (shape[0], size)

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del params, key, train
        if jnp.ndim(x) < 2:
            raise ValueError(f"flatten needs (batch, ...) with rank ≥ 2, got x.shape={x.shape}.")
        return jnp.reshape(x, (x.shape[0], -1))

    return Layer(init, apply, name)
