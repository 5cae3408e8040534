"""Run configurations through funcnn and through the float64 reference, and compare.

    from funcnn.verify import runner
    with jax.enable_x64(True):                       # float64 runs need x64
        results = runner.compare_all(num_steps=500, dtype="float64")
    for name, result in results.items():
        print(name, result.max_rel_error, result.max_lr_error)

Both sides start from the same `registry.problem_params(seed)` and take N steps on
`registry.problem_loss`; the funcnn side runs every optimizer in one jitted program (a
`lax.scan` each), the reference side its NumPy loop (`reference.optim.run_reference`) with
the hand-written gradient. An optimizer that reads the loss (its reference says
`needs_value`: MoMo, Polyak) gets `value=f(θ)` on both sides. For a configuration run N steps:

    rel error = maxₗ ‖θₗ − θₗʳᵉᶠ‖∞ / ‖θₗʳᵉᶠ‖∞            (over parameter leaves l)
    lr error  = maxₖ |ηₖ − ηₖʳᵉᶠ| / |ηₖʳᵉᶠ|                (the learning rate used at step k)

Used by `funcnn.lab.compare.verify` (the table of `scripts/compare_optimizers.py verify`)
and `tests/test_reference_agreement.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import optim
from funcnn.optim.base import GradientTransformation, optimizer_step
from funcnn.reference import optim as ref
from funcnn.verify import registry

__all__ = ["Buildable", "Comparison", "compare", "compare_all", "run_funcnn"]


class Buildable(Protocol):
    """What the runner needs of a configuration: a `registry.Spec` or an `OptimizerConfig`."""

    def build(self) -> GradientTransformation: ...

    def build_reference(self) -> Any: ...


def run_funcnn(
    optimizers: Mapping[str, GradientTransformation],
    params: Any,
    num_steps: int,
    with_value: Collection[str] = (),
) -> dict[str, tuple[Any, jax.Array]]:
    """θₖ₊₁ = θₖ + update(∇f(θₖ)) for `num_steps` steps of `problem_loss`, per optimizer
    (`update(..., value=f(θₖ))` for the names in `with_value`).

    All optimizers run in one jitted program (one `lax.scan` each), so a whole registry
    compiles once. Returns name -> (final params, learning rate used at each step, or NaN
    where the optimizer has no `scale_by_learning_rate` stage).
    """

    def rate_of(state: Any) -> jax.Array:
        try:
            return optim.current_learning_rate(state)
        except ValueError:
            return jnp.full([], jnp.nan, jnp.float32)

    def run_one(optimizer: GradientTransformation, theta: Any, reads_value: bool):
        def body(carry, _):
            theta, state = carry
            value, grads = jax.value_and_grad(registry.problem_loss)(theta)
            extra = {"value": value} if reads_value else {}
            theta, state = optimizer_step(optimizer, grads, state, theta, **extra)
            return (theta, state), rate_of(state)

        (theta, _), rates = jax.lax.scan(body, (theta, optimizer.init(theta)), length=num_steps)
        return theta, rates

    @jax.jit
    def run_all(theta):
        return {
            name: run_one(optimizer, theta, name in with_value)
            for name, optimizer in optimizers.items()
        }

    return run_all(params)


class Comparison(NamedTuple):
    """One configuration's run against its reference.

    max_rel_error:    max over leaves of ‖θ − θ_ref‖∞/‖θ_ref‖∞ after the run.
    max_lr_error:     max over steps of |η − η_ref|/|η_ref| (0 if there is no rate).
    params:           funcnn's final params, flat ("group/leaf" → array).
    reference_params: the reference's final params, flat, float64.
    """

    max_rel_error: float
    max_lr_error: float
    params: dict[str, np.ndarray]
    reference_params: dict[str, np.ndarray]


def compare_all(
    configs: Mapping[str, Buildable] | None = None,
    num_steps: int = 500,
    dtype: Any = "float64",
    seed: int = 0,
) -> dict[str, Comparison]:
    """Run each configuration (default: all of `registry.CONFIGS`) through funcnn in `dtype`
    and through the float64 reference, from `problem_params(seed)` rounded to `dtype`.

    A float64 run needs x64: `with jax.enable_x64(True): compare_all(dtype="float64")`
    (a TypeError says so otherwise).
    """
    configs = registry.CONFIGS if configs is None else configs
    dtype = np.dtype(dtype)
    start = jax.tree.map(lambda x: np.asarray(x, dtype), registry.problem_params(seed))
    theta = jax.tree.map(jnp.asarray, start)
    if any(x.dtype != dtype for x in jax.tree.leaves(theta)):
        raise TypeError(f"dtype={dtype} needs jax x64 mode: wrap the call in jax.enable_x64(True).")
    twins = {name: c.build_reference() for name, c in configs.items()}
    with_value = [name for name, twin in twins.items() if getattr(twin, "needs_value", False)]
    results = run_funcnn(
        {name: c.build() for name, c in configs.items()}, theta, num_steps, with_value
    )
    comparisons = {}
    for name in configs:
        final, rates = results[name]
        ref_final, ref_rates = ref.run_reference(
            twins[name],
            ref.flatten_params(start),
            registry.problem_grad_numpy,
            num_steps,
            loss_fn=registry.problem_loss_numpy if name in with_value else None,
        )
        ours = ref.flatten_params(jax.tree.map(np.asarray, final))
        comparisons[name] = Comparison(
            max_rel_error=max(_relative_error(ours[k], ref_final[k]) for k in ref_final),
            max_lr_error=_lr_error(np.asarray(rates, np.float64), ref_rates),
            params=ours,
            reference_params=ref_final,
        )
    return comparisons


def compare(name: str, num_steps: int = 500, dtype: Any = "float64", seed: int = 0) -> Comparison:
    """`compare_all` for the one registered configuration `name`."""
    if name not in registry.CONFIGS:
        raise KeyError(
            f"unknown optimizer configuration {name!r}; choose from {list(registry.CONFIGS)}."
        )
    return compare_all({name: registry.CONFIGS[name]}, num_steps, dtype, seed)[name]


def _relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """‖a − b‖∞ / ‖b‖∞ (norm-wise, so entries passing near 0 do not inflate it)."""
    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))


def _lr_error(rates: np.ndarray, reference_rates: np.ndarray) -> float:
    has_rate = ~np.isnan(reference_rates)
    if not has_rate.any():
        return 0.0
    ours, theirs = rates[has_rate], reference_rates[has_rate]
    return float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-30)))
