"""The Layer API and its combinators.

A layer is two pure functions and a name — one contract for every layer in funcnn, so that
any of them compose with `serial`:

    params, out_shape = layer.init(key, in_shape)   # in_shape may use -1 for the batch;
                                                    # out_shape is a plain tuple of ints
    y = layer.apply(params, x, *, mask=None, key=None, train=False)   # one array out

`mask` (..., T), True for real sequence steps, is honoured by every layer that takes it:
the sequence layers (recurrent layers, convolutions, pools, attention, bag of words) leave
padded steps out, and the per-step ones (dense, the norms, activations) zero them before any
arithmetic, so values and gradients never depend on what padding holds. `key` is used only
by stochastic layers when `train=True`. The combinators (`serial`, `parallel`, `residual`)
forward `mask` and `train` to every child and split `key` into one independent key per child.

Parameters are nested dicts with readable string keys: `serial` stores child `i` under
`"<child name>_<i>"` (PyTorch's `nn.Sequential` also names children by position), so an
MLP's first weight is `params["dense_0"]["w"]`. Parameterless layers own `{}`.

State — one mechanism for every layer. Some layers keep values that are not parameters:
batch_norm's running mean and variance are not differentiated and never touched by the
optimizer. Such a layer is *stateful*: its `Layer.init_state` is set, and

    state, out_shape = layer.init_state(in_shape)      # deterministic, no key
    y, new_state = layer.apply(params, x, state=state, train=True)   # (y, state) out

`state=` is how a caller asks for the state: a stateful apply always takes it and always
returns `(y, new_state)` (with `train=False` the state comes back unchanged), while every
stateless layer keeps the one-array contract above and has `init_state = None`. A container
is stateful exactly when one of its children is; its state mirrors its params' keys
(`state["batch_norm_1"]["mean"]`, `{}` for stateless children), and it threads each child's
state in and out. `initial_state(layer, in_shape)` and `apply_with_state` work for any
layer (stateless ones own `{}`), so generic code — `serial`, `fit` — needs no special case.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from funcnn._validation import check_choice
from funcnn.nn.masking import check_mask, has_time_axis, zero_padding

Array = jax.Array
Shape = tuple[int, ...]
"""A plain shape: a tuple of ints, -1 for a size unknown at init (usually the batch)."""
Params = dict[str, Any]
"""A layer's parameters: a dict with readable string keys and array (or dict) values."""
State = dict[str, Any]
"""A layer's non-parameter state (running statistics): a dict like Params; `{}` if none."""

