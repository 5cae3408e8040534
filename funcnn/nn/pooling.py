"""Pooling over the time axis of (batch, time, channels) inputs and over the two spatial
axes of channels-last images (batch, height, width, channels).

    max_pool1d(window, stride)   y[t] = max_{k<window} x[t·s + k]
    avg_pool1d(window, stride)   y[t] = mean_{k<window} x[t·s + k]   (padding not counted)
    global_max_pool()            y = max over real steps   (B, T, C) → (B, C), honours a mask
    global_avg_pool()            y = mean over real steps  (B, T, C) → (B, C), honours a mask
    max_pool2d(window, strides)  y[h, v] = max over the window's real cells
    avg_pool2d(window, strides)  y[h, v] = mean over the window's real cells
    global_max_pool2d()          (B, H, W, C) → (B, C), max over real cells
    global_avg_pool2d()          (B, H, W, C) → (B, C), mean over real cells

Windowed pools use "VALID" (no padding) or "SAME" (T_out = ⌈T/s⌉) as in `conv.py`; the 2-D
ones also take an int p or ((top, bottom), (left, right)) pads, each smaller than the window.
Padding is never counted: a max ignores it (PyTorch pads with −∞) and a mean divides by the
number of real cells in the window — PyTorch's `count_include_pad=False` (TensorFlow's SAME
rule too). Every pool takes `mask=` (x's shape without the channel axis), True for real
steps or cells: masked entries are replaced before any arithmetic (by 0 for sums, −∞ for
maxima) and left out of each window like padding, so values *and gradients* are the same
whatever a masked entry holds (NaN, ±inf, 1e30). A window with no real entry gives 0. A
windowed pool shortens the time axis, so a mask is not valid for sequence layers after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from funcnn._validation import check_choice, check_positive_int
from funcnn.nn.conv import (
    _check_array,
    _explicit_pairs,
    _pair,
    conv_output_length,
    conv_padding,
)
from funcnn.nn.core import Layer, Params, Shape, as_shape
from funcnn.nn.masking import check_mask, masked_mean

Array = jax.Array

__all__ = [
    "avg_pool1d",
    "avg_pool2d",
    "global_avg_pool",
    "global_avg_pool2d",
    "global_max_pool",
    "global_max_pool2d",
    "max_pool1d",
    "max_pool2d",
]


def _reduce_windows(
    kind: str,
    x: Array,
    mask: Array | None,
    window: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
) -> Array:
    """Max or mean over windows of the axes before the last (the spatial axes, as many as
    `window` has entries), counting only real entries: never the padding `pads`, never a
    masked entry (mask: x.shape[:-1]). A window with no real entry gives 0."""
    lead = x.ndim - len(window) - 1
    dims = (1,) * lead + tuple(window) + (1,)
    steps = (1,) * lead + tuple(strides) + (1,)
    padding = ((0, 0),) * lead + tuple(pads) + ((0, 0),)
    real = jnp.ones((*x.shape[:-1], 1), bool) if mask is None else mask[..., None]  # (..., 1)
    # Python scalars as init values: they let JAX recognise the max/add window reductions
    # (an array init would be a generic reduce_window, which has no derivative).
    count = jax.lax.reduce_window(
        real.astype(x.dtype), 0.0, jax.lax.add, dims, steps, padding
    )  # (..., out, 1): real entries per window
    if kind == "max":
        # Masked entries become −∞ before the max (a `where`, so whatever they held — NaN
        # included — reaches neither the value nor the gradient).
        masked = x if mask is None else jnp.where(real, x, -jnp.inf)
        pooled = jax.lax.reduce_window(masked, -jnp.inf, jax.lax.max, dims, steps, padding)
        return jnp.where(count > 0, pooled, jnp.zeros_like(pooled))
    zeroed = x if mask is None else jnp.where(real, x, jnp.zeros_like(x))
    total = jax.lax.reduce_window(zeroed, 0.0, jax.lax.add, dims, steps, padding)
    # Divide by the number of real entries in each window (count_include_pad=False).
    return total / jnp.maximum(count, 1.0)


def _pool_shape(shape: Shape, window: int, stride: int, padding: str, name: str) -> Shape:
    if len(shape) < 3:
        raise ValueError(
            f"{name}: expects (batch, time, channels), got shape {shape}; a rank-2 (B, C) is "
            f"not a sequence (add a time axis, or a batch axis for one sequence: x[None])."
        )
    length = shape[-2]
    if length == -1:
        return shape
    if padding == "VALID" and length < window:
        raise ValueError(
            f"{name}: VALID pooling needs T ≥ window={window}, got T={length} (shape {shape})."
        )
    out_len = conv_output_length(length, window, stride=stride, padding=padding)
    return (*shape[:-2], out_len, shape[-1])


def _window_pool(kind: str, window: int, stride: int | None, padding: str, name: str) -> Layer:
    check_positive_int(window, "window")
    stride = window if stride is None else check_positive_int(stride, "stride")
    check_choice(padding, "padding", ("VALID", "SAME"))

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        return {}, _pool_shape(as_shape(in_shape), window, stride, padding, name)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del params, key, train
        _check_input(x, 1, name)
        _pool_shape(tuple(jnp.shape(x)), window, stride, padding, name)
        mask = check_mask(mask, x.shape[:-1], name)
        pad = conv_padding(x.shape[-2], window, stride=stride, padding=padding)
        return _reduce_windows(kind, x, mask, (window,), (stride,), (pad,))

    return Layer(init, apply, name)


def max_pool1d(
    window: int, *, stride: int | None = None, padding: str = "VALID", name: str = "max_pool1d"
) -> Layer:
    """Max over windows of `window` steps, moved by `stride` (default: window). params {}.

    y[t] = max over real k < window of x[t·s + k]; (..., T, C) → (..., T_out, C).
    """
    return _window_pool("max", window, stride, padding, name)


def avg_pool1d(
    window: int, *, stride: int | None = None, padding: str = "VALID", name: str = "avg_pool1d"
) -> Layer:
    """Mean over windows of `window` steps (padding excluded from the count). params {}.

    y[t] = Σₖ mₖ·x[t·s + k] / max(Σₖ mₖ, 1) over k < window; (..., T, C) → (..., T_out, C).
    """
    return _window_pool("avg", window, stride, padding, name)


_LAYOUTS = {1: "(batch, time, channels)", 2: "(batch, height, width, channels)"}


def _check_rank(shape: Sequence[int], rank: int, name: str) -> None:
    """Spatial rank 1 needs (B, T, C), rank 2 (B, H, W, C): one batch axis at least, so a
    (B, C) input is never pooled over its batch."""
    if len(shape) < rank + 2:
        raise ValueError(
            f"{name}: expects {_LAYOUTS[rank]}, got shape {tuple(shape)}; add a batch axis for "
            f"a single example (x[None])."
        )


def _check_input(x: Any, rank: int, name: str) -> None:
    """A floating array (bool, int and complex have no meaningful max or mean here) of the
    layout's rank with at least one cell to pool."""
    _check_array(x, name)
    _check_rank(jnp.shape(x), rank, name)
    if 0 in jnp.shape(x)[:-1]:
        raise ValueError(f"{name}: x has nothing to pool: x.shape={jnp.shape(x)}.")


