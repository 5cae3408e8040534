"""Averaging of the iterates: Polyak–Ruppert averaging as torch's ASGD keeps it
(`average_params`, read with `averaged_params`). Schedule-free averaging, which also
changes where the gradient is taken, is the wrapper in `schedule_free.py`.

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
    Updates,
    check_hyperparameter,
    find_state,
    safe_increment,
    tree_zeros_like,
)

__all__ = [
    "AverageParamsState",
    "average_params",
    "averaged_params",
]


class AverageParamsState(NamedTuple):
    """count: int32 scalar, updates done so far. average: θ̄, the running average of the
    iterates (shaped and typed like the params). Read it with `averaged_params`."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    average: Params


def average_params(t0: float = 1e6) -> GradientTransformation:
    """Polyak–Ruppert averaging of the iterates (Polyak & Juditsky 1992), as torch's ASGD:

        θₜ = θₜ₋₁ + u                       (the step this stage receives, unchanged)
        μₜ = 1 / max(1, t − 1 − t₀)
        θ̄ₜ = θₜ  if μₜ = 1  else  θ̄ₜ₋₁ + μₜ·(θₜ − θ̄ₜ₋₁),         θ̄₀ = 0

    `t0` = t₀ ≥ 0: up to step t₀ + 2 the average is the current iterate; after it, for an
    integer t₀, θ̄ₜ is the mean of θₜ₀₊₂, …, θₜ. The stage passes the updates through;
    it must be the *last* stage (it needs the final u) and needs the params. torch computes
    μ at the end of each step for the next one; the values are the same.
    """
    t0 = check_hyperparameter(t0, "t0")

    def init(params: Params) -> AverageParamsState:
        return AverageParamsState(jnp.zeros([], jnp.int32), tree_zeros_like(params))

    def update(updates: Updates, state: AverageParamsState, params: Params | None = None):
        if params is None:
            raise ValueError("average_params needs the params: call update(grads, state, params).")

        def leaf(u: Array, p: Array, avg: Array) -> Array:
            new = jnp.asarray(p + u).astype(jnp.result_type(p))  # as apply_updates forms θₜ
            a32, n32 = upcast(avg), upcast(new)
            mu = 1 / jnp.maximum(1, state.count.astype(a32.dtype) - const(t0, a32))
            return jnp.where(mu == 1, n32, a32 + mu * (n32 - a32)).astype(avg.dtype)

        average = jax.tree.map(leaf, updates, params, state.average)
        return updates, AverageParamsState(safe_increment(state.count), average)

    return GradientTransformation(init, update)


def averaged_params(opt_state: OptState) -> Params:
    """The averaged parameters θ̄ kept by the one `average_params` stage (e.g. of `asgd`).

    Works inside jit and on host; raises ValueError if the state holds none or several.
    Evaluate the model at these (torch: `optimizer.state[p]["ax"]`); keep training θ.
    """
    needs = "averaged_params needs exactly one average_params stage in the optimizer state "
    needs += "(asgd has one)"
    return find_state(opt_state, AverageParamsState, needs).average
