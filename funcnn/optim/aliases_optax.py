"""The optimizers only optax (or optax.contrib) ships, under optax's names, argument names
and defaults, so an optax user's call works unchanged: each a short `chain` of stages.

Every alias returns a `GradientTransformation`; `learning_rate` may be a number or a
schedule `step -> η` (the first update uses schedule(0)). θ is the parameters, g the
gradient, ηₜ the learning rate at the t-th update (t = 1, 2, …). The L-BFGS, Polyak and
MoMo, Prodigy, D-Adaptation and Mechanic, and reduce-on-plateau optimizers live beside their
stages (`line_search`, `polyak`, `parameter_free`, `plateau`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim._tree import const, is_off, upcast
from funcnn.optim.adam_variants import (
    FloatOrSchedule,
    _scale_by_adam_nesterov,
    scale_by_adan,
    scale_by_ademamix,
    scale_by_adopt,
    scale_by_belief,
    scale_by_madgrad,
    scale_by_novograd,
    scale_by_optimistic_gradient,
    scale_by_simplified_ademamix,
    scale_by_sm3,
    scale_by_yogi,
)
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Schedule,
    Updates,
    as_schedule,
    chain,
    check_hyperparameter,
    safe_increment,
)
from funcnn.optim.decay import add_decayed_weights
from funcnn.optim.moments import scale_by_adamax
from funcnn.optim.momentum import ema_momentum, trace
from funcnn.optim.normalize import scale_by_sign
from funcnn.optim.routing import MaskOrFn, masked
from funcnn.optim.scaling import scale, scale_by_learning_rate
from funcnn.optim.trust_ratio import scale_by_trust_ratio

__all__ = [
    "adabelief",
    "adamaxw",
    "adan",
    "ademamix",
    "adopt",
    "fromage",
    "lars",
    "madgrad",
    "novograd",
    "optimistic_adam",
    "optimistic_adam_v2",
    "optimistic_gradient_descent",
    "sign_sgd",
    "signum",
    "simplified_ademamix",
    "sm3",
    "yogi",
]


def _decay(weight_decay: float, mask: MaskOrFn | None) -> list[GradientTransformation]:
    """d ← d + λ·θ (masked) before the learning rate, i.e. θ ← θ − ηₜ·λ·θ; nothing at λ = 0."""
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")
    return [] if is_off(weight_decay) else [add_decayed_weights(weight_decay, mask)]


def adabelief(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    weight_decay: float | None = None,
    weight_decay_mask: MaskOrFn | None = None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdaBelief (Zhuang et al. 2020), as optax's `adabelief`:

        mₜ = β₁mₜ₋₁ + (1−β₁)g,   sₜ = β₂sₜ₋₁ + (1−β₂)(g − mₜ)² + ε_root
        θ ← θ − ηₜ·(m̂ₜ/(√ŝₜ + ε) + λθ)        (λθ only when weight_decay is not None)

    Chain: scale_by_belief → [add_decayed_weights(weight_decay_mask)] → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    decay = [] if weight_decay is None else _decay(weight_decay, weight_decay_mask)
    return chain(
        scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov),
        *decay,
        scale_by_learning_rate(lr),
    )


def yogi(
    learning_rate: float | Schedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-3
) -> GradientTransformation:
    """Yogi (Zaheer et al. 2018), as optax's `yogi`:

        mₜ = β₁mₜ₋₁ + (1−β₁)g,   vₜ = vₜ₋₁ − (1−β₂)·sign(vₜ₋₁ − g²)·g²   (m₀ = v₀ = 10⁻⁶)
        θ ← θ − ηₜ·m̂ₜ/(√v̂ₜ + ε)

    Chain: scale_by_yogi → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(lr))


def adan(
    learning_rate: float | Schedule,
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 1e-8,
    weight_decay: float = 0.0,
    mask: MaskOrFn | None = None,
) -> GradientTransformation:
    """Adan (Xie et al. 2022), as optax's `adan` (its ε_root default is 1e-8, the stage's 0):

        Δ = g − gₜ₋₁,  m, v, n the means of g, Δ, (g + (1−β₂)Δ)²      (`scale_by_adan`)
        θ ← θ − ηₜ·((m̂ + (1−β₂)v̂)/(√(n̂ + ε_root) + ε) + λθ)        (λθ on masked leaves)

    Chain: scale_by_adan → [add_decayed_weights(mask)] → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        scale_by_adan(b1, b2, b3, eps, eps_root),
        *_decay(weight_decay, mask),
        scale_by_learning_rate(lr),
    )


def novograd(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """NovoGrad (Ginsburg et al. 2019), as optax's `novograd`, per leaf l:

        νₗ = β₂νₗ + (1−β₂)‖gₗ‖²  (ν = ‖g‖² at t = 1),   rₗ = gₗ/(√(νₗ + ε_root) + ε) + λθₗ
        mₗ = β₁mₗ + rₗ  (m = r at t = 1),                θ ← θ − ηₜ·m

    Chain: scale_by_novograd → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(scale_by_novograd(b1, b2, eps, eps_root, weight_decay), scale_by_learning_rate(lr))


