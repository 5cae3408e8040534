"""The Adam family: directions from a bias-corrected first moment m̂ and a second moment —
Adam (`scale_by_adam`), AMSGrad (`scale_by_amsgrad`, Adam with a running maximum of v),
Adamax (an infinity-norm second moment), NAdam (Nesterov momentum schedule) and RAdam
(rectified variance). Stages that keep a second moment alone (RMSProp, Adagrad, Adadelta)
are in `rms.py`.

Notation and dtype rules: see `funcnn.optim` (g in, d out, θ params, t from 1).

Each stage follows torch.optim's `_single_tensor_*` algorithm for the same optimizer (read
from its documented pseudo-code); where optax computes the same method differently, the
docstring says how.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim._tree import check_state_dtype, const, unzip, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
    safe_increment,
    tree_widest_float,
    tree_zeros_like,
)
from funcnn.scale import xla as fusion

__all__ = [
    "RADAM_THRESHOLD",
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAmsgradState",
    "ScaleByNadamState",
    "ScaleByRadamState",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_nadam",
    "scale_by_radam",
]


# --- Adam and AMSGrad -------------------------------------------------------------------


class ScaleByAdamState(NamedTuple):
    """count: int32 scalar, updates done so far (t − 1). mu: first moment m; nu: second
    moment v (each shaped like the params, dtype of the param unless mu_dtype/nu_dtype)."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    mu: Params
    nu: Params


