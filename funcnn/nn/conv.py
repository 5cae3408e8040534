"""Convolutions: 1-D over time, 2-D over images, and the 2-D transposed convolution.

    conv1d:  y[b, t, o]    = b[o] + Σₖ Σᵢ x̃[b, t·s + k·δ, g(o)·C/G + i] · w[k, i, o]
    conv2d:  y[b, h, v, o] = b[o] + Σₐ Σ_c Σᵢ x̃[b, h·s₀ + a·δ₀, v·s₁ + c·δ₁, g(o)·C/G + i]
                                               · w[a, c, i, o]

x̃ is x padded with zeros; s the stride, δ the dilation; G = `feature_group_count` splits
the C input and F output channels into G groups, output channel o reading only the C/G
inputs of its group g(o) = ⌊o / (F/G)⌋ (G = C = F is a depthwise convolution). Like
PyTorch's Conv1d/Conv2d this is a cross-correlation (the kernel is not flipped).

Layouts are channels-last, as in JAX/TensorFlow ("NWC", "NHWC"):
    conv1d  x (B, T, C),    w (width, C/G, F)
    conv2d  x (B, H, W, C), w (kH, kW, C/G, F)     PyTorch's Conv2d: x (B, C, H, W) and
                                                   weight (F, C/G, kH, kW), so
                                                   w = weight.permute(2, 3, 1, 0)
    conv_transpose2d  w (kH, kW, C, F)             PyTorch's ConvTranspose2d weight is
                                                   (C, F, kH, kW): w = weight.permute(2, 3, 0, 1)

Padding (per spatial axis for conv2d), with the effective width W = (width − 1)·δ + 1:
    "VALID"   no padding;                       T_out = ⌊(T − W)/s⌋ + 1
    "SAME"    TensorFlow's rule: T_out = ⌈T/s⌉, total pad P = max((T_out − 1)·s + W − T, 0)
              split as ⌊P/2⌋ before and the rest after
    "CAUSAL"  W − 1 zeros before and none after, so y[t] sees only x[≤ t·s]; T_out = ⌈T/s⌉
              (conv1d only)
    explicit  conv2d: an int p (p zeros on every side, PyTorch's `padding=p`) or two
              (before, after) pairs ((top, bottom), (left, right)); T_out = ⌊(T + P − W)/s⌋ + 1

The transposed convolution is the adjoint (the input gradient) of conv2d: each input cell
scatters its kernel-weighted copy into the output,

    y[b, h·s₀ + a·δ₀ − p₀, v·s₁ + c·δ₁ − p₁, o] += x[b, h, v, i] · w[a, c, i, o]

and its output-size rule, per axis, is T_out = (T − 1)·s + W − p_before − p_after (PyTorch's
ConvTranspose2d with padding=p and output_padding=q is ((p, p − q), …) here):
    "VALID"   no cropping:     T_out = (T − 1)·s + W
    "SAME"    T_out = T·s, cropping P = W − s split ⌊P/2⌋ before and the rest after (a
              negative P adds zeros after), exactly the adjoint of conv2d "SAME" on T·s cells
    explicit  ((p_top, p_bottom), (p_left, p_right)) cropped from the full output; negative
              values add rows or columns that receive only the bias
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from funcnn._validation import check_choice, check_floating, check_positive_int
from funcnn.nn.core import Layer, Params, Shape, as_shape
from funcnn.nn.masking import check_mask

Array = jax.Array

__all__ = [
    "PADDINGS",
    "conv1d",
    "conv2d",
    "conv_output_length",
    "conv_padding",
    "conv_transpose2d",
    "resolve_padding2d",
]

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


def _correlate(padded: Array, w: Array, strides: Sequence[int], dilation: Sequence[int]) -> Array:
    """y[n, p, o] = Σ_taps Σᵢ x̃[n, p·s + tap·δ, g(o)·C/G + i] · w[tap, i, o], stride s, dilation δ.

    padded: x̃ (N, *spatial, C), already padded; w (*kernel, C/G, F) with G = C / w.shape[-2]
    groups. This "im2col" form stacks one strided view of x̃ per kernel tap, (N, *out, K, C),
    and contracts it with w in one einsum. XLA:CPU runs it as fast as
    `lax.conv_general_dilated` in a single step and 20–40× faster inside `lax.scan` (fused
    training), where its convolution op falls back to a slow path. The extra memory is
    K = ∏ kernel × the input: small for the 3×3 and 1-D kernels it is used with.
    """
    kernel, (group_in, features) = w.shape[:-2], w.shape[-2:]
    n, spatial, channels = padded.shape[0], padded.shape[1:-1], padded.shape[-1]
    groups = channels // group_in
    out = [
        (size - (k - 1) * d - 1) // s + 1
        for size, k, s, d in zip(spatial, kernel, strides, dilation, strict=True)
    ]
    taps = []
    for tap in itertools.product(*(range(k) for k in kernel)):
        start = [t * d for t, d in zip(tap, dilation, strict=True)]
        limit = [a + (o - 1) * s + 1 for a, o, s in zip(start, out, strides, strict=True)]
        taps.append(
            jax.lax.slice(padded, (0, *start, 0), (n, *limit, channels), (1, *strides, 1))
        )  # K × (N, *out, C)
    k = len(taps)
    patches = jnp.reshape(
        jnp.stack(taps, axis=-2), (n, -1, k, groups, group_in)
    )  # (N, P, K, G, C/G)
    wk = jnp.reshape(w, (k, group_in, groups, features // groups))  # (K, C/G, G, F/G)
    y = jnp.einsum("npkgc,kcgo->npgo", patches, wk)  # (N, P, G, F/G)
    return jnp.reshape(y, (n, *out, features))


def _check_array(x: Any, name: str) -> None:
    """Raise TypeError unless x is a floating-point array (a Python number, None or a list is
    refused by name, before anything reads x.shape)."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(
            f"{name}: x must be a floating-point array, got {type(x).__name__} {x!r:.60}."
        )
    check_floating(x, f"{name}: x")


