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
    "cosine_similarity",
    "cross_entropy",
    "ctc_loss",
    "dice_loss",
    "elu",
    "elu_grad",
    "entmax15",
    "entmax15_loss",
    "entmax_bisect",
    "entmax_bisect_loss",
    "entmax_vjp",
    "gaussian_nll_loss",
    "gelu",
    "gelu_grad",
    "glu",
    "hard_sigmoid",
    "hard_sigmoid_grad",
    "hard_swish",
    "hard_swish_grad",
    "hard_tanh",
    "hard_tanh_grad",
    "hinge_loss",
    "huber_loss",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "l1_loss",
    "l2_penalty",
    "leaky_relu",
    "leaky_relu_grad",
    "log_cosh",
    "log_sigmoid",
    "log_sigmoid_grad",
    "log_softmax",
    "mish",
    "mish_grad",
    "mse",
    "multiclass_hinge_loss",
    "multiclass_sparsemax_loss",
    "nll_loss",
    "ntxent",
    "perceptron_loss",
    "poisson_nll_loss",
    "poly_loss_cross_entropy",
    "reduce_losses",
    "relu",
    "relu6",
    "relu6_grad",
    "relu_grad",
    "selu",
    "selu_grad",
    "sigmoid",
    "sigmoid_focal_loss",
    "sigmoid_grad",
    "silu",
    "silu_grad",
    "smooth_l1_loss",
    "softmax",
    "softplus",
    "softplus_grad",
    "softsign",
    "softsign_grad",
    "sparsemax",
    "sparsemax_loss",
    "squareplus",
    "squareplus_grad",
    "tanh",
    "tanh_grad",
    "triplet_margin_loss",
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
    g = np.where(p > 0, np.where(p > 0, p, 1.0) ** (2.0 - alpha), 0.0)  # no 0^(negative)
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


# ------------------------------------------------------------ the rest of the losses
# Per-element (or per-row) losses; reduce them with `reduce_losses(..., where=...)`.


def l1_loss(pred: Any, targets: Any) -> np.ndarray:
    """|pred − targets|."""
    return np.abs(_f64(pred) - _f64(targets))


def smooth_l1_loss(pred: Any, targets: Any, beta: float = 1.0) -> np.ndarray:
    """½d²/β if |d| < β else |d| − ½β."""
    d = np.abs(_f64(pred) - _f64(targets))
    if beta == 0:
        return d
    return np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta)


def huber_loss(pred: Any, targets: Any, delta: float = 1.0) -> np.ndarray:
    """½d² if |d| ≤ δ else δ(|d| − ½δ)."""
    d = np.abs(_f64(pred) - _f64(targets))
    return np.where(d <= delta, 0.5 * d**2, delta * (d - 0.5 * delta))


def log_cosh(pred: Any, targets: Any) -> np.ndarray:
    """log cosh d = log((eᵈ + e⁻ᵈ)/2), via logaddexp."""
    d = _f64(pred) - _f64(targets)
    return np.logaddexp(d, -d) - math.log(2.0)


def gaussian_nll_loss(
    pred: Any, targets: Any, var: Any, full: bool = False, eps: float = 1e-6
) -> np.ndarray:
    """½(log v + (pred − targets)²/v), v = max(var, ε) (+ ½ log 2π)."""
    v = np.maximum(_f64(var), eps)
    out = 0.5 * (np.log(v) + (_f64(pred) - _f64(targets)) ** 2 / v)
    return out + (0.5 * math.log(2 * math.pi) if full else 0.0)


def poisson_nll_loss(
    pred: Any, targets: Any, log_input: bool = True, full: bool = False, eps: float = 1e-8
) -> np.ndarray:
    """e^x − y·x (log input) or x − y·log(x + ε); full adds y log y − y + ½ log(2πy) for y > 1."""
    x, y = _f64(pred), _f64(targets)
    out = np.exp(x) - y * x if log_input else x - y * np.log(x + eps)
    if full:
        ys = np.where(y > 1, y, 2.0)
        out = out + np.where(y > 1, ys * np.log(ys) - ys + 0.5 * np.log(2 * math.pi * ys), 0.0)
    return out


def kl_divergence(log_predictions: Any, targets: Any) -> np.ndarray:
    """Σ_k q_k (log q_k − log p_k), with 0·log 0 = 0, over the last axis."""
    logp, q = _f64(log_predictions), _f64(targets)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * (np.log(np.where(q > 0, q, 1.0)) - logp), 0.0)
    return terms.sum(-1)