class ScaleByAmsgradState(NamedTuple):
    """`scale_by_amsgrad`'s state: count, mu, nu as `ScaleByAdamState`, plus nu_max: the
    running maximum v_max of the *uncorrected* second moments (dtype of nu)."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    mu: Params
    nu: Params
    nu_max: Params


def _check_adam(
    b1: Any, b2: Any, eps: Any, fused: Any, mu_dtype: Any, nu_dtype: Any
) -> tuple[float, float, float]:
    """Validate the hyperparameters `scale_by_adam` and `scale_by_amsgrad` share."""
    check_state_dtype(mu_dtype, "mu_dtype")
    check_state_dtype(nu_dtype, "nu_dtype")
    b1 = check_hyperparameter(b1, "b1", high=1.0, high_inclusive=False)
    b2 = check_hyperparameter(b2, "b2", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)
    if fused is not None and not isinstance(fused, bool):
        raise TypeError(
            f"fused must be True, False or None (the backend's default), got fused={fused!r}."
        )
    return b1, b2, eps


class _AdamLeaf(NamedTuple):
    """One leaf's Adam quantities, in the compute dtype: the new moments mₜ, vₜ, their
    bias-corrected m̂, v̂ and the correction 1−β₂ᵗ (AMSGrad corrects its maximum by it)."""

    m_new: Array
    v_new: Array
    m_hat: Array
    v_hat: Array
    c2: Array


def _adam_leaf(
    g32: Array, m32: Array, v32: Array, b1: float, b2: float, t: Array, regrouped: bool
) -> _AdamLeaf:
    """mₜ = β₁·mₜ₋₁ + (1−β₁)·g, vₜ = β₂·vₜ₋₁ + (1−β₂)·g², and m̂, v̂ in one of two groupings.

    Textbook (`regrouped=False`): m̂ = mₜ/c₁, v̂ = vₜ/c₂ — for backends without sibling
    fusion (XLA:CPU by default): reading the old moments after their in-place update would
    force copies of the donated buffers, so read the new ones.
    Regrouped: the same m̂ expanded on the OLD moment, (β₁/c₁)·mₜ₋₁ + ((1−β₁)/c₁)·g (v̂
    likewise). d then reads (g, mₜ₋₁, vₜ₋₁) exactly as mₜ and vₜ do, so XLA emits θ', m', v'
    as sibling outputs of ONE loop per leaf: 7 memory accesses per parameter instead of
    9-10 (`benchmarks/README.md`). Only float rounding differs (a few ulp).
    """
    beta1, beta2 = const(b1, g32), const(b2, g32)
    c1, c2 = 1 - beta1**t, 1 - beta2**t  # bias corrections 1−β₁ᵗ, 1−β₂ᵗ
    m_new = beta1 * m32 + (1 - beta1) * g32
    v_new = beta2 * v32 + (1 - beta2) * g32 * g32
    if regrouped:
        m_hat = (beta1 / c1) * m32 + ((1 - beta1) / c1) * g32
        v_hat = (beta2 / c2) * v32 + ((1 - beta2) / c2) * (g32 * g32)
    else:
        m_hat, v_hat = m_new / c1, v_new / c2
    return _AdamLeaf(m_new, v_new, m_hat, v_hat, c2)


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    amsgrad: bool = False,
    fused: bool | None = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam's direction (Kingma & Ba 2015, Algorithm 1), t counting from 1:

        mₜ = β₁·mₜ₋₁ + (1−β₁)·g,   vₜ = β₂·vₜ₋₁ + (1−β₂)·g²,   m₀ = v₀ = 0
        m̂ = mₜ/(1−β₁ᵗ),   v̂ = vₜ/(1−β₂ᵗ),   d = m̂/(√v̂ + ε)

    `b1` = β₁, `b2` = β₂ ∈ [0, 1), `eps` = ε > 0. PyTorch and optax place ε the same way
    (outside the root, after bias correction). TF/Keras adds its "ε̂" to the *uncorrected*
    √vₜ, which differs in the first steps. The first step gives |d| = |g|/(|g|+ε) ≈ 1.
    `mu_dtype`/`nu_dtype` store the moments in another (floating) dtype (e.g. float32 for
    bf16 params). `amsgrad=True` is `scale_by_amsgrad` (same arguments, its own state).
    `fused` picks one of two groupings of the same m̂ and v̂ (equal up to rounding, a few ulp):

        fused=False (textbook): m̂ = mₜ/(1−β₁ᵗ),   v̂ = vₜ/(1−β₂ᵗ)
        fused=True (regrouped on the old moments, g² = g·g):
            m̂ = β₁/(1−β₁ᵗ)·mₜ₋₁ + (1−β₁)/(1−β₁ᵗ)·g,   v̂ = β₂/(1−β₂ᵗ)·vₜ₋₁ + (1−β₂)/(1−β₂ᵗ)·g²

    Regrouped, d reads (g, mₜ₋₁, vₜ₋₁) exactly as mₜ and vₜ do, so a compiler that fuses
    sibling loops emits θ', m', v' as one loop per leaf: 7 memory accesses per parameter
    instead of 9–10 (`benchmarks/README.md`). Without sibling fusion that form is much slower
    (XLA copies the donated m, v before overwriting them) and the textbook form is the fast
    one. `fused=None` (default) chooses `funcnn.scale.xla.sibling_fusion_expected()` when
    `update` is traced: True on GPU and TPU; on CPU True when ``XLA_FLAGS`` carries
    ``xla_cpu_use_multi_output_fusion`` (which `import funcnn` adds before JAX starts when
    ``FUNCNN_CPU_FUSION=1`` opts in) and the backend honours it (checked once; if the backend
    started before the option was set, a warning names the fix); False on any other backend.
    """
    if not isinstance(amsgrad, bool):
        raise TypeError(f"amsgrad must be True or False, got amsgrad={amsgrad!r}.")
    if amsgrad:
        return scale_by_amsgrad(b1, b2, eps, fused=fused, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    b1, b2, eps = _check_adam(b1, b2, eps, fused, mu_dtype, nu_dtype)

    def init(params: Params) -> ScaleByAdamState:
        count = jnp.zeros([], jnp.int32)  # () int32
        mu, nu = tree_zeros_like(params, mu_dtype), tree_zeros_like(params, nu_dtype)
        return ScaleByAdamState(count=count, mu=mu, nu=nu)

    def update(updates: Updates, state: ScaleByAdamState, params: Params | None = None):
        del params
        count = safe_increment(state.count)  # t, as int32
        regrouped = fusion.sibling_fusion_expected() if fused is None else fused  # per trace

        def leaf(g: Array, m: Array, v: Array):
            g32 = upcast(g)
            a = _adam_leaf(g32, upcast(m), upcast(v), b1, b2, count.astype(g32.dtype), regrouped)
            d = a.m_hat / (jnp.sqrt(a.v_hat) + const(eps, g32))
            return d.astype(g.dtype), (a.m_new.astype(m.dtype), a.v_new.astype(v.dtype))

        updates, moments = unzip(jax.tree.map(leaf, updates, state.mu, state.nu), updates)
        mu, nu = unzip(moments, updates)
        return updates, ScaleByAdamState(count, mu, nu)

    return GradientTransformation(init, update)


def scale_by_amsgrad(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    fused: bool | None = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AMSGrad's direction (Reddi, Kale & Kumar 2018) with torch.optim.Adam(amsgrad=True)'s
    placement of the bias correction: Adam's mₜ, vₜ, m̂ (see `scale_by_adam`), and the
    maximum taken over the *uncorrected* vₜ, then corrected by the current step's factor,

        v_maxₜ = max(v_maxₜ₋₁, vₜ),   v_max₀ = 0,   d = m̂/(√v_maxₜ/√(1−β₂ᵗ) + ε)

    The state is a `ScaleByAmsgradState` (an extra `nu_max` leaf per parameter, in nu's
    dtype). optax's `scale_by_amsgrad` takes the maximum of the corrected v̂ instead,
    v̂_maxₜ = max(v̂_maxₜ₋₁, vₜ/(1−β₂ᵗ)), which differs while 1−β₂ᵗ still grows.
    `fused` as in `scale_by_adam`: regrouped, the corrected maximum is formed as
    max(v_maxₜ₋₁/(1−β₂ᵗ), v̂), again a function of the old buffers and g; textbook as
    max(v_maxₜ₋₁, vₜ)/(1−β₂ᵗ).
    """
    b1, b2, eps = _check_adam(b1, b2, eps, fused, mu_dtype, nu_dtype)

    def init(params: Params) -> ScaleByAmsgradState:
        count = jnp.zeros([], jnp.int32)  # () int32
        mu, nu = tree_zeros_like(params, mu_dtype), tree_zeros_like(params, nu_dtype)
        return ScaleByAmsgradState(count, mu, nu, tree_zeros_like(params, nu_dtype))

    def update(updates: Updates, state: ScaleByAmsgradState, params: Params | None = None):
        del params
        count = safe_increment(state.count)  # t, as int32
        regrouped = fusion.sibling_fusion_expected() if fused is None else fused  # per trace

        def leaf(g: Array, m: Array, v: Array, v_max: Array):
            g32, v_max32 = upcast(g), upcast(v_max)
            a = _adam_leaf(g32, upcast(m), upcast(v), b1, b2, count.astype(g32.dtype), regrouped)
            v_max_new = jnp.maximum(v_max32, a.v_new)  # uncorrected (torch's)
            # max(v_maxₜ₋₁, vₜ)/c₂ = max(v_maxₜ₋₁/c₂, v̂) as c₂ > 0; regrouped reads old buffers.
            v_hat = jnp.maximum(v_max32 / a.c2, a.v_hat) if regrouped else v_max_new / a.c2
            d = a.m_hat / (jnp.sqrt(v_hat) + const(eps, g32))
            buffers = (a.m_new.astype(m.dtype), a.v_new.astype(v.dtype))
            return d.astype(g.dtype), (*buffers, v_max_new.astype(v_max.dtype))

        pairs = jax.tree.map(leaf, updates, state.mu, state.nu, state.nu_max)
        updates, moments = unzip(pairs, updates)
        mu, nu, nu_max = unzip(moments, updates, 3)
        return updates, ScaleByAmsgradState(count, mu, nu, nu_max)

    return GradientTransformation(init, update)


# --- Adamax -------------------------------------------------------------------------------


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

    `b1` = β₁, `b2` = β₂ ∈ [0, 1), `eps` = ε > 0. torch.optim.Adamax and optax's
    `scale_by_adamax` (0.2.8: `update_infinity_moment`, uₜ = max(|g| + ε, β₂·uₜ₋₁), then
    m̂ₜ/uₜ) both put ε inside the max, as here, so the three agree. The paper has no ε.
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
            g32 = upcast(g)
            beta1, beta2 = const(b1, g32), const(b2, g32)
            t = count.astype(g32.dtype)
            m_new = beta1 * upcast(m) + (1 - beta1) * g32
            u_new = jnp.maximum(beta2 * upcast(u), jnp.abs(g32) + const(eps, g32))
            d = m_new / ((1 - beta1**t) * u_new)
            return d.astype(g.dtype), (m_new.astype(m.dtype), u_new.astype(u.dtype))

        updates, moments = unzip(jax.tree.map(leaf, updates, state.mu, state.nu), updates)
        mu, nu = unzip(moments, updates)
        return updates, ScaleByAdamaxState(count, mu, nu)

    return GradientTransformation(init, update)


# --- NAdam --------------------------------------------------------------------------------


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
        psi, beta1_s = const(momentum_decay, t), const(b1, t)
        mu_t = beta1_s * (1 - 0.5 * const(0.96, t) ** (t * psi))
        mu_next = beta1_s * (1 - 0.5 * const(0.96, t) ** ((t + 1) * psi))
        mu_product = state.mu_product * mu_t  # Πₜ
        grad_coef = (1 - mu_t) / (1 - mu_product)
        moment_coef = mu_next / (1 - mu_product * mu_next)

        def leaf(g: Array, m: Array, v: Array):
            g32 = upcast(g)
            beta1, beta2 = const(b1, g32), const(b2, g32)
            tt = count.astype(g32.dtype)
            m_new = beta1 * upcast(m) + (1 - beta1) * g32
            v_new = beta2 * upcast(v) + (1 - beta2) * g32 * g32
            denom = jnp.sqrt(v_new / (1 - beta2**tt)) + const(eps, g32)
            d = const(grad_coef, g32) * g32 / denom + const(moment_coef, g32) * m_new / denom
            return d.astype(g.dtype), (m_new.astype(m.dtype), v_new.astype(v.dtype))

        updates, moments = unzip(jax.tree.map(leaf, updates, state.mu, state.nu), updates)
        mu, nu = unzip(moments, updates)
        return updates, ScaleByNadamState(count, mu_product, mu, nu)

    return GradientTransformation(init, update)


# --- RAdam --------------------------------------------------------------------------------


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
            g32 = upcast(g)
            beta1, beta2 = const(b1, g32), const(b2, g32)
            t = count.astype(g32.dtype)
            m_new = beta1 * upcast(m) + (1 - beta1) * g32
            v_new = beta2 * upcast(v) + (1 - beta2) * g32 * g32
            c2 = 1 - beta2**t  # 1−β₂ᵗ
            m_hat = m_new / (1 - beta1**t)
            rho_inf = 2 / (1 - beta2) - 1
            rho_t = rho_inf - 2 * t * beta2**t / c2
            rectify = rho_t > RADAM_THRESHOLD
            # Where not rectified the ratio may be negative; keep the root finite (unused).
            ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            r = jnp.sqrt(jnp.where(rectify, ratio, 1))
            adaptive = jnp.sqrt(c2) / (jnp.sqrt(v_new) + const(eps, g32))
            d = jnp.where(rectify, m_hat * r * adaptive, m_hat)
            return d.astype(g.dtype), (m_new.astype(m.dtype), v_new.astype(v.dtype))

        updates, moments = unzip(jax.tree.map(leaf, updates, state.mu, state.nu), updates)
        mu, nu = unzip(moments, updates)
        return updates, ScaleByRadamState(count, mu, nu)

    return GradientTransformation(init, update)
