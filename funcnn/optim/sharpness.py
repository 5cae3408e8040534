"""Sharpness-aware minimization: optax.contrib's `sam` (transparent and opaque modes) and
`normalize`.

    opt = optim.sam(optim.sgd(0.1), optim.chain(optim.normalize(), optim.scale(-0.05)))

Transparent mode (the default): every call to `update` is one gradient evaluation; with
`sync_period` = k, calls 1…k−1 take adversarial (ascent) steps and call k steps the outer
optimizer from where the cycle began, with the gradient taken at the adversarial point.
Opaque mode: every call is one whole cycle, the k − 1 ascent gradients computed inside
`update` by the `grad_fn` extra argument:

    opt = optim.sam(outer, adv, opaque_mode=True)
    grad_fn = jax.grad(lambda p, i: loss(p, batch))       # (params, ascent index) -> ∇
    updates, state = opt.update(grads, state, params, grad_fn=grad_fn)
"""

from __future__ import annotations

from collections.abc import Callable
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
    apply_updates,
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
    adv_state: the adversarial optimizer's state. cache: θ at the start of the cycle (None
    in opaque mode, where a cycle never spans two calls). (optax's fields.)"""

    steps_since_sync: Array
    opt_state: OptState
    adv_state: OptState
    cache: Params | None


def sam(
    optimizer: GradientTransformation,
    adv_optimizer: GradientTransformation,
    sync_period: int = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: str | None = None,
) -> GradientTransformation:
    """SAM (Foret et al. 2021, "Sharpness-Aware Minimization for Efficiently Improving
    Generalization"), as optax.contrib's `sam` in its transparent mode. With k = sync_period,
    a cycle of k updates starting at θ₀ (cached):

        calls 1…k−1:  u = −adv_optimizer(g)        an ascent step θ ← θ + ρ·g/‖g‖ (with
                                                  adv_optimizer = chain(normalize(), scale(−ρ)))
        call k:       u = (θ₀ − θ) + optimizer(g, θ₀)   back to θ₀, then the outer step with
                                                  the gradient g taken at the ascended θ

    With `reset_state` the adversarial state restarts every cycle. The outer optimizer sees
    the cached θ₀ as its params (weight decay decays θ₀).

    `opaque_mode=True` runs the whole cycle inside one `update(g, state, θ, grad_fn=…)`, g the
    gradient at θ, `grad_fn(params, i)` the gradient at the i-th ascent point (i = 0…k−2):

        θ̃ ← θ;  u ← g
        for i = 0 … k−2:  θ̃ ← θ̃ − adv_optimizer(u, θ̃);  u ← grad_fn(θ̃, i)
        d = optimizer(u, θ)                      the outer step from θ itself

    so the params the caller holds only ever take outer steps (BatchNorm statistics or other
    side effects of a forward pass see no ascent points). With `batch_axis_name`, u is
    averaged over that mapped axis (`lax.pmean`) after each `grad_fn`, as in a `pmap`/
    `shard_map` data-parallel step; None outside one. The ascent loop is unrolled (k − 1 is
    a Python int). Other extra arguments reach both optimizers, as in transparent mode.
    """
    sync_period = check_nonnegative_int(sync_period, "sync_period")
    if sync_period < 1:
        raise ValueError(f"sync_period must be ≥ 1, got sync_period={sync_period}.")
    for name, transform in (("optimizer", optimizer), ("adv_optimizer", adv_optimizer)):
        if not isinstance(transform, GradientTransformation):
            raise TypeError(f"sam: {name} must be a GradientTransformation, got {transform!r}.")
    if batch_axis_name is not None and not isinstance(batch_axis_name, str):
        raise TypeError(f"sam: batch_axis_name must be a str or None, got {batch_axis_name!r}.")

    def init(params: Params) -> SAMState:
        return SAMState(
            jnp.zeros([], jnp.int32),
            optimizer.init(params),
            adv_optimizer.init(params),
            None if opaque_mode else jax.tree.map(jnp.copy, params),
        )

    def opaque_update(
        updates: Updates,
        state: SAMState,
        params: Params | None = None,
        *,
        grad_fn: Callable[[Params, int], Updates] | None = None,
        **extra: Any,
    ):
        if params is None or grad_fn is None:
            raise ValueError(
                "sam(opaque_mode=True) needs the params and grad_fn=(params, i) -> gradient: "
                "call update(grads, state, params, grad_fn=grad_fn)."
            )
        adv_params, adv_updates, adv_state = params, updates, state.adv_state
        for i in range(sync_period - 1):
            ascent, adv_state = adv_optimizer.update(adv_updates, adv_state, adv_params, **extra)
            adv_params = apply_updates(adv_params, jax.tree.map(jnp.negative, ascent))
            adv_updates = grad_fn(adv_params, i)
            if batch_axis_name is not None:
                adv_updates = jax.lax.pmean(adv_updates, axis_name=batch_axis_name)
        if reset_state:
            adv_state = adv_optimizer.init(params)
        new_updates, opt_state = optimizer.update(adv_updates, state.opt_state, params, **extra)
        return new_updates, SAMState(jnp.zeros([], jnp.int32), opt_state, adv_state, None)

    def update(updates: Updates, state: SAMState, params: Params | None = None, **extra: Any):
        if opaque_mode:
            return opaque_update(updates, state, params, **extra)
        extra.pop("grad_fn", None)  # opaque mode's argument; transparent mode has no use for it
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
