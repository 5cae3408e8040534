"""Activation functions, each written out in `jnp` in a numerically stable form.

Every function is elementwise except `softmax`/`log_softmax`, `sparsemax`/`entmax15`/
`entmax_bisect` and `glu`, which act along `axis`.
Each docstring states f(x) and f′(x); `funcnn.reference.functional` holds float64 NumPy
transcriptions that the tests compare against (values and gradients).

Stability: `sigmoid`, `softplus`, `silu`, `softmax` and `log_softmax` only ever exponentiate
non-positive numbers, so they stay finite — with finite gradients — for |x| up to 1e4 and
beyond. Branches are chosen with the "double where" pattern: the branch not taken is fed a
harmless input, so its (unused) derivative cannot turn into 0·∞ = NaN in the backward pass.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = [
    "celu",
    "elu",
    "entmax15",
    "entmax_bisect",
    "gelu",
    "glu",
    "hard_sigmoid",
    "hard_swish",
    "hard_tanh",
    "leaky_relu",
    "log_sigmoid",
    "log_softmax",
    "mish",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "softsign",
    "sparsemax",
    "squareplus",
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


# --------------------------------------------- the rest of jax.nn's and torch's catalogue
# Names follow jax.nn where it has the function (torch.nn.functional's spelling, where it
# differs, is named in the docstring); arguments and defaults follow both peers.


@jax.custom_jvp
def _expm1(x: Array) -> Array:
    """eˣ − 1 with derivative eˣ. (jnp.expm1's own rule uses ans + 1, which rounds to 0 in
    float32 once eˣ < 6e-8: elu′(−50) would be 0 instead of e⁻⁵⁰ ≈ 2e-22.)"""
    return jnp.expm1(x)


@_expm1.defjvp
def _expm1_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (x,), (dx,) = primals, tangents
    return jnp.expm1(x), jnp.exp(x) * dx


def elu(x: Array, alpha: float = 1.0) -> Array:
    """ELU (Clevert et al. 2016): f(x) = x if x > 0 else α·(eˣ − 1);
    f′(x) = 1 if x > 0 else α·eˣ (α at 0, as torch and jax.nn).

    The negative branch is fed min(x, 0) ("double where"), so eˣ never overflows for
    x = 1e4 and its unused derivative cannot poison the gradient.
    """
    negative = jnp.where(x > 0, jnp.zeros_like(x), x)
    return _nan_through(x, jnp.where(x > 0, x, alpha * _expm1(negative)))


def celu(x: Array, alpha: float = 1.0) -> Array:
    """CELU (Barron 2017): f(x) = x if x > 0 else α·(e^{x/α} − 1);  f′(x) = 1 if x > 0 else
    e^{x/α}. Continuously differentiable for every α > 0 (ELU is only for α = 1)."""
    if alpha == 0:
        raise ValueError("celu: alpha must be non-zero (it divides x), got alpha=0.")
    negative = jnp.where(x > 0, jnp.zeros_like(x), x)
    return _nan_through(x, jnp.where(x > 0, x, alpha * _expm1(negative / alpha)))


SELU_SCALE = 1.0507009873554804934193349852946  # λ of Klambauer et al. 2017
SELU_ALPHA = 1.6732632423543772848170429916717  # α of Klambauer et al. 2017


def selu(x: Array) -> Array:
    """SELU (Klambauer et al. 2017): f(x) = λ·elu(x, α) with λ ≈ 1.0507, α ≈ 1.6733 (the
    self-normalizing constants); f′(x) = λ if x > 0 else λ·α·eˣ."""
    return SELU_SCALE * elu(x, SELU_ALPHA)


def glu(x: Array, axis: int = -1) -> Array:
    """Gated linear unit (Dauphin et al. 2017): split x in halves a, b along `axis`;
    f(x) = a ⊙ σ(b).  Shapes: (..., 2n, ...) → (..., n, ...); ∂f/∂a = σ(b),
    ∂f/∂b = a·σ(b)·(1 − σ(b)). An odd size along `axis` is a ValueError."""
    x = jnp.asarray(x)
    size = x.shape[axis]
    if size % 2:
        raise ValueError(f"glu: x.shape[{axis}] must be even to split in halves, got {x.shape}.")
    a, b = jnp.split(x, 2, axis=axis)
    return a * sigmoid(b)


@jax.custom_jvp
def softsign(x: Array) -> Array:
    """Softsign: f(x) = x/(1 + |x|);  f′(x) = 1/(1 + |x|)²  (jax.nn's `soft_sign`).

    The derivative is given in that closed form: autodiff of the quotient would form
    1/(1 + |x|) − |x|/(1 + |x|)², which cancels (relative error 1e-4 in float32 at |x| = 1e4).
    """
    return x / (1 + jnp.abs(x))


@softsign.defjvp
def _softsign_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (x,), (dx,) = primals, tangents
    return softsign(x), dx / jnp.square(1 + jnp.abs(x))


def log_sigmoid(x: Array) -> Array:
    """log σ(x) = −softplus(−x);  f′(x) = σ(−x) = 1 − σ(x)  (torch's `logsigmoid`).

    Finite for x = −1e4 (f = −1e4), where log(sigmoid(x)) would be log 0 = −∞.
    """
    return -softplus(-x)


def relu6(x: Array) -> Array:
    """ReLU6: f(x) = min(max(x, 0), 6);  f′(x) = 1 if 0 < x < 6 else 0 (0 at the corners, as
    torch and jax.nn)."""
    inside = (x > 0) & (x < 6)
    return _nan_through(x, jnp.where(inside, x, jnp.where(x >= 6, 6.0, 0.0).astype(x.dtype)))


def hard_sigmoid(x: Array) -> Array:
    """Hard sigmoid: f(x) = relu6(x + 3)/6 = clip(x/6 + ½, 0, 1);  f′(x) = 1/6 on (−3, 3),
    0 outside (torch's `hardsigmoid`; jax.nn's `hard_sigmoid`)."""
    return relu6(x + 3) / 6


def hard_swish(x: Array) -> Array:
    """Hard swish (Howard et al. 2019, MobileNetV3): f(x) = x·relu6(x + 3)/6;
    f′(x) = 0 for x ≤ −3, x/3 + ½ on (−3, 3), 1 for x ≥ 3 (torch's `hardswish`)."""
    return x * hard_sigmoid(x)


def hard_tanh(x: Array, min_val: float = -1.0, max_val: float = 1.0) -> Array:
    """Hard tanh: f(x) = clip(x, min_val, max_val);  f′(x) = 1 on (min_val, max_val), 0
    outside and at the corners (torch's `hardtanh`; jax.nn's `hard_tanh` has no bounds)."""
    if not min_val < max_val:
        raise ValueError(f"hard_tanh: min_val must be < max_val, got {min_val} and {max_val}.")
    inside = (x > min_val) & (x < max_val)
    outside = jnp.where(x >= max_val, max_val, min_val).astype(jnp.result_type(x))
    return _nan_through(x, jnp.where(inside, x, outside))


def mish(x: Array) -> Array:
    """Mish (Misra 2019): f(x) = x·tanh(softplus(x));
    f′(x) = tanh(sp) + x·(1 − tanh²(sp))·σ(x),  sp = softplus(x).
    Finite at ±1e4 (f(1e4) = 1e4, f(−1e4) = −0) since softplus is."""
    return x * jnp.tanh(softplus(x))


def squareplus(x: Array, b: float = 4.0) -> Array:
    """Squareplus (Barron 2021): f(x) = (x + √(x² + b))/2;  f′(x) = (1 + x/√(x² + b))/2.

    For x < 0 it is computed as b/(2·(√(x² + b) − x)), which has no cancellation: f(−1e4)
    = 1e-4 in float32, where the direct form gives 0 (and a gradient 0 instead of ≈ 1e-8).
    √(x² + b) is `hypot(x, √b)`, so x² never overflows. b ≥ 0 (jax.nn's default b = 4).
    """
    if b < 0:
        raise ValueError(f"squareplus: b must be ≥ 0, got b={b}.")
    root = jnp.hypot(x, math.sqrt(b))
    negative = jnp.where(x < 0, x, -jnp.ones_like(x))  # safe input: h − x > 0 always
    root_neg = jnp.hypot(negative, math.sqrt(b))
    return jnp.where(x < 0, b / (2 * (root_neg - negative)), (x + root) / 2)


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


def _last(x: Array, axis: int) -> tuple[Array, int]:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"x must be floating point, got dtype {x.dtype}.")
    if x.ndim == 0:
        raise ValueError(f"need at least one axis to normalize over, got shape {x.shape}.")
    return jnp.moveaxis(x, axis, -1), axis


def _ranks(z: Array) -> Array:
    """1, 2, …, K along the last axis, shaped (1, …, 1, K) like z (no rank promotion)."""
    k = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    return k.reshape((1,) * (z.ndim - 1) + k.shape)


def sparsemax(x: Array, axis: int = -1) -> Array:
    """Sparsemax (Martins & Astudillo 2016): the Euclidean projection of x onto the simplex,
    p = argmin_{p ∈ Δ} ‖p − x‖² = [x − τ]₊ along `axis`, with τ chosen so Σ p = 1:

        z = x sorted in decreasing order,  k = max{k : 1 + k·z_k > Σ_{j ≤ k} z_j},
        τ = (Σ_{j ≤ k} z_j − 1)/k.

    Jacobian: ∂p/∂x = diag(s) − s·sᵀ/|S| with s the support indicator (p > 0). Shift
    invariant, so it is computed on x − max(x): finite at ±1e4. Shapes: any, along `axis`.
    """
    z, axis = _last(x, axis)
    z = z - jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    ordered = -jnp.sort(-z, axis=-1)  # (..., K) decreasing
    k = _ranks(z)  # (1, …, 1, K): 1, 2, …, K
    cumulative = jnp.cumsum(ordered, axis=-1)
    support = jnp.sum((1 + k * ordered > cumulative).astype(jnp.int32), axis=-1, keepdims=True)
    tau = (jnp.take_along_axis(cumulative, support - 1, axis=-1) - 1) / support.astype(z.dtype)
    return jnp.moveaxis(relu(z - tau), -1, axis)


def entmax15(x: Array, axis: int = -1) -> Array:
    """1.5-entmax (Peters, Niculae & Martins 2019): p = [x/2 − τ]₊² along `axis`, τ chosen so
    Σ p = 1 — sparse like sparsemax, smooth like softmax (α-entmax with α = 1.5).

    Exact sort-based threshold: with z = x/2 sorted decreasingly, for each k the mean
    μ_k = (1/k)·Σ_{j≤k} z_j, the spread s_k = Σ_{j≤k} z_j² − k·μ_k², and
    τ_k = μ_k − √(max((1 − s_k)/k, 0)); the support size is #{k : τ_k ≤ z_k} and τ = τ_k there.
    Jacobian: ∂p/∂x = diag(√p) − √p·√pᵀ/Σ√p. Computed on x − max(x) (shift invariant), so
    finite at ±1e4; the square root is fed 1 where its argument is 0, so no 0·∞ in the
    backward pass.
    """
    z, axis = _last(x, axis)
    z = (z - jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))) / 2
    ordered = -jnp.sort(-z, axis=-1)  # (..., K) decreasing
    k = _ranks(z)  # (1, …, 1, K): 1, 2, …, K
    mean = jnp.cumsum(ordered, axis=-1) / k
    mean_sq = jnp.cumsum(ordered**2, axis=-1) / k
    delta = (1 - k * (mean_sq - mean**2)) / k
    positive = delta > 0
    root = jnp.where(positive, jnp.sqrt(jnp.where(positive, delta, 1)), 0)
    tau = mean - root
    support = jnp.sum((tau <= ordered).astype(jnp.int32), axis=-1, keepdims=True)
    tau_star = jnp.take_along_axis(tau, support - 1, axis=-1)
    return jnp.moveaxis(jnp.square(relu(z - tau_star)), -1, axis)


