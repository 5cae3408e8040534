"""Generated sequence tasks: the adding problem, copy, reverse, and parity.

Every generator is a pure function of a PRNG key, returns jax arrays, and can run inside
`jax.jit` (sizes are Python ints), so training loops can draw fresh batches on device.

    adding_problem  x (n, T, 2) [value, marker], y (n,) = sum of the two marked values
    copy_task       tokens then blanks; the model must emit the tokens after a GO marker
    reverse_task    the same layout, emitting the tokens in reverse order
    sort_task       the same layout, emitting the tokens sorted (order-free: a bag suffices)
    parity_task     bits (n, T), y (n,) = (Σ bits) mod 2
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from funcnn._validation import check_nonnegative_int, check_positive_int

__all__ = [
    "ADDING_MEAN_BASELINE_MSE",
    "TokenTask",
    "adding_problem",
    "copy_task",
    "parity_task",
    "reverse_task",
    "sort_task",
]

Array = jax.Array

# MSE of always predicting E[y] = 1 on the adding problem: Var(u₁ + u₂) = 2·(1/12) = 1/6 ≈ 0.167.
ADDING_MEAN_BASELINE_MSE = 1.0 / 6.0
"""MSE of always predicting the mean target 1 (the sum of two U(0, 1)): Var = 2·(1/12) = 1/6."""


def adding_problem(key: Array, n: int, length: int) -> tuple[Array, Array]:
    """The adding problem (Hochreiter & Schmidhuber 1997; the variant of Le et al. 2015).

    Each step carries a value uₜ ~ U(0, 1) and a marker mₜ ∈ {0, 1}; exactly two steps are
    marked, one in the first half and one in the second. The target is y = Σₜ mₜ·uₜ, so the
    model must remember a value across up to T steps. Predicting the mean scores MSE 1/6.
    Returns x (n, T, 2) float32 with x[..., 0] = u, x[..., 1] = m, and y (n,) float32.
    """
    check_positive_int(n, "n")
    check_positive_int(length, "length")
    if length < 2:
        raise ValueError(f"adding_problem needs length ≥ 2 (two marked steps), got {length}.")
    k_values, k_first, k_second = jax.random.split(key, 3)
    half = length // 2
    values = jax.random.uniform(k_values, (n, length))
    first = jax.random.randint(k_first, (n,), 0, half)
    second = jax.random.randint(k_second, (n,), half, length)
    steps = jnp.arange(length)[None, :]  # (1, T)
    markers = (steps == first[:, None]) | (steps == second[:, None])  # (n, T)
    markers = markers.astype(jnp.float32)
    x = jnp.stack([values, markers], axis=-1)  # (n, T, 2)
    return x, jnp.sum(values * markers, axis=1)


class TokenTask(NamedTuple):
    """A sequence-to-sequence token task: predict `targets` at the steps where `mask` is True."""

    inputs: Array  # (n, T) int32
    targets: Array  # (n, T) int32
    mask: Array  # (n, T) bool: the steps that are scored
    vocab: int  # ids lie in [0, vocab)


def _memory_task(
    key: Array, n: int, length: int, num_symbols: int, delay: int, order: str
) -> TokenTask:
    check_positive_int(n, "n")
    check_positive_int(length, "length")
    check_positive_int(num_symbols, "num_symbols")
    check_nonnegative_int(delay, "delay")
    blank, go = 0, num_symbols + 1
    symbols = jax.random.randint(key, (n, length), 1, num_symbols + 1)  # (n, L) in 1..S
    answer = {"copy": symbols, "reverse": symbols[:, ::-1], "sort": jnp.sort(symbols, axis=1)}[
        order
    ]
    blanks = lambda width: jnp.full((n, width), blank, jnp.int32)
    go_column = jnp.full((n, 1), go, jnp.int32)
    # inputs:  s₁ … s_L, blank × delay, GO, blank × (L − 1)
    # targets: blank × (L + delay), answer₁ … answer_L
    inputs = jnp.concatenate([symbols, blanks(delay), go_column, blanks(length - 1)], axis=1)
    targets = jnp.concatenate([blanks(length + delay), answer], axis=1)
    total = 2 * length + delay
    mask = jnp.broadcast_to(jnp.arange(total)[None, :] >= length + delay, (n, total))
    return TokenTask(inputs.astype(jnp.int32), targets.astype(jnp.int32), mask, num_symbols + 2)


def copy_task(
    key: Array, n: int, length: int, *, num_symbols: int = 8, delay: int = 0
) -> TokenTask:
    """Copy memory task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016).

    Input: L random symbols from 1..S, `delay` blanks (0), a GO marker (S+1), then L−1 blanks.
    Target: blanks until GO, then the L symbols in order. Sequences have T = 2L + delay steps;
    `mask` marks the L scored steps. Chance accuracy is 1/S.
    """
    return _memory_task(key, n, length, num_symbols, delay, "copy")


def reverse_task(
    key: Array, n: int, length: int, *, num_symbols: int = 8, delay: int = 0
) -> TokenTask:
    """Like `copy_task`, but the symbols must be emitted last-first: target = s_L … s₁."""
    return _memory_task(key, n, length, num_symbols, delay, "reverse")


def sort_task(
    key: Array, n: int, length: int, *, num_symbols: int = 8, delay: int = 0
) -> TokenTask:
    """Like `copy_task`, but the symbols must be emitted in ascending order.

    The answer depends only on the multiset of symbols, not on their order — the control task
    that an order-blind model (bag of words) can solve while it fails `reverse_task`.
    """
    return _memory_task(key, n, length, num_symbols, delay, "sort")


def parity_task(key: Array, n: int, length: int) -> tuple[Array, Array]:
    """Bits bₜ ~ Bernoulli(½), (n, T) int32, and the label y = (Σₜ bₜ) mod 2, (n,) int32.

    Parity depends on the count of ones only, not on their order — yet it flips with every
    single bit, which makes it hard for smooth models at large T.
    """
    check_positive_int(n, "n")
    check_positive_int(length, "length")
    bits = jax.random.bernoulli(key, 0.5, (n, length)).astype(jnp.int32)
    return bits, jnp.sum(bits, axis=1) % 2