def kl_divergence_with_log_targets(log_predictions: Any, log_targets: Any) -> np.ndarray:
    """Σ_k e^{log q_k}(log q_k − log p_k), terms with log q_k = −∞ dropped."""
    logp, logq = _f64(log_predictions), _f64(log_targets)
    with np.errstate(invalid="ignore"):
        terms = np.where(logq > -np.inf, np.exp(logq) * (logq - logp), 0.0)
    return terms.sum(-1)


def nll_loss(log_probs: Any, targets: Any) -> np.ndarray:
    """−log_probs[..., y]."""
    logp = _f64(log_probs)
    return -np.take_along_axis(logp, np.asarray(targets)[..., None], axis=-1)[..., 0]


def poly_loss_cross_entropy(logits: Any, targets: Any, epsilon: float = 2.0) -> np.ndarray:
    """CE(z, q) + ε(1 − Σ q_k p_k)."""
    z = _f64(logits)
    labels = np.asarray(targets)
    q = np.eye(z.shape[-1])[labels] if np.issubdtype(labels.dtype, np.integer) else _f64(labels)
    ce = cross_entropy(z, labels, reduction="none")
    return ce + epsilon * (1 - (q * softmax(z)).sum(-1))


def hinge_loss(scores: Any, targets: Any) -> np.ndarray:
    """max(0, 1 − s·y)."""
    return np.maximum(0.0, 1 - _f64(scores) * _f64(targets))


def perceptron_loss(scores: Any, targets: Any) -> np.ndarray:
    """max(0, −s·y)."""
    return np.maximum(0.0, -_f64(scores) * _f64(targets))


def multiclass_hinge_loss(scores: Any, targets: Any) -> np.ndarray:
    """max_k (s_k + 1 − [k = y]) − s_y."""
    s = _f64(scores)
    onehot = np.eye(s.shape[-1])[np.asarray(targets)]
    return (s + 1 - onehot).max(-1) - (s * onehot).sum(-1)


def sigmoid_focal_loss(
    logits: Any, targets: Any, alpha: float | None = None, gamma: float = 2.0
) -> np.ndarray:
    """BCE·(1 − p_t)^γ, 1 − p_t = y σ(−z) + (1 − y) σ(z), optionally α-weighted."""
    z, y = _f64(logits), _f64(targets)
    bce = y * softplus(-z) + (1 - y) * softplus(z)
    out = bce * (y * sigmoid(-z) + (1 - y) * sigmoid(z)) ** gamma
    return out if alpha is None else (alpha * y + (1 - alpha) * (1 - y)) * out


def sparsemax_loss(logits: Any, targets: Any) -> np.ndarray:
    """sparse_plus(−z if y else z): 0, (u + 1)²/4 or u."""
    z, y = _f64(logits), _f64(targets)
    u = np.where(y > 0, -z, z)
    return np.where(u <= -1, 0.0, np.where(u >= 1, u, (u + 1) ** 2 / 4))


def multiclass_sparsemax_loss(scores: Any, targets: Any) -> np.ndarray:
    """⟨p, s⟩ − s_y + ½(1 − ‖p‖²), p = sparsemax(s) (by bisection)."""
    s = _f64(scores)
    p = sparsemax(s)
    s_y = np.take_along_axis(s, np.asarray(targets)[..., None], axis=-1)[..., 0]
    return (p * s).sum(-1) - s_y + 0.5 * (1 - (p * p).sum(-1))


def cosine_similarity(pred: Any, targets: Any, epsilon: float = 1e-16) -> np.ndarray:
    """⟨a, b⟩ / (√max(‖a‖², ε)·√max(‖b‖², ε)) over the last axis."""
    a, b = _f64(pred), _f64(targets)
    na = np.sqrt(np.maximum((a * a).sum(-1), epsilon))
    nb = np.sqrt(np.maximum((b * b).sum(-1), epsilon))
    return (a * b).sum(-1) / (na * nb)


def triplet_margin_loss(
    anchors: Any,
    positives: Any,
    negatives: Any,
    margin: float = 1.0,
    norm_degree: float = 2.0,
    eps: float = 1e-6,
) -> np.ndarray:
    """max(d(a, p) − d(a, n) + m, 0), d(u, v) = (Σ|u − v|^q + ε)^{1/q}."""
    a, p, n = _f64(anchors), _f64(positives), _f64(negatives)

    def d(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return ((np.abs(u - v) ** norm_degree).sum(-1) + eps) ** (1 / norm_degree)

    return np.maximum(d(a, p) - d(a, n) + margin, 0.0)


def ntxent(embeddings: Any, labels: Any, temperature: float = 0.07, where: Any = None) -> float:
    """Mean over the positive pairs (i ≠ j, same label) of
    −log(e^{c_ij}/(e^{c_ij} + Σ_{negatives k} e^{c_ik})), c = cosine/τ. With `where`, the
    masked examples are dropped first: neither anchors, positives nor negatives."""
    e = _f64(embeddings)
    labels = np.asarray(labels)
    if where is not None:
        keep = np.asarray(where, bool)
        e, labels = e[keep], labels[keep]
    unit = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-8)
    c = unit @ unit.T / temperature
    total, count = 0.0, 0
    for i in range(len(e)):
        negatives = [k for k in range(len(e)) if labels[k] != labels[i]]
        for j in range(len(e)):
            if j != i and labels[j] == labels[i]:
                logits = np.array([c[i, j], *c[i, negatives]])
                top = logits.max()
                total += -(c[i, j] - top - np.log(np.exp(logits - top).sum()))
                count += 1
    return total / max(count, 1)


