"""Frozen parameters: optax's `set_to_zero`, `freeze` and `selective_transform`.

    opt = optim.selective_transform(optim.adamw(1e-3), freeze_mask={"encoder": True, "head": False})

A frozen leaf gets a zero update (bitwise: θ + 0 = θ) and the optimizer keeps no state for it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from funcnn.optim.base import EmptyState, GradientTransformation, Params, Updates
from funcnn.optim.routing import MaskOrFn, _mask_tree, masked, partition

__all__ = ["freeze", "selective_transform", "set_to_zero"]


def set_to_zero() -> GradientTransformation:
    """u = 0 for every leaf (each leaf's dtype and shape), as optax's `set_to_zero`. Stateless."""

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        return jax.tree.map(jnp.zeros_like, updates), state

    return GradientTransformation(init, update)


def freeze(mask: MaskOrFn) -> GradientTransformation:
    """u = 0 on the leaves `mask` selects (True = frozen), g elsewhere, as optax's
    `transforms.freeze`: `masked(set_to_zero(), mask)`. Chain it after an optimizer, or use
    `selective_transform` so the frozen leaves keep no optimizer state."""
    return masked(set_to_zero(), mask)


def selective_transform(
    optimizer: GradientTransformation, *, freeze_mask: MaskOrFn
) -> GradientTransformation:
    """`optimizer` on the leaves `freeze_mask` leaves trainable (False), u = 0 on the frozen
    ones (True), as optax's `transforms.selective_transform`:

        uᵢ = 0 if freeze_maskᵢ else optimizer(g restricted to the trainable leaves)ᵢ

    The optimizer sees and keeps state for the trainable leaves only (a global-norm clip
    inside it measures those). `freeze_mask`: a pytree of bools (a prefix works) or a
    function of the params.
    """

    def labels(params: Params) -> Any:
        frozen = _mask_tree(freeze_mask, params)
        return jax.tree.map(lambda f: "freeze" if f else "train", frozen)

    return partition({"train": optimizer, "freeze": set_to_zero()}, labels)