def _global_pool(kind: str, name: str, rank: int = 1) -> Layer:
    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        shape = as_shape(in_shape)
        _check_rank(shape, rank, name)
        return {}, (*shape[: -rank - 1], shape[-1])

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del params, key, train
        _check_input(x, rank, name)
        mask = check_mask(mask, x.shape[:-1], name)
        if rank == 2:  # (..., H, W, C) → (..., H·W, C): one axis of cells, as a sequence
            x = jnp.reshape(x, (*x.shape[:-3], -1, x.shape[-1]))
            mask = None if mask is None else jnp.reshape(mask, (*mask.shape[:-2], -1))
        if kind == "avg":
            return masked_mean(x, mask)
        if mask is None:
            return jnp.max(x, axis=-2)
        keep = jnp.broadcast_to(mask[..., None], x.shape)
        pooled = jnp.max(jnp.where(keep, x, -jnp.inf), axis=-2)
        # A row with no real step has nothing to pool: return 0 instead of −inf.
        return jnp.where(jnp.any(keep, axis=-2), pooled, 0.0)

    return Layer(init, apply, name)


def global_max_pool(*, name: str = "global_max_pool") -> Layer:
    """y[b, c] = max over real steps t of x[b, t, c]; all-padding rows give 0. params {}."""
    return _global_pool("max", name)


