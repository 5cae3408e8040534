"""Learning-rate schedules: plain functions `step -> value`, jittable.

`step` is the number of updates already applied (an int32 scalar, possibly traced): the
first update uses schedule(0). Values are computed in the default float dtype (float32, or
float64 with x64 enabled); `scale_by_learning_rate` casts them to each leaf's dtype. Step
counts are validated when the schedule is built (zero or negative counts raise).

Bad counts are errors, on purpose: optax returns a constant schedule (with a logged warning)
for `decay_steps <= 0`; funcnn raises a ValueError naming the argument, since a schedule
that silently never decays is a bug in the caller's arithmetic.

Large counts: every step count a schedule is built with — and a Python-int `step` — enters
the computation as a float, never as an int32 array, so any positive int works
(`cosine_decay(1e3, 10**10)(10**9)`; optax raises OverflowError there). The optimizers'
step counter is int32 and *saturates* at 2³¹ − 1 (`optim.base.safe_increment`): after
2,147,483,647 updates the schedule keeps receiving that last step instead of wrapping to
−2³¹.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcnn._validation import check_positive_int
from funcnn.optim.base import Schedule, check_hyperparameter

__all__ = [
    "constant",
    "cosine_decay",
    "exponential_decay",
    "linear_schedule",
    "linear_warmup",
    "piecewise_constant",
    "warmup_cosine_decay",
]


def _time(step) -> jax.Array:
    """The step as a float scalar of the default float dtype (a Python int of any size is
    converted on the host, so 10**10 does not overflow an int32)."""
    if isinstance(step, int):
        step = float(step)
    return jnp.asarray(step).astype(jnp.result_type(float))


def _count(value, name: str) -> float:
    """A positive int step count, as a float (see the module docstring: no int32 overflow)."""
    return float(check_positive_int(value, name))


def _real(value, name: str) -> float:
    return check_hyperparameter(value, name, low=-math.inf)


def constant(value: float) -> Schedule:
    """ηₜ = value for every t."""
    value = _real(value, "value")
    return lambda step: jnp.full([], value, jnp.result_type(float))


def linear_schedule(init_value: float, end_value: float, transition_steps: int) -> Schedule:
    """ηₜ = a + (b − a)·min(t, T)/T with a = init_value, b = end_value, T = transition_steps.

    Reaches b at t = T and stays there (optax's `linear_schedule`).
    """
    a, b = _real(init_value, "init_value"), _real(end_value, "end_value")
    steps = _count(transition_steps, "transition_steps")

    def schedule(step):
        fraction = jnp.clip(_time(step) / steps, 0.0, 1.0)
        return a + (b - a) * fraction

    return schedule


def linear_warmup(peak_value: float, warmup_steps: int, init_value: float = 0.0) -> Schedule:
    """ηₜ = a + (p − a)·min(t, W)/W: rise linearly from a = init_value to p = peak_value over
    W = warmup_steps updates, then stay at p."""
    return linear_schedule(init_value, peak_value, warmup_steps)


def cosine_decay(init_value: float, decay_steps: int, end_value: float = 0.0) -> Schedule:
    """ηₜ = e + (η₀ − e)·½·(1 + cos(π·min(t, T)/T)) with T = decay_steps, e = end_value.

    optax's `cosine_decay_schedule(init_value, T, alpha)` is this with e = alpha·η₀.
    PyTorch's `CosineAnnealingLR(T_max=T, eta_min=e)` agrees for t ≤ T but rises again after.
    """
    eta0, e = _real(init_value, "init_value"), _real(end_value, "end_value")
    steps = _count(decay_steps, "decay_steps")

    def schedule(step):
        progress = jnp.minimum(_time(step), steps) / steps
        return e + (eta0 - e) * 0.5 * (1 + jnp.cos(math.pi * progress))

    return schedule


def warmup_cosine_decay(
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    init_value: float = 0.0,
) -> Schedule:
    """Linear warmup to the peak, then half a cosine down to `end_value`:

        ηₜ = a + (p − a)·t/W                                    for t < W
        ηₜ = e + (p − e)·½·(1 + cos(π·min(t − W, T − W)/(T − W)))   for t ≥ W

    a = init_value, p = peak_value, e = end_value, W = warmup_steps ≥ 1, T = decay_steps > W.
    T counts the whole schedule, warmup included (optax's convention; some PyTorch recipes
    count only the decay phase). ηₜ = e for t ≥ T. For no warmup use `cosine_decay`.

    >>> from funcnn.optim import warmup_cosine_decay
    >>> schedule = warmup_cosine_decay(1.0, warmup_steps=2, decay_steps=6, init_value=0.5)
    >>> [round(float(schedule(t)), 4) for t in range(8)]
    [0.5, 0.75, 1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    """
    p = _real(peak_value, "peak_value")
    warmup = check_positive_int(warmup_steps, "warmup_steps")
    total = check_positive_int(decay_steps, "decay_steps")
    if total <= warmup:
        raise ValueError(
            f"decay_steps counts the whole schedule including warmup, so it must exceed "
            f"warmup_steps; got decay_steps={total}, warmup_steps={warmup}."
        )
    rise = linear_schedule(init_value, p, warmup)
    fall = cosine_decay(p, total - warmup, end_value)

    def schedule(step):
        t = _time(step)
        return jnp.where(t < warmup, rise(t), fall(t - warmup))

    return schedule


def exponential_decay(
    init_value: float, decay_rate: float, transition_steps: int, *, staircase: bool = False
) -> Schedule:
    """ηₜ = η₀·r^(t/T)  (or r^⌊t/T⌋ with staircase) for r = decay_rate > 0, T = transition_steps.

    Same as optax's `exponential_decay` and TF's `ExponentialDecay`; PyTorch's
    `ExponentialLR(gamma)` is the staircase form with T = 1 (stepped per epoch).
    """
    eta0 = _real(init_value, "init_value")
    rate = check_hyperparameter(decay_rate, "decay_rate", low_inclusive=False)
    steps = _count(transition_steps, "transition_steps")

    def schedule(step):
        exponent = _time(step) / steps
        if staircase:
            exponent = jnp.floor(exponent)
        return eta0 * rate**exponent

    return schedule


def piecewise_constant(boundaries: Sequence[int], values: Sequence[float]) -> Schedule:
    """ηₜ = values[k] where k = #{i : t ≥ boundaries[i]}; len(values) = len(boundaries) + 1.

    So values[0] is used for t < boundaries[0], values[1] from t = boundaries[0] on, etc.
    (optax switches at the same step; TF's `PiecewiseConstantDecay` switches one step later,
    for t > boundary.) Boundaries are strictly increasing positive ints.
    """
    boundaries = [check_positive_int(b, f"boundaries[{i}]") for i, b in enumerate(boundaries)]
    values = [_real(v, f"values[{i}]") for i, v in enumerate(values)]
    if len(values) != len(boundaries) + 1:
        raise ValueError(
            f"piecewise_constant needs len(values) == len(boundaries) + 1, got "
            f"{len(values)} values and {len(boundaries)} boundaries."
        )
    if any(b1 >= b2 for b1, b2 in itertools.pairwise(boundaries)):
        raise ValueError(f"boundaries must be strictly increasing, got boundaries={boundaries}.")

    floats = [float(b) for b in boundaries]

    def schedule(step):
        t = _time(step)
        index = jnp.sum(t >= jnp.asarray(floats, t.dtype)) if boundaries else 0
        return jnp.asarray(values, jnp.result_type(float))[index]

    return schedule
