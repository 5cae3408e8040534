"""Slowly moving copies: an exponential moving average of the updates (optax's `ema`), the
target-network updates `incremental_update` and `periodic_update`, and Lookahead's slow
weights (optax's `lookahead`).

    target = optim.incremental_update(params, target, step_size=0.01)   # Polyak averaging

Notation: g the incoming update, t the 1-based step number, θ the parameters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn._validation import check_nonnegative_int
from funcnn.optim._tree import const, unzip, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    OptState,
    Params,
    Updates,
    check_hyperparameter,
    check_same_structure,
    safe_increment,
    tree_zeros_like,
)

__all__ = [
    "EmaState",
    "LookaheadParams",
    "LookaheadState",
    "ema",
    "incremental_update",
    "lookahead",
    "periodic_update",
]


class EmaState(NamedTuple):
    """count: int32 scalar, updates done. ema: the running average m, shaped like the params."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    ema: Params


def ema(decay: float, debias: bool = True, accumulator_dtype: Any = None) -> GradientTransformation:
    """Exponential moving average of the updates, as optax's `ema`:

        mₜ = β·mₜ₋₁ + (1−β)·g,  m₀ = 0;   d = mₜ/(1−βᵗ) if debias else mₜ

    `decay` = β ∈ [0, 1). (To average the *parameters*, e.g. for evaluation, apply
    `incremental_update` to them after each step.)
    """
    decay = check_hyperparameter(decay, "decay", high=1.0, high_inclusive=False)

    def init(params: Params) -> EmaState:
        return EmaState(jnp.zeros([], jnp.int32), tree_zeros_like(params, accumulator_dtype))

    def update(updates: Updates, state: EmaState, params: Params | None = None, **extra):
        del params, extra
        count = safe_increment(state.count)

        def leaf(g: Array, m: Array) -> tuple[Array, Array]:
            g32 = upcast(g)
            beta = const(decay, g32)
            m_new = beta * upcast(m) + (1 - beta) * g32
            d = m_new / (1 - beta ** count.astype(g32.dtype)) if debias else m_new
            return d.astype(g.dtype), m_new.astype(m.dtype)

        updates, averages = unzip(jax.tree.map(leaf, updates, state.ema), updates)
        return updates, EmaState(count, averages)

    return GradientTransformation(init, update)


def incremental_update(new_tensors: Params, old_tensors: Params, step_size: float) -> Params:
    """τ·new + (1−τ)·old leaf by leaf (`step_size` = τ ∈ [0, 1]), as optax's
    `incremental_update`: Polyak averaging of a target network (Lillicrap et al. 2016) or
    an EMA of the parameters for evaluation. Each leaf keeps `old_tensors`' dtype."""
    step_size = check_hyperparameter(step_size, "step_size", high=1.0)  # a traced τ passes
    check_same_structure(new_tensors, old_tensors, "new_tensors", "old_tensors")
    return jax.tree.map(
        lambda new, old: (step_size * new + (1 - step_size) * old).astype(jnp.result_type(old)),
        new_tensors,
        old_tensors,
    )


def periodic_update(
    new_tensors: Params, old_tensors: Params, steps: Array, update_period: int
) -> Params:
    """`new_tensors` when steps mod update_period = 0, else `old_tensors`, as optax's
    `periodic_update` (a DQN target network refreshed every `update_period` steps)."""
    update_period = check_nonnegative_int(update_period, "update_period")
    if update_period < 1:
        raise ValueError(f"update_period must be ≥ 1, got update_period={update_period}.")
    check_same_structure(new_tensors, old_tensors, "new_tensors", "old_tensors")
    refresh = jnp.asarray(steps) % update_period == 0
    return jax.tree.map(lambda new, old: jnp.where(refresh, new, old), new_tensors, old_tensors)


class LookaheadParams(NamedTuple):
    """fast: the weights the inner optimizer moves (gradients are taken here). slow: the
    weights Lookahead pulls towards them every `sync_period` steps (evaluate these)."""

    fast: Params
    slow: Params

    @classmethod
    def init_synced(cls, params: Params) -> LookaheadParams:
        """Both copies equal to `params` (fresh buffers for the slow one)."""
        return cls(params, jax.tree.map(jnp.copy, params))


class LookaheadState(NamedTuple):
    """fast_state: the inner optimizer's state. steps_since_sync: int32 scalar in
    [0, sync_period)."""

    fast_state: OptState
    steps_since_sync: Array


def lookahead(
    fast_optimizer: GradientTransformation,
    sync_period: int,
    slow_step_size: float,
    reset_state: bool = False,
) -> GradientTransformation:
    """Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back"), as
    optax's `lookahead`. The params are a `LookaheadParams(fast, slow)` (start both equal:
    `LookaheadParams.init_synced(params)`); the gradient is taken at the fast weights:

        φ' = φ + u                     (u from fast_optimizer; every step)
        every k-th step (k = sync_period):  s ← s + α·(φ' − s),  φ ← s   (α = slow_step_size)

    `update` returns `LookaheadParams` of updates for `apply_updates`. With `reset_state` the
    inner state is re-initialized at each sync. The gradient must be a tree shaped like
    `params.fast`.
    """
    sync_period = check_nonnegative_int(sync_period, "sync_period")
    if sync_period < 1:
        raise ValueError(f"sync_period must be ≥ 1, got sync_period={sync_period}.")
    slow_step_size = check_hyperparameter(slow_step_size, "slow_step_size", high=1.0)

    def _check(params: Any) -> LookaheadParams:
        if not isinstance(params, LookaheadParams):
            raise TypeError(
                "lookahead expects params as LookaheadParams(fast, slow), got "
                f"{type(params).__name__}; start with LookaheadParams.init_synced(params)."
            )
        return params

    def init(params: Params) -> LookaheadState:
        params = _check(params)
        return LookaheadState(fast_optimizer.init(params.fast), jnp.zeros([], jnp.int32))

    def update(updates: Updates, state: LookaheadState, params: Params | None = None, **extra):
        params = _check(params)
        fast_updates, fast_state = fast_optimizer.update(
            updates, state.fast_state, params.fast, **extra
        )
        sync = state.steps_since_sync == sync_period - 1

        def leaf(u: Array, fast: Array, slow: Array) -> tuple[Array, Array]:
            alpha = jnp.asarray(slow_step_size, jnp.result_type(slow))
            new_slow = slow + alpha * (fast + u - slow)
            slow_update = jnp.where(sync, new_slow - slow, jnp.zeros_like(slow))
            fast_update = jnp.where(sync, new_slow - fast, u)
            return fast_update.astype(u.dtype), slow_update.astype(slow.dtype)

        fast_step, slow_step = unzip(
            jax.tree.map(leaf, fast_updates, params.fast, params.slow), fast_updates
        )
        if reset_state:
            fresh = fast_optimizer.init(params.fast)
            fast_state = jax.tree.map(lambda a, b: jnp.where(sync, a, b), fresh, fast_state)
        steps = (state.steps_since_sync + 1) % sync_period
        return LookaheadParams(fast_step, slow_step), LookaheadState(fast_state, steps)

    return GradientTransformation(init, update)
