"""Sharpness-aware minimization: optax.contrib's `sam` (transparent mode) and `normalize`.

    opt = optim.sam(optim.sgd(0.1), optim.chain(optim.normalize(), optim.scale(-0.05)))

Every call to `update` is one gradient evaluation; with `sync_period` = k, calls 1…k−1 take
adversarial (ascent) steps and call k steps the outer optimizer from where the cycle began,
with the gradient taken at the adversarial point.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn._validation import check_nonnegative_int
from funcnn.optim._tree import upcast
from funcnn.optim.base import (
    Array,
    EmptyState,
    GradientTransformation,
    OptState,
    Params,
    Updates,
    global_norm,
)

__all__ = ["SAMState", "normalize", "sam"]


def normalize() -> GradientTransformation:
    """d = g/‖g‖ (global norm over every leaf), as optax.contrib's `normalize` — SAM's
    adversarial direction. No ε: a zero gradient gives NaN, as in optax. Stateless."""

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        norm = global_norm(updates)
        return jax.tree.map(lambda g: (upcast(g) / norm).astype(g.dtype), updates), state

    return GradientTransformation(init, update)


class SAMState(NamedTuple):
    """steps_since_sync: int32 in [0, sync_period). opt_state: the outer optimizer's state.
    adv_state: the adversarial optimizer's state. cache: θ at the start of the cycle.
    (optax's fields.)"""

    steps_since_sync: Array
    opt_state: OptState
    adv_state: OptState
    cache: Params


def sam(
    optimizer: GradientTransformation,
    adv_optimizer: GradientTransformation,
    sync_period: int = 2,
    reset_state: bool = True,
) -> GradientTransformation:
    """SAM (Foret et al. 2021, "Sharpness-Aware Minimization for Efficiently Improving
    Generalization"), as optax.contrib's `sam` in its transparent mode. With k = sync_period,
    a cycle of k updates starting at θ₀ (cached):

        calls 1…k−1:  u = −adv_optimizer(g)        an ascent step θ ← θ + ρ·g/‖g‖ (with
                                                  adv_optimizer = chain(normalize(), scale(−ρ)))
        call k:       u = (θ₀ − θ) + optimizer(g, θ₀)   back to θ₀, then the outer step with
                                                  the gradient g taken at the ascended θ

    With `reset_state` the adversarial state restarts every cycle. The outer optimizer sees
    the cached θ₀ as its params (weight decay decays θ₀). optax's opaque mode (the gradient
    function called inside `update`) is not offered: call `update` once per gradient.
    """
    sync_period = check_nonnegative_int(sync_period, "sync_period")
    if sync_period < 1:
        raise ValueError(f"sync_period must be ≥ 1, got sync_period={sync_period}.")
    for name, transform in (("optimizer", optimizer), ("adv_optimizer", adv_optimizer)):
        if not isinstance(transform, GradientTransformation):
            raise TypeError(f"sam: {name} must be a GradientTransformation, got {transform!r}.")

    def init(params: Params) -> SAMState:
        return SAMState(
            jnp.zeros([], jnp.int32),
            optimizer.init(params),
            adv_optimizer.init(params),
            jax.tree.map(jnp.copy, params),
        )

    def update(updates: Updates, state: SAMState, params: Params | None = None, **extra: Any):
        if params is None:
            raise ValueError("sam needs the params: call update(grads, state, params).")
        first = state.steps_since_sync == 0
        last = state.steps_since_sync == sync_period - 1
        adv_updates, adv_state = adv_optimizer.update(updates, state.adv_state, params, **extra)
        adv_updates = jax.tree.map(jnp.negative, adv_updates)
        outer, opt_state = optimizer.update(updates, state.opt_state, state.cache, **extra)
        outer = jax.tree.map(lambda c, p, u: c - p + u, state.cache, params, outer)
        pick = lambda cond, a, b: jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)
        cache = pick(first, params, state.cache)
        new_updates = pick(last, outer, adv_updates)
        if reset_state:
            adv_state = pick(last, adv_optimizer.init(params), adv_state)
        else:
            adv_state = pick(last, state.adv_state, adv_state)
        opt_state = pick(last, opt_state, state.opt_state)
        steps = (state.steps_since_sync + 1) % sync_period
        return new_updates, SAMState(steps, opt_state, adv_state, cache)

    return GradientTransformation(init, update)
