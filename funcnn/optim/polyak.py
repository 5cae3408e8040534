"""Polyak's step size, which reads the loss value: optax's `scale_by_polyak` and
`polyak_sgd`.

    opt = optim.polyak_sgd()
    updates, state = opt.update(grads, state, params, value=loss_value)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.optim._tree import upcast
from funcnn.optim.base import (
    EmptyState,
    GradientTransformation,
    Params,
    Schedule,
    Updates,
    as_schedule,
    chain,
    check_hyperparameter,
    global_norm,
)
from funcnn.optim.scaling import scale_by_learning_rate

__all__ = ["polyak_sgd", "scale_by_polyak"]

_VARIANTS = ("sps", "sps+")


def scale_by_polyak(
    f_min: float = 0.0,
    max_learning_rate: float = 1.0,
    eps: float = 0.0,
    variant: str = "sps",
) -> GradientTransformation:
    """Polyak's step (Polyak 1987; Loizou et al. 2021, "Stochastic Polyak Step-size for SGD"),
    as optax's `scale_by_polyak`, with f = the loss at the current params (`value`):

        γ = min((f − f*)/(‖g‖² + ε), γ_max)     (f − f* clamped at 0 for variant "sps+")
        γ = 0 where ‖g‖² + ε ≤ float64's machine epsilon
        d = γ·g

    `f_min` = f* (a lower bound of the loss, 0 for interpolating models), `max_learning_rate`
    = γ_max > 0, `eps` = ε ≥ 0. ‖g‖ is the global norm of the incoming update (after any
    earlier stage's scaling, as in optax). Needs `update(..., value=f)`. Stateless.
    """
    if variant not in _VARIANTS:
        raise ValueError(f'variant must be "sps" or "sps+", got variant={variant!r}.')
    max_learning_rate = check_hyperparameter(
        max_learning_rate, "max_learning_rate", low_inclusive=False
    )
    eps = check_hyperparameter(eps, "eps")
    f_min = check_hyperparameter(f_min, "f_min", low=-np.inf)

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(
        updates: Updates,
        state: EmptyState,
        params: Params | None = None,
        *,
        value: Any = None,
        **extra,
    ):
        del params, extra
        if value is None:
            raise ValueError(
                "scale_by_polyak needs the loss: call update(grads, state, params, value=loss)."
            )
        norm_sq = jnp.square(global_norm(updates))  # ()
        gap = jnp.asarray(value).astype(norm_sq.dtype) - f_min
        if variant == "sps+":
            gap = jnp.maximum(gap, 0.0)
        step = jnp.where(
            norm_sq + eps <= np.finfo(np.float64).eps,
            jnp.zeros_like(norm_sq),
            jnp.minimum(gap / (norm_sq + eps), max_learning_rate),
        )
        return jax.tree.map(
            lambda g: (upcast(g) * step.astype(upcast(g).dtype)).astype(g.dtype), updates
        ), state

    return GradientTransformation(init, update)


def polyak_sgd(
    max_learning_rate: float = 1.0,
    scaling: float | Schedule = 1.0,
    f_min: float = 0.0,
    eps: float = 0.0,
    variant: str = "sps",
) -> GradientTransformation:
    """SGD with Polyak's step size (Loizou et al. 2021), as optax's `polyak_sgd`:

        u = −s·g,   γ = min((f − f*)/(‖u‖² + ε), γ_max),   θ ← θ + γ·u

    `scaling` = s (a number or a schedule of the step), the rest as `scale_by_polyak`.
    Every update needs `value=f(θ)`. Chain: scale_by_learning_rate(s) → scale_by_polyak.
    """
    return chain(
        scale_by_learning_rate(as_schedule(scaling, "scaling")),
        scale_by_polyak(f_min, max_learning_rate, eps, variant),
    )
