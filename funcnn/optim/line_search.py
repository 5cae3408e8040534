"""L-BFGS and its strong-Wolfe line search, as optax's `scale_by_lbfgs`,
`scale_by_zoom_linesearch` and `lbfgs`.

    opt = optim.lbfgs()
    state = opt.init(params)
    value, grad = jax.value_and_grad(f)(params)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
    params = optim.apply_updates(params, updates)

The line search reads optax's extra arguments: `value` = f(θ), `grad` = ∇f(θ) and
`value_fn` = f itself (evaluated, with its gradient, at trial points θ + η·u inside one
`lax.while_loop`, so a step stays one compiled program). Other keyword arguments that
`value_fn` accepts (a batch) are passed to it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn._validation import check_nonnegative_int
from funcnn.optim.base import (
    Array,
    GradientTransformation,
    Params,
    Schedule,
    Updates,
    chain,
    check_hyperparameter,
    safe_increment,
    tree_zeros_like,
)
from funcnn.optim.scaling import scale, scale_by_learning_rate

__all__ = [
    "ScaleByLbfgsState",
    "ScaleByZoomLinesearchState",
    "lbfgs",
    "scale_by_lbfgs",
    "scale_by_zoom_linesearch",
]


def _vdot(a: Any, b: Any) -> Array:
    """⟨a, b⟩ over every leaf and entry of two same-shaped trees."""
    parts = [jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)]
    return sum(parts[1:], parts[0])


def _axpy(a: Array, x: Any, y: Any) -> Any:
    """y + a·x leaf by leaf, keeping y's dtypes."""
    return jax.tree.map(lambda xi, yi: (yi + a * xi).astype(yi.dtype), x, y)


# --- the L-BFGS direction ---------------------------------------------------------------


class ScaleByLbfgsState(NamedTuple):
    """count: int32 scalar, updates done. params, updates: θ and g of the previous update.
    diff_params_memory, diff_updates_memory: the last m pairs sᵢ = Δθ, yᵢ = Δg, each leaf
    stacked to (m, *leaf.shape), slot k mod m written at update k + 1. weights_memory:
    ρᵢ = 1/⟨sᵢ, yᵢ⟩, shape (m,). (optax's field names.)"""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    params: Params
    updates: Params
    diff_params_memory: Params
    diff_updates_memory: Params
    weights_memory: Array


