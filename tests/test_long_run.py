"""10,000 AdamW steps on the digits MLP in float32: finite throughout, compiled exactly once."""

import jax
import numpy as np
import pytest

from funcnn import datasets, nn, optim
from funcnn.objectives import supervised_loss, supervised_metrics
from funcnn.optim.wrappers import nonfinite_counts, skip_nonfinite
from funcnn.train import evaluate, fit, init_state, steps_per_epoch

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
TOTAL_STEPS = 10_000
BATCH = 64


@pytest.fixture
def compilations():
    """A list that grows by one entry per XLA compilation while the test runs."""
    events: list[str] = []

    def listener(event: str, duration: float, **kwargs) -> None:
        del duration, kwargs
        if event == BACKEND_COMPILE_EVENT:
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield events
    jax.monitoring.unregister_event_duration_listener(listener)


def test_ten_thousand_adamw_steps_stay_finite_without_recompiling(compilations):
    task = datasets.digits(seed=0)
    model = nn.mlp([task.x_train.shape[1], 32, task.num_outputs])
    params, _ = model.init(jax.random.key(0), (-1, task.x_train.shape[1]))
    # skip_nonfinite would hide a NaN; its counter proves none happened.
    optimizer = skip_nonfinite(optim.adamw(optim.cosine_decay(3e-3, TOTAL_STEPS), 0.9, 0.999))
    loss_fn = supervised_loss(model.apply, task.kind)
    data = (task.x_train, task.y_train)
    per_epoch = steps_per_epoch(data, BATCH)
    epochs = -(-TOTAL_STEPS // per_epoch)
    data_key = jax.random.key(1)

    # Epoch 1 compiles the fused chunk (and fit's host-side helpers) ...
    state = init_state(params, optimizer, jax.random.key(2))
    kwargs = dict(batch_size=BATCH, data_key=data_key, progress=False)
    state, _ = fit(state, loss_fn, optimizer, data, epochs=1, **kwargs)
    compiled_by_first_epoch = len(compilations)
    assert compiled_by_first_epoch >= 1  # the listener does see compilations
    # ... and the remaining ~10,000 steps reuse it: not one more compilation.
    state, history = fit(state, loss_fn, optimizer, data, epochs=epochs, **kwargs)
    assert len(compilations) == compiled_by_first_epoch

    assert int(state.step) == epochs * per_epoch >= TOTAL_STEPS
    assert all(np.isfinite(history["train_loss"]))
    for leaf in jax.tree.leaves(state.params):
        assert leaf.dtype == np.float32 and np.isfinite(np.asarray(leaf)).all()
    for leaf in jax.tree.leaves(state.opt_state):
        assert np.isfinite(np.asarray(leaf)).all()
    assert nonfinite_counts(state.opt_state) == {"skipped": 0, "consecutive": 0}
    metrics = evaluate(supervised_metrics(model.apply, task.kind), state.params, data)
    assert metrics["accuracy"] > 0.99  # it trained (memorised the training split), not just ran
