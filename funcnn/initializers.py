"""Parameter initializers: factories returning `init(key, shape, dtype=jnp.float32) -> array`.

    w_init = he_normal()
    w = w_init(key, (784, 512))          # Var(w) = 2/784

Fan conventions (as in PyTorch and jax.nn.initializers), for a weight of shape `shape`:
    rank 0: fan_in = fan_out = 1
    rank 1: fan_in = fan_out = shape[0]
    rank ≥ 2: r = ∏ shape[:-2] (receptive field);  fan_in = shape[-2]·r;  fan_out = shape[-1]·r
so a dense weight (in, out) has fan_in = in, and a conv1d weight (width, in, out) has
fan_in = width·in, fan_out = width·out.

The scaled families draw from a plain normal N(0, σ²) (PyTorch's `*_normal_`; jax's versions
use a truncated normal instead) or from U(−a, a) with a = √3·σ so Var = σ²:

    glorot (Xavier):  σ² = 2/(fan_in + fan_out)   keeps forward and backward variance balanced
    he (Kaiming):     σ² = 2/fan_in               compensates ReLU zeroing half its inputs
    lecun:            σ² = 1/fan_in               keeps Var(x·w) = Var(x) for a linear map

Defaults used by funcnn's layers:
    nn.dense / nn.mlp / nn.perceptron: w = lecun_normal(), b = zeros(). LeCun makes a linear
        map variance-preserving without assuming which activation follows (dense cannot
        know); Glorot would shrink the weights of a wide output head (fan_out = vocabulary),
        and He's factor 2 is right only before a ReLU — pass `w_init=he_normal()` for deep
        ReLU stacks. (flax's Dense also defaults to LeCun normal; PyTorch's Linear uses
        U(±1/√fan_in), a third of this variance.)
    nn.layer_norm: scale = ones(), bias = zeros(), so it starts as pure normalization.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from funcnn._validation import check_choice, check_real

Array = jax.Array
Initializer = Callable[..., Array]  # (key, shape, dtype=jnp.float32) -> Array

__all__ = [
    "Initializer",
    "compute_fans",
    "constant",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "ones",
    "uniform",
    "variance_scaling",
    "zeros",
]


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(shape)
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(f"shape must be a tuple of non-negative ints, got {shape!r}.")
    return shape


def compute_fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of `shape`, by the conventions in the module docstring."""
    shape = _check_shape(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def constant(value: float) -> Initializer:
    """Every entry equals `value`."""
    value = check_real(value, "value")

    def init(key: Array, shape: Sequence[int], dtype: Any = jnp.float32) -> Array:
        del key  # deterministic
        return jnp.full(_check_shape(shape), value, dtype)

    return init


def zeros() -> Initializer:
    """Every entry 0 (biases, layer-norm shift)."""
    return constant(0.0)


def ones() -> Initializer:
    """Every entry 1 (layer-norm gain)."""
    return constant(1.0)


def normal(stddev: float = 1e-2) -> Initializer:
    """w ~ N(0, stddev²)."""
    stddev = check_real(stddev, "stddev")
    if stddev < 0:
        raise ValueError(f"stddev must be ≥ 0, got stddev={stddev}.")

    def init(key: Array, shape: Sequence[int], dtype: Any = jnp.float32) -> Array:
        return stddev * jax.random.normal(key, _check_shape(shape), dtype)

    return init


def uniform(scale: float = 1e-2) -> Initializer:
    """w ~ U(−scale, scale), so Var(w) = scale²/3.

    Note: `jax.nn.initializers.uniform(scale)` draws from U[0, scale) instead.
    """
    scale = check_real(scale, "scale")
    if scale < 0:
        raise ValueError(f"scale must be ≥ 0, got scale={scale}.")

    def init(key: Array, shape: Sequence[int], dtype: Any = jnp.float32) -> Array:
        return jax.random.uniform(key, _check_shape(shape), dtype, -scale, scale)

    return init


FAN_MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("normal", "uniform")


def variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
    """Var(w) = scale/n with n = fan_in, fan_out or (fan_in + fan_out)/2 (by `mode`).

    distribution "normal": w ~ N(0, scale/n); "uniform": w ~ U(−a, a) with a = √(3·scale/n).
    """
    scale = check_real(scale, "scale")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got scale={scale}.")
    check_choice(mode, "mode", FAN_MODES)
    check_choice(distribution, "distribution", DISTRIBUTIONS)

    def init(key: Array, shape: Sequence[int], dtype: Any = jnp.float32) -> Array:
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(n, 1)
        if distribution == "normal":
            return math.sqrt(variance) * jax.random.normal(key, tuple(shape), dtype)
        limit = math.sqrt(3 * variance)
        return jax.random.uniform(key, tuple(shape), dtype, -limit, limit)

    return init


def glorot_normal() -> Initializer:
    """Glorot/Xavier normal: w ~ N(0, 2/(fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    return variance_scaling(1.0, "fan_avg", "normal")


def glorot_uniform() -> Initializer:
    """Glorot/Xavier uniform: w ~ U(±√(6/(fan_in + fan_out)))."""
    return variance_scaling(1.0, "fan_avg", "uniform")


def he_normal() -> Initializer:
    """He/Kaiming normal: w ~ N(0, 2/fan_in) (He et al., 2015), for layers followed by ReLU."""
    return variance_scaling(2.0, "fan_in", "normal")


def he_uniform() -> Initializer:
    """He/Kaiming uniform: w ~ U(±√(6/fan_in))."""
    return variance_scaling(2.0, "fan_in", "uniform")


def lecun_normal() -> Initializer:
    """LeCun normal: w ~ N(0, 1/fan_in) (LeCun et al., 1998); funcnn's dense default."""
    return variance_scaling(1.0, "fan_in", "normal")


def lecun_uniform() -> Initializer:
    """LeCun uniform: w ~ U(±√(3/fan_in))."""
    return variance_scaling(1.0, "fan_in", "uniform")
