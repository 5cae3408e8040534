"""Training: one compiled step, many steps fused per dispatch, and batched evaluation.

The loop, as math: for each step t with minibatch Bₜ and dropout key kₜ,

    (ℓₜ, aux), g = value_and_grad(loss_fn)(θₜ, Bₜ, kₜ)
    u, s_{t+1}   = optimizer.update(g, sₜ, θₜ)
    θ_{t+1}      = θₜ + u

A model with state (batch_norm's running statistics, see `funcnn.nn.core`) keeps it in
`TrainState.model_state` and its loss also takes and returns it — the stateful contract,
used exactly when `model_state` is not None:

    loss_fn(params, batch, key, model_state) -> (loss, aux, new_model_state)

The new model state is carried to the next step beside θ but never differentiated nor
seen by the optimizer; `evaluate` and fit's `eval_fn` receive it too (eval mode reads it).

`make_step` compiles that as one XLA program with params and optimizer state donated
(updated in place). `fit` runs whole epochs inside `jax.lax.scan` over batches already on
device, so the host only wakes between fused chunks to report progress.

Data order is a pure function of `(data_key, epoch)`: the step counter alone says where a
run is in the data, so a restored `TrainState` continues exactly where it stopped. The
permutation is drawn on the host (NumPy) once per epoch: XLA:CPU's sort-based
`jax.random.permutation` costs ~13 ms for 16k examples, more than the 256 tiny steps it feeds.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from funcnn._validation import check_positive_int
from funcnn.optim.base import GradientTransformation, optimizer_step
from funcnn.optim.wrappers import check_nonfinite
from funcnn.scale import placement

__all__ = [
    "TrainState",
    "epoch_batches",
    "epoch_order",
    "evaluate",
    "fit",
    "init_state",
    "make_sharded_step",
    "make_step",
    "num_examples",
    "steps_per_epoch",
    "train_generated",
    "train_step_fn",
]

Array = jax.Array
Params = Any
Batch = Any
# (params, batch, key) -> (loss, aux); stateful: (params, batch, key, model_state) ->
# (loss, aux, new_model_state). Metrics: (params, batch[, model_state]) -> {name: (b,)}.
LossFn = Callable[..., Any]
MetricFn = Callable[..., Mapping[str, Array]]


class TrainState(NamedTuple):
    """Everything a training run carries from step to step (a pytree).

    params:    the parameter pytree θ.
    opt_state: the optimizer's state s.
    step:      int32 scalar, number of updates applied so far.
    key:       PRNG key; split once per step for stochastic layers (dropout).
    model_state: the model's non-parameter state (running statistics), or None for a
               stateless model; not None switches the loss to the stateful contract.
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


def train_step_fn(
    loss_fn: LossFn, optimizer: GradientTransformation
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]:
    """The un-jitted step (state, batch) -> (state, metrics); `make_step` and `fit` compile it.

    `loss_fn(params, batch, key) -> (loss, aux)` where `aux` is a dict of scalar metrics;
    with `state.model_state` not None, `loss_fn(params, batch, key, model_state) -> (loss,
    aux, new_model_state)` and the new model state is carried on. The returned metrics are
    `{"loss": ℓ, **aux}`.
    """

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Array]]:
        key, step_key = jax.random.split(state.key)
        model_state = state.model_state
        if model_state is None:
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state.params, batch, step_key
            )
        else:

            def stateful(params: Params) -> tuple[Array, Any]:
                loss, aux, new_model_state = loss_fn(params, batch, step_key, model_state)
                return loss, (aux, new_model_state)

            (loss, (aux, model_state)), grads = jax.value_and_grad(stateful, has_aux=True)(
                state.params
            )
        params, opt_state = optimizer_step(optimizer, grads, state.opt_state, state.params)
        new_state = TrainState(params, opt_state, state.step + 1, key, model_state)
        return new_state, {"loss": loss, **aux}

    return step


def make_step(
    loss_fn: LossFn, optimizer: GradientTransformation, *, donate: bool = True
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]:
    """One jitted training step `step(state, batch) -> (state, metrics)`.

    With `donate=True` (default) the incoming state's buffers are donated to XLA, so
    params and optimizer state are updated in place: do not reuse a state after passing it.
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
    """`train.make_step` with fixed layouts: the state enters and leaves with
    `state_shardings`, the batch enters with `batch_sharding`; metrics are replicated.

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


# ---------------------------------------------------------------------------- data order


