"""The main training job as a library function: task → MLP or CNN → optimizer → fit → metrics.

`scripts/train.py` only parses flags into a `TrainConfig` and prints what `run` returns,
so everything here is importable and testable. The learning-rate schedule has two phases:

    1. warmup:  ηₜ rises linearly from 0 to η over the first `warmup_fraction` of the steps;
    2. decay:   ηₜ follows a half cosine from η down to 0 at the last step.

Gradients are clipped to global norm `clip_norm` before the optimizer sees them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from funcnn import activations, nn, optim
from funcnn import datasets as ds
from funcnn import params as param_tools
from funcnn._validation import (
    check_choice,
    check_in_range,
    check_nonnegative_int,
    check_positive_int,
)
from funcnn.lab import optimizers
from funcnn.scale import distributed
from funcnn.train import (
    FitCarry,
    FitInfo,
    TrainState,
    coordinated,
    evaluate,
    fit,
    init_state,
    steps_per_epoch,
)
from funcnn.train.objectives import supervised_loss, supervised_metrics
from funcnn.train.resume import StopRequest, checkpoint_callback, merge_histories, resume_latest

__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "OPTIMIZERS",
    "TASK_DEFAULTS",
    "RunResult",
    "TrainConfig",
    "build_model",
    "build_optimizer",
    "digits_cnn",
    "epoch_row",
    "prepare",
    "readout",
    "resolve",
    "run",
    "run_resumable",
]

# The names the main job accepts; what each means lives in one place
# (`activations.get`, `lab.optimizers.optimizer`).
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "sigmoid", "gelu", "silu", "leaky_relu")
OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
MODELS = ("mlp", "cnn")
"""`TrainConfig.model`: an MLP on the features, or (digits only) `digits_cnn` on the images."""
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {"cnn": {"epochs": 20}}
"""Defaults a model overrides on top of its task's (the CNN converges in fewer epochs)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. `None` fields take the task's default from `TASK_DEFAULTS`."""

    task: str = "digits"
    optimizer: str = "adamw"
    learning_rate: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    hidden: tuple[int, ...] | None = None
    activation: str | None = None
    dropout: float = 0.0
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1
    clip_norm: float = 1.0
    seed: int = 0
    model: str = "mlp"


def _defaults(learning_rate: float, **fields: Any) -> dict[str, Any]:
    return dict(learning_rate=learning_rate, **fields)


# Chosen so every task reaches its stated quality in seconds on a laptop CPU.
# An empty `hidden` is a single layer: logistic regression (spam) or a linear model (house).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": _defaults(3e-3, epochs=30, batch_size=64, hidden=(256, 256), activation="relu"),
    "spirals": _defaults(1e-2, epochs=150, batch_size=32, hidden=(64, 64), activation="relu"),
    "xor": _defaults(3e-2, epochs=60, batch_size=16, hidden=(16,), activation="tanh"),
    "sine": _defaults(1e-2, epochs=400, batch_size=32, hidden=(64, 64), activation="tanh"),
    "house": _defaults(3e-2, epochs=100, batch_size=32, hidden=(), activation="relu"),
    "spam": _defaults(1e-2, epochs=40, batch_size=32, hidden=(), activation="relu"),
    "breast_cancer": _defaults(3e-3, epochs=40, batch_size=32, hidden=(32,), activation="relu"),
    "diabetes": _defaults(3e-3, epochs=100, batch_size=32, hidden=(32,), activation="relu"),
}


class _TaskFields(NamedTuple):
    """The `None`-by-default fields of a `resolve`d TrainConfig, typed as filled in."""

    learning_rate: float
    epochs: int
    batch_size: int
    hidden: tuple[int, ...]
    activation: str


def _filled(config: TrainConfig) -> _TaskFields:
    """`config`'s task-default fields; a ValueError if `resolve` has not filled them."""
    lr, epochs, batch_size = config.learning_rate, config.epochs, config.batch_size
    hidden, activation = config.hidden, config.activation
    if lr is None or epochs is None or batch_size is None or hidden is None or activation is None:
        raise ValueError(
            f"{config} has fields left at None: pass it through recipes.resolve(config) first."
        )
    return _TaskFields(lr, epochs, batch_size, hidden, activation)


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill `None` fields from the task's defaults and validate every field."""
    check_choice(config.task, "task", sorted(TASK_DEFAULTS))
    check_choice(config.optimizer, "optimizer", OPTIMIZERS)
    check_choice(config.model, "model", MODELS)
    if config.model == "cnn" and config.task != "digits":
        raise ValueError(
            f"model='cnn' needs an image task, and only 'digits' is one; got task={config.task!r}."
        )
    defaults = TASK_DEFAULTS[config.task] | (MODEL_DEFAULTS.get(config.model, {}))
    filled = {k: v for k, v in defaults.items() if getattr(config, k) is None}
    config = dataclasses.replace(config, **filled)
    check_choice(config.activation, "activation", sorted(ACTIVATIONS))
    check_positive_int(config.epochs, "epochs")
    check_positive_int(config.batch_size, "batch_size")
    for width in _filled(config).hidden:
        check_positive_int(width, "hidden")
    check_in_range(config.learning_rate, "learning_rate", 0.0, float("inf"), low_inclusive=False)
    check_in_range(config.dropout, "dropout", 0.0, 1.0, high_inclusive=True)
    check_in_range(config.weight_decay, "weight_decay", 0.0, float("inf"))
    check_in_range(config.warmup_fraction, "warmup_fraction", 0.0, 1.0)
    check_in_range(config.clip_norm, "clip_norm", 0.0, float("inf"), low_inclusive=False)
    return config