def global_avg_pool(*, name: str = "global_avg_pool") -> Layer:
    """y[b, c] = Σₜ mₜ·x[b, t, c] / Σₜ mₜ; all-padding rows give 0. params {}."""
    return _global_pool("avg", name)


def _window_pool2d(kind: str, window: Any, strides: Any, padding: Any, name: str) -> Layer:
    win = _pair(window, "window")
    steps = win if strides is None else _pair(strides, "strides")
    if isinstance(padding, str):
        check_choice(padding, "padding", ("VALID", "SAME"))
    else:
        for axis, (before, after) in enumerate(_explicit_pairs(padding, name, signed=False)):
            if max(before, after) >= win[axis]:
                raise ValueError(
                    f"{name}: padding {padding!r} must be smaller than the window {win} on each "
                    f"side, or some windows would hold only padding."
                )

    def pads_for(size: Sequence[int]) -> tuple[tuple[int, int], ...]:
        if isinstance(padding, str):
            return tuple(
                conv_padding(t, k, stride=s, padding=padding)
                for t, k, s in zip(size, win, steps, strict=True)
            )
        return _explicit_pairs(padding, name, signed=False)

    def out_shape(shape: Sequence[int]) -> Shape:
        _check_rank(shape, 2, name)
        size = tuple(shape[-3:-1])
        out = []
        for t, k, s, (before, after) in zip(
            size, win, steps, pads_for([max(t, 1) for t in size]), strict=True
        ):
            if t == -1:
                out.append(-1)
            elif t + before + after < k:
                raise ValueError(
                    f"{name}: a {k}-cell window does not fit {t} cells with padding {padding!r} "
                    f"(shape {tuple(shape)})."
                )
            else:
                out.append((t + before + after - k) // s + 1)
        return (*shape[:-3], *out, shape[-1])

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        return {}, out_shape(as_shape(in_shape))

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del params, key, train
        _check_input(x, 2, name)
        out_shape(tuple(jnp.shape(x)))
        mask = check_mask(mask, x.shape[:-1], name)
        return _reduce_windows(kind, x, mask, win, steps, pads_for(x.shape[-3:-1]))

    return Layer(init, apply, name)


def max_pool2d(
    window: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    name: str = "max_pool2d",
) -> Layer:
    """Max over (kH, kW) windows moved by `strides` (default: the window). params {}.

    y[b, h, v, c] = max over real (a, d) in the window of x[b, h·s₀ + a − p₀, v·s₁ + d − p₁, c];
    (..., H, W, C) → (..., H_out, W_out, C), H_out = ⌊(H + P − kH)/s₀⌋ + 1 (PyTorch's
    max_pool2d with ceil_mode=False). Padding is never picked (PyTorch pads with −∞).
    """
    return _window_pool2d("max", window, strides, padding, name)


def avg_pool2d(
    window: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    name: str = "avg_pool2d",
) -> Layer:
    """Mean over the real cells of (kH, kW) windows moved by `strides` (default: the window).

    y[b, h, v, c] = Σ m·x / max(Σ m, 1) over the window, m = 1 for real cells and 0 for
    padding and masked cells: PyTorch's avg_pool2d with count_include_pad=False (and
    ceil_mode=False). Shapes as `max_pool2d`. params {}.
    """
    return _window_pool2d("avg", window, strides, padding, name)


def global_max_pool2d(*, name: str = "global_max_pool2d") -> Layer:
    """y[b, c] = max over real cells (h, v) of x[b, h, v, c]: (B, H, W, C) → (B, C); a mask
    (B, H, W) leaves cells out, an image with none real gives 0. params {}."""
    return _global_pool("max", name, rank=2)


def global_avg_pool2d(*, name: str = "global_avg_pool2d") -> Layer:
    """y[b, c] = Σ m·x[b, h, v, c] / Σ m over cells (h, v): (B, H, W, C) → (B, C); a mask
    (B, H, W) leaves cells out, an image with none real gives 0. params {}."""
    return _global_pool("avg", name, rank=2)