def dice_loss(
    logits: Any,
    targets: Any,
    smooth: float = 1.0,
    alpha: float = 0.5,
    beta: float = 0.5,
    apply_softmax: bool = True,
    class_weights: Any = None,
    where: Any = None,
) -> np.ndarray:
    """w_c·(1 − (I + s)/(I + α(ΣP − I) + β(ΣY − I) + s)) per sample and class, (B, C); the
    sums run over the pixels `where` keeps (B, *spatial) — the others hold 0 in P and Y."""
    z, y = _f64(logits), _f64(targets)
    keep = np.ones(z.shape[:-1], bool) if where is None else np.asarray(where, bool)
    z = np.where(keep[..., None], z, 0.0)  # masked pixels may hold NaN: never computed on
    p = (sigmoid(z) if z.shape[-1] == 1 else softmax(z)) if apply_softmax else z
    p, y = np.where(keep[..., None], p, 0.0), np.where(keep[..., None], y, 0.0)
    axes = tuple(range(1, z.ndim - 1))
    i = (p * y).sum(axes)
    den = i + alpha * (p.sum(axes) - i) + beta * (y.sum(axes) - i) + smooth
    out = 1 - (i + smooth) / den
    return out if class_weights is None else out * _f64(class_weights)


def _tsallis_loss(scores: Any, targets: Any, p: np.ndarray, alpha: float) -> np.ndarray:
    """⟨p, s⟩ − s_y + (1 − Σ p^α)/(α(α − 1)): the Fenchel–Young loss of the Tsallis entropy."""
    s = _f64(scores)
    s_y = np.take_along_axis(s, np.asarray(targets)[..., None], axis=-1)[..., 0]
    return (p * s).sum(-1) - s_y + (1 - (p**alpha).sum(-1)) / (alpha * (alpha - 1))


def entmax_bisect_loss(scores: Any, targets: Any, alpha: float = 1.5) -> np.ndarray:
    """The α-entmax loss with p = entmax_bisect(s, α) (α > 1)."""
    return _tsallis_loss(scores, targets, entmax_bisect(scores, alpha), alpha)


def entmax15_loss(scores: Any, targets: Any) -> np.ndarray:
    """The 1.5-entmax loss: ⟨p, s⟩ − s_y + (1 − Σ p^{3/2})/0.75, p = entmax15(s)."""
    return _tsallis_loss(scores, targets, entmax15(scores), 1.5)


def ctc_loss(
    logits: Any,
    targets: Any,
    input_lengths: Any = None,
    target_lengths: Any = None,
    blank_id: int = 0,
) -> np.ndarray:
    """−log p(y | x) by the forward algorithm in float64 log space, one sequence at a time."""
    z = _f64(logits)
    labels = np.asarray(targets)
    batch, steps, _ = z.shape
    out = np.zeros(batch)
    for b in range(batch):
        t_len = steps if input_lengths is None else int(input_lengths[b])
        s_len = labels.shape[1] if target_lengths is None else int(target_lengths[b])
        logp = log_softmax(z[b, :t_len])
        ext = [blank_id]
        for label in labels[b, :s_len]:
            ext += [int(label), blank_id]
        alpha = np.full(len(ext), -np.inf)
        alpha[0] = logp[0, ext[0]]
        if len(ext) > 1:
            alpha[1] = logp[0, ext[1]]
        for t in range(1, t_len):
            new = np.full(len(ext), -np.inf)
            for s in range(len(ext)):
                terms = [alpha[s]]
                if s >= 1:
                    terms.append(alpha[s - 1])
                if s >= 2 and ext[s] != blank_id and ext[s] != ext[s - 2]:
                    terms.append(alpha[s - 2])
                new[s] = np.logaddexp.reduce(terms) + logp[t, ext[s]]
            alpha = new
        tail = alpha[-1] if len(ext) == 1 else np.logaddexp(alpha[-1], alpha[-2])
        out[b] = -tail
    return out
