"""Learning-rate-free optimizers, which estimate the step from the distance travelled:
optax.contrib's `prodigy`, `dadapt_adamw`, `dog`, `dowg` and `cocob`, and `mechanize`, which
learns the scale of any optimizer's updates.

Notation as in `transforms.py`; t is the 1-based step number. The estimate d of the
distance to the solution lives in the state and only grows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import PyTreeDef

from funcnn.optim._tree import compute_dtype, is_off, unzip, upcast
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
    tree_zeros_like,
)
from funcnn.optim.decay import add_decayed_weights
from funcnn.optim.routing import MaskOrFn, _mask_tree
from funcnn.optim.scaling import scale, scale_by_learning_rate

__all__ = [
    "COCOBState",
    "DAdaptAdamWState",
    "DoGState",
    "DoWGState",
    "MechanicState",
    "ProdigyState",
    "cocob",
    "dadapt_adamw",
    "dog",
    "dowg",
    "mechanize",
    "prodigy",
    "scale_by_cocob",
    "scale_by_dog",
    "scale_by_dowg",
]


def _tree_sum(values: list[Array]) -> Array:
    return sum(values[1:], values[0])


class ProdigyState(NamedTuple):
    """exp_avg: m. exp_avg_sq: v. grad_sum: s, the weighted sum of d-scaled gradients.
    params0: θ₀. estim_lr: the distance estimate d (0-d). numerator_weighted: r (0-d).
    count: int32 scalar, updates done. (optax's fields.)"""

    exp_avg: Params
    exp_avg_sq: Params
    grad_sum: Params
    params0: Params
    estim_lr: Array
    numerator_weighted: Array
    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do


def prodigy(
    learning_rate: float | Schedule = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    beta3: float | None = None,
    eps: float = 1e-8,
    estim_lr0: float = 1e-6,
    estim_lr_coef: float = 1.0,
    weight_decay: float = 0.0,
    safeguard_warmup: bool = False,
    weight_decay_mask: MaskOrFn | None = None,
) -> GradientTransformation:
    """Prodigy (Mishchenko & Defazio 2024, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner", Algorithm 4 with Adam), as optax.contrib's `prodigy`, with d the
    distance estimate (d₀ = estim_lr0) and η = learning_rate(t − 1) a multiplier (1 = none):

        η̂ = d·η·√(1−β₂ᵗ)/(1−β₁ᵗ)
        m = β₁m + (1−β₁)·d·g,   v = β₂v + (1−β₂)·d²·g²
        s = β₃s + (η̂, or d with safeguard_warmup)·d·g/d₀
        r = β₃r + (d/d₀)·η̂·⟨g, θ₀ − θ⟩
        d' = max(d, estim_lr_coef·r/‖s‖₁)     (η̂ uses it from the next step on)
        θ ← θ − η̂·(m/(√v + d'·ε) + λ·θ)     (λθ on the leaves `weight_decay_mask` selects)

    `betas` = (β₁, β₂), `beta3` = β₃ (√β₂ if None). The step's scale comes from d, which
    grows from d₀ as the iterates move away from θ₀: no learning rate to tune. Needs the
    params. torch has no Prodigy (the authors' package follows the same update).
    """
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (β₁, β₂), got betas={betas!r}.")
    b1 = check_hyperparameter(betas[0], "betas[0]", high=1.0, high_inclusive=False)
    b2 = check_hyperparameter(betas[1], "betas[1]", high=1.0, high_inclusive=False)
    b3 = b2**0.5 if beta3 is None else check_hyperparameter(beta3, "beta3", high=1.0)
    eps = check_hyperparameter(eps, "eps")
    d0 = check_hyperparameter(estim_lr0, "estim_lr0", low_inclusive=False)
    coef = check_hyperparameter(estim_lr_coef, "estim_lr_coef", low_inclusive=False)
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")
    schedule = as_schedule(learning_rate, "learning_rate")

    def init(params: Params) -> ProdigyState:
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return ProdigyState(
            tree_zeros_like(params),
            tree_zeros_like(params),
            tree_zeros_like(params),
            jax.tree.map(jnp.copy, params),
            jnp.asarray(d0, dtype),
            jnp.zeros([], dtype),
            jnp.zeros([], jnp.int32),
        )

    def update(updates: Updates, state: ProdigyState, params: Params | None = None, **extra):
        del extra
        if params is None:
            raise ValueError("prodigy needs the params: call update(grads, state, params).")
        count = safe_increment(state.count)
        d = state.estim_lr
        dtype = d.dtype
        t = count.astype(dtype)
        lr = jnp.asarray(schedule(state.count)).astype(dtype)
        dlr = d * lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        inner = _tree_sum(
            [
                jnp.sum(upcast(g).astype(dtype) * (p0 - p).astype(dtype))
                for g, p0, p in zip(
                    jax.tree.leaves(updates),
                    jax.tree.leaves(state.params0),
                    jax.tree.leaves(params),
                    strict=True,
                )
            ]
        )
        decayed = (
            jax.tree.map(lambda _: True, params)
            if weight_decay_mask is None
            else _mask_tree(weight_decay_mask, params)
        )
        s_weight = d if safeguard_warmup else dlr

        def leaf(g, m, v, s):
            dg = d * upcast(g).astype(dtype)
            m_new = b1 * m.astype(dtype) + (1 - b1) * dg
            v_new = b2 * v.astype(dtype) + (1 - b2) * dg * dg
            s_new = b3 * s.astype(dtype) + s_weight * dg / d0
            return m_new, v_new, s_new

        treedef: PyTreeDef = jax.tree.structure(updates)
        m, v, s = unzip(
            jax.tree.map(leaf, updates, state.exp_avg, state.exp_avg_sq, state.grad_sum),
            updates,
            3,
        )
        numerator = b3 * state.numerator_weighted + (d / d0) * dlr * inner
        l1 = _tree_sum([jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(s)])
        new_d = jnp.maximum(d, coef * numerator / l1)

        def step(g, p, m, v, chosen):
            # η̂ uses the d before this update, the ε term the new one (optax's order).
            u = -dlr * m / (jnp.sqrt(v) + new_d * eps)
            if chosen:
                u = u - weight_decay * dlr * p.astype(dtype)
            return u.astype(g.dtype)

        steps = treedef.unflatten(
            [
                step(*args)
                for args in zip(
                    jax.tree.leaves(updates),
                    jax.tree.leaves(params),
                    jax.tree.leaves(m),
                    jax.tree.leaves(v),
                    treedef.flatten_up_to(decayed),
                    strict=True,
                )
            ]
        )
        cast = lambda tree, like: jax.tree.map(lambda x, y: x.astype(y.dtype), tree, like)
        m, v, s = cast(m, state.exp_avg), cast(v, state.exp_avg_sq), cast(s, state.grad_sum)
        return steps, ProdigyState(m, v, s, state.params0, new_d, numerator, count)

    return GradientTransformation(init, update)


# --- DoG and DoWG: the step from the distance travelled ------------------------------------


def _tree_norm_sq(tree: Any) -> Array:
    """Σ x² over every leaf and entry."""
    return _tree_sum([jnp.sum(jnp.square(upcast(x))) for x in jax.tree.leaves(tree)])


def _distance_sq(a: Params, b: Params) -> Array:
    """‖a − b‖² over every leaf."""
    return _tree_sum(
        [
            jnp.sum(jnp.square(upcast(x) - upcast(y).astype(upcast(x).dtype)))
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        ]
    )


class DoGState(NamedTuple):
    """is_init_step: bool scalar. init_params: θ₀. max_dist: r̄ (0-d). sum_sq_norm_grads:
    G = Σ‖g‖² (0-d). (optax's fields.)"""

    is_init_step: Array
    init_params: Params
    max_dist: Array
    sum_sq_norm_grads: Array


_DOG_KINDS = ("distance", "learning_rate", "heuristic")


def scale_by_dog(init_step: tuple[str, float], eps: float = 1e-8) -> GradientTransformation:
    """DoG's step (Ivgi et al. 2023, "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step
    Size Schedule"), as optax.contrib's `scale_by_dog`:

        r̄ = max(r̄, ‖θ − θ₀‖),   G = G + ‖g‖²,   γ = r̄/√(G + ε),   d = γ·g

    `init_step` = (kind, value): r̄₀ = value ("distance"), value·(1 + ‖θ₀‖) ("heuristic"), or
    r̄₀ = 0 with γ = value at the first step ("learning_rate"). Needs the params.
    """
    if not isinstance(init_step, (tuple, list)) or len(init_step) != 2:
        raise TypeError(f"init_step must be a pair (kind, value), got init_step={init_step!r}.")
    kind, value = init_step
    if kind not in _DOG_KINDS:
        raise ValueError(f"init_step's kind must be one of {list(_DOG_KINDS)}, got {kind!r}.")
    value = check_hyperparameter(value, "init_step[1]", low_inclusive=False)
    eps = check_hyperparameter(eps, "eps")

    def init(params: Params) -> DoGState:
        dtype = jnp.result_type(*jax.tree.leaves(params))
        if kind == "distance":
            r0 = jnp.asarray(value, dtype)
        elif kind == "heuristic":
            r0 = (value * (1 + jnp.sqrt(_tree_norm_sq(params)))).astype(dtype)
        else:
            r0 = jnp.zeros([], dtype)
        zero = jnp.zeros([], dtype)
        return DoGState(jnp.asarray(True), jax.tree.map(jnp.copy, params), r0, zero)

    def update(updates: Updates, state: DoGState, params: Params | None = None, **extra: Any):
        del extra
        if params is None:
            raise ValueError("scale_by_dog needs the params: call update(grads, state, params).")
        dtype = state.max_dist.dtype
        max_dist = jnp.maximum(state.max_dist, jnp.sqrt(_distance_sq(state.init_params, params)))
        sum_sq = state.sum_sq_norm_grads + _tree_norm_sq(updates).astype(dtype)
        gamma = max_dist / jnp.sqrt(sum_sq + eps)
        if kind == "learning_rate":
            gamma = jnp.where(state.is_init_step, jnp.asarray(value, dtype), gamma)
        scaled = jax.tree.map(
            lambda g: (upcast(g) * gamma.astype(upcast(g).dtype)).astype(g.dtype), updates
        )
        return scaled, DoGState(jnp.asarray(False), state.init_params, max_dist, sum_sq)

    return GradientTransformation(init, update)


class DoWGState(NamedTuple):
    """init_params: θ₀. weighted_sq_norm_grads: v = Σ r̄²‖g‖² (0-d). estim_sq_dist: r̄²
    (0-d). (optax's fields.)"""

    init_params: Params
    weighted_sq_norm_grads: Array
    estim_sq_dist: Array


def scale_by_dowg(
    init_estim_sq_dist: float | None = None, eps: float = 1e-4
) -> GradientTransformation:
    """DoWG's step (Khaled et al. 2023, "DoWG Unleashed: An Efficient Universal
    Parameter-Free Gradient Descent Method"), as optax.contrib's `scale_by_dowg`:

        r̄² = max(r̄², ‖θ − θ₀‖²),   v = v + r̄²·‖g‖²,   γ = r̄²/(√v + ε),   d = γ·g

    r̄₀² = `init_estim_sq_dist` (ε if None). Needs the params.
    """
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)
    start = (
        eps
        if init_estim_sq_dist is None
        else check_hyperparameter(init_estim_sq_dist, "init_estim_sq_dist")
    )

    def init(params: Params) -> DoWGState:
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return DoWGState(
            jax.tree.map(jnp.copy, params), jnp.zeros([], dtype), jnp.asarray(start, dtype)
        )

    def update(updates: Updates, state: DoWGState, params: Params | None = None, **extra: Any):
        del extra
        if params is None:
            raise ValueError("scale_by_dowg needs the params: call update(grads, state, params).")
        dtype = state.estim_sq_dist.dtype
        sq_dist = jnp.maximum(
            state.estim_sq_dist, _distance_sq(state.init_params, params).astype(dtype)
        )
        weighted = state.weighted_sq_norm_grads + sq_dist * _tree_norm_sq(updates).astype(dtype)
        gamma = sq_dist / (jnp.sqrt(weighted) + eps)
        scaled = jax.tree.map(
            lambda g: (upcast(g) * gamma.astype(upcast(g).dtype)).astype(g.dtype), updates
        )
        return scaled, DoWGState(state.init_params, weighted, sq_dist)

    return GradientTransformation(init, update)


