"""One-dimensional convolution over time.

    y[b, t, o] = b[o] + Σₖ Σᵢ x̃[b, t·s + k·δ, i] · w[k, i, o]

x̃ is x padded on the time axis; s is the stride, δ the dilation, k = 0 … width−1.
Inputs are (batch, time, channels) ("NWC"); params {"w": (width, in, out), "b": (out,)}.
Like PyTorch's Conv1d this is a cross-correlation (the kernel is not flipped).

Padding, with the effective width W = (width − 1)·δ + 1:
    "VALID"   no padding;                       T_out = ⌊(T − W)/s⌋ + 1
    "SAME"    TensorFlow's rule: T_out = ⌈T/s⌉, total pad P = max((T_out − 1)·s + W − T, 0)
              split as ⌊P/2⌋ before and the rest after
    "CAUSAL"  W − 1 zeros before and none after, so y[t] sees only x[≤ t·s]; T_out = ⌈T/s⌉
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcnn._validation import check_choice, check_floating, check_positive_int
from funcnn.nn.core import Layer, Params, Shape, as_shape
from funcnn.nn.masking import check_mask

Array = jax.Array

__all__ = ["PADDINGS", "conv1d", "conv_output_length", "conv_padding"]

PADDINGS = ("SAME", "VALID", "CAUSAL")
"""The padding modes of `conv1d` (see the module docstring)."""


def conv_padding(
    length: int, width: int, *, stride: int = 1, dilation: int = 1, padding: str = "SAME"
) -> tuple[int, int]:
    """Zeros added (before, after) on the time axis for a given padding mode (see module doc)."""
    check_choice(padding, "padding", PADDINGS)
    span = (width - 1) * dilation + 1
    if padding == "VALID":
        return 0, 0
    if padding == "CAUSAL":
        return span - 1, 0
    out_len = math.ceil(length / stride)
    total = max((out_len - 1) * stride + span - length, 0)
    return total // 2, total - total // 2


def conv_output_length(
    length: int, width: int, *, stride: int = 1, dilation: int = 1, padding: str = "SAME"
) -> int:
    """T_out for an input of length T: ⌊(T + P_before + P_after − W)/s⌋ + 1."""
    before, after = conv_padding(length, width, stride=stride, dilation=dilation, padding=padding)
    span = (width - 1) * dilation + 1
    return (length + before + after - span) // stride + 1


def _check_length(length: int, width: int, dilation: int, padding: str, name: str) -> None:
    span = (width - 1) * dilation + 1
    if padding == "VALID" and length < span:
        raise ValueError(
            f"{name}: VALID padding needs at least {span} time steps (width={width}, "
            f"dilation={dilation}), got T={length}. Use padding='SAME' or 'CAUSAL'."
        )


def _correlate(x: Array, w: Array, pad: tuple[int, int], stride: int, dilation: int) -> Array:
    """y[n, t] = Σₖ x̃[n, t·s + k·δ] · w[k]: one strided view of x̃ per tap, then one matmul.

    This "im2col" form builds a (N, T_out, width, C) stack of shifted views and contracts it
    with w (width, C, F). XLA:CPU runs it as fast as `lax.conv_general_dilated` in a single
    step and 20–40× faster inside `lax.scan` (fused training), where its convolution op
    falls back to a slow path. The extra memory is width × the input, small for 1-D kernels.
    """
    padded = jnp.pad(x, ((0, 0), pad, (0, 0)))  # (N, T + P, C)
    width = w.shape[0]
    out_len = (padded.shape[1] - (width - 1) * dilation - 1) // stride + 1
    taps = [
        jax.lax.slice_in_dim(
            padded, k * dilation, k * dilation + (out_len - 1) * stride + 1, stride, axis=1
        )
        for k in range(width)
    ]  # width × (N, T_out, C)
    return jnp.einsum("ntkc,kco->nto", jnp.stack(taps, axis=2), w)


def conv1d(
    features: int,
    width: int,
    *,
    padding: str = "SAME",
    stride: int = 1,
    dilation: int = 1,
    use_bias: bool = True,
    name: str = "conv1d",
) -> Layer:
    """A 1-D convolution layer over (batch, time, channels) → (batch, T_out, features).

    params {"w": (width, in, features), "b": (features,)}; w ~ U(±1/√(width·in)) and
    b = 0 — the fan-in scale of PyTorch's default (He-uniform with a = √5). Any leading
    batch dims are accepted: (..., T, C). See the module docstring for the padding rules.

    apply(params, x, *, mask=None, key=None, train=False): with a padding `mask` (..., T)
    the padded steps are zeroed before the convolution, so they read exactly like the zeros
    beyond the end of a sequence and change no output at a real step.
    """
    check_positive_int(features, "features")
    check_positive_int(width, "width")
    check_positive_int(stride, "stride")
    check_positive_int(dilation, "dilation")
    check_choice(padding, "padding", PADDINGS)

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        if len(shape) < 2 or shape[-1] == -1:
            raise ValueError(
                f"{name}: expects in_shape (batch, time, channels) with known channels, "
                f"got {shape}."
            )
        length, channels = shape[-2:]
        if length == -1:
            out_len = -1
        else:
            _check_length(length, width, dilation, padding, name)
            out_len = conv_output_length(
                length, width, stride=stride, dilation=dilation, padding=padding
            )
        bound = 1.0 / math.sqrt(width * channels)
        w = jax.random.uniform(key, (width, channels, features), jnp.float32, -bound, bound)
        params = {"w": w}
        if use_bias:
            params["b"] = jnp.zeros((features,), jnp.float32)
        return params, (*shape[:-2], out_len, features)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train
        check_floating(x, f"{name}: x")
        w = params["w"]
        if jnp.ndim(x) < 2:
            raise ValueError(f"{name}: expects (batch, time, channels), got x.shape={x.shape}.")
        if x.shape[-1] != w.shape[1]:
            raise ValueError(
                f"{name}: x has {x.shape[-1]} channels but w expects {w.shape[1]} "
                f"(w.shape={w.shape}, x.shape={x.shape})."
            )
        lead, (length, channels) = x.shape[:-2], x.shape[-2:]
        _check_length(length, width, dilation, padding, name)
        mask = check_mask(mask, x.shape[:-1], name)
        if mask is not None:  # padded steps read as the zeros past a sequence's end
            x = jnp.where(mask[..., None], x, jnp.zeros_like(x))
        pad = conv_padding(length, width, stride=stride, dilation=dilation, padding=padding)
        xs = jnp.reshape(x, (-1, length, channels))  # (N, T, C)
        y = _correlate(xs, w.astype(x.dtype), pad, stride, dilation)  # (N, T_out, F)
        if use_bias:
            y = y + params["b"].astype(y.dtype)[None, None, :]
        return jnp.reshape(y, (*lead, *y.shape[1:]))

    return Layer(init, apply, name)
