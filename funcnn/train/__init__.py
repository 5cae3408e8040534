"""Training: the state and the one step, data order, the fit loop, evaluation, objectives,
checkpoints and exact resume.

    from funcnn import train
    state = train.init_state(params, optimizer, key)          # a TrainState at step 0
    state, history = train.fit(state, loss_fn, optimizer, (x, y), batch_size=64, epochs=5)
    metrics = train.evaluate(metric_fn, state.params, (x_test, y_test))

The loss contract is `loss_fn(params, batch, key) -> (loss, aux)`: `batch` one slice of
the data pytree (e.g. `(x, y)`), `key` a PRNG key for dropout, `loss` a scalar and `aux` a
dict of scalar metrics. `objectives.supervised_loss(apply, kind)` builds one from a model.

Modules: `fit` (TrainState, the step, data order, the fused fit loop, evaluate,
train_generated), `objectives` (loss and metric functions for fit/evaluate), `checkpoint`
(atomic save/restore of pytrees), `coordinated` (checkpoints for a process group), `resume`
(checkpoint callbacks, signals, resuming a run exactly). Placement on several devices lives
in `funcnn.scale`, which this package uses and which never uses it.
"""

from funcnn.train import checkpoint, coordinated, objectives, resume
from funcnn.train.fit import (
    TrainState,
    check_loss_contract,
    check_loss_fn,
    compile_count,
    compiled_chunk,
    epoch_batches,
    epoch_order,
    evaluate,
    fit,
    init_state,
    make_sharded_step,
    make_step,
    num_examples,
    steps_per_epoch,
    train_generated,
    train_step_fn,
)

__all__ = [
    "TrainState",
    "check_loss_contract",
    "check_loss_fn",
    "checkpoint",
    "compile_count",
    "compiled_chunk",
    "coordinated",
    "epoch_batches",
    "epoch_order",
    "evaluate",
    "fit",
    "init_state",
    "make_sharded_step",
    "make_step",
    "num_examples",
    "objectives",
    "resume",
    "steps_per_epoch",
    "train_generated",
    "train_step_fn",
]
