"""Clipping finer than the global norm: per unit (adaptive gradient clipping, optax's
`adaptive_grad_clip`) and per example (the building block of DP-SGD, optax's
`per_example_global_norm_clip`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from funcnn.optim._tree import upcast
from funcnn.optim.base import (
    Array,
    EmptyState,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
)

__all__ = ["adaptive_grad_clip", "per_example_global_norm_clip", "unitwise_norm"]


def unitwise_norm(x: Array) -> Array:
    """‖x‖ per unit, broadcast back to x's shape (optax's layout conventions):
    rank ≤ 1 (after squeezing): the whole leaf; rank 2 or 3 ((in, out) dense, multi-head):
    over axis 0, one norm per output unit; rank 4 (HWIO conv): over axes 0–2; rank 5
    (DHWIO): over axes 0–3. Other ranks are a ValueError."""
    x32 = upcast(x)
    squared = jnp.square(x32)
    if jnp.squeeze(x32).ndim <= 1:
        norm_sq = jnp.sum(squared, keepdims=True)
    elif x32.ndim in (2, 3):
        norm_sq = jnp.sum(squared, axis=0, keepdims=True)
    elif x32.ndim in (4, 5):
        norm_sq = jnp.sum(squared, axis=tuple(range(x32.ndim - 1)), keepdims=True)
    else:
        raise ValueError(f"unitwise_norm handles ranks 0–5, got a leaf of shape {x.shape}.")
    return jnp.broadcast_to(jnp.sqrt(norm_sq), x32.shape)


def adaptive_grad_clip(clipping: float, eps: float = 1e-3) -> GradientTransformation:
    """Adaptive gradient clipping (Brock et al. 2021, "High-Performance Large-Scale Image
    Recognition Without Normalization", §3), as optax's `adaptive_grad_clip`, per unit i of
    each leaf (`unitwise_norm`):

        mᵢ = λ·max(‖θᵢ‖, ε)                      (clipping = λ > 0, eps = ε)
        uᵢ = gᵢ  if ‖gᵢ‖ < mᵢ  else  gᵢ·mᵢ/max(‖gᵢ‖, 10⁻⁶)

    Each unit's step is at most λ times its weights' size (ε keeps zero-initialized units
    movable). Needs the params. Stateless.
    """
    clipping = check_hyperparameter(clipping, "clipping", low_inclusive=False)
    eps = check_hyperparameter(eps, "eps")

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(updates: Updates, state: EmptyState, params: Params | None = None, **extra):
        del extra
        if params is None:
            raise ValueError(
                "adaptive_grad_clip needs the params: call update(grads, state, params)."
            )

        def leaf(g: Array, p: Array) -> Array:
            g_norm = unitwise_norm(g)
            max_norm = clipping * jnp.maximum(unitwise_norm(p).astype(g_norm.dtype), eps)
            clipped = upcast(g) * (max_norm / jnp.maximum(g_norm, 1e-6))
            return jnp.where(g_norm < max_norm, upcast(g), clipped).astype(g.dtype)

        return jax.tree.map(leaf, updates, params), state

    return GradientTransformation(init, update)


def per_example_global_norm_clip(grads: Updates, l2_norm_clip: float) -> tuple[Updates, Array]:
    """Clip each example's gradient to global norm ≤ C, then sum over the examples, as
    optax's `per_example_global_norm_clip` (Abadi et al. 2016, "Deep Learning with
    Differential Privacy", Algorithm 1's clipping step):

        ḡ = Σᵢ gᵢ·min(1, C/‖gᵢ‖),   ‖gᵢ‖ over every leaf of example i

    `grads`: a tree whose every leaf has the examples on axis 0 (from `jax.vmap(jax.grad(…))`),
    (B, …). Returns (ḡ shaped like one example's gradient, the number of clipped examples).
    DP-SGD then adds Gaussian noise of std σC to ḡ and divides by B.
    """
    l2_norm_clip = check_hyperparameter(l2_norm_clip, "l2_norm_clip")
    leaves = jax.tree.leaves(grads)
    if not leaves:
        raise ValueError("per_example_global_norm_clip got an empty gradient tree.")
    batch = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if len(batch) != 1 or None in batch:
        raise ValueError(
            "per_example_global_norm_clip needs every leaf to have the same leading (example) "
            f"axis, got leading sizes {sorted(str(b) for b in batch)}."
        )
    norms_sq = [jnp.sum(jnp.square(upcast(x)).reshape(x.shape[0], -1), axis=1) for x in leaves]
    norms = jnp.sqrt(sum(norms_sq[1:], norms_sq[0]))  # (B,)
    factors = jnp.minimum(1.0, l2_norm_clip / jnp.maximum(norms, 1e-30))  # (B,)
    summed = jax.tree.map(
        lambda x: jnp.tensordot(factors.astype(upcast(x).dtype), upcast(x), axes=1).astype(x.dtype),
        grads,
    )
    return summed, jnp.sum(norms > l2_norm_clip).astype(jnp.int32)
