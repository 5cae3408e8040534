"""Measure the sequence architectures side by side: quality, size, speed, and scaling in T.

    adding_run(kind, length)      train a regressor on the adding problem → test MSE
    lm_run(kind, text)            train a char LM → validation bits/char
    scaling_profile(kind, T)      one compiled training step: seconds/step and peak memory

Memory is XLA's own account of the compiled step (`compiled.memory_analysis()`: arguments +
outputs + temporaries, the activations kept for the backward pass included) — a property of
the program, free of allocator noise, and an upper bound on what is live at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn import losses, optim
from funcnn.datasets import sequences
from funcnn.lab import lm, optimizers
from funcnn.nn.sequence_models import sequence_regressor
from funcnn.params import count_params
from funcnn.train import init_state, train_generated, train_step_fn

__all__ = [
    "RunSummary",
    "ScalingPoint",
    "adding_run",
    "compiled_footprint_bytes",
    "growth_exponent",
    "lm_run",
    "markdown_table",
    "plot_scaling",
    "scaling_profile",
]

Array = jax.Array


class RunSummary(NamedTuple):
    kind: str
    task: str
    num_params: int
    metric: float  # test MSE (adding) or validation bits/char (LM)
    ms_per_step: float


def _optimizer(peak: float, steps: int) -> optim.GradientTransformation:
    """The shared recipe: clip at 1 → AdamW without decay, warmup over 5 % then cosine."""
    return optimizers.clipped_warmup_cosine(
        "adamw", peak_value=peak, total_steps=steps, warmup_steps=steps // 20
    )


def _regression_loss(model):
    def loss_fn(params, batch, key):
        x, y = batch
        return losses.mse(model.apply(params, x), y), {}

    return loss_fn


def adding_run(
    kind: str,
    length: int,
    *,
    steps: int = 800,
    batch_size: int = 64,
    dim: int = 32,
    learning_rate: float = 2e-2,
    seed: int = 0,
) -> RunSummary:
    """Train `sequence_regressor(kind)` on fresh adding-problem batches; score 2000 new ones.

    The mean predictor scores MSE 1/6 ≈ 0.167; an MSE below 0.01 counts as solved.
    """
    model = sequence_regressor(kind, 2, dim=dim, max_len=max(length, 1))
    k_init, k_state, k_data, k_test = jax.random.split(jax.random.key(seed), 4)
    params, _ = model.init(k_init, (batch_size, length, 2))
    optimizer = _optimizer(learning_rate, steps)
    state = init_state(params, optimizer, k_state)
    sample = lambda key: sequences.adding_problem(key, batch_size, length)
    chunk = max(steps // 4, 1)
    times: list[float] = [time.perf_counter()]
    done: list[float] = []  # cumulative steps after each dispatch

    def record(s: Any, info: Any) -> None:
        times.append(time.perf_counter())
        done.append(float(s.step))

    state, _ = train_generated(
        state,
        _regression_loss(model),
        optimizer,
        sample,
        steps=steps,
        steps_per_dispatch=chunk,
        data_key=k_data,
        callback=record,
    )
    # Dispatches that compiled (the first chunk, and a shorter tail) are left out.
    seconds_per_step = lm.steady_seconds_per_step(times, done)
    x, y = sequences.adding_problem(k_test, 2000, length)
    mse = float(losses.mse(jax.jit(model.apply)(state.params, x), y))
    return RunSummary(kind, f"adding T={length}", count_params(params), mse, 1e3 * seconds_per_step)


def lm_run(kind: str, text: str, *, steps: int = 300, seq_len: int = 64, **kwargs: Any):
    """Train `char_lm(kind)` on `text` with `lm.train_char_lm`; metric = val bits/char.

    Returns (RunSummary, unigram bits/char).
    """
    kwargs.setdefault("warmup_steps", max(steps // 10, 1))
    kwargs.setdefault("steps_per_dispatch", max(steps // 4, 1))
    result = lm.train_char_lm(kind, text, steps=steps, seq_len=seq_len, **kwargs)
    summary = RunSummary(
        kind,
        "char LM",
        result.num_params,
        result.val_bits_per_char,
        1e3 * result.seconds_per_step,
    )
    return summary, result.unigram_bits_per_char


class ScalingPoint(NamedTuple):
    kind: str
    length: int
    ms_per_step: float
    peak_bytes: int


def scaling_profile(
    kind: str,
    lengths: Sequence[int],
    *,
    batch_size: int = 4,
    dim: int = 32,
    repeats: int = 3,
) -> list[ScalingPoint]:
    """Compile one AdamW training step of the adding-problem regressor at each T and measure
    its steady step time (best of `repeats`) and XLA's peak memory for the step."""
    points = []
    for length in lengths:
        model = sequence_regressor(kind, 2, dim=dim, max_len=length)
        params, _ = model.init(jax.random.key(0), (batch_size, length, 2))
        optimizer = _optimizer(1e-3, 100)
        state = init_state(params, optimizer, jax.random.key(1))
        batch = sequences.adding_problem(jax.random.key(2), batch_size, length)
        step = jax.jit(train_step_fn(_regression_loss(model), optimizer))
        compiled = step.lower(state, batch).compile()
        peak = compiled_footprint_bytes(compiled)
        jax.block_until_ready(compiled(state, batch))  # warm up
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(compiled(state, batch))
            best = min(best, time.perf_counter() - start)
        points.append(ScalingPoint(kind, length, 1e3 * best, peak))
    return points


def compiled_footprint_bytes(compiled: Any) -> int:
    """Arguments + outputs + temporaries of a compiled program, minus donated aliases.

    XLA:CPU's `peak_memory_in_bytes` counts only arguments and outputs, so the temporaries —
    the activations a training step keeps for its backward pass — are added explicitly.
    """
    stats = compiled.memory_analysis()
    total = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
    return int(total - stats.alias_size_in_bytes)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats are printed with 4 significant digits."""
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def growth_exponent(lengths: Sequence[int], values: Sequence[float]) -> float:
    """Slope of log(value) against log(T): ≈1 for linear growth, ≈2 for quadratic."""
    if len(lengths) < 2:
        return float("nan")  # a slope needs two points
    return float(np.polyfit(np.log(lengths), np.log(values), 1)[0])


def plot_scaling(points: Sequence[ScalingPoint], path) -> None:
    """Two log-log panels: step time and peak memory against T, one line per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(10, 4))
    for kind in dict.fromkeys(p.kind for p in points):
        mine = [p for p in points if p.kind == kind]
        lengths = [p.length for p in mine]
        ax_time.plot(lengths, [p.ms_per_step for p in mine], marker="o", label=kind)
        ax_mem.plot(lengths, [p.peak_bytes / 2**20 for p in mine], marker="o", label=kind)
    for ax, label in ((ax_time, "ms per training step"), (ax_mem, "XLA memory per step (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_time.legend()
    fig.suptitle("Adding-problem regressors: one AdamW step, batch 4")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
