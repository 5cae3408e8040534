"""Float64 transcriptions of the schedules added after `funcnn.reference.optim`'s, and of
PyTorch's `torch.optim.lr_scheduler` formulas — plain Python floats, no JAX, no torch.

Each `schedule_*` follows optax's definition (the one `funcnn.optim.schedules` claims); each
`torch_*` is the closed form torch's scheduler computes for the learning rate used by the
update after `t` calls to `scheduler.step()` (t = 0 before the first one), written from
`torch/optim/lr_scheduler.py`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "schedule_cosine_onecycle",
    "schedule_exponential_decay_from",
    "schedule_join",
    "schedule_linear_from",
    "schedule_linear_onecycle",
    "schedule_piecewise_constant_scales",
    "schedule_piecewise_interpolate",
    "schedule_polynomial",
    "schedule_sgdr",
    "schedule_warmup_cosine",
    "schedule_warmup_exponential_decay",
    "schedule_warmup_stable_decay",
    "torch_cosine_annealing_warm_restarts",
    "torch_cyclic_lr",
    "torch_one_cycle_lr",
    "torch_polynomial_lr",
    "torch_sequential_lr",
]

Fn = Callable[[float], float]


def schedule_polynomial(
    init_value: float, end_value: float, power: float, transition_steps: int, begin: int = 0
) -> Fn:
    """(a − b)·(1 − τ)ᵏ + b with τ = clip(t − B, 0, T)/T."""
    return lambda t: (
        (init_value - end_value)
        * (1 - min(max(t - begin, 0), transition_steps) / transition_steps) ** power
        + end_value
    )


def schedule_linear_from(
    init_value: float, end_value: float, transition_steps: int, begin: int = 0
) -> Fn:
    """a + (b − a)·clip(t − B, 0, T)/T."""
    return lambda t: (
        init_value
        + (end_value - init_value) * min(max(t - begin, 0), transition_steps) / transition_steps
    )


def schedule_exponential_decay_from(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Fn:
    """η₀·r^(max(t − B, 0)/T) (floored exponent with staircase), clipped at end_value."""

    def schedule(t: float) -> float:
        p = max(t - begin, 0) / transition_steps
        if staircase:
            p = math.floor(p)
        value = init_value * decay_rate**p
        if end_value is not None:
            value = max(value, end_value) if decay_rate < 1 else min(value, end_value)
        return value

    return schedule


def schedule_join(schedules: Sequence[Fn], boundaries: Sequence[int]) -> Fn:
    """s_i(t − b_{i−1}) on the segment b_{i−1} ≤ t < b_i."""

    def schedule(t: float) -> float:
        starts = [0, *boundaries]
        i = sum(1 for b in boundaries if t >= b)
        return schedules[i](t - starts[i])

    return schedule


def schedule_warmup_cosine(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Fn:
    """a + (p − a)·t/W for t < W, then e + (p − e)·(½(1 + cos(π·min(t − W, T − W)/(T − W))))ᵏ."""

    def schedule(t: float) -> float:
        if t < warmup_steps:
            return init_value + (peak_value - init_value) * t / warmup_steps
        span = decay_steps - warmup_steps
        c = 0.5 * (1 + math.cos(math.pi * min(t - warmup_steps, span) / span))
        return end_value + (peak_value - end_value) * c**exponent

    return schedule


def schedule_sgdr(cosine_kwargs: Sequence[Mapping[str, Any]]) -> Fn:
    """Warmup-cosine cycles end to end; cycle i lasts cosine_kwargs[i]["decay_steps"]."""
    ends = list(itertools.accumulate(kw["decay_steps"] for kw in cosine_kwargs))
    return schedule_join([schedule_warmup_cosine(**kw) for kw in cosine_kwargs], ends[:-1])


def schedule_piecewise_constant_scales(
    init_value: float, boundaries_and_scales: Mapping[int, float]
) -> Fn:
    """η₀·Π_{b ≤ t} s_b."""
    return lambda t: init_value * math.prod(s for b, s in boundaries_and_scales.items() if t >= b)


def schedule_piecewise_interpolate(
    interpolate_type: str, init_value: float, boundaries_and_scales: Mapping[int, float]
) -> Fn:
    """Interpolation between v_i = η₀·s₁⋯s_i placed at 0 = b₀ < b₁ < …; v_last after."""
    bounds = sorted(boundaries_and_scales)
    values = [init_value]
    for b in bounds:
        values.append(values[-1] * boundaries_and_scales[b])
    knots = [0, *bounds]

    def schedule(t: float) -> float:
        for i in range(1, len(knots)):
            if knots[i - 1] <= t < knots[i]:
                pct = (t - knots[i - 1]) / max(knots[i] - knots[i - 1], 1)
                v0, v1 = values[i - 1], values[i]
                if interpolate_type == "linear":
                    return v0 + (v1 - v0) * pct
                return v1 + (v0 - v1) / 2 * (math.cos(math.pi * pct) + 1)
        return values[-1]

    return schedule


def schedule_cosine_onecycle(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Fn:
    """Cosine from p/d up to p at ⌊s·T⌋, then down to p/(d·f) at T."""
    return schedule_piecewise_interpolate(
        "cosine",
        peak_value / div_factor,
        {
            int(pct_start * transition_steps): div_factor,
            transition_steps: 1 / (div_factor * final_div_factor),
        },
    )


def schedule_linear_onecycle(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Fn:
    """Linear p/d → p at ⌊s·T⌋ → p/d at ⌊s_f·T⌋ → p/(d·f) at T."""
    return schedule_piecewise_interpolate(
        "linear",
        peak_value / div_factor,
        {
            int(pct_start * transition_steps): div_factor,
            int(pct_final * transition_steps): 1 / div_factor,
            transition_steps: 1 / final_div_factor,
        },
    )


def schedule_warmup_exponential_decay(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Fn:
    """Linear a → p over W steps, then the exponential decay from p, counted from W."""
    decay = schedule_exponential_decay_from(
        peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
    if warmup_steps == 0:
        return decay
    rise = schedule_linear_from(init_value, peak_value, warmup_steps)
    return schedule_join([rise, decay], [warmup_steps])


def schedule_warmup_stable_decay(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    stable_steps: int,
    cooldown_steps: int,
    end_value: float = 0.0,
    cooldown_type: str = "linear",
) -> Fn:
    """Warmup a → p over W, p for S steps, then e + (p − e)·c(τ) over C steps."""
    shapes = {
        "linear": lambda tau: 1 - tau,
        "cosine": lambda tau: 0.5 * (1 + math.cos(math.pi * tau)),
        "1-sqrt": lambda tau: 1 - math.sqrt(tau),
    }

    def schedule(t: float) -> float:
        if t < warmup_steps:
            return init_value + (peak_value - init_value) * t / warmup_steps
        if t < warmup_steps + stable_steps:
            return peak_value
        tau = min((t - warmup_steps - stable_steps) / cooldown_steps, 1.0)
        return end_value + (peak_value - end_value) * shapes[cooldown_type](tau)

    return schedule


# --- PyTorch's lr_scheduler, closed forms (the lr of the update after t scheduler steps) ---


def torch_one_cycle_lr(
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Fn:
    """`OneCycleLR.get_lr`: phases end at s·N − 1 (and 2s·N − 2 with three_phase) and N − 1;
    within a phase pct = (t − start)/(end − start), annealed by cos or linearly."""
    initial = max_lr / div_factor
    minimum = initial / final_div_factor
    if three_phase:
        phases = [
            (float(pct_start * total_steps) - 1, initial, max_lr),
            (float(2 * pct_start * total_steps) - 2, max_lr, initial),
            (total_steps - 1, initial, minimum),
        ]
    else:
        phases = [
            (float(pct_start * total_steps) - 1, initial, max_lr),
            (total_steps - 1, max_lr, minimum),
        ]

    def anneal(start: float, end: float, pct: float) -> float:
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def schedule(t: float) -> float:
        start_step = 0.0
        for i, (end_step, lr_start, lr_end) in enumerate(phases):
            if t <= end_step or i == len(phases) - 1:
                return anneal(lr_start, lr_end, (t - start_step) / (end_step - start_step))
            start_step = end_step
        raise AssertionError("unreachable")

    return schedule


def torch_cyclic_lr(
    base_lr: float, max_lr: float, step_size_up: int = 2000, step_size_down: int | None = None
) -> Fn:
    """`CyclicLR(mode="triangular")`: cycle = ⌊1 + t/L⌋, x = 1 + t/L − cycle,
    scale = x/r if x ≤ r else (x − 1)/(r − 1), lr = base + (max − base)·scale."""
    down = step_size_up if step_size_down is None else step_size_down
    total = float(step_size_up + down)
    ratio = step_size_up / total

    def schedule(t: float) -> float:
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        return base_lr + (max_lr - base_lr) * scale

    return schedule


def torch_cosine_annealing_warm_restarts(
    base_lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0
) -> Fn:
    """`CosineAnnealingWarmRestarts.step(t)`: the cycle n holding t, T_cur within it, and
    lr = eta_min + (base − eta_min)·(1 + cos(π·T_cur/T_i))/2."""

    def schedule(t: float) -> float:
        if T_mult == 1:
            t_cur, t_i = t % T_0, T_0
        else:
            n = int(math.log(t / T_0 * (T_mult - 1) + 1, T_mult))
            t_cur = t - T_0 * (T_mult**n - 1) / (T_mult - 1)
            t_i = T_0 * T_mult**n
        return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2

    return schedule


def torch_polynomial_lr(base_lr: float, total_iters: int = 5, power: float = 1.0) -> Fn:
    """`PolynomialLR._get_closed_form_lr`: base·(1 − min(T, t)/T)^power."""
    return lambda t: base_lr * (1.0 - min(total_iters, t) / total_iters) ** power


def torch_sequential_lr(schedules: Sequence[Fn], milestones: Sequence[int]) -> Fn:
    """`SequentialLR`: past milestone m_i the i-th scheduler restarts from its step 0."""

    def schedule(t: float) -> float:
        i = sum(1 for m in milestones if t >= m)
        return schedules[i](t - ([0, *milestones][i]))

    return schedule