def adopt(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[Array], Array] = lambda x: x**0.25,
) -> GradientTransformation:
    """ADOPT (Taniguchi et al. 2024), as optax.contrib's `adopt`: the first update only
    records v = g² (θ stays); then

        c = clip(g/max(√vₜ₋₁, ε), ±(t−1)^¼),  mₜ = β₁mₜ₋₁ + (1−β₁)c,  vₜ = β₂vₜ₋₁ + (1−β₂)g²
        θ ← θ − ηₜ·mₜ      (nesterov: ηₜ·(β₁mₜ + (1−β₁)c))

    Chain: scale_by_adopt → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    stage = scale_by_adopt(
        b1,
        b2,
        eps,
        mu_dtype,
        nesterov=nesterov,
        use_clipping=use_clipping,
        clip_value_fn=clip_value_fn,
    )
    return chain(stage, scale_by_learning_rate(lr))


def ademamix(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: FloatOrSchedule = 0.9999,
    alpha: FloatOrSchedule = 5.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: float = 0.0,
    mask: MaskOrFn | None = None,
) -> GradientTransformation:
    """AdEMAMix (Pagliardini et al. 2024), as optax.contrib's `ademamix`:

        m₁, m₂ the fast (β₁, bias-corrected) and slow (β₃) means of g, ν the mean of g² (β₂)
        θ ← θ − ηₜ·((m̂₁ + α·m₂)/(√(ν̂ + ε_root) + ε) + λθ)          (λθ on masked leaves)

    `b3`, `alpha` may be schedules of the step. Chain: scale_by_ademamix →
    [add_decayed_weights(mask)] → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype),
        *_decay(weight_decay, mask),
        scale_by_learning_rate(lr),
    )


def simplified_ademamix(
    learning_rate: float | Schedule,
    b1: float = 0.99,
    b2: float = 0.95,
    alpha: FloatOrSchedule = 0.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    mask: MaskOrFn | None = None,
) -> GradientTransformation:
    """Simplified AdEMAMix (Morwani et al. 2024), as optax.contrib's `simplified_ademamix`:

        m = β₁m + g,   n = β₂n + (1−β₂)g²,   θ ← θ − ηₜ·((m + α·g)/(√(n̂ + ε_root) + ε) + λθ)

    Chain: scale_by_simplified_ademamix → [add_decayed_weights(mask)] → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root),
        *_decay(weight_decay, mask),
        scale_by_learning_rate(lr),
    )


def adamaxw(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    mask: MaskOrFn | None = None,
) -> GradientTransformation:
    """Adamax with decoupled weight decay, as optax's `adamaxw`:

        mₜ = β₁mₜ₋₁ + (1−β₁)g,  uₜ = max(β₂uₜ₋₁, |g| + ε),  θ ← θ − ηₜ·(m̂ₜ/uₜ + λθ)

    Chain: scale_by_adamax → [add_decayed_weights(mask)] → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        scale_by_adamax(b1, b2, eps), *_decay(weight_decay, mask), scale_by_learning_rate(lr)
    )


