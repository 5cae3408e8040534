"""The named optimizers: each a short `chain` of the transforms in `transforms.py`.

Every alias returns a `GradientTransformation`; `learning_rate` may be a number or a
schedule `step -> η` (first update uses schedule(0)). Hyperparameters are validated here,
when the optimizer is built. The equations use g for the gradient, θ for the parameters,
ηₜ for the learning rate at the t-th update (t = 1, 2, …).
"""

from __future__ import annotations

from typing import Any

from funcnn.optim.base import (
    GradientTransformation,
    Schedule,
    as_schedule,
    chain,
    check_hyperparameter,
)
from funcnn.optim.transforms import (
    MaskOrFn,
    add_decayed_weights,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_rms,
    trace,
)

__all__ = [
    "adam",
    "adamw",
    "rmsprop",
    "sgd",
]


def _weight_decay(weight_decay: float) -> list[GradientTransformation]:
    """The coupled-L2 stage g ← g + λθ, or nothing when λ = 0 (no wasted pass)."""
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")
    return [add_decayed_weights(weight_decay)] if weight_decay > 0 else []


def _momentum(momentum: float, nesterov: bool) -> list[GradientTransformation]:
    momentum = check_hyperparameter(momentum, "momentum", high=1.0, high_inclusive=False)
    if nesterov and momentum == 0:
        raise ValueError(
            "nesterov=True needs a momentum > 0 (got momentum=0); set e.g. momentum=0.9."
        )
    return [trace(momentum, nesterov=nesterov)] if momentum > 0 else []


def sgd(
    learning_rate: float | Schedule,
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

    PyTorch's `torch.optim.SGD` semantics with dampening = 0. optax's `sgd` has no weight
    decay argument; TF's momentum accumulates −η·g, which differs under a schedule.
    Chain: [add_decayed_weights] → [trace] → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        *_weight_decay(weight_decay), *_momentum(momentum, nesterov), scale_by_learning_rate(lr)
    )


def rmsprop(
    learning_rate: float | Schedule,
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
        *_weight_decay(weight_decay),
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
    Chain: [add_decayed_weights] → scale_by_adam → scale_by_learning_rate.

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
        *_weight_decay(weight_decay),
        scale_by_adam(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
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
    does) chooses the decayed leaves; the others get plain Adam. `mu_dtype`/`nu_dtype` as
    in `adam`.
    Chain: scale_by_adam → add_decayed_weights(mask) → scale_by_learning_rate.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")
    decay_stage = [add_decayed_weights(weight_decay, mask)] if weight_decay > 0 else []
    return chain(
        scale_by_adam(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        *decay_stage,
        scale_by_learning_rate(lr),
    )
