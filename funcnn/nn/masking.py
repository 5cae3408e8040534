"""Padding masks for variable-length sequences, and masked reductions over time.

Convention used by every sequence layer in funcnn: a mask is a boolean array of shape
(..., T) — the input's shape without its feature axis — True for real steps and False for
padding. Layers take it as a keyword, `apply(params, x, *, mask=None, key=None, train=False)`;
`mask=None` means every step is real. `serial`, `parallel` and `residual` pass the mask on
to every child, so a model built from them needs no hand threading.

The mask rule, the same for every layer: boolean masks are used as given, integer 0/1 masks
are converted, float masks are a TypeError (a float usually means attention biases or
weights were passed by mistake).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from funcnn._validation import check_positive_int

Array = jax.Array

__all__ = [
    "check_mask",
    "has_time_axis",
    "lengths_to_mask",
    "masked_mean",
    "prefix_mean",
    "zero_padding",
]


def lengths_to_mask(lengths: Array, max_len: int) -> Array:
    """Mask for right-padded sequences: mask[b, t] = t < lengths[b]. (B,) → (B, max_len) bool."""
    check_positive_int(max_len, "max_len")
    lengths = jnp.asarray(lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}.")
    steps = jnp.arange(max_len)
    return steps[None, :] < lengths[..., None] if lengths.ndim else steps < lengths


def check_mask(mask: Array | None, expected_shape: tuple[int, ...], name: str) -> Array | None:
    """Return `mask` as a bool array of exactly `expected_shape` (or None), else raise.

    Boolean masks are used as given and integer 0/1 masks are converted (nonzero = real).
    Floats are a TypeError: a float mask usually means attention biases or weights were
    passed by mistake.
    """
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_ and not jnp.issubdtype(mask.dtype, jnp.integer):
        raise TypeError(
            f"{name}: mask must be boolean (True = real step, False = padding) or integer "
            f"0/1, got mask.dtype={mask.dtype}. Use mask.astype(bool) if it holds weights."
        )
    if mask.shape != tuple(expected_shape):
        raise ValueError(
            f"{name}: mask must have shape {tuple(expected_shape)} (the input's shape without "
            f"its feature axis), got mask.shape={mask.shape}."
        )
    return mask.astype(bool)


def zero_padding(x: Array, mask: Array | None, name: str) -> Array:
    """x with every padded step selected to 0: where(mask[..., None], x, 0). x (..., T, d),
    mask (..., T) or None → (..., T, d).

    Per-step layers (dense, the norms, activations) call it first, so what padding holds
    (NaN, inf, 1e30) never reaches their arithmetic: not their outputs at real steps, and not
    their gradients either (∂L/∂w = Σₜ xₜᵀ·δₜ would be 0·NaN = NaN at a padded step). A select,
    not a multiply, for the same reason.

    A mask must be boolean (or integer 0/1) of rank x.ndim − 1, else it is refused naming
    `mask`. Its sizes may differ from x.shape[:-1]: after a windowed pool or a strided
    convolution (which give finite values at windows with no real step, see `nn.pooling`)
    the mask describes the steps before that layer, and a per-step layer, whose output at a
    step depends on that step only, has nothing to select and returns x.
    """
    if mask is None:
        return x
    shape = jnp.shape(x)
    # Any sizes of the right rank pass (see above); a wrong rank is checked against x's.
    expected = jnp.shape(mask) if jnp.ndim(mask) == len(shape) - 1 else shape[:-1]
    mask = check_mask(mask, expected, name)
    assert mask is not None  # for mypy: check_mask returns None only for None
    if mask.shape != shape[:-1]:  # the steps of an earlier, longer sequence: nothing to select
        return x
    return jnp.where(mask[..., None], x, jnp.zeros_like(x))


def has_time_axis(x: object, mask: Array | None) -> bool:
    """Whether a padding mask (..., T) still describes x: x keeps the mask's axes plus a
    feature axis (x.ndim = mask.ndim + 1). A layer that removed the time axis (a global
    pool, bag of words) leaves x.ndim = mask.ndim, and the mask ends there (`serial`)."""
    ndim = getattr(x, "ndim", None)
    return mask is not None and ndim is not None and ndim > jnp.ndim(mask)


def masked_mean(x: Array, mask: Array | None) -> Array:
    """Mean over the time axis counting only real steps: Σₜ mₜxₜ / max(Σₜ mₜ, 1).

    x (..., T, d), mask (..., T) or None → (..., d). An all-padding row (or T = 0) gives
    zeros. Padded steps are selected away, not multiplied by 0, so their content (NaN, inf)
    never leaks.
    """
    if mask is None:  # Σₜ xₜ / max(T, 1): no steps at all is zeros, like an all-padding row
        return jnp.sum(x, axis=-2) / max(x.shape[-2], 1)
    weights = mask.astype(x.dtype)[..., None]  # (..., T, 1)
    # Select, never multiply: NaN·0 is NaN, so a padded step holding NaN or inf would leak.
    total = jnp.sum(jnp.where(mask[..., None], x, jnp.zeros_like(x)), axis=-2)  # (..., d)
    count = jnp.sum(weights, axis=-2)  # (..., 1)
    return total / jnp.maximum(count, 1.0)


def prefix_mean(x: Array, mask: Array | None) -> Array:
    """Running mean over real steps up to and including t: Σ_{s≤t} mₛxₛ / max(Σ_{s≤t} mₛ, 1).

    x (..., T, d), mask (..., T) or None → (..., T, d).
    """
    if mask is None:
        weights = jnp.ones((*x.shape[:-1], 1), x.dtype)
    else:
        weights = mask.astype(x.dtype)[..., None]  # (..., T, 1)
    real = jnp.broadcast_to(weights > 0, x.shape)
    total = jnp.cumsum(jnp.where(real, x, jnp.zeros_like(x)), axis=-2)  # (..., T, d)
    count = jnp.cumsum(weights, axis=-2)  # (..., T, 1)
    return total / jnp.maximum(count, 1.0)
