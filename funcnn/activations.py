"""Activation functions, each written out in `jnp` in a numerically stable form.

Every function is elementwise except `softmax`/`log_softmax`, which act along `axis`.
Each docstring states f(x) and f′(x); `funcnn.reference.functional` holds float64 NumPy
transcriptions that the tests compare against (values and gradients).

Stability: `sigmoid`, `softplus`, `silu`, `softmax` and `log_softmax` only ever exponentiate
non-positive numbers, so they stay finite — with finite gradients — for |x| up to 1e4 and
beyond. Branches are chosen with the "double where" pattern: the branch not taken is fed a
harmless input, so its (unused) derivative cannot turn into 0·∞ = NaN in the backward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = [
    "gelu",
    "leaky_relu",
    "log_softmax",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "step",
    "tanh",
]


def _nan_through(x: Array, y: Array) -> Array:
    """y, except NaN where x is NaN. A branch test such as `x > 0` is False for NaN, so
    without this a NaN input would come out as a clean 0 and vanish from the loss while the
    parameters go NaN (jax.nn and PyTorch propagate it)."""
    return jnp.where(jnp.isnan(x), x, y)


def relu(x: Array) -> Array:
    """Rectified linear unit: relu(x) = max(x, 0);  relu′(x) = 1 if x > 0 else 0.

    The derivative at exactly 0 is taken as 0 (PyTorch's choice; `jnp.maximum` would give ½).
    NaN propagates: relu(NaN) = NaN, like every activation here.
    """
    return _nan_through(x, jnp.where(x > 0, x, jnp.zeros_like(x)))


def step(x: Array) -> Array:
    """Heaviside step (Rosenblatt's perceptron): f(x) = 1 if x > 0 else 0;  f′(x) = 0 (a.e.).

    Its gradient is zero everywhere, so a step-activated perceptron is trained with the
    perceptron rule, not with `jax.grad`; use `sigmoid` for gradient training.
    """
    return _nan_through(x, jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x)))


def leaky_relu(x: Array, negative_slope: float = 0.01) -> Array:
    """Leaky ReLU: f(x) = x if x ≥ 0 else a·x;  f′(x) = 1 if x ≥ 0 else a  (a = negative_slope)."""
    return jnp.where(x >= 0, x, negative_slope * x)


def sigmoid(x: Array) -> Array:
    """Logistic sigmoid: σ(x) = 1/(1 + e⁻ˣ);  σ′(x) = σ(x)·(1 − σ(x)).

    Stable form: with z = e^{−|x|} ∈ (0, 1], σ(x) = 1/(1 + z) for x ≥ 0 and z/(1 + z) for
    x < 0, so no exponential can overflow (σ(±1e4) = 1 / 0 with finite gradient 0).
    """
    neg_abs = jnp.where(x >= 0, -x, x)  # −|x|, with derivative −1 at 0 (not abs's choice)
    z = jnp.exp(neg_abs)
    return jnp.where(x >= 0, 1 / (1 + z), z / (1 + z))


def softplus(x: Array) -> Array:
    """Softplus: f(x) = log(1 + eˣ);  f′(x) = σ(x).

    Stable form: f(x) = max(x, 0) + log1p(e^{−|x|}); written with branches so f′(0) = ½
    exactly (the max/abs form would give the wrong subgradient at 0).
    """
    x_pos = jnp.where(x >= 0, x, 0)  # safe input for the x ≥ 0 branch
    x_neg = jnp.where(x < 0, x, 0)  # safe input for the x < 0 branch
    y = jnp.where(x >= 0, x_pos + jnp.log1p(jnp.exp(-x_pos)), jnp.log1p(jnp.exp(x_neg)))
    return _nan_through(x, y)


def tanh(x: Array) -> Array:
    """Hyperbolic tangent: tanh(x) = (eˣ − e⁻ˣ)/(eˣ + e⁻ˣ);  tanh′(x) = 1 − tanh²(x).

    `jnp.tanh` is already stable (it saturates at ±1 without overflow).
    """
    return jnp.tanh(x)


def silu(x: Array) -> Array:
    """SiLU / swish: f(x) = x·σ(x);  f′(x) = σ(x)·(1 + x·(1 − σ(x)))."""
    return x * sigmoid(x)


def gelu(x: Array, approximate: bool = False) -> Array:
    """Gaussian error linear unit: f(x) = x·Φ(x) with Φ the standard normal CDF.

    Exact (default, PyTorch's default): f(x) = ½·x·(1 + erf(x/√2));
        f′(x) = Φ(x) + x·φ(x),  φ(x) = e^{−x²/2}/√(2π).
    `approximate=True` (the tanh form, `jax.nn.gelu`'s default — note the different defaults):
        f(x) = ½·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³);
        f′(x) = ½·(1 + tanh(u)) + ½·x·(1 − tanh²(u))·√(2/π)·(1 + 3·0.044715·x²).
    """
    if approximate:
        u = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1 + jnp.tanh(u))
    return 0.5 * x * (1 + jax.lax.erf(x / math.sqrt(2)))


def _axis_mask(x: Array, where: Any, fn: str) -> Array | None:
    """Broadcast an optional boolean `where` mask explicitly to `x.shape` (no rank promotion)."""
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"{fn}: where must be a boolean mask, got dtype {where.dtype}.")
    try:
        return jnp.broadcast_to(where, jnp.shape(x))
    except ValueError:
        raise ValueError(
            f"{fn}: where.shape={where.shape} cannot broadcast to x.shape={jnp.shape(x)}."
        ) from None


def _shifted(x: Array, axis: int, mask: Array | None) -> tuple[Array, Array]:
    """Return (x − m, keep): x − m with m = max of the kept entries, and −∞ at dropped entries.

    m is a constant shift (stop_gradient: softmax is shift-invariant). A row with nothing
    finite gets m = 0 instead of −∞, so x − m never becomes −∞ − (−∞) = NaN.
    """
    keep = jnp.ones(jnp.shape(x), bool) if mask is None else mask
    neg_inf = jnp.asarray(-jnp.inf, x.dtype)
    m = jnp.max(jnp.where(keep, x, neg_inf), axis=axis, keepdims=True)
    m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m)))
    return jnp.where(keep, x - m, neg_inf), keep


def softmax(x: Array, axis: int = -1, where: Any = None) -> Array:
    """Softmax along `axis`: s_i = e^{x_i} / Σ_j e^{x_j};  ∂s_i/∂x_j = s_i·(δ_ij − s_j).

    Computed as e^{x_i − m}/Σ_j e^{x_j − m} with m = max_j x_j, so no exponential overflows.
    `where` (bool, broadcastable to x.shape) keeps entries; dropped ones get probability 0.
    Entries equal to −∞ also get probability 0, and a row that is entirely −∞/dropped gives
    all zeros (not NaN) with zero gradient.
    """
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(f"softmax: x must be floating point, got dtype {jnp.result_type(x)}.")
    shifted, _ = _shifted(x, axis, _axis_mask(x, where, "softmax"))
    e = jnp.exp(shifted)  # ∈ [0, 1]; exactly 0 where dropped
    total = jnp.sum(e, axis=axis, keepdims=True)
    # Only an all-dropped row (total exactly 0) divides by 1; a NaN total stays NaN.
    return e / jnp.where(total == 0, jnp.ones_like(total), total)


def log_softmax(x: Array, axis: int = -1, where: Any = None) -> Array:
    """Log-softmax along `axis`: ℓ_i = x_i − log Σ_j e^{x_j};  ∂ℓ_i/∂x_j = δ_ij − softmax(x)_j.

    Computed as (x_i − m) − log Σ_j e^{x_j − m} with m = max_j x_j (log-sum-exp trick), so
    ℓ is finite for |x| up to 1e4 and beyond. Entries that are −∞ or dropped by `where`
    (bool, broadcastable to x.shape) get ℓ = −∞ (log of probability 0). A row that is
    entirely −∞/dropped gives zeros (not NaN) with zero gradient.
    """
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(f"log_softmax: x must be floating point, got dtype {jnp.result_type(x)}.")
    shifted, _ = _shifted(x, axis, _axis_mask(x, where, "log_softmax"))  # −∞ where dropped
    total = jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True)  # ≥ 1 unless the row is empty
    empty = total == 0
    out = shifted - jnp.log(jnp.where(empty, jnp.ones_like(total), total))
    return jnp.where(empty, jnp.zeros_like(out), out)


# ------------------------------------------------------------------------------ by name
# Kept at the end of the file: every activation above is listed by `__all__`, so the
# registry below picks new ones up without an edit here.

BY_NAME: dict[str, Callable[..., Array]] = {name: globals()[name] for name in __all__}
"""Every activation of this module by its name: the one activation-by-name table."""


def get(name: str) -> Callable[..., Array]:
    """The activation called `name` (a key of `BY_NAME`); ValueError listing them otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(BY_NAME)}.")
    return BY_NAME[name]


__all__ += ["BY_NAME", "get"]
