"""The fit loop: whole epochs fused into `lax.scan`s over batches already on device.

    state = train.init_state(params, optimizer, key)
    state, history = train.fit(state, loss_fn, optimizer, (x, y), batch_size=64, epochs=5)

`fit` runs steps start … start + length − 1 of an epoch as one compiled call (a "chunk",
`steps_per_dispatch` long, a whole epoch by default), so the host only wakes between chunks
to sum metrics, report progress, evaluate and call back. Its parts, in order:

    _check_arguments   the state, the loss contract, the sizes
    _resume_from       the carry of an interrupted run, checked against the state's step
    _data_order_bits   the key behind the data order (data_key, the carry's, or the state's)
    _place             data and state on device (replicated over `mesh` when one is given)
    _EpochOrders       each epoch's batch index table, drawn while the previous epoch runs
    _Run               the loop's running sums, the history and the typed `FitInfo`

`train_generated` is the same fused stepping for batches drawn on device from a key.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from funcnn._validation import check_positive_int
from funcnn.optim.base import GradientTransformation
from funcnn.optim.wrappers import check_nonfinite
from funcnn.scale import placement
from funcnn.scale.mesh import DATA_AXIS
from funcnn.train.data import epoch_order, key_bits, num_examples, steps_per_epoch
from funcnn.train.state import (
    LossFn,
    TrainState,
    _jit_counting_traces,
    check_loss_contract,
    check_state,
    train_step_fn,
)

__all__ = [
    "HISTORY_NAMES",
    "FitCarry",
    "FitInfo",
    "compiled_chunk",
    "fit",
    "train_generated",
]

Array = jax.Array
Params = Any

HISTORY_NAMES = ("epoch", "step", "time", "skipped_steps")
"""The names fit's history keeps for itself (with "train_<metric>" for every step metric);
an `eval_fn` may not return them."""


class FitCarry(NamedTuple):
    """Everything besides the TrainState that an exact resume of `fit` needs.

    history:     the per-epoch history so far (name → list, as `fit` returns it).
    epoch_sums:  the interrupted epoch's running metric sums (name → Σ over its steps so far).
    epoch_steps: how many steps of the current epoch those sums cover.
    data_key:    the bits of the key behind the data order (`data.key_bits`).

    JSON-able through `to_json()` (what checkpoint metadata stores); `from_json` reads it
    back, and `fit(carry=…)` accepts either form.
    """

    history: dict[str, list[float]]
    epoch_sums: dict[str, float]
    epoch_steps: int
    data_key: list[int] | None

    def to_json(self) -> dict[str, Any]:
        """A plain dict of lists and numbers (a copy): {"history", "epoch_sums", …}."""
        return {
            "history": {k: list(v) for k, v in self.history.items()},
            "epoch_sums": dict(self.epoch_sums),
            "epoch_steps": self.epoch_steps,
            "data_key": None if self.data_key is None else list(self.data_key),
        }

    @classmethod
    def from_json(cls, value: Any) -> FitCarry:
        """A FitCarry from itself or from `to_json()`'s dict; ValueError for anything else."""
        if isinstance(value, FitCarry):
            value = value.to_json()
        if not isinstance(value, Mapping) or set(value) != set(cls._fields):
            raise ValueError(
                f"carry must be a FitCarry or its to_json() dict with the keys {cls._fields} "
                f"(fit's info.carry), got {value!r}."
            )
        history = {k: [float(x) for x in v] for k, v in value["history"].items()}
        for name in ("epoch", "step", "time"):
            history.setdefault(name, [])
        key = value["data_key"]
        return cls(
            history=history,
            epoch_sums={k: float(v) for k, v in value["epoch_sums"].items()},
            epoch_steps=int(value["epoch_steps"]),
            data_key=None if key is None else [int(w) for w in key],
        )


class FitInfo(NamedTuple):
    """What `fit` tells its callback after every fused chunk.

    epoch:           the 0-based epoch the chunk belonged to.
    step:            the state's step after the chunk.
    steps_per_epoch: ⌊N / batch_size⌋.
    epoch_ended:     True when the chunk finished its epoch (history then has its row).
    history:         the per-epoch history so far.
    carry:           everything besides the state an exact resume needs (`FitCarry`).
    nonfinite:       `optim.nonfinite_counts` of a `skip_nonfinite` optimizer, else None.
    """

    epoch: int
    step: int
    steps_per_epoch: int
    epoch_ended: bool
    history: dict[str, list[float]]
    carry: FitCarry
    nonfinite: dict[str, int] | None


