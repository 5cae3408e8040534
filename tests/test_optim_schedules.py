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


# ---------------------------------------------------------------- step counts beyond int32
BIG = 10**10  # > 2³¹: a Python int that would overflow an int32 array


@pytest.mark.parametrize(
    "build, closed_form",
    [
        (
            lambda: optim.cosine_decay(1000.0, BIG),
            lambda t: 1000.0 * 0.5 * (1 + math.cos(math.pi * min(t, BIG) / BIG)),
        ),
        (lambda: optim.linear_schedule(1.0, 0.0, BIG), lambda t: 1.0 - min(t, BIG) / BIG),
        (lambda: optim.exponential_decay(1.0, 0.5, BIG), lambda t: 0.5 ** (t / BIG)),
        (
            lambda: optim.warmup_cosine_decay(1.0, 10**9, BIG),
            lambda t: (
                t / 10**9
                if t < 10**9
                else 0.5 * (1 + math.cos(math.pi * min(t - 10**9, BIG - 10**9) / (BIG - 10**9)))
            ),
        ),
        (lambda: optim.piecewise_constant([BIG], [1.0, 2.0]), lambda t: 1.0 if t < BIG else 2.0),
    ],
    ids=["cosine", "linear", "exponential", "warmup_cosine", "piecewise"],
)
def test_any_python_int_step_count_works(build, closed_form):
    # optax.cosine_decay_schedule(1000., 10**10)(10**9) raises OverflowError; funcnn must not.
    schedule = build()
    for t in (0, 10**9, 3 * 10**9, BIG, 2 * BIG):
        np.testing.assert_allclose(float(schedule(t)), closed_form(t), rtol=1e-5, atol=1e-6)
    counter = jnp.asarray(2**31 - 1, jnp.int32)  # the int32 counter at its maximum
    np.testing.assert_allclose(
        float(jax.jit(schedule)(counter)), closed_form(2**31 - 1), rtol=1e-5, atol=1e-6
    )


def test_the_step_counter_saturates_at_int32_max_instead_of_wrapping():
    from funcnn.optim.base import safe_increment

    top = jnp.asarray(2**31 - 1, jnp.int32)
    assert int(safe_increment(top)) == 2**31 - 1
    assert int(safe_increment(top - 1)) == 2**31 - 1
    assert safe_increment(top).dtype == jnp.int32
    # Through an optimizer: a state at the limit keeps the limit and a finite learning rate.
    opt = optim.sgd(optim.cosine_decay(1.0, 100))
    params = {"w": jnp.ones(2)}
    state = opt.init(params)
    state = jax.tree.map(
        lambda x: jnp.full_like(x, 2**31 - 1) if x.dtype == jnp.int32 else x, state
    )
    _, state = opt.update({"w": jnp.ones(2)}, state, params)
    counts = [x for x in jax.tree.leaves(state) if x.dtype == jnp.int32]
    assert counts and all(int(c) == 2**31 - 1 for c in counts)


def test_deliberate_differences_from_optax_are_stated_beside_optax_behaviour():
    """Where funcnn differs from optax on purpose, the docstring says what optax does."""
    from funcnn.optim import base, schedules, wrappers

    assert "optax returns a constant schedule" in schedules.__doc__
    assert "Strict where optax is lenient" in base.apply_updates.__doc__
    doc = " ".join(wrappers.skip_nonfinite.__doc__.split())
    assert "optax's `apply_if_finite`" in doc and "optax *applies* the non-finite update" in doc