def digits_cnn(
    num_classes: int = 10, *, widths: tuple[int, int, int] = (16, 32, 32), dropout: float = 0.0
) -> nn.Layer:
    """A small CNN for 8×8 digits, (B, 64) pixels → (B, num_classes) logits:

        3×3 conv c₁ → batch norm → relu                      8×8×c₁
        3×3 conv c₂ → batch norm → relu → 2×2 max pool       4×4×c₂
        3×3 conv c₃ → batch norm → relu → 2×2 max pool       2×2×c₃
        flatten → dropout → dense                            num_classes

    with (c₁, c₂, c₃) = `widths`.

    Convolutions have no bias: the batch norm after each would cancel it. Stateful (batch
    norm's running statistics): train it with `stateful=True` objectives.
    """
    relu = nn.activation(activations.relu)
    c1, c2, c3 = widths
    return nn.serial(
        nn.reshape((8, 8, 1)),
        nn.conv2d(c1, 3, use_bias=False), nn.batch_norm(), relu,
        nn.conv2d(c2, 3, use_bias=False), nn.batch_norm(), relu, nn.max_pool2d(2),
        nn.conv2d(c3, 3, use_bias=False), nn.batch_norm(), relu, nn.max_pool2d(2),
        nn.flatten(), nn.dropout(dropout), nn.dense(num_classes),
    )  # fmt: skip


def build_model(config: TrainConfig, task: ds.Task) -> nn.Layer:
    """MLP [features, *hidden, outputs] with the configured activation and dropout, or
    `digits_cnn` for model="cnn"."""
    if config.model == "cnn":
        return digits_cnn(task.num_outputs, dropout=config.dropout)
    filled = _filled(config)
    sizes = [task.x_train.shape[1], *filled.hidden, task.num_outputs]
    activation = activations.get(filled.activation)
    return nn.mlp(sizes, activation=activation, dropout=config.dropout)


def build_optimizer(config: TrainConfig, total_steps: int) -> optim.GradientTransformation:
    """clip_by_global_norm(clip_norm) → the chosen optimizer with a warmup-cosine schedule.

    Weight decay is coupled L2 for sgd/momentum/nesterov/rmsprop/adam and decoupled for adamw,
    where it applies only to ≥2-D weights (`funcnn.params.decay_mask`).
    """
    return optimizers.clipped_warmup_cosine(
        config.optimizer,
        peak_value=_filled(config).learning_rate,
        total_steps=total_steps,
        warmup_steps=int(config.warmup_fraction * total_steps),
        clip_norm=config.clip_norm,
        weight_decay=config.weight_decay,
        decay_mask=param_tools.decay_mask,
    )


class RunResult(NamedTuple):
    config: TrainConfig
    task: ds.Task
    model: nn.Layer
    state: TrainState
    history: dict[str, list[float]]
    test_metrics: dict[str, float]


class Prepared(NamedTuple):
    """Everything a run needs before its first step (see `prepare`)."""

    config: TrainConfig  # resolved: every field filled and validated
    task: ds.Task
    model: nn.Layer
    optimizer: optim.GradientTransformation
    state: TrainState  # the fresh initial state
    loss_fn: Callable  # (params, batch, key[, model_state]) -> (loss, aux[, new_state])
    metric_fn: Callable  # (params, batch[, model_state]) -> per-example metrics
    data: tuple[Any, Any]  # (x_train, y_train)
    data_key: Any  # the key of fit's per-epoch shuffles


