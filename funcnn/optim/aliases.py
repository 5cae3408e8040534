"""The named optimizers: each a short `chain` of the stages in the modules listed in
`funcnn.optim`'s docstring (moments, rms, momentum, sign, factored, orthogonal, trust_ratio,
decay, clipping, averaging, scaling, schedule_free).

Every alias returns a `GradientTransformation`; `learning_rate` may be a number or a
schedule `step -> η` (first update uses schedule(0)). Hyperparameters are validated here,
when the optimizer is built. The equations use g for the gradient, θ for the parameters,
ηₜ for the learning rate at the t-th update (t = 1, 2, …). Weight decay is always the one
`decay.weight_decay_stages(λ, mask)`: spliced before the direction stage it is coupled L2,
after it decoupled (AdamW's).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from funcnn._validation import check_nonnegative_int
from funcnn.optim._tree import is_off
from funcnn.optim.averaging import average_params
from funcnn.optim.base import (
    GradientTransformation,
    Schedule,
    as_schedule,
    chain,
    check_hyperparameter,
)
from funcnn.optim.clipping import clip_by_block_rms
from funcnn.optim.decay import weight_decay_stages
from funcnn.optim.factored import (
    scale_by_factored_rms,
    scale_by_param_block_rms,
    scale_by_relative_step,
)
from funcnn.optim.moments import (
    scale_by_adam,
    scale_by_adamax,
    scale_by_nadam,
    scale_by_radam,
)
from funcnn.optim.momentum import ema_momentum, trace
from funcnn.optim.orthogonal import (
    MUON_NS_COEFFICIENTS,
    orthogonalize_by_newton_schulz,
    scale_by_shape,
)
from funcnn.optim.rms import scale_by_adadelta, scale_by_adagrad, scale_by_adam_rms, scale_by_rms
from funcnn.optim.routing import MaskOrFn
from funcnn.optim.scaling import scale_by_learning_rate
from funcnn.optim.schedule_free import schedule_free
from funcnn.optim.sign import check_rprop_bounds, scale_by_lion, scale_by_rprop
from funcnn.optim.trust_ratio import scale_by_trust_ratio

__all__ = [
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "asgd",
    "lamb",
    "lion",
    "muon",
    "nadam",
    "radam",
    "rmsprop",
    "rprop",
    "schedule_free_adamw",
    "sgd",
]


def _momentum(momentum: float, nesterov: bool) -> tuple[GradientTransformation, ...]:
    """The heavy-ball stage, or nothing when μ = 0 (nesterov then needs μ > 0)."""
    momentum = check_hyperparameter(momentum, "momentum", high=1.0, high_inclusive=False)
    if nesterov and is_off(momentum):
        raise ValueError(
            "nesterov=True needs a momentum > 0 (got momentum=0); set e.g. momentum=0.9."
        )
    return () if is_off(momentum) else (trace(momentum, nesterov=nesterov),)


def sgd(
    learning_rate: float | Schedule = 1e-3,
    momentum: float = 0.0,
    *,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Stochastic gradient descent with optional momentum and L2 weight decay:

        g ← g + λ·θ                                   (weight_decay = λ)
        vₜ = μ·vₜ₋₁ + g,   v₀ = 0                       (momentum = μ)
        d = g + μ·vₜ  if nesterov  else  vₜ             (d = g when μ = 0)
        θ ← θ − ηₜ·d

    PyTorch's `torch.optim.SGD` semantics with dampening = 0, and its default η = 1e-3
    (every alias has a default learning rate; optax's `sgd` requires one). optax's `sgd` has
    no weight decay argument; TF's momentum accumulates −η·g, which differs under a schedule.
    Chain: [add_decayed_weights] → [trace] → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        *weight_decay_stages(weight_decay),
        *_momentum(momentum, nesterov),
        scale_by_learning_rate(lr),
    )


def rmsprop(
    learning_rate: float | Schedule = 1e-2,
    decay: float = 0.9,
    eps: float = 1e-8,
    *,
    momentum: float = 0.0,
    centered: bool = False,
    eps_in_sqrt: bool = False,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """RMSProp (Hinton 2012) with PyTorch's and optax/TF's conventions reachable by flags:

        g ← g + λ·θ                                     (weight_decay = λ)
        sₜ = ρ·sₜ₋₁ + (1−ρ)·g²,   s₀ = 0                  (decay = ρ)
        centered: mₜ = ρ·mₜ₋₁ + (1−ρ)·g,  s̃ = sₜ − mₜ²,  else s̃ = sₜ
        d = g/(√s̃ + ε)      or  g/√(s̃ + ε)  with eps_in_sqrt
        bₜ = μ·bₜ₋₁ + d,  d ← bₜ                          (momentum = μ > 0)
        θ ← θ − ηₜ·d

    Defaults follow PyTorch (ε outside the root) except ρ = 0.9 (PyTorch: α = 0.99). optax's
    `rmsprop` puts ε inside the root (`eps_in_sqrt=True`). TF's momentum buffers −η·d.
    Chain: [add_decayed_weights] → scale_by_rms → [trace] → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        *weight_decay_stages(weight_decay),
        scale_by_rms(decay, eps, eps_in_sqrt=eps_in_sqrt, centered=centered),
        *_momentum(momentum, False),
        scale_by_learning_rate(lr),
    )