@functools.lru_cache(maxsize=32)
def _compiled_chunk(
    loss_fn: LossFn, optimizer: GradientTransformation, batch_size: int, mesh: Any = None
):
    """Jitted `run(state, data, order, start, length)`: steps start…start+length−1 of one epoch
    fused in a single `lax.scan`, where `order` is the epoch's (num_batches, batch_size) index
    table. With a `mesh` every minibatch is split along its "data" axis. Cached so repeated
    `fit` calls reuse it."""
    step = train_step_fn(loss_fn, optimizer)

    def run(state, data, order, start, length):
        rows = jax.lax.dynamic_slice_in_dim(order, start, length)  # (length, batch_size)
        chunk = jax.tree.map(lambda a: a[rows], data)  # (length, batch_size, …)
        chunk = placement.constrain_batches(chunk, mesh, batch_axis=1)
        return jax.lax.scan(step, state, chunk)

    return _jit_counting_traces(run, static_argnames="length", donate_argnums=(0,))


def compiled_chunk(loss_fn: LossFn, optimizer: GradientTransformation, batch_size: int):
    """The jitted fused-steps program `fit` uses for this (loss_fn, optimizer, batch_size)
    on one device (cached: the same object `fit` runs), for `state.compile_count`."""
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
    callback: Callable[[TrainState, FitInfo], bool | TrainState | None] | None = None,
    carry: FitCarry | Mapping[str, Any] | None = None,
    mesh: Mesh | None = None,
) -> tuple[TrainState, dict[str, list[float]]]:
    """Train until `state.step == epochs · ⌊N / batch_size⌋`, fusing steps with `lax.scan`.

    state:       a `TrainState(params, opt_state, step, key)`; make one with
                 `init_state(params, optimizer, key)`. fit works on a copy: the caller's
                 arrays stay usable.
    loss_fn:     `loss_fn(params, batch, key) -> (loss, aux)`: `batch` one slice of `data`
                 with a leading batch axis (e.g. `(x_b, y_b)`), `key` a fresh PRNG key per
                 step (for dropout), `loss` a scalar, `aux` a dict {name: scalar} of extra
                 metrics (`{}` for none). Aux metrics must be scalars — a per-example (B,)
                 value is refused, naming it — and are averaged over each epoch's steps as
                 "train_<name>". `objectives.supervised_loss(model.apply, kind)` builds one.
    data:        a pytree of arrays sharing a leading example axis N (e.g. `(x, y)`); it is
                 moved to device once and shuffled there each epoch.
    data_key:    key for the shuffles; epoch e uses `epoch_order(key_bits(data_key), e, N)`.
                 Defaults to a key derived from `state.key` at step 0; a state past step 0
                 needs `data_key` or a `carry` (which records the key's bits), else the order
                 could not be reproduced and fit raises ValueError.
    steps_per_dispatch: steps fused per compiled call; default: a whole epoch (one dispatch
                 per epoch). Progress and `callback` run between dispatches.
    eval_fn:     `eval_fn(params) -> {name: scalar}` (`eval_fn(params, model_state)` when the
                 state has a model_state), run after every epoch; its names join
                 the history and may not be fit's own (`HISTORY_NAMES`, "train_…").
    progress:    a tqdm bar (when tqdm is installed) and one line of metrics per epoch.
    callback:    `callback(state, info) -> stop?` after every dispatch, with `info` a
                 `FitInfo`; returning True stops cleanly (used for checkpoints and signals).
                 Returning a TrainState instead continues from it: e.g. a hyperparameter
                 held by `optim.inject_hyperparams`, changed without recompiling:
                 `return state._replace(opt_state=optim.set_hyperparam(state.opt_state,
                 "learning_rate", 1e-4))`.
    carry:       `info.carry` as a callback saw it with the state being resumed (a `FitCarry`
                 or its `to_json()` dict, e.g. from a checkpoint's metadata, see
                 `funcnn.train.resume`). With it the returned history is the whole run's and
                 the interrupted epoch's means cover all its steps, as if it never stopped.
    mesh:        run data-parallel over this mesh's "data" axis (`scale.make_mesh(n)`):
                 state and data are replicated and every minibatch is split along "data"
                 (`batch_size` must divide evenly). None (default): one device — unless
                 `data` is already sharded with `scale.shard_batch`, whose mesh is then used.

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
    chunk, per_epoch = _check_arguments(
        state, loss_fn, data, batch_size, epochs, steps_per_dispatch
    )
    step = int(state.step)
    resumed = _resume_from(carry, step, per_epoch)
    bits = _data_order_bits(state, step, data_key, resumed.data_key)
    data, state, mesh = _place(data, state, batch_size, mesh)
    compiled = _compiled_chunk(loss_fn, optimizer, batch_size, *([mesh] if mesh else []))
    orders = _EpochOrders(bits, num_examples(data), per_epoch, batch_size)
    total = epochs * per_epoch
    run = _Run(resumed._replace(data_key=bits), per_epoch, eval_fn, progress, total - step)
    stopped = False
    while step < total and not stopped:
        epoch, position = divmod(step, per_epoch)
        length = min(chunk - position % chunk, per_epoch - position)
        state, metrics = compiled(state, data, orders.table(epoch), position, length)
        if position + length == per_epoch:  # epoch done: draw the next order while it runs
            orders.finished(epoch, prefetch=(epoch + 1) * per_epoch < total)
        step += length
        info = run.after_chunk(state, metrics, epoch, step, length)
        answer = None if callback is None else callback(state, info)
        if isinstance(answer, TrainState):
            state = answer  # the callback changed the state (e.g. set_hyperparam)
        else:
            stopped = bool(answer)
    run.close()
    return state, run.history


def _check_arguments(
    state: Any,
    loss_fn: LossFn,
    data: Any,
    batch_size: int,
    epochs: int,
    steps_per_dispatch: int | None,
) -> tuple[int, int]:
    """Validate what fit can see before compiling; returns (steps per chunk, per epoch)."""
    check_positive_int(epochs, "epochs")
    check_state(state, "fit")
    per_epoch = steps_per_epoch(data, batch_size)
    first_batch = jax.tree.map(lambda a: a[:batch_size], data)
    check_loss_contract(loss_fn, state.params, first_batch, state.key, state.model_state)
    chunk = per_epoch if steps_per_dispatch is None else steps_per_dispatch
    check_positive_int(chunk, "steps_per_dispatch")
    return chunk, per_epoch


def _resume_from(carry: Any, step: int, per_epoch: int) -> FitCarry:
    """`fit`'s `carry` as a FitCarry, checked against the state's step; empty if None."""
    if carry is None:
        return FitCarry({"epoch": [], "step": [], "time": []}, {}, 0, None)
    resumed = FitCarry.from_json(carry)
    done = resumed.history["step"][-1] if resumed.history["step"] else 0
    if resumed.epoch_steps != step % per_epoch or step - resumed.epoch_steps != done:
        raise ValueError(
            f"carry does not belong to a state at step {step}: it records "
            f"{resumed.epoch_steps} steps into an epoch after {done} completed steps, but step "
            f"{step} is {step % per_epoch} steps into epoch {step // per_epoch} "
            f"({per_epoch} steps per epoch)."
        )
    return resumed


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
                "Pass the run's data_key, or carry=info.carry saved with the state."
            )
        return key_bits(jax.random.fold_in(state.key, 0x5EED))
    bits = key_bits(data_key)
    if carried_bits is not None and carried_bits != bits:
        raise ValueError(
            f"data_key has bits {bits} but the carry was saved with data_key bits "
            f"{carried_bits}: the resumed run would see another data order."
        )
    return bits


def _place(
    data: Any, state: TrainState, batch_size: int, mesh: Mesh | None
) -> tuple[Any, TrainState, Mesh | None]:
    """Data on device and a private copy of the state, replicated over the data-parallel mesh
    when there is one; returns (data, state, the mesh batches are split over, or None)."""
    sharded = placement.batch_mesh(data)  # data sharded by scale.shard_batch
    if mesh is not None and sharded is not None and sharded != mesh:
        raise ValueError(
            "fit got mesh= and data already sharded over another mesh; pass one of them."
        )
    data = jax.device_put(data)
    # The compiled chunk donates the state; copy once here so the caller's params and key
    # (often the very arrays passed to init_state) stay usable after fit returns.
    state = jax.tree.map(jnp.copy, state)
    if mesh is None or sharded is not None:
        return data, state, sharded
    devices = int(mesh.shape[DATA_AXIS])
    if batch_size % devices:
        raise ValueError(
            f"batch_size={batch_size} must be divisible by the {devices} devices along the "
            "'data' axis of the mesh."
        )
    return placement.replicate(data, mesh), placement.replicate(state, mesh), mesh


class _EpochOrders:
    """Each epoch's (steps_per_epoch, batch_size) index table on device, drawn once; the next
    epoch's is drawn (on the host) while the current epoch's last chunk runs."""

    def __init__(self, bits: list[int], n: int, per_epoch: int, batch_size: int):
        self.bits, self.n, self.per_epoch, self.batch_size = bits, n, per_epoch, batch_size
        self.tables: dict[int, Array] = {}

    def table(self, epoch: int) -> Array:
        if epoch not in self.tables:
            order = epoch_order(self.bits, epoch, self.n)[: self.per_epoch * self.batch_size]
            self.tables[epoch] = jnp.asarray(order.reshape(self.per_epoch, self.batch_size))
        return self.tables[epoch]

    def finished(self, epoch: int, *, prefetch: bool) -> None:
        del self.tables[epoch]
        if prefetch:
            self.table(epoch + 1)


class _Run:
    """The loop's host-side bookkeeping: running metric sums, the history, progress, info."""

    def __init__(
        self,
        resumed: FitCarry,
        per_epoch: int,
        eval_fn: Callable[[Params], Mapping[str, Any]] | None,
        progress: bool,
        steps_left: int,
    ):
        self.history = resumed.history
        # Steps of the current epoch summed in epoch_sums: those run by this call, plus those
        # before an interruption when the carry brings their sums.
        self.epoch_sums, self.epoch_steps = resumed.epoch_sums, resumed.epoch_steps
        self.data_key = resumed.data_key
        self.per_epoch, self.eval_fn, self.progress = per_epoch, eval_fn, progress
        self.bar = _progress_bar(steps_left, progress)
        times = self.history["time"]
        self.start_time = time.perf_counter() - (times[-1] if times else 0.0)

    def after_chunk(
        self, state: TrainState, metrics: dict[str, Array], epoch: int, step: int, length: int
    ) -> FitInfo:
        for name, values in metrics.items():
            self.epoch_sums[name] = self.epoch_sums.get(name, 0.0) + float(jnp.sum(values))
        self.epoch_steps += length
        # With optim.skip_nonfinite: report its counts; raise after max_consecutive bad steps.
        nonfinite = check_nonfinite(state.opt_state)
        if self.bar is not None:
            self.bar.update(length)
            self.bar.set_postfix(epoch=epoch + 1, loss=f"{float(metrics['loss'][-1]):.4f}")
        ended = step % self.per_epoch == 0
        if ended:
            self._end_epoch(state, epoch, step, nonfinite)
        carry = FitCarry(
            history={k: list(v) for k, v in self.history.items()},
            epoch_sums=dict(self.epoch_sums),
            epoch_steps=self.epoch_steps,
            data_key=self.data_key,
        )
        return FitInfo(epoch, step, self.per_epoch, ended, self.history, carry, nonfinite)

    def _end_epoch(
        self, state: TrainState, epoch: int, step: int, nonfinite: dict[str, int] | None
    ) -> None:
        row: dict[str, float] = {
            "epoch": epoch + 1,
            "step": step,
            "time": time.perf_counter() - self.start_time,
        }
        row |= {f"train_{k}": v / self.epoch_steps for k, v in self.epoch_sums.items()}
        if nonfinite is not None:
            row["skipped_steps"] = nonfinite["skipped"]
        if self.eval_fn is not None:
            row |= _eval_row(self.eval_fn, state.params, state.model_state)
        for name, value in row.items():
            self.history.setdefault(name, []).append(value)
        if self.progress:
            (print if self.bar is None else self.bar.write)(_epoch_line(self.history))
        self.epoch_sums, self.epoch_steps = {}, 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _eval_row(
    eval_fn: Callable[..., Mapping[str, Any]], params: Params, model_state: Any = None
) -> dict[str, float]:
    """`eval_fn(params)` (`eval_fn(params, model_state)` for a stateful model) as
    {name: float}, checked: a dict of scalars whose names are not the history's own."""
    name = getattr(eval_fn, "__name__", "eval_fn")
    values = eval_fn(params) if model_state is None else eval_fn(params, model_state)
    if not isinstance(values, Mapping):
        raise TypeError(
            f"eval_fn must be eval_fn(params) -> {{name: scalar}} (a dict of metrics, e.g. "
            f"{{'test_loss': 0.3}}); {name} returned {type(values).__name__} {values!r}."
        )
    row = {}
    for key, value in values.items():
        if key in HISTORY_NAMES or str(key).startswith("train_"):
            raise ValueError(
                f"eval_fn {name} returned a metric named {key!r}, which would overwrite "
                f"fit's own history entry; rename it (e.g. 'test_{key}'). fit keeps "
                f"{HISTORY_NAMES} and 'train_<metric>' for itself."
            )
        if jnp.shape(value) != ():
            raise ValueError(
                f"eval_fn {name} returned {key!r} of shape {jnp.shape(value)}; its metrics "
                "must be scalars."
            )
        row[key] = float(value)
    return row


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="step", leave=False)


def _epoch_line(history: Mapping[str, list[float]]) -> str:
    parts = [f"epoch {history['epoch'][-1]:>3}"]
    parts += [
        f"{name} {values[-1]:.4f}"
        for name, values in history.items()
        if name not in ("epoch", "step", "time") and values
    ]
    return "  ".join(parts)


# ---------------------------------------------- fused training on batches drawn on device
def train_generated(
    state: TrainState,
    loss_fn: LossFn,
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
    over steps; `loss_fn(params, batch, key) -> (loss, aux)` as in `fit`.
    Returns the final state and a history of chunk-mean metrics {"step": […], name: […]}.
    """
    check_state(state, "train_generated")
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
