"""The optimizer protocol: a gradient transformation is two pure functions in a NamedTuple.

    state              = transform.init(params)
    updates, state     = transform.update(updates, state, params)
    params             = apply_updates(params, updates)        # θ ← θ + u

`updates` enters as the gradient g and leaves as the step u that `apply_updates` adds;
`chain` threads it through several transforms in order. The shape is optax's, so JAX users
feel at home; the math of each stage sits in its own docstring (the module map is in
`funcnn.optim`'s docstring).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import PyTreeDef

from funcnn._validation import check_in_range
from funcnn.optim._tree import (
    check_float_tree,
    compute_dtype,
    safe_increment,
    state_dtype,
    tree_widest_float,
    tree_zeros_like,
)

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "InitFn",
    "UpdateFn",
    "apply_updates",
    "as_schedule",
    "chain",
    "check_hyperparameter",
    "check_same_structure",
    "compute_dtype",
    "elementwise",
    "find_state",
    "global_norm",
    "optimizer_step",
    "safe_increment",
    "state_dtype",
    "stateless_init",
    "tree_widest_float",
    "tree_zeros_like",
]

Array = jax.Array
Params = Any  # a pytree (nested dicts) of arrays
Updates = Any  # a pytree with the structure of Params
OptState = Any  # a pytree of NamedTuples
Schedule = Callable[[Any], Any]  # step count (int32 scalar, 0 at the first update) -> value


class InitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...


class UpdateFn(Protocol):
    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None
    ) -> tuple[Updates, OptState]: ...


class _Transformation(NamedTuple):
    init: InitFn
    update: UpdateFn


class GradientTransformation(_Transformation):
    """A pure optimizer stage: `init(params) -> state`, `update(updates, state, params=None)`.

    `update` returns `(new_updates, new_state)` and never touches `params`; transforms that
    need the parameters (weight decay) raise if `params` is missing.

    Every transformation checks its inputs here, once for all stages, aliases and wrappers:
    building one wraps `init` and `update` so that params and gradients (`updates`) must be
    real floating-point arrays. A complex leaf (Adam would move only the real part of a
    purely imaginary gradient), an int or bool leaf (a step rounded to 0, or a rise by 1)
    or a Python scalar (no dtype to keep) is a TypeError naming the leaf, at init or at the
    first update's trace — never a silent wrong step. `update` passes optax's extra keyword
    arguments (`value`, `grad`, ...) through to the wrapped function.
    """

    __slots__ = ()

    def __new__(cls, init: InitFn, update: UpdateFn) -> GradientTransformation:
        return super().__new__(cls, _checked_init(init), _checked_update(update))


def _same_structure(a: Any, b: Any) -> bool:
    got: PyTreeDef = jax.tree.structure(a)
    want: PyTreeDef = jax.tree.structure(b)
    return got == want


def _checked_init(init: InitFn) -> InitFn:
    """`init`, refusing params that are not real floating-point arrays (idempotent)."""
    if getattr(init, "_checks_dtypes", False):
        return init

    @functools.wraps(init)
    def checked(params: Params) -> OptState:
        check_float_tree(params, "params", "optimizer init: ")
        return init(params)

    checked._checks_dtypes = True  # type: ignore[attr-defined]
    return checked


def _checked_update(update: UpdateFn) -> UpdateFn:
    """`update`, refusing updates and params that are not real floating-point arrays."""
    if getattr(update, "_checks_dtypes", False):
        return update

    @functools.wraps(update)
    def checked(
        updates: Updates, state: OptState, params: Params | None = None, **extra: Any
    ) -> tuple[Updates, OptState]:
        # Trees of different structures: the stage's own structure check names the mismatch
        # (a wrong tree is the likelier mistake than a wrong dtype); dtypes are checked once
        # the trees agree.
        same_trees = params is None or _same_structure(updates, params)
        if same_trees:
            check_float_tree(updates, "updates", "optimizer update: ")
            if params is not None:
                check_float_tree(params, "params", "optimizer update: ")
        return update(updates, state, params, **extra)

    checked._checks_dtypes = True  # type: ignore[attr-defined]
    return checked


class EmptyState(NamedTuple):
    """The state of a stateless transform (a pytree with no leaves)."""


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Compose transforms left to right: u ← fₖ(…f₂(f₁(g))…); the state is a tuple of theirs.

    `chain(scale_by_adam(), scale_by_learning_rate(1e-3))` is Adam. The state is
    `(state₁, …, stateₖ)`, so `opt_state[i]` is the state of `transforms[i]`.
    """
    for position, transform in enumerate(transforms):
        if not isinstance(transform, GradientTransformation):
            raise TypeError(
                f"chain expects GradientTransformation arguments, got {type(transform).__name__} "
                f"at position {position}. Build stages with funcnn.optim (e.g. optim.adam(1e-3))."
            )

    def init(params: Params) -> tuple:
        return tuple(t.init(params) for t in transforms)

    def update(updates: Updates, state: tuple, params: Params | None = None):
        if params is not None:
            check_same_structure(updates, params)
            check_same_shapes(updates, params)
        if len(state) != len(transforms):
            raise ValueError(
                f"chain of {len(transforms)} transforms got a state with {len(state)} entries; "
                "pass the state returned by this chain's init."
            )
        new_states = []
        for transform, inner_state in zip(transforms, state, strict=True):
            updates, inner_state = transform.update(updates, inner_state, params)
            new_states.append(inner_state)
        return updates, tuple(new_states)

    return GradientTransformation(init, update)