def adam(
    learning_rate: float | Schedule = 3e-4,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    fused: bool | None = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam (Kingma & Ba 2015) with optional coupled L2 weight decay, t counting from 1:

        g ← g + λ·θ                                      (weight_decay = λ, coupled L2)
        mₜ = β₁·mₜ₋₁ + (1−β₁)·g,   vₜ = β₂·vₜ₋₁ + (1−β₂)·g²
        m̂ = mₜ/(1−β₁ᵗ),   v̂ = vₜ/(1−β₂ᵗ)
        θ ← θ − ηₜ·m̂/(√v̂ + ε)

    `weight_decay` matches PyTorch's `Adam(weight_decay=λ)` (the decay term is rescaled by
    √v̂, unlike AdamW — use `adamw` for decoupled decay). optax's `adam` has no decay. ε
    placement matches PyTorch/optax; TF's ε̂ is added before bias correction.
    `mu_dtype`/`nu_dtype` store m and v in another dtype (e.g. float32 moments for bf16
    params); by default each moment keeps its parameter's dtype.
    `amsgrad=True` is torch's `Adam(amsgrad=True)`: v_maxₜ = max(v_maxₜ₋₁, vₜ) and
    θ ← θ − ηₜ·m̂/(√v_maxₜ/√(1−β₂ᵗ) + ε) (see `scale_by_amsgrad` for optax's other placement).
    `fused=True` computes m̂, v̂ regrouped on the old moments, m̂ = β₁/(1−β₁ᵗ)·mₜ₋₁ +
    (1−β₁)/(1−β₁ᵗ)·g (one loop per leaf where XLA fuses sibling loops); `fused=False` uses the
    textbook m̂ = mₜ/(1−β₁ᵗ) above; None (default) picks by backend as `scale_by_adam` documents.
    Chain: [add_decayed_weights] → scale_by_adam (scale_by_amsgrad if amsgrad) →
    scale_by_learning_rate.

    >>> import jax.numpy as jnp
    >>> from funcnn import optim
    >>> opt = optim.adam(0.1)
    >>> params = {"w": jnp.array([1.0, -2.0])}
    >>> state = opt.init(params)
    >>> updates, state = opt.update({"w": jnp.array([0.5, -3.0])}, state, params)
    >>> print(optim.apply_updates(params, updates)["w"])  # t = 1: each θᵢ moves by η
    [ 0.9 -1.9]
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        *weight_decay_stages(weight_decay),
        scale_by_adam(
            b1, b2, eps, amsgrad=amsgrad, fused=fused, mu_dtype=mu_dtype, nu_dtype=nu_dtype
        ),
        scale_by_learning_rate(lr),
    )


