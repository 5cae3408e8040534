"""Loss functions: regression (mse, l1, smooth-L1, Huber, log-cosh, Gaussian and Poisson NLL),
classification (cross-entropy, poly-1, NLL, binary cross-entropy, focal, hinge, perceptron,
sparsemax, α-entmax), distributions (KL), similarity (cosine, triplet margin, NT-Xent),
sequences (CTC), segmentation (dice), and the L2 penalty.

Every loss is `loss(prediction, targets, *, …)`: the prediction is named for what it is —
`pred` (mse), `logits` (cross_entropy, binary_cross_entropy_with_logits) or `probs`
(binary_cross_entropy) — and the second argument is always `targets`.

Every loss checks shapes at trace time and never broadcasts the prediction against `targets`
silently: (4, 1) against (4,) is a ValueError naming both shapes. Integer predictions/logits
are a TypeError. `reduction` is one of

    "mean" (default) — average over every element (or over the kept ones, with `where`),
    "sum"            — total over every (kept) element,
    "none"           — the per-element losses, shaped like the targets' rows.

Float64 NumPy transcriptions live in `funcnn.reference.functional`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._validation import (
    check_choice,
    check_floating,
    check_in_range,
    check_nonnegative_int,
    check_positive_int,
    check_real,
    check_same_shape,
)
from funcnn.activations import (
    entmax15,
    entmax_bisect,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    softplus,
    sparsemax,
)

Array = jax.Array

__all__ = [
    "REDUCTIONS",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cosine_distance",
    "cosine_similarity",
    "cross_entropy",
    "ctc_loss",
    "dice_loss",
    "entmax15_loss",
    "entmax_bisect_loss",
    "gaussian_nll_loss",
    "hinge_loss",
    "huber_loss",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "l1_loss",
    "l2_penalty",
    "log_cosh",
    "mse",
    "multiclass_hinge_loss",
    "multiclass_sparsemax_loss",
    "nll_loss",
    "ntxent",
    "perceptron_loss",
    "poisson_nll_loss",
    "poly_loss_cross_entropy",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "sparsemax_loss",
    "triplet_margin_loss",
]

REDUCTIONS = ("mean", "sum", "none")

# `binary_cross_entropy` clips p and 1 − p to at least ε before the logs, so a prediction of
# exactly 0 or 1 costs at most −log(1e-7) ≈ 16.1 instead of ∞ (on both sides alike: 1 − p is
# formed before clipping, not rounded from 1 − ε). Inputs narrower than float32 are upcast.
BCE_PROB_EPS = 1e-7


def _reduce(losses: Array, reduction: str, where: Array | None = None, *, fn: str = "") -> Array:
    """Apply `reduction`; with a `where` mask the mean divides by the number of kept entries.

    The mean of no elements at all (an empty batch) is a ValueError, not 0/0 = NaN.
    """
    if reduction == "mean" and losses.size == 0:
        raise ValueError(
            f"{fn}: the mean over an empty batch is undefined, got per-element losses of shape "
            f"{losses.shape}; pass at least one example (or reduction='sum')."
        )
    if where is None:
        if reduction == "mean":
            return jnp.mean(losses)
        return jnp.sum(losses) if reduction == "sum" else losses
    losses = jnp.where(where, losses, jnp.zeros_like(losses))
    if reduction == "none":
        return losses
    total = jnp.sum(losses)
    if reduction == "sum":
        return total
    count = jnp.sum(where).astype(losses.dtype)
    return total / jnp.maximum(count, 1)  # nothing kept → 0, not 0/0


def _compute_dtype(dtype: Any) -> Any:
    """At least float32, so bf16/fp16 inputs don't lose the loss to rounding."""
    return jnp.promote_types(dtype, jnp.float32)


