"""Wrappers around a whole optimizer: skip non-finite gradients, accumulate micro-batches.

    opt = skip_nonfinite(accumulate(adamw(1e-3), every_k=4), max_consecutive=10)

Both pass `params` through to the inner optimizer and return updates that leave the
parameters *bitwise* unchanged when no step is taken. Those "no-op" updates are −0.0, not
+0.0: in IEEE arithmetic θ + (−0.0) = θ for every θ (including θ = −0.0, which +0.0 would
turn into +0.0), so `apply_updates` is an exact identity on those steps.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn._validation import check_positive_int
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    OptState,
    Params,
    Updates,
    check_same_structure,
    compute_dtype,
)
from funcnn.params import all_finite

__all__ = [
    "AccumulateState",
    "NonFiniteGradientsError",
    "SkipNonfiniteState",
    "accumulate",
    "check_nonfinite",
    "nonfinite_counts",
    "skip_nonfinite",
]


def _noop_updates(shapes: Any) -> Updates:
    """Updates that `apply_updates` turns into the identity: −0.0 in each leaf's dtype."""
    return jax.tree.map(lambda s: jnp.full(s.shape, -0.0, s.dtype), shapes)


def _check_same_structure(updates: Updates, params: Params | None, wrapper: str) -> None:
    if params is not None:
        check_same_structure(updates, params, "updates (the gradients)", where=f"{wrapper}: ")


# --- skip non-finite gradients -------------------------------------------------------------


class SkipNonfiniteState(NamedTuple):
    """inner: the wrapped optimizer's state (frozen on skipped steps).
    skipped: int32 scalar, steps skipped so far because a gradient held NaN or ±Inf.
    consecutive: int32 scalar, skipped steps in a row (0 after a finite step).
    max_consecutive: int32 scalar, the limit `check_nonfinite` enforces."""

    inner: OptState
    skipped: Array
    consecutive: Array
    max_consecutive: Array


class NonFiniteGradientsError(FloatingPointError):
    """Too many consecutive steps had non-finite gradients: training has diverged."""


def skip_nonfinite(
    inner: GradientTransformation, max_consecutive: int = 10
) -> GradientTransformation:
    """Run `inner` only on steps whose gradients are all finite; skip (and count) the others.

        finite = every entry of every gradient leaf is finite
        finite:     (u, s_inner) ← inner.update(g, s_inner, θ);  consecutive ← 0
        otherwise:  u ← −0.0 (θ unchanged bitwise);  s_inner unchanged (step counts too);
                    skipped += 1;  consecutive += 1

    A compiled step cannot raise, so the loud failure happens on the host: after
    `max_consecutive` bad steps in a row the wrapper keeps skipping (parameters stay safe)
    and `check_nonfinite(opt_state)` — which `fit` callers run between fused chunks —
    raises `NonFiniteGradientsError`. `nonfinite_counts(opt_state)` reads the counters for
    logging. Both find this wrapper's state anywhere inside a larger state (e.g. TrainState).
    A deliberate difference from optax's `apply_if_finite` (same idea): once its
    `max_consecutive_errors` is exceeded, optax *applies* the non-finite update (the params go
    NaN, so the failure shows); funcnn keeps skipping — the params stay finite and usable —
    and makes the failure loud on the host instead, through `check_nonfinite`.
    """
    max_consecutive = check_positive_int(max_consecutive, "max_consecutive")

    def init(params: Params) -> SkipNonfiniteState:
        # Two distinct buffers: one shared array would be donated twice by a jitted step.
        return SkipNonfiniteState(
            inner=inner.init(params),
            skipped=jnp.zeros([], jnp.int32),
            consecutive=jnp.zeros([], jnp.int32),
            max_consecutive=jnp.asarray(max_consecutive, jnp.int32),
        )

    def update(
        updates: Updates, state: SkipNonfiniteState, params: Params | None = None, **extra: Any
    ):
        _check_same_structure(updates, params, "skip_nonfinite")
        finite = all_finite(updates)
        new_updates, new_inner = inner.update(updates, state.inner, params, **extra)
        # Select, not lax.cond: under vmap/scan both branches run anyway, and the NaN-fed
        # branch is simply discarded.
        noop = _noop_updates(new_updates)
        new_updates = jax.tree.map(lambda u, z: jnp.where(finite, u, z), new_updates, noop)
        new_inner = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new_inner, state.inner)
        bad = (~finite).astype(jnp.int32)
        return new_updates, SkipNonfiniteState(
            inner=new_inner,
            skipped=state.skipped + bad,
            consecutive=(state.consecutive + 1) * bad,
            max_consecutive=state.max_consecutive,
        )

    return GradientTransformation(init, update)


