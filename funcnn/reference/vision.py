"""Float64 NumPy transcriptions of the image layers, written loop by loop from the equations.

Deliberately naive (explicit loops over output cells and kernel taps, no lax, no im2col) so
they share no code path with `funcnn.nn`. Channels-last layouts as in `funcnn.nn.conv`:
x (N, H, W, C), conv2d w (kH, kW, C/G, F), conv_transpose2d w (kH, kW, C, F). Every function
is complex-step safe (buffers take the inputs' dtype, maxima compare real parts), so
`funcnn.reference.numerical.complex_step` differentiates them to float64 precision.

Padding is given resolved, as ((top, bottom), (left, right)) pairs; `same_padding` is
TensorFlow's "SAME" rule for one axis.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "batch_norm_reference",
    "conv2d_reference",
    "conv_transpose2d_reference",
    "global_pool2d_reference",
    "group_norm_reference",
    "pool2d_reference",
    "same_padding",
]


def _arrays(*arrays):
    """float64 arrays — complex128 where any input is complex (a complex-step probe)."""
    complex_ = any(np.iscomplexobj(a) for a in arrays)
    dtype = np.complex128 if complex_ else np.float64
    return [np.asarray(a, dtype) for a in arrays]


def same_padding(size, kernel, stride, dilation=1):
    """TensorFlow's SAME pads for one axis: T_out = ⌈T/s⌉, P = max((T_out − 1)s + W − T, 0),
    split ⌊P/2⌋ before and the rest after, with W = (k − 1)·δ + 1."""
    span = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def conv2d_reference(x, w, b, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    """y[n, h, v, o] = b[o] + Σₐ Σ_c Σᵢ x̃[n, h·s₀ + a·δ₀, v·s₁ + c·δ₁, g(o)·C/G + i]·w[a, c, i, o].

    x (N, H, W, C), w (kH, kW, C/G, F), b (F,) or None; G = C / w.shape[2] groups and
    g(o) = o // (F/G). x̃ is x with `padding` zeros. Returns (N, H_out, W_out, F).
    """
    if b is None:
        x, w = _arrays(x, w)
        b = np.zeros(w.shape[3], x.dtype)
    else:
        x, w, b = _arrays(x, w, b)
    n, height, width, channels = x.shape
    kh, kw, group_in, features = w.shape
    groups = channels // group_in
    per_group = features // groups
    (pt, pb), (pl, pr) = padding
    padded = np.zeros((n, height + pt + pb, width + pl + pr, channels), x.dtype)
    padded[:, pt : pt + height, pl : pl + width, :] = x
    out_h = (padded.shape[1] - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    out_w = (padded.shape[2] - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    y = np.zeros((n, out_h, out_w, features), x.dtype)
    for h in range(out_h):
        for v in range(out_w):
            for o in range(features):
                g = o // per_group
                total = b[o] * np.ones(n, x.dtype)
                for a in range(kh):
                    for c in range(kw):
                        row = h * strides[0] + a * dilation[0]
                        col = v * strides[1] + c * dilation[1]
                        for i in range(group_in):
                            total = total + padded[:, row, col, g * group_in + i] * w[a, c, i, o]
                y[:, h, v, o] = total
    return y


def conv_transpose2d_reference(x, w, b, *, strides=(1, 1), crops=((0, 0), (0, 0)), dilation=(1, 1)):
    """Scatter form: y_full[n, h·s₀ + a·δ₀, v·s₁ + c·δ₁, o] += x[n, h, v, i]·w[a, c, i, o],
    then `crops` ((top, bottom), (left, right)) cut from y_full's edges (negative: zero rows
    added) and b[o] added everywhere. x (N, H, W, C), w (kH, kW, C, F)."""
    x, w, b = _arrays(x, w, b)
    n, height, width, _ = x.shape
    kh, kw, _, features = w.shape
    full_h = (height - 1) * strides[0] + (kh - 1) * dilation[0] + 1
    full_w = (width - 1) * strides[1] + (kw - 1) * dilation[1] + 1
    (ct, cb), (cl, cr) = crops
    # A canvas large enough for negative crops: offset by the zeros added before.
    off_h, off_w = max(-ct, 0), max(-cl, 0)
    canvas = np.zeros(
        (n, full_h + off_h + max(-cb, 0), full_w + off_w + max(-cr, 0), features), x.dtype
    )
    for h in range(height):
        for v in range(width):
            for a in range(kh):
                for c in range(kw):
                    row = off_h + h * strides[0] + a * dilation[0]
                    col = off_w + v * strides[1] + c * dilation[1]
                    canvas[:, row, col, :] += x[:, h, v, :] @ w[a, c]
    top, left = off_h + max(ct, 0), off_w + max(cl, 0)
    out_h = full_h - ct - cb
    out_w = full_w - cl - cr
    return canvas[:, top : top + out_h, left : left + out_w, :] + b


def pool2d_reference(x, window, strides, padding=((0, 0), (0, 0)), kind="max", mask=None):
    """Max or mean over each window of real cells: padding and cells with mask False are left
    out (PyTorch's count_include_pad=False); a window with no real cell gives 0.
    x (N, H, W, C), mask (N, H, W) or None."""
    (x,) = _arrays(x)
    n, height, width, channels = x.shape
    real = np.ones((n, height, width), bool) if mask is None else np.asarray(mask, bool)
    (pt, pb), (pl, pr) = padding
    out_h = (height + pt + pb - window[0]) // strides[0] + 1
    out_w = (width + pl + pr - window[1]) // strides[1] + 1
    y = np.zeros((n, out_h, out_w, channels), x.dtype)
    for b in range(n):
        for h in range(out_h):
            for v in range(out_w):
                cells = [
                    x[b, r, c]
                    for r in range(h * strides[0] - pt, h * strides[0] - pt + window[0])
                    for c in range(v * strides[1] - pl, v * strides[1] - pl + window[1])
                    if 0 <= r < height and 0 <= c < width and real[b, r, c]
                ]
                if not cells:
                    continue
                stack = np.stack(cells)  # (cells, C)
                if kind == "max":
                    best = np.argmax(stack.real, axis=0)
                    y[b, h, v] = stack[best, np.arange(channels)]
                else:
                    y[b, h, v] = stack.sum(axis=0) / len(cells)
    return y


def global_pool2d_reference(x, kind="avg", mask=None):
    """Mean or max over the real cells of each image: (N, H, W, C) → (N, C); none real → 0."""
    height, width = np.shape(x)[1:3]
    return pool2d_reference(x, (height, width), (1, 1), kind=kind, mask=mask)[:, 0, 0, :]


def batch_norm_reference(x, scale, bias, mean, var, *, train, momentum=0.1, eps=1e-5, mask=None):
    """One batch_norm call with PyTorch's semantics, per channel c (the last axis):

    train: μ = Σ x / n, σ² = Σ (x − μ)² / n over the n real cells (every axis but the last),
           y = (x − μ)/√(σ² + ε)·scale + bias,
           mean ← (1 − m)·mean + m·μ,   var ← (1 − m)·var + m·σ²·n/(n − 1)  (unbiased)
    eval:  y = (x − mean)/√(var + ε)·scale + bias; the statistics are returned unchanged.
    Returns (y, new_mean, new_var). Masked cells are left out of μ and σ².
    """
    x, scale, bias, mean, var = _arrays(x, scale, bias, mean, var)
    channels = x.shape[-1]
    if not train:
        return (x - mean) / np.sqrt(var + eps) * scale + bias, mean, var
    flat = x.reshape(-1, channels)
    real = np.ones(len(flat), bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    cells = flat[real]
    n = len(cells)
    mu = cells.sum(axis=0) / n
    sigma2 = ((cells - mu) ** 2).sum(axis=0) / n
    y = (x - mu) / np.sqrt(sigma2 + eps) * scale + bias
    new_mean = (1 - momentum) * mean + momentum * mu
    new_var = (1 - momentum) * var + momentum * sigma2 * n / (n - 1)
    return y, new_mean, new_var


def group_norm_reference(x, scale, bias, groups, *, eps=1e-5, mask=None):
    """y = (x − μ)/√(σ² + ε)·scale + bias, with μ, σ² (biased) over each example's real cells
    (every axis but the first and the last) and the C/G channels of each group; an example
    with no real cell has μ = σ² = 0. x (N, ..., C), mask (N, ...) or None."""
    x, scale, bias = _arrays(x, scale, bias)
    n, channels = x.shape[0], x.shape[-1]
    per_group = channels // groups
    flat = x.reshape(n, -1, channels)
    real = np.ones(flat.shape[:2], bool) if mask is None else np.asarray(mask, bool).reshape(n, -1)
    y = np.zeros_like(flat)
    for b in range(n):
        for g in range(groups):
            cols = slice(g * per_group, (g + 1) * per_group)
            cells = flat[b, real[b], cols]
            count = max(cells.size, 1)  # an example with no real cell: μ = σ² = 0
            mu = cells.sum() / count
            sigma2 = ((cells - mu) ** 2).sum() / count
            y[b, :, cols] = (flat[b, :, cols] - mu) / np.sqrt(sigma2 + eps)
    return y.reshape(x.shape) * scale + bias
