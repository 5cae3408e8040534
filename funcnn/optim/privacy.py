"""Differentially private SGD: optax.contrib's `differentially_private_aggregate` and `dpsgd`
(Abadi et al. 2016, "Deep Learning with Differential Privacy", Algorithm 1).

    opt = optim.dpsgd(learning_rate=0.1, l2_norm_clip=1.0, noise_multiplier=1.1, seed=0)
    per_example = jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batch)  # leaves (B, …)
    updates, state = opt.update(per_example, state, params)
    params = optim.apply_updates(params, updates)

Unlike every other transformation, these take *per-example* gradients: every leaf carries
the B examples on axis 0, and what comes out is shaped like the params. `chain` checks that
updates are shaped like the params, so `chain(differentially_private_aggregate(…), …)` must be
updated without params (`update(g, state)`); `dpsgd` composes its stages itself and takes
them. `accumulate`/`MultiSteps` would average already-noised sums, which is not what the
privacy accounting assumes.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
from jax.tree_util import PyTreeDef

from funcnn.optim.base import (
    Array,
    GradientTransformation,
    OptState,
    Params,
    Schedule,
    Updates,
    as_schedule,
    chain,
    check_hyperparameter,
)
from funcnn.optim.clipping_per_unit import per_example_global_norm_clip
from funcnn.optim.momentum import trace
from funcnn.optim.noise import _as_key
from funcnn.optim.scaling import identity, scale_by_learning_rate

__all__ = ["DifferentiallyPrivateAggregateState", "differentially_private_aggregate", "dpsgd"]


class DifferentiallyPrivateAggregateState(NamedTuple):
    """rng_key: the key the next noise is drawn from (optax's field)."""

    rng_key: Array


def differentially_private_aggregate(
    l2_norm_clip: float,
    noise_multiplier: float,
    key: int | Array | None = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    """DP-SGD's aggregation (Abadi et al. 2016, Algorithm 1, lines "clip", "add noise"), as
    optax.contrib's `differentially_private_aggregate`. With per-example gradients gᵢ,
    i = 1…B (every leaf shaped (B, *leaf)), C = l2_norm_clip, σ = noise_multiplier:

        ḡᵢ = gᵢ·min(1, C/‖gᵢ‖)               ‖gᵢ‖ over every leaf of example i
        u  = (Σᵢ ḡᵢ + σC·ξ)/B,   ξ ~ N(0, I)  fresh each step, one draw per leaf

    so u is unbiased for the mean clipped gradient and its noise has std σC/B per entry.
    `key`: an int seed or a `jax.random` key (None: seed 0, optax's fallback); `seed`: optax's
    older keyword for the same (give one of the two). The keys split as optax's do (one per
    leaf and the next state's key from a single split), so the same seed draws the same noise.
    Output shaped like one example's gradient. Ignores the params.
    """
    l2_norm_clip = check_hyperparameter(l2_norm_clip, "l2_norm_clip")
    noise_multiplier = check_hyperparameter(noise_multiplier, "noise_multiplier")
    if seed is not None:
        if key is not None:
            raise ValueError(
                f"differentially_private_aggregate takes one of key or seed, got key={key!r} "
                f"and seed={seed!r}."
            )
        key = seed
    start = _as_key(0 if key is None else key)
    noise_std = l2_norm_clip * noise_multiplier

    def init(params: Params) -> DifferentiallyPrivateAggregateState:
        del params
        return DifferentiallyPrivateAggregateState(start)

    def update(
        updates: Updates,
        state: DifferentiallyPrivateAggregateState,
        params: Params | None = None,
        **extra,
    ):
        del params, extra
        summed, _ = per_example_global_norm_clip(updates, l2_norm_clip)  # checks axis 0
        batch = jax.tree.leaves(updates)[0].shape[0]  # B
        leaves = jax.tree.leaves(summed)
        treedef: PyTreeDef = jax.tree.structure(summed)
        next_key, *keys = jax.random.split(state.rng_key, len(leaves) + 1)
        noised = [
            (g + noise_std * jax.random.normal(k, g.shape, g.dtype)) / batch
            for g, k in zip(leaves, keys, strict=True)
        ]
        return treedef.unflatten(noised), DifferentiallyPrivateAggregateState(next_key)

    return GradientTransformation(init, update)


def dpsgd(
    learning_rate: float | Schedule,
    l2_norm_clip: float,
    noise_multiplier: float,
    seed: int,
    momentum: float | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """DP-SGD (Abadi et al. 2016), as optax.contrib's `dpsgd`, on per-example gradients gᵢ
    (every leaf (B, *leaf)):

        u = (Σᵢ gᵢ·min(1, C/‖gᵢ‖) + σC·ξ)/B      (differentially_private_aggregate)
        v = μ·v + u;  d = u + μ·v if nesterov else v   (only when momentum = μ is given)
        θ ← θ − ηₜ·d

    C = l2_norm_clip, σ = noise_multiplier, `seed` the noise's int seed. No momentum at all
    with momentum=None (optax's default), not μ = 0. Chain: differentially_private_aggregate
    → trace (or identity) → scale_by_learning_rate. The privacy guarantee (ε, δ) depends on σ,
    the sampling rate and the number of steps; computing it is left to an accountant.
    """
    lr = as_schedule(learning_rate, "learning_rate")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"dpsgd: seed must be an int, got seed={seed!r}.")
    aggregate = differentially_private_aggregate(l2_norm_clip, noise_multiplier, seed)
    rest = chain(
        trace(momentum, nesterov=nesterov) if momentum is not None else identity(),
        scale_by_learning_rate(lr),
    )

    # Not `chain(aggregate, …)`: chain checks that the incoming updates are shaped like the
    # params, and the per-example gradients have the extra batch axis until aggregated.
    def init(params: Params) -> tuple[DifferentiallyPrivateAggregateState, OptState]:
        return aggregate.init(params), rest.init(params)

    def update(updates: Updates, state: tuple, params: Params | None = None, **extra):
        aggregated, aggregate_state = aggregate.update(updates, state[0], params, **extra)
        out, rest_state = rest.update(aggregated, state[1], params, **extra)
        return out, (aggregate_state, rest_state)

    return GradientTransformation(init, update)