def prepare(config: TrainConfig) -> Prepared:
    """Everything `run` needs before the first step, as a `Prepared`. Split out so callers
    can resume a restored state (its `state` is then only the template to restore into)."""
    config = resolve(config)
    task = ds.load(config.task, seed=config.seed)
    model = build_model(config, task)
    data = (task.x_train, task.y_train)
    filled = _filled(config)
    total_steps = filled.epochs * steps_per_epoch(data, filled.batch_size)
    optimizer = build_optimizer(config, total_steps)
    init_key, state_key, data_key = jax.random.split(jax.random.key(config.seed), 3)
    in_shape = (-1, task.x_train.shape[1])
    params, _ = model.init(init_key, in_shape)
    stateful = nn.is_stateful(model)  # batch norm: running statistics ride in the TrainState
    model_state = nn.initial_state(model, in_shape) if stateful else None
    state = init_state(params, optimizer, state_key, model_state)
    loss_fn = supervised_loss(model.apply, task.kind, stateful=stateful)
    metric_fn = supervised_metrics(model.apply, task.kind, stateful=stateful)
    return Prepared(config, task, model, optimizer, state, loss_fn, metric_fn, data, data_key)


def run(
    config: TrainConfig,
    *,
    state: TrainState | None = None,
    progress: bool = True,
    callback: Callable[[TrainState, FitInfo], bool | None] | None = None,
    steps_per_dispatch: int | None = None,
    carry: FitCarry | dict[str, Any] | None = None,
    mesh: Mesh | None = None,
) -> RunResult:
    """Train `config` and evaluate on the held-out split.

    `state`, when given (e.g. restored from a checkpoint), replaces the fresh initial state;
    the run continues from its step with the same data order. `carry` (fit's, saved with
    that state) continues its history and the interrupted epoch's running metric sums.
    `mesh` (e.g. `scale.make_mesh()`) trains data-parallel over its "data" axis.
    """
    ready = prepare(config)
    config, task = ready.config, ready.task
    test = (task.x_test, task.y_test)

    def eval_fn(params, model_state=None):
        metrics = evaluate(ready.metric_fn, params, test, model_state=model_state)
        return {f"test_{k}": v for k, v in metrics.items()}

    state, history = fit(
        ready.state if state is None else state,
        ready.loss_fn,
        ready.optimizer,
        ready.data,
        batch_size=_filled(config).batch_size,
        epochs=_filled(config).epochs,
        data_key=ready.data_key,
        eval_fn=eval_fn,
        progress=progress,
        callback=callback,
        steps_per_dispatch=steps_per_dispatch,
        carry=carry,
        mesh=mesh,
    )
    final = eval_fn(state.params, state.model_state)
    return RunResult(config, task, ready.model, state, history, final)


def readout(result: RunResult) -> list[str]:
    """Task-specific lines that explain what the model learned (spam words, house coefficients)."""
    task, params = result.task, result.state.params
    if task.name == "spam" and not result.config.hidden:
        w = np.asarray(params["dense_0"]["w"])[:, 0]
        order = np.argsort(w)
        vocab = task.info["vocabulary"]
        top = ", ".join(f"{vocab[i]} {w[i]:+.2f}" for i in order[::-1][:8])
        bottom = ", ".join(f"{vocab[i]} {w[i]:+.2f}" for i in order[:8])
        return [
            "A single neuron is a weighted vote: each word's weight is its vote.",
            f"  most spam-like: {top}",
            f"  most ham-like:  {bottom}",
        ]
    if task.name == "house" and not result.config.hidden:
        learned = ds.house_coefficients(task, np.asarray(params["dense_0"]["w"]))
        lines = ["Learned coefficients (raw units) beside the truth:"]
        for name, got, true in zip(
            task.info["feature_names"], learned, task.info["true_coefficients"], strict=True
        ):
            lines.append(f"  {name:<12} learned {got:>10.1f}   true {true:>10.1f}")
        return lines
    return []


def epoch_row(history: dict[str, list], index: int) -> str:
    """One printed line for epoch `history["epoch"][index]`: every per-epoch metric with four
    significant digits (`.4g`, so a small loss reads 3.81e-05, not 0.0000)."""
    skip = ("epoch", "step", "time")
    values = "  ".join(
        f"{k} {v[index]:.4g}" for k, v in history.items() if k not in skip and len(v)
    )
    return f"epoch {history['epoch'][index]:>4}  {values}"