def mse(pred: Array, targets: Array, *, reduction: str = "mean") -> Array:
    """Mean squared error: ℓ_i = (pred_i − targets_i)²;  ∂ℓ_i/∂pred_i = 2·(pred_i − targets_i).

    `pred` and `targets` must have the same shape (any). With reduction="mean" the result is
    (1/N)·Σ_i ℓ_i over all N elements (PyTorch's `MSELoss` default).
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    check_floating(pred, "mse: pred")
    check_same_shape(pred, targets, "pred", "targets")
    pred = jnp.asarray(pred)
    pred = pred.astype(_compute_dtype(pred.dtype))
    return _reduce(jnp.square(pred - jnp.asarray(targets).astype(pred.dtype)), reduction, fn="mse")


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_unit_interval(x: Any, fn: str, name: str) -> None:
    """Where `x` is concrete, refuse entries outside [0, 1] (a target of 2, a probability of
    1.5): they give numbers, not errors. Under `jit` the values cannot be seen."""
    if not _is_concrete(x):
        return
    values = np.asarray(x)
    bad = ~((values >= 0) & (values <= 1))
    if bad.any():
        raise ValueError(
            f"{fn}: {name} must lie in [0, 1], got {values[bad][:5].tolist()} "
            f"({int(bad.sum())} of {values.size} entries outside)."
        )


def _check_labels_in_range(
    labels: Array, num_classes: int, where: Array | None, fn: str = "cross_entropy"
) -> None:
    """Eagerly reject out-of-range class ids when the labels are concrete (not traced)."""
    if not (_is_concrete(labels) and (where is None or _is_concrete(where))):
        return
    ids = np.asarray(labels)
    if where is not None:
        ids = ids[np.asarray(where)]  # masked positions may hold padding ids like −100
    bad = (ids < 0) | (ids >= num_classes)
    if bad.any():
        raise ValueError(
            f"{fn}: targets must be class ids in [0, {num_classes}), got "
            f"{ids[bad][:5].tolist()} (logits have {num_classes} classes). Mask padding with "
            f"`where`."
        )


def _check_where(
    where: Any, label_shape: tuple[int, ...], fn: str = "cross_entropy", of: str = "the label"
) -> Array | None:
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"{fn}: where must be a boolean mask, got dtype {where.dtype}.")
    if where.shape != label_shape:
        raise ValueError(
            f"{fn}: where.shape={where.shape} must equal {of} shape "
            f"{'logits.shape[:-1]=' if fn == 'cross_entropy' else ''}{label_shape}."
        )
    return where


def cross_entropy(
    logits: Array,
    targets: Array,
    *,
    label_smoothing: float = 0.0,
    where: Any = None,
    reduction: str = "mean",
) -> Array:
    """Softmax cross-entropy: ℓ = −Σ_k q_k · log softmax(z)_k  over the last (class) axis.

    Shapes: logits z (..., K). `targets` is either
      * integer class ids y of shape (...) = logits.shape[:-1]: q = onehot(y), so ℓ = −log p_y;
      * floating probability targets q of shape (..., K) (each row should sum to 1).
    Gradient: ∂ℓ/∂z_k = p_k − q_k with p = softmax(z) (for rows of q summing to 1).

    label_smoothing α ∈ [0, 1]: q ← (1 − α)·q + α/K′ on every allowed class (α = 1 is the
    uniform target), where K′ counts
    the classes whose logit is not −∞ (K′ = K without masking — PyTorch's convention), so
    −∞-masked classes never receive target mass and the loss stays finite.

    where: optional bool mask of the label shape (...); masked positions contribute 0 and
    "mean" divides by the number of kept positions (e.g. padding in a language model).

    Stability: computed from `log_softmax`, finite with finite gradients for |z| up to 1e4 and
    for non-target logits set to −∞. A row whose every logit is −∞ gives ℓ = +∞ (the target
    has probability 0), with zero gradient; mask such padding rows with `where`. Soft
    targets with negative entries are a ValueError when concrete and a NaN row under `jit`.
    Out-of-range class ids raise a ValueError when the targets are concrete; under `jit` they
    cannot be checked and yield a NaN loss instead of a silently wrong number.

    >>> import jax.numpy as jnp
    >>> from funcnn.losses import cross_entropy
    >>> logits = jnp.zeros((2, 2))  # (B, K): both classes equally likely
    >>> round(float(cross_entropy(logits, jnp.array([0, 1]))), 6)  # −log ½
    0.693147
    >>> cross_entropy(logits, jnp.array([0, 1]), reduction="none").shape
    (2,)
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    alpha = check_in_range(label_smoothing, "label_smoothing", 0.0, 1.0, high_inclusive=True)
    logits = jnp.asarray(logits)
    check_floating(logits, "cross_entropy: logits")
    if logits.ndim < 1:
        raise ValueError(f"cross_entropy: logits need a class axis, got shape {logits.shape}.")
    labels = jnp.asarray(targets)
    label_shape, num_classes = logits.shape[:-1], logits.shape[-1]
    where = _check_where(where, label_shape)

    if where is not None:  # padding never enters the arithmetic (value or gradient)
        logits = _clean(logits, where)
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            labels = _clean(labels, where)
    logp = log_softmax(logits.astype(_compute_dtype(logits.dtype)), axis=-1)  # (..., K)
    allowed = logits > -jnp.inf  # classes that can receive probability
    if jnp.issubdtype(labels.dtype, jnp.integer):
        if labels.shape != label_shape:
            raise ValueError(
                f"cross_entropy: integer class-id targets must have shape logits.shape[:-1]="
                f"{label_shape}, got targets.shape={labels.shape} (logits.shape={logits.shape})."
            )
        _check_labels_in_range(labels, num_classes, where)
        losses = _class_id_loss(logp, labels, allowed, alpha)
    elif jnp.issubdtype(labels.dtype, jnp.floating):
        if labels.shape != logits.shape:
            raise ValueError(
                f"cross_entropy: probability targets must have the logits' shape "
                f"{logits.shape}, got targets.shape={labels.shape}. For class ids pass an "
                f"integer array of shape {label_shape}."
            )
        _check_nonnegative(labels, where)
        losses = _soft_target_loss(logp, labels.astype(logp.dtype), allowed, alpha)
    else:
        raise TypeError(
            f"cross_entropy: targets must be integer class ids or float probabilities, got "
            f"dtype {labels.dtype}."
        )
    # A row whose every logit is −∞ gives every class probability 0, so ℓ = +∞ (log_softmax
    # returns zeros for such a row to keep gradients finite, which would read as ℓ = −0).
    # The constant +∞ carries no gradient; a masked-out (padding) row still contributes 0.
    nothing_allowed = ~jnp.any(allowed, axis=-1)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        nothing_allowed = nothing_allowed & jnp.any(labels != 0, axis=-1)
    losses = jnp.where(nothing_allowed, jnp.full_like(losses, jnp.inf), losses)
    return _reduce(losses, reduction, where, fn="cross_entropy")


def _check_nonnegative(targets: Array, where: Array | None) -> None:
    """Refuse concrete soft targets with negative mass (q = (1.2, −0.2) sums to 1 but is no
    distribution: its loss rewards the model for *lowering* p₂). Traced targets cannot be
    read here; `_soft_target_loss` turns such rows into NaN instead."""
    if not (_is_concrete(targets) and (where is None or _is_concrete(where))):
        return
    q = np.asarray(targets)
    if where is not None:
        q = q[np.asarray(where)]
    bad = q < 0
    if bad.any():
        raise ValueError(
            f"cross_entropy: probability targets must be non-negative, got {q[bad][:5].tolist()} "
            f"({int(bad.sum())} negative entries); each row must be a distribution over the "
            f"last axis."
        )


def _smoothing_term(logp: Array, allowed: Array) -> Array:
    """−(1/K′)·Σ_{allowed k} log p_k: the loss against the uniform distribution over allowed k."""
    safe = jnp.where(allowed, logp, jnp.zeros_like(logp))  # −∞ entries never enter a product
    count = jnp.maximum(jnp.sum(allowed, axis=-1), 1).astype(logp.dtype)
    return -jnp.sum(safe, axis=-1) / count


def _class_id_loss(logp: Array, labels: Array, allowed: Array, alpha: float) -> Array:
    """ℓ = −(1 − α)·log p_y − α·mean_{allowed k} log p_k; NaN where y ∉ [0, K)."""
    num_classes = logp.shape[-1]
    in_range = (labels >= 0) & (labels < num_classes)
    safe_ids = jnp.where(in_range, labels, 0)  # gather a valid index; the result is replaced
    nll = -jnp.take_along_axis(logp, safe_ids[..., None], axis=-1)[..., 0]
    if alpha > 0:
        nll = (1 - alpha) * nll + alpha * _smoothing_term(logp, allowed)
    return jnp.where(in_range, nll, jnp.full_like(nll, jnp.nan))


def _soft_target_loss(logp: Array, q: Array, allowed: Array, alpha: float) -> Array:
    """ℓ = −Σ_k q_k·log p_k with q smoothed as documented;  ∂ℓ/∂q_k = −log p_k for every
    class with a finite logit — also where q_k = 0 (targets are differentiable inputs, e.g.
    in distillation). Only a −∞-masked class with q_k = 0 is dropped (0·∞ would be NaN);
    target mass on a −∞ class gives ℓ = +∞, as it should."""
    if alpha > 0:
        count = jnp.maximum(jnp.sum(allowed, axis=-1, keepdims=True), 1).astype(q.dtype)
        q = (1 - alpha) * q + alpha * allowed.astype(q.dtype) / count
    negative = jnp.any(q < 0, axis=-1)  # no distribution: NaN, never a plausible number
    used = allowed | (q != 0)
    safe_logp = jnp.where(used, logp, jnp.zeros_like(logp))
    loss = -jnp.sum(q * safe_logp, axis=-1)
    return jnp.where(negative, jnp.full_like(loss, jnp.nan), loss)


def binary_cross_entropy_with_logits(
    logits: Array, targets: Array, *, reduction: str = "mean"
) -> Array:
    """Binary cross-entropy on logits: ℓ = −y·log σ(z) − (1 − y)·log(1 − σ(z)).

    Stable form: ℓ = y·softplus(−z) + (1 − y)·softplus(z) (= softplus(z) − y·z), finite for
    |z| ≥ 1e4; a term whose weight y or 1 − y is 0 is dropped, so a −∞-masked logit with
    y = 0 (or +∞ with y = 1) gives ℓ = 0 rather than 0·∞ = NaN. Gradient: ∂ℓ/∂z = σ(z) − y
    exactly (= ½ − y at z = 0). `targets` y ∈ [0, 1] (soft targets allowed) must have the
    logits' shape; concrete targets outside [0, 1] are a ValueError.
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    check_floating(logits, "binary_cross_entropy_with_logits: logits")
    check_same_shape(logits, targets, "logits", "targets")
    _check_unit_interval(targets, "binary_cross_entropy_with_logits", "targets")
    z = jnp.asarray(logits)
    z = z.astype(_compute_dtype(z.dtype))
    y = jnp.asarray(targets).astype(z.dtype)
    positive = jnp.where(y > 0, y * softplus(-z), 0)  # −y·log σ(z)
    negative = jnp.where(y < 1, (1 - y) * softplus(z), 0)  # −(1 − y)·log(1 − σ(z))
    return _reduce(positive + negative, reduction, fn="binary_cross_entropy_with_logits")


def binary_cross_entropy(
    probs: Array, targets: Array, *, eps: float = BCE_PROB_EPS, reduction: str = "mean"
) -> Array:
    """Binary cross-entropy on probabilities: ℓ = −y·log p − (1 − y)·log(1 − p).

    Both log arguments are clipped below at ε = `eps` (default 1e-7, see BCE_PROB_EPS):
    ℓ = −y·log max(p, ε) − (1 − y)·log max(1 − p, ε), so p ∈ {0, 1} gives a finite loss
    (at most −log ε ≈ 16.1). ∂ℓ/∂p = (p − y)/(p·(1 − p)) for p ∈ [ε, 1 − ε]; a clipped log
    passes no gradient.
    Prefer `binary_cross_entropy_with_logits` when you have logits: it needs no clipping.
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    eps = check_in_range(eps, "eps", 0.0, 0.5, low_inclusive=False)
    check_floating(probs, "binary_cross_entropy: probs")
    check_same_shape(probs, targets, "probs", "targets")
    _check_unit_interval(probs, "binary_cross_entropy", "probs")
    _check_unit_interval(targets, "binary_cross_entropy", "targets")
    p = jnp.asarray(probs)
    p = p.astype(_compute_dtype(p.dtype))
    y = jnp.asarray(targets).astype(p.dtype)
    log_p = jnp.log(jnp.maximum(p, eps))
    log_not_p = jnp.log(jnp.maximum(1 - p, eps))
    return _reduce(-(y * log_p + (1 - y) * log_not_p), reduction, fn="binary_cross_entropy")


def l2_penalty(params: Any, mask: Any = None) -> Array:
    """L2 penalty ½·Σ_leaves Σ θ² over the leaves selected by `mask`;  ∂/∂θ = θ (selected).

    `mask` is None (every leaf), a pytree of Python bools with the params' structure (e.g.
    `funcnn.params.decay_mask(params)`, which skips biases and norm gains), or a callable
    `params -> mask`. Sums are accumulated in at least float32.
    """
    if callable(mask):
        mask = mask(params)
    leaves = jax.tree.leaves(params)
    if mask is None:
        keep = [True] * len(leaves)
    else:
        try:
            keep = jax.tree.leaves(jax.tree.map(lambda _, m: m, params, mask))
        except ValueError as e:
            raise ValueError(
                f"l2_penalty: mask must have the same tree structure as params: {e}"
            ) from None
        keep = [bool(k) for k in keep]
    total = jnp.zeros((), jnp.float32)
    for leaf, use in zip(leaves, keep, strict=True):
        if use:
            leaf = jnp.asarray(leaf)
            total = total + jnp.sum(jnp.square(leaf.astype(_compute_dtype(leaf.dtype))))
    return 0.5 * total


# ============================================================== the rest of the catalogue
# Names follow optax.losses where optax has the loss, else torch.nn.functional (the other
# peer's name and any difference in convention is in each docstring). Every loss here:
#   * checks shapes at trace time and never broadcasts silently;
#   * takes `where` (bool, the shape of the per-element — or per-row — losses): masked
#     entries are replaced by harmless values *before* any arithmetic, so NaN/inf garbage in
#     padding changes neither the value nor the gradient, and "mean" divides by the number
#     of kept entries (0 when nothing is kept, never 0/0);
#   * computes in at least float32.


def _prepare(
    fn: str, reduction: str, where: Any, shape: tuple[int, ...], *arrays: Any
) -> tuple[Array | None, list[Array]]:
    """Validate `reduction` and `where` (of the per-element loss shape) and return the mask
    and the arrays upcast to a common float dtype (at least float32)."""
    check_choice(reduction, "reduction", REDUCTIONS)
    mask = _check_where(where, shape, fn, of="the per-element loss")
    out = [jnp.asarray(a) for a in arrays]
    dtype = _compute_dtype(jnp.result_type(*[a.dtype for a in out]))
    return mask, [a.astype(dtype) for a in out]


def _clean(x: Array, mask: Array | None, fill: float = 0.0) -> Array:
    """x where the (broadcast) mask keeps it, `fill` elsewhere: padding never enters the math."""
    if mask is None:
        return x
    mask = mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))
    return jnp.where(mask, x, jnp.full_like(x, fill))


