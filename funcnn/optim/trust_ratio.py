"""The layer-wise trust ratio of LARS and LAMB (You et al. 2017, 2020; optax's
`scale_by_trust_ratio`): each leaf's update rescaled by ‖θₗ‖/‖gₗ‖.

Notation: g is the incoming update (the gradient for the first stage), d the outgoing
direction, θ the parameters, t the 1-based step number, ηₜ the learning rate; only
`scale_by_learning_rate` carries the minus sign. Per-parameter buffers keep each leaf's
dtype (unless a `*_dtype` option says otherwise), arithmetic runs in at least float32
(bf16 leaves are upcast, the result cast back), step counters are int32 scalars.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim._tree import const, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
)

__all__ = [
    "ScaleByTrustRatioState",
    "scale_by_trust_ratio",
]


class ScaleByTrustRatioState(NamedTuple):
    """Stateless (no fields); named so a state tree shows where the trust ratio sits."""


def scale_by_trust_ratio(
    min_norm: float = 0.0, *, trust_coefficient: float = 1.0, eps: float = 0.0
) -> GradientTransformation:
    """Rescale each leaf by its layer-wise trust ratio (You et al. 2020, LAMB; 2017, LARS),
    as optax's `scale_by_trust_ratio`, per leaf l (norms over all entries of the leaf):

        ‖θₗ‖ = max(√Σθₗ², n₀),   ‖gₗ‖ = max(√Σgₗ², n₀)            (min_norm = n₀ ≥ 0)
        rₗ = c·‖θₗ‖/(‖gₗ‖ + ε),   rₗ = 1 where ‖θₗ‖ = 0 or ‖gₗ‖ = 0
        uₗ = rₗ·gₗ

    `trust_coefficient` = c > 0, `eps` = ε ≥ 0. With the defaults (n₀ = 0, c = 1, ε = 0)
    each leaf's step gets the norm of its parameter: ‖uₗ‖ = ‖θₗ‖ (LAMB, where the learning
    rate then scales it). A zero leaf (fresh biases) or a zero update passes unchanged.
    Needs the params. Stateless. Norms are accumulated in at least float32.
    """
    min_norm = check_hyperparameter(min_norm, "min_norm")
    trust_coefficient = check_hyperparameter(
        trust_coefficient, "trust_coefficient", low_inclusive=False
    )
    eps = check_hyperparameter(eps, "eps")

    def init(params: Params) -> ScaleByTrustRatioState:
        del params
        return ScaleByTrustRatioState()

    def update(updates: Updates, state: ScaleByTrustRatioState, params: Params | None = None):
        if params is None:
            raise ValueError(
                "scale_by_trust_ratio needs the params: call update(grads, state, params)."
            )

        def leaf(g: Array, p: Array) -> Array:
            g32, p32 = upcast(g), upcast(p).astype(upcast(g).dtype)
            floor = const(min_norm, g32)
            param_norm = jnp.maximum(jnp.sqrt(jnp.sum(p32 * p32)), floor)  # ()
            update_norm = jnp.maximum(jnp.sqrt(jnp.sum(g32 * g32)), floor)  # ()
            c, e = const(trust_coefficient, g32), const(eps, g32)
            ratio = c * param_norm / (update_norm + e)
            zero = jnp.logical_or(param_norm == 0, update_norm == 0)
            ratio = jnp.where(zero, jnp.ones([], g32.dtype), ratio)
            return (g32 * ratio).astype(g.dtype)

        return jax.tree.map(leaf, updates, params), state

    return GradientTransformation(init, update)
