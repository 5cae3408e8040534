"""Central finite differences over a parameter pytree, in float64 NumPy.

    ∂L/∂θ_i ≈ (L(θ + ε·e_i) − L(θ − ε·e_i)) / (2ε)      error O(ε²) + O(δ/ε)

where δ is the rounding error of one evaluation of L. With float64 and ε = 1e-6 the
estimate is good to roughly 1e-8 relative — but only if L itself runs in float64: call a
JAX loss inside `with jax.enable_x64(True):`, otherwise it rounds the perturbed inputs to
float32 and the differences are noise.

No jax import here: pytrees are walked with a small recursion over dicts, lists and tuples
(including NamedTuples), and each leaf is handed to `loss` as a float64 NumPy array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["complex_step", "max_relative_error", "numerical_grad"]


def _leaves(tree: Any) -> list[Any]:
    """Leaves in a fixed order: dict keys sorted, sequences in order."""
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in _leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in _leaves(item)]
    if tree is None:
        return []
    return [tree]


def _rebuild(tree: Any, leaves: list[Any]) -> Any:
    """Inverse of `_leaves`: same structure as `tree`, leaves taken in order from `leaves`."""
    it = iter(leaves)

    def build(node: Any) -> Any:
        if isinstance(node, dict):
            built = {k: build(node[k]) for k in sorted(node)}
            return {k: built[k] for k in node}  # keep the caller's key order
        if isinstance(node, tuple) and hasattr(node, "_fields"):  # NamedTuple
            return type(node)(*(build(item) for item in node))
        if isinstance(node, (list, tuple)):
            return type(node)(build(item) for item in node)
        if node is None:
            return None
        return next(it)

    return build(tree)


def numerical_grad(loss: Callable[[Any], Any], params: Any, eps: float = 1e-6) -> Any:
    """Central-difference gradient of scalar `loss(params)` w.r.t. every entry of every leaf.

    Returns a pytree with the structure of `params` whose leaves are float64 NumPy arrays of
    the leaves' shapes. Costs 2·(number of parameters) evaluations of `loss` — use tiny models.
    """
    if not eps > 0:
        raise ValueError(f"numerical_grad: eps must be > 0, got eps={eps}.")
    base = [np.array(leaf, dtype=np.float64) for leaf in _leaves(params)]

    def evaluate(leaves: list[np.ndarray]) -> float:
        value = np.asarray(loss(_rebuild(params, leaves)), dtype=np.float64)
        if value.shape != ():
            raise ValueError(f"numerical_grad: loss must return a scalar, got shape {value.shape}.")
        return float(value)

    grads = []
    for i, leaf in enumerate(base):
        grad = np.zeros_like(leaf)
        for idx in np.ndindex(leaf.shape):
            shifted = [x.copy() for x in base]
            shifted[i][idx] = leaf[idx] + eps
            plus = evaluate(shifted)
            shifted[i][idx] = leaf[idx] - eps
            minus = evaluate(shifted)
            grad[idx] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return _rebuild(params, grads)


def complex_step(
    loss: Callable[[Any], Any], params: Any, direction: Any, h: float = 1e-20
) -> float:
    """The directional derivative ∇L(θ)·v by the complex step: Im L(θ + i·h·v) / h.

    For a loss written with analytic operations (every function in `funcnn.reference` is),
    L(θ + ihv) = L(θ) + ih·∇L·v − (h²/2)·vᵀ∇²Lv + O(h³): the imaginary part carries the
    derivative with no subtraction of nearly equal numbers, so h can be tiny and the result
    is exact to float64 rounding (≈1e-16 relative) — unlike the central difference
    (≈1e-9 at best). One evaluation of `loss` per direction. `params` and `direction` are
    pytrees of one structure (NumPy-convertible leaves); `loss` must return a real scalar
    for real input and pass complex values through unharmed.
    """
    if not h > 0:
        raise ValueError(f"complex_step: h must be > 0, got h={h}.")
    base, step = _leaves(params), _leaves(direction)
    if len(base) != len(step):
        raise ValueError(f"complex_step: params has {len(base)} leaves, direction {len(step)}.")
    probe = []
    for x, v in zip(base, step, strict=True):
        x, v = np.asarray(x, np.float64), np.asarray(v, np.float64)
        if x.shape != v.shape:
            raise ValueError(f"complex_step: leaf shapes differ: {x.shape} vs {v.shape}.")
        probe.append(x + 1j * h * v)
    value = np.asarray(loss(_rebuild(params, probe)))
    if value.shape != ():
        raise ValueError(f"complex_step: loss must return a scalar, got shape {value.shape}.")
    return float(value.imag) / h


def max_relative_error(a: Any, b: Any, floor: float = 1e-8) -> float:
    """max over all entries of |a − b| / max(|a| + |b|, floor), for two pytrees of one structure.

    `floor` keeps entries where both values are ~0 from dividing by zero: there the measure
    becomes the absolute difference over `floor`.
    """
    leaves_a, leaves_b = _leaves(a), _leaves(b)
    if len(leaves_a) != len(leaves_b):
        raise ValueError(
            f"max_relative_error: trees differ: {len(leaves_a)} vs {len(leaves_b)} leaves."
        )
    worst = 0.0
    for x, y in zip(leaves_a, leaves_b, strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.shape != y.shape:
            raise ValueError(f"max_relative_error: leaf shapes differ: {x.shape} vs {y.shape}.")
        if x.size:
            err = np.abs(x - y) / np.maximum(np.abs(x) + np.abs(y), floor)
            worst = max(worst, float(err.max()))
    return worst