__all__ = [
    "ApplyFn",
    "InitFn",
    "InitStateFn",
    "Layer",
    "Params",
    "Shape",
    "State",
    "activation",
    "apply_child",
    "apply_with_state",
    "as_shape",
    "check_children",
    "check_out_shape",
    "child_keys",
    "flatten",
    "get_child",
    "infer_out_shape",
    "initial_state",
    "is_stateful",
    "parallel",
    "reshape",
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


class InitStateFn(Protocol):
    """`init_state(in_shape) -> (state, out_shape)`: a stateful layer's initial state."""

    def __call__(self, in_shape: Sequence[int], /) -> tuple[State, Shape]: ...


class Layer(NamedTuple):
    """A layer: `init(key, in_shape) -> (params, out_shape)` and pure `apply(params, x, ...)`.

    `apply(params, x, *, mask=None, key=None, train=False)` returns one array. `name` is the
    prefix of this layer's key in a parent's parameter dict. `init_state` is None for a
    stateless layer; a stateful one sets it, and its apply takes `state=` and returns
    `(y, new_state)` (see the module docstring).
    """

    init: InitFn
    apply: ApplyFn
    name: str = "layer"
    init_state: InitStateFn | None = None


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


def is_stateful(layer: Layer) -> bool:
    """Whether `layer` keeps state beside its params (its `init_state` is set)."""
    return layer.init_state is not None


def infer_out_shape(layer: Layer, in_shape: Sequence[int]) -> Shape:
    """`layer.init(key, in_shape)`'s out_shape, found by tracing init abstractly (no compute)."""
    found: list[Shape] = []

    def params_only(key: Array) -> Params:
        params, out = layer.init(key, in_shape)
        found.append(out)
        return params

    jax.eval_shape(params_only, jax.random.key(0))
    return check_out_shape(found[0], layer.name, "infer_out_shape")


def initial_state(layer: Layer, in_shape: Sequence[int]) -> State:
    """The state a model starts with: `layer.init_state(in_shape)[0]`, `{}` for a stateless
    layer. Batch norm's is {"mean": 0, "var": 1} per channel (PyTorch's initial values)."""
    if layer.init_state is None:
        return {}
    state, _ = layer.init_state(as_shape(in_shape))
    return state


def apply_with_state(
    layer: Layer,
    params: Params,
    x: Any,
    state: State,
    *,
    mask: Array | None = None,
    key: Array | None = None,
    train: bool = False,
) -> tuple[Any, State]:
    """`(y, new_state)` for any layer: a stateful one gets `state=` and returns both; a
    stateless one (whose state is `{}`) returns `(apply(...), state)` unchanged."""
    if layer.init_state is None:
        return apply_child(layer, params, x, mask=mask, key=key, train=train), state
    options: dict[str, Any] = {"key": key, "train": train, "state": state}
    if mask is not None and _takes_mask(layer.apply):
        options["mask"] = mask
    out = layer.apply(params, x, **options)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(
            f"{layer.name}: a stateful layer's apply must return (y, new_state) when given "
            f"state=, got {type(out).__name__}."
        )
    return out


def no_state_error(name: str) -> ValueError:
    """The error a stateful layer raises when called without `state=`."""
    return ValueError(
        f"{name} keeps state (e.g. batch_norm's running statistics), so apply needs it: "
        f"y, state = model.apply(params, x, state=state, train=...), with the first state "
        f"from nn.initial_state(model, in_shape). It returns (y, new_state)."
    )


def _children_state(
    keys: Sequence[str], layers: Sequence[Layer], shape: Shape, name: str, *, chain: bool
) -> tuple[State, list[Shape]]:
    """Each child's initial state ({} if stateless) and out_shape; `chain` feeds each child
    the previous one's out_shape (serial), else every child sees `shape` (parallel)."""
    state: State = {}
    shapes = []
    current = shape
    for k, layer in zip(keys, layers, strict=True):
        if layer.init_state is None:
            state[k], out = {}, infer_out_shape(layer, current)
        else:
            state[k], out = layer.init_state(current)
        out = check_out_shape(out, k, name)
        shapes.append(out)
        if chain:
            current = out
    return state, shapes


def serial(*layers: Layer, name: str = "serial") -> Layer:
    """Compose layers: y = fₙ(…f₂(f₁(x))). Child i's params live at `"<name>_<i>"`.

    Shapes are composed at init (each child's out_shape must be a plain shape). apply passes
    the same `mask` and `train` to every child and splits `key` into one key per child. The
    mask (..., T) ends at the child whose output has no time axis left (x.ndim = mask.ndim,
    after a global pool or bag of words): the children after it get no mask. A child that
    changes T (a strided pool) leaves a mask that no longer fits, which the next
    mask-taking child refuses by name.
    With a stateful child the serial is stateful: `init_state(in_shape)` gives
    {"<name>_<i>": child state ({} if none)}, and `apply(params, x, state=s, ...)` threads
    each child's state and returns `(y, new_state)`.
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
            mask = mask if has_time_axis(x, mask) else None  # a pool ended the time axis
        return x

    if not any(is_stateful(layer) for layer in layers):
        return Layer(init, apply, name)

    def init_state(in_shape: Sequence[int]) -> tuple[State, Shape]:
        state, shapes = _children_state(keys, layers, as_shape(in_shape), name, chain=True)
        return state, shapes[-1]

    def apply_stateful(
        params: Params,
        x: Any,
        *,
        state: State | None = None,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> tuple[Any, State]:
        if state is None:
            raise no_state_error(name)
        new_state: State = {}
        for k, layer, layer_key in zip(keys, layers, split_key(key, len(layers)), strict=True):
            child, child_state = get_child(params, k, name), get_child(state, k, name)
            x, new_state[k] = apply_with_state(
                layer, child, x, child_state, mask=mask, key=layer_key, train=train
            )
            mask = mask if has_time_axis(x, mask) else None  # a pool ended the time axis
        return x, new_state

    return Layer(init, apply_stateful, name, init_state)


COMBINES = ("concat", "sum")


def parallel(*layers: Layer, combine: str = "concat", name: str = "parallel") -> Layer:
    """Fan out: feed the same x to every child and merge their outputs into one array.

        combine="concat":  y = [f₁(x) ‖ … ‖ fₙ(x)]   joined on the last axis (Inception-style)
        combine="sum":     y = f₁(x) + … + fₙ(x)     outputs must have one shape

    Children's outputs must agree on every axis but the last ("concat") or on all ("sum").
    `mask` and `train` reach every child; `key` is split per child; state, when a child has
    some, is threaded per child as in `serial`.
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
        return merge(ys)

    def merge(ys: list[Array]) -> Array:
        if combine == "sum":
            total = ys[0]
            for y in ys[1:]:
                total = total + y
            return total
        return jnp.concatenate(ys, axis=-1)

    if not any(is_stateful(layer) for layer in layers):
        return Layer(init, apply, name)

    def init_state(in_shape: Sequence[int]) -> tuple[State, Shape]:
        shape = as_shape(in_shape)
        state, _ = _children_state(keys, layers, shape, name, chain=False)
        return state, infer_out_shape(Layer(init, apply, name), shape)

    def apply_stateful(
        params: Params,
        x: Any,
        *,
        state: State | None = None,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> tuple[Array, State]:
        if state is None:
            raise no_state_error(name)
        ys, new_state = [], {}
        for k, layer, k_ in zip(keys, layers, split_key(key, len(layers)), strict=True):
            y, new_state[k] = apply_with_state(
                layer,
                get_child(params, k, name),
                x,
                get_child(state, k, name),
                mask=mask,
                key=k_,
                train=train,
            )
            ys.append(y)
        return merge(ys), new_state

    return Layer(init, apply_stateful, name, init_state)


def residual(layer: Layer, *, name: str = "residual") -> Layer:
    """Skip connection: y = x + f(x). f must preserve the shape; its params live under `"<f>_0"`.

    `mask`, `key` and `train` are forwarded to f; a stateful f makes the residual stateful
    (its state under `"<f>_0"` too, and apply returns `(y, new_state)`).
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

    if inner.init_state is None:
        return Layer(init, apply, name)

    def apply_stateful(
        params: Params,
        x: Array,
        *,
        state: State | None = None,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> tuple[Array, State]:
        y, new_state = inner.apply(params, x, state=state, mask=mask, key=key, train=train)
        return x + y, new_state

    return Layer(init, apply_stateful, name, inner.init_state)


def activation(fn: Callable[[Array], Array], *, name: str | None = None) -> Layer:
    """A parameterless layer y = fn(x), applied elementwise (or over the last axis for softmax).

    Its name defaults to the function's name, so `activation(relu)` stores `{}` at `"relu_<i>"`.
    Per-step: with a `mask` (x.shape[:-1]) padded steps are zeroed first, y = fn(0) there.
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
        del params, key, train
        return fn(zero_padding(x, mask, layer_name))  # padded steps hold 0, then f(0)

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


def reshape(shape: Sequence[int], *, name: str = "reshape") -> Layer:
    """Reshape all but the leading (batch) axis: (B, d₁, …, dₖ) → (B, *shape), e.g. flat
    8×8 digit pixels (B, 64) into images (B, 8, 8, 1). The sizes must agree: ∏dᵢ = ∏shape
    (no -1 inside `shape`: the layer never guesses). params {}; no mask (a per-example op)."""
    target = as_shape(shape, "shape")
    if -1 in target or not target:
        raise ValueError(f"{name}: shape must be known positive sizes, got shape={shape!r}.")
    size = 1
    for d in target:
        size *= d

    def check(in_shape: Sequence[int], what: str) -> None:
        rest = tuple(in_shape)[1:]
        known = -1 not in rest and len(in_shape) >= 1
        total = 1
        for d in rest:
            total *= d
        if not known or total != size:
            raise ValueError(
                f"{name}: cannot reshape {what}={tuple(in_shape)} to (batch, *{target}): the "
                f"non-batch sizes must multiply to {size}."
            )

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        shape_in = as_shape(in_shape)
        check(shape_in, "in_shape")
        return {}, (shape_in[0], *target)

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del params, key, train
        check(jnp.shape(x), "x.shape")
        return jnp.reshape(x, (x.shape[0], *target))

    return Layer(init, apply, name)