def scale_by_lbfgs(
    memory_size: int = 10, scale_init_precond: bool = True
) -> GradientTransformation:
    """The L-BFGS direction r ≈ H⁻¹g (Nocedal & Wright 2006, "Numerical Optimization",
    Algorithm 7.4), as optax's `scale_by_lbfgs`, at update k = 0, 1, … with m = memory_size:

        sₖ₋₁ = θₖ − θₖ₋₁,   yₖ₋₁ = gₖ − gₖ₋₁,   ρₖ₋₁ = 1/⟨sₖ₋₁, yₖ₋₁⟩ (0 where that is 0)
        γ = ⟨sₖ₋₁, yₖ₋₁⟩/‖yₖ₋₁‖²  (1 where ‖y‖ = 0);   γ = min(1, 1/‖g₀‖) at k = 0
        q = g;  for the pairs newest → oldest:  αᵢ = ρᵢ⟨sᵢ, q⟩,  q ← q − αᵢ·yᵢ
        r = γ·q; for the pairs oldest → newest: βᵢ = ρᵢ⟨yᵢ, r⟩,  r ← r + (αᵢ − βᵢ)·sᵢ
        d = r

    Only the last m pairs are kept (empty slots have ρ = 0 and change nothing); γ = 1 without
    `scale_init_precond`. The pair is formed from the params and gradients this stage saw at
    consecutive updates, so the stage must see the params of every update (a line search
    after it may change the step). Needs the params. d points uphill: negate it
    (`scale(-1)` or `scale_by_learning_rate`).
    """
    memory_size = check_nonnegative_int(memory_size, "memory_size")
    if memory_size < 1:
        raise ValueError(f"memory_size must be ≥ 1 (pairs kept), got memory_size={memory_size}.")

    def init(params: Params) -> ScaleByLbfgsState:
        stacked = jax.tree.map(
            lambda p: jnp.zeros((memory_size, *jnp.shape(p)), jnp.result_type(p)), params
        )
        widest = jnp.result_type(*jax.tree.leaves(params))
        return ScaleByLbfgsState(
            jnp.zeros([], jnp.int32),
            tree_zeros_like(params),
            tree_zeros_like(params),
            stacked,
            jax.tree.map(jnp.copy, stacked),
            jnp.zeros((memory_size,), widest),
        )

    def update(updates: Updates, state: ScaleByLbfgsState, params: Params | None = None, **extra):
        del extra
        if params is None:
            raise ValueError("scale_by_lbfgs needs the params: call update(grads, state, params).")
        started = state.count > 0
        slot = state.count % memory_size  # k mod m: the oldest pair after this write
        newest = (state.count - 1) % memory_size
        diff_params = jax.tree.map(lambda p, q: p - q, params, state.params)
        diff_updates = jax.tree.map(lambda g, h: g - h, updates, state.updates)
        sy = _vdot(diff_updates, diff_params)
        rho = jnp.where(sy == 0.0, 0.0, 1.0 / sy)
        zero_before = lambda x: jnp.where(started, x, jnp.zeros_like(x))
        diff_params, diff_updates = jax.tree.map(zero_before, (diff_params, diff_updates))
        rho = zero_before(rho)
        s_memory = jax.tree.map(
            lambda mem, x: mem.at[newest].set(x), state.diff_params_memory, diff_params
        )
        y_memory = jax.tree.map(
            lambda mem, x: mem.at[newest].set(x), state.diff_updates_memory, diff_updates
        )
        rhos = state.weights_memory.at[newest].set(rho.astype(state.weights_memory.dtype))
        if scale_init_precond:
            yy = _vdot(diff_updates, diff_updates)
            gamma = jnp.where(yy > 0.0, _vdot(diff_updates, diff_params) / yy, 1.0)
            first = jnp.minimum(1.0, 1.0 / jnp.sqrt(_vdot(updates, updates)))
            gamma = jnp.where(started, gamma, first)
        else:
            gamma = jnp.ones([])
        order = (slot + jnp.arange(memory_size)) % memory_size  # oldest → newest

        def newest_first(q: Any, i: Array) -> tuple[Any, Array]:
            s_i, y_i = jax.tree.map(lambda mem: mem[i], (s_memory, y_memory))
            alpha = rhos[i] * _vdot(s_i, q)
            return _axpy(-alpha, y_i, q), alpha

        q, alphas = jax.lax.scan(newest_first, updates, order, reverse=True)
        r = jax.tree.map(lambda x: (gamma * x).astype(x.dtype), q)

        def oldest_first(r: Any, i_alpha: tuple[Array, Array]) -> tuple[Any, None]:
            i, alpha = i_alpha
            s_i, y_i = jax.tree.map(lambda mem: mem[i], (s_memory, y_memory))
            beta = rhos[i] * _vdot(y_i, r)
            return _axpy(alpha - beta, s_i, r), None

        r, _ = jax.lax.scan(oldest_first, r, (order, alphas))
        new_state = ScaleByLbfgsState(
            safe_increment(state.count), params, updates, s_memory, y_memory, rhos
        )
        return r, new_state

    return GradientTransformation(init, update)


# --- the zoom (strong-Wolfe) line search --------------------------------------------------


class ScaleByZoomLinesearchState(NamedTuple):
    """learning_rate: the accepted step η of the last update (0-d). value, grad: f and ∇f at
    the accepted point θ + η·u (reusable as the next step's value and gradient).
    num_linesearch_steps: int32, evaluations made by the last search."""

    learning_rate: Array
    value: Array
    grad: Params
    num_linesearch_steps: Array


class _Search(NamedTuple):
    """The line search's loop carry (one point per field group: trial, low, high, safe)."""

    count: Array  # type: ignore[assignment]  # evaluations made (shadows tuple.count)
    step: Array
    value: Array
    grad: Any
    slope: Array
    decrease_error: Array
    interval_found: Array
    done: Array
    failed: Array
    low: Array
    value_low: Array
    slope_low: Array
    high: Array
    value_high: Array
    cubic_ref: Array
    value_cubic_ref: Array
    safe_step: Array
    safe_value: Array
    safe_grad: Any


def _cubic_minimizer(a, fa, fpa, b, fb, c, fc) -> Array:
    """Minimizer of the cubic with value fa and slope fpa at a through (b, fb), (c, fc);
    NaN where there is none (then the zoom falls back to the parabola or the midpoint)."""
    db, dc = b - a, c - a
    denom = (db * dc) ** 2 * (db - dc)
    r1, r2 = fb - fa - fpa * db, fc - fa - fpa * dc
    big_a = (dc**2 * r1 - db**2 * r2) / denom
    big_b = (-(dc**3) * r1 + db**3 * r2) / denom
    return a + (-big_b + jnp.sqrt(big_b * big_b - 3.0 * big_a * fpa)) / (3.0 * big_a)


