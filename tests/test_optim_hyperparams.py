"""inject_hyperparams and set_hyperparam (funcnn/optim/hyperparams.py): values in the state,
changed between steps without recompiling, schedules evaluated per step, against the float64
transcription of the same optimizer with the same sequence of values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.optim.hyperparams import inject_hyperparams, set_hyperparam
from funcnn.reference import optim as ref

PARAMS = {"w": jnp.array([1.0, -2.0, 0.5])}


def _grad(params):
    return jax.tree.map(lambda w: 2.0 * w + 1.0, params)


def test_changed_values_take_effect_without_recompiling():
    """Adam with η = 0.1 for 3 steps, then 0.01 and b1 = 0.5: the reference gets the same."""
    opt = inject_hyperparams(optim.adam)(learning_rate=0.1, b1=0.9)
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(1)
        updates, state = opt.update(_grad(params), state, params)
        return optim.apply_updates(params, updates), state

    with jax.enable_x64(True):
        params = jax.tree.map(lambda x: x.astype(jnp.float64), PARAMS)
        state = opt.init(params)
        reference = ref.Adam(0.1, b1=0.9)
        flat = {"w": np.asarray(params["w"])}
        for k in range(6):
            if k == 3:
                state = set_hyperparam(state, "learning_rate", 0.01)
                state = set_hyperparam(state, "b1", 0.5)
                reference.schedule, reference.b1 = (lambda t: 0.01), 0.5
            params, state = step(params, state)
            flat = reference.step(flat, {"w": 2.0 * flat["w"] + 1.0})
            np.testing.assert_allclose(np.asarray(params["w"]), flat["w"], rtol=1e-12)
    assert len(traces) == 1
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.01)
    assert float(optim.current_learning_rate(state)) == pytest.approx(0.01)


def test_a_schedule_is_evaluated_each_step_and_logged():
    schedule = optim.exponential_decay(0.1, transition_steps=1, decay_rate=0.5)
    opt = inject_hyperparams(optim.sgd)(learning_rate=schedule)
    state = opt.init(PARAMS)
    seen = []
    for _ in range(3):
        _, state = opt.update(_grad(PARAMS), state, PARAMS)
        seen.append(float(state.hyperparams["learning_rate"]))
    np.testing.assert_allclose(seen, [0.1, 0.05, 0.025], rtol=1e-6)


def test_bad_initial_values_and_names_are_refused():
    with pytest.raises(ValueError, match="learning_rate"):
        inject_hyperparams(optim.adam)(learning_rate=-1.0)
    with pytest.raises(TypeError, match="keyword"):
        inject_hyperparams(optim.adam)(1e-3)
    state = inject_hyperparams(optim.adam)(learning_rate=1e-3).init(PARAMS)
    with pytest.raises(KeyError, match="b2"):
        set_hyperparam(state, "b2", 0.9)


def test_weight_decay_injected_at_zero_can_be_switched_on():
    """adamw with λ = 0 keeps its decay stage under inject_hyperparams, so λ = 0.1 set at
    step 2 takes effect (the reference switches at the same step)."""
    opt = inject_hyperparams(optim.adamw)(learning_rate=0.1, weight_decay=0.0)
    step = jax.jit(opt.update)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda x: x.astype(jnp.float64), PARAMS)
        state = opt.init(params)
        reference = ref.AdamW(0.1, weight_decay=0.0)
        flat = {"w": np.asarray(params["w"])}
        for k in range(4):
            if k == 2:
                state = set_hyperparam(state, "weight_decay", 0.1)
                reference.weight_decay = 0.1
            updates, state = step(_grad(params), state, params)
            params = optim.apply_updates(params, updates)
            flat = reference.step(flat, {"w": 2.0 * flat["w"] + 1.0})
            np.testing.assert_allclose(np.asarray(params["w"]), flat["w"], rtol=1e-12)
