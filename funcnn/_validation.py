"""Argument checks shared by every module, so each error names the argument and its value.

These run at build time (Python values) or trace time (shapes and dtypes), never inside
a compiled program. Each raises `ValueError` or `TypeError`, never `assert`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def check_positive_int(value: Any, name: str) -> int:
    """Return `value` if it is an int ≥ 1, else raise naming `name` and the value."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {value!r} ({type(value).__name__}).")
    if value < 1:
        raise ValueError(f"{name} must be a positive int (≥ 1), got {name}={value}.")
    return value


def check_nonnegative_int(value: Any, name: str) -> int:
    """Return `value` if it is an int ≥ 0, else raise naming `name` and the value."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int ≥ 0, got {value!r} ({type(value).__name__}).")
    if value < 0:
        raise ValueError(f"{name} must be ≥ 0, got {name}={value}.")
    return value


def check_real(value: Any, name: str) -> float:
    """Return `value` as a float if it is a finite real number, else raise.

    Accepts int/float and concrete 0-d NumPy/JAX numbers (`b1=0`, `np.float32(0.9)`);
    bools, strings, arrays with dimensions and traced values are a TypeError.
    """
    if isinstance(value, (np.ndarray, np.generic, jax.Array)) and not isinstance(
        value, jax.core.Tracer
    ):
        array = np.asarray(value)
        if array.ndim == 0 and np.issubdtype(array.dtype, np.number):
            value = array.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a real number, got {name}={value!r} ({type(value).__name__})."
        )
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {name}={value}.")
    return float(value)


def check_in_range(
    value: Any,
    name: str,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = False,
) -> float:
    """Return `value` if it lies in the interval [low, high) (bounds configurable), else raise."""
    value = check_real(value, name)
    above = value >= low if low_inclusive else value > low
    below = value <= high if high_inclusive else value < high
    if not (above and below):
        lo = "[" if low_inclusive else "("
        hi = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {name}={value}.")
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Return `value` if it is one of `choices`, else raise listing the valid ones."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {name}={value!r}.")
    return value


def check_floating(x: Any, name: str) -> None:
    """Raise TypeError unless `x` is an array of a floating dtype."""
    try:
        dtype = jnp.result_type(x)
    except (TypeError, ValueError) as error:  # a list, a string: NumPy's message names no one
        shown = repr(x) if len(repr(x)) <= 60 else repr(x)[:57] + "..."
        raise TypeError(
            f"{name} must be a floating-point array, got {type(x).__name__} {shown}."
        ) from error
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {dtype}.")


def check_min_rank(x: Any, name: str, rank: int) -> None:
    """Raise ValueError unless `x` has at least `rank` dimensions."""
    if jnp.ndim(x) < rank:
        raise ValueError(
            f"{name} must have at least {rank} dimension(s), got shape {jnp.shape(x)}."
        )


def check_last_dim(x: Any, name: str, expected: int) -> None:
    """Raise ValueError unless the last axis of `x` has size `expected`."""
    shape = jnp.shape(x)
    if len(shape) == 0 or shape[-1] != expected:
        raise ValueError(
            f"{name} must have last dimension {expected}, got shape {shape} "
            f"(expected (..., {expected}))."
        )


def check_same_shape(a: Any, b: Any, name_a: str, name_b: str) -> None:
    """Raise ValueError unless `a` and `b` have exactly the same shape (no broadcasting)."""
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {name_a}.shape={jnp.shape(a)} "
            f"and {name_b}.shape={jnp.shape(b)}; funcnn never broadcasts them silently."
        )
