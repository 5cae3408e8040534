"""Muon's matrix stages (Jordan et al. 2024, torch.optim.Muon's semantics): the Newton–Schulz
orthogonalization of each 2-D update (`orthogonalize_by_newton_schulz`) and the
shape-dependent scale after it (`scale_by_shape`). Muon's momentum is `momentum.ema_momentum`.

Notation: g is the incoming update (the gradient for the first stage), d the outgoing
direction, θ the parameters, t the 1-based step number, ηₜ the learning rate; only
`scale_by_learning_rate` carries the minus sign. Per-parameter buffers keep each leaf's
dtype (unless a `*_dtype` option says otherwise), arithmetic runs in at least float32
(bf16 leaves are upcast, the result cast back), step counters are int32 scalars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn._validation import check_nonnegative_int
from funcnn.optim._tree import const, upcast
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
)

__all__ = [
    "MUON_ADJUST_LR",
    "MUON_NS_COEFFICIENTS",
    "OrthogonalizeState",
    "ScaleByShapeState",
    "check_matrices",
    "orthogonalize_by_newton_schulz",
    "scale_by_shape",
]


MUON_NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)
"""Keller Jordan's quintic Newton–Schulz coefficients (a, b, c), torch.optim.Muon's default."""


_MUON_RANK_ERROR = (
    "{where}{path} has shape {shape} (rank {rank}); Muon orthogonalizes 2-D matrices only. "
    "Give the other leaves another optimizer with optim.partition, e.g. "
    "optim.partition({{'muon': optim.muon(0.02), 'adamw': optim.adamw(3e-4)}}, "
    "lambda p: jax.tree.map(lambda x: 'muon' if x.ndim == 2 else 'adamw', p))."
)


def check_matrices(tree: Params, where: str) -> None:
    """Raise ValueError naming the first leaf of `tree` that is not 2-D (and the fix)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if jnp.ndim(leaf) != 2:
            raise ValueError(
                _MUON_RANK_ERROR.format(
                    where=where,
                    path=jax.tree_util.keystr(path),
                    shape=tuple(jnp.shape(leaf)),
                    rank=jnp.ndim(leaf),
                )
            )


class OrthogonalizeState(NamedTuple):
    """Stateless (no fields)."""


def _check_coefficients(value: Any) -> tuple[float, float, float]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(
            f"ns_coefficients must be a tuple (a, b, c) of three numbers, got "
            f"ns_coefficients={value!r}."
        )
    if len(value) != 3:
        raise ValueError(
            f"ns_coefficients must be a tuple (a, b, c) of three numbers, got {len(value)} "
            f"values: ns_coefficients={tuple(value)!r}."
        )
    a, b, c = (
        check_hyperparameter(x, f"ns_coefficients[{i}]", low=-float("inf"))
        for i, x in enumerate(value)
    )
    return a, b, c


