"""The training state and the one step every loop in funcnn runs.

The step, as math: with minibatch B and dropout key k split from the state's key,

    (ℓ, aux), g = value_and_grad(loss_fn)(θ, B, k)
    u, s'       = optimizer.update(g, s, θ)
    θ'          = θ + u

The loss contract is `loss_fn(params, batch, key) -> (loss, aux)`: `batch` one slice of the
data pytree (e.g. `(x, y)`), `key` a PRNG key for stochastic layers, `loss` a scalar and
`aux` a dict `{name: scalar}` of extra metrics (`{}` when there are none). The step
returns the metrics `{"loss": ℓ, **aux}`. A `TrainState` is made with
`init_state(params, optimizer, key)`.

A model with state (batch_norm's running statistics, see `funcnn.nn.core`) keeps it in
`TrainState.model_state` and its loss also takes and returns it — the stateful contract,
used exactly when `model_state` is not None:

    loss_fn(params, batch, key, model_state) -> (loss, aux, new_model_state)

The new model state is carried to the next step beside θ but never differentiated nor seen
by the optimizer; `evaluate` and fit's `eval_fn` receive it too (eval mode reads it).

`make_step` compiles the step as one XLA program with params and optimizer state donated
(updated in place); `make_sharded_step` does the same with fixed input/output shardings
(`funcnn.scale`); `fit` (funcnn.train.fit) fuses many steps per dispatch.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from funcnn.optim.base import GradientTransformation, optimizer_step

__all__ = [
    "LossFn",
    "TrainState",
    "check_loss_contract",
    "check_loss_fn",
    "check_state",
    "compile_count",
    "init_state",
    "make_sharded_step",
    "make_step",
    "train_step_fn",
]

Array = jax.Array
Params = Any
Batch = Any
LossFn = Callable[..., Any]
"""`loss_fn(params, batch, key) -> (loss, aux)`: a scalar loss and a dict of scalar metrics;
stateful: `loss_fn(params, batch, key, model_state) -> (loss, aux, new_model_state)`."""

LOSS_CONTRACT = (
    "loss_fn(params, batch, key) -> (loss, aux), with batch one slice of the data pytree "
    "(e.g. (x, y)), key a PRNG key, loss a scalar and aux a dict {name: scalar} of extra "
    "metrics ({} for none)"
)


class TrainState(NamedTuple):
    """Everything a training run carries from step to step (a pytree).

    params:    the parameter pytree θ.
    opt_state: the optimizer's state s.
    step:      int32 scalar, number of updates applied so far.
    key:       PRNG key; split once per step for stochastic layers (dropout).
    model_state: the model's non-parameter state (running statistics), or None for a
               stateless model; not None switches the loss to the stateful contract.

    Make one with `init_state(params, optimizer, key[, model_state])`.
    """

    params: Params
    opt_state: Any
    step: Array
    key: Array
    model_state: Any = None


def init_state(
    params: Params, optimizer: GradientTransformation, key: Array, model_state: Any = None
) -> TrainState:
    """A fresh TrainState at step 0 with `optimizer.init(params)` as its state; pass a
    stateful model's `nn.initial_state(model, in_shape)` as `model_state`."""
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        key=key,
        model_state=model_state,
    )


def check_state(state: Any, where: str) -> None:
    """Raise TypeError unless `state` is a TrainState, saying how to make one.

    `where` names the caller (e.g. "fit") for the message.
    """
    if not isinstance(state, TrainState):
        raise TypeError(
            f"{where} takes a TrainState (params, opt_state, step, key), got "
            f"{type(state).__name__}. Make one from the params with "
            "`state = funcnn.train.init_state(params, optimizer, key)`; the params are then "
            "`state.params`."
        )


def check_loss_output(out: Any, loss_fn: Any) -> None:
    """Raise TypeError/ValueError unless `out` (what `loss_fn` returned, concrete or abstract)
    is `(scalar loss, {name: scalar})` with no aux name "loss"."""
    name = getattr(loss_fn, "__name__", "loss_fn")
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"{name} must return (loss, aux): {LOSS_CONTRACT}; it returned {out!r}.")
    loss, aux = out
    if getattr(loss, "shape", None) != ():
        raise TypeError(
            f"{name} must return a scalar loss: {LOSS_CONTRACT}; its loss has shape "
            f"{getattr(loss, 'shape', type(loss).__name__)}."
        )
    if not isinstance(aux, Mapping):
        raise TypeError(
            f"{name} must return a dict as aux ({{}} when there are no metrics): "
            f"{LOSS_CONTRACT}; its aux is {aux!r}."
        )
    for key, value in aux.items():
        if key == "loss":
            raise ValueError(
                f"{name}'s aux has a metric named 'loss', which would overwrite the loss "
                "itself in the step's metrics (and 'train_loss' in fit's history); rename it."
            )
        if jnp.shape(value) != ():
            # Summed over steps as it is, a per-example value (B,) would count B times:
            # refuse it rather than guess whether a sum or a mean was meant.
            raise ValueError(
                f"{name}'s aux metric {key!r} has shape {jnp.shape(value)}; aux metrics must "
                "be scalars — fit averages them over an epoch's steps. Reduce it in the loss "
                f"(e.g. jnp.mean(...)) over the batch."
            )