def lars(
    learning_rate: float | Schedule,
    weight_decay: float = 0.0,
    weight_decay_mask: MaskOrFn | bool = True,
    trust_coefficient: float = 0.001,
    eps: float = 0.0,
    trust_ratio_mask: MaskOrFn | bool = True,
    momentum: float = 0.9,
    nesterov: bool = False,
) -> GradientTransformation:
    """LARS (You et al. 2017, "Large Batch Training of Convolutional Networks"), as optax's
    `lars`, per leaf l:

        rₗ = gₗ + λθₗ                                   (leaves weight_decay_mask selects)
        rₗ ← c·‖θₗ‖/(‖rₗ‖ + ε)·rₗ   (1 where a norm is 0; leaves trust_ratio_mask selects)
        vₜ = μvₜ₋₁ − ηₜrₗ,   θ ← θ + vₜ   (nesterov: θ ← θ − ηₜrₗ + μvₜ)

    The momentum runs on the already-scaled step (optax's order), which differs from
    momentum-then-rate only when η changes. Chain: add_decayed_weights → masked trust ratio →
    scale_by_learning_rate → trace.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")
    decay_mask = None if weight_decay_mask is True else weight_decay_mask
    ratio = scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps)
    if trust_ratio_mask is not True:
        ratio = masked(ratio, trust_ratio_mask)
    decay = [] if is_off(weight_decay) else [add_decayed_weights(weight_decay, decay_mask)]
    return chain(*decay, ratio, scale_by_learning_rate(lr), trace(momentum, nesterov=nesterov))


def sign_sgd(learning_rate: float | Schedule) -> GradientTransformation:
    """signSGD (Bernstein et al. 2018), as optax's `sign_sgd`: θ ← θ − ηₜ·sign(g).
    Chain: scale_by_sign → scale_by_learning_rate."""
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(scale_by_sign(), scale_by_learning_rate(lr))


def signum(
    learning_rate: float | Schedule, beta: float = 0.9, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Signum (Bernstein et al. 2018, sign of momentum), as optax's `signum`:

        mₜ = β·mₜ₋₁ + (1−β)·g   (no bias correction: the sign ignores the scale)
        θ ← θ − ηₜ·sign(mₜ)

    Chain: ema_momentum(β) → scale_by_sign → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        ema_momentum(beta, nesterov=False, mu_dtype=accumulator_dtype),
        scale_by_sign(),
        scale_by_learning_rate(lr),
    )


def optimistic_gradient_descent(
    learning_rate: float | Schedule, alpha: float = 1.0, beta: float = 1.0
) -> GradientTransformation:
    """Optimistic gradient descent (Daskalakis et al. 2018), as optax's
    `optimistic_gradient_descent`: θ ← θ − ηₜ·((α + β)·g − β·gₜ₋₁)  (gₜ₋₁ = g at t = 1).
    Chain: scale_by_optimistic_gradient → scale_by_learning_rate."""
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(lr))


def optimistic_adam(
    learning_rate: float,
    optimism: float | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> GradientTransformation:
    """Optimistic Adam (Daskalakis et al. 2018, "Training GANs with Optimism"), as optax's
    `optimistic_adam`, with α = learning_rate and o = optimism (α if None, as in the paper):

        mₜ = β₁mₜ₋₁ + (1−β₁)g,   vₜ = β₂vₜ₋₁ + (1−β₂)g²
        m̂ = β₁mₜ/(1−β₁ᵗ⁺¹) + (1−β₁)g/(1−β₁ᵗ)   (nesterov, the default; else mₜ/(1−β₁ᵗ))
        rₜ = m̂/(√(vₜ/(1−β₂ᵗ) + ε_root) + ε)
        θ ← θ − α·rₜ − o·(rₜ − rₜ₋₁)            (rₜ₋₁ = rₜ at t = 1)

    α is a constant (optax's `optimistic_adam` refuses a schedule; `optimistic_adam_v2`
    takes one). α enters the optimistic stage, so `current_learning_rate` reads 1 (optax's
    chain, whose last stage only flips the sign). Chain: Adam's ratio (optax's form) →
    scale_by_optimistic_gradient(α, o) → scale_by_learning_rate(1).
    """
    if callable(learning_rate):
        raise TypeError(
            "optimistic_adam takes a constant learning_rate (as optax's optimistic_adam), got a "
            "schedule; use optimistic_adam_v2(learning_rate=schedule, alpha=…, beta=…)."
        )
    learning_rate = check_hyperparameter(learning_rate, "learning_rate")
    optimism = learning_rate if optimism is None else check_hyperparameter(optimism, "optimism")
    return chain(
        _scale_by_adam_nesterov(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_optimistic_gradient(alpha=learning_rate, beta=optimism),
        scale_by_learning_rate(1.0),
    )


def optimistic_adam_v2(
    learning_rate: float | Schedule,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    nesterov: bool = True,
) -> GradientTransformation:
    """Optimistic Adam with optax's newer interface (`optimistic_adam_v2`): the same rₜ as
    `optimistic_adam`, then

        θ ← θ − ηₜ·((α + β)·rₜ − β·rₜ₋₁)          (rₜ₋₁ = rₜ at t = 1)

    with ηₜ = learning_rate (a number or a schedule). `optimistic_adam(α, o)` is
    `optimistic_adam_v2(1, alpha=α, beta=o)`. Chain: Adam's ratio (optax's form) →
    scale_by_optimistic_gradient(α, β) → scale_by_learning_rate(ηₜ).
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        _scale_by_adam_nesterov(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_optimistic_gradient(alpha, beta),
        scale_by_learning_rate(lr),
    )


