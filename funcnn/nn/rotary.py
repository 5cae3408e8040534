"""Rotary position embedding (RoPE; Su et al. 2021, "RoFormer").

Each pair of coordinates (a, b) of a query or key at absolute position p is rotated by the
angle p·ωᵢ, ωᵢ = θ^(−2i/dh), i = 0 … dh/2 − 1:

    a' = a·cos(p·ωᵢ) − b·sin(p·ωᵢ),    b' = b·cos(p·ωᵢ) + a·sin(p·ωᵢ)

Since a rotation by p·ω followed by the inverse of q·ω is a rotation by (p − q)·ω, the score
q_p·k_q depends on the positions only through p − q: relative positions for free, and a
cached key keeps its rotation when later queries arrive.

Which coordinates pair up is a convention:
- rotate-half (default; GPT-NeoX, Llama, Hugging Face): pair (i, i + dh/2).
- interleaved (`interleaved=True`; the RoFormer paper, GPT-J, Meta's original Llama code):
  pair (2i, 2i + 1).
The two are the same function up to a fixed permutation of the head's columns — but weights
trained under one give wrong answers under the other, so the choice is explicit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from funcnn._validation import check_floating, check_real

__all__ = ["apply_rotary", "rotary_angles"]

Array = jax.Array


def rotary_angles(positions: Array, head_dim: int, *, theta: float = 10000.0) -> Array:
    """Angles p·ωᵢ with ωᵢ = θ^(−2i/dh): positions (..., T) int → (..., T, dh/2) float32.

    Computed in float32 as Hugging Face does (inverse frequencies first, then the product),
    or float64 when x64 is enabled and positions are given as float64.
    """
    if head_dim % 2:
        raise ValueError(f"rotary: head_dim must be even (coordinates pair up), got {head_dim}.")
    theta = check_real(theta, "theta")
    if theta <= 1:
        raise ValueError(f"rotary: theta (rope_theta) must be > 1, got {theta}.")
    positions = jnp.asarray(positions)
    if not jnp.issubdtype(positions.dtype, jnp.integer):
        raise TypeError(f"rotary: positions must be integers, got dtype {positions.dtype}.")
    dtype = jnp.promote_types(jnp.float32, jnp.result_type(float))  # float64 under x64
    two_i = jnp.arange(0, head_dim, 2, dtype=dtype)  # (dh/2,)
    inv_freq = 1.0 / (theta ** (two_i / head_dim))  # ωᵢ
    inv_freq = jnp.reshape(inv_freq, (1,) * positions.ndim + inv_freq.shape)  # explicit broadcast
    return positions.astype(dtype)[..., None] * inv_freq  # (..., T, dh/2)


def apply_rotary(
    x: Array, positions: Array, *, theta: float = 10000.0, interleaved: bool = False
) -> Array:
    """Rotate each coordinate pair of x (..., T, dh) at positions (T,) or (..., T) by p·ωᵢ.

    Rotate-half pairs (i, i + dh/2); `interleaved=True` pairs (2i, 2i + 1) (see the module
    docstring). `positions` are absolute (a cached decoding step passes its own position), and
    broadcast against x's leading axes from the right: (T,) serves every batch and head.
    Returns an array of x's dtype and shape; cos and sin are formed in float32 (or float64
    for float64 x) and cast to x's dtype, as Hugging Face's Llama does.
    """
    check_floating(x, "rotary: x")
    if jnp.ndim(x) < 2:
        raise ValueError(f"rotary: x must be (..., T, head_dim), got shape {jnp.shape(x)}.")
    steps, head_dim = x.shape[-2:]
    positions = jnp.asarray(positions)
    if positions.ndim == 0 or positions.shape[-1] != steps:
        raise ValueError(
            f"rotary: positions must be (T,) or (..., T) with T = x.shape[-2] = {steps}, got "
            f"shape {positions.shape}."
        )
    angles = rotary_angles(positions, head_dim, theta=theta)  # (..., T, dh/2)
    if x.dtype == jnp.float64:
        angles = angles.astype(jnp.float64)
    # Explicit broadcast of the angles over x's leading axes (rank promotion stays off).
    angles = jnp.reshape(angles, (1,) * (x.ndim - angles.ndim) + angles.shape)
    cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]  # pairs (2i, 2i + 1)
        rotated = jnp.stack([a * cos - b * sin, b * cos + a * sin], axis=-1)
        return jnp.reshape(rotated, x.shape)
    half = head_dim // 2
    a, b = x[..., :half], x[..., half:]  # pairs (i, i + dh/2)
    return jnp.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)
