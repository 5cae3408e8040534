"""Scan over layers: `depth` copies of one layer with params stacked on a leading axis.

    x_{l+1} = layer(θ_l, x_l),  l = 0 … depth−1,  θ = stack(θ_0 … θ_{depth−1}) (leading axis depth)

run with `jax.lax.scan`, so the layer body is traced and compiled once whatever the depth.
A stateful layer's state is stacked the same way (leading axis depth) and scanned beside
its params: copy l reads state[l] and writes the new state[l].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from funcnn._validation import check_positive_int
from funcnn.nn.core import Layer, Params, Shape, State, as_shape, no_state_error

Array = jax.Array

__all__ = [
    "repeat",
    "scan_apply",
    "stack_init",
    "stack_layers",
    "unstack_layers",
]


def stack_init(layer: Layer, keys: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
    """Init one copy of `layer` per key (keys (depth, …)), params stacked on a leading axis.

    Copy l gets exactly layer.init(keys[l], in_shape) — the same params an unrolled stack makes
    from the same keys. The layer must map in_shape to in_shape (a residual block).
    """
    shape = as_shape(in_shape)
    params = jax.vmap(lambda k: layer.init(k, shape)[0])(keys)
    _, out_shape = layer.init(keys[0], shape)
    if tuple(out_shape) != tuple(shape):
        raise ValueError(
            f"{layer.name}: a stacked layer must keep its shape; in_shape {shape}, "
            f"got out_shape {tuple(out_shape)}."
        )
    return params, shape


def scan_apply(
    layer: Layer,
    params: Params,
    x: Array,
    *,
    keys: Array | None = None,
    mask: Array | None = None,
    train: bool = False,
    remat: bool = False,
    state: State | None = None,
) -> Any:
    """x_{l+1} = layer.apply(params[l], x_l, key=keys[l]) for l < depth, by `jax.lax.scan`.

    params: stacked (leading axis depth); keys (depth, …) or None; mask and train reach every
    copy. remat=True wraps the body in `jax.checkpoint` (activations recomputed in backward).
    A stateful layer needs `state` (stacked like params) and gives `(x_depth, new_state)`.
    """
    if layer.init_state is not None:
        if state is None:
            raise no_state_error(f"repeat({layer.name})")

        def stateful_body(h: Array, slice_: tuple[Params, State, Array | None]) -> Any:
            p, s, k = slice_
            return layer.apply(p, h, state=s, mask=mask, key=k, train=train)

        if remat:
            stateful_body = jax.checkpoint(stateful_body)
        return jax.lax.scan(stateful_body, x, (params, state, keys))

    def body(h: Array, slice_: tuple[Params, Array | None]) -> tuple[Array, None]:
        p, k = slice_
        return layer.apply(p, h, mask=mask, key=k, train=train), None

    if remat:
        body = jax.checkpoint(body)
    out, _ = jax.lax.scan(body, x, (params, keys))
    return out


def repeat(layer: Layer, depth: int, *, scan: bool = True, remat: bool = False) -> Layer:
    """`depth` independently initialized copies of a shape-preserving `layer`, in series.

    init(key, shape): keys = split(key, depth), copy l ← layer.init(keys[l], shape); with
    scan=True params are stacked (leading axis depth), else {"layer_0" … "layer_{depth−1}"}.
    apply: x ← layer_l(x) with key split(key, depth)[l]; scan=True runs one `lax.scan` body
    (remat=True: `jax.checkpoint` per copy). Both layouts give equal outputs for equal keys.
    A stateful layer makes the repeat stateful: its state is laid out like its params
    (stacked, or {"layer_l": …}) and apply(…, state=s) returns (y, new_state).
    """
    check_positive_int(depth, "depth")
    if remat and not scan:
        raise ValueError("repeat: remat=True needs scan=True.")
    names = [f"layer_{i}" for i in range(depth)]
    name = f"repeat({layer.name})"

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        keys = jax.random.split(key, depth)
        if scan:
            return stack_init(layer, keys, in_shape)
        shape = as_shape(in_shape)
        params = {}
        for n, k in zip(names, keys, strict=True):
            params[n], shape = layer.init(k, shape)
        return params, shape

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        keys = None if key is None else jax.random.split(key, depth)
        if scan:
            return scan_apply(layer, params, x, keys=keys, mask=mask, train=train, remat=remat)
        for i, n in enumerate(names):
            x = layer.apply(
                params[n], x, mask=mask, key=None if keys is None else keys[i], train=train
            )
        return x

    if layer.init_state is None:
        return Layer(init, apply, name)
    layer_init_state = layer.init_state

    def init_state(in_shape: Sequence[int]) -> tuple[State, Shape]:
        state, shape = layer_init_state(as_shape(in_shape))
        if scan:  # depth equal copies, stacked like the params
            return jax.tree.map(lambda a: jnp.stack([a] * depth), state), shape
        return {n: state for n in names}, shape

    def apply_stateful(
        params: Params,
        x: Array,
        *,
        state: State | None = None,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> tuple[Array, State]:
        if state is None:
            raise no_state_error(name)
        keys = None if key is None else jax.random.split(key, depth)
        if scan:
            return scan_apply(
                layer, params, x, keys=keys, mask=mask, train=train, remat=remat, state=state
            )
        new_state: State = {}
        for i, n in enumerate(names):
            x, new_state[n] = layer.apply(
                params[n],
                x,
                state=state[n],
                mask=mask,
                key=None if keys is None else keys[i],
                train=train,
            )
        return x, new_state

    return Layer(init, apply_stateful, name, init_state)


def stack_layers(
    params: Params, depth: int, *, prefix: str = "block_", into: str = "blocks"
) -> Params:
    """Unrolled → stacked: {prefix0 … prefix(depth−1), rest} → {into: stack(leaves), rest}.

    Each leaf of params[into] is jnp.stack([params[prefix+str(l)][leaf] for l]) (axis 0).
    """
    check_positive_int(depth, "depth")
    names = [f"{prefix}{i}" for i in range(depth)]
    if not isinstance(params, dict) or into in params:
        raise ValueError(
            f"stack_layers: params must be the unrolled layout (keys {names[0]!r}…); "
            f"got {sorted(params) if isinstance(params, dict) else type(params).__name__}."
        )
    missing = [n for n in names if n not in params]
    extra = [k for k in params if k.startswith(prefix) and k not in names]
    if missing or extra:
        raise ValueError(
            f"stack_layers: depth={depth} expects keys {names[0]!r}…{names[-1]!r}; "
            f"missing {missing}, unexpected {extra}."
        )
    out: dict[str, Any] = {k: v for k, v in params.items() if k not in names}
    out[into] = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[params[n] for n in names])
    return out


def unstack_layers(params: Params, *, prefix: str = "block_", into: str = "blocks") -> Params:
    """Stacked → unrolled: {into: θ (leading axis depth), rest} → {prefix0: θ[0], …, rest}."""
    if not isinstance(params, dict) or into not in params:
        raise ValueError(
            f"unstack_layers: params must be the stacked layout with key {into!r}; "
            f"got {sorted(params) if isinstance(params, dict) else type(params).__name__}."
        )
    leaves = jax.tree.leaves(params[into])
    depth = int(leaves[0].shape[0])
    out: dict[str, Any] = {k: v for k, v in params.items() if k != into}
    for i in range(depth):
        out[f"{prefix}{i}"] = jax.tree.map(lambda a, i=i: a[i], params[into])
    return out