def num_examples(data: Any) -> int:
    """Leading-axis length shared by every leaf of `data`; raises if they disagree or it is 0."""
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("data must hold at least one array, got an empty pytree.")
    sizes = {jnp.shape(leaf)[0] for leaf in leaves if jnp.ndim(leaf)}
    if len(sizes) != 1 or any(jnp.ndim(leaf) == 0 for leaf in leaves):
        shapes = [jnp.shape(leaf) for leaf in leaves]
        raise ValueError(
            f"every array in data must share its leading (example) axis, got shapes {shapes}."
        )
    (n,) = sizes
    if n == 0:
        raise ValueError("data is empty: its arrays have 0 examples.")
    return n


def steps_per_epoch(data: Any, batch_size: int) -> int:
    """⌊N / batch_size⌋ — the last partial batch is dropped so every step sees `batch_size`."""
    n = num_examples(data)
    check_positive_int(batch_size, "batch_size")
    if batch_size > n:
        raise ValueError(
            f"batch_size={batch_size} is larger than the data ({n} examples); use batch_size ≤ {n}."
        )
    return n // batch_size


def _key_bits(data_key: Array) -> list[int]:
    """The raw uint32 words of a PRNG key (typed or legacy), read to the host once."""
    return [int(w) for w in np.asarray(jax.random.key_data(data_key)).ravel()]


def epoch_order(key_bits: list[int], epoch: int, n: int) -> np.ndarray:
    """The epoch's example order: NumPy's PCG64 permutation of range(n) seeded by
    (key bits, epoch) — a pure function of the data key and the epoch number."""
    return np.random.default_rng([*key_bits, int(epoch)]).permutation(n).astype(np.int32)


def epoch_batches(data: Any, data_key: Array, epoch: int, batch_size: int) -> Any:
    """The epoch's minibatches, stacked: each leaf (N, …) → (N // batch_size, batch_size, …).

    The order is `epoch_order(key_data(data_key), epoch, N)`, so it depends only on the key
    and the epoch number; the last N mod batch_size examples of the order are dropped.
    """
    n = num_examples(data)
    num_batches = n // batch_size
    order = epoch_order(_key_bits(data_key), epoch, n)
    order = order[: num_batches * batch_size].reshape(num_batches, batch_size)
    return jax.tree.map(lambda a: jnp.asarray(a)[order], data)


# ---------------------------------------------------------------------------- fit


@functools.lru_cache(maxsize=32)
def _compiled_chunk(
    loss_fn: LossFn, optimizer: GradientTransformation, batch_size: int, mesh: Any = None
):
    """Jitted `run(state, data, order, start, length)`: steps start…start+length−1 of one epoch
    fused in a single `lax.scan`, where `order` is the epoch's (num_batches, batch_size) index
    table. With a `mesh` (data sharded by `funcnn.scale.shard_batch`) every minibatch is split
    along its "data" axis. Cached so repeated `fit` calls reuse it."""
    step = train_step_fn(loss_fn, optimizer)

    def run(state, data, order, start, length):
        rows = jax.lax.dynamic_slice_in_dim(order, start, length)  # (length, batch_size)
        chunk = jax.tree.map(lambda a: a[rows], data)  # (length, batch_size, …)
        chunk = placement.constrain_batches(chunk, mesh, batch_axis=1)
        return jax.lax.scan(step, state, chunk)

    return _jit_counting_traces(run, static_argnames="length", donate_argnums=(0,))


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="step", leave=False)


