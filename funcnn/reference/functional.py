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
    "celu",
    "celu_grad",
    "cross_entropy",
    "elu",
    "elu_grad",
    "entmax15",
    "entmax_bisect",
    "entmax_vjp",
    "gelu",
    "gelu_grad",
    "glu",
    "hard_sigmoid",
    "hard_sigmoid_grad",
    "hard_swish",
    "hard_swish_grad",
    "hard_tanh",
    "hard_tanh_grad",
    "l2_penalty",
    "leaky_relu",
    "leaky_relu_grad",
    "log_sigmoid",
    "log_sigmoid_grad",
    "log_softmax",
    "mish",
    "mish_grad",
    "mse",
    "reduce_losses",
    "relu",
    "relu6",
    "relu6_grad",
    "relu_grad",
    "selu",
    "selu_grad",
    "sigmoid",
    "sigmoid_grad",
    "silu",
    "silu_grad",
    "softmax",
    "softplus",
    "softplus_grad",
    "softsign",
    "softsign_grad",
    "sparsemax",
    "squareplus",
    "squareplus_grad",
    "tanh",
    "tanh_grad",
]


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------- activations and f′(x)


def relu(x: Any) -> np.ndarray:
    """max(x, 0)."""
    x = _f64(x)
    return np.where(x > 0, x, 0.0)


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


def elu(x: Any, alpha: float = 1.0) -> np.ndarray:
    """x if x > 0 else α(eˣ − 1)."""
    x = _f64(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def elu_grad(x: Any, alpha: float = 1.0) -> np.ndarray:
    """1 if x > 0 else α·eˣ."""
    x = _f64(x)
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


def celu(x: Any, alpha: float = 1.0) -> np.ndarray:
    """x if x > 0 else α(e^{x/α} − 1)."""
    x = _f64(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0) / alpha))


def celu_grad(x: Any, alpha: float = 1.0) -> np.ndarray:
    """1 if x > 0 else e^{x/α}."""
    x = _f64(x)
    return np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0) / alpha))


SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def selu(x: Any) -> np.ndarray:
    """λ·elu(x, α) with Klambauer et al.'s constants."""
    return SELU_SCALE * elu(x, SELU_ALPHA)


def selu_grad(x: Any) -> np.ndarray:
    """λ if x > 0 else λ·α·eˣ."""
    return SELU_SCALE * elu_grad(x, SELU_ALPHA)


def glu(x: Any, axis: int = -1) -> np.ndarray:
    """a·σ(b) with (a, b) the halves of x along axis."""
    a, b = np.split(_f64(x), 2, axis=axis)
    return a * sigmoid(b)


def softsign(x: Any) -> np.ndarray:
    """x/(1 + |x|)."""
    x = _f64(x)
    return x / (1.0 + np.abs(x))


def softsign_grad(x: Any) -> np.ndarray:
    """1/(1 + |x|)²."""
    return 1.0 / (1.0 + np.abs(_f64(x))) ** 2


def log_sigmoid(x: Any) -> np.ndarray:
    """log σ(x) = min(x, 0) − log1p(e^{−|x|})."""
    x = _f64(x)
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def log_sigmoid_grad(x: Any) -> np.ndarray:
    """σ(−x)."""
    return sigmoid(-_f64(x))


def relu6(x: Any) -> np.ndarray:
    """min(max(x, 0), 6)."""
    return np.clip(_f64(x), 0.0, 6.0)


def relu6_grad(x: Any) -> np.ndarray:
    """1 on (0, 6), else 0."""
    x = _f64(x)
    return ((x > 0) & (x < 6)).astype(np.float64)


def hard_sigmoid(x: Any) -> np.ndarray:
    """clip(x/6 + ½, 0, 1)."""
    return np.clip(_f64(x) / 6.0 + 0.5, 0.0, 1.0)


def hard_sigmoid_grad(x: Any) -> np.ndarray:
    """1/6 on (−3, 3), else 0."""
    x = _f64(x)
    return np.where((x > -3) & (x < 3), 1.0 / 6.0, 0.0)


def hard_swish(x: Any) -> np.ndarray:
    """x·clip(x/6 + ½, 0, 1)."""
    return _f64(x) * hard_sigmoid(x)


