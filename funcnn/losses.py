"""Loss functions: mse, cross-entropy, binary cross-entropy (on logits or probabilities), L2.

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

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._validation import check_choice, check_floating, check_in_range, check_same_shape
from funcnn.activations import log_softmax, softplus

Array = jax.Array

__all__ = [
    "REDUCTIONS",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "l2_penalty",
    "mse",
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


def _check_labels_in_range(labels: Array, num_classes: int, where: Array | None) -> None:
    """Eagerly reject out-of-range class ids when the labels are concrete (not traced)."""
    if not (_is_concrete(labels) and (where is None or _is_concrete(where))):
        return
    ids = np.asarray(labels)
    if where is not None:
        ids = ids[np.asarray(where)]  # masked positions may hold padding ids like −100
    bad = (ids < 0) | (ids >= num_classes)
    if bad.any():
        raise ValueError(
            f"cross_entropy: targets must be class ids in [0, {num_classes}), got "
            f"{ids[bad][:5].tolist()} (logits have {num_classes} classes). Mask padding with "
            f"`where`."
        )


def _check_where(where: Any, label_shape: tuple[int, ...]) -> Array | None:
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"cross_entropy: where must be a boolean mask, got dtype {where.dtype}.")
    if where.shape != label_shape:
        raise ValueError(
            f"cross_entropy: where.shape={where.shape} must equal the label shape "
            f"logits.shape[:-1]={label_shape}."
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
    targets with negative entries are a ValueError when concrete and a NaN row under `jit`. Out-of-range class ids raise a ValueError when the
    targets are concrete; under `jit` they cannot be checked and yield a NaN loss instead of a
    silently wrong number.

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
