"""Pooling over the time axis of (batch, time, channels) inputs.

    max_pool1d(window, stride)   y[t] = max_{k<window} x[t·s + k]
    avg_pool1d(window, stride)   y[t] = mean_{k<window} x[t·s + k]   (padding not counted)
    global_max_pool()            y = max over real steps   (B, T, C) → (B, C), honours a mask
    global_avg_pool()            y = mean over real steps  (B, T, C) → (B, C), honours a mask

Windowed pools use "VALID" (no padding) or "SAME" (T_out = ⌈T/s⌉) as in `conv.py`. Every
pool takes `mask=` (..., T), True for real steps: padded steps are left out of each window
(a window with no real step gives 0), so they change no output. A windowed pool shortens
the time axis, so a mask is not valid for sequence layers after it.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcnn._validation import check_choice, check_positive_int
from funcnn.nn.conv import conv_output_length, conv_padding
from funcnn.nn.core import Layer, Params, Shape, as_shape
from funcnn.nn.masking import check_mask, masked_mean

Array = jax.Array

__all__ = ["avg_pool1d", "global_avg_pool", "global_max_pool", "max_pool1d"]


def _pool_shape(shape: Shape, window: int, stride: int, padding: str, name: str) -> Shape:
    if len(shape) < 2:
        raise ValueError(f"{name}: expects (batch, time, channels), got in_shape={shape}.")
    length = shape[-2]
    if length == -1:
        return shape
    if padding == "VALID" and length < window:
        raise ValueError(f"{name}: VALID pooling needs T ≥ window={window}, got T={length}.")
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
        _pool_shape(tuple(jnp.shape(x)), window, stride, padding, name)
        mask = check_mask(mask, x.shape[:-1], name)
        pad = conv_padding(x.shape[-2], window, stride=stride, padding=padding)
        dims = (1,) * (x.ndim - 2) + (window, 1)
        strides = (1,) * (x.ndim - 2) + (stride, 1)
        pads = ((0, 0),) * (x.ndim - 2) + (pad, (0, 0))
        # Steps that count: the real ones (all of x without a mask), never the window padding.
        real = (
            jnp.ones((*x.shape[:-1], 1), x.dtype)
            if mask is None
            else mask[..., None].astype(x.dtype)
        )  # (..., T, 1)
        if kind == "max":
            masked = x if mask is None else jnp.where(mask[..., None], x, -jnp.inf)
            pooled = jax.lax.reduce_window(masked, -jnp.inf, jax.lax.max, dims, strides, pads)
            if mask is None:
                return pooled
            # A window with no real step has nothing to pool: 0 instead of −inf.
            any_real = jax.lax.reduce_window(real, 0.0, jax.lax.add, dims, strides, pads) > 0
            return jnp.where(any_real, pooled, 0.0)
        total = jax.lax.reduce_window(x * real, 0.0, jax.lax.add, dims, strides, pads)
        # Divide by the number of real steps in each window (TensorFlow's rule for padding).
        count = jax.lax.reduce_window(real, 0.0, jax.lax.add, dims, strides, pads)  # (..., T', 1)
        return total / jnp.maximum(count, 1.0)

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


def _global_pool(kind: str, name: str) -> Layer:
    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        shape = as_shape(in_shape)
        if len(shape) < 2:
            raise ValueError(f"{name}: expects (batch, time, channels), got in_shape={shape}.")
        return {}, (*shape[:-2], shape[-1])

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
            raise ValueError(f"{name}: expects (batch, time, channels), got {jnp.shape(x)}.")
        mask = check_mask(mask, x.shape[:-1], name)
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