def adamw(
    learning_rate: float | Schedule = 3e-4,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.01,
    mask: MaskOrFn | None = None,
    amsgrad: bool = False,
    fused: bool | None = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdamW (Loshchilov & Hutter 2019): Adam plus decoupled weight decay, t from 1:

        mₜ = β₁·mₜ₋₁ + (1−β₁)·g,   vₜ = β₂·vₜ₋₁ + (1−β₂)·g²
        m̂ = mₜ/(1−β₁ᵗ),   v̂ = vₜ/(1−β₂ᵗ)
        θ ← θ − ηₜ·(m̂/(√v̂ + ε) + λ·θ·maskᵢ)            (weight_decay = λ)

    The decay is multiplied by ηₜ (as in PyTorch's `AdamW` and optax's `adamw`); the paper
    scales it by the schedule multiplier ηₜ/η only. `mask` (a pytree of bools, or a function
    of the params such as `funcnn.params.decay_mask`, which selects ≥2-D weights as nanoGPT
    does) chooses the decayed leaves; the others get plain Adam. `mu_dtype`/`nu_dtype`,
    `amsgrad` (torch's `AdamW(amsgrad=True)`: √v̂ → √v_maxₜ/√(1−β₂ᵗ)) and `fused` (the
    regrouped one-pass m̂, v̂ or the textbook ones; None: by backend) as in `adam`.
    Chain: scale_by_adam (scale_by_amsgrad if amsgrad) → [add_decayed_weights(mask)] →
    scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        scale_by_adam(
            b1, b2, eps, amsgrad=amsgrad, fused=fused, mu_dtype=mu_dtype, nu_dtype=nu_dtype
        ),
        *weight_decay_stages(weight_decay, mask),
        scale_by_learning_rate(lr),
    )


# --- the rest of torch.optim ------------------------------------------------------------


def adagrad(
    learning_rate: float | Schedule = 1e-2,
    *,
    lr_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    weight_decay: float = 0.0,
    eps_in_sqrt: bool = False,
) -> GradientTransformation:
    """Adagrad (Duchi, Hazan & Singer 2011) with torch.optim.Adagrad's semantics and defaults:

        g ← g + λ·θ                                          (weight_decay = λ)
        sₜ = sₜ₋₁ + g²,   s₀ = `initial_accumulator_value`
        η̃ₜ = ηₜ / (1 + (t−1)·`lr_decay`)
        θ ← θ − η̃ₜ·g/(√sₜ + ε)        (or g/√(sₜ + ε) with eps_in_sqrt, optax's placement)

    `current_learning_rate` reports η̃ₜ. optax's `adagrad` has no decay terms and defaults
    to s₀ = 0.1, ε = 1e-7, ε inside the root: `adagrad(η, initial_accumulator_value=0.1,
    eps=1e-7, eps_in_sqrt=True)` reproduces it.
    Chain: [add_decayed_weights] → scale_by_adagrad → scale_by_learning_rate(η̃).
    """
    schedule = as_schedule(learning_rate, "learning_rate")
    lr_decay = check_hyperparameter(lr_decay, "lr_decay")

    def decayed(step: Any) -> Any:  # step = t − 1, the updates already applied
        return schedule(step) / (1 + step * lr_decay)

    return chain(
        *weight_decay_stages(weight_decay),
        scale_by_adagrad(initial_accumulator_value, eps, eps_in_sqrt=eps_in_sqrt),
        scale_by_learning_rate(schedule if is_off(lr_decay) else decayed),
    )


def adadelta(
    learning_rate: float | Schedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    *,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Adadelta (Zeiler 2012) with torch.optim.Adadelta's semantics and defaults:

        g ← g + λ·θ                                          (weight_decay = λ)
        E[g²]ₜ = ρ·E[g²]ₜ₋₁ + (1−ρ)·g²
        d = √(E[Δ²]ₜ₋₁ + ε)/√(E[g²]ₜ + ε)·g,   E[Δ²]ₜ = ρ·E[Δ²]ₜ₋₁ + (1−ρ)·d²
        θ ← θ − ηₜ·d

    optax's `adadelta` is the same with no default learning rate.
    Chain: [add_decayed_weights] → scale_by_adadelta → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        *weight_decay_stages(weight_decay), scale_by_adadelta(rho, eps), scale_by_learning_rate(lr)
    )


def adamax(
    learning_rate: float | Schedule = 2e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Adamax (Kingma & Ba 2015, §7.1) with torch.optim.Adamax's semantics and defaults:

        g ← g + λ·θ                                          (weight_decay = λ)
        mₜ = β₁·mₜ₋₁ + (1−β₁)·g,   uₜ = max(β₂·uₜ₋₁, |g| + ε)
        θ ← θ − ηₜ·mₜ/((1−β₁ᵗ)·uₜ)

    optax's `adamax` places ε the same way, inside the max (see `scale_by_adamax`).
    Chain: [add_decayed_weights] → scale_by_adamax → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        *weight_decay_stages(weight_decay), scale_by_adamax(b1, b2, eps), scale_by_learning_rate(lr)
    )


