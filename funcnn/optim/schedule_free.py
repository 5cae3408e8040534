"""Schedule-free learning (Defazio et al. 2024, "The Road Less Scheduled"), with optax's
`contrib.schedule_free` semantics: a wrapper that replaces a base optimizer's momentum by
interpolation and averaging, and `schedule_free_eval_params` to read the averaged point.

Three sequences: z (the base optimizer's iterates, kept in the state), x (their weighted
average: evaluate the model there) and y = β₁·x + (1−β₁)·z (the params the training loop
holds, where gradients are taken). Only y and z are stored; x = (y − (1−β₁)·z)/β₁.
The base stage of `schedule_free_adamw` (Adam's second moment alone) is `rms.scale_by_adam_rms`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim._tree import const, unzip, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    OptState,
    Params,
    Schedule,
    Updates,
    as_schedule,
    check_hyperparameter,
    find_state,
    safe_increment,
    state_dtype,
    tree_widest_float,
)

__all__ = [
    "ScheduleFreeState",
    "schedule_free",
    "schedule_free_eval_params",
]


class ScheduleFreeState(NamedTuple):
    """count: int32 scalar, updates done so far. b1: () the interpolation β₁ (kept so
    `schedule_free_eval_params` needs only the state). weight_sum: () Σ ωₖ so far. max_lr:
    () the largest γ seen. base_state: the base optimizer's state. z: the base iterates,
    shaped like the params (each leaf's dtype). Scalars in the widest float dtype of the
    params."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    b1: Array
    weight_sum: Array
    max_lr: Array
    base_state: OptState
    z: Params


def schedule_free(
    base: GradientTransformation,
    learning_rate: float | Schedule,
    b1: float = 0.9,
    *,
    weight_lr_power: float = 2.0,
) -> GradientTransformation:
    """Make `base` schedule-free (Defazio et al. 2024, Algorithm 1; optax's
    `contrib.schedule_free`). With params y (where the gradient g is taken), per update
    t = 1, 2, …:

        zₜ   = zₜ₋₁ + base(g)                         z₀ = y₀ (a copy)
        γ̄ₜ  = max(γ̄ₜ₋₁, γ(t)),   ωₜ = γ̄ₜ^p,   Wₜ = Wₜ₋₁ + ωₜ,   cₜ = ωₜ/Wₜ  (0 if Wₜ = 0)
        xₜ₋₁ = (yₜ₋₁ − (1−β₁)·zₜ₋₁)/β₁
        xₜ   = (1 − cₜ)·xₜ₋₁ + cₜ·zₜ                   the weighted average of z
        yₜ   = β₁·xₜ + (1−β₁)·zₜ,     u = yₜ − yₜ₋₁

    `base` should have no momentum (e.g. AdamW with β₁ = 0) and carry the learning rate;
    `learning_rate` = γ is the same number or schedule, used here only for the averaging
    weights ωₜ (warmup steps weigh less), `weight_lr_power` = p ≥ 0, `b1` = β₁ ∈ (0, 1).
    As optax, γ is read one step *ahead* of the base's: the t-th update's weight uses
    γ(t) (the schedule at the count after the update), while the base's own
    `scale_by_learning_rate` uses γ(t − 1) — so with a warmup from 0 the first z step is 0
    and its weight is not. Evaluate (and checkpoint for inference) at x:
    `schedule_free_eval_params(params, state)`. The state is a `ScheduleFreeState`.
    """
    if not isinstance(base, GradientTransformation):
        raise TypeError(
            f"schedule_free expects a GradientTransformation, got {type(base).__name__}."
        )
    schedule = as_schedule(learning_rate, "learning_rate")
    b1 = check_hyperparameter(b1, "b1", low_inclusive=False, high=1.0, high_inclusive=False)
    weight_lr_power = check_hyperparameter(weight_lr_power, "weight_lr_power")

    def init(params: Params) -> ScheduleFreeState:
        dtype = tree_widest_float(params)
        # z owns its buffers (a copy), so a step donating params and state works.
        z = jax.tree.map(lambda x: jnp.array(x, state_dtype(x), copy=True), params)
        zero = jnp.zeros([], dtype)
        return ScheduleFreeState(
            jnp.zeros([], jnp.int32), jnp.asarray(b1, dtype), zero, zero, base.init(params), z
        )

    def update(updates: Updates, state: ScheduleFreeState, params: Params | None = None):
        if params is None:
            raise ValueError("schedule_free needs the params: call update(grads, state, params).")
        count = safe_increment(state.count)  # t
        dtype = state.max_lr.dtype
        lr = jnp.asarray(schedule(count)).astype(dtype)  # γ(t), one ahead (optax)
        max_lr = jnp.maximum(state.max_lr, lr)
        weight = max_lr ** const(weight_lr_power, max_lr)  # ωₜ
        weight_sum = state.weight_sum + weight  # Wₜ
        c_t = jnp.where(weight_sum == 0, jnp.zeros([], dtype), weight / weight_sum)
        base_updates, base_state = base.update(updates, state.base_state, params)

        def leaf(y: Array, z: Array, u: Array) -> tuple[Array, Array]:
            y32, z32 = upcast(y), upcast(z)
            beta, c = const(b1, y32), const(c_t, y32)
            z_new = (z32 + upcast(u).astype(z32.dtype)).astype(z.dtype)  # stored, rounded
            z_new32 = upcast(z_new).astype(y32.dtype)
            x_prev = (y32 - (1 - beta) * z32.astype(y32.dtype)) / beta
            x = (1 - c) * x_prev + c * z_new32
            y_new = beta * x + (1 - beta) * z_new32
            return (y_new - y32).astype(y.dtype), z_new

        out = jax.tree.map(leaf, params, state.z, base_updates)
        new_updates, z = unzip(out, updates)
        new_state = ScheduleFreeState(count, state.b1, weight_sum, max_lr, base_state, z)
        return new_updates, new_state

    return GradientTransformation(init, update)


def schedule_free_eval_params(params: Params, opt_state: OptState) -> Params:
    """The averaged point x = (y − (1−β₁)·z)/β₁ of a schedule-free optimizer, where the
    model should be evaluated (optax: `schedule_free_eval_params(state, params)` — note the
    argument order here, params first, as `apply_updates`).

    `params` are the training params y; `opt_state` is, or contains (in a chain, a
    partition, a wrapper), exactly one `ScheduleFreeState`. Each leaf keeps its dtype.
    Before the first update x = y (up to rounding).
    """
    state = find_state(
        opt_state,
        ScheduleFreeState,
        "schedule_free_eval_params needs an optimizer state holding exactly one "
        "ScheduleFreeState (from optim.schedule_free or schedule_free_adamw)",
    )

    def leaf(y: Array, z: Array) -> Array:
        y32 = upcast(y)
        beta = state.b1.astype(y32.dtype)
        return ((y32 - (1 - beta) * upcast(z).astype(y32.dtype)) / beta).astype(y.dtype)

    return jax.tree.map(leaf, params, state.z)
