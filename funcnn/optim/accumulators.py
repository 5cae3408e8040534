"""The stages behind torch.optim's other adaptive optimizers: each accumulates something
per parameter (squared gradients, step sizes, an average of the iterates) and turns the
gradient into a descent direction d. The aliases in `aliases.py` chain them with the usual
weight-decay and learning-rate stages.

Notation as in `transforms.py`: g is the incoming update, d the outgoing direction, θ the
parameters, t the 1-based step number, ηₜ the learning rate; only `scale_by_learning_rate`
carries the minus sign. Per-parameter buffers keep each leaf's dtype, arithmetic runs in at
least float32, step counters are int32 scalars and the one scalar accumulator (NAdam's
∏μ) uses the widest float dtype among the params.

Each stage follows torch.optim's `_single_tensor_*` algorithm for the same optimizer (read
from its documented pseudo-code); where optax computes the same method differently, the
docstring says how.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim.base import (
    Array,
    GradientTransformation,
    OptState,
    Params,
    Updates,
    check_hyperparameter,
    find_state,
    safe_increment,
    tree_widest_float,
    tree_zeros_like,
)
from funcnn.optim.transforms import _const, _unzip, _upcast

__all__ = [
    "RADAM_THRESHOLD",
    "AverageParamsState",
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamaxState",
    "ScaleByNadamState",
    "ScaleByRadamState",
    "ScaleByRpropState",
    "average_params",
    "averaged_params",
    "check_pair",
    "check_rprop_bounds",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adamax",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rprop",
]


def _tree_full_like(tree: Params, value: float) -> Params:
    """Fresh buffers shaped like each leaf, filled with `value`, in each leaf's dtype."""
    return jax.tree.map(lambda x: jnp.full(jnp.shape(x), value, jnp.result_type(x)), tree)


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


# --- Adagrad ----------------------------------------------------------------------------


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
        return ScaleByAdagradState(_tree_full_like(params, initial_accumulator_value))

    def update(updates: Updates, state: ScaleByAdagradState, params: Params | None = None):
        del params

        def leaf(g: Array, s: Array):
            g32 = _upcast(g)
            e = _const(eps, g32)
            s_new = _upcast(s) + g32 * g32
            if eps_in_sqrt:
                # optax's scale_by_rss also zeroes the step where sₜ = 0; here g = 0 there
                # (s₀ ≥ 0), so g/√(0 + ε) is that same 0 and needs no branch.
                d = g32 / jnp.sqrt(s_new + e)
            else:
                d = g32 / (jnp.sqrt(s_new) + e)
            return d.astype(g.dtype), s_new.astype(s.dtype)

        updates, sums = _unzip(jax.tree.map(leaf, updates, state.sum_of_squares), updates)
        return updates, ScaleByAdagradState(sums)

    return GradientTransformation(init, update)


# --- Adadelta ---------------------------------------------------------------------------


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
            g32, a32 = _upcast(g), _upcast(a)
            r, e = _const(rho, g32), _const(eps, g32)
            s_new = r * _upcast(s) + (1 - r) * g32 * g32
            d = jnp.sqrt(a32 + e) / jnp.sqrt(s_new + e) * g32
            a_new = r * a32 + (1 - r) * d * d
            return d.astype(g.dtype), (s_new.astype(s.dtype), a_new.astype(a.dtype))

        pairs = jax.tree.map(leaf, updates, state.square_avg, state.acc_delta)
        updates, buffers = _unzip(pairs, updates)
        square_avg, acc_delta = _unzip(buffers, updates)
        return updates, ScaleByAdadeltaState(square_avg, acc_delta)

    return GradientTransformation(init, update)


# --- Adamax -----------------------------------------------------------------------------