def _pair(fn: str, pred: Any, targets: Any, pred_name: str = "pred") -> None:
    check_floating(pred, f"{fn}: {pred_name}")
    check_same_shape(pred, targets, pred_name, "targets")


def _kept_values(x: Any, where: Any, row_mask: bool = False) -> np.ndarray | None:
    """The concrete values of `x` at the entries `where` keeps (all of them without a mask),
    or None when either is traced: the value checks below skip padding, which may hold
    anything, and cannot look inside `jit`."""
    if not (_is_concrete(x) and (where is None or _is_concrete(where))):
        return None
    values = np.asarray(x)
    if where is None:
        return values.ravel()
    keep = np.asarray(where, bool)
    if row_mask:
        keep = np.broadcast_to(keep[..., None], values.shape)
    return values[np.broadcast_to(keep, values.shape)] if keep.shape == values.shape else values


def _refuse_negative(x: Any, where: Any, fn: str, what: str, row_mask: bool = False) -> None:
    values = _kept_values(x, where, row_mask)
    if values is not None and (values < 0).any():
        raise ValueError(f"{fn}: {what}, got {values[values < 0][:5].tolist()}.")


# ------------------------------------------------------------------------- regression


def l1_loss(pred: Array, targets: Array, *, where: Any = None, reduction: str = "mean") -> Array:
    """Mean absolute error: ℓ_i = |pred_i − targets_i|;  ∂ℓ_i/∂pred_i = sign(pred_i − targets_i)
    (0 at a tie). Shapes: any, equal. torch's `l1_loss`; optax has no L1."""
    _pair("l1_loss", pred, targets)
    mask, (p, y) = _prepare("l1_loss", reduction, where, jnp.shape(pred), pred, targets)
    return _reduce(jnp.abs(_clean(p, mask) - _clean(y, mask)), reduction, mask, fn="l1_loss")


def smooth_l1_loss(
    pred: Array, targets: Array, *, beta: float = 1.0, where: Any = None, reduction: str = "mean"
) -> Array:
    """Smooth L1 (torch's `smooth_l1_loss`): with d = pred − targets,
        ℓ = ½·d²/β  if |d| < β,   |d| − ½·β  otherwise;   ∂ℓ/∂d = d/β or sign(d).
    β = beta ≥ 0 (β = 0 is the L1 loss). `huber_loss(δ)` = δ·smooth_l1_loss(β = δ)."""
    _pair("smooth_l1_loss", pred, targets)
    beta = check_in_range(beta, "beta", 0.0, math.inf)
    mask, (p, y) = _prepare("smooth_l1_loss", reduction, where, jnp.shape(pred), pred, targets)
    d = jnp.abs(_clean(p, mask) - _clean(y, mask))
    if beta == 0:
        return _reduce(d, reduction, mask, fn="smooth_l1_loss")
    quadratic = jnp.minimum(d, beta)  # optax's form: one branch per region, no doubled gradient
    losses = 0.5 * quadratic**2 / beta + (d - quadratic)
    return _reduce(losses, reduction, mask, fn="smooth_l1_loss")


def huber_loss(
    pred: Array, targets: Array, *, delta: float = 1.0, where: Any = None, reduction: str = "mean"
) -> Array:
    """Huber loss (optax's and torch's `huber_loss`): with d = pred − targets,
        ℓ = ½·d²  if |d| ≤ δ,   δ·(|d| − ½·δ)  otherwise;   ∂ℓ/∂d = d or δ·sign(d).
    δ = delta > 0. (optax returns the per-element losses; reduce with reduction="none".)"""
    _pair("huber_loss", pred, targets)
    delta = check_in_range(delta, "delta", 0.0, math.inf, low_inclusive=False)
    mask, (p, y) = _prepare("huber_loss", reduction, where, jnp.shape(pred), pred, targets)
    d = jnp.abs(_clean(p, mask) - _clean(y, mask))
    quadratic = jnp.minimum(d, delta)
    losses = 0.5 * quadratic**2 + delta * (d - quadratic)
    return _reduce(losses, reduction, mask, fn="huber_loss")


def log_cosh(pred: Array, targets: Array, *, where: Any = None, reduction: str = "mean") -> Array:
    """Log-cosh (optax's `log_cosh`): ℓ = log cosh(d), d = pred − targets;  ∂ℓ/∂d = tanh(d).

    Stable form: log cosh d = |d| + softplus(−2|d|) − log 2 (cosh overflows at |d| ≈ 89 in
    float32; this is finite for |d| = 1e4 and beyond)."""
    _pair("log_cosh", pred, targets)
    mask, (p, y) = _prepare("log_cosh", reduction, where, jnp.shape(pred), pred, targets)
    d = _clean(p, mask) - _clean(y, mask)
    a = jnp.abs(d)
    return _reduce(a + softplus(-2 * a) - math.log(2.0), reduction, mask, fn="log_cosh")


