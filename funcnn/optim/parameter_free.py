"""Learning-rate-free optimizers, which estimate the step from the distance travelled:
optax.contrib's `prodigy`.

Notation as in `transforms.py`; t is the 1-based step number. The estimate d of the
distance to the solution lives in the state and only grows.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.tree_util import PyTreeDef

from funcnn.optim._tree import unzip, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Schedule,
    Updates,
    as_schedule,
    check_hyperparameter,
    safe_increment,
    tree_zeros_like,
)
from funcnn.optim.routing import MaskOrFn, _mask_tree

__all__ = ["ProdigyState", "prodigy"]


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