def apply_updates(params: Params, updates: Updates) -> Params:
    """θ ← θ + u for every leaf; each new leaf keeps its parameter's dtype and shape.

    The sum is formed in the promoted dtype and cast back, so float32 params stay float32
    even when the updates were computed in float64 (x64 mode) and bf16 params stay bf16.

    Strict where optax is lenient, on purpose: the two trees must have the same structure
    and every update leaf its parameter's exact shape (a (2, 3) update on a (3,) parameter
    is a ValueError naming the leaf, not a silently broadcast (2, 3) parameter), and params
    and updates must be real floating-point arrays (an int32 parameter would never move; a
    complex update would lose its imaginary part in the cast back).
    """
    check_same_structure(updates, params)
    check_same_shapes(updates, params)
    check_floating_params(params)
    check_float_tree(updates, "updates", "apply_updates: ")
    return jax.tree.map(lambda p, u: jnp.asarray(p + u).astype(jnp.result_type(p)), params, updates)


def optimizer_step(
    optimizer: GradientTransformation, grads: Updates, opt_state: OptState, params: Params
) -> tuple[Params, OptState]:
    """One optimizer step, the single place where a gradient becomes new parameters:

        u, s ← optimizer.update(g, s, θ);   θ ← θ + u          (apply_updates)

    Returns (θ, s). `funcnn.train`'s step, the configuration registry and the optimizer
    studies all take their steps through it.
    """
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return apply_updates(params, updates), opt_state


def check_same_shapes(
    updates: Updates, params: Params, name_a: str = "updates", name_b: str = "params"
) -> None:
    """Raise ValueError naming the first leaf whose shapes differ (trees already match)."""
    flat_a = jax.tree_util.tree_leaves_with_path(updates)
    for (path, a), b in zip(flat_a, jax.tree.leaves(params), strict=True):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(
                f"{name_a}{jax.tree_util.keystr(path)} has shape {jnp.shape(a)} but "
                f"{name_b}{jax.tree_util.keystr(path)} has shape {jnp.shape(b)}; funcnn never "
                "broadcasts an update onto a parameter."
            )


def check_floating_params(params: Params, where: str = "params") -> None:
    """Raise TypeError naming the first parameter leaf that is not a real floating-point
    array (int, bool, complex or a Python scalar); see `GradientTransformation`."""
    check_float_tree(params, where)


def check_same_structure(
    updates: Updates,
    params: Params,
    name_a: str = "updates",
    name_b: str = "params",
    *,
    where: str = "",
) -> None:
    """Raise ValueError naming the key paths that differ unless both trees share a structure
    (a bare `tree_map` error would not say which argument is wrong). Trace-time only.
    `where` prefixes the message (e.g. "accumulate: ")."""
    got: PyTreeDef = jax.tree.structure(updates)
    want: PyTreeDef = jax.tree.structure(params)
    if got == want:
        return
    paths_a = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(updates)}
    paths_b = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)}
    raise ValueError(
        f"{where}{name_a} and {name_b} must have the same tree structure; only in {name_a}: "
        f"{sorted(paths_a - paths_b)[:5]}, only in {name_b}: {sorted(paths_b - paths_a)[:5]} "
        f"(got {name_a} {got} and {name_b} {want})."
    )