def gaussian_nll_loss(
    pred: Array,
    targets: Array,
    var: Array,
    *,
    full: bool = False,
    eps: float = 1e-6,
    where: Any = None,
    reduction: str = "mean",
) -> Array:
    """Gaussian negative log-likelihood (torch's `gaussian_nll_loss`): with v = max(var, ε),
        ℓ = ½·(log v + (pred − targets)²/v)  (+ ½·log 2π with full=True);
        ∂ℓ/∂pred = (pred − targets)/v,  ∂ℓ/∂var = ½·(1/v − (pred − targets)²/v²) for var > ε.
    Shapes: pred, targets and var all equal (torch also broadcasts a var with one fewer
    dimension; funcnn never broadcasts). Concrete negative variances are a ValueError.
    torch clamps v under no_grad and passes the gradient through; here it is 0 below ε."""
    _pair("gaussian_nll_loss", pred, targets)
    check_same_shape(pred, var, "pred", "var")
    eps = check_in_range(eps, "eps", 0.0, math.inf, low_inclusive=False)
    _refuse_negative(var, where, "gaussian_nll_loss", "var must be non-negative")
    shape = jnp.shape(pred)
    mask, (p, y, v) = _prepare("gaussian_nll_loss", reduction, where, shape, pred, targets, var)
    v = jnp.maximum(_clean(v, mask, 1.0), eps)
    losses = 0.5 * (jnp.log(v) + jnp.square(_clean(p, mask) - _clean(y, mask)) / v)
    if full:
        losses = losses + 0.5 * math.log(2 * math.pi)
    return _reduce(losses, reduction, mask, fn="gaussian_nll_loss")


def poisson_nll_loss(
    pred: Array,
    targets: Array,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    where: Any = None,
    reduction: str = "mean",
) -> Array:
    """Poisson negative log-likelihood (torch's `poisson_nll_loss`), dropping log(y!):
        log_input=True  (pred = log λ):  ℓ = e^pred − y·pred;      ∂ℓ/∂pred = e^pred − y
        log_input=False (pred = λ ≥ 0):  ℓ = pred − y·log(pred + ε); ∂ℓ/∂pred = 1 − y/(pred + ε)
    full=True adds Stirling's y·log y − y + ½·log(2π·y) where y > 1. Shapes equal; targets
    y ≥ 0 (concrete negatives are a ValueError). e^pred is +∞ past pred ≈ 88 (float32) —
    the loss itself is that large."""
    _pair("poisson_nll_loss", pred, targets)
    eps = check_in_range(eps, "eps", 0.0, math.inf, low_inclusive=False)
    _refuse_negative(targets, where, "poisson_nll_loss", "targets are counts and must be ≥ 0")
    mask, (p, y) = _prepare("poisson_nll_loss", reduction, where, jnp.shape(pred), pred, targets)
    p, y = _clean(p, mask), _clean(y, mask)
    if log_input:
        losses = jnp.exp(p) - y * p
    else:
        losses = p - y * jnp.log(p + eps)
    if full:
        big = y > 1
        y_safe = jnp.where(big, y, 2.0)  # the unused branch never takes log 0
        stirling = y_safe * jnp.log(y_safe) - y_safe + 0.5 * jnp.log(2 * math.pi * y_safe)
        losses = losses + jnp.where(big, stirling, 0.0)
    return _reduce(losses, reduction, mask, fn="poisson_nll_loss")


# --------------------------------------------------------------------- distributions


def _rows(fn: str, x: Any, name: str) -> tuple[int, ...]:
    check_floating(x, f"{fn}: {name}")
    if jnp.ndim(x) < 1:
        raise ValueError(f"{fn}: {name} needs a class axis, got shape {jnp.shape(x)}.")
    return tuple(jnp.shape(x)[:-1])


def kl_divergence(
    log_predictions: Array, targets: Array, *, where: Any = None, reduction: str = "mean"
) -> Array:
    """KL(q ‖ p) = Σ_k q_k·(log q_k − log p_k) over the last axis (optax's `kl_divergence`).

    Shapes: log_predictions log p (..., K), targets q (..., K) probabilities; losses (...).
    0·log 0 = 0, so −∞ log-probabilities where q_k = 0 are harmless; q_k > 0 where
    log p_k = −∞ gives +∞. ∂ℓ/∂log p_k = −q_k. Concrete negative targets are a ValueError.
    torch's `kl_div(input=log p, target=q, reduction="batchmean")` is reduction="mean"
    here (torch's own "mean" also divides by K)."""
    rows = _rows("kl_divergence", log_predictions, "log_predictions")
    check_same_shape(log_predictions, targets, "log_predictions", "targets")
    _refuse_negative(targets, where, "kl_divergence", "targets must be probabilities (≥ 0)", True)
    mask, (logp, q) = _prepare("kl_divergence", reduction, where, rows, log_predictions, targets)
    logp, q = _clean(logp, mask), _clean(q, mask)
    used = q > 0
    q_safe = jnp.where(used, q, 1.0)
    logp_safe = jnp.where(used, logp, 0.0)
    terms = jnp.where(used, q * (jnp.log(q_safe) - logp_safe), 0.0)
    return _reduce(jnp.sum(terms, axis=-1), reduction, mask, fn="kl_divergence")


def kl_divergence_with_log_targets(
    log_predictions: Array, log_targets: Array, *, where: Any = None, reduction: str = "mean"
) -> Array:
    """KL(q ‖ p) = Σ_k e^{log q_k}·(log q_k − log p_k) with both given as logs (optax's
    `kl_divergence_with_log_targets`; torch's `kl_div(..., log_target=True)`).

    Shapes (..., K) → (...). Entries with log q_k = −∞ contribute 0 (value and gradient);
    ∂ℓ/∂log q_k = q_k·(log q_k − log p_k + 1)."""
    rows = _rows("kl_divergence_with_log_targets", log_predictions, "log_predictions")
    check_same_shape(log_predictions, log_targets, "log_predictions", "log_targets")
    mask, (logp, logq) = _prepare(
        "kl_divergence_with_log_targets", reduction, where, rows, log_predictions, log_targets
    )
    logp, logq = _clean(logp, mask), _clean(logq, mask)
    used = logq > -jnp.inf
    logq_safe = jnp.where(used, logq, 0.0)
    logp_safe = jnp.where(used, logp, 0.0)
    terms = jnp.where(used, jnp.exp(logq_safe) * (logq_safe - logp_safe), 0.0)
    return _reduce(jnp.sum(terms, axis=-1), reduction, mask, fn="kl_divergence_with_log_targets")


def nll_loss(
    log_probs: Array, targets: Array, *, where: Any = None, reduction: str = "mean"
) -> Array:
    """Negative log-likelihood of class ids (torch's `nll_loss`): ℓ = −log_probs[..., y].

    Shapes: log_probs (..., K), integer targets y (...) → losses (...). ∂ℓ/∂log_probs_k =
    −[k = y]. Out-of-range ids are a ValueError when concrete, NaN under jit; mask padding
    (torch's ignore_index) with `where`. `cross_entropy(z, y)` = nll_loss(log_softmax(z), y).
    """
    rows = _rows("nll_loss", log_probs, "log_probs")
    labels = jnp.asarray(targets)
    if not jnp.issubdtype(labels.dtype, jnp.integer) or labels.shape != rows:
        raise TypeError(
            f"nll_loss: targets must be integer class ids of shape log_probs.shape[:-1]={rows}, "
            f"got dtype {labels.dtype} and shape {labels.shape}."
        )
    mask, (logp,) = _prepare("nll_loss", reduction, where, rows, log_probs)
    num_classes = logp.shape[-1]
    _check_labels_in_range(labels, num_classes, mask, fn="nll_loss")
    in_range = (labels >= 0) & (labels < num_classes)
    ids = jnp.where(in_range, labels, 0)
    logp = _clean(logp, mask)
    losses = -jnp.take_along_axis(logp, ids[..., None], axis=-1)[..., 0]
    losses = jnp.where(in_range, losses, jnp.full_like(losses, jnp.nan))
    return _reduce(losses, reduction, mask, fn="nll_loss")