def _check_groups(groups: int, channels: int, features: int, name: str) -> None:
    if channels % groups or features % groups:
        raise ValueError(
            f"{name}: feature_group_count={groups} must divide both the input channels "
            f"({channels}) and features ({features})."
        )


def conv1d(
    features: int,
    width: int,
    *,
    padding: str = "SAME",
    stride: int = 1,
    dilation: int = 1,
    feature_group_count: int = 1,
    use_bias: bool = True,
    name: str = "conv1d",
) -> Layer:
    """A 1-D convolution layer over (batch, time, channels) → (batch, T_out, features).

    params {"w": (width, in/G, features), "b": (features,)} (no "b" with use_bias=False);
    w ~ U(±1/√(width·in/G)) and b = 0 — the fan-in scale of PyTorch's default (He-uniform
    with a = √5). G = `feature_group_count` must divide in and features (G = in = features:
    depthwise). Any leading batch dims are accepted, (..., T, C), but at least one: a rank-2
    (B, C) input is refused, not read as one unbatched sequence. See the module docstring
    for the padding rules.

    apply(params, x, *, mask=None, key=None, train=False): with a padding `mask` (..., T)
    the padded steps are zeroed before the convolution, so they read exactly like the zeros
    beyond the end of a sequence and change no output at a real step.
    """
    check_positive_int(features, "features")
    check_positive_int(width, "width")
    check_positive_int(stride, "stride")
    check_positive_int(dilation, "dilation")
    check_positive_int(feature_group_count, "feature_group_count")
    check_choice(padding, "padding", PADDINGS)
    groups = feature_group_count

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        if len(shape) < 3 or shape[-1] == -1:
            raise ValueError(
                f"{name}: expects in_shape (batch, time, channels) with known channels, "
                f"got {shape}. A rank-2 shape is ambiguous ((batch, channels) or one "
                f"unbatched (time, channels)?): give (B, T, C), e.g. (-1, T, C)."
            )
        length, channels = shape[-2:]
        _check_groups(groups, channels, features, name)
        if length == -1:
            out_len = -1
        else:
            _check_length(length, width, dilation, padding, name)
            out_len = conv_output_length(
                length, width, stride=stride, dilation=dilation, padding=padding
            )
        group_in = channels // groups
        bound = 1.0 / math.sqrt(width * group_in)
        w = jax.random.uniform(key, (width, group_in, features), jnp.float32, -bound, bound)
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
        _check_array(x, name)
        w = params["w"]
        if jnp.ndim(x) < 3:
            raise ValueError(
                f"{name}: expects x of shape (batch, time, channels), got x.shape={x.shape}; "
                f"add a batch axis for a single sequence: x[None]."
            )
        if 0 in x.shape[:-1]:
            raise ValueError(f"{name}: x has no time steps or no examples: x.shape={x.shape}.")
        if x.shape[-1] != w.shape[1] * groups:
            raise ValueError(
                f"{name}: x has {x.shape[-1]} channels but w expects {w.shape[1] * groups} "
                f"(w.shape={w.shape}, feature_group_count={groups}, x.shape={x.shape})."
            )
        lead, (length, channels) = x.shape[:-2], x.shape[-2:]
        _check_length(length, width, dilation, padding, name)
        mask = check_mask(mask, x.shape[:-1], name)
        if mask is not None:  # padded steps read as the zeros past a sequence's end
            x = jnp.where(mask[..., None], x, jnp.zeros_like(x))
        pad = conv_padding(length, width, stride=stride, dilation=dilation, padding=padding)
        xs = jnp.pad(jnp.reshape(x, (-1, length, channels)), ((0, 0), pad, (0, 0)))  # (N, T+P, C)
        y = _correlate(xs, w.astype(x.dtype), (stride,), (dilation,))  # (N, T_out, F)
        if use_bias:
            y = y + params["b"].astype(y.dtype)[None, None, :]
        return jnp.reshape(y, (*lead, *y.shape[1:]))

    return Layer(init, apply, name)