def nadam(
    learning_rate: float | Schedule = 2e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    """NAdam (Dozat 2016) with torch.optim.NAdam's μₜ momentum schedule and defaults:

        g ← g + λ·θ                                  (weight_decay = λ, unless decoupled)
        μₜ = β₁·(1 − ½·0.96^(t·ψ)),   Πₜ = ∏ₛ≤ₜ μₛ        (momentum_decay = ψ)
        mₜ = β₁·mₜ₋₁ + (1−β₁)·g,   vₜ = β₂·vₜ₋₁ + (1−β₂)·g²,   D = √(vₜ/(1−β₂ᵗ)) + ε
        d = (1−μₜ)/(1−Πₜ)·g/D + μₜ₊₁/(1−Πₜμₜ₊₁)·mₜ/D
        θ ← θ − ηₜ·(d + λ·θ if decoupled_weight_decay else d)

    `decoupled_weight_decay=True` is torch's NAdamW-style decay (θ ← θ(1 − ηₜλ) first).
    optax's `nadam` has no μ schedule (see `scale_by_nadam`).
    Chain: [add_decayed_weights] → scale_by_nadam → [add_decayed_weights] →
    scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    decay = weight_decay_stages(weight_decay)
    before, after = ((), decay) if decoupled_weight_decay else (decay, ())
    return chain(
        *before,
        scale_by_nadam(b1, b2, eps, momentum_decay=momentum_decay),
        *after,
        scale_by_learning_rate(lr),
    )


def radam(
    learning_rate: float | Schedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    """RAdam (Liu et al. 2020) with torch.optim.RAdam's semantics and defaults:

        g ← g + λ·θ                                  (weight_decay = λ, unless decoupled)
        mₜ, vₜ as Adam,   m̂ = mₜ/(1−β₁ᵗ),   ρ∞ = 2/(1−β₂) − 1,   ρₜ = ρ∞ − 2tβ₂ᵗ/(1−β₂ᵗ)
        d = rₜ·m̂·√(1−β₂ᵗ)/(√vₜ + ε)  if ρₜ > 5  else  m̂      (rₜ: see scale_by_radam)
        θ ← θ − ηₜ·(d + λ·θ if decoupled_weight_decay else d)

    `decoupled_weight_decay=True` is torch's RAdamW (the authors' implementation).
    optax's `radam` adds ε to the bias-corrected √v̂ (see `scale_by_radam`).
    Chain: [add_decayed_weights] → scale_by_radam → [add_decayed_weights] →
    scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    decay = weight_decay_stages(weight_decay)
    before, after = ((), decay) if decoupled_weight_decay else (decay, ())
    return chain(*before, scale_by_radam(b1, b2, eps), *after, scale_by_learning_rate(lr))


def rprop(
    learning_rate: float = 1e-2,
    *,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
) -> GradientTransformation:
    """Rprop with torch.optim.Rprop's semantics and defaults, elementwise:

        sₜ = sign(g·g̃ₜ₋₁),   Δₜ = clip(Δₜ₋₁·(η₊ | η₋ | 1 for sₜ > 0 | < 0 | = 0), Δmin, Δmax)
        g̃ₜ = 0 where sₜ < 0 else g,   θ ← θ − sign(g̃ₜ)·Δₜ,     Δ₀ = `learning_rate`, g̃₀ = 0

    As in torch, `learning_rate` is only the initial step size Δ₀ (a number ≥ 0, not a
    schedule: torch reads it once, and Rprop's steps are lengths, so a schedule would have
    no torch meaning); `etas` = (η₋, η₊), `step_sizes` = (Δmin, Δmax). The first step is
    θ ← θ − Δ₀·sign(g). Full-batch gradients only (the method assumes them).
    Chain: scale_by_rprop → scale_by_learning_rate(1) (the sign flip; it reports η = 1).
    """
    if callable(learning_rate):
        raise TypeError(
            "rprop's learning_rate is the initial step size Δ₀ (torch reads it once), so it "
            f"must be a number, got the schedule learning_rate={learning_rate!r}; to scale "
            "every step by a schedule, chain(rprop(Δ₀), optim.scale(...)) is explicit."
        )
    learning_rate = check_hyperparameter(learning_rate, "learning_rate")
    check_rprop_bounds(etas, step_sizes)
    return chain(
        scale_by_rprop(learning_rate, etas=etas, step_sizes=step_sizes), scale_by_learning_rate(1.0)
    )


