"""Stateless stages that reshape each update without memory: its sign, its centred form, its
unit-norm form, and a guard that zeroes non-finite entries (optax's `scale_by_sign`,
`centralize`, `normalize_by_update_norm`, `zero_nans`).

Notation as in `transforms.py`: g is the incoming update, d the outgoing one. Arithmetic
runs in at least float32 and each leaf keeps its dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim._tree import const, upcast
from funcnn.optim.base import (
    Array,
    EmptyState,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
    global_norm,
)

__all__ = [
    "ZeroNansState",
    "centralize",
    "normalize_by_update_norm",
    "scale_by_sign",
    "zero_nans",
]


def _init_empty(params: Params) -> EmptyState:
    del params
    return EmptyState()


def scale_by_sign() -> GradientTransformation:
    """d = sign(g) elementwise (sign(0) = 0), as optax's `scale_by_sign`: signSGD's direction
    (Bernstein et al. 2018, "signSGD: Compressed Optimisation for Non-Convex Problems").
    Stateless."""

    def update(updates: Updates, state: EmptyState, params: Params | None = None, **extra):
        del params, extra
        return jax.tree.map(jnp.sign, updates), state

    return GradientTransformation(_init_empty, update)


def centralize() -> GradientTransformation:
    """Gradient centralization (Yong et al. 2020), as optax's `centralize`: for every leaf of
    rank ≥ 2, d = g − mean(g) over all axes but the first (one mean per index of the leading
    axis); leaves of rank < 2 pass unchanged. Stateless."""

    def leaf(g: Array) -> Array:
        if jnp.ndim(g) < 2:
            return g
        g32 = upcast(g)
        axes = tuple(range(1, g32.ndim))
        return (g32 - jnp.mean(g32, axis=axes, keepdims=True)).astype(g.dtype)

    def update(updates: Updates, state: EmptyState, params: Params | None = None, **extra):
        del params, extra
        return jax.tree.map(leaf, updates), state

    return GradientTransformation(_init_empty, update)


def normalize_by_update_norm(
    scale_factor: float = 1.0, eps: float = 1e-6
) -> GradientTransformation:
    """d = c·g/(‖g‖ + ε), ‖g‖ the global norm over every leaf, as optax's
    `normalize_by_update_norm` (`scale_factor` = c, `eps` = ε > 0). Stateless."""
    scale_factor = check_hyperparameter(scale_factor, "scale_factor")
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)

    def update(updates: Updates, state: EmptyState, params: Params | None = None, **extra):
        del params, extra
        norm = global_norm(updates)  # ()
        factor = scale_factor / (norm + eps)
        return jax.tree.map(
            lambda g: (upcast(g) * const(factor, upcast(g))).astype(g.dtype), updates
        ), state

    return GradientTransformation(_init_empty, update)


class ZeroNansState(NamedTuple):
    """found_nan: per leaf, a bool scalar — whether the last update had a NaN there."""

    found_nan: Params


def zero_nans() -> GradientTransformation:
    """d = 0 where g is NaN, g elsewhere, as optax's `zero_nans`; the state records, per
    leaf, whether the last update held a NaN (for logging). ±∞ pass through (use
    `skip_nonfinite` to drop a whole step instead)."""

    def init(params: Params) -> ZeroNansState:
        return ZeroNansState(jax.tree.map(lambda _: jnp.asarray(False), params))

    def update(updates: Updates, state: ZeroNansState, params: Params | None = None, **extra):
        del params, extra
        found = jax.tree.map(lambda g: jnp.any(jnp.isnan(g)), updates)
        cleaned = jax.tree.map(lambda g: jnp.where(jnp.isnan(g), jnp.zeros_like(g), g), updates)
        return cleaned, ZeroNansState(found)

    return GradientTransformation(init, update)
