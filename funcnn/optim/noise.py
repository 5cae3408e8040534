"""Gradient noise: optax's `add_noise` and `noisy_sgd` (Neelakantan et al. 2015, "Adding
Gradient Noise Improves Learning for Very Deep Networks")."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.tree_util import PyTreeDef

from funcnn.optim._tree import upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Schedule,
    Updates,
    as_schedule,
    chain,
    check_hyperparameter,
    safe_increment,
)
from funcnn.optim.scaling import scale_by_learning_rate

__all__ = ["AddNoiseState", "add_noise", "noisy_sgd"]


class AddNoiseState(NamedTuple):
    """count: int32 scalar, updates done. rng_key: the key the next noise is drawn from."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    rng_key: Array


def _as_key(key: int | Array) -> Array:
    if isinstance(key, bool):
        raise TypeError(f"key must be an int seed or a jax.random key, got key={key!r}.")
    if isinstance(key, int):
        return jax.random.PRNGKey(key)
    return key


def add_noise(eta: float, gamma: float, key: int | Array) -> GradientTransformation:
    """u = g + σₜ·ξ, ξ ~ N(0, I) fresh each step, σₜ² = η/tᵞ (t from 1), as optax's
    `add_noise` (`eta` = η ≥ 0, `gamma` = γ ≥ 0; the paper's γ = 0.55). `key`: an int seed
    or a `jax.random` key; the state carries the key forward, so a run is reproducible."""
    eta = check_hyperparameter(eta, "eta")
    gamma = check_hyperparameter(gamma, "gamma")
    start = _as_key(key)

    def init(params: Params) -> AddNoiseState:
        del params
        return AddNoiseState(jnp.zeros([], jnp.int32), start)

    def update(updates: Updates, state: AddNoiseState, params: Params | None = None, **extra):
        del params, extra
        count = safe_increment(state.count)
        next_key, sample_key = jax.random.split(state.rng_key)
        leaves = jax.tree.leaves(updates)
        treedef: PyTreeDef = jax.tree.structure(updates)
        keys = jax.random.split(sample_key, len(leaves))
        noisy = []
        for g, k in zip(leaves, keys, strict=True):
            g32 = upcast(g)
            std = jnp.sqrt(eta / count.astype(g32.dtype) ** gamma)
            noisy.append((g32 + std * jax.random.normal(k, g32.shape, g32.dtype)).astype(g.dtype))
        return treedef.unflatten(noisy), AddNoiseState(count, next_key)

    return GradientTransformation(init, update)


def noisy_sgd(
    learning_rate: float | Schedule,
    eta: float = 0.01,
    gamma: float = 0.55,
    key: int | Array = 0,
) -> GradientTransformation:
    """SGD on noisy gradients (Neelakantan et al. 2015), as optax's `noisy_sgd`:
    θ ← θ − ηₜ·(g + σₜξ), σₜ² = eta/tᵞ. Chain: add_noise → scale_by_learning_rate."""
    lr = as_schedule(learning_rate, "learning_rate")
    return chain(add_noise(eta, gamma, key), scale_by_learning_rate(lr))