class ScaleByAdamaxState(NamedTuple):
    """count: int32 scalar, updates done so far (t − 1). mu: first moment m; nu: the
    exponentially weighted infinity norm u (each shaped like the params)."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    mu: Params
    nu: Params


def scale_by_adamax(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    """Adamax's direction (Kingma & Ba 2015, §7.1, Algorithm 2), as torch.optim.Adamax:

        mₜ = β₁·mₜ₋₁ + (1−β₁)·g,   uₜ = max(β₂·uₜ₋₁, |g| + ε),   m₀ = u₀ = 0
        d  = mₜ / ((1−β₁ᵗ)·uₜ)

    `b1` = β₁, `b2` = β₂ ∈ [0, 1), `eps` = ε > 0. torch puts ε inside the max (as here);
    optax's `scale_by_adamax` uses uₜ = max(β₂·uₜ₋₁, |g|) and d = m̂/(uₜ + ε), which differs
    where |g| is small. The paper has no ε.
    """
    b1 = check_hyperparameter(b1, "b1", high=1.0, high_inclusive=False)
    b2 = check_hyperparameter(b2, "b2", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)

    def init(params: Params) -> ScaleByAdamaxState:
        count = jnp.zeros([], jnp.int32)  # () int32
        return ScaleByAdamaxState(count, tree_zeros_like(params), tree_zeros_like(params))

    def update(updates: Updates, state: ScaleByAdamaxState, params: Params | None = None):
        del params
        count = safe_increment(state.count)  # t

        def leaf(g: Array, m: Array, u: Array):
            g32 = _upcast(g)
            beta1, beta2 = _const(b1, g32), _const(b2, g32)
            t = count.astype(g32.dtype)
            m_new = beta1 * _upcast(m) + (1 - beta1) * g32
            u_new = jnp.maximum(beta2 * _upcast(u), jnp.abs(g32) + _const(eps, g32))
            d = m_new / ((1 - beta1**t) * u_new)
            return d.astype(g.dtype), (m_new.astype(m.dtype), u_new.astype(u.dtype))

        updates, moments = _unzip(jax.tree.map(leaf, updates, state.mu, state.nu), updates)
        mu, nu = _unzip(moments, updates)
        return updates, ScaleByAdamaxState(count, mu, nu)

    return GradientTransformation(init, update)


# --- NAdam ------------------------------------------------------------------------------


class ScaleByNadamState(NamedTuple):
    """count: int32 scalar, updates done so far (t − 1). mu_product: ∏ₛ₌₁..ₜ μₛ, a scalar of
    the widest param float dtype (1 before the first update). mu, nu: the moments m, v."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    mu_product: Array
    mu: Params
    nu: Params


def scale_by_nadam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *, momentum_decay: float = 4e-3
) -> GradientTransformation:
    """NAdam's direction (Dozat 2016, with its momentum schedule), as torch.optim.NAdam:

        μₜ = β₁·(1 − ½·0.96^(t·ψ)),   Πₜ = ∏ₛ₌₁..ₜ μₛ               (momentum_decay = ψ)
        mₜ = β₁·mₜ₋₁ + (1−β₁)·g,   vₜ = β₂·vₜ₋₁ + (1−β₂)·g²,   m₀ = v₀ = 0
        D  = √(vₜ/(1−β₂ᵗ)) + ε
        d  = (1−μₜ)/(1−Πₜ) · g/D  +  μₜ₊₁/(1−Πₜ·μₜ₊₁) · mₜ/D

    `b1` = β₁, `b2` = β₂ ∈ [0, 1), `eps` = ε > 0, `momentum_decay` = ψ ≥ 0 (torch's 4e-3,
    Dozat's 0.004). optax's `nadam` is Adam with a Nesterov look-ahead and *no* μₜ schedule:
    d = (β₁·m̂ₜ₊₁ + (1−β₁)·g/(1−β₁ᵗ)) / (√v̂ + ε) — a different trajectory.
    """
    b1 = check_hyperparameter(b1, "b1", high=1.0, high_inclusive=False)
    b2 = check_hyperparameter(b2, "b2", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)
    momentum_decay = check_hyperparameter(momentum_decay, "momentum_decay")

    def init(params: Params) -> ScaleByNadamState:
        return ScaleByNadamState(
            count=jnp.zeros([], jnp.int32),  # () int32
            mu_product=jnp.ones([], tree_widest_float(params)),  # () Π₀ = 1
            mu=tree_zeros_like(params),
            nu=tree_zeros_like(params),
        )

    def update(updates: Updates, state: ScaleByNadamState, params: Params | None = None):
        del params
        count = safe_increment(state.count)  # t
        # The μ schedule is a scalar: compute it once, in the accumulator's dtype.
        t = count.astype(state.mu_product.dtype)
        psi, beta1_s = _const(momentum_decay, t), _const(b1, t)
        mu_t = beta1_s * (1 - 0.5 * _const(0.96, t) ** (t * psi))
        mu_next = beta1_s * (1 - 0.5 * _const(0.96, t) ** ((t + 1) * psi))
        mu_product = state.mu_product * mu_t  # Πₜ
        grad_coef = (1 - mu_t) / (1 - mu_product)
        moment_coef = mu_next / (1 - mu_product * mu_next)

        def leaf(g: Array, m: Array, v: Array):
            g32 = _upcast(g)
            beta1, beta2 = _const(b1, g32), _const(b2, g32)
            tt = count.astype(g32.dtype)
            m_new = beta1 * _upcast(m) + (1 - beta1) * g32
            v_new = beta2 * _upcast(v) + (1 - beta2) * g32 * g32
            denom = jnp.sqrt(v_new / (1 - beta2**tt)) + _const(eps, g32)
            d = _const(grad_coef, g32) * g32 / denom + _const(moment_coef, g32) * m_new / denom
            return d.astype(g.dtype), (m_new.astype(m.dtype), v_new.astype(v.dtype))

        updates, moments = _unzip(jax.tree.map(leaf, updates, state.mu, state.nu), updates)
        mu, nu = _unzip(moments, updates)
        return updates, ScaleByNadamState(count, mu_product, mu, nu)

    return GradientTransformation(init, update)