def check_loss_fn(loss_fn: Any) -> None:
    """Raise TypeError unless `loss_fn` can be called as `loss_fn(params, batch, key)`.

    The training contract is `loss_fn(params, batch, key) -> (loss, aux)`: `batch` is one
    slice of the data pytree (e.g. `(x, y)`), `key` a PRNG key, `loss` a scalar and `aux` a
    dict of scalar metrics. A quick-start style `loss(p, x, y)` is caught here, before
    tracing, instead of surfacing as a TracerArrayConversionError.
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
            f"loss_fn must have the signature loss_fn(params, batch, key) -> (loss, aux), got "
            f"{getattr(loss_fn, '__name__', 'loss_fn')}{sig} ({err}). Wrap a loss(p, x, y) as "
            "`lambda params, batch, key: (loss(params, *batch), {})`."
        ) from None


def check_loss_contract(
    loss_fn: LossFn, params: Params, batch: Any, key: Array, model_state: Any = None
) -> None:
    """Trace `loss_fn(params, batch, key)` abstractly (no compute) and check it returns
    `(loss, aux)` with a scalar loss; any failure is a TypeError stating the contract.
    With `model_state`, the stateful contract: `loss_fn(params, batch, key, model_state)
    -> (loss, aux, new_model_state)`, the new state shaped like the old."""
    if model_state is not None:
        _check_stateful_loss(loss_fn, params, batch, key, model_state)
        return
    check_loss_fn(loss_fn)
    contract = (
        "loss_fn must be loss_fn(params, batch, key) -> (loss, aux) with batch one slice of "
        "the data pytree (e.g. (x, y)), loss a scalar and aux a dict of scalar metrics"
    )
    try:
        out = jax.eval_shape(loss_fn, params, batch, key)
    except Exception as err:
        raise TypeError(f"{contract}; calling it that way failed: {err!r}") from err
    if not (isinstance(out, tuple) and len(out) == 2 and getattr(out[0], "shape", None) == ()):
        raise TypeError(f"{contract}; it returned {out!r}.")


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


def compiled_chunk(loss_fn: LossFn, optimizer: GradientTransformation, batch_size: int):
    """The jitted fused-steps program `fit` uses for this (loss_fn, optimizer, batch_size)
    on one device (cached: the same object `fit` runs), for `compile_count`."""
    return _compiled_chunk(loss_fn, optimizer, batch_size)


def fit(
    state: TrainState,
    loss_fn: LossFn,
    optimizer: GradientTransformation,
    data: Any,
    *,
    batch_size: int,
    epochs: int,
    data_key: Array | None = None,
    steps_per_dispatch: int | None = None,
    eval_fn: Callable[[Params], Mapping[str, Any]] | None = None,
    progress: bool = True,
    callback: Callable[[TrainState, dict[str, Any]], bool | None] | None = None,
    carry: Mapping[str, Any] | None = None,
) -> tuple[TrainState, dict[str, list[float]]]:
    """Train until `state.step == epochs · ⌊N / batch_size⌋`, fusing steps with `lax.scan`.

    data:        a pytree of arrays sharing a leading example axis N (e.g. `(x, y)`); it is
                 moved to device once and shuffled there each epoch.
    data_key:    key for the shuffles; epoch e uses `epoch_order(key_data(data_key), e, N)`.
                 Defaults to a key derived from `state.key` at step 0; a state past step 0
                 needs `data_key` or a `carry` (which records the key's bits), else the order
                 could not be reproduced and fit raises ValueError.
    steps_per_dispatch: steps fused per compiled call; default: a whole epoch (one dispatch
                 per epoch). Progress and `callback` run between dispatches.
    progress:    a tqdm bar (when tqdm is installed) and one line of metrics per epoch.
    eval_fn:     `eval_fn(params) -> dict` of metrics, run after every epoch
                 (`eval_fn(params, model_state)` when the state has a model_state).
    callback:    `callback(state, info) -> stop?` after every dispatch; returning True stops
                 cleanly (used for checkpoints and signal handling). `info["carry"]` is
                 everything besides the state that an exact resume needs (below).
    carry:       `info["carry"]` as a callback saw it with the state being resumed (e.g. from a
                 checkpoint's metadata, see `funcnn.train.resume`): a JSON-able dict {"history",
                 "epoch_sums", "epoch_steps", "data_key"} — the per-epoch history so far, the
                 interrupted epoch's running metric sums and step count, and the data key's
                 bits. With it the returned history is the whole run's and the interrupted
                 epoch's means cover all its steps, as if the run had never stopped.

    Resuming: a state at step s continues at epoch ⌊s / steps_per_epoch⌋, batch s mod
    steps_per_epoch of the same deterministic order, so an interrupted run resumed with
    the same `data_key` reaches bit-for-bit the same parameters; resumed with its `carry`
    (and the same `steps_per_dispatch`, so the running sums add the same chunk sums in the
    same order) it also reaches bit-for-bit the same history.

    Returns `(state, history)`; history maps "epoch", "step", "time", "train_<metric>" (mean
    over the epoch's steps) and every key of `eval_fn` to per-epoch lists. With an optimizer
    wrapped in `optim.skip_nonfinite`, "skipped_steps" counts the steps skipped so far, and
    `NonFiniteGradientsError` is raised between chunks once `max_consecutive` are in a row.
    """
    check_positive_int(epochs, "epochs")
    per_epoch = steps_per_epoch(data, batch_size)
    check_loss_contract(
        loss_fn,
        state.params,
        jax.tree.map(lambda a: a[:batch_size], data),
        state.key,
        state.model_state,
    )
    chunk = per_epoch if steps_per_dispatch is None else steps_per_dispatch
    check_positive_int(chunk, "steps_per_dispatch")
    step = int(state.step)
    carried = _check_carry(carry, step, per_epoch)
    key_bits = _data_order_bits(state, step, data_key, carried["data_key"])
    data, state, mesh = _place(data, state, batch_size)
    run = _compiled_chunk(loss_fn, optimizer, batch_size, *([mesh] if mesh else []))
    n = num_examples(data)
    orders: dict[int, Array] = {}  # epoch → (per_epoch, batch_size) index table on device

    def batch_table(epoch: int) -> Array:
        order = epoch_order(key_bits, epoch, n)[: per_epoch * batch_size]
        return jnp.asarray(order.reshape(per_epoch, batch_size))

    total = epochs * per_epoch
    history: dict[str, list[float]] = carried["history"]
    bar = _progress_bar(total - step, progress)
    start_time = time.perf_counter() - (history["time"][-1] if history["time"] else 0.0)
    epoch_sums: dict[str, float] = carried["epoch_sums"]
    # Steps of the current epoch summed in epoch_sums: those run by this call, plus those
    # before an interruption when `carry` brings their sums (else a resumed epoch's means
    # cover only the steps after the resume).
    epoch_steps: int = carried["epoch_steps"]
    stopped = False
    while step < total and not stopped:
        epoch, position = divmod(step, per_epoch)
        length = min(chunk - position % chunk, per_epoch - position)
        if epoch not in orders:
            orders[epoch] = batch_table(epoch)
        state, metrics = run(state, data, orders[epoch], position, length)
        if position + length == per_epoch:  # epoch done: draw the next order while it runs
            del orders[epoch]
            if (epoch + 1) * per_epoch < total:
                orders[epoch + 1] = batch_table(epoch + 1)
        for name, values in metrics.items():
            epoch_sums[name] = epoch_sums.get(name, 0.0) + float(jnp.sum(values))
        step += length
        epoch_steps += length
        info: dict[str, Any] = {"epoch": epoch, "step": step, "steps_per_epoch": per_epoch}
        # With optim.skip_nonfinite: report its counts; raise after max_consecutive bad steps.
        nonfinite = check_nonfinite(state.opt_state)
        if nonfinite is not None:
            info["nonfinite"] = nonfinite
        if bar is not None:
            bar.update(length)
            bar.set_postfix(epoch=epoch + 1, loss=f"{float(metrics['loss'][-1]):.4f}")
        if step % per_epoch == 0:
            row = {"epoch": epoch + 1, "step": step, "time": time.perf_counter() - start_time}
            row |= {f"train_{name}": value / epoch_steps for name, value in epoch_sums.items()}
            if nonfinite is not None:
                row["skipped_steps"] = nonfinite["skipped"]
            if eval_fn is not None:
                stateful = state.model_state is not None
                args = (state.params, state.model_state) if stateful else (state.params,)
                row |= {name: float(value) for name, value in eval_fn(*args).items()}
            _append_row(history, row)
            info["history"] = history
            if progress:
                (print if bar is None else bar.write)(_epoch_line(history))
            epoch_sums, epoch_steps = {}, 0
        info["carry"] = {
            "history": {k: list(v) for k, v in history.items()},
            "epoch_sums": dict(epoch_sums),
            "epoch_steps": epoch_steps,
            "data_key": key_bits,
        }
        if callback is not None and callback(state, info):
            stopped = True
    if bar is not None:
        bar.close()
    return state, history


def _data_order_bits(
    state: TrainState, step: int, data_key: Array | None, carried_bits: list[int] | None
) -> list[int]:
    """The bits of the key behind the data order: `data_key`'s, else the carry's, else (only
    at step 0) a key folded from `state.key`; a conflict or an unreproducible order raises."""
    if data_key is None and carried_bits is not None:
        return carried_bits
    if data_key is None:
        if step != 0:
            raise ValueError(
                f"fit got a state at step {step} but neither data_key nor carry: the default "
                "data order derives from the key at step 0, which this state no longer holds. "
                "Pass the run's data_key, or carry=info['carry'] saved with the state."
            )
        return _key_bits(jax.random.fold_in(state.key, 0x5EED))
    key_bits = _key_bits(data_key)
    if carried_bits is not None and carried_bits != key_bits:
        raise ValueError(
            f"data_key has bits {key_bits} but the carry was saved with data_key bits "
            f"{carried_bits}: the resumed run would see another data order."
        )
    return key_bits


def _place(data: Any, state: TrainState, batch_size: int) -> tuple[Any, TrainState, Any]:
    """Data on device and a private copy of the state, replicated over the data-parallel mesh
    when there is one; returns (data, state, mesh or None)."""
    data = jax.device_put(data)
    # The compiled chunk donates the state; copy once here so the caller's params and key
    # (often the very arrays passed to init_state) stay usable after fit returns.
    state = jax.tree.map(jnp.copy, state)
    mesh = placement.batch_mesh(data)  # data sharded by placement.shard_batch → sharded batches
    active = placement.active_mesh()
    if mesh is None and active is not None:  # inside placement.data_parallel
        mesh = active
        if batch_size % mesh.size:
            raise ValueError(
                f"batch_size={batch_size} must be divisible by the {mesh.size} devices of the "
                "data-parallel mesh."
            )
        data, state = placement.replicate(data, mesh), placement.replicate(state, mesh)
    return data, state, mesh


def _append_row(history: dict[str, list[float]], row: Mapping[str, float]) -> None:
    """Append one epoch's values to the per-epoch lists of `history` (new names start one)."""
    for name, value in row.items():
        history.setdefault(name, []).append(value)


def _check_carry(carry: Mapping[str, Any] | None, step: int, per_epoch: int) -> dict[str, Any]:
    """`fit`'s `carry`, copied and checked against the state's step; the empty carry if None."""
    if carry is None:
        empty: dict[str, list[float]] = {"epoch": [], "step": [], "time": []}
        return {"history": empty, "epoch_sums": {}, "epoch_steps": 0, "data_key": None}
    expected = "a dict {'history', 'epoch_sums', 'epoch_steps', 'data_key'} from info['carry']"
    if not isinstance(carry, Mapping) or set(carry) != {
        "history",
        "epoch_sums",
        "epoch_steps",
        "data_key",
    }:
        raise ValueError(f"carry must be {expected}, got {carry!r}.")
    history = {k: list(v) for k, v in carry["history"].items()}
    for name in ("epoch", "step", "time"):
        history.setdefault(name, [])
    done = history["step"][-1] if history["step"] else 0
    if carry["epoch_steps"] != step % per_epoch or step - carry["epoch_steps"] != done:
        raise ValueError(
            f"carry does not belong to a state at step {step}: it records "
            f"{carry['epoch_steps']} steps into an epoch after {done} completed steps, but step "
            f"{step} is {step % per_epoch} steps into epoch {step // per_epoch} "
            f"({per_epoch} steps per epoch)."
        )
    key = carry["data_key"]
    return {
        "history": history,
        "epoch_sums": {k: float(v) for k, v in carry["epoch_sums"].items()},
        "epoch_steps": int(carry["epoch_steps"]),
        "data_key": None if key is None else [int(w) for w in key],
    }


def _epoch_line(history: Mapping[str, list[float]]) -> str:
    parts = [f"epoch {history['epoch'][-1]:>3}"]
    parts += [
        f"{name} {values[-1]:.4f}"
        for name, values in history.items()
        if name not in ("epoch", "step", "time") and values
    ]
    return "  ".join(parts)


# ---------------------------------------------------------------------------- evaluate


@functools.lru_cache(maxsize=32)
def _compiled_evaluate(metric_fn: MetricFn, batch_size: int, stateful: bool = False):
    def run(params, data, model_state):
        n = num_examples(data)
        num_batches = -(-n // batch_size)
        index = jnp.arange(num_batches * batch_size).reshape(num_batches, batch_size)
        valid = index < n
        index = jnp.minimum(index, n - 1)  # pad the last batch by repeating the final example

        def per_example(batch):
            values = metric_fn(params, batch, model_state) if stateful else metric_fn(params, batch)
            for name, v in values.items():
                if jnp.shape(v) != (batch_size,):
                    raise ValueError(
                        f"metric_fn must return one value per example, shape ({batch_size},), "
                        f"but {name!r} has shape {jnp.shape(v)}."
                    )
            # Sum in at least float32 so boolean/integer metrics (accuracy) average exactly.
            return {k: v.astype(jnp.promote_types(v.dtype, jnp.float32)) for k, v in values.items()}

        def one_batch(sums, xs):
            idx, keep = xs
            values = per_example(jax.tree.map(lambda a: a[idx], data))
            sums = {k: sums[k] + jnp.sum(jnp.where(keep, v, 0)) for k, v in values.items()}
            return sums, None

        shapes = jax.eval_shape(per_example, jax.tree.map(lambda a: a[:batch_size], data))
        zeros = {k: jnp.zeros((), s.dtype) for k, s in shapes.items()}
        sums, _ = jax.lax.scan(one_batch, zeros, (index, valid))
        return {k: v / n for k, v in sums.items()}

    return jax.jit(run)


def evaluate(
    metric_fn: MetricFn,
    params: Params,
    data: Any,
    *,
    batch_size: int = 1024,
    model_state: Any = None,
) -> dict[str, float]:
    """Exact means over all N examples of per-example metrics, computed in batches.

    `metric_fn(params, batch) -> {name: (b,) array}` gives one value per example; the
    result is `{name: (1/N)·Σᵢ valueᵢ}`. The last partial batch is padded and masked out.
    A stateful model passes its `model_state`, and `metric_fn(params, batch, model_state)`
    is called instead (in eval mode it reads the state and changes nothing).
    """
    check_positive_int(batch_size, "batch_size")
    batch_size = min(batch_size, num_examples(data))
    compiled = _compiled_evaluate(metric_fn, batch_size, model_state is not None)
    means = compiled(params, data, model_state)
    return {k: float(v) for k, v in means.items()}


# ---------------------------------------------- fused training on batches drawn on device
def train_generated(
    state: TrainState,
    loss_fn: Callable[[Params, Any, Array], tuple[Array, dict[str, Array]]],
    optimizer: GradientTransformation,
    sample: Callable[[Array], Any],
    *,
    steps: int,
    steps_per_dispatch: int = 100,
    data_key: Array | None = None,
    callback: Callable[[TrainState, dict[str, float]], None] | None = None,
) -> tuple[TrainState, dict[str, list[float]]]:
    """Train for `steps` updates on batches drawn on device, `steps_per_dispatch` per dispatch.

    Step t trains on `sample(fold_in(data_key, t))`, so the data depends only on the step
    count (a resumed run sees the same batches). Each dispatch is one compiled `lax.scan`
    over steps; `loss_fn(params, batch, key) -> (loss, aux)` as in `funcnn.train`.
    Returns the final state and a history of chunk-mean metrics {"step": […], name: […]}.
    """
    check_positive_int(steps, "steps")
    check_positive_int(steps_per_dispatch, "steps_per_dispatch")
    data_key = jax.random.key(0) if data_key is None else data_key
    step_fn = train_step_fn(loss_fn, optimizer)
    chunk = min(steps_per_dispatch, steps)
    full = _fused_steps(step_fn, sample, data_key, chunk)
    remainder = steps % chunk
    tail = _fused_steps(step_fn, sample, data_key, remainder) if remainder else None
    history: dict[str, list[float]] = {"step": []}
    done = 0
    while done < steps:
        # tail is None only when remainder = 0, and then steps − done ≥ chunk until the end.
        run, length = (
            (tail, remainder) if tail is not None and steps - done < chunk else (full, chunk)
        )
        state, metrics = run(state)
        done += length
        info = {k: float(v) for k, v in metrics.items()}
        history["step"].append(float(done))
        for k, v in info.items():
            history.setdefault(k, []).append(v)
        if callback is not None:
            callback(state, info)
    return state, history


def _fused_steps(
    step_fn: Callable[[TrainState, Any], tuple[TrainState, dict[str, Array]]],
    sample: Callable[[Array], Any],
    data_key: Array,
    length: int,
) -> Callable[[TrainState], tuple[TrainState, dict[str, Array]]]:
    """Jitted (state) -> (state, mean metrics): `length` steps fused in one lax.scan, with the
    state donated so params and optimizer moments update in place."""

    def run(state: TrainState) -> tuple[TrainState, dict[str, Array]]:
        def body(state: TrainState, _: None) -> tuple[TrainState, dict[str, Array]]:
            return step_fn(state, sample(jax.random.fold_in(data_key, state.step)))

        state, metrics = jax.lax.scan(body, state, None, length=length)
        return state, jax.tree.map(jnp.mean, metrics)

    return jax.jit(run, donate_argnums=0)
