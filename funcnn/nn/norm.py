"""Layer normalization over the last axis (Ba, Kiros & Hinton, 2016).

μ = mean(x),  σ² = mean((x − μ)²)   (biased, over the last axis of size d)
y = (x − μ)/√(σ² + ε) · scale + bias          scale, bias: (d,)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcnn import initializers
from funcnn._validation import check_floating, check_real
from funcnn.nn.core import Layer, Params, Shape, as_shape, get_child

Array = jax.Array

__all__ = ["layer_norm"]


def layer_norm(
    *, eps: float = 1e-5, dtype: jnp.dtype = jnp.float32, name: str = "layer_norm"
) -> Layer:
    """y = (x − μ)/√(σ² + ε)·scale + bias, normalizing each vector x[..., :] of size d.

    Params {"scale": (d,) = 1, "bias": (d,) = 0}. x: (..., d) → y: (..., d), y.dtype = x.dtype.
    Numerics: statistics are computed in at least float32 with the two-pass form
    σ² = mean((x − μ)²), clamped at 0 — the one-pass E[x²] − μ² cancels catastrophically for
    inputs with a large offset (e.g. x ≈ 2000 ± 1 in float32) and in bfloat16.
    """
    eps = check_real(eps, "eps")
    if eps <= 0:
        raise ValueError(f"{name}: eps must be > 0, got eps={eps}.")

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key  # deterministic: ones and zeros
        shape = as_shape(in_shape)
        if len(shape) == 0 or shape[-1] == -1:
            raise ValueError(
                f"{name}: in_shape must end with a known feature size d, got in_shape={shape}."
            )
        d = shape[-1]
        params = {
            "scale": initializers.ones()(None, (d,), dtype),
            "bias": initializers.zeros()(None, (d,), dtype),
        }
        return params, shape

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del mask, key, train  # per-step (each vector is normalized alone) and deterministic
        scale, bias = get_child(params, "scale", name), get_child(params, "bias", name)
        check_floating(x, f"{name}: x")
        shape = jnp.shape(x)
        if len(shape) == 0 or shape[-1] != scale.shape[0]:
            raise ValueError(
                f"{name}: x.shape={shape} does not fit scale.shape={scale.shape}; expected x of "
                f"shape (..., {scale.shape[0]})."
            )
        x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        mean = jnp.mean(x32, axis=-1, keepdims=True)  # (..., 1)
        centered = x32 - mean  # (..., d)
        var = jnp.maximum(jnp.mean(jnp.square(centered), axis=-1, keepdims=True), 0.0)
        normed = centered * jax.lax.rsqrt(var + eps)
        lead = (1,) * (normed.ndim - 1)  # explicit broadcast of (d,) over leading dims
        y = normed * jnp.reshape(scale, lead + scale.shape) + jnp.reshape(bias, lead + bias.shape)
        return y.astype(x.dtype)

    return Layer(init, apply, name)