def train_step_fn(
    loss_fn: LossFn, optimizer: GradientTransformation
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]:
    """The un-jitted step (state, batch) -> (state, metrics); `make_step` and `fit` compile it.

    `loss_fn(params, batch, key) -> (loss, aux)` where `aux` is a dict of scalar metrics;
    with `state.model_state` not None, `loss_fn(params, batch, key, model_state) -> (loss,
    aux, new_model_state)` and the new model state is carried on. The returned metrics are
    `{"loss": ℓ, **aux}`. The optimizer gets optax's extra arguments — `value` = ℓ,
    `grad` = ∇ℓ and `value_fn` = θ ↦ ℓ(θ) on this batch and key — so `lbfgs`'s line
    search, `polyak_sgd` and `reduce_on_plateau` work inside `fit`; every other optimizer
    ignores them (nothing is computed unless a stage calls `value_fn`).
    """

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Array]]:
        check_state(state, "the training step")
        key, step_key = jax.random.split(state.key)
        model_state = state.model_state
        if model_state is None:
            (loss, aux), grads = jax.value_and_grad(
                functools.partial(_checked_call, loss_fn), has_aux=True
            )(state.params, batch, step_key)

            def value_fn(params: Params) -> Array:
                return loss_fn(params, batch, step_key)[0]
        else:
            before = model_state

            def stateful(params: Params) -> tuple[Array, Any]:
                loss, aux, new_model_state = loss_fn(params, batch, step_key, before)
                return loss, (aux, new_model_state)

            (loss, (aux, model_state)), grads = jax.value_and_grad(stateful, has_aux=True)(
                state.params
            )

            def value_fn(params: Params) -> Array:  # the loss at θ, statistics as they were
                return loss_fn(params, batch, step_key, before)[0]

        params, opt_state = optimizer_step(
            optimizer,
            grads,
            state.opt_state,
            state.params,
            value=loss,
            grad=grads,
            value_fn=value_fn,
        )
        new_state = TrainState(params, opt_state, state.step + 1, key, model_state)
        return new_state, {"loss": loss, **aux}

    return step


def _checked_call(loss_fn: LossFn, params: Params, batch: Batch, key: Array) -> Any:
    """`loss_fn(params, batch, key)`, its output checked against the contract (at trace time)."""
    out = loss_fn(params, batch, key)
    check_loss_output(out, loss_fn)
    return out


def make_step(
    loss_fn: LossFn, optimizer: GradientTransformation, *, donate: bool = True
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]:
    """One jitted training step `step(state, batch) -> (state, metrics)`.

    `state` is a TrainState (`init_state(params, optimizer, key)`); `loss_fn` follows
    `loss_fn(params, batch, key) -> (loss, aux)`. With `donate=True` (default) the incoming
    state's buffers are donated to XLA, so params and optimizer state are updated in place:
    do not reuse a state after passing it.
    """
    return _jit_counting_traces(
        train_step_fn(loss_fn, optimizer), donate_argnums=(0,) if donate else ()
    )


def make_sharded_step(
    loss_fn: Callable[..., Any],
    optimizer: GradientTransformation,
    state_shardings: Any,
    batch_sharding: Any,
    *,
    donate: bool = True,
) -> Callable[[Any, Any], tuple[Any, dict[str, jax.Array]]]:
    """`make_step` with fixed layouts: the state enters and leaves with `state_shardings`
    (e.g. `scale.fsdp_state_shardings`), the batch enters with `batch_sharding`; metrics are
    replicated.

    Pinning the output layout keeps XLA from drifting to another one step after step.
    """
    mesh = jax.tree.leaves(state_shardings)[0].mesh
    return jax.jit(
        train_step_fn(loss_fn, optimizer),
        in_shardings=(state_shardings, batch_sharding),
        out_shardings=(state_shardings, NamedSharding(mesh, PartitionSpec())),
        donate_argnums=(0,) if donate else (),
    )


