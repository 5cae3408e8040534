"""Inverted dropout (Srivastava et al., 2014).

Training:  y = m ⊙ x / (1 − p),  m_i ~ Bernoulli(1 − p) independently, p = `rate`
Eval:      y = x
`rate` is the probability of DROPPING a unit (PyTorch's convention; stax once had it
inverted). Dividing by 1 − p while training keeps E[y] = x, so inference needs no rescaling
— equivalent to classic dropout's scaling by (1 − p) at test time.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcnn._validation import check_in_range
from funcnn.nn.core import Layer, Params, Shape, as_shape

Array = jax.Array

__all__ = ["dropout"]


def dropout(rate: float, *, name: str = "dropout") -> Layer:
    """Inverted dropout with drop probability `rate` ∈ [0, 1]; params {}.

    rate = 1 drops everything: train=True gives zeros with zero gradient (no 0/0), as in
    PyTorch and flax.

    apply(params, x, key=k, train=True) draws a fresh mask from `k` (split it per step);
    train=False (the default) is the identity whatever the key. train=True with rate > 0 and
    no key raises a ValueError instead of silently not dropping. `train` is a Python bool
    (a compile-time switch), not a traced value.
    """
    rate = check_in_range(rate, "rate", 0.0, 1.0, high_inclusive=True)
    keep_prob = 1.0 - rate

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        return {}, as_shape(in_shape)

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del params
        if not train or rate == 0.0:
            return x
        if key is None:
            raise ValueError(
                f"{name}: train=True needs a PRNG key for the dropout mask, got key=None. "
                f"Pass apply(params, x, key=key, train=True), or train=False for evaluation."
            )
        if rate == 1.0:  # 1/(1 − p) would be 1/0; every unit is dropped
            return jnp.zeros_like(x)
        keep = jax.random.bernoulli(key, keep_prob, jnp.shape(x))  # m ~ Bernoulli(1 − p)
        return jnp.where(keep, x / keep_prob, jnp.zeros_like(x))

    return Layer(init, apply, name)
