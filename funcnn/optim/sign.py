"""Sign-based directions: only the sign of something enters the step. Lion's sign of an
interpolated momentum (`scale_by_lion`, optax's) and Rprop's per-element step sizes grown
or shrunk by the sign of g·gₜ₋₁ (`scale_by_rprop`, torch.optim.Rprop's).

Notation: g is the incoming update (the gradient for the first stage), d the outgoing
direction, θ the parameters, t the 1-based step number, ηₜ the learning rate; only
`scale_by_learning_rate` carries the minus sign. Per-parameter buffers keep each leaf's
dtype (unless a `*_dtype` option says otherwise), arithmetic runs in at least float32
(bf16 leaves are upcast, the result cast back), step counters are int32 scalars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim._tree import check_state_dtype, const, tree_full_like, unzip, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
    safe_increment,
    tree_zeros_like,
)

__all__ = [
    "ScaleByLionState",
    "ScaleByRpropState",
    "check_pair",
    "check_rprop_bounds",
    "scale_by_lion",
    "scale_by_rprop",
]


# --- Lion ---------------------------------------------------------------------------------


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
    check_state_dtype(mu_dtype, "mu_dtype")

    def init(params: Params) -> ScaleByLionState:
        return ScaleByLionState(jnp.zeros([], jnp.int32), tree_zeros_like(params, mu_dtype))

    def update(updates: Updates, state: ScaleByLionState, params: Params | None = None):
        del params

        def leaf(g: Array, m: Array) -> tuple[Array, Array]:
            g32, m32 = upcast(g), upcast(m)
            beta1, beta2 = const(b1, g32), const(b2, g32)
            d = jnp.sign(beta1 * m32 + (1 - beta1) * g32)
            m_new = beta2 * m32 + (1 - beta2) * g32
            return d.astype(g.dtype), m_new.astype(m.dtype)

        updates, mu = unzip(jax.tree.map(leaf, updates, state.mu), updates)
        return updates, ScaleByLionState(safe_increment(state.count), mu)

    return GradientTransformation(init, update)


# --- Rprop --------------------------------------------------------------------------------


def check_pair(value: Any, name: str) -> tuple[float, float]:
    """A 2-tuple (or list) of real numbers, else TypeError/ValueError naming `name`."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(f"{name} must be a pair (a, b) of numbers, got {name}={value!r}.")
    if len(value) != 2:
        raise ValueError(
            f"{name} must be a pair (a, b) of two numbers, got {len(value)} values: "
            f"{name}={tuple(value)!r}."
        )
    return (
        check_hyperparameter(value[0], f"{name}[0]", low=-float("inf")),
        check_hyperparameter(value[1], f"{name}[1]", low=-float("inf")),
    )


class ScaleByRpropState(NamedTuple):
    """count: int32 scalar, updates done so far. prev: the previous (masked) gradient g̃ₜ₋₁;
    step_size: the per-element step sizes Δ (each shaped like the params)."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    prev: Params
    step_size: Params


def check_rprop_bounds(
    etas: Any, step_sizes: Any
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Validate Rprop's (η₋, η₊) with 0 < η₋ < 1 < η₊ and (Δmin, Δmax) with 0 ≤ Δmin ≤ Δmax."""
    eta_minus, eta_plus = check_pair(etas, "etas")
    if not 0 < eta_minus < 1 < eta_plus:
        raise ValueError(
            "etas must be (η₋, η₊) with 0 < η₋ < 1 < η₊ (torch's default is (0.5, 1.2)), "
            f"got etas={tuple(etas)!r}."
        )
    step_min, step_max = check_pair(step_sizes, "step_sizes")
    if not 0 <= step_min <= step_max:
        raise ValueError(
            "step_sizes must be (Δmin, Δmax) with 0 ≤ Δmin ≤ Δmax (torch's default is "
            f"(1e-6, 50)), got step_sizes={tuple(step_sizes)!r}."
        )
    return (eta_minus, eta_plus), (step_min, step_max)


def scale_by_rprop(
    initial_step_size: float = 1e-2,
    *,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
) -> GradientTransformation:
    """Resilient backpropagation (Riedmiller & Braun 1993; torch's variant, "Rprop−" without
    weight backtracking), elementwise, as torch.optim.Rprop:

        sₜ = sign(g·g̃ₜ₋₁),                                 g̃₀ = 0,  Δ₀ = `initial_step_size`
        Δₜ = clip(Δₜ₋₁·(η₊ if sₜ > 0, η₋ if sₜ < 0, 1 if sₜ = 0), Δmin, Δmax)
        g̃ₜ = 0 where sₜ < 0 else g                          (skip the step after a sign flip)
        d  = sign(g̃ₜ)·Δₜ

    `etas` = (η₋, η₊) with 0 < η₋ < 1 < η₊, `step_sizes` = (Δmin, Δmax) with
    0 ≤ Δmin ≤ Δmax. Only the sign of g matters; d is already a step length (the alias
    chains it with a unit learning rate for the sign flip). So the first step is
    d = Δ₀·sign(g). optax has no Rprop.
    """
    initial_step_size = check_hyperparameter(initial_step_size, "initial_step_size")
    (eta_minus, eta_plus), (step_min, step_max) = check_rprop_bounds(etas, step_sizes)

    def init(params: Params) -> ScaleByRpropState:
        return ScaleByRpropState(
            jnp.zeros([], jnp.int32),  # () int32
            tree_zeros_like(params),
            tree_full_like(params, initial_step_size),
        )

    def update(updates: Updates, state: ScaleByRpropState, params: Params | None = None):
        del params

        def leaf(g: Array, prev: Array, step: Array):
            g32 = upcast(g)
            s = jnp.sign(g32 * upcast(prev))  # torch's sign of the product (not of each)
            factor = jnp.where(
                s > 0, const(eta_plus, g32), jnp.where(s < 0, const(eta_minus, g32), 1)
            )
            step_new = jnp.clip(upcast(step) * factor, const(step_min, g32), const(step_max, g32))
            g_masked = jnp.where(s < 0, 0, g32)
            d = jnp.sign(g_masked) * step_new
            return d.astype(g.dtype), (g_masked.astype(prev.dtype), step_new.astype(step.dtype))

        pairs = jax.tree.map(leaf, updates, state.prev, state.step_size)
        updates, buffers = unzip(pairs, updates)
        prev, step_size = unzip(buffers, updates)
        return updates, ScaleByRpropState(safe_increment(state.count), prev, step_size)

    return GradientTransformation(init, update)