# ---------------------------------------------------------------------------- 2-D


Pairs = tuple[tuple[int, int], tuple[int, int]]


def _pair(value: Any, name: str) -> tuple[int, int]:
    """An int or a pair of positive ints as a pair (the two spatial axes)."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"{name} must be a positive int or a pair of them, got {name}={value!r}.")
    return (check_positive_int(pair[0], name), check_positive_int(pair[1], name))


def _explicit_pairs(padding: Any, name: str, *, signed: bool) -> Pairs:
    """An int p → ((p, p), (p, p)); two (before, after) pairs as given (ints, ≥ 0 unless signed)."""
    if isinstance(padding, int) and not isinstance(padding, bool):
        padding = ((padding, padding), (padding, padding))
    ok = isinstance(padding, (tuple, list)) and len(padding) == 2
    ok = ok and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in padding)
    ok = ok and all(
        isinstance(v, int) and not isinstance(v, bool) and (signed or v >= 0)
        for p in padding
        for v in p
    )
    if not ok:
        sign = "" if signed else "non-negative "
        raise ValueError(
            f"{name}: padding must be 'SAME', 'VALID', a {sign}int or two (before, after) pairs "
            f"of {sign}ints ((top, bottom), (left, right)), got padding={padding!r}."
        )
    return ((padding[0][0], padding[0][1]), (padding[1][0], padding[1][1]))


def _check_padding_arg(padding: Any, name: str, *, signed: bool = False) -> None:
    if isinstance(padding, str):
        check_choice(padding, "padding", ("SAME", "VALID"))
    else:
        _explicit_pairs(padding, name, signed=signed)


def resolve_padding2d(
    padding: Any,
    size: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilation: Sequence[int],
    name: str = "conv2d",
) -> Pairs:
    """conv2d's zeros ((top, bottom), (left, right)) for an (H, W) input: "SAME" and "VALID"
    per axis as `conv_padding`, an int or explicit pairs as given (see the module docstring)."""
    if isinstance(padding, str):
        check_choice(padding, "padding", ("SAME", "VALID"))
        pads = [
            conv_padding(t, k, stride=s, dilation=d, padding=padding)
            for t, k, s, d in zip(size, kernel, strides, dilation, strict=True)
        ]
        return ((pads[0][0], pads[0][1]), (pads[1][0], pads[1][1]))
    return _explicit_pairs(padding, name, signed=False)


def _conv2d_out(
    size: Sequence[int], kernel: Sequence[int], strides, dilation, padding: Any, name: str
) -> tuple[int, int]:
    """(H_out, W_out) = ⌊(T + P − W)/s⌋ + 1 per axis; −1 stays −1; too small an input raises."""
    out = []
    for axis, (t, k, s, d) in enumerate(zip(size, kernel, strides, dilation, strict=True)):
        if t == -1:
            out.append(-1)
            continue
        before, after = resolve_padding2d(padding, size, kernel, strides, dilation, name)[axis]
        span = (k - 1) * d + 1
        if t + before + after < span:
            raise ValueError(
                f"{name}: axis {'HW'[axis]} has {t} cells, {t + before + after} after padding "
                f"{padding!r}, fewer than the kernel's span {span} (kernel {k}, dilation {d})."
            )
        out.append((t + before + after - span) // s + 1)
    return out[0], out[1]


def _check_image_shape(shape: Sequence[int], name: str, what: str = "in_shape") -> None:
    if len(shape) < 4 or shape[-1] == -1:
        raise ValueError(
            f"{name}: expects {what} (batch, height, width, channels) with known channels "
            f"(channels-last, NHWC), got {tuple(shape)}. For one image add a batch axis; "
            f"PyTorch's (B, C, H, W) is x.transpose(0, 2, 3, 1)."
        )


def _image_kernel_params(
    key: Array, kernel: Sequence[int], in_channels: int, features: int, use_bias: bool
) -> Params:
    """w (kH, kW, in_channels, features) ~ U(±1/√(kH·kW·in_channels)) (PyTorch's default for
    both convolutions), b = 0 when `use_bias`."""
    bound = 1.0 / math.sqrt(kernel[0] * kernel[1] * in_channels)
    w_shape = (*kernel, in_channels, features)
    params = {"w": jax.random.uniform(key, w_shape, jnp.float32, -bound, bound)}
    if use_bias:
        params["b"] = jnp.zeros((features,), jnp.float32)
    return params


def _check_image_input(x: Any, w: Array, name: str, groups: int = 1, detail: str = "") -> None:
    """x must be a real array (..., H, W, C) with no empty axis and C = groups · w.shape[2],
    the channel count w (kH, kW, C/groups, F) expects; `detail` adds what decides that count
    to the message."""
    _check_array(x, name)
    _check_image_shape(jnp.shape(x), name, "x.shape")
    if 0 in x.shape[:-1]:
        raise ValueError(f"{name}: x has an empty axis: x.shape={x.shape}.")
    channels = w.shape[2] * groups if w.ndim >= 3 else None
    if w.ndim != 4 or x.shape[-1] != channels:
        raise ValueError(
            f"{name}: x has {x.shape[-1]} channels but w expects {channels} "
            f"(w.shape={w.shape}, {detail}x.shape={x.shape})."
        )


def conv2d(
    features: int,
    kernel_size: int | Sequence[int],
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "SAME",
    dilation: int | Sequence[int] = 1,
    feature_group_count: int = 1,
    use_bias: bool = True,
    name: str = "conv2d",
) -> Layer:
    """A 2-D convolution over channels-last images, (B, H, W, C) → (B, H_out, W_out, features).

    y[b, h, v, o] = b[o] + Σₐ Σ_c Σᵢ x̃[b, h·s₀ + a·δ₀, v·s₁ + c·δ₁, g(o)·C/G + i]·w[a, c, i, o]

    params {"w": (kH, kW, C/G, features), "b": (features,)} (no "b" with use_bias=False);
    w ~ U(±1/√(kH·kW·C/G)), b = 0 (PyTorch's default fan-in scale). `kernel_size`, `strides`
    and `dilation` are an int or an (H, W) pair; `padding` "SAME" (H_out = ⌈H/s⌉), "VALID",
    an int p or ((top, bottom), (left, right)). G = `feature_group_count` divides C and
    features (G = C: depthwise). PyTorch's weight (F, C/G, kH, kW) is w.transpose(3, 2, 0, 1).
    Leading axes beyond one batch axis are accepted, (..., H, W, C).

    apply(params, x, *, mask=None, key=None, train=False): a `mask` (..., H, W), True for
    real cells, zeroes the others before the convolution (they read as the zero padding).
    """
    check_positive_int(features, "features")
    kernel = _pair(kernel_size, "kernel_size")
    stride = _pair(strides, "strides")
    dil = _pair(dilation, "dilation")
    groups = check_positive_int(feature_group_count, "feature_group_count")
    _check_padding_arg(padding, name)

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        _check_image_shape(shape, name)
        channels = shape[-1]
        _check_groups(groups, channels, features, name)
        out = _conv2d_out(shape[-3:-1], kernel, stride, dil, padding, name)
        params = _image_kernel_params(key, kernel, channels // groups, features, use_bias)
        return params, (*shape[:-3], *out, features)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train
        w = params["w"]
        _check_image_input(x, w, name, groups, f"feature_group_count={groups}, ")
        lead, size = x.shape[:-3], x.shape[-3:-1]
        _conv2d_out(size, kernel, stride, dil, padding, name)
        mask = check_mask(mask, x.shape[:-1], name)
        if mask is not None:  # padded cells read as the zeros around the image
            x = jnp.where(mask[..., None], x, jnp.zeros_like(x))
        pads = resolve_padding2d(padding, size, kernel, stride, dil, name)
        xs = jnp.reshape(x, (-1, *x.shape[-3:]))  # (N, H, W, C)
        xs = jnp.pad(xs, ((0, 0), pads[0], pads[1], (0, 0)))
        y = _correlate(xs, w.astype(x.dtype), stride, dil)  # (N, H_out, W_out, F)
        if use_bias:
            y = y + jnp.reshape(params["b"].astype(y.dtype), (1, 1, 1, -1))
        return jnp.reshape(y, (*lead, *y.shape[1:]))

    return Layer(init, apply, name)


def _transpose_crops(
    padding: Any, kernel: Sequence[int], strides: Sequence[int], dilation: Sequence[int], name: str
) -> Pairs:
    """conv_transpose2d's crops ((top, bottom), (left, right)) of the full output."""
    if not isinstance(padding, str):
        return _explicit_pairs(padding, name, signed=True)
    crops = []
    for k, s, d in zip(kernel, strides, dilation, strict=True):
        span = (k - 1) * d + 1
        if padding == "VALID":
            crops.append((0, 0))
        else:  # the adjoint of conv2d SAME on T·s cells, whose pad is max(W − s, 0)
            before = max(span - s, 0) // 2
            crops.append((before, span - s - before))
    return ((crops[0][0], crops[0][1]), (crops[1][0], crops[1][1]))


def conv_transpose2d(
    features: int,
    kernel_size: int | Sequence[int],
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "SAME",
    dilation: int | Sequence[int] = 1,
    use_bias: bool = True,
    name: str = "conv_transpose2d",
) -> Layer:
    """A transposed 2-D convolution (the input gradient of conv2d), used to upsample in decoders.

    y[b, h·s₀ + a·δ₀ − p₀, v·s₁ + c·δ₁ − p₁, o] += x[b, h, v, i] · w[a, c, i, o],  then + b[o]

    (B, H, W, C) → (B, H_out, W_out, features) with, per axis, H_out = (H − 1)·s + W − p_b − p_a
    (W = (k − 1)·δ + 1): "SAME" gives H·s, "VALID" (H − 1)·s + W, explicit ((p_top, p_bottom),
    (p_left, p_right)) crops the full output (negative values pad it); see the module
    docstring. params {"w": (kH, kW, C, features), "b": (features,)}; w ~ U(±1/√(kH·kW·C)).
    PyTorch's ConvTranspose2d(padding=p, output_padding=q) is padding ((p, p − q), (p, p − q))
    with w = weight.permute(2, 3, 0, 1). Groups are not supported.
    """
    check_positive_int(features, "features")
    kernel = _pair(kernel_size, "kernel_size")
    stride = _pair(strides, "strides")
    dil = _pair(dilation, "dilation")
    _check_padding_arg(padding, name, signed=True)
    crops = _transpose_crops(padding, kernel, stride, dil, name)

    def out_size(size: Sequence[int]) -> tuple[int, int]:
        out = []
        for t, k, s, d, (before, after) in zip(size, kernel, stride, dil, crops, strict=True):
            length = -1 if t == -1 else (t - 1) * s + (k - 1) * d + 1 - before - after
            if t != -1 and length < 1:
                raise ValueError(
                    f"{name}: padding {padding!r} crops the whole output ({t} cells → {length})."
                )
            out.append(length)
        return out[0], out[1]

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        _check_image_shape(shape, name)
        out = out_size(shape[-3:-1])
        params = _image_kernel_params(key, kernel, shape[-1], features, use_bias)
        return params, (*shape[:-3], *out, features)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train
        w = params["w"]
        _check_image_input(x, w, name)
        lead = x.shape[:-3]
        out_size(x.shape[-3:-1])
        mask = check_mask(mask, x.shape[:-1], name)
        if mask is not None:  # padded cells scatter nothing
            x = jnp.where(mask[..., None], x, jnp.zeros_like(x))
        xs = jnp.reshape(x, (-1, *x.shape[-3:]))  # (N, H, W, C)
        # Scatter as a correlation: zeros between input cells (s − 1 per gap), W − 1 − p
        # zeros around (a negative amount crops), then the flipped kernel at stride 1.
        config = [(0, 0, 0)]
        for k, s, d, (before, after) in zip(kernel, stride, dil, crops, strict=True):
            span = (k - 1) * d + 1
            config.append((span - 1 - before, span - 1 - after, s - 1))
        config.append((0, 0, 0))
        xs = jax.lax.pad(xs, jnp.zeros((), xs.dtype), config)
        y = _correlate(xs, w[::-1, ::-1].astype(x.dtype), (1, 1), dil)  # (N, H_out, W_out, F)
        if use_bias:
            y = y + jnp.reshape(params["b"].astype(y.dtype), (1, 1, 1, -1))
        return jnp.reshape(y, (*lead, *y.shape[1:]))

    return Layer(init, apply, name)