def asgd(
    learning_rate: float | Schedule = 1e-2,
    *,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """Averaged SGD (Polyak & Juditsky 1992; Bottou 2012's step sizes) as torch.optim.ASGD:

        g ← g + λ_wd·θ                                  (weight_decay = λ_wd)
        η̃ₜ = ηₜ / (1 + λ·ηₜ·(t−1))^α                    (lambd = λ, alpha = α)
        θₜ = θₜ₋₁·(1 − λ·η̃ₜ) − η̃ₜ·g  =  θₜ₋₁ − η̃ₜ·(g + λ·θₜ₋₁)
        μₜ = 1/max(1, t − 1 − t₀),   θ̄ₜ = θₜ if μₜ = 1 else θ̄ₜ₋₁ + μₜ·(θₜ − θ̄ₜ₋₁)

    The averaged parameters θ̄ are `optim.averaged_params(state)` (torch's
    `state[p]["ax"]`); `current_learning_rate` reports η̃ₜ. With a schedule, η̃ₜ uses
    schedule(t − 1) directly (torch recomputes η̃ at the end of each step from the
    then-current lr, i.e. one scheduler step behind). optax has no ASGD.
    Chain: [add_decayed_weights(λ_wd)] → [add_decayed_weights(λ)] →
    scale_by_learning_rate(η̃) → average_params(t₀).
    """
    schedule = as_schedule(learning_rate, "learning_rate")
    lambd = check_hyperparameter(lambd, "lambd")
    alpha = check_hyperparameter(alpha, "alpha")

    def decayed(step: Any) -> Any:  # step = t − 1, the updates already applied
        lr = schedule(step)
        return lr / (1 + lambd * lr * step) ** alpha

    return chain(
        *weight_decay_stages(weight_decay),
        *weight_decay_stages(lambd),  # torch's λ·θ term, validated above as lambd
        scale_by_learning_rate(decayed),
        average_params(t0),
    )


# --- Lion and LAMB, as optax ------------------------------------------------------------


def lion(
    learning_rate: float | Schedule = 1e-4,
    b1: float = 0.9,
    b2: float = 0.99,
    *,
    weight_decay: float = 0.0,
    mask: MaskOrFn | None = None,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """Lion (Chen et al. 2023, Program 1), as optax's `lion`:

        cₜ = β₁·mₜ₋₁ + (1−β₁)·g
        θ ← θ − ηₜ·(sign(cₜ) + λ·θ·maskᵢ)                 (weight_decay = λ, decoupled)
        mₜ = β₂·mₜ₋₁ + (1−β₂)·g,   m₀ = 0

    Every step moves each entry by exactly ηₜ (plus the decay), so Lion wants a learning
    rate 3-10× smaller than AdamW's and λ 3-10× larger (the paper's advice). Defaults are
    optax's except λ = 0 (optax: 1e-3). `mask` selects decayed leaves as in `adamw`;
    `mu_dtype` stores m in another dtype. torch has no Lion.
    Chain: scale_by_lion → [add_decayed_weights(mask)] → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        scale_by_lion(b1, b2, mu_dtype=mu_dtype),
        *weight_decay_stages(weight_decay, mask),
        scale_by_learning_rate(lr),
    )


def lamb(
    learning_rate: float | Schedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    *,
    weight_decay: float = 0.0,
    mask: MaskOrFn | None = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """LAMB (You et al. 2020, Algorithm 2), as optax's `lamb`, per parameter leaf l:

        mₜ, vₜ, m̂, v̂ as Adam (t from 1),   rₗ = m̂/(√v̂ + ε) + λ·θₗ·maskₗ  (weight_decay = λ)
        φₗ = ‖θₗ‖/‖rₗ‖,   φₗ = 1 where ‖θₗ‖ = 0 or ‖rₗ‖ = 0       (norms over the leaf)
        θₗ ← θₗ − ηₜ·φₗ·rₗ

    Each leaf's step has length ηₜ·‖θₗ‖ (relative to its size), so large-batch training can
    use one η for every layer. ε sits outside the root, after bias correction (optax; the
    paper's algorithm is the same). `mask` selects decayed leaves as in `adamw`;
    `mu_dtype`/`nu_dtype` as in `adam`. torch has no LAMB.
    Chain: scale_by_adam → [add_decayed_weights(mask)] → scale_by_trust_ratio →
    scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        scale_by_adam(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        *weight_decay_stages(weight_decay, mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(lr),
    )


# --- Adafactor, Muon, schedule-free AdamW ---------------------------------------------------


def _adafactor_eps(eps: Any) -> tuple[float | None, float]:
    """eps = (ε₁, ε₂): ε₁ None or > 0, ε₂ ≥ 0; else a TypeError/ValueError naming eps."""
    if not isinstance(eps, (tuple, list)):
        raise TypeError(f"eps must be a pair (ε₁, ε₂) such as (None, 1e-3), got eps={eps!r}.")
    if len(eps) != 2:
        raise ValueError(
            f"eps must be a pair (ε₁, ε₂) of two values, got {len(eps)} values: eps={tuple(eps)!r}."
        )
    eps1 = None if eps[0] is None else check_hyperparameter(eps[0], "eps[0]", low_inclusive=False)
    return eps1, check_hyperparameter(eps[1], "eps[1]")


def adafactor(
    learning_rate: float | Schedule = 1e-2,
    *,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
    weight_decay: float = 0.0,
    mask: MaskOrFn | None = None,
) -> GradientTransformation:
    """Adafactor (Shazeer & Stern 2018) with torch.optim.Adafactor's semantics, t from 1:

        β̂₂ₜ = 1 − t^τ,   ρₜ = min(ηₜ, 1/√t),   αₜ = ρₜ·max(ε₂, RMS(θₜ₋₁))      per leaf
        leaf G (…, n, m):  Rₜ = β̂₂ₜRₜ₋₁ + (1−β̂₂ₜ)·meanⱼG²  (…, n),
                           Cₜ = β̂₂ₜCₜ₋₁ + (1−β̂₂ₜ)·meanᵢG²  (…, m),
                           V̂ = Rₜ⊗Cₜ / max(meanᵢRₜ, ε₁)      (…, n, m)
        leaf of rank < 2:  V̂ = Vₜ = β̂₂ₜVₜ₋₁ + (1−β̂₂ₜ)·G²
        U = G/max(√V̂, ε₁),   Û = U/max(1, RMS(U)/d)
        θ ← θ − ηₜ·λ·θ − αₜ·Û                             (weight_decay = λ, masked)

    `beta2_decay` = τ ≤ 0, `eps` = (ε₁, ε₂) with ε₁ None (the machine epsilon of each
    leaf's dtype, torch's default) or > 0 and ε₂ ≥ 0, `d` ≥ 1 the clipping threshold.
    Steps are relative: η caps the relative step ρₜ (the paper's fixed 0.01), so the
    default η = 1e-2 moves each leaf by about 1% of its RMS per step early on, and the decay
    is decoupled and scaled by ηₜ (not ρₜ), both as torch. `mask` selects decayed leaves as
    in `adamw` (torch decays every leaf). ε₁ = 0, which torch accepts, is a ValueError here:
    a zero gradient row would give 0/0. Memory: a (…, n, m) leaf keeps (…, n + m) numbers.
    optax's `adafactor` differs: its learning rate is an absolute step (no min(η, 1/√t)),
    it adds ε = 1e-30 to G² inside the averages instead of torch's floors, it factors only
    the two largest axes when both have ≥ 128 entries (smaller matrices get a full V), its
    decay is not multiplied by η, and it has an optional momentum.
    Chain: scale_by_factored_rms → clip_by_block_rms(d) → scale_by_param_block_rms(ε₂) →
    scale_by_relative_step(η) → [add_decayed_weights(mask)] → scale_by_learning_rate(η).
    """
    lr = as_schedule(learning_rate, "learning_rate")
    eps1, eps2 = _adafactor_eps(eps)
    d = check_hyperparameter(d, "d", low=1.0)
    return chain(
        scale_by_factored_rms(beta2_decay, eps1),
        clip_by_block_rms(d),
        scale_by_param_block_rms(eps2),
        scale_by_relative_step(lr),
        *weight_decay_stages(weight_decay, mask),
        scale_by_learning_rate(lr),
    )


def muon(
    learning_rate: float | Schedule = 1e-3,
    *,
    weight_decay: float = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = MUON_NS_COEFFICIENTS,
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """Muon (Jordan et al. 2024) with torch.optim.Muon's semantics, for 2-D leaves W (A, B):

        Bₜ = μ·Bₜ₋₁ + (1−μ)·g,   B₀ = 0                             (momentum = μ)
        B̃ = (1−μ)·g + μ·Bₜ  if nesterov  else  Bₜ
        O = NS_K(B̃ / max(‖B̃‖_F, ε))      K Newton–Schulz steps X ← aX + (bXXᵀ + c(XXᵀ)²)X
        θ ← θ − ηₜ·λ·θ − ηₜ·r·O                                     (weight_decay = λ)
        r = √max(1, A/B)  (adjust_lr_fn None or "original"),  0.2·√max(A, B) ("match_rms_adamw")

    O ≈ U·Vᵀ for B̃ = U·S·Vᵀ: every direction of the matrix moves by about the same amount.
    Muon is for the 2-D hidden-layer weights only: any other leaf is a ValueError naming it.
    Give embeddings, biases, norms (and usually the output layer) another optimizer with
    `partition`, e.g. `partition({"muon": muon(0.02), "adamw": adamw(3e-4)}, labels)` with
    labels = lambda p: jax.tree.map(lambda x: "muon" if x.ndim == 2 else "adamw", p).
    A and B are the stored axes: funcnn's dense `w` is (in, out), torch's Linear.weight
    (out, in) — see `scale_by_shape`. torch runs Newton–Schulz in bfloat16, funcnn in the
    leaf's compute dtype (≥ float32). The decay uses the unadjusted ηₜ, as torch.
    optax's `contrib.muon` bias-corrects the momentum, divides by ‖B̃‖_F + ε, routes
    non-2-D leaves to Adam itself and has no shape adjustment by default.
    Chain: ema_momentum(μ, nesterov) → orthogonalize_by_newton_schulz → scale_by_shape →
    [add_decayed_weights] → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        ema_momentum(momentum, nesterov=nesterov, mu_dtype=mu_dtype),
        orthogonalize_by_newton_schulz(ns_coefficients, ns_steps, eps),
        scale_by_shape(adjust_lr_fn),
        *weight_decay_stages(weight_decay),
        scale_by_learning_rate(lr),
    )


def schedule_free_adamw(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    weight_lr_power: float = 2.0,
) -> GradientTransformation:
    """Schedule-free AdamW (Defazio et al. 2024) with optax's `contrib.schedule_free_adamw`
    semantics. Params y hold the gradient point; per update t = 1, 2, …:

        γ(s) = η(s)·min(s, W)/W  (W = warmup_steps > 0),  γ(s) = η(s)  (W = 0)
        vₜ = β₂·vₜ₋₁ + (1−β₂)·g²,   v̂ = vₜ/(1−β₂ᵗ)
        zₜ = zₜ₋₁ − γ(t−1)·(g/(√v̂ + ε) + λ·yₜ₋₁)                    z₀ = y₀
        γ̄ₜ = max(γ̄ₜ₋₁, γ(t)),   cₜ = γ̄ₜ²/Σₖ≤ₜ γ̄ₖ²
        xₜ = (1−cₜ)·xₜ₋₁ + cₜ·zₜ,   x₀ = y₀
        yₜ = β₁·xₜ + (1−β₁)·zₜ

    No momentum buffer and no decaying schedule: β₁ interpolates between the average x and
    the iterate z instead. Evaluate the model at x = `schedule_free_eval_params(params,
    state)`, not at y. `b1` ∈ (0, 1), `b2` ∈ [0, 1), `eps` > 0, `weight_decay` = λ ≥ 0
    (applied at y, scaled by γ, as optax), `warmup_steps` = W ≥ 0 (a linear warmup from 0,
    optax's `warmup_constant_schedule`). Note the averaging weight reads γ one step ahead of
    the z step (optax's convention; see `schedule_free`). torch has no schedule-free
    optimizer (Meta's `schedulefree` package is the paper's reference code).
    Chain: schedule_free(scale_by_adam_rms → [add_decayed_weights] → scale_by_learning_rate).
    """
    warmup_steps = check_nonnegative_int(warmup_steps, "warmup_steps")
    base_rate = as_schedule(learning_rate, "learning_rate")
    if warmup_steps > 0:

        def rate(step):
            fraction = jnp.minimum(
                jnp.asarray(step).astype(jnp.result_type(float)) / warmup_steps, 1
            )
            return base_rate(step) * fraction

    else:
        rate = base_rate
    base = chain(
        scale_by_adam_rms(b2, eps),
        *weight_decay_stages(weight_decay),
        scale_by_learning_rate(rate),
    )
    return schedule_free(base, rate, b1, weight_lr_power=weight_lr_power)
