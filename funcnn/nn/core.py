"""The Layer API and its combinators.

A layer is two pure functions and a name — one contract for every layer in funcnn, so that
any of them compose with `serial`:

    params, out_shape = layer.init(key, in_shape)   # in_shape may use -1 for the batch;
                                                    # out_shape is a plain tuple of ints
    y = layer.apply(params, x, *, mask=None, key=None, train=False)   # one array out

`mask` (..., T), True for real sequence steps, is honoured by every layer for which padding
matters (recurrent layers, convolutions, pools, attention, bag of words) and ignored by the
per-step ones (dense, layer_norm, activations); `key` is used only by stochastic layers when
`train=True`. The combinators (`serial`, `parallel`, `residual`) forward `mask` and `train`
to every child and split `key` into one independent key per child.

Parameters are nested dicts with readable string keys: `serial` stores child `i` under
`"<child name>_<i>"` (PyTorch's `nn.Sequential` also names children by position), so an
MLP's first weight is `params["dense_0"]["w"]`. Parameterless layers own `{}`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from funcnn._validation import check_choice
from funcnn.nn.masking import check_mask

Array = jax.Array
Shape = tuple[int, ...]
"""A plain shape: a tuple of ints, -1 for a size unknown at init (usually the batch)."""
Params = dict[str, Any]
"""A layer's parameters: a dict with readable string keys and array (or dict) values."""

__all__ = [
    "ApplyFn",
    "InitFn",
    "Layer",
    "Params",
    "Shape",
    "activation",
    "apply_child",
    "as_shape",
    "check_children",
    "check_out_shape",
    "child_keys",
    "flatten",
    "get_child",
    "parallel",
    "residual",
    "serial",
    "split_key",
]


class InitFn(Protocol):
    """`init(key, in_shape) -> (params, out_shape)`: a layer's parameters and output shape."""

    def __call__(self, key: Array, in_shape: Sequence[int], /) -> tuple[Params, Shape]: ...


class ApplyFn(Protocol):
    """`apply(params, x, *, mask=None, key=None, train=False) -> y`: a layer's pure forward."""

    def __call__(self, params: Params, x: Any, /, *args: Any, **kwargs: Any) -> Any: ...


class Layer(NamedTuple):
    """A layer: `init(key, in_shape) -> (params, out_shape)` and pure `apply(params, x, ...)`.

    `apply(params, x, *, mask=None, key=None, train=False)` returns one array. `name` is the
    prefix of this layer's key in a parent's parameter dict.
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


def check_out_shape(out_shape: Any, child: str, container: str) -> Shape:
    """Return a child's `out_shape` as a tuple of ints, or raise naming the child and the cause.

    Every layer's init must return a plain shape (never a nested structure such as
    `(ys_shape, carry_shape)`), or the next layer in a `serial` cannot be built.
    """
    if not isinstance(out_shape, (tuple, list)):
        raise TypeError(
            f"{container}: child {child!r} returned out_shape={out_shape!r} "
            f"({type(out_shape).__name__}) from init; expected a tuple of ints."
        )
    for i, d in enumerate(out_shape):
        if isinstance(d, bool) or not isinstance(d, int) or (d < 1 and d != -1):
            raise TypeError(
                f"{container}: child {child!r} returned out_shape={out_shape!r} from init, "
                f"which is not a shape: element {i} is {d!r} ({type(d).__name__}); expected a "
                f"tuple of positive ints (or -1). A layer must return one plain shape, not a "
                f"nested structure."
            )
    return tuple(out_shape)


def child_keys(layers: Sequence[Layer]) -> list[str]:
    """Parameter keys of a container's children: `"<name>_<position>"`."""
    return [f"{layer.name}_{i}" for i, layer in enumerate(layers)]


def split_key(key: Array | None, n: int) -> list[Array | None]:
    """Split `key` into `n` independent keys; `None` stays `None` for every child."""
    if key is None:
        return [None] * n
    return list(jax.random.split(key, n))


def get_child(params: Params, child: str, container: str) -> Any:
    """`params[child]`, or a KeyError that lists what the container's params do hold."""
    if not isinstance(params, dict) or child not in params:
        found = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise KeyError(
            f"{container}: params has no entry {child!r}; found {found}. Were these params "
            f"made by this model's init?"
        )
    return params[child]


def check_children(layers: Sequence[Layer], container: str) -> Sequence[Layer]:
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