def hard_swish_grad(x: Any) -> np.ndarray:
    """0 for x ≤ −3, x/3 + ½ on (−3, 3), 1 for x ≥ 3."""
    x = _f64(x)
    return np.where(x <= -3, 0.0, np.where(x >= 3, 1.0, x / 3.0 + 0.5))


def hard_tanh(x: Any, min_val: float = -1.0, max_val: float = 1.0) -> np.ndarray:
    """clip(x, min_val, max_val)."""
    return np.clip(_f64(x), min_val, max_val)


def hard_tanh_grad(x: Any, min_val: float = -1.0, max_val: float = 1.0) -> np.ndarray:
    """1 on (min_val, max_val), else 0."""
    x = _f64(x)
    return ((x > min_val) & (x < max_val)).astype(np.float64)


def mish(x: Any) -> np.ndarray:
    """x·tanh(softplus(x))."""
    return _f64(x) * np.tanh(softplus(x))


def mish_grad(x: Any) -> np.ndarray:
    """tanh(sp) + x·(1 − tanh²(sp))·σ(x), sp = softplus(x)."""
    x = _f64(x)
    t = np.tanh(softplus(x))
    return t + x * (1.0 - t**2) * sigmoid(x)


def squareplus(x: Any, b: float = 4.0) -> np.ndarray:
    """(x + √(x² + b))/2, as b/(2(√(x² + b) − x)) for x < 0."""
    x = _f64(x)
    h = np.hypot(x, math.sqrt(b))
    return np.where(x < 0, b / (2.0 * (h - x)), (x + h) / 2.0)


def squareplus_grad(x: Any, b: float = 4.0) -> np.ndarray:
    """(1 + x/√(x² + b))/2, as b/(2h(h − x)) for x < 0 (h = √(x² + b))."""
    x = _f64(x)
    h = np.hypot(x, math.sqrt(b))
    return np.where(x < 0, b / (2.0 * h * (h - x)), (1.0 + x / h) / 2.0)


def entmax_bisect(x: Any, alpha: float, axis: int = -1, iterations: int = 200) -> np.ndarray:
    """α-entmax by bisection on τ (independent of the sort-based JAX code):
    p = [(α − 1)·x − τ]₊^{1/(α−1)} with Σ p = 1; α = 2 is sparsemax, α = 1.5 is 1.5-entmax.

    Σ p is decreasing in τ, and τ ∈ [max − 1, max] with max = max((α − 1)·x): 200 halvings
    leave an interval far below float64's resolution.
    """
    z = np.moveaxis(_f64(x), axis, -1) * (alpha - 1.0)
    power = 1.0 / (alpha - 1.0)
    high = z.max(axis=-1, keepdims=True)
    low = high - 1.0
    for _ in range(iterations):
        tau = (low + high) / 2
        mass = (np.maximum(z - tau, 0.0) ** power).sum(axis=-1, keepdims=True)
        low = np.where(mass >= 1.0, tau, low)
        high = np.where(mass >= 1.0, high, tau)
    p = np.maximum(z - (low + high) / 2, 0.0) ** power
    return np.moveaxis(p / p.sum(axis=-1, keepdims=True), -1, axis)


def sparsemax(x: Any, axis: int = -1) -> np.ndarray:
    """[x − τ]₊ with Σ = 1 (entmax_bisect with α = 2)."""
    return entmax_bisect(x, 2.0, axis)


def entmax15(x: Any, axis: int = -1) -> np.ndarray:
    """[x/2 − τ]₊² with Σ = 1 (entmax_bisect with α = 1.5)."""
    return entmax_bisect(x, 1.5, axis)


def entmax_vjp(p: Any, cotangent: Any, alpha: float) -> np.ndarray:
    """vᵀ·∂p/∂x for α-entmax, ∂p/∂x = diag(g) − g·gᵀ/Σg with g = p^{2−α} on the support
    (g = indicator for sparsemax, √p for 1.5-entmax), along the last axis."""
    p, v = _f64(p), _f64(cotangent)
    g = np.where(p > 0, p ** (2.0 - alpha), 0.0)
    return g * v - g * (g * v).sum(-1, keepdims=True) / g.sum(-1, keepdims=True)


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
    logp = np.where(allowed, log_softmax(z), -np.inf)  # an all −∞ row: every log p is −∞
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