def _skip_states(opt_state: Any) -> list[SkipNonfiniteState]:
    nodes = jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, SkipNonfiniteState))
    return [node for node in nodes if isinstance(node, SkipNonfiniteState)]


def nonfinite_counts(opt_state: Any) -> dict[str, int]:
    """{"skipped": total skipped steps, "consecutive": current run of skipped steps}, read
    from every `skip_nonfinite` state inside `opt_state` (summed; max for the run).

    Copies two scalars to the host, so call it between fused chunks, not inside jit.
    Raises ValueError if `opt_state` holds no `skip_nonfinite` state.
    """
    states = _skip_states(opt_state)
    if not states:
        raise ValueError(
            "opt_state holds no skip_nonfinite state; wrap the optimizer with "
            "optim.skip_nonfinite(...) to count non-finite gradients."
        )
    return {
        "skipped": sum(int(s.skipped) for s in states),
        "consecutive": max(int(s.consecutive) for s in states),
    }


def check_nonfinite(opt_state: Any) -> dict[str, int] | None:
    """Raise NonFiniteGradientsError once any `skip_nonfinite` state inside `opt_state` has
    skipped `max_consecutive` steps in a row; otherwise return `nonfinite_counts`, or None
    when `opt_state` holds no such wrapper (then nothing is copied to the host)."""
    states = _skip_states(opt_state)
    for s in states:
        run, limit = int(s.consecutive), int(s.max_consecutive)
        if run >= limit:
            raise NonFiniteGradientsError(
                f"the last {run} steps all had NaN/Inf gradients (max_consecutive={limit}; "
                f"{int(s.skipped)} skipped in total). The parameters were left untouched; "
                "lower the learning rate, check the data for NaN/Inf, or clip gradients."
            )
    return nonfinite_counts(opt_state) if states else None


# --- gradient accumulation -----------------------------------------------------------------


class AccumulateState(NamedTuple):
    """micro_step: int32 scalar in [0, k), micro-batches summed since the last inner update.
    grad_sum: Σ of those gradients, shaped like the params, in at least float32.
    inner: the wrapped optimizer's state (advances once every k calls)."""

    micro_step: Array
    grad_sum: Updates
    inner: OptState


def accumulate(inner: GradientTransformation, every_k: int) -> GradientTransformation:
    """Average gradients over `every_k` micro-batches, then take one step of `inner`:

        calls 1…k−1: S ← S + g;  u = −0.0 (θ unchanged bitwise)
        call k:      ḡ = (S + g)/k;  (u, s_inner) ← inner.update(ḡ, s_inner, θ);  S ← 0

    With equal-sized micro-batches ḡ is the gradient of the k-times-larger batch, so the
    trajectory (sampled every k calls) equals big-batch training for any inner optimizer —
    Adam's moments and step count and AdamW's decay (which sees the current θ) included.
    The sum is kept in at least float32 so bf16 gradients do not lose bits. optax's
    `MultiSteps` does the same with a running mean.
    """
    every_k = check_positive_int(every_k, "every_k")

    def init(params: Params) -> AccumulateState:
        grad_sum = jax.tree.map(
            lambda p: jnp.zeros(jnp.shape(p), compute_dtype(jnp.result_type(p))), params
        )
        return AccumulateState(jnp.zeros([], jnp.int32), grad_sum, inner.init(params))

    def update(
        updates: Updates, state: AccumulateState, params: Params | None = None, **extra: Any
    ):
        _check_same_structure(updates, params, "accumulate")
        grad_sum = jax.tree.map(lambda s, g: s + g.astype(s.dtype), state.grad_sum, updates)
        micro_step = state.micro_step + 1

        def apply_inner(_):
            k = jnp.asarray(every_k)
            mean = jax.tree.map(
                lambda s, g: (s / k.astype(s.dtype)).astype(g.dtype), grad_sum, updates
            )
            new_updates, new_inner = inner.update(mean, state.inner, params, **extra)
            zeros = jax.tree.map(jnp.zeros_like, grad_sum)
            return new_updates, AccumulateState(jnp.zeros([], jnp.int32), zeros, new_inner)

        def keep_summing(_):
            shapes = jax.eval_shape(lambda: inner.update(updates, state.inner, params, **extra)[0])
            return _noop_updates(shapes), AccumulateState(micro_step, grad_sum, state.inner)

        # lax.cond so the inner optimizer's arithmetic runs once per k calls.
        return jax.lax.cond(micro_step >= every_k, apply_inner, keep_summing, None)

    return GradientTransformation(init, update)