def poly_loss_cross_entropy(
    logits: Array,
    targets: Array,
    *,
    epsilon: float = 2.0,
    where: Any = None,
    reduction: str = "mean",
) -> Array:
    """Poly-1 cross-entropy (Leng et al. 2022; optax's `poly_loss_cross_entropy`):
        ℓ = CE(z, q) + ε·(1 − Σ_k q_k·p_k),   p = softmax(z);
        ∂ℓ/∂z_j = p_j − q_j − ε·p_j·(q_j − Σ_k q_k·p_k)  (rows of q summing to 1).
    Shapes and targets as `cross_entropy` (class ids (...) or probabilities (..., K)),
    ε = epsilon (any real; ε = 0 is the cross-entropy). Stable at |z| = 1e4."""
    epsilon = check_real(epsilon, "epsilon")
    ce = cross_entropy(logits, targets, where=where, reduction="none")
    z = jnp.asarray(logits)
    z = z.astype(_compute_dtype(z.dtype))
    mask = None if where is None else jnp.asarray(where)
    p = softmax(_clean(z, mask), axis=-1)
    labels = jnp.asarray(targets)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        ids = jnp.clip(labels, 0, z.shape[-1] - 1)
        p_target = jnp.take_along_axis(p, ids[..., None], axis=-1)[..., 0]
    else:
        p_target = jnp.sum(_clean(labels.astype(p.dtype), mask) * p, axis=-1)
    return _reduce(ce + epsilon * (1 - p_target), reduction, mask, fn="poly_loss_cross_entropy")


# ------------------------------------------------------------------- margins and signs


def _signs(fn: str, targets: Any, where: Any) -> None:
    y = _kept_values(targets, where)
    if y is not None:
        bad = ~np.isin(y, (-1, 1))
        if bad.any():
            raise ValueError(f"{fn}: targets must be ±1, got {y[bad][:5].tolist()}.")


def hinge_loss(
    scores: Array, targets: Array, *, where: Any = None, reduction: str = "mean"
) -> Array:
    """Binary hinge loss (optax's `hinge_loss`): ℓ = max(0, 1 − s·y) for y ∈ {−1, +1};
    ∂ℓ/∂s = −y where s·y < 1, else 0. Shapes equal. (torch's `hinge_embedding_loss` is a
    different loss, on distances.) Concrete targets other than ±1 are a ValueError."""
    _pair("hinge_loss", scores, targets, "scores")
    _signs("hinge_loss", targets, where)
    mask, (s, y) = _prepare("hinge_loss", reduction, where, jnp.shape(scores), scores, targets)
    return _reduce(relu(1 - _clean(s, mask) * _clean(y, mask)), reduction, mask, fn="hinge_loss")


def perceptron_loss(
    scores: Array, targets: Array, *, where: Any = None, reduction: str = "mean"
) -> Array:
    """Binary perceptron loss (optax's `perceptron_loss`): ℓ = max(0, −s·y), y ∈ {−1, +1};
    ∂ℓ/∂s = −y where s·y < 0. Shapes equal."""
    _pair("perceptron_loss", scores, targets, "scores")
    _signs("perceptron_loss", targets, where)
    mask, (s, y) = _prepare("perceptron_loss", reduction, where, jnp.shape(scores), scores, targets)
    return _reduce(relu(-_clean(s, mask) * _clean(y, mask)), reduction, mask, fn="perceptron_loss")


def _class_ids(fn: str, scores: Any, targets: Any, where: Any) -> tuple[Array, tuple[int, ...]]:
    rows = _rows(fn, scores, "scores")
    labels = jnp.asarray(targets)
    if not jnp.issubdtype(labels.dtype, jnp.integer) or labels.shape != rows:
        raise TypeError(
            f"{fn}: targets must be integer class ids of shape scores.shape[:-1]={rows}, got "
            f"dtype {labels.dtype} and shape {labels.shape}."
        )
    mask = None if where is None else jnp.asarray(where)
    _check_labels_in_range(labels, jnp.shape(scores)[-1], mask, fn=fn)
    return jnp.clip(labels, 0, jnp.shape(scores)[-1] - 1), rows


def multiclass_hinge_loss(
    scores: Array, targets: Array, *, where: Any = None, reduction: str = "mean"
) -> Array:
    """Multiclass hinge (Crammer & Singer; optax's `multiclass_hinge_loss`):
        ℓ = max_k (s_k + 1 − [k = y]) − s_y;   ∂ℓ/∂s = e_{k*} − e_y, k* the maximiser.
    Shapes: scores (..., K), integer targets (...). torch's `multi_margin_loss` is the
    Weston–Watkins form Σ_{k≠y} max(0, 1 − s_y + s_k)/K, a different loss."""
    ids, rows = _class_ids("multiclass_hinge_loss", scores, targets, where)
    mask, (s,) = _prepare("multiclass_hinge_loss", reduction, where, rows, scores)
    s = _clean(s, mask)
    onehot = jax.nn.one_hot(ids, s.shape[-1], dtype=s.dtype)
    losses = jnp.max(s + 1 - onehot, axis=-1) - jnp.sum(s * onehot, axis=-1)
    return _reduce(losses, reduction, mask, fn="multiclass_hinge_loss")


def sigmoid_focal_loss(
    logits: Array,
    targets: Array,
    *,
    alpha: float | None = None,
    gamma: float = 2.0,
    where: Any = None,
    reduction: str = "mean",
) -> Array:
    """Sigmoid focal loss (Lin et al. 2017; optax's `sigmoid_focal_loss`, torchvision's
    `sigmoid_focal_loss` — whose default is alpha=0.25 where optax's is None):
        ℓ = BCE(z, y)·(1 − p_t)^γ · (α·y + (1 − α)·(1 − y) if α is given),
        1 − p_t = y·σ(−z) + (1 − y)·σ(z).
    Shapes equal; y ∈ [0, 1]; γ = gamma ≥ 0; α ∈ [0, 1]. Stable at |z| = 1e4: σ and the BCE
    are computed without overflow, and (1 − p_t)^γ at 1 − p_t = 0 is 0 with gradient 0 for
    every γ (the power is fed 1 there, so γ < 1 gives no 0·∞)."""
    _pair("sigmoid_focal_loss", logits, targets, "logits")
    gamma = check_in_range(gamma, "gamma", 0.0, math.inf)
    if alpha is not None:
        alpha = check_in_range(alpha, "alpha", 0.0, 1.0, high_inclusive=True)
    kept = _kept_values(targets, where)
    if kept is not None:
        _check_unit_interval(kept, "sigmoid_focal_loss", "targets")
    mask, (z, y) = _prepare(
        "sigmoid_focal_loss", reduction, where, jnp.shape(logits), logits, targets
    )
    z, y = _clean(z, mask), _clean(y, mask)
    bce = jnp.where(y > 0, y * softplus(-z), 0) + jnp.where(y < 1, (1 - y) * softplus(z), 0)
    base = y * sigmoid(-z) + (1 - y) * sigmoid(z)  # 1 − p_t
    positive = base > 0
    weight = jnp.where(positive, jnp.where(positive, base, 1.0) ** gamma, 0.0 if gamma else 1.0)
    losses = bce * weight
    if alpha is not None:
        losses = (alpha * y + (1 - alpha) * (1 - y)) * losses
    return _reduce(losses, reduction, mask, fn="sigmoid_focal_loss")


def _sparse_plus(x: Array) -> Array:
    """0 for x ≤ −1, (x + 1)²/4 on (−1, 1), x for x ≥ 1 (jax.nn.sparse_plus)."""
    inside = jnp.clip(x, -1.0, 1.0)
    return jnp.where(x >= 1, x, (inside + 1) ** 2 / 4)