def _optional_decay(
    weight_decay: float | None, mask: MaskOrFn | None
) -> list[GradientTransformation]:
    if weight_decay is None:
        return []
    return [add_decayed_weights(check_hyperparameter(weight_decay, "weight_decay"), mask)]


def dog(
    learning_rate: float | Schedule = 1.0,
    init_step: tuple[str, float] = ("heuristic", 1e-6),
    eps: float = 1e-8,
    weight_decay: float | None = None,
    mask: MaskOrFn | None = None,
) -> GradientTransformation:
    """DoG (Ivgi et al. 2023), as optax.contrib's `dog`: θ ← θ − η·γ·(g + λθ) with DoG's
    γ = r̄/√(Σ‖g‖² + ε) (`scale_by_dog`; λθ only when weight_decay is not None, on the leaves
    `mask` selects, and inside the norms). η = learning_rate is a multiplier (1 = none).
    Chain: [add_decayed_weights] → scale_by_dog → scale_by_learning_rate."""
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        *_optional_decay(weight_decay, mask),
        scale_by_dog(init_step, eps),
        scale_by_learning_rate(lr),
    )


def dowg(
    learning_rate: float | Schedule = 1.0,
    init_estim_sq_dist: float | None = None,
    eps: float = 1e-4,
    weight_decay: float | None = None,
    mask: MaskOrFn | None = None,
) -> GradientTransformation:
    """DoWG (Khaled et al. 2023), as optax.contrib's `dowg`: θ ← θ − η·γ·(g + λθ) with DoWG's
    γ = r̄²/(√(Σ r̄²‖g‖²) + ε) (`scale_by_dowg`). Chain: [add_decayed_weights] →
    scale_by_dowg → scale_by_learning_rate."""
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(
        *_optional_decay(weight_decay, mask),
        scale_by_dowg(init_estim_sq_dist, eps),
        scale_by_learning_rate(lr),
    )


