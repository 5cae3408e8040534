"""Scaling by a running second moment alone (no first moment): d = g/(√s + ε) for some
accumulated s — RMSProp's running mean (`scale_by_rms`, optionally centered), Adagrad's
running sum (`scale_by_adagrad`), Adadelta's ratio of two running means
(`scale_by_adadelta`), and Adam's bias-corrected second moment without momentum
(`scale_by_adam_rms`, the base of schedule-free AdamW). The Adam family, which also keeps
a first moment, is in `moments.py`.

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

from funcnn.optim._tree import const, tree_full_like, unzip, upcast
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
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamRmsState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam_rms",
    "scale_by_rms",
]


# --- RMSProp ------------------------------------------------------------------------------


class ScaleByRmsState(NamedTuple):
    """nu: the running mean of squared gradients s (same shape/dtype as each param)."""

    nu: Params


class ScaleByRStdDevState(NamedTuple):
    """mu: running mean of gradients m; nu: running mean of squared gradients s."""

    mu: Params
    nu: Params


def scale_by_rms(
    decay: float = 0.9, eps: float = 1e-8, *, eps_in_sqrt: bool = False, centered: bool = False
) -> GradientTransformation:
    """RMSProp scaling (Hinton 2012, lecture 6e):

        sₜ = ρ·sₜ₋₁ + (1−ρ)·g²,                       s₀ = 0
        d  = g / (√sₜ + ε)          (PyTorch, default)
        d  = g / √(sₜ + ε)          (eps_in_sqrt=True: optax/TF convention)

    `centered=True` (Graves 2013) also tracks mₜ = ρ·mₜ₋₁ + (1−ρ)·g and uses the variance
    sₜ − mₜ² (clamped at 0 against rounding) in place of sₜ. `decay` is ρ ∈ [0, 1),
    `eps` is ε > 0. PyTorch's default ρ is 0.99, optax's is 0.9 (ours).
    """
    decay = check_hyperparameter(decay, "decay", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)

    def denominator(s: Array, g: Array) -> Array:
        e = const(eps, g)
        return jnp.sqrt(s + e) if eps_in_sqrt else jnp.sqrt(s) + e

    def init(params: Params) -> ScaleByRmsState | ScaleByRStdDevState:
        if centered:
            return ScaleByRStdDevState(tree_zeros_like(params), tree_zeros_like(params))
        return ScaleByRmsState(tree_zeros_like(params))

    def update(updates: Updates, state, params: Params | None = None):
        del params
        if not centered:

            def leaf(g: Array, s: Array):
                g32 = upcast(g)
                rho = const(decay, g32)
                s_new = rho * upcast(s) + (1 - rho) * g32 * g32
                return (g32 / denominator(s_new, g32)).astype(g.dtype), s_new.astype(s.dtype)

            updates, nu = unzip(jax.tree.map(leaf, updates, state.nu), updates)
            return updates, ScaleByRmsState(nu)

        def centered_leaf(g: Array, m: Array, s: Array):
            g32 = upcast(g)
            rho = const(decay, g32)
            m_new = rho * upcast(m) + (1 - rho) * g32
            s_new = rho * upcast(s) + (1 - rho) * g32 * g32
            variance = jnp.maximum(s_new - m_new * m_new, 0)
            d = g32 / denominator(variance, g32)
            return d.astype(g.dtype), (m_new.astype(m.dtype), s_new.astype(s.dtype))

        updates, moments = unzip(jax.tree.map(centered_leaf, updates, state.mu, state.nu), updates)
        mu, nu = unzip(moments, updates)
        return updates, ScaleByRStdDevState(mu, nu)

    return GradientTransformation(init, update)


# --- Adagrad ------------------------------------------------------------------------------


class ScaleByAdagradState(NamedTuple):
    """sum_of_squares: s, the running sum of squared gradients (shaped like the params)."""

    sum_of_squares: Params


def scale_by_adagrad(
    initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, eps_in_sqrt: bool = False
) -> GradientTransformation:
    """Adagrad's direction (Duchi, Hazan & Singer 2011), as torch.optim.Adagrad:

        sₜ = sₜ₋₁ + g²,        s₀ = `initial_accumulator_value` (≥ 0)
        d  = g / (√sₜ + ε)                                   (torch, default)
        d  = g / √(sₜ + ε)                                   (eps_in_sqrt=True: optax)

    `eps` is ε > 0. torch's defaults are s₀ = 0, ε = 1e-10 (ours); optax's `adagrad` uses
    s₀ = 0.1, ε = 1e-7 with ε inside the root — `eps_in_sqrt=True` with those values gives
    optax's step. torch's `lr_decay` is a learning-rate factor and lives in the alias.
    With s₀ = 0 the first step is d = g/(|g| + ε).
    """
    initial_accumulator_value = check_hyperparameter(
        initial_accumulator_value, "initial_accumulator_value"
    )
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)

    def init(params: Params) -> ScaleByAdagradState:
        return ScaleByAdagradState(tree_full_like(params, initial_accumulator_value))

    def update(updates: Updates, state: ScaleByAdagradState, params: Params | None = None):
        del params

        def leaf(g: Array, s: Array):
            g32 = upcast(g)
            e = const(eps, g32)
            s_new = upcast(s) + g32 * g32
            if eps_in_sqrt:
                # optax's scale_by_rss also zeroes the step where sₜ = 0; here g = 0 there
                # (s₀ ≥ 0), so g/√(0 + ε) is that same 0 and needs no branch.
                d = g32 / jnp.sqrt(s_new + e)
            else:
                d = g32 / (jnp.sqrt(s_new) + e)
            return d.astype(g.dtype), s_new.astype(s.dtype)

        updates, sums = unzip(jax.tree.map(leaf, updates, state.sum_of_squares), updates)
        return updates, ScaleByAdagradState(sums)

    return GradientTransformation(init, update)


# --- Adadelta -----------------------------------------------------------------------------


class ScaleByAdadeltaState(NamedTuple):
    """square_avg: running mean of g², E[g²]; acc_delta: running mean of d², E[Δ²]."""

    square_avg: Params
    acc_delta: Params


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta's direction (Zeiler 2012, Algorithm 1), as torch.optim.Adadelta:

        E[g²]ₜ = ρ·E[g²]ₜ₋₁ + (1−ρ)·g²,                  E[g²]₀ = 0
        d      = √(E[Δ²]ₜ₋₁ + ε) / √(E[g²]ₜ + ε) · g
        E[Δ²]ₜ = ρ·E[Δ²]ₜ₋₁ + (1−ρ)·d²,                  E[Δ²]₀ = 0

    `rho` is ρ ∈ [0, 1), `eps` is ε > 0. The paper has no learning rate (η = 1, torch's
    default); torch and optax multiply d by η afterwards and accumulate the *unscaled* d,
    as here. optax's `scale_by_adadelta` computes the same (its default ε is 1e-6 too).
    """
    rho = check_hyperparameter(rho, "rho", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)

    def init(params: Params) -> ScaleByAdadeltaState:
        return ScaleByAdadeltaState(tree_zeros_like(params), tree_zeros_like(params))

    def update(updates: Updates, state: ScaleByAdadeltaState, params: Params | None = None):
        del params

        def leaf(g: Array, s: Array, a: Array):
            g32, a32 = upcast(g), upcast(a)
            r, e = const(rho, g32), const(eps, g32)
            s_new = r * upcast(s) + (1 - r) * g32 * g32
            d = jnp.sqrt(a32 + e) / jnp.sqrt(s_new + e) * g32
            a_new = r * a32 + (1 - r) * d * d
            return d.astype(g.dtype), (s_new.astype(s.dtype), a_new.astype(a.dtype))

        pairs = jax.tree.map(leaf, updates, state.square_avg, state.acc_delta)
        updates, buffers = unzip(pairs, updates)
        square_avg, acc_delta = unzip(buffers, updates)
        return updates, ScaleByAdadeltaState(square_avg, acc_delta)

    return GradientTransformation(init, update)


