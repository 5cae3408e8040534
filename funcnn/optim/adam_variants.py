"""Stages of Adam's relatives that optax (or optax.contrib) ships and torch does not: AdaBelief,
Yogi, Adan, NovoGrad, ADOPT, AdEMAMix and its simplified form, and optimistic gradients
(with optax's form of Adam's stage, for optimistic Adam).

Notation as in `transforms.py`: g is the incoming update, d the outgoing direction, t the
1-based step number, x̂ = x/(1 − βᵗ) a bias-corrected moment. Names, argument names and
defaults are optax's (`scale_by_belief`, `scale_by_yogi`, …), so an optax user's call works
unchanged. Buffers keep each leaf's dtype (unless `mu_dtype` says otherwise), arithmetic
runs in at least float32, step counters are int32 scalars. The aliases built from these
stages live in `aliases_optax.py`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.tree_util import PyTreeDef

from funcnn.optim._tree import check_state_dtype, const, unzip, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
    safe_increment,
    tree_zeros_like,
)
from funcnn.optim.moments import ScaleByAdamState

__all__ = [
    "MadgradState",
    "ScaleByAdanState",
    "ScaleByAdemamixState",
    "ScaleByAdoptState",
    "ScaleByBeliefState",
    "ScaleByNovogradState",
    "ScaleByOptimisticGradientState",
    "ScaleBySM3State",
    "ScaleBySimplifiedAdemamixState",
    "ScaleByYogiState",
    "scale_by_adan",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_belief",
    "scale_by_madgrad",
    "scale_by_novograd",
    "scale_by_optimistic_gradient",
    "scale_by_simplified_ademamix",
    "scale_by_sm3",
    "scale_by_yogi",
]

FloatOrSchedule = float | Callable[[Array], Any]


def _beta(value: float, name: str) -> float:
    return check_hyperparameter(value, name, high=1.0, high_inclusive=False)


def _bias(x: Array, beta: Array, t: Array) -> Array:
    """x̂ = x/(1 − βᵗ)."""
    return x / (1 - beta**t)


def _at(value: FloatOrSchedule, count: Array, like: Array) -> Array:
    """A number, or a schedule evaluated at `count`, as a 0-d array of `like`'s dtype."""
    return const(value(count) if callable(value) else value, like)


# --- AdaBelief --------------------------------------------------------------------------


class ScaleByBeliefState(NamedTuple):
    """count: int32 scalar, updates done. mu: the mean m. nu: the belief s (the running
    variance of g around m, ε_root included)."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    mu: Params
    nu: Params


def scale_by_belief(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdaBelief's direction (Zhuang et al. 2020, "AdaBelief Optimizer: Adapting Stepsizes by
    the Belief in Observed Gradients", Algorithm 2), as optax's `scale_by_belief`:

        mₜ = β₁·mₜ₋₁ + (1−β₁)·g
        sₜ = β₂·sₜ₋₁ + (1−β₂)·(g − mₜ)² + ε_root
        d  = m̂ₜ / (√ŝₜ + ε)                     m̂ₜ = mₜ/(1−β₁ᵗ), ŝₜ = sₜ/(1−β₂ᵗ)

    With `nesterov`, m̂ₜ → β₁·mₜ/(1−β₁ᵗ⁺¹) + (1−β₁)·g/(1−β₁ᵗ). s measures how far g strays
    from its prediction m: a gradient that agrees with its history gets a large step.
    `b1`, `b2` ∈ [0, 1); `eps`, `eps_root` ≥ 0 (ε_root enters s itself, as in the paper).
    """
    b1, b2 = _beta(b1, "b1"), _beta(b2, "b2")
    eps = check_hyperparameter(eps, "eps")
    eps_root = check_hyperparameter(eps_root, "eps_root")

    def init(params: Params) -> ScaleByBeliefState:
        zeros = tree_zeros_like(params)
        return ScaleByBeliefState(jnp.zeros([], jnp.int32), zeros, tree_zeros_like(params))

    def update(updates: Updates, state: ScaleByBeliefState, params: Params | None = None, **extra):
        del params, extra
        count = safe_increment(state.count)  # t

        def leaf(g: Array, m: Array, s: Array) -> tuple[Array, Array, Array]:
            g32 = upcast(g)
            beta1, beta2 = const(b1, g32), const(b2, g32)
            t = count.astype(g32.dtype)
            m_new = beta1 * upcast(m) + (1 - beta1) * g32
            s_new = beta2 * upcast(s) + (1 - beta2) * jnp.square(g32 - m_new)
            s_new = s_new + const(eps_root, g32)
            if nesterov:
                m_hat = beta1 * _bias(m_new, beta1, t + 1) + (1 - beta1) * _bias(g32, beta1, t)
            else:
                m_hat = _bias(m_new, beta1, t)
            d = m_hat / (jnp.sqrt(_bias(s_new, beta2, t)) + const(eps, g32))
            return d.astype(g.dtype), m_new.astype(m.dtype), s_new.astype(s.dtype)

        triples = jax.tree.map(leaf, updates, state.mu, state.nu)
        updates, mu, nu = unzip(triples, updates, 3)
        return updates, ScaleByBeliefState(count, mu, nu)

    return GradientTransformation(init, update)


