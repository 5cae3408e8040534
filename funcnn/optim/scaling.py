"""Fixed and scheduled scaling: `identity`, `scale` (u = c·g) and `scale_by_learning_rate`,
the one stage that carries the minus sign (u = −ηₜ·d), with `current_learning_rate` to read
the ηₜ an update used.

Notation: g is the incoming update (the gradient for the first stage), d the outgoing
direction, θ the parameters, t the 1-based step number, ηₜ the learning rate; only
`scale_by_learning_rate` carries the minus sign. Per-parameter buffers keep each leaf's
dtype (unless a `*_dtype` option says otherwise), arithmetic runs in at least float32
(bf16 leaves are upcast, the result cast back), step counters are int32 scalars.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim._tree import const, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    OptState,
    Params,
    Schedule,
    Updates,
    as_schedule,
    check_hyperparameter,
    elementwise,
    find_state,
    safe_increment,
    tree_widest_float,
)

__all__ = [
    "ScaleByLearningRateState",
    "current_learning_rate",
    "identity",
    "scale",
    "scale_by_learning_rate",
]


def identity() -> GradientTransformation:
    """u = g. Stateless; useful as a placeholder stage."""
    return elementwise(lambda g: g)


def scale(factor: float) -> GradientTransformation:
    """u = c·g for a fixed real `factor` c (any sign). Stateless."""
    factor = check_hyperparameter(factor, "factor", low=-float("inf"))
    return elementwise(lambda g: (upcast(g) * const(factor, upcast(g))).astype(g.dtype))


class ScaleByLearningRateState(NamedTuple):
    """count: int32 scalar, updates applied so far (the schedule's step).
    learning_rate: scalar of the widest param float dtype — ηₜ used by the latest update
    (η₀ = schedule(0) before the first update). Read it with `current_learning_rate`."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    learning_rate: Array


def scale_by_learning_rate(learning_rate: float | Schedule) -> GradientTransformation:
    """u = −ηₜ·d, with ηₜ = schedule(t − 1) (so the first update uses schedule(0)).

    This is the only stage that flips the sign: every other stage outputs a descent
    direction d and `apply_updates` adds u, so θ ← θ − ηₜ·d. `learning_rate` is a
    non-negative number or a schedule `step -> η` (evaluated on the int32 count inside the
    compiled step, so a changing value never re-traces).
    """
    schedule = as_schedule(learning_rate, "learning_rate")

    def init(params: Params) -> ScaleByLearningRateState:
        dtype = tree_widest_float(params)
        count = jnp.zeros([], jnp.int32)  # () int32
        # copy=True: a schedule may return one shared array; the state must own its buffer
        # (a donated step would otherwise delete the caller's array).
        return ScaleByLearningRateState(count, jnp.array(schedule(count), dtype, copy=True))

    def update(updates: Updates, state: ScaleByLearningRateState, params: Params | None = None):
        del params
        lr = jnp.asarray(schedule(state.count))  # () — may be float64 under x64; cast per leaf
        updates = jax.tree.map(
            lambda d: (-const(lr, upcast(d)) * upcast(d)).astype(d.dtype), updates
        )
        new_state = ScaleByLearningRateState(
            safe_increment(state.count), lr.astype(state.learning_rate.dtype)
        )
        return updates, new_state

    return GradientTransformation(init, update)


def current_learning_rate(opt_state: OptState) -> Array:
    """The learning rate ηₜ used by the most recent update, read from an optimizer state.

    Searches the (possibly nested, chained or masked) state for the one
    `ScaleByLearningRateState`; works inside jit and on host. Before the first update it is
    schedule(0). Raises ValueError if the state holds none or several.

    >>> import jax.numpy as jnp
    >>> from funcnn import optim
    >>> opt = optim.adamw(optim.warmup_cosine_decay(1e-4, 1e-3, 10, 100))
    >>> state = opt.init({"w": jnp.ones(3)})
    >>> round(float(current_learning_rate(state)), 8)  # schedule(0) before any update
    0.0001
    """
    needs = "current_learning_rate needs exactly one scale_by_learning_rate stage in the "
    needs += "optimizer state"
    return find_state(opt_state, ScaleByLearningRateState, needs).learning_rate