def _takes_mask(apply: Callable[..., Any]) -> bool:
    """Whether `apply` has a `mask` keyword (or **kwargs)."""
    try:
        parameters = inspect.signature(apply).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: assume the contract
        return True
    return any(p.name == "mask" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def apply_child(
    layer: Layer,
    params: Params,
    x: Any,
    *,
    mask: Array | None = None,
    key: Array | None = None,
    train: bool = False,
) -> Any:
    """`layer.apply(params, x, mask=mask, key=key, train=train)`, as containers call children.

    A layer whose apply has no `mask` parameter declares itself per-step (its output at t
    depends only on x[t]), so it is called without one.
    """
    if mask is None or not _takes_mask(layer.apply):
        return layer.apply(params, x, key=key, train=train)
    return layer.apply(params, x, mask=mask, key=key, train=train)


def serial(*layers: Layer, name: str = "serial") -> Layer:
    """Compose layers: y = fₙ(…f₂(f₁(x))). Child i's params live at `"<name>_<i>"`.

    Shapes are composed at init (each child's out_shape must be a plain shape). apply passes
    the same `mask` and `train` to every child and splits `key` into one key per child.
    """
    keys = child_keys(check_children(layers, name))

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        params = {}
        for k, layer, layer_key in zip(
            keys, layers, jax.random.split(key, len(layers)), strict=True
        ):
            params[k], out = layer.init(layer_key, shape)
            shape = check_out_shape(out, k, name)
        return params, shape

    def apply(
        params: Params,
        x: Any,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Any:
        for k, layer, layer_key in zip(keys, layers, split_key(key, len(layers)), strict=True):
            child = get_child(params, k, name)
            x = apply_child(layer, child, x, mask=mask, key=layer_key, train=train)
        return x

    return Layer(init, apply, name)


COMBINES = ("concat", "sum")


def parallel(*layers: Layer, combine: str = "concat", name: str = "parallel") -> Layer:
    """Fan out: feed the same x to every child and merge their outputs into one array.

        combine="concat":  y = [f₁(x) ‖ … ‖ fₙ(x)]   joined on the last axis (Inception-style)
        combine="sum":     y = f₁(x) + … + fₙ(x)     outputs must have one shape

    Children's outputs must agree on every axis but the last ("concat") or on all ("sum").
    `mask` and `train` reach every child; `key` is split per child.
    """
    keys = child_keys(check_children(layers, name))
    check_choice(combine, "combine", COMBINES)

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        params, shapes = {}, []
        for k, layer, layer_key in zip(
            keys, layers, jax.random.split(key, len(layers)), strict=True
        ):
            params[k], out = layer.init(layer_key, shape)
            shapes.append(check_out_shape(out, k, name))
        first = shapes[0]
        for k, out in zip(keys, shapes, strict=True):
            agree = out == first if combine == "sum" else out[:-1] == first[:-1]
            if not agree or len(out) == 0:
                what = "the same shape" if combine == "sum" else "all axes but the last"
                raise ValueError(
                    f"{name}: combine={combine!r} needs children that agree on {what}, but "
                    f"{keys[0]!r} gives {first} and {k!r} gives {out}."
                )
        if combine == "sum":
            return params, first
        widths = [out[-1] for out in shapes]
        width = -1 if -1 in widths else sum(widths)
        return params, (*first[:-1], width)

    def apply(
        params: Params,
        x: Any,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        ys = [
            apply_child(layer, get_child(params, k, name), x, mask=mask, key=k_, train=train)
            for k, layer, k_ in zip(keys, layers, split_key(key, len(layers)), strict=True)
        ]
        if combine == "sum":
            total = ys[0]
            for y in ys[1:]:
                total = total + y
            return total
        return jnp.concatenate(ys, axis=-1)

    return Layer(init, apply, name)


def residual(layer: Layer, *, name: str = "residual") -> Layer:
    """Skip connection: y = x + f(x). f must preserve the shape; its params live under `"<f>_0"`.

    `mask`, `key` and `train` are forwarded to f.
    """
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

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        return x + inner.apply(params, x, mask=mask, key=key, train=train)

    return Layer(init, apply, name)


def activation(fn: Callable[[Array], Array], *, name: str | None = None) -> Layer:
    """A parameterless layer y = fn(x), applied elementwise (or over the last axis for softmax).

    Its name defaults to the function's name, so `activation(relu)` stores `{}` at `"relu_<i>"`.
    Per-step: `mask` is accepted and ignored.
    """
    if not callable(fn):
        raise TypeError(f"activation: fn must be callable, got fn={fn!r}.")
    layer_name = name or str(getattr(fn, "__name__", "activation"))

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        return {}, as_shape(in_shape)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del params, mask, key, train
        return fn(x)

    return Layer(init, apply, layer_name)


def flatten(*, name: str = "flatten") -> Layer:
    """Flatten all but the leading (batch) axis: (B, d₁, …, dₖ) → (B, d₁·…·dₖ).

    With a padding `mask` (B, T) and a sequence x (B, T, …) of rank ≥ 3, padded steps are
    zeroed first, so no layer after the flatten sees what padding holds; a rank-2 x has no
    time axis left and the mask is ignored.
    """

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        shape = as_shape(in_shape)
        if len(shape) < 2:
            raise ValueError(f"{name}: needs (batch, ...) with rank ≥ 2, got in_shape={shape}.")
        size = 1
        for d in shape[1:]:
            if d == -1:
                raise ValueError(f"{name}: needs known non-batch sizes, got in_shape={shape}.")
            size *= d
        return {}, (shape[0], size)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del params, key, train
        if jnp.ndim(x) < 2:
            raise ValueError(f"{name}: needs (batch, ...) with rank ≥ 2, got x.shape={x.shape}.")
        mask = check_mask(mask, x.shape[:2], name) if jnp.ndim(x) >= 3 else None
        if mask is not None:
            keep = jnp.reshape(mask, mask.shape + (1,) * (x.ndim - 2))  # (B, T, 1, …)
            x = jnp.where(keep, x, jnp.zeros_like(x))
        return jnp.reshape(x, (x.shape[0], -1))

    return Layer(init, apply, name)