def check_checkpoint_dir(directory: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start a fresh run over an earlier run's checkpoints unless told to.

    Raises `FileExistsError` naming the folder when it holds checkpoints and neither
    `resume` (continue that run) nor `overwrite` (replace it) is set; `ValueError` when both
    are. Touches nothing on disk.
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue a run or replace it.")
    if resume or overwrite:
        return
    folder = Path(directory)
    # Not CheckpointManager(folder): constructing one creates the folder and sweeps it.
    found = sorted(p.name for p in folder.glob("ckpt_*.npz")) if folder.is_dir() else []
    if found:
        raise FileExistsError(
            f"{directory} holds {len(found)} checkpoint(s) of an earlier run ({found[-1]} the "
            "newest); pass --resume to continue it or --overwrite to replace it."
        )


def _say(message: str) -> None:
    if distributed.is_coordinator():  # one line per run, not one per process
        print(message, flush=True)


def run_resumable(
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike,
    *,
    checkpoint_every: int = 0,
    keep: int = 3,
    resume: bool = False,
    overwrite: bool = False,
    stop: StopRequest | None = None,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
    mesh: Mesh | None = None,
) -> RunResult:
    """`run` (on `mesh`, when given) with its TrainState checkpointed in `checkpoint_dir` — every
    `checkpoint_every` steps (0: none periodically), at the end, and when `stop` is
    requested — and, with `resume=True`, continued from the newest valid checkpoint.

    A folder that already holds checkpoints of an earlier run is never emptied silently:
    without `resume` it is a `FileExistsError` unless `overwrite=True`, which removes them
    first (with a note) so a later resume can never mix two runs. Call `check_checkpoint_dir`
    first to fail before any work is done. The returned history covers the
    whole run, the epochs before a resume included (they travel in checkpoint metadata).
    `report`, when given, receives one `epoch_row` per epoch as it finishes (and, on a
    resume, the rows of the epochs before it first), so a run without a progress bar still
    shows where it is.
    """
    check_nonnegative_int(checkpoint_every, "checkpoint_every")
    check_positive_int(keep, "keep")
    # Under a process group (funcnn.scale.launch) process 0 writes and the others wait; alone, it
    # is the plain CheckpointManager.
    manager = coordinated.CoordinatedCheckpointManager(Path(checkpoint_dir), keep=keep)
    config = resolve(config)
    config_dict = dataclasses.asdict(config)
    check_checkpoint_dir(manager.directory, resume=resume, overwrite=overwrite)
    ready = prepare(config)
    fresh, per_epoch = ready.state, steps_per_epoch(ready.data, _filled(config).batch_size)
    state, history_before, carry = None, {}, None
    if resume:
        found = resume_latest(manager, like=fresh, config=config_dict, steps_per_epoch=per_epoch)
        if found is not None:
            state, carry = found[0], found[1].get("carry")
            if carry is None:  # written without fit's carry: at least keep its epoch rows
                history_before = found[1].get("history", {})
        where = "no checkpoint found" if state is None else f"step {int(state.step)}"
        _say(f"resume: {where} in {manager.directory}")
    elif overwrite:  # check_checkpoint_dir refused a non-empty folder without it
        # Every process calls remove_all (a barrier), whatever it sees on disk right now.
        removed = manager.remove_all()
        if removed:
            _say(
                f"starting fresh (overwrite): removed {removed} checkpoint(s) of an earlier "
                f"run in {manager.directory}"
            )
    if report is not None:
        earlier = history_before if carry is None else carry["history"]
        for i in range(len(earlier.get("epoch", []))):
            report(epoch_row(earlier, i))
    saving = checkpoint_callback(
        manager,
        every=checkpoint_every,
        stop=stop,
        total_steps=_filled(config).epochs * per_epoch,
        config=config_dict,
        history=history_before,
    )

    def callback(state: TrainState, info: FitInfo) -> bool:
        if report is not None and info.epoch_ended:
            report(epoch_row(info.history, -1))
        return saving(state, info)

    result = run(
        config,
        state=state,
        progress=progress,
        callback=callback,
        steps_per_dispatch=checkpoint_every or None,
        carry=carry,
        mesh=mesh,
    )
    # The run's history spans its interruptions, so plots and epoch tables are complete.
    return result._replace(history=merge_histories(history_before, result.history))