# --- tree helpers used by the stages (defined in `_tree`, public here) ----------------------

StateT = TypeVar("StateT")


def find_state(opt_state: OptState, state_type: type[StateT], needs: str) -> StateT:
    """The one `state_type` node inside `opt_state` (searched through chains, masks,
    partitions and wrappers). Anything but exactly one is a ValueError that starts with
    `needs` (e.g. "current_learning_rate needs exactly one scale_by_learning_rate stage in
    the optimizer state") and says how many were found."""
    found = [
        node
        for node in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, state_type))
        if isinstance(node, state_type)
    ]
    if len(found) != 1:
        raise ValueError(f"{needs}, found {len(found)}.")
    return found[0]


def stateless_init(params: Params) -> EmptyState:
    """`init` of every stateless stage: nothing to remember."""
    del params
    return EmptyState()


def elementwise(leaf_fn: Callable[[Array], Array]) -> GradientTransformation:
    """A stateless stage applying u = f(g) to every leaf."""

    def update(updates: Updates, state: EmptyState, params: Params | None = None):
        del params
        return jax.tree.map(leaf_fn, updates), state

    return GradientTransformation(stateless_init, update)


def global_norm(tree: Updates) -> Array:
    """‖g‖ = √(Σ over every leaf and entry of g²), accumulated in at least float32."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    squares = [jnp.sum(jnp.square(x.astype(compute_dtype(x.dtype)))) for x in leaves]
    return jnp.sqrt(sum(squares[1:], squares[0]))


# --- hyperparameter validation -----------------------------------------------------------


def check_hyperparameter(
    value: Any,
    name: str,
    *,
    low: float = 0.0,
    high: float = math.inf,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return a Python-number hyperparameter as a float if it lies in its interval, else raise.

    Accepts int/float and concrete 0-d NumPy/JAX numbers; `b1=0` (an int) is fine.
    """
    return check_in_range(
        value,
        name,
        low,
        high,
        low_inclusive=low_inclusive,
        high_inclusive=high_inclusive,
    )


# Steps at which a user's schedule is evaluated once, eagerly, when the optimizer is built.
PROBE_STEPS = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 2**31 - 1)


def as_schedule(value: float | Schedule, name: str = "learning_rate") -> Schedule:
    """A constant becomes `step -> value` (after validation: finite, ≥ 0); a callable is kept
    after probing it at `PROBE_STEPS`: a negative or non-finite rate there is a ValueError
    naming the step. (Between those steps, and for a schedule that only works traced, the
    values cannot be seen before they are used.)"""
    if callable(value):
        _probe(value, name)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.generic, np.ndarray)):
        if not isinstance(value, jax.Array):
            raise TypeError(
                f"{name} must be a non-negative number or a schedule (a function step -> value), "
                f"got {name}={value!r} ({type(value).__name__})."
            )
    constant_value = check_hyperparameter(value, name)
    return lambda step: constant_value


def _probe(schedule: Schedule, name: str) -> None:
    for step in PROBE_STEPS:
        try:
            value = schedule(jnp.asarray(step, jnp.int32))
            rate = np.asarray(value)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
            # A schedule that needs tracing, or one that closes over a traced value (a rate
            # swept under vmap): its values cannot be seen before it runs.
            return
        if not (np.issubdtype(rate.dtype, np.floating) or np.issubdtype(rate.dtype, np.integer)):
            raise TypeError(  # None, a string, a complex number: numpy would fail obscurely
                f"{name} schedule must return a real number, got {value!r} "
                f"({type(value).__name__}) at step {step}."
            )
        if rate.shape != ():
            raise ValueError(f"{name} schedule must return a scalar, got shape {rate.shape}.")
        if not np.isfinite(rate) or rate < 0:
            raise ValueError(
                f"{name} schedule gave {float(rate)} at step {step}; a learning rate must be a "
                "finite number ≥ 0 at every step (θ ← θ − η·d would climb the loss)."
            )