def sparsemax_loss(
    logits: Array, targets: Array, *, where: Any = None, reduction: str = "mean"
) -> Array:
    """Binary sparsemax loss (optax's `sparsemax_loss`; Martins & Astudillo 2016):
        ℓ = sparse_plus(u),  u = −z if y = 1 else z,   sparse_plus(u) = 0 (u ≤ −1),
        (u + 1)²/4 (|u| < 1), u (u ≥ 1);  ∂ℓ/∂z = sparse_sigmoid(z) − y.
    Shapes equal; targets y ∈ {0, 1} (concrete others are a ValueError). Its multiclass form
    is `multiclass_sparsemax_loss`."""
    _pair("sparsemax_loss", logits, targets, "logits")
    kept = _kept_values(targets, where)
    if kept is not None and not np.isin(kept, (0, 1)).all():
        raise ValueError(f"sparsemax_loss: targets must be 0 or 1, got {np.unique(kept).tolist()}.")
    mask, (z, y) = _prepare("sparsemax_loss", reduction, where, jnp.shape(logits), logits, targets)
    z, y = _clean(z, mask), _clean(y, mask)
    return _reduce(_sparse_plus(jnp.where(y > 0, -z, z)), reduction, mask, fn="sparsemax_loss")


def multiclass_sparsemax_loss(
    scores: Array, targets: Array, *, where: Any = None, reduction: str = "mean"
) -> Array:
    """Multiclass sparsemax loss (Martins & Astudillo 2016; optax's
    `multiclass_sparsemax_loss`), the Fenchel–Young loss of the Gini entropy:
        ℓ = ⟨p, s⟩ − s_y + ½·(1 − ‖p‖²),   p = sparsemax(s);   ∂ℓ/∂s = p − e_y.
    Shapes: scores (..., K), integer targets (...). ℓ ≥ 0, = 0 exactly when p = e_y."""
    ids, rows = _class_ids("multiclass_sparsemax_loss", scores, targets, where)
    mask, (s,) = _prepare("multiclass_sparsemax_loss", reduction, where, rows, scores)
    s = _clean(s, mask)
    s = s - jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))  # shift invariant
    p = jax.lax.stop_gradient(sparsemax(s))  # ∂ℓ/∂s = p − e_y by Danskin: p needs no gradient
    s_y = jnp.take_along_axis(s, ids[..., None], axis=-1)[..., 0]
    losses = jnp.sum(p * s, axis=-1) - s_y + 0.5 * (1 - jnp.sum(p * p, axis=-1))
    return _reduce(losses, reduction, mask, fn="multiclass_sparsemax_loss")


def _tsallis_fenchel_young(
    fn: str, project: Any, alpha: float, scores: Array, targets: Array, where: Any, reduction: str
) -> Array:
    """ℓ = ⟨p, s⟩ − s_y + H_α(p), p = project(s): the Fenchel–Young loss of the Tsallis
    entropy H_α (Shannon's −Σ p·log p at α = 1), shared by the entmax losses."""
    ids, rows = _class_ids(fn, scores, targets, where)
    mask, (s,) = _prepare(fn, reduction, where, rows, scores)
    s = _clean(s, mask)
    s = s - jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))  # shift invariant
    p = jax.lax.stop_gradient(project(s))  # ∂ℓ/∂s = p − e_y by Danskin: p needs no gradient
    used = p > 0  # p = 0 entries add nothing (their s may be −1e4: no 0·s rounding either)
    p_safe = jnp.where(used, p, 1.0)
    if alpha == 1.0:
        entropy = -jnp.sum(jnp.where(used, p * jnp.log(p_safe), 0.0), axis=-1)
    else:
        power = jnp.sum(jnp.where(used, p_safe**alpha, 0.0), axis=-1)
        entropy = (1 - power) / (alpha * (alpha - 1))
    s_y = jnp.take_along_axis(s, ids[..., None], axis=-1)[..., 0]
    inner = jnp.sum(jnp.where(used, p * s, 0.0), axis=-1)
    return _reduce(inner - s_y + entropy, reduction, mask, fn=fn)


def entmax_bisect_loss(
    scores: Array,
    targets: Array,
    *,
    alpha: float = 1.5,
    n_iter: int = 50,
    where: Any = None,
    reduction: str = "mean",
) -> Array:
    """α-entmax loss (Peters, Niculae & Martins 2019; the entmax package's
    `entmax_bisect_loss`), the Fenchel–Young loss of the Tsallis entropy H_α:
        ℓ = ⟨p, s⟩ − s_y + H_α(p),   H_α(p) = (1 − Σ_k p_k^α)/(α(α − 1)),
        p = entmax_bisect(s, α);   ∂ℓ/∂s = p − e_y.
    α = 2 is `multiclass_sparsemax_loss`, α = 1.5 `entmax15_loss` (exact, by sorting), and
    α = 1 the softmax cross-entropy (H₁ = −Σ p·log p). Shapes: scores (..., K), integer
    targets (...) → losses (...); `where` (...) masks rows. ℓ ≥ 0, = 0 exactly when p = e_y
    (which a finite margin reaches for α > 1: the loss is sparse). Stable at ±1e4."""
    alpha = float(check_in_range(alpha, "alpha", 1.0, math.inf))
    n_iter = check_positive_int(n_iter, "n_iter")
    project = lambda s: entmax_bisect(s, alpha, n_iter=n_iter)
    return _tsallis_fenchel_young(
        "entmax_bisect_loss", project, alpha, scores, targets, where, reduction
    )


def entmax15_loss(
    scores: Array, targets: Array, *, where: Any = None, reduction: str = "mean"
) -> Array:
    """1.5-entmax loss (the entmax package's `entmax15_loss`): `entmax_bisect_loss` at
    α = 1.5 with p = entmax15(s) found exactly by sorting:
        ℓ = ⟨p, s⟩ − s_y + (1 − Σ_k p_k^{3/2})/0.75;   ∂ℓ/∂s = p − e_y.
    Shapes: scores (..., K), integer targets (...) → losses (...)."""
    return _tsallis_fenchel_young("entmax15_loss", entmax15, 1.5, scores, targets, where, reduction)


# -------------------------------------------------------------- similarity and metrics


def _unit(x: Array, epsilon: float) -> Array:
    """x/√max(‖x‖², ε) along the last axis, with ‖x‖ computed on x/max|x| (no overflow)."""
    scale = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=-1, keepdims=True))
    scale = jnp.where(scale > 0, scale, 1.0)
    y = x / scale
    norm2 = jnp.sum(y * y, axis=-1, keepdims=True)
    return y / jnp.sqrt(jnp.maximum(norm2, epsilon / jnp.square(scale)))


def cosine_similarity(
    pred: Array,
    targets: Array,
    *,
    epsilon: float = 1e-16,
    where: Any = None,
    reduction: str = "mean",
) -> Array:
    """Cosine similarity along the last axis (optax's `cosine_similarity`):
        c = ⟨a, b⟩ / (√max(‖a‖², ε)·√max(‖b‖², ε));   ∂c/∂a = (b̂ − c·â)/‖a‖ (ε inactive).
    Shapes: (..., D) each → (...). ε = epsilon > 0 floors the squared norms, so a zero vector
    gives c = 0 with a finite gradient (optax's default ε = 0 gives NaN there; torch's
    `cosine_similarity` floors each norm at eps = 1e-8, the same as ε = 1e-16 here). The
    norms are taken on x/max|x|, so entries of 1e4 (or 1e30) do not overflow."""
    _rows("cosine_similarity", pred, "pred")
    check_same_shape(pred, targets, "pred", "targets")
    epsilon = check_in_range(epsilon, "epsilon", 0.0, math.inf, low_inclusive=False)
    mask, (a, b) = _prepare(
        "cosine_similarity", reduction, where, tuple(jnp.shape(pred)[:-1]), pred, targets
    )
    a, b = _clean(a, mask), _clean(b, mask)
    c = jnp.sum(_unit(a, epsilon) * _unit(b, epsilon), axis=-1)
    return _reduce(c, reduction, mask, fn="cosine_similarity")