def _quadratic_minimizer(a, fa, fpa, b, fb) -> Array:
    """Minimizer of the parabola with value fa and slope fpa at a through (b, fb)."""
    db = b - a
    return a - fpa / (2.0 * ((fb - fa - fpa * db) / (db * db)))


def _value_fn_kwargs(value_fn: Callable[..., Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The extra keyword arguments that `value_fn` accepts (a batch, a key), by name."""
    names = inspect.signature(value_fn).parameters
    return {k: v for k, v in extra.items() if k in names}


def scale_by_zoom_linesearch(
    max_linesearch_steps: int,
    max_learning_rate: float | None = None,
    tol: float = 0.0,
    increase_factor: float = 2.0,
    slope_rtol: float = 1e-4,
    curv_rtol: float = 0.9,
    approx_dec_rtol: float | None = 1e-6,
    stepsize_precision: float = 1e-5,
    initial_guess_strategy: str = "keep",
) -> GradientTransformation:
    """Scale u by a step η meeting the strong Wolfe conditions (Nocedal & Wright 2006,
    Algorithms 3.5 and 3.6, "zoom"), as optax's `scale_by_zoom_linesearch`. With
    φ(η) = f(θ + η·u) and φ'(η) = ⟨∇f(θ + η·u), u⟩, η is accepted when both errors are ≤ tol:

        decrease   max(0, φ(η) − φ(0) − c₁·η·φ'(0)), or where smaller the approximate-Wolfe
                   error max(φ'(η) − (2c₁ − 1)·φ'(0), φ(η) − φ(0) − ε_f·|φ(0)|)  (Hager & Zhang)
        curvature  max(0, |φ'(η)| − c₂·|φ'(0)|)

    (c₁ = slope_rtol, c₂ = curv_rtol, ε_f = approx_dec_rtol; None drops the approximate
    form; NaN counts as ∞). Phase 1 tries η₀ (1 with initial_guess_strategy="one", the last
    accepted η with "keep") and multiplies by increase_factor (capped at max_learning_rate)
    until [low, high] brackets an acceptable η; phase 2 tries the cubic minimizer, else the
    parabola's, else the midpoint. After max_linesearch_steps evaluations, or once the
    interval is shorter than stepsize_precision with a point of sufficient decrease, it
    takes the best such point (or stays put, η = 0, when every trial was non-finite).
    u ← η·u. Needs `value`, `grad` and `value_fn` (update's keyword arguments) and the params.
    """
    max_steps = check_nonnegative_int(max_linesearch_steps, "max_linesearch_steps")
    if max_steps < 1:
        raise ValueError(f"max_linesearch_steps must be ≥ 1, got {max_linesearch_steps}.")
    if max_learning_rate is not None:
        max_learning_rate = check_hyperparameter(
            max_learning_rate, "max_learning_rate", low_inclusive=False
        )
    tol = check_hyperparameter(tol, "tol")
    increase_factor = check_hyperparameter(increase_factor, "increase_factor", low=1.0)
    slope_rtol = check_hyperparameter(slope_rtol, "slope_rtol", high=1.0)
    curv_rtol = check_hyperparameter(curv_rtol, "curv_rtol", high=1.0)
    if approx_dec_rtol is not None:
        approx_dec_rtol = check_hyperparameter(approx_dec_rtol, "approx_dec_rtol")
    stepsize_precision = check_hyperparameter(stepsize_precision, "stepsize_precision")
    if initial_guess_strategy not in ("one", "keep"):
        raise ValueError(
            f'initial_guess_strategy must be "one" or "keep", got {initial_guess_strategy!r}.'
        )

    def init(params: Params) -> ScaleByZoomLinesearchState:
        dtype = jnp.result_type(*jax.tree.leaves(params))
        return ScaleByZoomLinesearchState(
            jnp.ones([], dtype),
            jnp.full([], jnp.inf, dtype),
            tree_zeros_like(params),
            jnp.zeros([], jnp.int32),
        )

    def update(
        updates: Updates,
        state: ScaleByZoomLinesearchState,
        params: Params | None = None,
        *,
        value: Array | None = None,
        grad: Updates | None = None,
        value_fn: Callable[..., Array] | None = None,
        **extra,
    ):
        if params is None or value is None or grad is None or value_fn is None:
            raise ValueError(
                "scale_by_zoom_linesearch needs the params and the extra arguments value=f(θ), "
                "grad=∇f(θ) and value_fn=f: call update(grads, state, params, value=value, "
                "grad=grads, value_fn=loss)."
            )
        kwargs = _value_fn_kwargs(value_fn, extra)
        value_and_grad = jax.value_and_grad(lambda p: value_fn(p, **kwargs))
        dtype = state.learning_rate.dtype
        value0 = jnp.asarray(value, dtype)
        slope0 = _vdot(updates, grad).astype(dtype)
        c1, c2 = jnp.asarray(slope_rtol, dtype), jnp.asarray(curv_rtol, dtype)
        inf = jnp.asarray(jnp.inf, dtype)

        def evaluate(step: Array) -> tuple[Array, Any, Array]:
            trial = jax.tree.map(lambda p, u: (p + step * u).astype(p.dtype), params, updates)
            value_step, grad_step = value_and_grad(trial)
            return value_step.astype(dtype), grad_step, _vdot(grad_step, updates).astype(dtype)

        def errors(step: Array, value_step: Array, slope_step: Array) -> tuple[Array, Array]:
            decrease = value_step - value0 - c1 * step * slope0
            if approx_dec_rtol is not None:
                approx = slope_step - (2 * c1 - 1.0) * slope0
                approx = jnp.maximum(
                    approx, value_step - value0 - approx_dec_rtol * jnp.abs(value0)
                )
                decrease = jnp.minimum(approx, decrease)
            decrease = jnp.where(jnp.isnan(decrease), inf, jnp.maximum(decrease, 0.0))
            curvature = jnp.abs(slope_step) - c2 * jnp.abs(slope0)
            curvature = jnp.where(jnp.isnan(curvature), inf, jnp.maximum(curvature, 0.0))
            return decrease, curvature

        def search(s: _Search) -> _Search:
            """Phase 1: grow the step until an interval brackets an acceptable one."""
            new = jnp.where(s.count == 0, guess, increase_factor * s.step)
            if max_learning_rate is not None:
                at_max = new >= max_learning_rate
                new = jnp.minimum(new, max_learning_rate)
            else:
                at_max = jnp.asarray(False)
            new_value, new_grad, new_slope = evaluate(new)
            decrease, curvature = errors(new, new_value, new_slope)
            error = jnp.maximum(decrease, curvature)
            safe = decrease <= tol
            high_is_new = (decrease > 0.0) | ((new_value >= s.value) & (s.count > 0))
            low_is_new = (new_slope >= 0.0) & ~high_is_new
            pick = lambda a, b: jnp.where(low_is_new, a, b)
            low, value_low, slope_low = (
                pick(new, s.step),
                pick(new_value, s.value),
                pick(new_slope, s.slope),
            )
            interval_found = high_is_new | low_is_new | (error <= tol)
            done = (error <= tol) | (at_max & ~interval_found)
            return _Search(
                count=s.count + 1,
                step=new,
                value=new_value,
                grad=new_grad,
                slope=new_slope,
                decrease_error=decrease,
                interval_found=interval_found,
                done=done,
                failed=(s.count + 1 >= max_steps) & ~done,
                low=low,
                value_low=value_low,
                slope_low=slope_low,
                high=pick(s.step, new),
                value_high=pick(s.value, new_value),
                cubic_ref=low,
                value_cubic_ref=value_low,
                safe_step=jnp.where(safe, new, s.safe_step),
                safe_value=jnp.where(safe, new_value, s.safe_value),
                safe_grad=jax.tree.map(lambda a, b: jnp.where(safe, a, b), new_grad, s.safe_grad),
            )

        def zoom(s: _Search) -> _Search:
            """Phase 2: shrink [low, high] around an acceptable step."""
            delta = jnp.abs(s.high - s.low)
            left, right = jnp.minimum(s.high, s.low), jnp.maximum(s.high, s.low)
            cubic = _cubic_minimizer(
                s.low,
                s.value_low,
                s.slope_low,
                s.high,
                s.value_high,
                s.cubic_ref,
                s.value_cubic_ref,
            )
            quad = _quadratic_minimizer(s.low, s.value_low, s.slope_low, s.high, s.value_high)
            use_cubic = (cubic > left + 0.2 * delta) & (cubic < right - 0.2 * delta)
            use_quad = ~use_cubic & (quad > left + 0.1 * delta) & (quad < right - 0.1 * delta)
            new = jnp.where(use_cubic, cubic, jnp.where(use_quad, quad, (s.low + s.high) / 2.0))
            new_value, new_grad, new_slope = evaluate(new)
            decrease, curvature = errors(new, new_value, new_slope)
            done = jnp.maximum(decrease, curvature) <= tol
            safe = (decrease <= tol) & (new_value < s.safe_value)
            high_is_new = (decrease > 0.0) | (new_value >= s.value_low)
            high_is_low = (new_slope * (s.high - s.low) >= 0.0) & ~high_is_new
            high = jnp.where(high_is_low, s.low, jnp.where(high_is_new, new, s.high))
            value_high = jnp.where(
                high_is_low, s.value_low, jnp.where(high_is_new, new_value, s.value_high)
            )
            moved_high = high_is_new | high_is_low
            safe_step = jnp.where(safe, new, s.safe_step)
            stuck = (s.count + 1 >= max_steps) | ((delta <= stepsize_precision) & (safe_step > 0.0))
            return _Search(
                count=s.count + 1,
                step=new,
                value=new_value,
                grad=new_grad,
                slope=new_slope,
                decrease_error=decrease,
                interval_found=s.interval_found,
                done=done,
                failed=stuck & ~done,
                low=jnp.where(high_is_new, s.low, new),
                value_low=jnp.where(high_is_new, s.value_low, new_value),
                slope_low=jnp.where(high_is_new, s.slope_low, new_slope),
                high=high,
                value_high=value_high,
                cubic_ref=jnp.where(moved_high, s.high, s.low),
                value_cubic_ref=jnp.where(moved_high, s.value_high, s.value_low),
                safe_step=safe_step,
                safe_value=jnp.where(safe, new_value, s.safe_value),
                safe_grad=jax.tree.map(lambda a, b: jnp.where(safe, a, b), new_grad, s.safe_grad),
            )

        def body(s: _Search) -> _Search:
            s = jax.lax.cond(s.interval_found, zoom, search, s)
            # Out of evaluations: fall back to the best point that decreased f enough.
            fallback = s.failed & ((s.safe_step > 0.0) | jnp.isinf(s.decrease_error))
            return s._replace(
                step=jnp.where(fallback, s.safe_step, s.step),
                value=jnp.where(fallback, s.safe_value, s.value),
                grad=jax.tree.map(lambda a, b: jnp.where(fallback, a, b), s.safe_grad, s.grad),
            )

        guess = jnp.ones([], dtype) if initial_guess_strategy == "one" else state.learning_rate
        zero = jnp.zeros([], dtype)
        grad = jax.tree.map(lambda g, p: jnp.asarray(g).astype(jnp.result_type(p)), grad, params)
        start = _Search(
            count=jnp.zeros([], jnp.int32),
            step=zero,
            value=value0,
            grad=grad,
            slope=slope0,
            decrease_error=inf,
            interval_found=jnp.asarray(False),
            done=jnp.asarray(False),
            failed=jnp.asarray(False),
            low=zero,
            value_low=value0,
            slope_low=slope0,
            high=zero,
            value_high=value0,
            cubic_ref=zero,
            value_cubic_ref=value0,
            safe_step=zero,
            safe_value=value0,
            safe_grad=grad,
        )
        final = jax.lax.while_loop(lambda s: ~(s.done | s.failed), body, start)
        scaled = jax.tree.map(lambda u: (final.step * u).astype(u.dtype), updates)
        return scaled, ScaleByZoomLinesearchState(final.step, final.value, final.grad, final.count)

    return GradientTransformation(init, update)


def lbfgs(
    learning_rate: float | Schedule | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: GradientTransformation | str | None = "zoom",
) -> GradientTransformation:
    """L-BFGS (Liu & Nocedal 1989; Nocedal & Wright 2006, Algorithm 7.5), as optax's `lbfgs`:

        r = H⁻¹g by the two-loop recursion (`scale_by_lbfgs`)
        u = −η·r                         (η = 1 when learning_rate is None)
        θ ← θ + α·u,  α from the strong-Wolfe zoom search (`scale_by_zoom_linesearch` with
                       20 evaluations and η₀ = 1 each step, optax's default)

    `linesearch=None` takes the plain step; any other transformation may replace the search.
    Every update needs the extra arguments: `update(g, state, θ, value=f(θ), grad=g,
    value_fn=f)`. torch.optim.LBFGS differs (a closure, up to 20 inner iterations per
    `step`, its own cubic line search): this follows optax, one iteration per update;
    `torch_lbfgs` follows torch.
    Chain: scale_by_lbfgs → scale(−1) (or scale_by_learning_rate) → line search.
    """
    if linesearch == "zoom":
        linesearch = scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one")
    stages = [
        scale_by_lbfgs(memory_size, scale_init_precond),
        scale(-1.0) if learning_rate is None else scale_by_learning_rate(learning_rate),
    ]
    if linesearch is not None:
        if not isinstance(linesearch, GradientTransformation):
            raise TypeError(
                "linesearch must be a GradientTransformation, None or 'zoom', got "
                f"{type(linesearch).__name__}."
            )
        stages.append(linesearch)
    return chain(*stages)
