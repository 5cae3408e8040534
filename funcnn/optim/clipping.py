"""Clipping: bound the size of the update, elementwise (`clip`), over all leaves together
(`clip_by_global_norm`) or per leaf by its RMS (`clip_by_block_rms`, Adafactor's).

Notation: g is the incoming update, u the outgoing one. Arithmetic runs in at least float32
and each leaf keeps its dtype. All three stages are stateless.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim._tree import const, rms, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
    elementwise,
    global_norm,
)

__all__ = [
    "ClipByBlockRmsState",
    "ClipByGlobalNormState",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
]


def clip(max_delta: float) -> GradientTransformation:
    """Elementwise clipping u = min(max(g, −c), c) with c = `max_delta` > 0. Stateless."""
    max_delta = check_hyperparameter(max_delta, "max_delta", low_inclusive=False)
    return elementwise(lambda g: jnp.clip(g, -const(max_delta, g), const(max_delta, g)))


class ClipByGlobalNormState(NamedTuple):
    """Stateless (no fields); named so a state tree shows where clipping sits."""


def clip_by_global_norm(max_norm: float, *, eps: float = 0.0) -> GradientTransformation:
    """Rescale all leaves together so their joint norm is at most c = `max_norm`:

        ‖g‖ = √(Σᵢ gᵢ²) over every leaf,   u = g·min(1, c/‖g‖)       (eps = 0, default)
        u = g·min(1, c/(‖g‖ + ε))                                      (eps = ε > 0)

    With eps = 0 the factor is computed as c/max(‖g‖, c): exactly 1 below the threshold
    (updates untouched, bitwise) and at ‖g‖ = 0 (no 0/0). `eps=1e-6` gives PyTorch's
    `clip_grad_norm_` form, which shrinks slightly even just below the threshold. optax's
    `clip_by_global_norm` matches eps = 0. Non-finite norms propagate (use a skip wrapper).
    """
    max_norm = check_hyperparameter(max_norm, "max_norm", low_inclusive=False)
    eps = check_hyperparameter(eps, "eps")

    def init(params: Params) -> ClipByGlobalNormState:
        del params
        return ClipByGlobalNormState()

    def update(updates: Updates, state: ClipByGlobalNormState, params: Params | None = None):
        del params
        norm = global_norm(updates)  # () float32 or float64
        c = const(max_norm, norm)
        if eps > 0:
            factor = jnp.minimum(1, c / (norm + const(eps, norm)))
        else:
            factor = c / jnp.maximum(norm, c)
        updates = jax.tree.map(
            lambda g: (upcast(g) * const(factor, upcast(g))).astype(g.dtype), updates
        )
        return updates, state

    return GradientTransformation(init, update)


class ClipByBlockRmsState(NamedTuple):
    """Stateless (no fields)."""


def clip_by_block_rms(threshold: float = 1.0) -> GradientTransformation:
    """Adafactor's update clipping (Shazeer & Stern 2018, §6), per leaf:

        d = g / max(1, RMS(g)/c)                          (threshold = c ≥ 1 in torch)

    so every leaf's update has RMS at most c; below it the update passes unchanged. torch
    calls c `d`; optax's `clip_by_block_rms` is the same. Stateless.
    """
    threshold = check_hyperparameter(threshold, "threshold", low_inclusive=False)

    def init(params: Params) -> ClipByBlockRmsState:
        del params
        return ClipByBlockRmsState()

    def update(updates: Updates, state: ClipByBlockRmsState, params: Params | None = None):
        del params

        def leaf(g: Array) -> Array:
            g32 = upcast(g)
            denom = jnp.maximum(1, rms(g32) / const(threshold, g32))  # ()
            return (g32 / denom).astype(g.dtype)

        return jax.tree.map(leaf, updates), state

    return GradientTransformation(init, update)
