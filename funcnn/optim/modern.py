"""Stages of the post-Adam optimizers that only optax ships: Lion's sign of an interpolated
momentum and LAMB's (and LARS's) per-leaf trust ratio.

Notation as in `transforms.py`: g is the incoming update, d the outgoing direction, θ the
parameters, t the 1-based step number; only `scale_by_learning_rate` carries the minus
sign. Per-parameter buffers keep each leaf's dtype (unless `mu_dtype` says otherwise),
arithmetic runs in at least float32, step counters are int32 scalars.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
    safe_increment,
    tree_zeros_like,
)
from funcnn.optim.transforms import _const, _unzip, _upcast

__all__ = [
    "ScaleByLionState",
    "ScaleByTrustRatioState",
    "scale_by_lion",
    "scale_by_trust_ratio",
]


# --- Lion -------------------------------------------------------------------------------


class ScaleByLionState(NamedTuple):
    """count: int32 scalar, updates done so far. mu: the momentum m, shaped like the params
    (each leaf's dtype, or `mu_dtype`)."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    mu: Params


def scale_by_lion(
    b1: float = 0.9, b2: float = 0.99, *, mu_dtype: Any = None
) -> GradientTransformation:
    """Lion's direction (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms",
    Program 1), as optax's `scale_by_lion`:

        d  = sign(β₁·mₜ₋₁ + (1−β₁)·g)                 (elementwise; sign(0) = 0)
        mₜ = β₂·mₜ₋₁ + (1−β₂)·g,                      m₀ = 0

    `b1` = β₁ (the interpolation for the step), `b2` = β₂ (the momentum's decay), each in
    [0, 1). Every entry of d is −1, 0 or 1, so the first step is d = sign(g). The paper's
    weight decay θ ← θ − η·λ·θ is decoupled and lives in the alias (`add_decayed_weights`
    after this stage). torch has no Lion. `mu_dtype` stores m in another dtype.
    """
    b1 = check_hyperparameter(b1, "b1", high=1.0, high_inclusive=False)
    b2 = check_hyperparameter(b2, "b2", high=1.0, high_inclusive=False)

    def init(params: Params) -> ScaleByLionState:
        return ScaleByLionState(jnp.zeros([], jnp.int32), tree_zeros_like(params, mu_dtype))

    def update(updates: Updates, state: ScaleByLionState, params: Params | None = None):
        del params

        def leaf(g: Array, m: Array) -> tuple[Array, Array]:
            g32, m32 = _upcast(g), _upcast(m)
            beta1, beta2 = _const(b1, g32), _const(b2, g32)
            d = jnp.sign(beta1 * m32 + (1 - beta1) * g32)
            m_new = beta2 * m32 + (1 - beta2) * g32
            return d.astype(g.dtype), m_new.astype(m.dtype)

        updates, mu = _unzip(jax.tree.map(leaf, updates, state.mu), updates)
        return updates, ScaleByLionState(safe_increment(state.count), mu)

    return GradientTransformation(init, update)


# --- the trust ratio of LARS and LAMB ------------------------------------------------------


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
            g32, p32 = _upcast(g), _upcast(p).astype(_upcast(g).dtype)
            floor = _const(min_norm, g32)
            param_norm = jnp.maximum(jnp.sqrt(jnp.sum(p32 * p32)), floor)  # ()
            update_norm = jnp.maximum(jnp.sqrt(jnp.sum(g32 * g32)), floor)  # ()
            c, e = _const(trust_coefficient, g32), _const(eps, g32)
            ratio = c * param_norm / (update_norm + e)
            zero = jnp.logical_or(param_norm == 0, update_norm == 0)
            ratio = jnp.where(zero, jnp.ones([], g32.dtype), ratio)
            return (g32 * ratio).astype(g.dtype)

        return jax.tree.map(leaf, updates, params), state

    return GradientTransformation(init, update)
