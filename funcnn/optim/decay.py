"""Weight decay, written one way: `add_decayed_weights` adds λ·θ to the update, and where the
stage sits in a chain decides what it means —

    before the direction stage:  g ← g + λ·θ, then scaled with g     (coupled L2: SGD, Adam)
    after it, before the learning rate:  θ ← θ − ηₜ·(d + λ·θ)        (decoupled: AdamW)

`weight_decay_stages(λ, mask)` is that stage as a tuple, empty when λ = 0, so every alias
writes `chain(*weight_decay_stages(λ), direction, ...)` or `chain(direction,
*weight_decay_stages(λ, mask), ...)` and nothing else.
"""

from __future__ import annotations

import jax

from funcnn.optim._tree import const, upcast
from funcnn.optim.base import (
    EmptyState,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
    stateless_init,
)
from funcnn.optim.routing import MaskOrFn, masked

__all__ = [
    "add_decayed_weights",
    "weight_decay_stages",
]


def add_decayed_weights(
    weight_decay: float = 0.0, mask: MaskOrFn | None = None
) -> GradientTransformation:
    """u = g + λ·θ on the leaves selected by `mask` (all leaves if None). Stateless.

    Placed *before* the adaptive scaling this is coupled L2 regularization (PyTorch's
    `Adam(weight_decay=λ)`, SGD's weight decay); placed *after* it and before
    `scale_by_learning_rate` it is decoupled decay θ ← θ − ηₜ·λ·θ (AdamW, Loshchilov &
    Hutter 2019, as PyTorch and optax implement it: the decay is scaled by ηₜ, not by η/η₀).
    `weight_decay` is λ ≥ 0; `mask` is a pytree of bools (a prefix of the params works) or
    a function params -> such a pytree (e.g. `funcnn.params.decay_mask`).
    """
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")

    def update(updates: Updates, state: EmptyState, params: Params | None = None):
        if params is None:
            raise ValueError(
                "add_decayed_weights needs the params: call update(grads, state, params)."
            )
        updates = jax.tree.map(
            lambda g, p: (upcast(g) + const(weight_decay, upcast(g)) * upcast(p)).astype(g.dtype),
            updates,
            params,
        )
        return updates, state

    transform = GradientTransformation(stateless_init, update)
    return transform if mask is None else masked(transform, mask)


def weight_decay_stages(
    weight_decay: float, mask: MaskOrFn | None = None
) -> tuple[GradientTransformation, ...]:
    """`(add_decayed_weights(λ, mask),)`, or `()` when λ = `weight_decay` is 0 (no wasted pass
    over the params). Validates λ ≥ 0 at build time, naming `weight_decay`. Where the caller
    splices it into its chain makes it coupled or decoupled (see the module docstring)."""
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")
    return (add_decayed_weights(weight_decay, mask),) if weight_decay > 0 else ()
