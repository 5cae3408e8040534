"""Schedules against their float64 transcriptions in funcnn.reference, evaluated on traced
int32 steps inside jit (one vmap over all steps per schedule), plus build-time validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.reference import optim as ref

STEPS = np.arange(0, 130, dtype=np.int32)

CASES = {
    "constant": (optim.constant(0.3), ref.schedule_constant(0.3)),
    "linear": (optim.linear_schedule(1.0, 0.1, 50), ref.schedule_linear(1.0, 0.1, 50)),
    "linear_warmup": (optim.linear_warmup(2.0, 10, 0.5), ref.schedule_linear_warmup(2.0, 10, 0.5)),
    "cosine": (optim.cosine_decay(1.0, 100, 0.1), ref.schedule_cosine_decay(1.0, 100, 0.1)),
    "warmup_cosine": (
        optim.warmup_cosine_decay(1.0, 20, 100, end_value=0.05, init_value=0.1),
        ref.schedule_warmup_cosine_decay(1.0, 20, 100, end_value=0.05, init_value=0.1),
    ),
    "exponential": (
        optim.exponential_decay(1.0, 0.5, 30),
        ref.schedule_exponential_decay(1.0, 0.5, 30),
    ),
    "exponential_staircase": (
        optim.exponential_decay(1.0, 0.5, 30, staircase=True),
        ref.schedule_exponential_decay(1.0, 0.5, 30, staircase=True),
    ),
    "piecewise": (
        optim.piecewise_constant([10, 40], [1.0, 0.5, 0.1]),
        ref.schedule_piecewise_constant([10, 40], [1.0, 0.5, 0.1]),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_schedule_matches_reference_on_traced_int32_steps(name):
    schedule, reference = CASES[name]
    values = jax.jit(jax.vmap(schedule))(jnp.asarray(STEPS))
    expected = np.array([reference(int(t)) for t in STEPS])
    np.testing.assert_allclose(np.asarray(values, np.float64), expected, rtol=2e-6, atol=1e-7)


def test_warmup_cosine_decay_landmarks():
    """init at 0, peak at W, end at T (T counts the warmup), and stays at the end after T."""
    schedule = optim.warmup_cosine_decay(1.0, 10, 110, end_value=0.1, init_value=0.2)
    at = lambda t: float(schedule(jnp.int32(t)))
    assert at(0) == pytest.approx(0.2)
    assert at(5) == pytest.approx(0.6)
    assert at(10) == pytest.approx(1.0)
    assert at(60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert at(110) == pytest.approx(0.1) and at(10_000) == pytest.approx(0.1)


def test_piecewise_constant_switches_at_the_boundary_step():
    schedule = optim.piecewise_constant([5], [1.0, 0.1])
    assert float(schedule(4)) == 1.0
    assert float(schedule(5)) == pytest.approx(0.1)


def test_schedule_values_use_the_default_float_dtype():
    schedule = optim.warmup_cosine_decay(1.0, 10, 100)
    assert schedule(jnp.int32(3)).dtype == jnp.float32
    with jax.enable_x64(True):
        assert schedule(jnp.int32(3)).dtype == jnp.float64


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: optim.linear_schedule(1.0, 0.0, 0), ValueError, "transition_steps=0"),
        (lambda: optim.cosine_decay(1.0, -5), ValueError, "decay_steps=-5"),
        (lambda: optim.warmup_cosine_decay(1.0, 0, 100), ValueError, "warmup_steps=0"),
        (lambda: optim.warmup_cosine_decay(1.0, 10, 10), ValueError, "must exceed warmup_steps"),
        (lambda: optim.warmup_cosine_decay(1.0, 10, 2.5), TypeError, "decay_steps"),
        (lambda: optim.linear_warmup(1.0, -1), ValueError, "transition_steps=-1"),
        (lambda: optim.exponential_decay(1.0, 0.0, 10), ValueError, "decay_rate"),
        (lambda: optim.exponential_decay(1.0, 0.5, 0), ValueError, "transition_steps=0"),
        (lambda: optim.piecewise_constant([10, 5], [1, 2, 3]), ValueError, "strictly increasing"),
        (lambda: optim.piecewise_constant([10], [1.0]), ValueError, "len\\(values\\)"),
        (lambda: optim.piecewise_constant([0], [1.0, 2.0]), ValueError, r"boundaries\[0\]"),
        (lambda: optim.constant(float("inf")), ValueError, "value must be a finite"),
    ],
)
def test_bad_schedule_arguments_raise_naming_them(build, error, match):
    with pytest.raises(error, match=match):
        build()
