"""Float64 NumPy transcriptions of every activation (with its derivative) and every loss.

Written straight from the formulas in `funcnn.activations` / `funcnn.losses`, independently
of the JAX code: no jax import, every input is converted with `np.asarray(x, np.float64)`.
Overflow in a branch that `np.where` discards is silenced with `np.errstate`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "gelu",
    "gelu_grad",
    "l2_penalty",
    "leaky_relu",
    "leaky_relu_grad",
    "log_softmax",
    "mse",
    "reduce_losses",
    "relu",
    "relu_grad",
    "sigmoid",
    "sigmoid_grad",
    "silu",
    "silu_grad",
    "softmax",
    "softplus",
    "softplus_grad",
    "tanh",
    "tanh_grad",
]


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------- activations and f′(x)


def relu(x: Any) -> np.ndarray:
    """max(x, 0), deciding by the real part: a complex-step input a + ib keeps its ib where
    a > 0, so `numerical.complex_step` differentiates it (the models use this one relu)."""
    x = np.asarray(x) if np.iscomplexobj(x) else _f64(x)
    return np.where(np.real(x) > 0, x, 0.0)


def relu_grad(x: Any) -> np.ndarray:
    """1 if x > 0 else 0 (0 at x = 0)."""
    return (_f64(x) > 0).astype(np.float64)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> np.ndarray:
    """x if x ≥ 0 else a·x."""
    x = _f64(x)
    return np.where(x >= 0, x, negative_slope * x)


def leaky_relu_grad(x: Any, negative_slope: float = 0.01) -> np.ndarray:
    """1 if x ≥ 0 else a."""
    return np.where(_f64(x) >= 0, 1.0, negative_slope)


def sigmoid(x: Any) -> np.ndarray:
    """1/(1 + e⁻ˣ), evaluated as e^{x}/(1 + e^{x}) for x < 0 to avoid overflow."""
    x = _f64(x)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-x)), np.exp(x) / (1.0 + np.exp(x)))


def sigmoid_grad(x: Any) -> np.ndarray:
    """σ(x)·(1 − σ(x)), evaluated as σ(x)·σ(−x) so 1 − σ(x) keeps its tiny values."""
    return sigmoid(x) * sigmoid(-_f64(x))


def softplus(x: Any) -> np.ndarray:
    """log(1 + eˣ) = max(x, 0) + log1p(e^{−|x|})."""
    x = _f64(x)
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def softplus_grad(x: Any) -> np.ndarray:
    """σ(x)."""
    return sigmoid(x)


def tanh(x: Any) -> np.ndarray:
    """(eˣ − e⁻ˣ)/(eˣ + e⁻ˣ)."""
    return np.tanh(_f64(x))


def tanh_grad(x: Any) -> np.ndarray:
    """1 − tanh²(x)."""
    return 1.0 - np.tanh(_f64(x)) ** 2


def silu(x: Any) -> np.ndarray:
    """x·σ(x)."""
    return _f64(x) * sigmoid(x)


def silu_grad(x: Any) -> np.ndarray:
    """σ(x)·(1 + x·(1 − σ(x)))."""
    x = _f64(x)
    return sigmoid(x) * (1.0 + x * sigmoid(-x))


_erf = np.vectorize(math.erf, otypes=[np.float64])
_TANH_C = math.sqrt(2.0 / math.pi)


def gelu(x: Any, approximate: bool = False) -> np.ndarray:
    """Exact ½x(1 + erf(x/√2)), or the tanh form ½x(1 + tanh(√(2/π)(x + 0.044715x³)))."""
    x = _f64(x)
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(_TANH_C * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_grad(x: Any, approximate: bool = False) -> np.ndarray:
    """Exact: Φ(x) + x·φ(x). Tanh form: ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)."""
    x = _f64(x)
    if approximate:
        t = np.tanh(_TANH_C * (x + 0.044715 * x**3))
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * _TANH_C * (1.0 + 3 * 0.044715 * x**2)
    cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)
    return cdf + x * pdf


def _kept(x: np.ndarray, where: Any) -> np.ndarray:
    """Boolean array of x's shape: entries that are kept by `where` and not −∞."""
    keep = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
    return keep & (x > -np.inf)


