"""Hyperparameters that live in the optimizer state, readable for logging and settable between
steps without recompiling: optax's `inject_hyperparams`.

    opt = optim.inject_hyperparams(optim.adamw)(learning_rate=1e-3, weight_decay=0.1)
    state = opt.init(params)
    state.hyperparams["learning_rate"]                       # a 0-d array: log it
    state = optim.set_hyperparam(state, "learning_rate", 3e-4)   # same program, new value

Inside `funcnn.train.fit`, change a value between steps with a callback that edits the
train state's `opt_state` the same way (see `set_hyperparam`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim.base import (
    Array,
    GradientTransformation,
    OptState,
    Params,
    Updates,
    find_state,
    safe_increment,
    tree_widest_float,
)

__all__ = ["InjectHyperparamsState", "inject_hyperparams", "set_hyperparam"]


class InjectHyperparamsState(NamedTuple):
    """count: int32 scalar, updates done (the step schedules are read at). hyperparams: dict
    argument name -> 0-d array, the value the next update uses (a schedule's value at
    `count`). inner_state: the wrapped optimizer's state. (optax's fields.)"""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    hyperparams: dict[str, Array]
    inner_state: OptState


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """Wrap an optimizer factory so its numeric hyperparameters live in the state, as optax's
    `inject_hyperparams`:

        opt = inject_hyperparams(factory)(**hyperparameters)
        update at step t:  hₖ = schedule_k(t) if hyperparameter k is a schedule else state.hₖ
                           u, s_inner ← factory(**h).update(g, s_inner, θ)

    Every numeric keyword argument (not in `static_args`) becomes a 0-d array in
    `state.hyperparams` (dtype `hyperparam_dtype`, else the params' widest float); a callable
    one (a schedule of the step) is evaluated each update and the value that update used is
    stored there for logging; other arguments (strings, booleans, masks, `static_args`) are
    passed unchanged.
    Changing `state.hyperparams[k]` between steps changes the next step without
    recompiling. The initial values are validated once, here, by building the optimizer with
    them (so `learning_rate=-1` is a ValueError at once); values set later are used as given.
    Hyperparameters must be passed by keyword. Extra `update` arguments (`value`, …) are
    passed on to the inner optimizer.
    """
    static = {static_args} if isinstance(static_args, str) else set(static_args)

    def wrapped(*args: Any, **kwargs: Any) -> GradientTransformation:
        if args:
            raise TypeError(
                f"inject_hyperparams({getattr(inner_factory, '__name__', 'factory')}) takes "
                f"hyperparameters by keyword only, got {len(args)} positional argument(s); "
                "write e.g. inject_hyperparams(optim.adam)(learning_rate=1e-3)."
            )
        inner_factory(**kwargs)  # validates the initial values (a bad one raises here)
        numeric = {
            k: v for k, v in kwargs.items() if k not in static and not callable(v) and _number(v)
        }
        schedules = {k: v for k, v in kwargs.items() if k not in static and callable(v)}
        fixed = {k: v for k, v in kwargs.items() if k not in numeric and k not in schedules}

        def current(hyperparams: Mapping[str, Array], count: Array, dtype: Any) -> dict:
            values = dict(hyperparams)
            for k, schedule in schedules.items():
                values[k] = jnp.asarray(schedule(count)).astype(dtype)
            return values

        def build(values: Mapping[str, Array]) -> GradientTransformation:
            return inner_factory(**fixed, **values)

        def init(params: Params) -> InjectHyperparamsState:
            dtype = hyperparam_dtype or tree_widest_float(params)
            count = jnp.zeros([], jnp.int32)
            hyperparams = {k: jnp.asarray(v, dtype) for k, v in numeric.items()}
            values = current(hyperparams, count, dtype)
            # Build the inner optimizer from traced values, as `update` does, so both see the
            # same stages (an alias may drop a stage for a concrete 0, never for a traced one).
            inner_state = jax.jit(lambda v, p: build(v).init(p))(values, params)
            return InjectHyperparamsState(count, values, inner_state)

        def update(
            updates: Updates,
            state: InjectHyperparamsState,
            params: Params | None = None,
            **extra: Any,
        ):
            dtype = hyperparam_dtype or tree_widest_float(updates)
            values = current(state.hyperparams, state.count, dtype)
            inner = build(values)
            updates, inner_state = inner.update(updates, state.inner_state, params, **extra)
            # The values this update used (a schedule's at `count`), for logging, as optax.
            return updates, InjectHyperparamsState(safe_increment(state.count), values, inner_state)

        return GradientTransformation(init, update)

    return wrapped


def _number(value: Any) -> bool:
    """A real number or a 0-d numeric array (a hyperparameter that can live in the state)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    return shape == () and dtype is not None and jnp.issubdtype(dtype, jnp.number)


def set_hyperparam(opt_state: OptState, name: str, value: Any) -> OptState:
    """A copy of `opt_state` whose one `InjectHyperparamsState` (searched through chains and
    wrappers) holds `value` for hyperparameter `name`, in the stored value's dtype and shape,
    so the next jitted step uses it without recompiling.

    Inside `fit`, a callback can do it between steps, e.g. halve the rate at epoch 10:
        train_state = train_state._replace(
            opt_state=optim.set_hyperparam(train_state.opt_state, "learning_rate", 5e-4))
    """
    needs = "set_hyperparam needs exactly one inject_hyperparams stage in the optimizer state"
    found = find_state(opt_state, InjectHyperparamsState, needs)
    if name not in found.hyperparams:
        raise KeyError(
            f"hyperparameter {name!r} is not in the state; it holds {sorted(found.hyperparams)} "
            "(only numeric keyword arguments given to inject_hyperparams are)."
        )
    old = found.hyperparams[name]
    new_value = jnp.asarray(value, old.dtype)
    if new_value.shape != old.shape:
        raise ValueError(f"{name} must be a scalar, got shape {new_value.shape}.")
    replaced = found._replace(hyperparams={**found.hyperparams, name: new_value})
    return jax.tree.map(
        lambda node: replaced if node is found else node,
        opt_state,
        is_leaf=lambda node: node is found,
    )