# --- Adam's second moment alone ----------------------------------------------------------


class ScaleByAdamRmsState(NamedTuple):
    """count: int32 scalar, updates done so far (t − 1). nu: the second moment v, shaped
    like the params (each leaf's dtype)."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    nu: Params


def scale_by_adam_rms(b2: float = 0.999, eps: float = 1e-8) -> GradientTransformation:
    """Adam's direction without momentum, t counting from 1:

        vₜ = β₂·vₜ₋₁ + (1−β₂)·g²,   v₀ = 0,   v̂ = vₜ/(1−β₂ᵗ),   d = g/(√v̂ + ε)

    = `scale_by_adam(b1=0)` without its unused first moment (half the memory); optax's
    schedule-free AdamW uses `scale_by_rms(eps_in_sqrt=False, bias_correction=True)`, the
    same. `b2` = β₂ ∈ [0, 1), `eps` = ε > 0.
    """
    b2 = check_hyperparameter(b2, "b2", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)

    def init(params: Params) -> ScaleByAdamRmsState:
        return ScaleByAdamRmsState(jnp.zeros([], jnp.int32), tree_zeros_like(params))

    def update(updates: Updates, state: ScaleByAdamRmsState, params: Params | None = None):
        del params
        count = safe_increment(state.count)  # t

        def leaf(g: Array, v: Array) -> tuple[Array, Array]:
            g32 = upcast(g)
            beta2 = const(b2, g32)
            v_new = beta2 * upcast(v) + (1 - beta2) * g32 * g32
            v_hat = v_new / (1 - beta2 ** count.astype(g32.dtype))
            d = g32 / (jnp.sqrt(v_hat) + const(eps, g32))
            return d.astype(g.dtype), v_new.astype(v.dtype)

        updates, nu = unzip(jax.tree.map(leaf, updates, state.nu), updates)
        return updates, ScaleByAdamRmsState(count, nu)

    return GradientTransformation(init, update)
