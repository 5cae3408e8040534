"""Reduce-on-plateau, which reads the loss value: optax.contrib's `reduce_on_plateau`
(torch's `ReduceLROnPlateau` as a stage).

    opt = optim.chain(optim.adam(1e-3), optim.reduce_on_plateau(patience=5))
    updates, state = opt.update(grads, state, params, value=loss_value)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn._validation import check_nonnegative_int
from funcnn.optim._tree import upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
    safe_increment,
    tree_widest_float,
)

__all__ = ["ReduceLROnPlateauState", "reduce_on_plateau"]


class ReduceLROnPlateauState(NamedTuple):
    """scale: the factor s applied to every update (0-d). best_value: the best mean loss so
    far. plateau_count: evaluations without improvement (int32). cooldown_count: evaluations
    left to ignore (int32). count: values accumulated towards the next evaluation (int32).
    avg_value: their running mean. (optax's fields.)"""

    scale: Array
    best_value: Array
    plateau_count: Array
    cooldown_count: Array
    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    avg_value: Array


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    rtol: float = 1e-4,
    atol: float = 0.0,
    cooldown: int = 0,
    accumulation_size: int = 1,
    min_scale: float = 0.0,
) -> GradientTransformation:
    """Scale updates down when the loss stops improving, as optax.contrib's
    `reduce_on_plateau` (and torch's `ReduceLROnPlateau(mode="min", threshold_mode="rel")`
    applied to the update). d = s·g, s₀ = 1. Every `accumulation_size` updates, with f̄ the
    mean of their `value`s:

        improved = f̄ < (1 − rtol)·best − atol;   if improved: best = f̄, plateau = 0
        else plateau += 1
        in cooldown (cooldown_count > 0): plateau = 0, cooldown_count −= 1
        else if plateau = patience: s = max(factor·s, min_scale), plateau = 0,
                                    cooldown_count = cooldown

    `factor` ∈ (0, 1); `rtol` ∈ [0, 1], `atol` ≥ 0, not both 0; `patience`, `cooldown` ≥ 0
    and `accumulation_size` ≥ 1 are counts. Needs `update(..., value=f)`. Place it after
    the learning rate (`chain(adam(η), reduce_on_plateau())`) so it scales the step.
    """
    factor = check_hyperparameter(
        factor, "factor", low_inclusive=False, high=1.0, high_inclusive=False
    )
    rtol = check_hyperparameter(rtol, "rtol", high=1.0)
    atol = check_hyperparameter(atol, "atol")
    if rtol == 0.0 and atol == 0.0:
        raise ValueError("reduce_on_plateau needs rtol > 0 or atol > 0, got both 0.")
    patience = check_nonnegative_int(patience, "patience")
    cooldown = check_nonnegative_int(cooldown, "cooldown")
    accumulation_size = check_nonnegative_int(accumulation_size, "accumulation_size")
    if accumulation_size < 1:
        raise ValueError(f"accumulation_size must be ≥ 1, got {accumulation_size}.")
    min_scale = check_hyperparameter(min_scale, "min_scale")

    def init(params: Params) -> ReduceLROnPlateauState:
        dtype = tree_widest_float(params)
        zero = jnp.zeros([], jnp.int32)
        return ReduceLROnPlateauState(
            jnp.ones([], dtype),
            jnp.full([], jnp.inf, dtype),
            zero,
            zero,
            zero,
            jnp.zeros([], dtype),
        )

    def evaluate(state: ReduceLROnPlateauState) -> ReduceLROnPlateauState:
        improved = state.avg_value < (1 - rtol) * state.best_value - atol
        best = jnp.where(improved, state.avg_value, state.best_value)
        plateau = jnp.where(improved, 0, safe_increment(state.plateau_count))
        cooling = state.cooldown_count > 0
        reduce = ~cooling & (plateau == patience)
        scale = jnp.where(reduce, state.scale * factor, state.scale)
        scale = jnp.where(cooling, state.scale, jnp.maximum(scale, min_scale))
        zero = jnp.zeros([], jnp.int32)
        return ReduceLROnPlateauState(
            scale=scale.astype(state.scale.dtype),
            best_value=best,
            plateau_count=jnp.where(cooling | reduce, zero, plateau).astype(jnp.int32),
            cooldown_count=jnp.where(
                cooling, state.cooldown_count - 1, jnp.where(reduce, cooldown, 0)
            ).astype(jnp.int32),
            count=zero,
            avg_value=jnp.zeros_like(state.avg_value),
        )

    def update(
        updates: Updates,
        state: ReduceLROnPlateauState,
        params: Params | None = None,
        *,
        value: Any = None,
        **extra,
    ):
        del params, extra
        if value is None:
            raise ValueError(
                "reduce_on_plateau needs the loss: call update(grads, state, params, value=loss)."
            )
        count = safe_increment(state.count)
        value = jnp.asarray(value).astype(state.avg_value.dtype)
        avg = (state.count.astype(value.dtype) * state.avg_value + value) / count.astype(
            value.dtype
        )
        state = state._replace(count=count, avg_value=avg)
        state = jax.lax.cond(count == accumulation_size, evaluate, lambda s: s, state)
        scaled = jax.tree.map(
            lambda g: (upcast(g) * state.scale.astype(upcast(g).dtype)).astype(g.dtype), updates
        )
        return scaled, state

    return GradientTransformation(init, update)
