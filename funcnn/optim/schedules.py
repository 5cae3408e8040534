"""Learning-rate schedules: plain functions `step -> value`, jittable.

`step` is the number of updates already applied (an int32 scalar, possibly traced): the
first update uses schedule(0). Values are computed in the default float dtype (float32, or
float64 with x64 enabled); `scale_by_learning_rate` casts them to each leaf's dtype. Step
counts are validated when the schedule is built (zero or negative counts raise).

Names and arguments follow optax wherever optax has the schedule — same function name,
same argument names, same positional order, same defaults — so an optax call works
unchanged: `warmup_cosine_decay(init_value, peak_value, warmup_steps, decay_steps,
end_value=0.0, exponent=1.0)` (also reachable as optax's `warmup_cosine_decay_schedule`),
`exponential_decay(init_value, transition_steps, decay_rate, transition_begin=0,
staircase=False, end_value=None)`, `linear_schedule`, `polynomial_schedule`,
`cosine_decay_schedule`, `piecewise_constant_schedule`, `piecewise_interpolate_schedule`,
`join_schedules`, `cosine_onecycle_schedule`, `linear_onecycle_schedule`, `sgdr_schedule`,
`warmup_constant_schedule`, `warmup_exponential_decay_schedule`, `constant_schedule`.
funcnn's own: `constant`, `cosine_decay(init_value, decay_steps, end_value=0.0)` (an end
*value*, where optax's `cosine_decay_schedule` takes a fraction `alpha`), `linear_warmup`,
`piecewise_constant(boundaries, values)` (absolute values, TF's form) and
`warmup_stable_decay_schedule` (the trapezoid of modern LLM runs, in neither peer).

Bad counts are errors, on purpose: optax returns a constant schedule (with a logged warning)
for `decay_steps <= 0`; funcnn raises a ValueError naming the argument, since a schedule
that silently never decays is a bug in the caller's arithmetic.

Large counts: every step count a schedule is built with — and a Python-int `step` — enters
the computation as a float, never as an int32 array, so any positive int works
(`cosine_decay(1e3, 10**10)(10**9)`; optax raises OverflowError there). The optimizers'
step counter is int32 and *saturates* at 2³¹ − 1 (`optim.base.safe_increment`): after
2,147,483,647 updates the schedule keeps receiving that last step instead of wrapping to
−2³¹.

PyTorch's `torch.optim.lr_scheduler`, schedule by schedule (η = the optimizer's lr; each
row is tested for equal values against a float64 transcription of torch's formula in
`funcnn.reference.schedules`, and against torch itself in
`benchmarks/oracles/losses_activations.py`):

PyTorch → funcnn:

* `OneCycleLR(max_lr=p, total_steps=N, pct_start=s, div_factor=d, final_div_factor=f)`
  → `piecewise_interpolate_schedule("cosine", p/d, {s·N − 1: d, N − 1: 1/(d·f)})`.
  (`cosine_onecycle_schedule(N, p, s, d, f)` is optax's one-cycle: it peaks at ⌊s·N⌋ and
  ends at N, one step later than torch.)
* `OneCycleLR(..., anneal_strategy="linear", three_phase=True)`
  → `piecewise_interpolate_schedule("linear", p/d, {s·N − 1: d, 2s·N − 2: 1/d, N − 1: 1/f})`
  (`linear_onecycle_schedule` is optax's, again one step later).
* `CyclicLR(base_lr=a, max_lr=b, step_size_up=u, step_size_down=v)` (triangular)
  → `join_schedules([linear_schedule(a, b, u), linear_schedule(b, a, v)] * n,
  [u, u + v, 2u + v, …])` for n cycles (torch also cycles momentum by default).
* `CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)` → `sgdr_schedule([dict(init_value=η,
  peak_value=η, warmup_steps=0, decay_steps=T_0·T_multⁱ, end_value=eta_min) for i in
  range(n)])`.
* `ReduceLROnPlateau` → not a schedule (it reads the loss): the optimizer wrapper
  `reduce_on_plateau`.
* `SequentialLR(schedulers, milestones)` → `join_schedules(schedules, milestones)`.
* `PolynomialLR(total_iters=T, power=k)` → `polynomial_schedule(η, 0.0, k, T)`.
* `LinearLR(start_factor=a, end_factor=b, total_iters=T)` → `linear_schedule(a·η, b·η, T)`.
* `StepLR(step_size=k, gamma=γ)` → `exponential_decay(η, k, γ, staircase=True)`;
  `ExponentialLR(γ)` → `exponential_decay(η, 1, γ)`.
* `MultiStepLR(milestones, gamma=γ)` → `piecewise_constant_schedule(η, {m: γ …})`.
* `CosineAnnealingLR(T_max=T, eta_min=e)` → `cosine_decay(η, T, e)` (torch rises again
  after T; funcnn stays at e).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from funcnn._validation import check_choice, check_nonnegative_int, check_positive_int
from funcnn.optim.base import Schedule, check_hyperparameter

__all__ = [
    "constant",
    "constant_schedule",
    "cosine_decay",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "linear_warmup",
    "piecewise_constant",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "warmup_stable_decay_schedule",
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


def _positive(value, name: str) -> float:
    return check_hyperparameter(value, name, low_inclusive=False)


def constant(value: float) -> Schedule:
    """ηₜ = value for every t (optax's `constant_schedule`)."""
    value = _real(value, "value")
    return lambda step: jnp.full([], value, jnp.result_type(float))


constant_schedule = constant  # optax's name


def polynomial_schedule(
    init_value: float,
    end_value: float,
    power: float,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    """ηₜ = (a − b)·(1 − τ)ᵏ + b,  τ = clip(t − B, 0, T)/T  (optax's `polynomial_schedule`).

    a = init_value, b = end_value, k = power > 0, T = transition_steps ≥ 1,
    B = transition_begin ≥ 0: ηₜ = a for t ≤ B, reaches b at t = B + T and stays there.
    PyTorch's `PolynomialLR(total_iters=T, power=k)` is `polynomial_schedule(η, 0.0, k, T)`.
    """
    a, b = _real(init_value, "init_value"), _real(end_value, "end_value")
    k = _positive(power, "power")
    steps = _count(transition_steps, "transition_steps")
    begin = float(check_nonnegative_int(transition_begin, "transition_begin"))

    def schedule(step):
        fraction = jnp.clip(_time(step) - begin, 0.0, steps) / steps
        return (a - b) * (1 - fraction) ** k + b

    return schedule


def linear_schedule(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """ηₜ = a + (b − a)·τ,  τ = clip(t − B, 0, T)/T  with a = init_value, b = end_value,
    T = transition_steps ≥ 1, B = transition_begin ≥ 0.

    Stays at a until t = B, reaches b at t = B + T and stays there (optax's
    `linear_schedule`; PyTorch's `LinearLR(start_factor, end_factor, total_iters)` is
    `linear_schedule(start_factor·η, end_factor·η, total_iters)`).
    """
    a, b = _real(init_value, "init_value"), _real(end_value, "end_value")
    steps = _count(transition_steps, "transition_steps")
    begin = float(check_nonnegative_int(transition_begin, "transition_begin"))

    def schedule(step):
        fraction = jnp.clip(_time(step) - begin, 0.0, steps) / steps
        return a + (b - a) * fraction

    return schedule


def linear_warmup(peak_value: float, warmup_steps: int, init_value: float = 0.0) -> Schedule:
    """ηₜ = a + (p − a)·min(t, W)/W: rise linearly from a = init_value to p = peak_value over
    W = warmup_steps updates, then stay at p. (funcnn's own; optax's
    `warmup_constant_schedule(init_value, peak_value, warmup_steps)` is the same schedule.)"""
    return linear_schedule(init_value, peak_value, warmup_steps)


def _cosine_fall(peak: float, end: float, steps: float, exponent: float) -> Schedule:
    """e + (p − e)·(½·(1 + cos(π·min(t, T)/T)))ᵏ — the half cosine every cosine schedule uses."""

    def schedule(step):
        progress = jnp.clip(_time(step), 0.0, steps) / steps
        return end + (peak - end) * (0.5 * (1 + jnp.cos(math.pi * progress))) ** exponent

    return schedule


def cosine_decay(init_value: float, decay_steps: int, end_value: float = 0.0) -> Schedule:
    """ηₜ = e + (η₀ − e)·½·(1 + cos(π·min(t, T)/T)) with T = decay_steps, e = end_value.

    optax's `cosine_decay_schedule(init_value, T, alpha)` is this with e = alpha·η₀ (also
    available here under that name, with optax's arguments).
    PyTorch's `CosineAnnealingLR(T_max=T, eta_min=e)` agrees for t ≤ T but rises again after.
    """
    eta0, e = _real(init_value, "init_value"), _real(end_value, "end_value")
    return _cosine_fall(eta0, e, _count(decay_steps, "decay_steps"), 1.0)


def cosine_decay_schedule(
    init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
) -> Schedule:
    """ηₜ = η₀·((1 − α)·(½·(1 + cos(π·min(t, T)/T)))ᵏ + α)  (optax's `cosine_decay_schedule`).

    α = alpha is the final value as a fraction of η₀ = init_value; T = decay_steps ≥ 1;
    k = exponent > 0. `cosine_decay(η₀, T, end_value=α·η₀)` is the same for k = 1.
    """
    eta0, a = _real(init_value, "init_value"), _real(alpha, "alpha")
    k = _positive(exponent, "exponent")
    return _cosine_fall(eta0, a * eta0, _count(decay_steps, "decay_steps"), k)


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """ηₜ = s_i(t − b_{i−1}) for b_{i−1} ≤ t < b_i  (b₋₁ = 0): each schedule restarts its
    own count at its boundary (optax's `join_schedules`; PyTorch's `SequentialLR`).

    len(boundaries) = len(schedules) − 1; boundaries are strictly increasing ints ≥ 0.
    """
    schedules = list(schedules)
    if not schedules:
        raise ValueError("join_schedules needs at least one schedule, got schedules=[].")
    for i, s in enumerate(schedules):
        if not callable(s):
            raise TypeError(
                f"join_schedules: schedules[{i}] must be a schedule (a function step -> value), "
                f"got {s!r} ({type(s).__name__})."
            )
    bounds = [check_nonnegative_int(b, f"boundaries[{i}]") for i, b in enumerate(boundaries)]
    if len(bounds) != len(schedules) - 1:
        raise ValueError(
            f"join_schedules needs len(boundaries) == len(schedules) − 1, got "
            f"{len(bounds)} boundaries for {len(schedules)} schedules."
        )
    if any(b1 >= b2 for b1, b2 in itertools.pairwise(bounds)):
        raise ValueError(f"boundaries must be strictly increasing, got boundaries={bounds}.")

    def schedule(step):
        t = _time(step)
        value = jnp.asarray(schedules[0](t))
        for boundary, later in zip(bounds, schedules[1:], strict=True):
            value = jnp.where(t < boundary, value, jnp.asarray(later(t - float(boundary))))
        return value

    return schedule


def warmup_cosine_decay(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Linear warmup to the peak, then half a cosine down to `end_value`:

        ηₜ = a + (p − a)·t/W                                         for t < W
        ηₜ = e + (p − e)·(½·(1 + cos(π·min(t − W, T − W)/(T − W))))ᵏ   for t ≥ W

    a = init_value, p = peak_value, e = end_value, W = warmup_steps ≥ 0 (0: no warmup),
    T = decay_steps > W, k = exponent > 0. T counts the whole schedule, warmup included
    (optax's convention and argument order — this is optax's `warmup_cosine_decay_schedule`;
    some PyTorch recipes count only the decay phase). ηₜ = e for t ≥ T. (optax ignores e
    when p = 0; here the formula holds for every p.)

    >>> from funcnn.optim import warmup_cosine_decay
    >>> schedule = warmup_cosine_decay(0.5, 1.0, warmup_steps=2, decay_steps=6)
    >>> [round(float(schedule(t)), 4) for t in range(8)]
    [0.5, 0.75, 1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    """
    p = _real(peak_value, "peak_value")
    warmup = check_nonnegative_int(warmup_steps, "warmup_steps")
    total = check_positive_int(decay_steps, "decay_steps")
    if total <= warmup:
        raise ValueError(
            f"decay_steps counts the whole schedule including warmup, so it must exceed "
            f"warmup_steps; got decay_steps={total}, warmup_steps={warmup}."
        )
    k = _positive(exponent, "exponent")
    fall = _cosine_fall(p, _real(end_value, "end_value"), float(total - warmup), k)
    if warmup == 0:
        _real(init_value, "init_value")
        return fall
    return join_schedules([linear_schedule(init_value, p, warmup), fall], [warmup])


warmup_cosine_decay_schedule = warmup_cosine_decay  # optax's name


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """ηₜ = η₀·r^(τ/T)  (or r^⌊τ/T⌋ with staircase),  τ = max(t − B, 0)  (optax's
    `exponential_decay`, same order: init_value, transition_steps, decay_rate, …).

    r = decay_rate > 0, T = transition_steps ≥ 1, B = transition_begin ≥ 0. With
    `end_value` e, the value is clipped at e: ηₜ = max(ηₜ, e) for r < 1 (a floor), min for
    r > 1 (a ceiling). Also TF's `ExponentialDecay`; PyTorch's `ExponentialLR(γ)` is
    `exponential_decay(η, 1, γ)` and `StepLR(k, γ)` is `exponential_decay(η, k, γ,
    staircase=True)`. (optax accepts r = 0 and returns a constant; funcnn refuses it.)
    """
    eta0 = _real(init_value, "init_value")
    steps = _count(transition_steps, "transition_steps")
    rate = check_hyperparameter(decay_rate, "decay_rate", low_inclusive=False)
    begin = float(check_nonnegative_int(transition_begin, "transition_begin"))
    if not isinstance(staircase, bool):
        raise TypeError(f"staircase must be a bool, got staircase={staircase!r}.")
    end = None if end_value is None else _real(end_value, "end_value")

    def schedule(step):
        exponent = jnp.maximum(_time(step) - begin, 0.0) / steps
        if staircase:
            exponent = jnp.floor(exponent)
        value = eta0 * rate**exponent
        if end is not None:
            value = jnp.maximum(value, end) if rate < 1 else jnp.minimum(value, end)
        return value

    return schedule


def piecewise_constant(boundaries: Sequence[int], values: Sequence[float]) -> Schedule:
    """ηₜ = values[k] where k = #{i : t ≥ boundaries[i]}; len(values) = len(boundaries) + 1.

    So values[0] is used for t < boundaries[0], values[1] from t = boundaries[0] on, etc.
    (optax switches at the same step; TF's `PiecewiseConstantDecay` switches one step later,
    for t > boundary.) Boundaries are strictly increasing positive ints. optax's form, with
    multiplicative scales, is `piecewise_constant_schedule`.
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


def _boundaries_and_scales(
    boundaries_and_scales: Mapping[int, float] | None, fn: str
) -> tuple[list[int], list[float]]:
    """Sorted (boundaries, scales), each boundary an int ≥ 0 and each scale finite and ≥ 0."""
    if boundaries_and_scales is None:
        return [], []
    if not isinstance(boundaries_and_scales, Mapping):
        raise TypeError(
            f"{fn}: boundaries_and_scales must be a dict {{step: scale}}, got "
            f"{boundaries_and_scales!r} ({type(boundaries_and_scales).__name__})."
        )
    items = sorted(boundaries_and_scales.items())
    bounds = [check_nonnegative_int(b, f"{fn}: boundaries_and_scales key") for b, _ in items]
    scales = [check_hyperparameter(s, f"{fn}: scale at step {b}") for b, s in items]
    return bounds, scales


def piecewise_constant_schedule(
    init_value: float, boundaries_and_scales: Mapping[int, float] | None = None
) -> Schedule:
    """ηₜ = η₀·Π_{b ≤ t} s_b  for boundaries_and_scales = {b: s_b}  (optax's
    `piecewise_constant_schedule`: each scale multiplies in from its step on).

    PyTorch's `MultiStepLR(milestones, gamma=γ)` is `{m: γ for m in milestones}`.
    """
    eta0 = _real(init_value, "init_value")
    bounds, scales = _boundaries_and_scales(boundaries_and_scales, "piecewise_constant_schedule")
    values = [eta0 * math.prod(scales[:i]) for i in range(len(scales) + 1)]

    def schedule(step):
        t = _time(step)
        index = jnp.sum(t >= jnp.asarray(bounds, t.dtype)) if bounds else 0
        return jnp.asarray(values, jnp.result_type(float))[index]

    return schedule


def piecewise_interpolate_schedule(
    interpolate_type: str,
    init_value: float,
    boundaries_and_scales: Mapping[int, float] | None = None,
) -> Schedule:
    """Interpolate between the accumulated values v₀ = η₀, v_i = η₀·s₁·…·s_i, placed at the
    sorted boundaries b₀ = 0 < b₁ < … (optax's `piecewise_interpolate_schedule`):

        ηₜ = v_{i−1} + (v_i − v_{i−1})·τ                   ("linear")
        ηₜ = v_i + (v_{i−1} − v_i)·½·(1 + cos(π·τ))         ("cosine")
        τ = (t − b_{i−1})/(b_i − b_{i−1})  for b_{i−1} ≤ t < b_i;   ηₜ = v_last for t ≥ b_last.

    boundaries_and_scales = {b_i: s_i}: ints b_i ≥ 0 and scales s_i ≥ 0 (so v_i/v_{i−1} = s_i).
    """
    check_choice(interpolate_type, "interpolate_type", ("linear", "cosine"))
    eta0 = _real(init_value, "init_value")
    bounds, scales = _boundaries_and_scales(boundaries_and_scales, "piecewise_interpolate_schedule")
    values = [eta0]
    for s in scales:
        values.append(values[-1] * s)
    knots = [0.0] + [float(b) for b in bounds]

    def schedule(step):
        t = _time(step)
        value = jnp.asarray(values[-1], t.dtype)
        # Walk the segments from last to first: the segment holding t sets the value.
        for i in reversed(range(1, len(knots))):
            start, stop = knots[i - 1], knots[i]
            fraction = (t - start) / max(stop - start, 1.0)
            v0, v1 = values[i - 1], values[i]
            if interpolate_type == "linear":
                inside = v0 + (v1 - v0) * fraction
            else:
                inside = v1 + (v0 - v1) * 0.5 * (1 + jnp.cos(math.pi * fraction))
            value = jnp.where((t >= start) & (t < stop), inside, value)
        return value

    return schedule


def _onecycle_fractions(transition_steps: int, fractions: dict[str, float]) -> list[int]:
    """The boundaries ⌊f·T⌋ of a one-cycle schedule, checked to be strictly increasing and < T."""
    steps = check_positive_int(transition_steps, "transition_steps")
    for name, f in fractions.items():
        check_hyperparameter(f, name, high=1.0, high_inclusive=False)
    bounds = [int(f * steps) for f in fractions.values()]
    if any(b1 >= b2 for b1, b2 in itertools.pairwise([*bounds, steps])):
        raise ValueError(
            f"the one-cycle phases must each last at least one step: with "
            f"transition_steps={steps} and {fractions} the boundaries are {[*bounds, steps]}."
        )
    return bounds


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """Smith's one-cycle with cosine phases (optax's `cosine_onecycle_schedule`):

        from a = p/d at t = 0, a cosine up to p at t = ⌊s·T⌋, a cosine down to a/f at t = T.

    p = peak_value, T = transition_steps, s = pct_start ∈ [0, 1), d = div_factor > 0,
    f = final_div_factor > 0. PyTorch's `OneCycleLR` peaks one step earlier (at s·T − 1)
    and ends at T − 1: see the table in the module docstring.
    """
    (up,) = _onecycle_fractions(transition_steps, {"pct_start": pct_start})
    d, f = _positive(div_factor, "div_factor"), _positive(final_div_factor, "final_div_factor")
    return piecewise_interpolate_schedule(
        "cosine",
        _real(peak_value, "peak_value") / d,
        {up: d, transition_steps: 1.0 / (d * f)},
    )


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """Three linear phases (optax's `linear_onecycle_schedule`): from a = p/d up to p at
    t = ⌊s·T⌋, back down to a at t = ⌊s_f·T⌋, then down to a/f at t = T.

    p = peak_value, T = transition_steps, s = pct_start < s_f = pct_final < 1,
    d = div_factor > 0, f = final_div_factor > 0.
    """
    up, down = _onecycle_fractions(
        transition_steps, {"pct_start": pct_start, "pct_final": pct_final}
    )
    d, f = _positive(div_factor, "div_factor"), _positive(final_div_factor, "final_div_factor")
    return piecewise_interpolate_schedule(
        "linear",
        _real(peak_value, "peak_value") / d,
        {up: d, down: 1.0 / d, transition_steps: 1.0 / f},
    )


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Any]]) -> Schedule:
    """SGD with warm restarts (Loshchilov & Hutter 2017; optax's `sgdr_schedule`): cycles of
    `warmup_cosine_decay(**kwargs)` joined end to end, cycle i lasting kwargs["decay_steps"].

    PyTorch's `CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)` over n cycles is
    `sgdr_schedule([dict(init_value=η, peak_value=η, warmup_steps=0,
    decay_steps=T_0·T_multⁱ, end_value=eta_min) for i in range(n)])`.
    """
    schedules, boundaries, start = [], [], 0
    for i, kwargs in enumerate(cosine_kwargs):
        if not isinstance(kwargs, Mapping) or "decay_steps" not in kwargs:
            raise TypeError(
                f"sgdr_schedule: cosine_kwargs[{i}] must be a dict of warmup_cosine_decay "
                f"arguments with a decay_steps entry, got {kwargs!r}."
            )
        schedules.append(warmup_cosine_decay(**kwargs))
        start += kwargs["decay_steps"]
        boundaries.append(start)
    if not schedules:
        raise ValueError("sgdr_schedule needs at least one cycle, got cosine_kwargs=[].")
    return join_schedules(schedules, boundaries[:-1])


def warmup_constant_schedule(init_value: float, peak_value: float, warmup_steps: int) -> Schedule:
    """ηₜ = a + (p − a)·min(t, W)/W: a linear warmup from a = init_value to p = peak_value over
    W = warmup_steps ≥ 1, then constant (optax's `warmup_constant_schedule`)."""
    return linear_schedule(init_value, peak_value, warmup_steps)


def warmup_exponential_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """A linear warmup from a = init_value to p = peak_value over W = warmup_steps ≥ 0, then
    `exponential_decay(p, transition_steps, decay_rate, transition_begin, staircase,
    end_value)` counted from t = W (optax's `warmup_exponential_decay_schedule`)."""
    warmup = check_nonnegative_int(warmup_steps, "warmup_steps")
    decay = exponential_decay(
        peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
    if warmup == 0:
        _real(init_value, "init_value")
        return decay
    return join_schedules([linear_schedule(init_value, peak_value, warmup), decay], [warmup])


_COOLDOWNS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda tau: 1 - tau,
    "cosine": lambda tau: 0.5 * (1 + jnp.cos(math.pi * tau)),
    "1-sqrt": lambda tau: 1 - jnp.sqrt(tau),
}


def warmup_stable_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    stable_steps: int,
    cooldown_steps: int,
    end_value: float = 0.0,
    cooldown_type: str = "linear",
) -> Schedule:
    """Warmup–stable–decay (WSD, the trapezoid of modern LLM runs; in neither optax nor torch):

        ηₜ = a + (p − a)·t/W                       for t < W                 (warmup)
        ηₜ = p                                     for W ≤ t < W + S         (stable)
        ηₜ = e + (p − e)·c(τ),  τ = min((t − W − S)/C, 1)   for t ≥ W + S     (cooldown)

    c(τ) = 1 − τ ("linear"), ½·(1 + cos(π·τ)) ("cosine") or 1 − √τ ("1-sqrt", Hägele et al.
    2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations").
    a = init_value, p = peak_value, e = end_value, W = warmup_steps ≥ 0, S = stable_steps ≥ 0,
    C = cooldown_steps ≥ 1; here the three arguments are phase *lengths* (the run lasts
    W + S + C steps and stays at e after), unlike `warmup_cosine_decay`'s `decay_steps`.
    """
    a, p, e = (
        _real(init_value, "init_value"),
        _real(peak_value, "peak_value"),
        _real(end_value, "end_value"),
    )
    warmup = float(check_nonnegative_int(warmup_steps, "warmup_steps"))
    stable = float(check_nonnegative_int(stable_steps, "stable_steps"))
    cooldown = _count(cooldown_steps, "cooldown_steps")
    shape = _COOLDOWNS[check_choice(cooldown_type, "cooldown_type", tuple(_COOLDOWNS))]

    def schedule(step):
        t = _time(step)
        rise = a + (p - a) * t / max(warmup, 1.0)
        tau = jnp.clip((t - warmup - stable) / cooldown, 0.0, 1.0)
        fall = e + (p - e) * shape(tau)
        return jnp.where(t < warmup, rise, jnp.where(t < warmup + stable, p, fall))

    return schedule