# --- COCOB: coin betting --------------------------------------------------------------------


class COCOBState(NamedTuple):
    """init_particles: θ₀. cumulative_gradients: C = −Σc. scale: L = max |c| (ε at start).
    subgradients: G = Σ|c|. reward: R. All shaped like the params. (optax's fields.)"""

    init_particles: Params
    cumulative_gradients: Params
    scale: Params
    subgradients: Params
    reward: Params


def scale_by_cocob(alpha: float = 100.0, eps: float = 1e-8) -> GradientTransformation:
    """COCOB-Backprop (Orabona & Tommasi 2017, "Training Deep Networks without Learning
    Rates Through Coin Betting", Algorithm 2), as optax.contrib's `scale_by_cocob`, per entry
    with c the incoming update (a gradient, *not* negated):

        L = max(L, |c|) (L₀ = ε),   G = G + |c|,   R = max(R − c·(θ − θ₀), 0),   C = C − c
        θ' = θ₀ + C/(L·max(G + L, α·L))·(L + R),    d = θ' − θ

    Needs the params. The step is a bet of the accumulated reward: no learning rate.
    """
    alpha = check_hyperparameter(alpha, "alpha", low_inclusive=False)
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)

    def init(params: Params) -> COCOBState:
        zeros = lambda: jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.result_type(p)), params)
        scale0 = jax.tree.map(lambda p: jnp.full(jnp.shape(p), eps, jnp.result_type(p)), params)
        return COCOBState(jax.tree.map(jnp.copy, params), zeros(), scale0, zeros(), zeros())

    def update(updates: Updates, state: COCOBState, params: Params | None = None, **extra: Any):
        del extra
        if params is None:
            raise ValueError("scale_by_cocob needs the params: call update(grads, state, params).")

        def leaf(c, p, p0, big_c, big_l, big_g, big_r):
            c32 = upcast(c)
            p32, p0_32 = upcast(p).astype(c32.dtype), upcast(p0).astype(c32.dtype)
            big_l = jnp.maximum(upcast(big_l), jnp.abs(c32))
            big_g = upcast(big_g) + jnp.abs(c32)
            big_r = jnp.maximum(upcast(big_r) - c32 * (p32 - p0_32), 0.0)
            big_c = upcast(big_c) - c32
            bet = big_c / (big_l * jnp.maximum(big_g + big_l, alpha * big_l)) * (big_l + big_r)
            d = p0_32 + bet - p32
            return d.astype(c.dtype), big_c, big_l, big_g, big_r

        out = jax.tree.map(
            leaf,
            updates,
            params,
            state.init_particles,
            state.cumulative_gradients,
            state.scale,
            state.subgradients,
            state.reward,
        )
        steps, big_c, big_l, big_g, big_r = unzip(out, updates, 5)
        cast = lambda tree, like: jax.tree.map(lambda x, y: x.astype(y.dtype), tree, like)
        return steps, COCOBState(
            state.init_particles,
            cast(big_c, state.cumulative_gradients),
            cast(big_l, state.scale),
            cast(big_g, state.subgradients),
            cast(big_r, state.reward),
        )

    return GradientTransformation(init, update)