# --- RAdam ------------------------------------------------------------------------------


class ScaleByRadamState(NamedTuple):
    """count: int32 scalar, updates done so far (t − 1). mu, nu: the moments m, v."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    mu: Params
    nu: Params


RADAM_THRESHOLD = 5.0
"""RAdam rectifies only where ρₜ > 5 (torch's and optax's threshold); below, SGD with momentum."""


def scale_by_radam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> GradientTransformation:
    """Rectified Adam's direction (Liu et al. 2020, Algorithm 2), as torch.optim.RAdam:

        mₜ = β₁·mₜ₋₁ + (1−β₁)·g,   vₜ = β₂·vₜ₋₁ + (1−β₂)·g²,   m₀ = v₀ = 0
        m̂ = mₜ/(1−β₁ᵗ),   ρ∞ = 2/(1−β₂) − 1,   ρₜ = ρ∞ − 2t·β₂ᵗ/(1−β₂ᵗ)
        ρₜ > 5:  rₜ = √((ρₜ−4)(ρₜ−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρₜ)),   d = rₜ·m̂·√(1−β₂ᵗ)/(√vₜ + ε)
        else:    d = m̂                                       (SGD with momentum)

    `b1` = β₁, `b2` = β₂ ∈ [0, 1), `eps` = ε > 0. With β₂ = 0.999 the first 5 steps are
    unrectified. torch adds ε to the *uncorrected* √vₜ (as here); optax's `scale_by_radam`
    adds it to √v̂ = √(vₜ/(1−β₂ᵗ)), which differs in the first rectified steps.
    """
    b1 = check_hyperparameter(b1, "b1", high=1.0, high_inclusive=False)
    b2 = check_hyperparameter(b2, "b2", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)

    def init(params: Params) -> ScaleByRadamState:
        count = jnp.zeros([], jnp.int32)  # () int32
        return ScaleByRadamState(count, tree_zeros_like(params), tree_zeros_like(params))

    def update(updates: Updates, state: ScaleByRadamState, params: Params | None = None):
        del params
        count = safe_increment(state.count)  # t

        def leaf(g: Array, m: Array, v: Array):
            g32 = _upcast(g)
            beta1, beta2 = _const(b1, g32), _const(b2, g32)
            t = count.astype(g32.dtype)
            m_new = beta1 * _upcast(m) + (1 - beta1) * g32
            v_new = beta2 * _upcast(v) + (1 - beta2) * g32 * g32
            c2 = 1 - beta2**t  # 1−β₂ᵗ
            m_hat = m_new / (1 - beta1**t)
            rho_inf = 2 / (1 - beta2) - 1
            rho_t = rho_inf - 2 * t * beta2**t / c2
            rectify = rho_t > RADAM_THRESHOLD
            # Where not rectified the ratio may be negative; keep the root finite (unused).
            ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            r = jnp.sqrt(jnp.where(rectify, ratio, 1))
            adaptive = jnp.sqrt(c2) / (jnp.sqrt(v_new) + _const(eps, g32))
            d = jnp.where(rectify, m_hat * r * adaptive, m_hat)
            return d.astype(g.dtype), (m_new.astype(m.dtype), v_new.astype(v.dtype))

        updates, moments = _unzip(jax.tree.map(leaf, updates, state.mu, state.nu), updates)
        mu, nu = _unzip(moments, updates)
        return updates, ScaleByRadamState(count, mu, nu)

    return GradientTransformation(init, update)


# --- Rprop ------------------------------------------------------------------------------


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
            _tree_full_like(params, initial_step_size),
        )

    def update(updates: Updates, state: ScaleByRpropState, params: Params | None = None):
        del params

        def leaf(g: Array, prev: Array, step: Array):
            g32 = _upcast(g)
            s = jnp.sign(g32 * _upcast(prev))  # torch's sign of the product (not of each)
            factor = jnp.where(
                s > 0, _const(eta_plus, g32), jnp.where(s < 0, _const(eta_minus, g32), 1)
            )
            step_new = jnp.clip(
                _upcast(step) * factor, _const(step_min, g32), _const(step_max, g32)
            )
            g_masked = jnp.where(s < 0, 0, g32)
            d = jnp.sign(g_masked) * step_new
            return d.astype(g.dtype), (g_masked.astype(prev.dtype), step_new.astype(step.dtype))

        pairs = jax.tree.map(leaf, updates, state.prev, state.step_size)
        updates, buffers = _unzip(pairs, updates)
        prev, step_size = _unzip(buffers, updates)
        return updates, ScaleByRpropState(safe_increment(state.count), prev, step_size)

    return GradientTransformation(init, update)


# --- ASGD's averaging -------------------------------------------------------------------


class AverageParamsState(NamedTuple):
    """count: int32 scalar, updates done so far. average: θ̄, the running average of the
    iterates (shaped and typed like the params). Read it with `averaged_params`."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    average: Params


