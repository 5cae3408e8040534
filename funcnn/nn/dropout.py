"""Inverted dropout (Srivastava et al., 2014).

Training:  y = m ⊙ x / (1 − p),  m_i ~ Bernoulli(1 − p) independently, p = `rate`
Eval:      y = x
Channel dropout (`dropout2d`, Tompson et al., 2015) draws one m per (example, channel) and
shares it over the spatial axes, so whole feature maps are dropped — neighbouring pixels
are correlated, and dropping them one by one barely regularizes a convolution.
`rate` is the probability of DROPPING a unit (PyTorch's convention; stax once had it
inverted). Dividing by 1 − p while training keeps E[y] = x, so inference needs no rescaling
— equivalent to classic dropout's scaling by (1 − p) at test time.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcnn._validation import check_in_range
from funcnn.nn.core import Layer, Params, Shape, as_shape

Array = jax.Array

__all__ = ["dropout", "dropout2d"]


def dropout(rate: float, *, name: str = "dropout") -> Layer:
    """Inverted dropout with drop probability `rate` ∈ [0, 1]; params {}.

    rate = 1 drops everything: train=True gives zeros with zero gradient (no 0/0), as in
    PyTorch and flax.

    apply(params, x, key=k, train=True) draws a fresh mask from `k` (split it per step);
    train=False (the default) is the identity whatever the key. train=True with rate > 0 and
    no key raises a ValueError instead of silently not dropping. `train` is a Python bool
    (a compile-time switch), not a traced value.
    """
    return _dropout(rate, spatial_axes=0, name=name)


def dropout2d(rate: float, *, name: str = "dropout2d") -> Layer:
    """Channel dropout for channels-last images: y[b, h, v, c] = m[b, c]·x[b, h, v, c]/(1 − p).

    One Bernoulli(1 − p) draw per (example, channel), shared by all H×W cells, so a whole
    feature map is kept or zeroed (PyTorch's Dropout2d, on NHWC). x (..., H, W, C), rank ≥ 4;
    otherwise as `dropout` (train/eval, key, rate = 1). params {}.
    """
    return _dropout(rate, spatial_axes=2, name=name)


def _dropout(rate: float, *, spatial_axes: int, name: str) -> Layer:
    """Inverted dropout whose mask is shared over the `spatial_axes` axes before the last."""
    rate = check_in_range(rate, "rate", 0.0, 1.0, high_inclusive=True)
    keep_prob = 1.0 - rate

    def check_rank(shape: Sequence[int]) -> None:
        if spatial_axes and len(shape) < spatial_axes + 2:
            raise ValueError(
                f"{name}: expects channels-last images (batch, height, width, channels), got "
                f"shape {tuple(shape)}."
            )

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        shape = as_shape(in_shape)
        check_rank(shape)
        return {}, shape

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del params
        check_rank(jnp.shape(x))
        if not train or rate == 0.0:
            return x
        if key is None:
            raise ValueError(
                f"{name}: train=True needs a PRNG key for the dropout mask, got key=None. "
                f"Pass apply(params, x, key=key, train=True), or train=False for evaluation."
            )
        if rate == 1.0:  # 1/(1 − p) would be 1/0; every unit is dropped
            return jnp.zeros_like(x)
        shape = jnp.shape(x)
        if spatial_axes:  # one draw per (example, channel): (..., 1, 1, C)
            shape = (*shape[: -spatial_axes - 1], *(1,) * spatial_axes, shape[-1])
        keep = jax.random.bernoulli(key, keep_prob, shape)  # m ~ Bernoulli(1 − p)
        keep = jnp.broadcast_to(keep, jnp.shape(x))
        return jnp.where(keep, x / keep_prob, jnp.zeros_like(x))

    return Layer(init, apply, name)