def cocob(
    learning_rate: float | Schedule = 1.0,
    alpha: float = 100.0,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    mask: MaskOrFn | None = None,
) -> GradientTransformation:
    """COCOB-Backprop (Orabona & Tommasi 2017), as optax.contrib's `cocob`: c = η·(g + λθ)
    (η = learning_rate a multiplier, 1 = none; λθ on masked leaves), then `scale_by_cocob`.
    Chain: [add_decayed_weights] → scale_by_learning_rate(η) → scale(−1) (c keeps g's sign,
    optax's flip_sign=False) → scale_by_cocob."""
    lr = as_schedule(learning_rate, "learning_rate")
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")
    decay = [] if is_off(weight_decay) else [add_decayed_weights(weight_decay, mask)]
    return chain(*decay, scale_by_learning_rate(lr), scale(-1.0), scale_by_cocob(alpha, eps))


# --- D-Adaptation (AdamW) ---------------------------------------------------------------------


class DAdaptAdamWState(NamedTuple):
    """exp_avg: m (d-scaled). exp_avg_sq: v. grad_sum: s, the EMA of d-scaled gradients.
    estim_lr: the distance estimate d (0-d). numerator_weighted: r (0-d). count: int32
    scalar, updates done. (optax.contrib's fields.)"""

    exp_avg: Params
    exp_avg_sq: Params
    grad_sum: Params
    estim_lr: Array
    numerator_weighted: Array
    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do