def _jit_counting_traces(fn: Callable[..., Any], **jit_options: Any) -> Any:
    """`jax.jit(fn, **jit_options)` whose `traces` attribute counts how often `fn` was traced.

    jit traces once per new argument signature and compiles what it traced, so `traces` is
    the number of programs compiled for it (read through `compile_count`)."""

    def traced(*args: Any, **kwargs: Any) -> Any:
        jitted.traces += 1  # runs only while tracing: a cached call never reaches Python
        return fn(*args, **kwargs)

    # Any: jax.jit's result takes attributes at run time, but its stub declares no `traces`.
    jitted: Any = jax.jit(functools.wraps(fn)(traced), **jit_options)
    jitted.traces = 0
    return jitted


def compile_count(compiled: Callable[..., Any]) -> int:
    """Number of programs `compiled` (a step from `make_step`, or `fit`'s cached chunk from
    `compiled_chunk`) holds — one per distinct argument signature; a run that compiles its
    step once keeps this at 1. A testing and monitoring aid: it counts traces (jit compiles
    each trace once), kept by the function itself, so no private JAX state is read."""
    traces = getattr(compiled, "traces", None)
    if not isinstance(traces, int):
        raise TypeError(
            f"compiled must be a step from make_step or a chunk from compiled_chunk, got "
            f"{compiled!r}."
        )
    return traces


def check_loss_fn(loss_fn: Any) -> None:
    """Raise TypeError unless `loss_fn` can be called as `loss_fn(params, batch, key)`.

    A quick-start style `loss(p, x, y)` is caught here, before tracing, instead of
    surfacing as a TracerArrayConversionError.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}.")
    try:
        sig = inspect.signature(loss_fn)
    except (TypeError, ValueError):  # builtins / C callables: nothing to check
        return
    try:
        sig.bind(object(), object(), object())
    except TypeError as err:
        raise TypeError(
            f"loss_fn must have the signature {LOSS_CONTRACT}; got "
            f"{getattr(loss_fn, '__name__', 'loss_fn')}{sig} ({err}). Wrap a loss(p, x, y) as "
            "`lambda params, batch, key: (loss(params, *batch), {})`."
        ) from None


def check_loss_contract(
    loss_fn: LossFn, params: Params, batch: Any, key: Array, model_state: Any = None
) -> None:
    """Check `loss_fn` against the contract on one batch, abstractly (no compute).

    With `model_state`, the stateful contract: `loss_fn(params, batch, key, model_state)
    -> (loss, aux, new_model_state)`, the new state shaped like the old.

    A signature that cannot take `(params, batch, key)` or an output other than `(scalar,
    {name: scalar})` is a TypeError/ValueError stating the contract. An error raised
    *inside* `loss_fn` (a wrong label dtype, a shape mismatch in the model) is re-raised with
    its own type and message first — the real cause — followed by a note giving the call
    fit made, the batch's shapes and dtypes, and the contract.
    """
    if model_state is not None:
        _check_stateful_loss(loss_fn, params, batch, key, model_state)
        return
    check_loss_fn(loss_fn)
    try:
        out = jax.eval_shape(loss_fn, params, batch, key)
    except Exception as err:
        shapes = jax.tree.map(lambda a: (tuple(jnp.shape(a)), str(jnp.result_type(a))), batch)
        name = getattr(loss_fn, "__name__", "loss_fn")
        note = (
            f"(raised inside {name} when fit called it as loss_fn(params, batch, key) -> "
            f"(loss, aux) on the first batch, whose (shape, dtype) per leaf are {shapes}. A "
            "loss written as loss(p, x, y) is wrapped as `lambda params, batch, key: "
            "(loss(params, *batch), {})`.)"
        )
        try:  # the same exception type and message, with the note appended
            annotated = type(err)(f"{err}\n{note}")
        except Exception:  # an exception class with another constructor: leave it as it is
            raise err from None
        raise annotated from err
    check_loss_output(out, loss_fn)


def _check_stateful_loss(
    loss_fn: LossFn, params: Params, batch: Any, key: Array, model_state: Any
) -> None:
    contract = (
        "with a model_state in the TrainState, loss_fn must be loss_fn(params, batch, key, "
        "model_state) -> (loss, aux, new_model_state) with a scalar loss, a dict of scalar "
        "metrics and the new state shaped like the old (e.g. objectives.supervised_loss(apply, "
        "kind, stateful=True))"
    )
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}.")
    try:
        out = jax.eval_shape(loss_fn, params, batch, key, model_state)
    except Exception as err:
        raise TypeError(f"{contract}; calling it that way failed: {err!r}") from err
    ok = isinstance(out, tuple) and len(out) == 3 and getattr(out[0], "shape", None) == ()
    expected = jax.tree.map(lambda a: (jnp.shape(a), jnp.result_type(a)), model_state)
    if ok:
        got = jax.tree.map(lambda a: (a.shape, a.dtype), out[2])
        ok = bool(got == expected)
    if not ok:
        raise TypeError(f"{contract}; it returned {out!r}.")
    check_loss_output(out[:2], loss_fn)
