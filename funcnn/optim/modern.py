"""Stages of the post-Adam optimizers: Lion's sign of an interpolated momentum and LAMB's
(and LARS's) per-leaf trust ratio (optax's), and Muon's momentum, Newton–Schulz
orthogonalization and shape-dependent scale (torch.optim.Muon's).

Notation as in `transforms.py`: g is the incoming update, d the outgoing direction, θ the
parameters, t the 1-based step number; only `scale_by_learning_rate` carries the minus
sign. Per-parameter buffers keep each leaf's dtype (unless `mu_dtype` says otherwise),
arithmetic runs in at least float32, step counters are int32 scalars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn._validation import check_nonnegative_int
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Updates,
    check_hyperparameter,
    safe_increment,
    tree_zeros_like,
)
from funcnn.optim.transforms import _const, _unzip, _upcast

__all__ = [
    "MUON_NS_COEFFICIENTS",
    "EmaMomentumState",
    "OrthogonalizeState",
    "ScaleByLionState",
    "ScaleByShapeState",
    "ScaleByTrustRatioState",
    "ema_momentum",
    "orthogonalize_by_newton_schulz",
    "scale_by_lion",
    "scale_by_shape",
    "scale_by_trust_ratio",
]


# --- Lion -------------------------------------------------------------------------------


class ScaleByLionState(NamedTuple):
    """count: int32 scalar, updates done so far. mu: the momentum m, shaped like the params
    (each leaf's dtype, or `mu_dtype`)."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    mu: Params


def scale_by_lion(
    b1: float = 0.9, b2: float = 0.99, *, mu_dtype: Any = None
) -> GradientTransformation:
    """Lion's direction (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms",
    Program 1), as optax's `scale_by_lion`:

        d  = sign(β₁·mₜ₋₁ + (1−β₁)·g)                 (elementwise; sign(0) = 0)
        mₜ = β₂·mₜ₋₁ + (1−β₂)·g,                      m₀ = 0

    `b1` = β₁ (the interpolation for the step), `b2` = β₂ (the momentum's decay), each in
    [0, 1). Every entry of d is −1, 0 or 1, so the first step is d = sign(g). The paper's
    weight decay θ ← θ − η·λ·θ is decoupled and lives in the alias (`add_decayed_weights`
    after this stage). torch has no Lion. `mu_dtype` stores m in another dtype.
    """
    b1 = check_hyperparameter(b1, "b1", high=1.0, high_inclusive=False)
    b2 = check_hyperparameter(b2, "b2", high=1.0, high_inclusive=False)

    def init(params: Params) -> ScaleByLionState:
        return ScaleByLionState(jnp.zeros([], jnp.int32), tree_zeros_like(params, mu_dtype))

    def update(updates: Updates, state: ScaleByLionState, params: Params | None = None):
        del params

        def leaf(g: Array, m: Array) -> tuple[Array, Array]:
            g32, m32 = _upcast(g), _upcast(m)
            beta1, beta2 = _const(b1, g32), _const(b2, g32)
            d = jnp.sign(beta1 * m32 + (1 - beta1) * g32)
            m_new = beta2 * m32 + (1 - beta2) * g32
            return d.astype(g.dtype), m_new.astype(m.dtype)

        updates, mu = _unzip(jax.tree.map(leaf, updates, state.mu), updates)
        return updates, ScaleByLionState(safe_increment(state.count), mu)

    return GradientTransformation(init, update)


# --- the trust ratio of LARS and LAMB ------------------------------------------------------


class ScaleByTrustRatioState(NamedTuple):
    """Stateless (no fields); named so a state tree shows where the trust ratio sits."""


def scale_by_trust_ratio(
    min_norm: float = 0.0, *, trust_coefficient: float = 1.0, eps: float = 0.0
) -> GradientTransformation:
    """Rescale each leaf by its layer-wise trust ratio (You et al. 2020, LAMB; 2017, LARS),
    as optax's `scale_by_trust_ratio`, per leaf l (norms over all entries of the leaf):

        ‖θₗ‖ = max(√Σθₗ², n₀),   ‖gₗ‖ = max(√Σgₗ², n₀)            (min_norm = n₀ ≥ 0)
        rₗ = c·‖θₗ‖/(‖gₗ‖ + ε),   rₗ = 1 where ‖θₗ‖ = 0 or ‖gₗ‖ = 0
        uₗ = rₗ·gₗ

    `trust_coefficient` = c > 0, `eps` = ε ≥ 0. With the defaults (n₀ = 0, c = 1, ε = 0)
    each leaf's step gets the norm of its parameter: ‖uₗ‖ = ‖θₗ‖ (LAMB, where the learning
    rate then scales it). A zero leaf (fresh biases) or a zero update passes unchanged.
    Needs the params. Stateless. Norms are accumulated in at least float32.
    """
    min_norm = check_hyperparameter(min_norm, "min_norm")
    trust_coefficient = check_hyperparameter(
        trust_coefficient, "trust_coefficient", low_inclusive=False
    )
    eps = check_hyperparameter(eps, "eps")

    def init(params: Params) -> ScaleByTrustRatioState:
        del params
        return ScaleByTrustRatioState()

    def update(updates: Updates, state: ScaleByTrustRatioState, params: Params | None = None):
        if params is None:
            raise ValueError(
                "scale_by_trust_ratio needs the params: call update(grads, state, params)."
            )

        def leaf(g: Array, p: Array) -> Array:
            g32, p32 = _upcast(g), _upcast(p).astype(_upcast(g).dtype)
            floor = _const(min_norm, g32)
            param_norm = jnp.maximum(jnp.sqrt(jnp.sum(p32 * p32)), floor)  # ()
            update_norm = jnp.maximum(jnp.sqrt(jnp.sum(g32 * g32)), floor)  # ()
            c, e = _const(trust_coefficient, g32), _const(eps, g32)
            ratio = c * param_norm / (update_norm + e)
            zero = jnp.logical_or(param_norm == 0, update_norm == 0)
            ratio = jnp.where(zero, jnp.ones([], g32.dtype), ratio)
            return (g32 * ratio).astype(g.dtype)

        return jax.tree.map(leaf, updates, params), state

    return GradientTransformation(init, update)


# --- Muon: EMA momentum, Newton–Schulz orthogonalization, shape scale -----------------------

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


class EmaMomentumState(NamedTuple):
    """mu: the momentum buffer B, shaped like the params (each leaf's dtype, or `mu_dtype`)."""

    mu: Params


def ema_momentum(
    decay: float = 0.95, *, nesterov: bool = True, mu_dtype: Any = None
) -> GradientTransformation:
    """Momentum as an exponential moving average, as torch.optim.Muon computes it
    (`buf.lerp_(g, 1 − μ)`; `g.lerp(buf, μ)` for Nesterov):

        Bₜ = μ·Bₜ₋₁ + (1−μ)·g,   B₀ = 0                 (decay = μ ∈ [0, 1))
        d  = (1−μ)·g + μ·Bₜ   if nesterov   else   Bₜ

    No bias correction: the first step is d = (1−μ)·g (or (1−μ²)·g with Nesterov); for Muon
    the scale of d does not matter, the orthogonalization normalizes it. torch's Muon
    docstring writes Bₜ = μ·Bₜ₋₁ + g (heavy ball, `trace`), its code the average above —
    funcnn follows the code. optax's `scale_by_muon` bias-corrects the average.
    """
    decay = check_hyperparameter(decay, "momentum", high=1.0, high_inclusive=False)
    if not isinstance(nesterov, bool):
        raise TypeError(f"nesterov must be True or False, got nesterov={nesterov!r}.")

    def init(params: Params) -> EmaMomentumState:
        return EmaMomentumState(tree_zeros_like(params, mu_dtype))

    def update(updates: Updates, state: EmaMomentumState, params: Params | None = None):
        del params

        def leaf(g: Array, b: Array) -> tuple[Array, Array]:
            g32 = _upcast(g)
            mu = _const(decay, g32)
            b_new = mu * _upcast(b) + (1 - mu) * g32
            d = (1 - mu) * g32 + mu * b_new if nesterov else b_new
            return d.astype(g.dtype), b_new.astype(b.dtype)

        updates, mu_tree = _unzip(jax.tree.map(leaf, updates, state.mu), updates)
        return updates, EmaMomentumState(mu_tree)

    return GradientTransformation(init, update)


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
            x = _upcast(g)  # (n, m)
            tall = x.shape[0] > x.shape[1]
            if tall:
                x = x.T  # (m, n): the Gram matrix below is the smaller one
            x = x / jnp.maximum(jnp.sqrt(jnp.sum(x * x)), _const(eps, x))
            ca, cb, cc = _const(a, x), _const(b, x), _const(c, x)
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
            lambda g: (_upcast(g) * _const(ratio(g.shape), _upcast(g))).astype(g.dtype), updates
        ), state

    return GradientTransformation(init, update)