def softmax(x: Any, axis: int = -1, where: Any = None) -> np.ndarray:
    """e^{x_i}/Σ_j e^{x_j} over kept entries; dropped/−∞ entries and empty rows give 0."""
    x = _f64(x)
    keep = _kept(x, where)
    m = np.max(np.where(keep, x, -np.inf), axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.where(keep, np.exp(np.where(keep, x, m) - m), 0.0)
    total = e.sum(axis=axis, keepdims=True)
    return np.where(total > 0, e / np.where(total > 0, total, 1.0), 0.0)


def log_softmax(x: Any, axis: int = -1, where: Any = None) -> np.ndarray:
    """x_i − log Σ_j e^{x_j} over kept entries; dropped/−∞ entries give −∞, empty rows 0."""
    x = _f64(x)
    keep = _kept(x, where)
    m = np.max(np.where(keep, x, -np.inf), axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    total = np.where(keep, np.exp(np.where(keep, x, m) - m), 0.0).sum(axis=axis, keepdims=True)
    empty = total == 0
    out = np.where(keep, x - m - np.log(np.where(empty, 1.0, total)), -np.inf)
    return np.where(empty, 0.0, out)


# ---------------------------------------------------------------------------- losses


def reduce_losses(losses: Any, reduction: str = "mean", where: Any = None) -> np.ndarray:
    """mean / sum / none over the (kept) per-element losses; a masked mean divides by the count."""
    losses = _f64(losses)
    if where is not None:
        where = np.asarray(where, bool)
        losses = np.where(where, losses, 0.0)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return np.asarray(losses.sum())
    count = losses.size if where is None else int(where.sum())
    return np.asarray(losses.sum() / max(count, 1))


def mse(pred: Any, target: Any, reduction: str = "mean") -> np.ndarray:
    """(pred − target)², reduced."""
    return reduce_losses((_f64(pred) - _f64(target)) ** 2, reduction)


def cross_entropy(
    logits: Any,
    labels: Any,
    label_smoothing: float = 0.0,
    where: Any = None,
    reduction: str = "mean",
) -> np.ndarray:
    """−Σ_k q_k·log softmax(z)_k with q = onehot(labels) (integer ids) or the given targets.

    Label smoothing α: q ← (1 − α)q + α/K′ on the classes whose logit is not −∞ (K′ of them).
    Terms with q_k = 0 contribute 0 (so −∞ logits with no target mass are harmless).
    """
    z = _f64(logits)
    labels = np.asarray(labels)
    num_classes = z.shape[-1]
    if np.issubdtype(labels.dtype, np.integer):
        ids = labels if where is None else labels[np.asarray(where, bool)]
        if np.any((ids < 0) | (ids >= num_classes)):
            raise ValueError(f"labels out of range [0, {num_classes}).")
        safe = np.where((labels >= 0) & (labels < num_classes), labels, 0)
        q = np.eye(num_classes)[safe]  # (..., K) one-hot
    else:
        q = _f64(labels)
    allowed = z > -np.inf
    if label_smoothing > 0:
        count = np.maximum(allowed.sum(axis=-1, keepdims=True), 1)
        q = (1 - label_smoothing) * q + label_smoothing * allowed / count
    logp = log_softmax(z)
    terms = np.where(q != 0, q * np.where(q != 0, logp, 0.0), 0.0)
    return reduce_losses(-terms.sum(axis=-1), reduction, where)


def binary_cross_entropy_with_logits(logits: Any, targets: Any, reduction: str = "mean"):
    """−y·log σ(z) − (1 − y)·log(1 − σ(z)) = softplus(z) − y·z."""
    z, y = _f64(logits), _f64(targets)
    return reduce_losses(softplus(z) - y * z, reduction)


def binary_cross_entropy(
    probs: Any, targets: Any, eps: float = 1e-7, reduction: str = "mean"
) -> np.ndarray:
    """−y·log max(p, ε) − (1 − y)·log max(1 − p, ε)."""
    p, y = _f64(probs), _f64(targets)
    return reduce_losses(
        -(y * np.log(np.maximum(p, eps)) + (1 - y) * np.log(np.maximum(1 - p, eps))), reduction
    )


def l2_penalty(leaves: list[Any]) -> float:
    """½·Σ θ² over the given arrays (the caller selects the masked leaves)."""
    return 0.5 * float(sum(np.sum(_f64(leaf) ** 2) for leaf in leaves))