def entmax_bisect(x: Array, alpha: float = 1.5, axis: int = -1, *, n_iter: int = 50) -> Array:
    """α-entmax (Peters, Niculae & Martins 2019) by bisection, for any α ≥ 1 (the entmax
    package's `entmax_bisect`): along `axis`,

        p = argmax_{p ∈ Δ} ⟨p, x⟩ + H_α(p),   H_α(p) = (1 − Σ_i p_i^α)/(α(α − 1))  (Tsallis)
          = [(α − 1)·x − τ]₊^{1/(α−1)},   τ the one threshold with Σ_i p_i = 1.

    α = 2 is `sparsemax`, α = 1.5 is `entmax15` (which finds τ exactly by sorting; prefer it
    for α = 1.5), α → 1 tends to softmax and α = 1 *is* `softmax` (H₁ is Shannon's entropy).
    Larger α gives sparser p. Shapes: any, along `axis`; `alpha` a Python number ≥ 1.

    Threshold: with z = (α − 1)·(x − max x) ≤ 0, Σ_i [z_i − τ]₊^{1/(α−1)} falls as τ rises,
    is ≥ 1 at τ = −1 (the top entry alone gives 1) and ≤ 1 at τ = −K^{1−α} (every entry gives
    at most 1/K). `n_iter` halvings of that bracket (50, the package's default: the bracket
    is at most 1 wide, so 2⁻⁵⁰ ≈ 9e-16 is float64's resolution); p is taken at its low end
    (mass ≥ 1, so never all zero) and divided by its sum, so Σ p = 1 to rounding (the
    package's `ensure_sum_one`). Working on x − max x makes it finite at ±1e4; −∞ entries
    get p = 0 and a row of only −∞ gives zeros. bf16/fp16 inputs are computed in float32.

    Gradient (implicit function theorem on Σ p = 1, a custom JVP — nothing is differentiated
    through the loop):  ∂p/∂x = diag(g) − g·gᵀ/Σ_i g_i,  g = p^{2−α} on the support, 0 off it
    (g = the support indicator for sparsemax, √p for 1.5-entmax).
    """
    alpha = _check_entmax_alpha(alpha)
    if isinstance(n_iter, bool) or not isinstance(n_iter, int):
        raise TypeError(f"entmax_bisect: n_iter must be an int ≥ 1, got n_iter={n_iter!r}.")
    if n_iter < 1:
        raise ValueError(f"entmax_bisect: n_iter must be an int ≥ 1, got n_iter={n_iter!r}.")
    z, axis = _last(x, axis)
    dtype = z.dtype
    z = z.astype(jnp.promote_types(dtype, jnp.float32))
    if alpha == 1.0:
        p = softmax(z, axis=-1)
    else:
        p = _entmax_bisect_last(z, alpha, n_iter)
    return jnp.moveaxis(p.astype(dtype), -1, axis)


