"""Schedules against their float64 transcriptions in funcnn.reference, evaluated on traced
int32 steps inside jit (one vmap over all steps per schedule), plus build-time validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.reference import optim as ref
from funcnn.reference import schedules as rs

STEPS = np.arange(0, 130, dtype=np.int32)

CASES = {
    "constant": (optim.constant(0.3), ref.schedule_constant(0.3)),
    "linear": (optim.linear_schedule(1.0, 0.1, 50), ref.schedule_linear(1.0, 0.1, 50)),
    "linear_warmup": (optim.linear_warmup(2.0, 10, 0.5), ref.schedule_linear_warmup(2.0, 10, 0.5)),
    "cosine": (optim.cosine_decay(1.0, 100, 0.1), ref.schedule_cosine_decay(1.0, 100, 0.1)),
    "warmup_cosine": (
        optim.warmup_cosine_decay(0.1, 1.0, 20, 100, end_value=0.05),
        ref.schedule_warmup_cosine_decay(1.0, 20, 100, end_value=0.05, init_value=0.1),
    ),
    "warmup_cosine_exponent_no_warmup": (
        optim.warmup_cosine_decay_schedule(0.3, 1.0, 0, 100, 0.05, exponent=2.0),
        rs.schedule_warmup_cosine(0.3, 1.0, 0, 100, 0.05, exponent=2.0),
    ),
    "exponential": (
        optim.exponential_decay(1.0, 30, 0.5),
        ref.schedule_exponential_decay(1.0, 0.5, 30),
    ),
    "exponential_staircase": (
        optim.exponential_decay(1.0, 30, 0.5, staircase=True),
        ref.schedule_exponential_decay(1.0, 0.5, 30, staircase=True),
    ),
    "exponential_begin_floor": (
        optim.exponential_decay(1.0, 10, 0.5, transition_begin=15, end_value=0.05),
        rs.schedule_exponential_decay_from(1.0, 10, 0.5, 15, end_value=0.05),
    ),
    "exponential_growth_ceiling": (
        optim.exponential_decay(0.1, 20, 2.0, 0, True, end_value=0.5),
        rs.schedule_exponential_decay_from(0.1, 20, 2.0, 0, True, 0.5),
    ),
    "piecewise": (
        optim.piecewise_constant([10, 40], [1.0, 0.5, 0.1]),
        ref.schedule_piecewise_constant([10, 40], [1.0, 0.5, 0.1]),
    ),
    "piecewise_scales": (
        optim.piecewise_constant_schedule(2.0, {40: 0.1, 10: 0.5}),
        rs.schedule_piecewise_constant_scales(2.0, {40: 0.1, 10: 0.5}),
    ),
    "linear_begin": (
        optim.linear_schedule(1.0, 0.1, 50, transition_begin=20),
        rs.schedule_linear_from(1.0, 0.1, 50, 20),
    ),
    "polynomial": (
        optim.polynomial_schedule(1.0, 0.01, 2.0, 100, transition_begin=5),
        rs.schedule_polynomial(1.0, 0.01, 2.0, 100, 5),
    ),
    "cosine_decay_schedule": (
        optim.cosine_decay_schedule(2.0, 90, alpha=0.1, exponent=1.5),
        rs.schedule_warmup_cosine(2.0, 2.0, 0, 90, end_value=0.2, exponent=1.5),
    ),
    "join": (
        optim.join_schedules([optim.constant(0.5), optim.linear_schedule(1.0, 0.0, 40)], [30]),
        rs.schedule_join([lambda t: 0.5, rs.schedule_linear_from(1.0, 0.0, 40)], [30]),
    ),
    "interpolate_linear": (
        optim.piecewise_interpolate_schedule("linear", 1.0, {20: 3.0, 60: 0.1, 61: 0.5}),
        rs.schedule_piecewise_interpolate("linear", 1.0, {20: 3.0, 60: 0.1, 61: 0.5}),
    ),
    "interpolate_cosine": (
        optim.piecewise_interpolate_schedule("cosine", 1.0, {0: 2.0, 20: 3.0, 90: 0.01}),
        rs.schedule_piecewise_interpolate("cosine", 1.0, {0: 2.0, 20: 3.0, 90: 0.01}),
    ),
    "cosine_onecycle": (
        optim.cosine_onecycle_schedule(100, 1.0, 0.25, 10.0, 100.0),
        rs.schedule_cosine_onecycle(100, 1.0, 0.25, 10.0, 100.0),
    ),
    "linear_onecycle": (
        optim.linear_onecycle_schedule(110, 1.0),
        rs.schedule_linear_onecycle(110, 1.0),
    ),
    "sgdr": (
        optim.sgdr_schedule(
            [
                dict(
                    init_value=0.1, peak_value=1.0, warmup_steps=5, decay_steps=30, end_value=0.01
                ),
                dict(init_value=0.0, peak_value=0.5, warmup_steps=0, decay_steps=60, exponent=2.0),
            ]
        ),
        rs.schedule_sgdr(
            [
                dict(
                    init_value=0.1, peak_value=1.0, warmup_steps=5, decay_steps=30, end_value=0.01
                ),
                dict(init_value=0.0, peak_value=0.5, warmup_steps=0, decay_steps=60, exponent=2.0),
            ]
        ),
    ),
    "warmup_constant": (
        optim.warmup_constant_schedule(0.1, 1.0, 25),
        rs.schedule_linear_from(0.1, 1.0, 25),
    ),
    "warmup_exponential": (
        optim.warmup_exponential_decay_schedule(0.0, 1.0, 10, 20, 0.5, 5, False, 0.1),
        rs.schedule_warmup_exponential_decay(0.0, 1.0, 10, 20, 0.5, 5, False, 0.1),
    ),
    **{
        f"wsd_{kind}": (
            optim.warmup_stable_decay_schedule(0.1, 1.0, 10, 50, 40, 0.01, cooldown_type=kind),
            rs.schedule_warmup_stable_decay(0.1, 1.0, 10, 50, 40, 0.01, cooldown_type=kind),
        )
        for kind in ("linear", "cosine", "1-sqrt")
    },
    "wsd_no_warmup": (
        optim.warmup_stable_decay_schedule(0.0, 1.0, 0, 0, 100),
        rs.schedule_warmup_stable_decay(0.0, 1.0, 0, 0, 100),
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
    schedule = optim.warmup_cosine_decay(0.2, 1.0, 10, 110, end_value=0.1)
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
    schedule = optim.warmup_cosine_decay(0.0, 1.0, 10, 100)
    assert schedule(jnp.int32(3)).dtype == jnp.float32
    with jax.enable_x64(True):
        assert schedule(jnp.int32(3)).dtype == jnp.float64


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: optim.linear_schedule(1.0, 0.0, 0), ValueError, "transition_steps=0"),
        (lambda: optim.cosine_decay(1.0, -5), ValueError, "decay_steps=-5"),
        (lambda: optim.warmup_cosine_decay(0.0, 1.0, -1, 100), ValueError, "warmup_steps=-1"),
        (lambda: optim.warmup_cosine_decay(0, 1, 10, 10), ValueError, "must exceed warmup_steps"),
        (lambda: optim.warmup_cosine_decay(0, 1.0, 10, 2.5), TypeError, "decay_steps"),
        (lambda: optim.warmup_cosine_decay(0, 1, 1, 9, exponent=0), ValueError, "exponent"),
        (lambda: optim.linear_warmup(1.0, -1), ValueError, "transition_steps=-1"),
        (lambda: optim.linear_schedule(1, 0, 5, -1), ValueError, "transition_begin=-1"),
        (lambda: optim.exponential_decay(1.0, 10, 0.0), ValueError, "decay_rate"),
        (lambda: optim.exponential_decay(1.0, 0, 0.5), ValueError, "transition_steps=0"),
        (lambda: optim.exponential_decay(1.0, 5, 0.5, 0, 1), TypeError, "staircase"),
        (lambda: optim.polynomial_schedule(1.0, 0.0, 0.0, 10), ValueError, "power"),
        (lambda: optim.join_schedules([optim.constant(1)], [5]), ValueError, "len\\(boundaries"),
        (lambda: optim.join_schedules([1.0, 2.0], [5]), TypeError, r"schedules\[0\]"),
        (
            lambda: optim.join_schedules([optim.constant(1)] * 3, [5, 5]),
            ValueError,
            "strictly increasing",
        ),
        (lambda: optim.piecewise_interpolate_schedule("cos", 1.0), ValueError, "interpolate_type"),
        (
            lambda: optim.piecewise_interpolate_schedule("linear", 1.0, {5: -0.1}),
            ValueError,
            "scale at step 5",
        ),
        (lambda: optim.piecewise_constant_schedule(1.0, [(5, 0.1)]), TypeError, "dict"),
        (lambda: optim.cosine_onecycle_schedule(0, 1.0), ValueError, "transition_steps=0"),
        (lambda: optim.cosine_onecycle_schedule(10, 1.0, 1.0), ValueError, "pct_start"),
        (lambda: optim.linear_onecycle_schedule(10, 1.0, 0.5, 0.55), ValueError, "at least one"),
        (lambda: optim.cosine_onecycle_schedule(10, 1.0, div_factor=0), ValueError, "div_factor"),
        (lambda: optim.sgdr_schedule([]), ValueError, "at least one cycle"),
        (lambda: optim.sgdr_schedule([{"peak_value": 1.0}]), TypeError, "decay_steps"),
        (lambda: optim.warmup_constant_schedule(0.0, 1.0, 0), ValueError, "transition_steps=0"),
        (
            lambda: optim.warmup_stable_decay_schedule(0, 1, 5, 5, 0),
            ValueError,
            "cooldown_steps=0",
        ),
        (
            lambda: optim.warmup_stable_decay_schedule(0, 1, 5, 5, 5, cooldown_type="sqrt"),
            ValueError,
            "cooldown_type",
        ),
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
        (lambda: optim.exponential_decay(1.0, BIG, 0.5), lambda t: 0.5 ** (t / BIG)),
        (
            lambda: optim.warmup_cosine_decay(0.0, 1.0, 10**9, BIG),
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


# ------------------------------------------------------- optax's calls work unchanged (#19)


def test_an_optax_style_positional_call_means_what_it_means_in_optax():
    """optax: warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps,
    end_value) and exponential_decay(init_value, transition_steps, decay_rate). These calls
    used to fail (funcnn took peak, warmup, decay, end, init and init, rate, steps)."""
    wcd = optim.warmup_cosine_decay(0.1, 1.0, 10, 50, 0.05)
    reference = ref.schedule_warmup_cosine_decay(1.0, 10, 50, end_value=0.05, init_value=0.1)
    assert optim.warmup_cosine_decay_schedule is optim.warmup_cosine_decay
    for t in (0, 5, 10, 30, 50, 80):
        assert float(wcd(t)) == pytest.approx(reference(t), rel=1e-6)
    exp = optim.exponential_decay(1.0, 100, 0.5)
    assert float(exp(100)) == pytest.approx(0.5) and float(exp(200)) == pytest.approx(0.25)


# ------------------------------------------- PyTorch's lr_scheduler, as funcnn schedules
# Each funcnn expression of the module docstring's table against a float64 transcription of
# torch's own formula (funcnn.reference.schedules.torch_*); benchmarks/oracles checks torch.
ETA = 0.2
TORCH_EQUIVALENTS = {
    "OneCycleLR": (
        optim.piecewise_interpolate_schedule("cosine", ETA / 25, {29: 25.0, 99: 1 / 25e4}),
        rs.torch_one_cycle_lr(ETA, 100, pct_start=0.3),
        100,
    ),
    "OneCycleLR_linear_three_phase": (
        optim.piecewise_interpolate_schedule("linear", ETA / 10, {24: 10.0, 48: 0.1, 99: 1 / 100}),
        rs.torch_one_cycle_lr(ETA, 100, 0.25, "linear", 10.0, 100.0, three_phase=True),
        100,
    ),
    "CyclicLR": (
        optim.join_schedules(
            [optim.linear_schedule(0.01, ETA, 10), optim.linear_schedule(ETA, 0.01, 15)] * 5,
            [10, 25, 35, 50, 60, 75, 85, 100, 110],
        ),
        rs.torch_cyclic_lr(0.01, ETA, step_size_up=10, step_size_down=15),
        125,
    ),
    "CosineAnnealingWarmRestarts": (
        optim.sgdr_schedule(
            [
                dict(
                    init_value=ETA,
                    peak_value=ETA,
                    warmup_steps=0,
                    decay_steps=10 * 2**i,
                    end_value=0.001,
                )
                for i in range(4)
            ]
        ),
        rs.torch_cosine_annealing_warm_restarts(ETA, T_0=10, T_mult=2, eta_min=0.001),
        150,
    ),
    "SequentialLR": (
        optim.join_schedules(
            [optim.linear_schedule(ETA * 0.1, ETA, 10), optim.exponential_decay(ETA, 1, 0.95)],
            [10],
        ),
        rs.torch_sequential_lr(
            [lambda t: ETA * (0.1 + 0.9 * min(t, 10) / 10), lambda t: ETA * 0.95**t], [10]
        ),
        130,
    ),
    "PolynomialLR": (
        optim.polynomial_schedule(ETA, 0.0, 2.0, 40),
        rs.torch_polynomial_lr(ETA, total_iters=40, power=2.0),
        130,
    ),
}


@pytest.mark.parametrize("name", list(TORCH_EQUIVALENTS))
def test_the_documented_funcnn_schedule_equals_pytorchs(name):
    schedule, torch_formula, steps = TORCH_EQUIVALENTS[name]
    assert name.split("_")[0] in optim.schedules.__doc__
    with jax.enable_x64(True):
        got = jax.jit(jax.vmap(schedule))(jnp.arange(steps, dtype=jnp.int32))
    expected = [torch_formula(t) for t in range(steps)]
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-15)


def test_reduce_on_plateau_is_named_in_the_table():
    assert "`ReduceLROnPlateau` → not a schedule" in optim.schedules.__doc__
    assert "reduce_on_plateau" in optim.schedules.__doc__


# ------------------------------------- a schedule that returns no number is named (#24)


@pytest.mark.parametrize("value", [None, "0.1", 1j, True], ids=["None", "str", "complex", "bool"])
def test_a_schedule_returning_something_else_than_a_number_is_named_at_build(value):
    with pytest.raises(TypeError, match=r"learning_rate schedule must return a real number"):
        optim.sgd(lambda step: value)
