"""Gradient accumulation with a schedule of k: optax's `MultiSteps`.

    opt = optim.MultiSteps(optim.adamw(1e-3), every_k_schedule=4).gradient_transformation()

(`optim.accumulate(inner, every_k)` is the fixed-k form with a running sum.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn._validation import check_nonnegative_int
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    OptState,
    Params,
    Updates,
    safe_increment,
)

__all__ = ["MultiSteps", "MultiStepsState"]


class MultiStepsState(NamedTuple):
    """mini_step: int32, micro-batches averaged since the last inner update. gradient_step:
    int32, inner updates done (the step the schedule of k is read at). inner_opt_state: the
    wrapped optimizer's state. acc_grads: the running mean of this window's gradients.
    (optax's fields, without its skip_state.)"""

    mini_step: Array
    gradient_step: Array
    inner_opt_state: OptState
    acc_grads: Updates


class MultiSteps:
    """Average gradients over k micro-batches, then take one step of `opt`, as optax's
    `MultiSteps` (k may change over training: `every_k_schedule(gradient_step)`):

        micro-step j = 0, …, k−2:  ḡ ← ḡ + (g − ḡ)/(j + 1);  u = 0
        micro-step k−1:            ḡ ← ḡ + (g − ḡ)/k;  (u, s) ← opt.update(ḡ, s, θ);  ḡ ← 0

    `every_k_schedule`: an int ≥ 1 or a function of the inner step count returning one (e.g.
    grow the effective batch during training). `gradient_transformation()` gives the
    `GradientTransformation`; `has_updated(state)` says whether the last call stepped.
    Extra `update` arguments (`value`, …) go to `opt` at the k-th micro-step.
    """

    def __init__(self, opt: GradientTransformation, every_k_schedule: int | Callable[[Array], Any]):
        if not isinstance(opt, GradientTransformation):
            raise TypeError(
                f"MultiSteps expects a GradientTransformation, got {type(opt).__name__}."
            )
        if not callable(every_k_schedule):
            k = check_nonnegative_int(every_k_schedule, "every_k_schedule")
            if k < 1:
                raise ValueError(f"every_k_schedule must be ≥ 1, got every_k_schedule={k}.")
        self.inner_opt = opt
        self._every_k = every_k_schedule

    def _k(self, step: Array) -> Array:
        k = self._every_k(step) if callable(self._every_k) else self._every_k
        return jnp.asarray(k, jnp.int32)

    def init(self, params: Params) -> MultiStepsState:
        zero = jnp.zeros([], jnp.int32)
        acc = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.result_type(p)), params)
        return MultiStepsState(zero, zero, self.inner_opt.init(params), acc)

    def update(
        self, updates: Updates, state: MultiStepsState, params: Params | None = None, **extra: Any
    ) -> tuple[Updates, MultiStepsState]:
        k = self._k(state.gradient_step)
        n = state.mini_step.astype(jnp.float32)
        acc = jax.tree.map(
            lambda g, a: (a + (g - a) / (n + 1).astype(a.dtype)).astype(a.dtype),
            updates,
            state.acc_grads,
        )

        def final(_: None) -> tuple[Updates, MultiStepsState]:
            new_updates, inner = self.inner_opt.update(acc, state.inner_opt_state, params, **extra)
            zeros = jax.tree.map(jnp.zeros_like, acc)
            zero = jnp.zeros([], jnp.int32)
            return new_updates, MultiStepsState(
                zero, safe_increment(state.gradient_step), inner, zeros
            )

        def middle(_: None) -> tuple[Updates, MultiStepsState]:
            shapes = jax.eval_shape(
                lambda: self.inner_opt.update(acc, state.inner_opt_state, params, **extra)[0]
            )
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            return zeros, MultiStepsState(
                safe_increment(state.mini_step), state.gradient_step, state.inner_opt_state, acc
            )

        return jax.lax.cond(state.mini_step < k - 1, middle, final, None)

    def has_updated(self, state: MultiStepsState) -> Array:
        """True if the last `update` stepped the inner optimizer (mini_step back at 0)."""
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def gradient_transformation(self) -> GradientTransformation:
        """The (init, update) pair, for `chain`, `fit` and `apply_updates`."""
        return GradientTransformation(self.init, self.update)