class _ShrinkState(NamedTuple):
    """count: int32 scalar, updates done (the step the shrink factor is read at)."""

    count: Array  # type: ignore[assignment]


def _add_shrunk_params(shrink_minus_one: Callable[[Array], Array]) -> GradientTransformation:
    """u ← u + (c(t) − 1)·θ, `shrink_minus_one(t)` = c(t) − 1 at the step count (0 first):
    pulls θ towards 0."""

    def init(params: Params) -> _ShrinkState:
        del params
        return _ShrinkState(jnp.zeros([], jnp.int32))

    def update(updates: Updates, state: _ShrinkState, params: Params | None = None, **extra):
        del extra
        if params is None:
            raise ValueError("fromage needs the params: call update(grads, state, params).")
        factor = shrink_minus_one(state.count)

        def leaf(u: Array, p: Array) -> Array:
            u32 = upcast(u)
            return (u32 + const(factor, u32) * upcast(p).astype(u32.dtype)).astype(u.dtype)

        return jax.tree.map(leaf, updates, params), _ShrinkState(safe_increment(state.count))

    return GradientTransformation(init, update)


def fromage(learning_rate: float | Schedule, min_norm: float = 1e-6) -> GradientTransformation:
    """Fromage (Bernstein et al. 2020, "On the distance between two neural networks and the
    stability of learning"), as optax's `fromage`, per leaf l with cₜ = 1/√(1 + ηₜ²):

        θₗ ← cₜ·(θₗ − ηₜ·‖θₗ‖/‖gₗ‖·gₗ)          (norms floored at min_norm)

    The step is relative to each layer's size and the shrink cₜ keeps ‖θ‖ from growing.
    Chain: scale_by_trust_ratio(min_norm) → scale_by_learning_rate(ηₜ·cₜ) → θ-shrink (cₜ − 1).
    """
    lr = as_schedule(learning_rate, "learning_rate")

    def root(count: Array) -> Array:  # s = √(1 + η²)
        return jnp.sqrt(1 + jnp.square(jnp.asarray(lr(count))))

    def shrink_minus_one(count: Array) -> Array:
        # c − 1 = 1/s − 1 = −η²/(s·(1 + s)): no cancellation (1/s − 1 loses every digit of
        # η² ≈ 1e-5 in float32; optax computes it that way).
        s = root(count)
        return -jnp.square(jnp.asarray(lr(count))) / (s * (1 + s))

    return chain(
        scale_by_trust_ratio(min_norm),
        scale_by_learning_rate(lambda count: lr(count) / root(count)),
        _add_shrunk_params(shrink_minus_one),
    )


def madgrad(
    learning_rate: float | Schedule,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    eps: float = 1e-6,
) -> GradientTransformation:
    """MADGRAD (Defazio & Jelassi 2021), as optax.contrib's `madgrad`:

        g ← g + λθ;  λₖ = (ηₖ + ε)√(k + 1);  S += λₖg²;  s += λₖg
        θ ← (1 − μ)·(θ₀ − s/(∛S + ε)) + μ·θ

    Chain: [add_decayed_weights] → scale_by_madgrad (which applies η itself).
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(*_decay(weight_decay, None), scale_by_madgrad(lr, momentum, eps))


def sm3(learning_rate: float, momentum: float = 0.9) -> GradientTransformation:
    """SM3 (Anil et al. 2019), as optax's `sm3`: SM3-II's accumulators (`scale_by_sm3` with
    β₁ = momentum, β₂ = 1), then θ ← θ − η·m. A constant learning rate only, as optax
    (`scale(−η)`, not a schedule). Chain: scale_by_sm3 → scale(−η).
    """
    if callable(learning_rate):
        raise TypeError("sm3 takes a constant learning_rate (as optax's sm3), got a schedule.")
    learning_rate = check_hyperparameter(learning_rate, "learning_rate")
    return chain(scale_by_sm3(momentum), scale(-learning_rate))