# --- Yogi -------------------------------------------------------------------------------


class ScaleByYogiState(NamedTuple):
    """count: int32 scalar. mu: the mean m. nu: Yogi's second moment v (both start at
    `initial_accumulator_value`)."""

    count: Array  # type: ignore[assignment]
    mu: Params
    nu: Params


def scale_by_yogi(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
    eps_root: float = 0.0,
    initial_accumulator_value: float = 1e-6,
) -> GradientTransformation:
    """Yogi's direction (Zaheer et al. 2018, "Adaptive Methods for Nonconvex Optimization",
    Algorithm 2), as optax's `scale_by_yogi`:

        m₀ = v₀ = initial_accumulator_value
        mₜ = β₁·mₜ₋₁ + (1−β₁)·g
        vₜ = vₜ₋₁ − (1−β₂)·sign(vₜ₋₁ − g²)·g²
        d  = m̂ₜ / (√(v̂ₜ + ε_root) + ε)

    Where Adam moves v a fraction (1−β₂) of the way to g², Yogi moves it by (1−β₂)·g²
    towards it, so v cannot collapse after a burst of large gradients. optax's bias
    correction (the paper has none) is kept so optax users get the same steps.
    """
    b1, b2 = _beta(b1, "b1"), _beta(b2, "b2")
    eps = check_hyperparameter(eps, "eps")
    eps_root = check_hyperparameter(eps_root, "eps_root")
    initial = check_hyperparameter(initial_accumulator_value, "initial_accumulator_value")

    def init(params: Params) -> ScaleByYogiState:
        def full(p: Array) -> Array:
            return jnp.full(jnp.shape(p), initial, jnp.result_type(p))

        return ScaleByYogiState(
            jnp.zeros([], jnp.int32), jax.tree.map(full, params), jax.tree.map(full, params)
        )

    def update(updates: Updates, state: ScaleByYogiState, params: Params | None = None, **extra):
        del params, extra
        count = safe_increment(state.count)

        def leaf(g: Array, m: Array, v: Array) -> tuple[Array, Array, Array]:
            g32, v32 = upcast(g), upcast(v)
            beta1, beta2 = const(b1, g32), const(b2, g32)
            t = count.astype(g32.dtype)
            g2 = g32 * g32
            m_new = beta1 * upcast(m) + (1 - beta1) * g32
            v_new = v32 - (1 - beta2) * jnp.sign(v32 - g2) * g2
            denom = jnp.sqrt(_bias(v_new, beta2, t) + const(eps_root, g32)) + const(eps, g32)
            d = _bias(m_new, beta1, t) / denom
            return d.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        updates, mu, nu = unzip(jax.tree.map(leaf, updates, state.mu, state.nu), updates, 3)
        return updates, ScaleByYogiState(count, mu, nu)

    return GradientTransformation(init, update)


# --- Adan -------------------------------------------------------------------------------


class ScaleByAdanState(NamedTuple):
    """m: mean of g. v: mean of the gradient difference Δ. n: mean of (g + (1−β₂)Δ)².
    g: the previous gradient. t: int32 scalar, updates done (optax's field names)."""

    m: Params
    v: Params
    n: Params
    g: Params
    t: Array