def _check_entmax_alpha(alpha: Any) -> float:
    """α as a float ≥ 1, or a TypeError/ValueError naming `alpha`."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"entmax_bisect: alpha must be a real number ≥ 1, got alpha={alpha!r}.")
    if not (math.isfinite(alpha) and alpha >= 1):
        raise ValueError(
            f"entmax_bisect: alpha must be a finite number ≥ 1 (1 is softmax, 2 sparsemax), "
            f"got alpha={alpha}."
        )
    return float(alpha)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _entmax_bisect_last(x: Array, alpha: float, n_iter: int) -> Array:
    """α-entmax along the last axis for α > 1 (see `entmax_bisect`)."""
    top = jnp.max(x, axis=-1, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, jnp.zeros_like(top))  # an all −∞ row: no NaN
    z = (alpha - 1) * (x - top)  # (..., K), ≤ 0, max exactly 0 (−∞ where x is)
    power = 1 / (alpha - 1)

    def mass(tau: Array) -> Array:
        return jnp.sum(relu(z - tau) ** power, axis=-1, keepdims=True)

    low = jnp.full_like(top, -1.0)  # mass(low) ≥ 1
    high = jnp.full_like(top, -(z.shape[-1] ** (1 - alpha)))  # mass(high) ≤ 1

    def halve(_: int, bracket: tuple[Array, Array]) -> tuple[Array, Array]:
        low, high = bracket
        mid = (low + high) / 2
        heavy = mass(mid) >= 1
        return jnp.where(heavy, mid, low), jnp.where(heavy, high, mid)

    low, _ = jax.lax.fori_loop(0, n_iter, halve, (low, high))
    p = relu(z - low) ** power
    total = jnp.sum(p, axis=-1, keepdims=True)
    return p / jnp.where(total == 0, jnp.ones_like(total), total)  # only an all −∞ row is 0


@_entmax_bisect_last.defjvp
def _entmax_bisect_jvp(
    alpha: float, n_iter: int, primals: tuple[Array], tangents: tuple[Array]
) -> tuple[Array, Array]:
    (x,), (dx,) = primals, tangents
    p = _entmax_bisect_last(x, alpha, n_iter)
    support = p > 0
    g = jnp.where(support, jnp.where(support, p, 1.0) ** (2 - alpha), 0.0)  # p^{2−α} on S
    total = jnp.sum(g, axis=-1, keepdims=True)
    total = jnp.where(total == 0, jnp.ones_like(total), total)  # an all −∞ row: g = 0
    g_dx = g * jnp.where(support, dx, 0.0)  # off the support dx never enters (0·∞ = NaN)
    return p, g_dx - g * jnp.sum(g_dx, axis=-1, keepdims=True) / total


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
