"""Adafactor's stages (Shazeer & Stern 2018), with torch.optim.Adafactor's semantics: the
factored second moment, the parameter-scaled step, and the relative step size capped by
the learning rate. Its update clipping by the block RMS is `clipping.clip_by_block_rms`.

Notation: g is the incoming update, d the outgoing direction, θ the
parameters, t the 1-based step number; only `scale_by_learning_rate` carries the minus
sign. RMS(x) = ‖x‖/√(number of entries of x), over one leaf. Buffers keep each leaf's dtype
(float16 → float32, `base.state_dtype`), arithmetic runs in at least float32, step counters
are int32 scalars.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim._tree import const, rms, unzip, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Schedule,
    Updates,
    as_schedule,
    check_hyperparameter,
    safe_increment,
    state_dtype,
)

__all__ = [
    "ScaleByFactoredRmsState",
    "ScaleByParamBlockRmsState",
    "ScaleByRelativeStepState",
    "scale_by_factored_rms",
    "scale_by_param_block_rms",
    "scale_by_relative_step",
]


# --- the factored second moment ----------------------------------------------------------


class ScaleByFactoredRmsState(NamedTuple):
    """count: int32 scalar, updates done so far (t − 1). Per parameter leaf of shape
    (…, n, m) (rank ≥ 2): v_row (…, n), the running mean of g² over the last axis, and
    v_col (…, m), over the second-to-last; v is an empty (0,) placeholder. Per leaf of rank
    0 or 1: v, the running mean of g² (the leaf's shape), and (0,) placeholders in v_row
    and v_col. Buffers in the leaf's dtype."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    v_row: Params
    v_col: Params
    v: Params


def _factored(shape: tuple[int, ...]) -> bool:
    return len(shape) >= 2


def scale_by_factored_rms(
    beta2_decay: float = -0.8, eps: float | None = None
) -> GradientTransformation:
    """Adafactor's direction (Shazeer & Stern 2018, Algorithms 4-5) as torch.optim.Adafactor
    computes it, t counting from 1:

        β̂₂ₜ = 1 − t^τ                                   (beta2_decay = τ ≤ 0; β̂₂₁ = 0)
        leaf G of shape (…, n, m), rank ≥ 2 — factored over the last two axes:
            Rₜ = β̂₂ₜ·Rₜ₋₁ + (1−β̂₂ₜ)·meanⱼ(G²)           (…, n)     row means
            Cₜ = β̂₂ₜ·Cₜ₋₁ + (1−β̂₂ₜ)·meanᵢ(G²)           (…, m)     column means
            V̂  = Rₜ ⊗ Cₜ / max(meanᵢ(Rₜ), ε₁)             (…, n, m)  outer product
        leaf of rank 0 or 1:
            V̂  = Vₜ = β̂₂ₜ·Vₜ₋₁ + (1−β̂₂ₜ)·G²
        d = G / max(√V̂, ε₁)                              (= G/√max(V̂, ε₁²), torch's form)

    `eps` = ε₁ > 0, or None for the machine epsilon of each leaf's dtype (torch's default:
    2.2e-16 for float64, 1.2e-7 for float32, 7.8e-3 for bfloat16). ε₁ enters as a floor
    (torch's placement), not added to G² inside the averages as in the paper and in optax's
    `scale_by_factored_rms` (ε = 1e-30). The memory of a (…, n, m) leaf is (…, n + m)
    instead of (…, n·m). Means, not sums: the ratio V̂ is the same (the sums' n and m
    cancel), as torch notes. optax factors only the two *largest* axes and only when both
    have ≥ 128 entries; torch and funcnn factor the last two axes of every rank-≥2 leaf.
    """
    beta2_decay = check_hyperparameter(beta2_decay, "beta2_decay", low=-float("inf"), high=0.0)
    if eps is not None:
        eps = check_hyperparameter(eps, "eps", low_inclusive=False)

    def init(params: Params) -> ScaleByFactoredRmsState:
        def zeros(x: Array, shape: tuple[int, ...]) -> Array:
            return jnp.zeros(shape, state_dtype(x))

        def row(x):
            return zeros(x, x.shape[:-1]) if _factored(x.shape) else zeros(x, (0,))

        def col(x):
            return zeros(x, x.shape[:-2] + x.shape[-1:]) if _factored(x.shape) else zeros(x, (0,))

        def full(x):
            return zeros(x, (0,)) if _factored(x.shape) else zeros(x, x.shape)

        count = jnp.zeros([], jnp.int32)  # () int32
        return ScaleByFactoredRmsState(
            count, jax.tree.map(row, params), jax.tree.map(col, params), jax.tree.map(full, params)
        )

    def update(updates: Updates, state: ScaleByFactoredRmsState, params: Params | None = None):
        del params
        count = safe_increment(state.count)  # t, as int32

        def leaf(g: Array, r: Array, c: Array, v: Array):
            g32 = upcast(g)
            eps1 = const(float(jnp.finfo(g.dtype).eps) if eps is None else eps, g32)
            t = count.astype(g32.dtype)
            one_minus_beta = t ** const(beta2_decay, g32)  # 1 − β̂₂ₜ = t^τ
            beta = 1 - one_minus_beta
            g2 = g32 * g32
            if _factored(g.shape):
                r_new = beta * upcast(r) + one_minus_beta * jnp.mean(g2, axis=-1)  # (…, n)
                c_new = beta * upcast(c) + one_minus_beta * jnp.mean(g2, axis=-2)  # (…, m)
                r_mean = jnp.maximum(jnp.mean(r_new, axis=-1, keepdims=True), eps1)  # (…, 1)
                v_hat = (r_new / r_mean)[..., :, None] * c_new[..., None, :]  # (…, n, m)
                buffers = (r_new.astype(r.dtype), c_new.astype(c.dtype), v)
            else:
                v_hat = beta * upcast(v) + one_minus_beta * g2  # leaf's shape
                buffers = (r, c, v_hat.astype(v.dtype))
            d = g32 / jnp.sqrt(jnp.maximum(v_hat, eps1 * eps1))
            return d.astype(g.dtype), buffers

        out = jax.tree.map(leaf, updates, state.v_row, state.v_col, state.v)
        updates, buffers = unzip(out, updates)
        v_row, v_col, v = unzip(buffers, updates, 3)
        return updates, ScaleByFactoredRmsState(count, v_row, v_col, v)

    return GradientTransformation(init, update)


# --- clipping, parameter scale, relative step --------------------------------------------


class ScaleByParamBlockRmsState(NamedTuple):
    """Stateless (no fields)."""


def scale_by_param_block_rms(min_scale: float = 1e-3) -> GradientTransformation:
    """Scale each leaf's update by the size of its parameter (Adafactor's relative step):

        d = max(ε₂, RMS(θ))·g                              (min_scale = ε₂ ≥ 0)

    θ is the parameter *before* this step's weight decay (torch computes α from θₜ₋₁ too).
    optax's `scale_by_param_block_rms` is the same. Needs the params. Stateless.
    """
    min_scale = check_hyperparameter(min_scale, "min_scale")

    def init(params: Params) -> ScaleByParamBlockRmsState:
        del params
        return ScaleByParamBlockRmsState()

    def update(updates: Updates, state: ScaleByParamBlockRmsState, params: Params | None = None):
        if params is None:
            raise ValueError(
                "scale_by_param_block_rms needs the params: call update(grads, state, params)."
            )

        def leaf(g: Array, p: Array) -> Array:
            g32 = upcast(g)
            scale = jnp.maximum(const(min_scale, g32), rms(upcast(p)).astype(g32.dtype))
            return (g32 * scale).astype(g.dtype)

        return jax.tree.map(leaf, updates, params), state

    return GradientTransformation(init, update)


class ScaleByRelativeStepState(NamedTuple):
    """count: int32 scalar, updates done so far (t − 1)."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do


def scale_by_relative_step(learning_rate: float | Schedule) -> GradientTransformation:
    """Cap the step at torch's relative step size ρₜ = min(ηₜ, 1/√t):

        d = (ρₜ/ηₜ)·g = min(1, 1/(ηₜ·√t))·g              (d = g where ηₜ = 0)

    placed before `scale_by_learning_rate(η)`, which multiplies by −ηₜ, so the step is
    −ρₜ·g: the learning rate η is the *largest* relative step (Shazeer & Stern use a fixed
    0.01 there; torch uses lr), while the decoupled weight decay between the two stages
    stays scaled by ηₜ as torch does. `learning_rate` must be the same number or schedule
    as the learning-rate stage's (ηₜ = schedule(t − 1), first update schedule(0)).
    """
    schedule = as_schedule(learning_rate, "learning_rate")

    def init(params: Params) -> ScaleByRelativeStepState:
        del params
        return ScaleByRelativeStepState(jnp.zeros([], jnp.int32))

    def update(updates: Updates, state: ScaleByRelativeStepState, params: Params | None = None):
        del params
        lr = jnp.asarray(schedule(state.count))  # ηₜ, ()
        t = safe_increment(state.count)

        def leaf(g: Array) -> Array:
            g32 = upcast(g)
            eta, step = const(lr, g32), t.astype(g32.dtype)
            factor = jnp.minimum(1, 1 / (eta * jnp.sqrt(step)))  # 1/0 = ∞ → 1 at ηₜ = 0
            return (g32 * factor).astype(g.dtype)

        return jax.tree.map(leaf, updates), ScaleByRelativeStepState(t)

    return GradientTransformation(init, update)