def orthogonalize_by_newton_schulz(
    ns_coefficients: Sequence[float] = MUON_NS_COEFFICIENTS,
    ns_steps: int = 5,
    eps: float = 1e-7,
) -> GradientTransformation:
    """Replace each 2-D leaf G (n, m) by an approximate orthogonal factor U·Vᵀ of its SVD
    G = U·S·Vᵀ (Muon, Jordan et al. 2024), as torch.optim.Muon computes it:

        X₀ = G / max(‖G‖_F, ε)                     (n, m)   singular values now ≤ 1
        Aₖ = Xₖ·Xₖᵀ                                (n, n)
        Xₖ₊₁ = a·Xₖ + (b·Aₖ + c·Aₖ²)·Xₖ             k = 0 … K−1
        d = X_K

    `ns_coefficients` = (a, b, c), `ns_steps` = K ∈ [0, 100), `eps` = ε > 0. Each step maps
    every singular value s of X to p(s) = a·s + b·s³ + c·s⁵ and keeps the singular vectors;
    Keller Jordan's (3.4445, −4.775, 2.0315) push every s ∈ (0, 1] into roughly [0.7, 1.2]
    in 5 steps (not exactly 1: fast, and good enough for training). When n > m the
    iteration runs on Gᵀ (the smaller Gram matrix) and transposes back — the same
    polynomial, so the same result up to rounding. torch runs it in bfloat16; funcnn in the
    leaf's compute dtype (≥ float32), so a float64 run can be checked to 1e-10. Any leaf
    that is not 2-D is a ValueError naming it (use `partition`). Stateless.
    """
    a, b, c = _check_coefficients(ns_coefficients)
    ns_steps = check_nonnegative_int(ns_steps, "ns_steps")
    if ns_steps >= 100:
        raise ValueError(f"ns_steps must be < 100 (torch's limit), got ns_steps={ns_steps}.")
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)

    def init(params: Params) -> OrthogonalizeState:
        check_matrices(params, "params")
        return OrthogonalizeState()

    def update(updates: Updates, state: OrthogonalizeState, params: Params | None = None):
        del params
        check_matrices(updates, "updates")

        def leaf(g: Array) -> Array:
            x = upcast(g)  # (n, m)
            tall = x.shape[0] > x.shape[1]
            if tall:
                x = x.T  # (m, n): the Gram matrix below is the smaller one
            x = x / jnp.maximum(jnp.sqrt(jnp.sum(x * x)), const(eps, x))
            ca, cb, cc = const(a, x), const(b, x), const(c, x)
            for _ in range(ns_steps):
                gram = x @ x.T  # (n, n)
                x = ca * x + (cb * gram + cc * (gram @ gram)) @ x
            return (x.T if tall else x).astype(g.dtype)

        return jax.tree.map(leaf, updates), state

    return GradientTransformation(init, update)


class ScaleByShapeState(NamedTuple):
    """Stateless (no fields)."""


MUON_ADJUST_LR = (None, "original", "match_rms_adamw")
"""The values `scale_by_shape` (and `muon`) accept for `adjust_lr_fn`, torch's names."""


def scale_by_shape(adjust_lr_fn: str | None = None) -> GradientTransformation:
    """torch.optim.Muon's learning-rate adjustment, for a 2-D leaf of shape (A, B):

        d = r·g,   r = √max(1, A/B)           adjust_lr_fn = None or "original" (Keller Jordan)
                   r = 0.2·√max(A, B)         adjust_lr_fn = "match_rms_adamw" (Moonshot: the
                                              update's RMS ≈ AdamW's, so AdamW's η and λ carry)

    A and B are the leaf's axes *as stored*. torch's `Linear.weight` is (out, in), so there
    "original" is √max(1, fan_out/fan_in); funcnn's dense `w` is (in, out), so here the same
    formula gives √max(1, fan_in/fan_out) — transpose the ratio's meaning, not the code,
    when porting. optax's `scale_by_shape` uses fan-in/fan-out dimension numbers instead.
    Stateless; non-2-D leaves are a ValueError (see `orthogonalize_by_newton_schulz`).
    """
    if adjust_lr_fn not in MUON_ADJUST_LR:
        raise ValueError(
            f"adjust_lr_fn must be one of {list(MUON_ADJUST_LR)}, got "
            f"adjust_lr_fn={adjust_lr_fn!r}."
        )

    def ratio(shape: tuple[int, ...]) -> float:
        rows, cols = shape
        if adjust_lr_fn == "match_rms_adamw":
            return 0.2 * math.sqrt(max(rows, cols))
        return math.sqrt(max(1.0, rows / cols))

    def init(params: Params) -> ScaleByShapeState:
        check_matrices(params, "params")
        return ScaleByShapeState()

    def update(updates: Updates, state: ScaleByShapeState, params: Params | None = None):
        del params
        check_matrices(updates, "updates")
        return jax.tree.map(
            lambda g: (upcast(g) * const(ratio(g.shape), upcast(g))).astype(g.dtype), updates
        ), state

    return GradientTransformation(init, update)