def dadapt_adamw(
    learning_rate: float | Schedule = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    estim_lr0: float = 1e-6,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """D-Adaptation for AdamW (Defazio & Mishchenko 2023, "Learning-Rate-Free Learning by
    D-Adaptation", Algorithm 4), as optax.contrib's `dadapt_adamw`, with d the distance
    estimate (d₀ = estim_lr0), η = learning_rate(t − 1) a multiplier (1 = none; a schedule
    from 1 down to 0 is the authors' advice), b = √β₂, and s, v, m, r from the step before:

        η̂ = d·η·√(1−β₂ᵗ)/(1−β₁ᵗ)
        r = b·r + (1−b)·η̂·⟨g, s/(√v + ε)⟩               (old s and v)
        m = β₁m + (1−β₁)·η̂·g,   v = β₂v + (1−β₂)·g²,   s = b·s + (1−b)·η̂·g
        d' = max(d, r/((1−b)·‖s‖₁))                      (for the next step; d if ‖s‖₁ = 0)
        θ ← θ − m/(√v + ε) − λ·η̂·θ

    `betas` = (β₁, β₂) ∈ [0, 1), `eps` = ε ≥ 0, `weight_decay` = λ ≥ 0 (decoupled, on every
    leaf). d estimates the distance to the solution in the ∞-norm and only grows: no learning
    rate to tune. Needs the params. One stage (the step is m itself, d-scaled, so it cannot
    be split from the learning rate). optax divides by ‖s‖₁ = 0 (an all-zero gradient at the
    first step) and gets NaN; d stays there instead.
    """
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (β₁, β₂), got betas={betas!r}.")
    b1 = check_hyperparameter(betas[0], "betas[0]", high=1.0, high_inclusive=False)
    b2 = check_hyperparameter(betas[1], "betas[1]", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps")
    d0 = check_hyperparameter(estim_lr0, "estim_lr0", low_inclusive=False)
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")
    schedule = as_schedule(learning_rate, "learning_rate")
    root_b2 = b2**0.5

    def init(params: Params) -> DAdaptAdamWState:
        dtype = compute_dtype(jnp.result_type(*jax.tree.leaves(params)))  # ≥ float32
        return DAdaptAdamWState(
            tree_zeros_like(params),
            tree_zeros_like(params),
            tree_zeros_like(params),
            jnp.asarray(d0, dtype),
            jnp.zeros([], dtype),
            jnp.zeros([], jnp.int32),
        )

    def update(
        updates: Updates, state: DAdaptAdamWState, params: Params | None = None, **extra: Any
    ):
        del extra
        if params is None:
            raise ValueError("dadapt_adamw needs the params: call update(grads, state, params).")
        count = safe_increment(state.count)  # t
        d = state.estim_lr
        dtype = d.dtype
        t = count.astype(dtype)
        lr = jnp.asarray(schedule(state.count)).astype(dtype)
        dlr = d * lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)  # η̂, () in d's dtype
        # ⟨g, s/(√v + ε)⟩ with the s and v of the step before
        inner = _tree_sum(
            [
                jnp.sum(
                    upcast(g).astype(dtype) * s.astype(dtype) / (jnp.sqrt(v.astype(dtype)) + eps)
                )
                for g, s, v in zip(
                    jax.tree.leaves(updates),
                    jax.tree.leaves(state.grad_sum),
                    jax.tree.leaves(state.exp_avg_sq),
                    strict=True,
                )
            ]
        )

        def leaf(g, p, m, v, s):
            g_ = upcast(g).astype(dtype)
            m_new = b1 * m.astype(dtype) + (1 - b1) * dlr * g_
            v_new = b2 * v.astype(dtype) + (1 - b2) * g_ * g_
            s_new = root_b2 * s.astype(dtype) + (1 - root_b2) * dlr * g_
            step = -weight_decay * dlr * p.astype(dtype) - m_new / (jnp.sqrt(v_new) + eps)
            return (
                step.astype(g.dtype),
                m_new.astype(m.dtype),
                v_new.astype(v.dtype),
                s_new.astype(s.dtype),
            )

        out = jax.tree.map(leaf, updates, params, state.exp_avg, state.exp_avg_sq, state.grad_sum)
        steps, m, v, s = unzip(out, updates, 4)
        numerator = root_b2 * state.numerator_weighted + (1 - root_b2) * dlr * inner
        l1 = _tree_sum([jnp.sum(jnp.abs(x.astype(dtype))) for x in jax.tree.leaves(s)])
        safe_l1 = jnp.where(l1 > 0, l1, jnp.ones_like(l1))
        estimate = jnp.where(l1 > 0, numerator / ((1 - root_b2) * safe_l1), d)
        return steps, DAdaptAdamWState(m, v, s, jnp.maximum(d, estimate), numerator, count)

    return GradientTransformation(init, update)


# --- Mechanic: a learned scale around any optimizer ------------------------------------------


class MechanicState(NamedTuple):
    """base_optimizer_state: the wrapped optimizer's state. count: int32 scalar, updates done.
    r, m, v, s: Mechanic's per-β wealth, max |h|, second moment of h and scale, each shaped
    (num_betas,). x0: θ₀, the params at the first update. (optax.contrib's fields.)"""

    base_optimizer_state: Any
    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    r: Array
    m: Array
    v: Array
    s: Array
    x0: Params


def mechanize(
    base_optimizer: GradientTransformation,
    weight_decay: float = 1e-2,
    eps: float = 1e-8,
    s_init: float = 1e-6,
    num_betas: int = 6,
) -> GradientTransformation:
    """Mechanic (Cutkosky, Defazio & Mehta 2023, "Mechanic: A Learning Rate Tuner",
    Algorithm 1, memory-efficient form), as optax.contrib's `mechanize`: learns the scale
    S = Σᵢ sᵢ of the updates u of `base_optimizer` (θ ← θ + u), per step with βᵢ = 1 − 10⁻ⁱ
    (i = 1 … num_betas), θ₀ = the params at the first update, and s, m from the step before:

        g̃ = g + λ·S·‖g‖/(‖θ‖ + ε)·θ                    (λ = weight_decay, on the raw g)
        Δ = (θ₀ − θ)/(S + ε),   h = ⟨g̃, Δ⟩
        mᵢ' = max(βᵢ·mᵢ, |h| + ε),   vᵢ = βᵢ²·vᵢ + h²
        rᵢ = βᵢ·rᵢ + clip(h, −mᵢ, mᵢ)·sᵢ
        sᵢ = ((s_init/n)·mᵢ' + max(rᵢ, 0))/(√vᵢ + ε)
        θ' = θ₀ − Σᵢ sᵢ·(Δ − u),   i.e. the update θ' − θ

    Any base optimizer (SGD, Adam, Lion with learning rate 1 and its schedule) gets its
    learning rate tuned: S starts at n·s_init and grows while the updates agree. Extra
    arguments (`value`, …) go on to the base optimizer. Needs the params.
    """
    if not isinstance(base_optimizer, GradientTransformation):
        raise TypeError(
            "base_optimizer must be a GradientTransformation (e.g. optim.adam(1.0)), got "
            f"base_optimizer={base_optimizer!r}."
        )
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")
    eps = check_hyperparameter(eps, "eps")
    s_init = check_hyperparameter(s_init, "s_init", low_inclusive=False)
    if isinstance(num_betas, bool) or not isinstance(num_betas, int) or num_betas < 1:
        raise ValueError(f"num_betas must be a positive int, got num_betas={num_betas!r}.")
    exponents = np.arange(1, num_betas + 1, dtype=np.float64)
    betas_f64 = 1.0 - 0.1**exponents  # (n,) βᵢ = 1 − 10⁻ⁱ

    def init(params: Params) -> MechanicState:
        dtype = compute_dtype(jnp.result_type(*jax.tree.leaves(params)))  # ≥ float32
        zeros = jnp.zeros([num_betas], dtype)
        return MechanicState(
            base_optimizer.init(params),
            jnp.zeros([], jnp.int32),
            zeros,
            zeros,
            zeros,
            jnp.full([num_betas], s_init, dtype),
            jax.tree.map(jnp.copy, params),
        )

    def update(updates: Updates, state: MechanicState, params: Params | None = None, **extra: Any):
        if params is None:
            raise ValueError("mechanize needs the params: call update(grads, state, params).")
        base_updates, base_state = base_optimizer.update(
            updates, state.base_optimizer_state, params, **extra
        )
        first = state.count == 0
        # θ₀ is the params the first update sees (a run may load weights after init).
        x0 = jax.tree.map(lambda p, x: jnp.where(first, p, x), params, state.x0)
        dtype = state.s.dtype
        betas = jnp.asarray(betas_f64, dtype)  # (n,)
        total = jnp.sum(state.s)  # S, ()
        grad_norm = jnp.sqrt(_tree_norm_sq(updates)).astype(dtype)
        param_norm = jnp.sqrt(_tree_norm_sq(params)).astype(dtype)
        decay = weight_decay * total * grad_norm / (param_norm + eps)  # ()
        leaves_g = jax.tree.leaves(updates)
        leaves_p = jax.tree.leaves(params)
        leaves_x0 = jax.tree.leaves(x0)
        delta = [
            (x.astype(dtype) - p.astype(dtype)) / (total + eps)
            for p, x in zip(leaves_p, leaves_x0, strict=True)
        ]
        h = _tree_sum(
            [
                jnp.sum((upcast(g).astype(dtype) + decay * p.astype(dtype)) * dl)
                for g, p, dl in zip(leaves_g, leaves_p, delta, strict=True)
            ]
        )
        clipped = jnp.clip(h, -state.m, state.m)  # (n,) with the m of the step before
        m = jnp.maximum(betas * state.m, jnp.abs(h) + eps)
        v = betas * betas * state.v + h * h
        r = betas * state.r + clipped * state.s
        wealth = (s_init / num_betas) * m + jnp.maximum(r, 0.0)
        s = wealth / (jnp.sqrt(v) + eps)
        new_total = jnp.sum(s)
        treedef: PyTreeDef = jax.tree.structure(updates)
        steps = treedef.unflatten(
            [
                (
                    x.astype(dtype) - new_total * (dl - upcast(u).astype(dtype)) - p.astype(dtype)
                ).astype(g.dtype)
                for g, u, p, x, dl in zip(
                    leaves_g, jax.tree.leaves(base_updates), leaves_p, leaves_x0, delta, strict=True
                )
            ]
        )
        return steps, MechanicState(base_state, safe_increment(state.count), r, m, v, s, x0)

    return GradientTransformation(init, update)
