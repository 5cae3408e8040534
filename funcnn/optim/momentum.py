"""Momentum: a running sum or average of the gradients, turned into the direction d.
`trace` is heavy-ball momentum (PyTorch's SGD, no dampening, optional Nesterov);
`ema_momentum` an exponential moving average (torch.optim.Muon's buffer).

Notation: g is the incoming update (the gradient for the first stage), d the outgoing
direction, θ the parameters, t the 1-based step number, ηₜ the learning rate; only
`scale_by_learning_rate` carries the minus sign. Per-parameter buffers keep each leaf's
dtype (unless a `*_dtype` option says otherwise), arithmetic runs in at least float32
(bf16 leaves are upcast, the result cast back), step counters are int32 scalars.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from funcnn.optim._tree import check_state_dtype, const, unzip, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
    tree_zeros_like,
)

__all__ = [
    "EmaMomentumState",
    "TraceState",
    "ema_momentum",
    "trace",
]


class TraceState(NamedTuple):
    """trace: the momentum buffer v, one leaf per parameter (same shape and dtype)."""

    trace: Params


def trace(
    decay: float, *, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Heavy-ball momentum (PyTorch convention, no dampening):

        vₜ = μ·vₜ₋₁ + g,    d = g + μ·vₜ  if nesterov  else  d = vₜ,    v₀ = 0

    `decay` is μ ∈ [0, 1). Sutskever et al. 2013. optax's `trace` is the same; TF's
    `SGD(momentum)` stores −η·v instead, which differs when η changes over time.
    """
    decay = check_hyperparameter(decay, "momentum", high=1.0, high_inclusive=False)
    check_state_dtype(accumulator_dtype, "accumulator_dtype")

    def init(params: Params) -> TraceState:
        return TraceState(tree_zeros_like(params, accumulator_dtype))

    def update(updates: Updates, state: TraceState, params: Params | None = None):
        del params

        def leaf(g: Array, v: Array) -> tuple[Array, Array]:
            g32 = upcast(g)
            mu = const(decay, g32)
            v_new = mu * upcast(v) + g32
            d = g32 + mu * v_new if nesterov else v_new
            return d.astype(g.dtype), v_new.astype(v.dtype)

        pairs = jax.tree.map(leaf, updates, state.trace)
        updates, new_trace = unzip(pairs, updates)
        return updates, TraceState(new_trace)

    return GradientTransformation(init, update)


class EmaMomentumState(NamedTuple):
    """mu: the momentum buffer B, shaped like the params (each leaf's dtype, or `mu_dtype`)."""

    mu: Params


def ema_momentum(
    decay: float = 0.95, *, nesterov: bool = True, mu_dtype: Any = None
) -> GradientTransformation:
    """Momentum as an exponential moving average, as torch.optim.Muon computes it
    (`buf.lerp_(g, 1 − μ)`; `g.lerp(buf, μ)` for Nesterov):

        Bₜ = μ·Bₜ₋₁ + (1−μ)·g,   B₀ = 0                 (decay = μ ∈ [0, 1))
        d  = (1−μ)·g + μ·Bₜ   if nesterov   else   Bₜ

    No bias correction: the first step is d = (1−μ)·g (or (1−μ²)·g with Nesterov); for Muon
    the scale of d does not matter, the orthogonalization normalizes it. torch's Muon
    docstring writes Bₜ = μ·Bₜ₋₁ + g (heavy ball, `trace`), its code the average above —
    funcnn follows the code. optax's `scale_by_muon` bias-corrects the average.
    """
    decay = check_hyperparameter(decay, "momentum", high=1.0, high_inclusive=False)
    if not isinstance(nesterov, bool):
        raise TypeError(f"nesterov must be True or False, got nesterov={nesterov!r}.")
    check_state_dtype(mu_dtype, "mu_dtype")

    def init(params: Params) -> EmaMomentumState:
        return EmaMomentumState(tree_zeros_like(params, mu_dtype))

    def update(updates: Updates, state: EmaMomentumState, params: Params | None = None):
        del params

        def leaf(g: Array, b: Array) -> tuple[Array, Array]:
            g32 = upcast(g)
            mu = const(decay, g32)
            b_new = mu * upcast(b) + (1 - mu) * g32
            d = (1 - mu) * g32 + mu * b_new if nesterov else b_new
            return d.astype(g.dtype), b_new.astype(b.dtype)

        updates, mu_tree = unzip(jax.tree.map(leaf, updates, state.mu), updates)
        return updates, EmaMomentumState(mu_tree)

    return GradientTransformation(init, update)