def scale_by_adan(
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> GradientTransformation:
    """Adan's direction (Xie et al. 2022, "Adan: Adaptive Nesterov Momentum Algorithm",
    Algorithm 1 without its restart), as optax's `scale_by_adan`:

        Δₜ = g − gₜ₋₁   (Δ₁ = 0)
        mₜ = β₁·mₜ₋₁ + (1−β₁)·g,   vₜ = β₂·vₜ₋₁ + (1−β₂)·Δₜ
        nₜ = β₃·nₜ₋₁ + (1−β₃)·(g + (1−β₂)·Δₜ)²
        d  = (m̂ₜ + (1−β₂)·v̂ₜ) / (√(n̂ₜ + ε_root) + ε)

    The paper's β's are optax's 1 − β (optax's b1 = 0.98 is the paper's β₁ = 0.02).
    v tracks how the gradient changes, a cheap Nesterov look-ahead.
    """
    b1, b2, b3 = _beta(b1, "b1"), _beta(b2, "b2"), _beta(b3, "b3")
    eps = check_hyperparameter(eps, "eps")
    eps_root = check_hyperparameter(eps_root, "eps_root")

    def init(params: Params) -> ScaleByAdanState:
        return ScaleByAdanState(
            tree_zeros_like(params),
            tree_zeros_like(params),
            tree_zeros_like(params),
            tree_zeros_like(params),
            jnp.zeros([], jnp.int32),
        )

    def update(updates: Updates, state: ScaleByAdanState, params: Params | None = None, **extra):
        del params, extra
        count = safe_increment(state.t)

        def leaf(g: Array, m: Array, v: Array, n: Array, prev: Array):
            g32 = upcast(g)
            beta1, beta2, beta3 = const(b1, g32), const(b2, g32), const(b3, g32)
            t = count.astype(g32.dtype)
            diff = jnp.where(state.t == 0, jnp.zeros_like(g32), g32 - upcast(prev))
            m_new = beta1 * upcast(m) + (1 - beta1) * g32
            v_new = beta2 * upcast(v) + (1 - beta2) * diff
            n_new = beta3 * upcast(n) + (1 - beta3) * jnp.square(g32 + (1 - beta2) * diff)
            numerator = _bias(m_new, beta1, t) + (1 - beta2) * _bias(v_new, beta2, t)
            denom = jnp.sqrt(_bias(n_new, beta3, t) + const(eps_root, g32)) + const(eps, g32)
            return (
                (numerator / denom).astype(g.dtype),
                m_new.astype(m.dtype),
                v_new.astype(v.dtype),
                n_new.astype(n.dtype),
                g.astype(prev.dtype),
            )

        out = jax.tree.map(leaf, updates, state.m, state.v, state.n, state.g)
        updates, m, v, n, prev = unzip(out, updates, 5)
        return updates, ScaleByAdanState(m, v, n, prev, count)

    return GradientTransformation(init, update)


# --- NovoGrad ---------------------------------------------------------------------------


class ScaleByNovogradState(NamedTuple):
    """count: int32 scalar. mu: the momentum m (shaped like the params). nu: one 0-d second
    moment per leaf (the running mean of ‖g‖² over the leaf)."""

    count: Array  # type: ignore[assignment]
    mu: Params
    nu: Params


def scale_by_novograd(
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """NovoGrad's direction (Ginsburg et al. 2019, "Stochastic Gradient Methods with
    Layer-wise Adaptive Moments for Training of Deep Networks", Algorithm 1), as optax's
    `scale_by_novograd`, per parameter leaf l (norms over the leaf):

        νₗ₁ = ‖gₗ‖²,   νₗₜ = β₂·νₗₜ₋₁ + (1−β₂)·‖gₗ‖²                 (one number per leaf)
        rₗ = gₗ/(√(νₗₜ + ε_root) + ε) + λ·θₗ                       (weight_decay = λ)
        mₗ₁ = rₗ,  mₗₜ = β₁·mₗₜ₋₁ + rₗ;                d = mₜ

    No bias correction (the first step sets ν and m exactly). Needs the params (for λθ).
    """
    b1, b2 = _beta(b1, "b1"), _beta(b2, "b2")
    eps = check_hyperparameter(eps, "eps")
    eps_root = check_hyperparameter(eps_root, "eps_root")
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")

    def init(params: Params) -> ScaleByNovogradState:
        nu = jax.tree.map(lambda p: jnp.zeros([], jnp.result_type(p)), params)
        return ScaleByNovogradState(jnp.zeros([], jnp.int32), tree_zeros_like(params, mu_dtype), nu)

    def update(
        updates: Updates, state: ScaleByNovogradState, params: Params | None = None, **extra
    ):
        del extra
        if params is None:
            raise ValueError(
                "scale_by_novograd needs the params: call update(grads, state, params)."
            )
        first = state.count == 0

        def leaf(g: Array, p: Array, m: Array, nu: Array) -> tuple[Array, Array, Array]:
            g32 = upcast(g)
            beta1, beta2 = const(b1, g32), const(b2, g32)
            norm_sq = jnp.sum(g32 * g32)  # ()
            nu_new = jnp.where(first, norm_sq, beta2 * upcast(nu) + (1 - beta2) * norm_sq)
            r = g32 / (jnp.sqrt(nu_new + const(eps_root, g32)) + const(eps, g32))
            r = r + const(weight_decay, g32) * upcast(p).astype(g32.dtype)
            m_new = jnp.where(first, r, beta1 * upcast(m) + r)
            return m_new.astype(g.dtype), m_new.astype(m.dtype), nu_new.astype(nu.dtype)

        out = jax.tree.map(leaf, updates, params, state.mu, state.nu)
        updates, mu, nu = unzip(out, updates, 3)
        return updates, ScaleByNovogradState(safe_increment(state.count), mu, nu)

    return GradientTransformation(init, update)


# --- ADOPT ------------------------------------------------------------------------------


class ScaleByAdoptState(NamedTuple):
    """count: int32 scalar. mu: the momentum m of normalized gradients. nu: the second
    moment v (of the gradients up to the previous step, when used)."""

    count: Array  # type: ignore[assignment]
    mu: Params
    nu: Params


def scale_by_adopt(
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[Array], Array] = lambda x: x**0.25,
) -> GradientTransformation:
    """ADOPT's direction (Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any
    β₂ with the Optimal Rate", Algorithm 2), as optax.contrib's `scale_by_adopt`:

        t = 1:  v₁ = g²,  m₁ = 0,  d = 0                         (the first step only measures)
        t > 1:  c = clip(g / max(√vₜ₋₁, ε), ±clip_value_fn(t−1))  (no clip without use_clipping)
                mₜ = β₁·mₜ₋₁ + (1−β₁)·c,   vₜ = β₂·vₜ₋₁ + (1−β₂)·g²
                d  = mₜ,  or β₁·mₜ + (1−β₁)·c with nesterov

    g is normalized by the second moment of *earlier* gradients, which removes Adam's
    correlation between g and its own denominator (the paper's fix for non-convergence).
    The default clip bound (t−1)^¼ is optax's.
    """
    b1, b2 = _beta(b1, "b1"), _beta(b2, "b2")
    eps = check_hyperparameter(eps, "eps")

    def init(params: Params) -> ScaleByAdoptState:
        return ScaleByAdoptState(
            jnp.zeros([], jnp.int32), tree_zeros_like(params, mu_dtype), tree_zeros_like(params)
        )

    def update(updates: Updates, state: ScaleByAdoptState, params: Params | None = None, **extra):
        del params, extra
        first = state.count == 0

        def leaf(g: Array, m: Array, v: Array) -> tuple[Array, Array, Array]:
            g32, v32 = upcast(g), upcast(v)
            beta1 = jnp.where(first, jnp.ones([], g32.dtype), const(b1, g32))
            beta2 = jnp.where(first, jnp.zeros([], g32.dtype), const(b2, g32))
            c = g32 / jnp.maximum(jnp.sqrt(v32), const(eps, g32))
            if use_clipping:
                bound = const(clip_value_fn(state.count.astype(g32.dtype)), g32)
                c = jnp.clip(c, -bound, bound)
            m_new = beta1 * upcast(m) + (1 - beta1) * c
            v_new = beta2 * v32 + (1 - beta2) * g32 * g32
            d = beta1 * m_new + (1 - beta1) * c if nesterov else m_new
            return d.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        updates, mu, nu = unzip(jax.tree.map(leaf, updates, state.mu, state.nu), updates, 3)
        return updates, ScaleByAdoptState(safe_increment(state.count), mu, nu)

    return GradientTransformation(init, update)


# --- AdEMAMix ---------------------------------------------------------------------------


class ScaleByAdemamixState(NamedTuple):
    """count, count_m2: int32 scalars. m1: the fast mean. m2: the slow mean. nu: the second
    moment (optax's fields)."""

    count: Array  # type: ignore[assignment]
    count_m2: Array
    m1: Params
    m2: Params
    nu: Params


def scale_by_ademamix(
    b1: float = 0.9,
    b2: float = 0.999,
    b3: FloatOrSchedule = 0.9999,
    alpha: FloatOrSchedule = 6.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """AdEMAMix's direction (Pagliardini et al. 2024, "The AdEMAMix Optimizer: Better,
    Faster, Older", Algorithm 1), as optax.contrib's `scale_by_ademamix`:

        m₁ = β₁·m₁ + (1−β₁)·g        (fast EMA, bias-corrected)
        m₂ = β₃·m₂ + (1−β₃)·g        (slow EMA, not corrected)
        ν  = β₂·ν  + (1−β₂)·g²
        d  = (m̂₁ + α·m₂) / (√(ν̂ + ε_root) + ε)

    `b3` and `alpha` may be schedules of the step count (0 first), the paper's warmups.
    optax's stage default α = 6 differs from its alias's α = 5; both are kept.
    """
    b1, b2 = _beta(b1, "b1"), _beta(b2, "b2")
    if not callable(b3):
        b3 = _beta(b3, "b3")
    if not callable(alpha):
        alpha = check_hyperparameter(alpha, "alpha")
    eps = check_hyperparameter(eps, "eps")
    eps_root = check_hyperparameter(eps_root, "eps_root")

    def init(params: Params) -> ScaleByAdemamixState:
        zero = jnp.zeros([], jnp.int32)
        return ScaleByAdemamixState(
            zero,
            zero,
            tree_zeros_like(params, mu_dtype),
            tree_zeros_like(params, mu_dtype),
            tree_zeros_like(params, mu_dtype),
        )

    def update(
        updates: Updates, state: ScaleByAdemamixState, params: Params | None = None, **extra
    ):
        del params, extra
        count = safe_increment(state.count)

        def leaf(g: Array, m1: Array, m2: Array, nu: Array):
            g32 = upcast(g)
            beta1, beta2 = const(b1, g32), const(b2, g32)
            beta3, a = _at(b3, state.count_m2, g32), _at(alpha, state.count_m2, g32)
            t = count.astype(g32.dtype)
            m1_new = beta1 * upcast(m1) + (1 - beta1) * g32
            m2_new = beta3 * upcast(m2) + (1 - beta3) * g32
            nu_new = beta2 * upcast(nu) + (1 - beta2) * g32 * g32
            denom = jnp.sqrt(_bias(nu_new, beta2, t) + const(eps_root, g32)) + const(eps, g32)
            d = (_bias(m1_new, beta1, t) + a * m2_new) / denom
            return (
                d.astype(g.dtype),
                m1_new.astype(m1.dtype),
                m2_new.astype(m2.dtype),
                nu_new.astype(nu.dtype),
            )

        out = jax.tree.map(leaf, updates, state.m1, state.m2, state.nu)
        updates, m1, m2, nu = unzip(out, updates, 4)
        return updates, ScaleByAdemamixState(count, safe_increment(state.count_m2), m1, m2, nu)

    return GradientTransformation(init, update)


class ScaleBySimplifiedAdemamixState(NamedTuple):
    """t: int32 scalar. m: the undamped momentum. n: the second moment (optax's fields)."""

    t: Array
    m: Params
    n: Params


def scale_by_simplified_ademamix(
    b1: float = 0.99,
    b2: float = 0.95,
    alpha: FloatOrSchedule = 0.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> GradientTransformation:
    """Simplified AdEMAMix (Morwani et al. 2024, "Connections between Schedule-Free
    Optimizers, AdEMAMix, and Accelerated SGD Variants"), as optax.contrib's:

        m = β₁·m + g                 (a sum, not a mean: no 1−β₁)
        n = β₂·n + (1−β₂)·g²
        d = (m + α·g) / (√(n̂ + ε_root) + ε)

    `alpha` may be a schedule of the step count (0 first).
    """
    b1, b2 = _beta(b1, "b1"), _beta(b2, "b2")
    if not callable(alpha):
        alpha = check_hyperparameter(alpha, "alpha")
    eps = check_hyperparameter(eps, "eps")
    eps_root = check_hyperparameter(eps_root, "eps_root")

    def init(params: Params) -> ScaleBySimplifiedAdemamixState:
        return ScaleBySimplifiedAdemamixState(
            jnp.zeros([], jnp.int32), tree_zeros_like(params), tree_zeros_like(params)
        )

    def update(
        updates: Updates,
        state: ScaleBySimplifiedAdemamixState,
        params: Params | None = None,
        **extra,
    ):
        del params, extra
        count = safe_increment(state.t)

        def leaf(g: Array, m: Array, n: Array) -> tuple[Array, Array, Array]:
            g32 = upcast(g)
            beta1, beta2, a = const(b1, g32), const(b2, g32), _at(alpha, state.t, g32)
            t = count.astype(g32.dtype)
            m_new = beta1 * upcast(m) + g32
            n_new = beta2 * upcast(n) + (1 - beta2) * g32 * g32
            denom = jnp.sqrt(_bias(n_new, beta2, t) + const(eps_root, g32)) + const(eps, g32)
            d = (m_new + a * g32) / denom
            return d.astype(g.dtype), m_new.astype(m.dtype), n_new.astype(n.dtype)

        updates, m, n = unzip(jax.tree.map(leaf, updates, state.m, state.n), updates, 3)
        return updates, ScaleBySimplifiedAdemamixState(count, m, n)

    return GradientTransformation(init, update)


# --- optimistic gradients -----------------------------------------------------------------


class ScaleByOptimisticGradientState(NamedTuple):
    """is_initial_step: bool scalar. previous_gradient: g of the previous step."""

    is_initial_step: Array
    previous_gradient: Params


def scale_by_optimistic_gradient(alpha: float = 1.0, beta: float = 1.0) -> GradientTransformation:
    """Optimistic gradient (Daskalakis et al. 2018, "Training GANs with Optimism"; Mokhtari
    et al. 2020), as optax's `scale_by_optimistic_gradient`:

        d = (α + β)·g − β·gₜ₋₁        (gₜ₋₁ = g at the first step, optax's fix for d₁)

    The extrapolation against the last gradient damps the rotation of min-max games.
    """
    alpha = check_hyperparameter(alpha, "alpha")
    beta = check_hyperparameter(beta, "beta")

    def init(params: Params) -> ScaleByOptimisticGradientState:
        return ScaleByOptimisticGradientState(jnp.asarray(True), tree_zeros_like(params))

    def update(
        updates: Updates,
        state: ScaleByOptimisticGradientState,
        params: Params | None = None,
        **extra,
    ):
        del params, extra

        def leaf(g: Array, prev: Array) -> tuple[Array, Array]:
            g32 = upcast(g)
            prev32 = jnp.where(state.is_initial_step, g32, upcast(prev))
            a, b = const(alpha, g32), const(beta, g32)
            return ((a + b) * g32 - b * prev32).astype(g.dtype), g.astype(prev.dtype)

        updates, prev = unzip(jax.tree.map(leaf, updates, state.previous_gradient), updates)
        return updates, ScaleByOptimisticGradientState(jnp.asarray(False), prev)

    return GradientTransformation(init, update)


# --- optimistic Adam: Adam's ratio, then the optimistic extrapolation ---------------------


def _scale_by_adam_nesterov(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> GradientTransformation:
    """Adam's ratio with optax's `eps_root` and Nesterov look-ahead (optax's `scale_by_adam`
    with `nesterov`), the first stage of `optimistic_adam`, t counting from 1:

        mₜ = β₁·mₜ₋₁ + (1−β₁)·g,   vₜ = β₂·vₜ₋₁ + (1−β₂)·g²,   v̂ = vₜ/(1−β₂ᵗ)
        m̂ = β₁·mₜ/(1−β₁ᵗ⁺¹) + (1−β₁)·g/(1−β₁ᵗ)     with nesterov (else m̂ = mₜ/(1−β₁ᵗ))
        r = m̂/(√(v̂ + ε_root) + ε)

    `b1`, `b2` ∈ [0, 1); `eps`, `eps_root` ≥ 0; `mu_dtype` stores m in another floating dtype.
    The state is `ScaleByAdamState` (count, mu, nu), optax's. funcnn's `scale_by_adam` is
    the torch-shaped stage (no ε_root, no look-ahead); this one is optax's, for its aliases.
    """
    b1, b2 = _beta(b1, "b1"), _beta(b2, "b2")
    eps = check_hyperparameter(eps, "eps")
    eps_root = check_hyperparameter(eps_root, "eps_root")
    check_state_dtype(mu_dtype, "mu_dtype")
    if not isinstance(nesterov, bool):
        raise TypeError(f"nesterov must be True or False, got nesterov={nesterov!r}.")

    def init(params: Params) -> ScaleByAdamState:
        count = jnp.zeros([], jnp.int32)  # () int32
        return ScaleByAdamState(count, tree_zeros_like(params, mu_dtype), tree_zeros_like(params))

    def update(updates: Updates, state: ScaleByAdamState, params: Params | None = None, **extra):
        del params, extra
        count = safe_increment(state.count)  # t

        def leaf(g: Array, m: Array, v: Array) -> tuple[Array, Array, Array]:
            g32 = upcast(g)
            beta1, beta2 = const(b1, g32), const(b2, g32)
            t = count.astype(g32.dtype)
            m_new = beta1 * upcast(m).astype(g32.dtype) + (1 - beta1) * g32
            v_new = beta2 * upcast(v) + (1 - beta2) * g32 * g32
            if nesterov:
                m_hat = beta1 * _bias(m_new, beta1, t + 1) + (1 - beta1) * _bias(g32, beta1, t)
            else:
                m_hat = _bias(m_new, beta1, t)
            denom = jnp.sqrt(_bias(v_new, beta2, t) + const(eps_root, g32)) + const(eps, g32)
            return (m_hat / denom).astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        updates, mu, nu = unzip(jax.tree.map(leaf, updates, state.mu, state.nu), updates, 3)
        return updates, ScaleByAdamState(count, mu, nu)

    return GradientTransformation(init, update)


# --- MADGRAD --------------------------------------------------------------------------------


class MadgradState(NamedTuple):
    """count: int32 scalar, updates done. grad_sum_sq: S, the weighted sum of g². s: the
    weighted sum of g. x0: θ₀. (optax.contrib's fields.)"""

    count: Array  # type: ignore[assignment]
    grad_sum_sq: Params
    s: Params
    x0: Params


def scale_by_madgrad(
    learning_rate: FloatOrSchedule, momentum: float = 0.9, eps: float = 1e-6
) -> GradientTransformation:
    """MADGRAD (Defazio & Jelassi 2021, "Adaptivity without Compromise: A Momentumized,
    Adaptive, Dual Averaged Gradient Method for Stochastic Optimization", Algorithm 1), as
    optax.contrib's `scale_by_madgrad`, at update k = 0, 1, … with η = learning_rate(k):

        λₖ = (η + ε)·√(k + 1)
        S ← S + λₖ·g²,   s ← s + λₖ·g
        z = θ₀ − s/(∛S + ε)                     (dual averaging from the initial point)
        θ ← (1 − μ)·z + μ·θ,   i.e. d = (1 − μ)·(z − θ)     (momentum = μ)

    The stage carries the learning rate itself (d is the whole step: no
    `scale_by_learning_rate` after it). Needs the params.
    """
    momentum = check_hyperparameter(momentum, "momentum", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps")
    if not callable(learning_rate):
        learning_rate = check_hyperparameter(learning_rate, "learning_rate")

    def init(params: Params) -> MadgradState:
        return MadgradState(
            jnp.zeros([], jnp.int32),
            tree_zeros_like(params),
            tree_zeros_like(params),
            jax.tree.map(jnp.copy, params),
        )

    def update(updates: Updates, state: MadgradState, params: Params | None = None, **extra):
        del extra
        if params is None:
            raise ValueError(
                "scale_by_madgrad needs the params: call update(grads, state, params)."
            )

        def leaf(g: Array, p: Array, big_s: Array, s: Array, x0: Array):
            g32 = upcast(g)
            lr = _at(learning_rate, state.count, g32)
            weight = (lr + const(eps, g32)) * jnp.sqrt((state.count + 1).astype(g32.dtype))
            big_s_new = upcast(big_s) + weight * g32 * g32
            s_new = upcast(s) + weight * g32
            z = upcast(x0) - s_new / (jnp.cbrt(big_s_new) + const(eps, g32))
            mu = const(momentum, g32)
            p32 = upcast(p).astype(g32.dtype)
            d = (1 - mu) * z + mu * p32 - p32
            return d.astype(g.dtype), big_s_new.astype(big_s.dtype), s_new.astype(s.dtype)

        out = jax.tree.map(leaf, updates, params, state.grad_sum_sq, state.s, state.x0)
        updates, big_s, s = unzip(out, updates, 3)
        return updates, MadgradState(safe_increment(state.count), big_s, s, state.x0)

    return GradientTransformation(init, update)


# --- SM3 ------------------------------------------------------------------------------------


class ScaleBySM3State(NamedTuple):
    """mu: per leaf, a list of one accumulator per axis (axis i: shape (dᵢ,)). nu: the
    momentum m, shaped like the params. (optax's fields.)"""

    mu: Any
    nu: Params


def scale_by_sm3(b1: float = 0.9, b2: float = 1.0, eps: float = 1e-8) -> GradientTransformation:
    """SM3's direction (Anil et al. 2019, "Memory-Efficient Adaptive Optimization", SM3-II),
    as optax's `scale_by_sm3`, per leaf of rank r ≥ 1 with one accumulator μᵢ per axis:

        a = c·g² + β₂·minᵢ μᵢ   (μᵢ broadcast along the other axes; a vector uses μ₀ itself)
        μᵢ ← max of a over every axis but i               (the vector: μ₀ ← a)
        u  = g/√(a + ε) where a > 0, else 0;   m = (1−β₁)·u + β₁·m;   d = m

    c = 1 − β₂, or 1 when β₂ = 1 (the paper's sum). Memory: Σᵢdᵢ numbers per leaf instead of
    Πᵢdᵢ. 0-d leaves are refused (optax fails on them too).
    """
    b1 = check_hyperparameter(b1, "b1", high=1.0, high_inclusive=False)
    b2 = check_hyperparameter(b2, "b2", high=1.0)
    eps = check_hyperparameter(eps, "eps")
    coefficient = 1.0 if b2 == 1.0 else 1.0 - b2

    def init(params: Params) -> ScaleBySM3State:
        for path, p in jax.tree_util.tree_leaves_with_path(params):
            if jnp.ndim(p) == 0:
                raise ValueError(
                    f"scale_by_sm3 needs leaves of rank ≥ 1, params{jax.tree_util.keystr(path)} "
                    "is a scalar."
                )
        mu = jax.tree.map(
            lambda p: [jnp.zeros((n,), jnp.result_type(p)) for n in jnp.shape(p)], params
        )
        return ScaleBySM3State(mu, tree_zeros_like(params))

    def update(updates: Updates, state: ScaleBySM3State, params: Params | None = None, **extra):
        del params, extra
        treedef: PyTreeDef = jax.tree.structure(updates)
        leaves, mus, nus = [], [], []
        for g, mu, m in zip(
            jax.tree.leaves(updates),
            treedef.flatten_up_to(state.mu),
            jax.tree.leaves(state.nu),
            strict=True,
        ):
            g32 = upcast(g)
            if g32.ndim < 2:
                previous = upcast(mu[0])
            else:
                shaped = [
                    jnp.reshape(upcast(v), [n if j == i else 1 for j, n in enumerate(g32.shape)])
                    for i, v in enumerate(mu)
                ]
                previous = functools.reduce(jnp.minimum, shaped)
            a = const(coefficient, g32) * g32 * g32 + const(b2, g32) * previous
            u = jnp.where(a > 0, g32 * jax.lax.rsqrt(a + const(eps, g32)), jnp.zeros_like(g32))
            beta1 = const(b1, g32)
            m_new = (1 - beta1) * u + beta1 * upcast(m)
            if g32.ndim < 2:
                new_mu = [a.astype(mu[0].dtype)]
            else:
                axes = range(g32.ndim)
                new_mu = [
                    jnp.max(a, axis=tuple(j for j in axes if j != i)).astype(mu[i].dtype)
                    for i in axes
                ]
            leaves.append(m_new.astype(g.dtype))
            mus.append(new_mu)
            nus.append(m_new.astype(m.dtype))
        return treedef.unflatten(leaves), ScaleBySM3State(
            treedef.unflatten(mus), treedef.unflatten(nus)
        )

    return GradientTransformation(init, update)
