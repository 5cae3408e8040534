"""Training: the state and the one step, data order, the fit loop, evaluation, objectives,
checkpoints and exact resume.

    from funcnn import train
    state = train.init_state(params, optimizer, key)          # a TrainState at step 0
    state, history = train.fit(state, loss_fn, optimizer, (x, y), batch_size=64, epochs=5)
    metrics = train.evaluate(metric_fn, state.params, (x_test, y_test))

The loss contract is `loss_fn(params, batch, key) -> (loss, aux)`: `batch` one slice of
the data pytree (e.g. `(x, y)`), `key` a PRNG key for dropout, `loss` a scalar and `aux` a
dict of scalar metrics. `objectives.supervised_loss(apply, kind)` builds one from a model.

    state       TrainState, init_state, the step (train_step_fn, make_step,
                make_sharded_step), the loss contract's checks, compile_count
    data        data order: num_examples, steps_per_epoch, epoch_order, epoch_batches
    loop        fit, the fused loop, with its typed FitCarry and FitInfo; train_generated
    evaluation  evaluate: exact means of per-example metrics
    objectives  loss and metric functions for fit and evaluate
    checkpoint  atomic, checksummed save/restore of pytrees
    coordinated checkpoints for a process group
    resume      checkpoint callbacks, signals, resuming a run exactly

Placement on several devices lives in `funcnn.scale`, which this package uses (`fit(...,
mesh=)`) and which never uses it.
"""

from funcnn.train import (
    checkpoint,
    coordinated,
    data,
    evaluation,
    loop,
    objectives,
    resume,
    state,
)
from funcnn.train.data import epoch_batches, epoch_order, num_examples, steps_per_epoch
from funcnn.train.evaluation import MetricFn, evaluate
from funcnn.train.loop import FitCarry, FitInfo, compiled_chunk, fit, train_generated
from funcnn.train.state import (
    LossFn,
    TrainState,
    check_loss_contract,
    check_loss_fn,
    compile_count,
    init_state,
    make_sharded_step,
    make_step,
    train_step_fn,
)

__all__ = [
    "FitCarry",
    "FitInfo",
    "LossFn",
    "MetricFn",
    "TrainState",
    "check_loss_contract",
    "check_loss_fn",
    "checkpoint",
    "compile_count",
    "compiled_chunk",
    "coordinated",
    "data",
    "epoch_batches",
    "epoch_order",
    "evaluate",
    "evaluation",
    "fit",
    "init_state",
    "loop",
    "make_sharded_step",
    "make_step",
    "num_examples",
    "objectives",
    "resume",
    "state",
    "steps_per_epoch",
    "train_generated",
    "train_step_fn",
]