def cosine_distance(
    pred: Array,
    targets: Array,
    *,
    epsilon: float = 1e-16,
    where: Any = None,
    reduction: str = "mean",
) -> Array:
    """Cosine distance 1 − cosine_similarity(pred, targets) (optax's `cosine_distance`);
    shapes (..., D) → (...). A masked row contributes 0, not 1."""
    check_choice(reduction, "reduction", REDUCTIONS)
    c = cosine_similarity(pred, targets, epsilon=epsilon, where=where, reduction="none")
    mask = None if where is None else jnp.asarray(where)
    return _reduce(1 - c, reduction, mask, fn="cosine_distance")


def triplet_margin_loss(
    anchors: Array,
    positives: Array,
    negatives: Array,
    *,
    margin: float = 1.0,
    norm_degree: float = 2.0,
    eps: float = 1e-6,
    where: Any = None,
    reduction: str = "mean",
) -> Array:
    """Triplet margin loss (Schroff et al. 2015; optax's and torch's `triplet_margin_loss`):
        ℓ = max(d(a, p) − d(a, n) + m, 0),   d(u, v) = (Σ_k |u_k − v_k|^q + ε)^{1/q}.
    Shapes: (..., D) each → (...); m = margin, q = norm_degree ≥ 1. ε keeps the gradient of d
    finite at u = v (optax's placement; torch adds its eps = 1e-6 to u − v instead, so the
    two agree to about 1e-6)."""
    _rows("triplet_margin_loss", anchors, "anchors")
    check_same_shape(anchors, positives, "anchors", "positives")
    check_same_shape(anchors, negatives, "anchors", "negatives")
    margin = check_real(margin, "margin")
    q = check_in_range(norm_degree, "norm_degree", 1.0, math.inf)
    eps = check_in_range(eps, "eps", 0.0, math.inf, low_inclusive=False)
    rows = tuple(jnp.shape(anchors)[:-1])
    mask, (a, p, n) = _prepare(
        "triplet_margin_loss", reduction, where, rows, anchors, positives, negatives
    )
    a, p, n = _clean(a, mask), _clean(p, mask), _clean(n, mask)

    def distance(u: Array, v: Array) -> Array:
        return (jnp.sum(jnp.abs(u - v) ** q, axis=-1) + eps) ** (1 / q)

    losses = relu(distance(a, p) - distance(a, n) + margin)
    return _reduce(losses, reduction, mask, fn="triplet_margin_loss")


def ntxent(
    embeddings: Array,
    labels: Array,
    temperature: float = 0.07,
    *,
    where: Any = None,
    reduction: str = "mean",
) -> Array:
    """NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR (Chen et al. 2020;
    optax's `ntxent`). With c_ij = cosine(e_i, e_j)/τ, over the kept examples K (`where`),
    P = {(i, j) ∈ K²: i ≠ j, labels equal}, N(i) = {k ∈ K : labels differ}:
        ℓ_ij = −log( e^{c_ij} / (e^{c_ij} + Σ_{k ∈ N(i)} e^{c_ik}) )
             = logaddexp(c_ij, logsumexp_{k ∈ N(i)} c_ik) − c_ij     for (i, j) ∈ P.
    Shapes: embeddings (B, D), integer labels (B,), where (B,) bool; "mean" averages over
    the pairs in P, "sum" adds them, "none" gives the (B, B) matrix of ℓ_ij (0 off P).

    A masked-out example (where[i] False) is neither an anchor, nor a positive, nor a
    negative: the loss equals optax's `ntxent` of the kept rows alone. Its embedding is
    replaced by zeros before any arithmetic, so NaN/inf there reaches neither the value nor
    the gradient (which is 0 there). No pair left (everything masked, or no two kept
    examples share a label) gives 0, not 0/0.

    Stability: each pair is computed as a logaddexp of its own logit and a log-sum-exp of
    its row's negatives (shifted by their maximum), so τ = 1e-3 (logits of ±1e3, where
    e^{c − max} would underflow to 0/0) and |e| = 1e4 stay finite; zero embeddings give
    cosine 0 (norms are floored at 1e-8)."""
    check_choice(reduction, "reduction", REDUCTIONS)
    check_floating(embeddings, "ntxent: embeddings")
    tau = check_in_range(temperature, "temperature", 0.0, math.inf, low_inclusive=False)
    e = jnp.asarray(embeddings)
    e = e.astype(_compute_dtype(e.dtype))
    labels = jnp.asarray(labels)
    if e.ndim != 2 or labels.shape != e.shape[:1]:
        raise ValueError(
            f"ntxent: embeddings must be (B, D) and labels (B,), got {e.shape} and {labels.shape}."
        )
    keep = _check_where(where, labels.shape, "ntxent", of="the labels'")
    e = _clean(e, keep)  # masked examples: zero vectors, before any arithmetic
    kept = jnp.ones(labels.shape, bool) if keep is None else keep  # (B,)
    both = kept[:, None] & kept[None, :]  # (B, B): pairs of kept examples
    unit = _unit(e, 1e-16)
    c = unit @ unit.T / tau  # (B, B)
    same = labels[:, None] == labels[None, :]
    positive = same & ~jnp.eye(e.shape[0], dtype=bool) & both
    negative = ~same & both
    # log Σ_{k ∈ N(i)} e^{c_ik}, −∞ for a row without negatives (double where: no log 0).
    top = jnp.max(jnp.where(negative, c, -jnp.inf), axis=1, keepdims=True)  # (B, 1)
    has_negative = jnp.any(negative, axis=1, keepdims=True)
    top = jax.lax.stop_gradient(jnp.where(has_negative, top, 0.0))
    shifted = jnp.where(negative, c - top, 0.0)  # ≤ 0; others (up to 2/τ) never reach exp
    total = jnp.sum(jnp.where(negative, jnp.exp(shifted), 0.0), axis=1, keepdims=True)
    safe_total = jnp.where(has_negative, total, 1.0)
    lse_negative = jnp.where(has_negative, top + jnp.log(safe_total), -jnp.inf)  # (B, 1)
    pair = jnp.logaddexp(c, lse_negative) - c  # (B, B): ℓ_ij
    losses = jnp.where(positive, pair, 0.0)
    if reduction == "none":
        return losses
    total_loss = jnp.sum(losses)
    if reduction == "sum":
        return total_loss
    return total_loss / jnp.maximum(jnp.sum(positive), 1).astype(total_loss.dtype)