def average_params(t0: float = 1e6) -> GradientTransformation:
    """Polyak–Ruppert averaging of the iterates (Polyak & Juditsky 1992), as torch's ASGD:

        θₜ = θₜ₋₁ + u                       (the step this stage receives, unchanged)
        μₜ = 1 / max(1, t − 1 − t₀)
        θ̄ₜ = θₜ  if μₜ = 1  else  θ̄ₜ₋₁ + μₜ·(θₜ − θ̄ₜ₋₁),         θ̄₀ = 0

    `t0` = t₀ ≥ 0: up to step t₀ + 2 the average is the current iterate; after it, for an
    integer t₀, θ̄ₜ is the mean of θₜ₀₊₂, …, θₜ. The stage passes the updates through;
    it must be the *last* stage (it needs the final u) and needs the params. torch computes
    μ at the end of each step for the next one; the values are the same.
    """
    t0 = check_hyperparameter(t0, "t0")

    def init(params: Params) -> AverageParamsState:
        return AverageParamsState(jnp.zeros([], jnp.int32), tree_zeros_like(params))

    def update(updates: Updates, state: AverageParamsState, params: Params | None = None):
        if params is None:
            raise ValueError("average_params needs the params: call update(grads, state, params).")

        def leaf(u: Array, p: Array, avg: Array) -> Array:
            new = jnp.asarray(p + u).astype(jnp.result_type(p))  # as apply_updates forms θₜ
            a32, n32 = _upcast(avg), _upcast(new)
            mu = 1 / jnp.maximum(1, state.count.astype(a32.dtype) - _const(t0, a32))
            return jnp.where(mu == 1, n32, a32 + mu * (n32 - a32)).astype(avg.dtype)

        average = jax.tree.map(leaf, updates, params, state.average)
        return updates, AverageParamsState(safe_increment(state.count), average)

    return GradientTransformation(init, update)


def averaged_params(opt_state: OptState) -> Params:
    """The averaged parameters θ̄ kept by the one `average_params` stage (e.g. of `asgd`).

    Works inside jit and on host; raises ValueError if the state holds none or several.
    Evaluate the model at these (torch: `optimizer.state[p]["ax"]`); keep training θ.
    """
    needs = "averaged_params needs exactly one average_params stage in the optimizer state "
    needs += "(asgd has one)"
    return find_state(opt_state, AverageParamsState, needs).average
