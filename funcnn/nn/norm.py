"""Normalization over the last axis: LayerNorm (Ba, Kiros & Hinton, 2016) and RMSNorm
(Zhang & Sennrich, 2019).

layer_norm:  μ = mean(x),  σ² = mean((x − μ)²)   (biased, over the last axis of size d)
             y = (x − μ)/√(σ² + ε) · scale + bias          scale, bias: (d,)
rms_norm:    y = x / √(mean(x²) + ε) · scale              scale: (d,)   (Llama, T5, Gemma)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcnn import initializers
from funcnn._validation import check_floating, check_real
from funcnn.nn.core import Layer, Params, Shape, as_shape, get_child
from funcnn.nn.masking import zero_padding

Array = jax.Array

__all__ = ["layer_norm", "rms_norm"]


def _check_eps(eps: float, name: str) -> float:
    eps = check_real(eps, "eps")
    if eps <= 0:
        raise ValueError(f"{name}: eps must be > 0, got eps={eps}.")
    return eps


def _feature_size(in_shape: Sequence[int], name: str) -> Shape:
    shape = as_shape(in_shape)
    if len(shape) == 0 or shape[-1] == -1:
        raise ValueError(
            f"{name}: in_shape must end with a known feature size d, got in_shape={shape}."
        )
    return shape


def _check_x(x: Array, leaf: Array, leaf_name: str, name: str) -> None:
    check_floating(x, f"{name}: x")
    shape, d = jnp.shape(x), leaf.shape[0]
    if len(shape) == 0 or shape[-1] != d:
        raise ValueError(
            f"{name}: x.shape={shape} does not fit {leaf_name}.shape={leaf.shape}; expected x "
            f"of shape (..., {d})."
        )


def _affine(normed: Array, params: Params, use_scale: bool, use_bias: bool, name: str) -> Array:
    """normed·scale + bias with (d,) params broadcast explicitly over the leading axes."""
    lead = (1,) * (normed.ndim - 1)
    if use_scale:
        scale = get_child(params, "scale", name)
        normed = normed * jnp.reshape(scale, lead + scale.shape)
    if use_bias:
        bias = get_child(params, "bias", name)
        normed = normed + jnp.reshape(bias, lead + bias.shape)
    return normed


def layer_norm(
    *,
    eps: float = 1e-5,
    use_scale: bool = True,
    use_bias: bool = True,
    dtype: jnp.dtype = jnp.float32,
    name: str = "layer_norm",
) -> Layer:
    """y = (x − μ)/√(σ² + ε)·scale + bias, normalizing each vector x[..., :] of size d.

    Params {"scale": (d,) = 1, "bias": (d,) = 0}; `use_scale=False` drops the scale (y is
    multiplied by 1), `use_bias=False` drops the bias (nanoGPT's bias-free LayerNorm).
    x: (..., d) → y: (..., d), y.dtype = x.dtype.
    Numerics: statistics are computed in at least float32 with the two-pass form
    σ² = mean((x − μ)²), clamped at 0 — the one-pass E[x²] − μ² cancels catastrophically for
    inputs with a large offset (e.g. x ≈ 2000 ± 1 in float32) and in bfloat16.
    """
    eps = _check_eps(eps, name)

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key  # deterministic: ones and zeros
        shape = _feature_size(in_shape, name)
        params = {}
        if use_scale:
            params["scale"] = initializers.ones()(None, (shape[-1],), dtype)
        if use_bias:
            params["bias"] = initializers.zeros()(None, (shape[-1],), dtype)
        return params, shape

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train  # deterministic
        if use_scale or use_bias:
            leaf_name = "scale" if use_scale else "bias"
            _check_x(x, get_child(params, leaf_name, name), leaf_name, name)
        else:
            check_floating(x, f"{name}: x")
        # Per-step (each vector is normalized alone): padded steps hold 0, whatever they held.
        x = zero_padding(x, mask, name)
        x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        mean = jnp.mean(x32, axis=-1, keepdims=True)  # (..., 1)
        centered = x32 - mean  # (..., d)
        var = jnp.maximum(jnp.mean(jnp.square(centered), axis=-1, keepdims=True), 0.0)
        normed = centered * jax.lax.rsqrt(var + eps)  # (..., d)
        return _affine(normed, params, use_scale, use_bias, name).astype(x.dtype)

    return Layer(init, apply, name)


def rms_norm(
    *,
    eps: float = 1e-6,
    use_scale: bool = True,
    dtype: jnp.dtype = jnp.float32,
    name: str = "rms_norm",
) -> Layer:
    """y = x / √(mean(x²) + ε) · scale over the last axis of size d (RMSNorm; Llama).

    No centring and no bias: only the root mean square is divided out. ε (default 1e-6, as
    Llama's `rms_norm_eps`; T5 and Gemma also use 1e-6) is added inside the root, so y is
    finite for x = 0. Params {"scale": (d,) = 1}, none with `use_scale=False`.
    x: (..., d) → y: (..., d), y.dtype = x.dtype; mean(x²) is computed in at least float32
    (Hugging Face's LlamaRMSNorm does the same) and the scale multiplies the result.
    """
    eps = _check_eps(eps, name)

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key  # deterministic: ones
        shape = _feature_size(in_shape, name)
        params = {"scale": initializers.ones()(None, (shape[-1],), dtype)} if use_scale else {}
        return params, shape

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train  # deterministic
        if use_scale:
            _check_x(x, get_child(params, "scale", name), "scale", name)
        else:
            check_floating(x, f"{name}: x")
        x = zero_padding(x, mask, name)  # per-step: padded steps hold 0, whatever they held
        x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        mean_square = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)  # (..., 1)
        normed = x32 * jax.lax.rsqrt(mean_square + eps)  # (..., d)
        return _affine(normed, params, use_scale, False, name).astype(x.dtype)

    return Layer(init, apply, name)
