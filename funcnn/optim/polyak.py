"""Polyak-type step sizes, which read the loss value: optax's `scale_by_polyak` and
`polyak_sgd`, and optax.contrib's MoMo (`momo`, `momo_adam`), a Polyak step on a model
built from momentum averages.

    opt = optim.polyak_sgd()                     # or optim.momo(), optim.momo_adam()
    updates, state = opt.update(grads, state, params, value=loss_value)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.optim._tree import unzip, upcast
from funcnn.optim.base import (
    Array,
    EmptyState,
    GradientTransformation,
    Params,
    Schedule,
    Updates,
    as_schedule,
    chain,
    check_hyperparameter,
    global_norm,
    safe_increment,
    tree_zeros_like,
)
from funcnn.optim.scaling import scale_by_learning_rate

__all__ = [
    "MomoAdamState",
    "MomoState",
    "momo",
    "momo_adam",
    "polyak_sgd",
    "scale_by_polyak",
]

_VARIANTS = ("sps", "sps+")


def scale_by_polyak(
    f_min: float = 0.0,
    max_learning_rate: float = 1.0,
    eps: float = 0.0,
    variant: str = "sps",
) -> GradientTransformation:
    """Polyak's step (Polyak 1987; Loizou et al. 2021, "Stochastic Polyak Step-size for SGD"),
    as optax's `scale_by_polyak`, with f = the loss at the current params (`value`):

        γ = min((f − f*)/(‖g‖² + ε), γ_max)     (f − f* clamped at 0 for variant "sps+")
        γ = 0 where ‖g‖² + ε ≤ float64's machine epsilon
        d = γ·g

    `f_min` = f* (a lower bound of the loss, 0 for interpolating models), `max_learning_rate`
    = γ_max > 0, `eps` = ε ≥ 0. ‖g‖ is the global norm of the incoming update (after any
    earlier stage's scaling, as in optax). Needs `update(..., value=f)`. Stateless.
    """
    if variant not in _VARIANTS:
        raise ValueError(f'variant must be "sps" or "sps+", got variant={variant!r}.')
    max_learning_rate = check_hyperparameter(
        max_learning_rate, "max_learning_rate", low_inclusive=False
    )
    eps = check_hyperparameter(eps, "eps")
    f_min = check_hyperparameter(f_min, "f_min", low=-np.inf)

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        *,
        value: Any = None,
        **extra,
    ):
        del params, extra
        if value is None:
            raise ValueError(
                "scale_by_polyak needs the loss: call update(grads, state, params, value=loss)."
            )
        norm_sq = jnp.square(global_norm(updates))  # ()
        gap = jnp.asarray(value).astype(norm_sq.dtype) - f_min
        if variant == "sps+":
            gap = jnp.maximum(gap, 0.0)
        step = jnp.where(
            norm_sq + eps <= np.finfo(np.float64).eps,
            jnp.zeros_like(norm_sq),
            jnp.minimum(gap / (norm_sq + eps), max_learning_rate),
        )
        return jax.tree.map(
            lambda g: (upcast(g) * step.astype(upcast(g).dtype)).astype(g.dtype), updates
        ), state

    return GradientTransformation(init, update)


def polyak_sgd(
    max_learning_rate: float = 1.0,
    scaling: float | Schedule = 1.0,
    f_min: float = 0.0,
    eps: float = 0.0,
    variant: str = "sps",
) -> GradientTransformation:
    """SGD with Polyak's step size (Loizou et al. 2021), as optax's `polyak_sgd`:

        u = −s·g,   γ = min((f − f*)/(‖u‖² + ε), γ_max),   θ ← θ + γ·u

    `scaling` = s (a number or a schedule of the step), the rest as `scale_by_polyak`.
    Every update needs `value=f(θ)`. Chain: scale_by_learning_rate(s) → scale_by_polyak.
    """
    return chain(
        scale_by_learning_rate(as_schedule(scaling, "scaling")),
        scale_by_polyak(f_min, max_learning_rate, eps, variant),
    )


# --- MoMo: Polyak steps on a momentum model of the loss ---------------------------------------


class MomoState(NamedTuple):
    """exp_avg: the momentum m. barf: f̄, the average loss (0-d). gamma: γ, the average of
    ⟨g, θ⟩ (0-d). lb: the loss's lower bound f* in use (0-d). count: int32 scalar, updates
    done. (optax.contrib's fields.)"""

    exp_avg: Params
    barf: Array
    gamma: Array
    lb: Array
    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do


class MomoAdamState(NamedTuple):
    """exp_avg: m. exp_avg_sq: v, Adam's second moment. barf, gamma, lb, count: as
    `MomoState`. (optax.contrib's fields.)"""

    exp_avg: Params
    exp_avg_sq: Params
    barf: Array
    gamma: Array
    lb: Array
    count: Array  # type: ignore[assignment]


def _check_momo(
    learning_rate: float | Schedule, lower_bound: float, weight_decay: float, adapt: bool
) -> tuple[Schedule, float, float]:
    if not isinstance(adapt, bool):
        raise TypeError(
            f"adapt_lower_bound must be True or False, got adapt_lower_bound={adapt!r}."
        )
    return (
        as_schedule(learning_rate, "learning_rate"),
        check_hyperparameter(lower_bound, "lower_bound", low=-np.inf),
        check_hyperparameter(weight_decay, "weight_decay"),
    )


def _dtype_of(params: Params) -> Any:
    return jnp.result_type(*[upcast(jnp.asarray(x)) for x in jax.tree.leaves(params)])


def _vdot(a: Any, b: Any, dtype: Any) -> Array:
    """⟨a, b⟩ over every leaf and entry, in `dtype`."""
    terms = [
        jnp.sum(x.astype(dtype) * y.astype(dtype))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ]
    return sum(terms[1:], terms[0])


def _momo_step(
    barf: Array,
    gamma: Array,
    iprod: Array,
    norm_sq: Array,
    alpha: Array,
    weight_decay: float,
    lb: Array,
    bc1: Array,
    lower_bound: float,
    adapt: bool,
) -> tuple[Array, Array]:
    """MoMo's step size τ and the next lower bound (all 0-d), with k = 1 + α·λ:

        (adapt) h = k·(f̄ − γ) + ⟨m, θ⟩;  f* ← max(h/(2·b·k), lower_bound) if h < k·b·f*
        τ = min(α/b, max(k·(f̄ − b·f* − γ) + ⟨m, θ⟩, 0)/‖m‖²_D)   (τ's 2nd term 0 if ‖m‖²_D ≤
                                                                 float64's machine ε)
        (adapt) f*' = max((f̄ + ⟨m, θ⟩ − γ − ½·τ·‖m‖²_D)/b, lower_bound)

    b = 1 − β₁ᵗ for MoMo-Adam (its averages are not bias-corrected), 1 for MoMo.
    """
    k = 1 + alpha * weight_decay
    if adapt:
        cap = k * (barf - gamma) + iprod
        lb = jnp.where(cap < k * bc1 * lb, jnp.maximum(cap / (2 * bc1 * k), lower_bound), lb)
    gap = jnp.maximum(k * (barf - bc1 * lb - gamma) + iprod, 0.0)
    flat = norm_sq <= np.finfo(np.float64).eps  # no direction: take no step
    polyak = jnp.where(flat, jnp.zeros_like(gap), gap / jnp.where(flat, 1.0, norm_sq))
    tau = jnp.minimum(alpha / bc1, polyak)
    if adapt:
        lb = jnp.maximum((barf + iprod - gamma - 0.5 * tau * norm_sq) / bc1, lower_bound)
    return tau, lb


def _needs(name: str, params: Any, value: Any) -> None:
    if params is None:
        raise ValueError(f"{name} needs the params: call update(grads, state, params, value=loss).")
    if value is None:
        raise ValueError(
            f"{name} needs the loss: call update(grads, state, params, value=loss) "
            "(jax.value_and_grad gives both)."
        )


def momo(
    learning_rate: float | Schedule = 1.0,
    beta: float = 0.9,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    """MoMo (Schaipp, Ohana, Eickenberg, Defazio & Gower 2023, "MoMo: Momentum Models for
    Adaptive Learning Rates", Algorithm 1), as optax.contrib's `momo`: SGD with momentum whose
    step is a Polyak step on the model averaged by the momentum, with f = the loss at θ
    (`value`), α = learning_rate(t − 1), λ = weight_decay, f* = lower_bound, and ρ = 0 at
    the first step (the averages start at the first values), β after:

        m = ρ·m + (1−ρ)·g,   f̄ = ρ·f̄ + (1−ρ)·f,   γ = ρ·γ + (1−ρ)·⟨g, θ⟩
        τ = min(α, max((1 + αλ)·(f̄ − f* − γ) + ⟨m, θ⟩, 0)/‖m‖²)       (0 when ‖m‖ = 0)
        θ ← θ/(1 + αλ) − τ·m,   i.e. d = −αλ/(1 + αλ)·θ − τ·m

    f* = 0 suits most losses (the loss must not go below it, or the step stops: τ = 0).
    `adapt_lower_bound` estimates f* on the fly (`lower_bound` is then its floor). The step
    needs no tuning beyond α, which caps it. Needs `update(grads, state, params, value=f)`.
    One stage (τ reads m, θ and the loss together).
    """
    schedule, lower_bound, weight_decay = _check_momo(
        learning_rate, lower_bound, weight_decay, adapt_lower_bound
    )
    beta = check_hyperparameter(beta, "beta", high=1.0, high_inclusive=False)

    def init(params: Params) -> MomoState:
        dtype = _dtype_of(params)
        zero = jnp.zeros([], dtype)
        return MomoState(
            tree_zeros_like(params),
            zero,
            zero,
            jnp.asarray(lower_bound, dtype),
            jnp.zeros([], jnp.int32),
        )

    def update(
        updates: Updates,
        state: MomoState,
        params: Params | None = None,
        *,
        value: Any = None,
        **extra: Any,
    ):
        del extra
        _needs("momo", params, value)
        dtype = state.barf.dtype
        rho = jnp.where(state.count == 0, 0.0, beta).astype(dtype)  # ρ, ()
        barf = rho * state.barf + (1 - rho) * jnp.asarray(value).astype(dtype)
        exp_avg = jax.tree.map(
            lambda m, g: rho * m.astype(dtype) + (1 - rho) * upcast(g).astype(dtype),
            state.exp_avg,
            updates,
        )
        gamma = rho * state.gamma + (1 - rho) * _vdot(updates, params, dtype)
        alpha = jnp.asarray(schedule(state.count)).astype(dtype)
        tau, lb = _momo_step(
            barf,
            gamma,
            _vdot(exp_avg, params, dtype),
            _vdot(exp_avg, exp_avg, dtype),
            alpha,
            weight_decay,
            state.lb,
            jnp.ones([], dtype),
            lower_bound,
            adapt_lower_bound,
        )
        shrink = alpha * weight_decay / (1 + alpha * weight_decay)
        steps = jax.tree.map(
            lambda g, m, p: (-shrink * p.astype(dtype) - tau * m).astype(g.dtype),
            updates,
            exp_avg,
            params,
        )
        exp_avg = jax.tree.map(lambda m, old: m.astype(old.dtype), exp_avg, state.exp_avg)
        return steps, MomoState(exp_avg, barf, gamma, lb, safe_increment(state.count))

    return GradientTransformation(init, update)


def momo_adam(
    learning_rate: float | Schedule = 1e-2,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    """MoMo-Adam (Schaipp et al. 2023, Algorithm 3), as optax.contrib's `momo_adam`: Adam(W)
    whose step is a Polyak step on the momentum model in Adam's metric, with f = the loss at θ
    (`value`), α = learning_rate(t − 1), λ = weight_decay, f* = lower_bound, t from 1:

        m = β₁m + (1−β₁)·g,   f̄ = β₁f̄ + (1−β₁)·f,   γ = β₁γ + (1−β₁)·⟨g, θ⟩
        v = β₂v + (1−β₂)·g²,   D = ε + √(v/(1−β₂ᵗ)),   b = 1 − β₁ᵗ
        τ = min(α/b, max((1 + αλ)·(f̄ − b·f* − γ) + ⟨m, θ⟩, 0)/⟨m, m/D⟩)   (0 when m = 0)
        θ ← θ/(1 + αλ) − τ·m/D

    (m, f̄, γ are not bias-corrected; b enters through f* and the cap α/b.) f* must stay
    below the loss; `adapt_lower_bound` estimates it. optax's docstring suggests α = 1, its
    default is 1e-2 (kept). Needs `update(grads, state, params, value=f)`. One stage.
    """
    schedule, lower_bound, weight_decay = _check_momo(
        learning_rate, lower_bound, weight_decay, adapt_lower_bound
    )
    b1 = check_hyperparameter(b1, "b1", high=1.0, high_inclusive=False)
    b2 = check_hyperparameter(b2, "b2", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps")

    def init(params: Params) -> MomoAdamState:
        dtype = _dtype_of(params)
        zero = jnp.zeros([], dtype)
        return MomoAdamState(
            tree_zeros_like(params),
            tree_zeros_like(params),
            zero,
            zero,
            jnp.asarray(lower_bound, dtype),
            jnp.zeros([], jnp.int32),
        )

    def update(
        updates: Updates,
        state: MomoAdamState,
        params: Params | None = None,
        *,
        value: Any = None,
        **extra: Any,
    ):
        del extra
        _needs("momo_adam", params, value)
        dtype = state.barf.dtype
        count = safe_increment(state.count)  # t
        t = count.astype(dtype)
        barf = b1 * state.barf + (1 - b1) * jnp.asarray(value).astype(dtype)
        bc2 = 1 - b2**t

        def moments(g, m, v):
            g_ = upcast(g).astype(dtype)
            m_new = b1 * m.astype(dtype) + (1 - b1) * g_
            v_new = b2 * v.astype(dtype) + (1 - b2) * g_ * g_
            return m_new, v_new, eps + jnp.sqrt(v_new / bc2)

        m, v, denom = unzip(
            jax.tree.map(moments, updates, state.exp_avg, state.exp_avg_sq), updates, 3
        )
        weighted = jax.tree.map(lambda x, d: x / d, m, denom)  # m/D
        gamma = b1 * state.gamma + (1 - b1) * _vdot(updates, params, dtype)
        alpha = jnp.asarray(schedule(state.count)).astype(dtype)
        tau, lb = _momo_step(
            barf,
            gamma,
            _vdot(m, params, dtype),
            _vdot(m, weighted, dtype),
            alpha,
            weight_decay,
            state.lb,
            1 - b1**t,
            lower_bound,
            adapt_lower_bound,
        )
        shrink = alpha * weight_decay / (1 + alpha * weight_decay)
        steps = jax.tree.map(
            lambda g, w, p: (-shrink * p.astype(dtype) - tau * w).astype(g.dtype),
            updates,
            weighted,
            params,
        )
        cast = lambda tree, like: jax.tree.map(lambda x, y: x.astype(y.dtype), tree, like)
        return steps, MomoAdamState(
            cast(m, state.exp_avg), cast(v, state.exp_avg_sq), barf, gamma, lb, count
        )

    return GradientTransformation(init, update)