def dice_loss(
    logits: Array,
    targets: Array,
    *,
    class_weights: Any = None,
    smooth: float = 1.0,
    alpha: float = 0.5,
    beta: float = 0.5,
    apply_softmax: bool = True,
    where: Any = None,
    reduction: str = "mean",
) -> Array:
    """Dice / Tversky loss for segmentation (Milletari et al. 2016; optax's `dice_loss`):
        P = softmax(logits) over the class axis (sigmoid when C = 1; the logits themselves
        with apply_softmax=False), I = Σ P·Y, and per sample b and class c
        ℓ_bc = w_c·(1 − (I + s)/(I + α·(ΣP − I) + β·(ΣY − I) + s)),
    sums over the spatial axes 1 … ndim − 2 (the kept pixels only, with `where`).
    Shapes: logits and one-hot targets (B, *spatial, C); losses (B, C) — "mean" averages
    them all (optax averages over C and returns (B,); the means agree). α = β = ½ is Dice,
    α + β = 1 Tversky; s = smooth > 0.

    class_weights w: optional (C,) non-negative floats multiplying each class's loss, as
    optax's `class_weights` (w_c = 0 drops class c, e.g. the background); "mean" still
    divides by the number of (sample, class) entries, not by Σ w (optax's convention).

    where: optional bool mask of shape (B, *spatial) = logits.shape[:-1], True at pixels
    that count (False at "void"/unlabelled ones, torch's ignore_index). A masked pixel's
    logits and targets are replaced by zeros before any arithmetic — NaN/inf there reaches
    neither the value nor the gradient (0 there) — and it enters none of I, ΣP, ΣY. A sample
    with no kept pixel is itself masked: its losses are 0 in "none" and "mean" divides by
    C·(the number of samples with a kept pixel); nothing kept at all gives 0, not 0/0.
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    check_floating(logits, "dice_loss: logits")
    check_same_shape(logits, targets, "logits", "targets")
    if jnp.ndim(logits) < 2:
        raise ValueError(f"dice_loss: need (B, …, C), got shape {jnp.shape(logits)}.")
    smooth = check_in_range(smooth, "smooth", 0.0, math.inf, low_inclusive=False)
    alpha, beta = check_real(alpha, "alpha"), check_real(beta, "beta")
    shape = tuple(jnp.shape(logits))
    pixels = _check_where(where, shape[:-1], "dice_loss", of="logits.shape[:-1] (B, *spatial)")
    z = jnp.asarray(logits)
    z = z.astype(_compute_dtype(z.dtype))
    y = _clean(jnp.asarray(targets).astype(z.dtype), pixels)
    z = _clean(z, pixels)
    if apply_softmax:
        p = sigmoid(z) if z.shape[-1] == 1 else softmax(z, axis=-1)
    else:
        p = z
    p = _clean(p, pixels)  # softmax of a cleaned pixel is 1/C, not 0: drop it from ΣP
    axes = tuple(range(1, z.ndim - 1))
    intersection = jnp.sum(p * y, axis=axes)  # (B, C)
    denominator = (
        intersection
        + alpha * (jnp.sum(p, axis=axes) - intersection)
        + beta * (jnp.sum(y, axis=axes) - intersection)
        + smooth
    )
    losses = 1 - (intersection + smooth) / denominator  # (B, C)
    if class_weights is not None:
        weights = _dice_class_weights(class_weights, shape[-1]).astype(losses.dtype)
        losses = losses * weights[None, :]  # (B, C) · (1, C)
    rows = None
    if pixels is not None:  # a sample counts when any of its pixels does
        kept = jnp.any(pixels.reshape(shape[0], -1), axis=1)  # (B,)
        rows = jnp.broadcast_to(kept[:, None], losses.shape)
    return _reduce(losses, reduction, rows, fn="dice_loss")


def _dice_class_weights(class_weights: Any, num_classes: int) -> Array:
    """class_weights as a (C,) float array; TypeError/ValueError naming it otherwise."""
    w = jnp.asarray(class_weights)
    if not (jnp.issubdtype(w.dtype, jnp.floating) or jnp.issubdtype(w.dtype, jnp.integer)):
        raise TypeError(f"dice_loss: class_weights must be real numbers, got dtype {w.dtype}.")
    if w.shape != (num_classes,):
        raise ValueError(
            f"dice_loss: class_weights.shape={w.shape} must be (C,) = ({num_classes},), one "
            f"weight per class of the logits."
        )
    _refuse_negative(w, None, "dice_loss", "class_weights must be ≥ 0")
    return w


# ---------------------------------------------------------------------------------- CTC

_CTC_IMPOSSIBLE = -1e30  # log of "no path": finite, so log-add-exp and its gradient stay finite


def ctc_loss(
    logits: Array,
    targets: Array,
    *,
    logit_where: Any = None,
    target_where: Any = None,
    blank_id: int = 0,
    reduction: str = "mean",
) -> Array:
    """Connectionist temporal classification (Graves et al. 2006; optax's and torch's
    `ctc_loss`): ℓ = −log Σ_{alignments π ↦ y} Π_t softmax(z_t)_{π_t}.

    Forward algorithm over the extended target y′ = (∅, y₁, ∅, y₂, …, y_S, ∅):
        α_t(s) = logsumexp(α_{t−1}(s), α_{t−1}(s − 1), α_{t−1}(s − 2) if y′_s ≠ ∅, y′_{s−2})
                 + log p_t(y′_s),   ℓ = −logsumexp(α_T(2S), α_T(2S − 1)).
    Shapes: logits (B, T, K), integer targets (B, S); logit_where (B, T) and target_where
    (B, S) mark real steps and real labels (True; a prefix of each row), like optax's
    paddings negated. Losses (B,). No feasible alignment (targets too long for the input)
    gives +∞ (torch's zero_infinity=False); padded steps and labels are zeroed before any
    arithmetic, so garbage there reaches neither the value nor the gradient. torch's "mean"
    divides each loss by its target length first; here "mean" is the plain batch mean.
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    check_floating(logits, "ctc_loss: logits")
    z = jnp.asarray(logits)
    labels = jnp.asarray(targets)
    if z.ndim != 3 or labels.ndim != 2 or labels.shape[0] != z.shape[0]:
        raise ValueError(
            f"ctc_loss: logits must be (B, T, K) and targets (B, S) with the same B, got "
            f"{z.shape} and {labels.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"ctc_loss: targets must be integer class ids, got {labels.dtype}.")
    batch, steps, num_classes = z.shape
    blank = check_nonnegative_int(blank_id, "blank_id")
    if blank >= num_classes:
        raise ValueError(f"ctc_loss: blank_id={blank} must be < K={num_classes}.")
    keep_t = _check_where(logit_where, (batch, steps), "ctc_loss", of="logits' (B, T)")
    keep_s = _check_where(target_where, labels.shape, "ctc_loss", of="targets'")
    keep_t = jnp.ones((batch, steps), bool) if keep_t is None else keep_t
    keep_s = jnp.ones(labels.shape, bool) if keep_s is None else keep_s
    if _is_concrete(labels) and _is_concrete(keep_s):
        real = np.asarray(labels)[np.asarray(keep_s)]
        if ((real < 0) | (real >= num_classes) | (real == blank)).any():
            raise ValueError(
                f"ctc_loss: targets must be class ids in [0, {num_classes}) other than the "
                f"blank {blank}, got {sorted(set(real.tolist()))}."
            )
    z = _clean(z.astype(_compute_dtype(z.dtype)), keep_t)
    labels = jnp.where(keep_s, labels, blank)
    logp = log_softmax(z, axis=-1)  # (B, T, K)
    length = jnp.sum(keep_s, axis=1)  # (B,) real labels
    width = 2 * labels.shape[1] + 1
    extended = jnp.full((batch, width), blank, labels.dtype).at[:, 1::2].set(labels)  # (B, L)
    # A skip s−2 → s is allowed into a label that differs from the label two back.
    previous = jnp.pad(extended[:, :-2], ((0, 0), (2, 0)), constant_values=blank)
    skip = (extended != blank) & (extended != previous)  # (B, L)
    emit = jnp.take_along_axis(logp, extended[:, None, :].repeat(steps, axis=1), axis=-1)
    impossible = jnp.asarray(_CTC_IMPOSSIBLE, logp.dtype)
    start = jnp.full((batch, width), impossible).at[:, 0].set(0.0)  # before t = 0: at s = 0

    def shift(alpha: Array, by: int) -> Array:
        return jnp.pad(alpha[:, :-by], ((0, 0), (by, 0)), constant_values=_CTC_IMPOSSIBLE)

    def step(alpha: Array, inputs: tuple[Array, Array]) -> tuple[Array, None]:
        emit_t, keep = inputs  # (B, L), (B,)
        two_back = jnp.where(skip, shift(alpha, 2), impossible)
        new = jnp.logaddexp(jnp.logaddexp(alpha, shift(alpha, 1)), two_back) + emit_t
        return jnp.where(keep[:, None], new, alpha), None

    first, _ = step(start, (emit[:, 0], jnp.ones((batch,), bool)))  # t = 0 always starts
    alpha, _ = jax.lax.scan(step, first, (jnp.swapaxes(emit, 0, 1)[1:], keep_t.T[1:]))
    last = jnp.take_along_axis(alpha, (2 * length)[:, None], axis=1)[:, 0]
    before = jnp.take_along_axis(alpha, jnp.maximum(2 * length - 1, 0)[:, None], axis=1)[:, 0]
    before = jnp.where(length > 0, before, impossible)
    log_likelihood = jnp.logaddexp(last, before)
    losses = jnp.where(
        log_likelihood < _CTC_IMPOSSIBLE / 2,
        jnp.full_like(log_likelihood, jnp.inf),
        -log_likelihood,
    )
    return _reduce(losses, reduction, fn="ctc_loss")
