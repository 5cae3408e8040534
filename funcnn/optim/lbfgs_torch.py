"""torch.optim.LBFGS's semantics as a gradient transformation: `torch_lbfgs`.

    opt = optim.torch_lbfgs(line_search_fn="strong_wolfe")
    state = opt.init(params)
    value, grad = jax.value_and_grad(f)(params)
    updates, state = opt.update(grad, state, params, value=value, value_fn=f)
    params = optim.apply_updates(params, updates)          # after up to max_iter iterations

Why a second L-BFGS, and why this name: `optim.lbfgs` is optax's (optax's name, arguments and
semantics: one quasi-Newton iteration per update, the zoom line search). PyTorch's `LBFGS`
is a different algorithm that users port from: each `step(closure)` runs a whole inner loop
of up to `max_iter` iterations with its own memory rules, first step and cubic strong-Wolfe
search, stopping on its tolerances. `torch_lbfgs` reproduces that loop step for step (torch's
argument names, `lr` → `learning_rate` as everywhere in funcnn, and torch's defaults), under a
name that says whose semantics it follows and cannot be mistaken for optax's.

The closure becomes optax's extra arguments: `value` = f(θ) and the incoming update = ∇f(θ)
(torch's first closure call), `value_fn` = f, differentiated with `jax.value_and_grad` at
every further evaluation; other keyword arguments that `value_fn` accepts (a batch) reach it.
The whole inner loop is one `lax.while_loop` (the line search two more), so an update stays
one compiled program.
"""

from __future__ import annotations

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
    as_schedule,
    check_hyperparameter,
    safe_increment,
    tree_zeros_like,
)
from funcnn.optim.line_search import _axpy, _value_fn_kwargs, _vdot

__all__ = ["TorchLbfgsState", "torch_lbfgs"]

# torch's strong-Wolfe search is called with its own defaults, not the optimizer's settings:
# c₁ = 1e-4, c₂ = 0.9, and a bracket is too short once |b₁ − b₀|·max|d| < 1e-9.
_C1, _C2, _SEARCH_TOLERANCE_CHANGE = 1e-4, 0.9, 1e-9
# A curvature pair enters the memory only where ⟨y, s⟩ > 1e-10 (torch's fixed threshold).
_CURVATURE_THRESHOLD = 1e-10


def _max_abs(tree: Any) -> Array:
    """max |x| over every entry of every leaf (torch's ‖·‖∞ of the flat vector)."""
    return jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in jax.tree.leaves(tree)]))


def _sum_abs(tree: Any) -> Array:
    """Σ |x| over every entry of every leaf (‖·‖₁)."""
    parts = [jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree)]
    return sum(parts[1:], parts[0])


def _where(cond: Array, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


# Rows are written and read through masks, never `x.at[i]` or `x[i]` with a traced i: under
# `vmap` (the race sweeps η that way) a batched index inside `while_loop` becomes a batched
# scatter that XLA 0.10's CPU compiler aborts on (symbolic_map.cc check failure, measured).


def _row_mask(index: Array, stacked: Array) -> Array:
    """(n, 1, …, 1) booleans: True at row `index` of a (n, *leaf) stack."""
    rows = jnp.arange(stacked.shape[0]).reshape((-1,) + (1,) * (stacked.ndim - 1))
    return rows == index


def _set_row(stacked: Array, index: Array, value: Array) -> Array:
    """stacked with row `index` replaced by value (stacked.at[index].set(value))."""
    return jnp.where(_row_mask(index, stacked), value[None].astype(stacked.dtype), stacked)


def _get_row(stacked: Array, index: Array) -> Array:
    """stacked[index] for a 2-row stack (the line-search bracket)."""
    return jnp.where(index == 0, stacked[0], stacked[1])


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, low, high) -> Array:
    """The minimizer of the cubic with values f1, f2 and slopes g1, g2 at x1, x2, clipped to
    [low, high]; the interval's midpoint where the cubic has no minimizer (torch's rule):

        d₁ = g₁ + g₂ − 3(f₁ − f₂)/(x₁ − x₂),   d₂ = √(d₁² − g₁g₂)
        x* = x₂ − (x₂ − x₁)·(g₂ + d₂ − d₁)/(g₂ − g₁ + 2d₂)      (x₁ ≤ x₂; mirrored otherwise)
    """
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    d2 = jnp.sqrt(jnp.maximum(d2_square, 0.0))
    ascending = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    descending = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    minimizer = jnp.where(x1 <= x2, ascending, descending)
    return jnp.where(
        d2_square >= 0, jnp.minimum(jnp.maximum(minimizer, low), high), (low + high) / 2.0
    )


class TorchLbfgsState(NamedTuple):
    """torch.optim.LBFGS's state (its state-dict keys where it has them).

    count: int32, updates done (the learning-rate schedule's step). func_evals: int32,
    evaluations of f over all updates (the first of each update included). n_iter: int32,
    inner iterations over all updates. d, t: the last direction and step length.
    old_dirs, old_stps: the curvature pairs y = Δg and s = t·d, each leaf stacked to
    (history_size, *leaf.shape), oldest first: rows 0 … num_old − 1 hold pairs, the rest
    zeros. ro: ρ = 1/⟨y, s⟩ per row, (history_size,). h_diag: γ = ⟨y, s⟩/⟨y, y⟩ of the newest
    pair (the initial inverse Hessian γI). prev_flat_grad, prev_loss: g and f where the last
    iteration started."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    func_evals: Array
    n_iter: Array
    d: Params
    t: Array
    old_dirs: Params
    old_stps: Params
    ro: Array
    num_old: Array
    h_diag: Array
    prev_flat_grad: Params
    prev_loss: Array


class _Iteration(NamedTuple):
    """The inner loop's carry: the point, the memory, and the stopping bookkeeping."""

    x: Params
    loss: Array
    g: Params
    d: Params
    t: Array
    old_dirs: Params
    old_stps: Params
    ro: Array
    num_old: Array
    h_diag: Array
    prev_g: Params
    prev_loss: Array
    n_iter: Array  # over all updates
    inner: Array  # in this update
    current_evals: Array
    stop: Array


class _Bracketing(NamedTuple):
    """Phase 1 of the search: the previous trial (…_prev) and the current one."""

    t_prev: Array
    f_prev: Array
    g_prev: Any
    gtd_prev: Array
    t: Array
    f: Array
    g: Any
    gtd: Array
    ls_iter: Array


class _Zoom(NamedTuple):
    """Phase 2: the bracket's two ends (each field (2,), g stacked on a leading 2)."""

    bracket: Array
    bracket_f: Array
    bracket_g: Any
    bracket_gtd: Array
    low: Array  # int32, which end has the lower f
    insufficient: Array
    done: Array
    ls_iter: Array


def _strong_wolfe(evaluate, t, f0, g0, gtd0, d_norm, max_ls) -> tuple[Array, Array, Any, Array]:
    """torch's cubic-interpolation strong-Wolfe search along d from step t (its lswolfe):
    returns (t, f, g at x + t·d, evaluations). φ(t) = f(x + t·d), φ'(t) = ⟨∇f, d⟩.

    Phase 1 grows the step: stop with a bracket [t_prev, t] when φ(t) > φ(0) + c₁·t·φ'(0)
    or φ(t) ≥ φ(t_prev) (after two growths), or φ'(t) ≥ 0; accept t when |φ'(t)| ≤ −c₂φ'(0);
    else t ← the cubic minimizer clipped to [t + 0.01(t − t_prev), 10t]. Phase 2 shrinks the
    bracket with the cubic minimizer (moved 0.1·width inside when it lands near an end twice
    or beyond it) until the strong Wolfe conditions hold. `max_ls` counts the trials after
    the first; when phase 1 uses them all, the bracket is [0, t] and its lower end is taken.
    """
    zero = jnp.zeros_like(t)

    def armijo_fails(step, f):
        return f > f0 + _C1 * step * gtd0

    def wolfe(gtd):
        return jnp.abs(gtd) <= -_C2 * gtd0

    f1, g1, gtd1 = evaluate(t)
    start = _Bracketing(zero, f0, g0, gtd0, t, f1, g1, gtd1, jnp.zeros([], jnp.int32))

    def bracket_found(b: _Bracketing) -> tuple[Array, Array]:
        """(stops with a bracket, stops accepted)."""
        fails = armijo_fails(b.t, b.f) | ((b.ls_iter > 1) & (b.f >= b.f_prev))
        return fails | (~wolfe(b.gtd) & (b.gtd >= 0)), ~fails & wolfe(b.gtd)

    def grow(b: _Bracketing) -> _Bracketing:
        new = _cubic_interpolate(
            b.t_prev, b.f_prev, b.gtd_prev, b.t, b.f, b.gtd, b.t + 0.01 * (b.t - b.t_prev), b.t * 10
        )
        f_new, g_new, gtd_new = evaluate(new)
        return _Bracketing(b.t, b.f, b.g, b.gtd, new, f_new, g_new, gtd_new, b.ls_iter + 1)

    def keep_growing(b: _Bracketing) -> Array:
        bracketed, accepted = bracket_found(b)
        return (b.ls_iter < max_ls) & ~bracketed & ~accepted

    b = jax.lax.while_loop(keep_growing, grow, start)
    exhausted = b.ls_iter == max_ls
    _, accepted = bracket_found(b)
    done = ~exhausted & accepted
    # the bracket's first end: [0, t] when out of trials, [t, t] when accepted, else [t_prev, t]
    first_t = jnp.where(exhausted, zero, jnp.where(done, b.t, b.t_prev))
    first_f = jnp.where(exhausted, f0, jnp.where(done, b.f, b.f_prev))
    first_g = _where(exhausted, g0, _where(done, b.g, b.g_prev))
    first_gtd = jnp.where(exhausted, gtd0, jnp.where(done, b.gtd, b.gtd_prev))
    bracket_f = jnp.stack([first_f, b.f])
    zoom0 = _Zoom(
        jnp.stack([first_t, b.t]),
        bracket_f,
        jax.tree.map(lambda a, c: jnp.stack([a, c]), first_g, b.g),
        jnp.stack([first_gtd, b.gtd]),
        jnp.where(bracket_f[0] <= bracket_f[1], 0, 1).astype(jnp.int32),
        jnp.asarray(False),
        done,
        b.ls_iter,
    )

    def keep_zooming(z: _Zoom) -> Array:
        too_short = jnp.abs(z.bracket[1] - z.bracket[0]) * d_norm < _SEARCH_TOLERANCE_CHANGE
        return ~z.done & (z.ls_iter < max_ls) & ~too_short

    def zoom(z: _Zoom) -> _Zoom:
        br, bf, bgtd = z.bracket, z.bracket_f, z.bracket_gtd
        lo, hi = jnp.minimum(br[0], br[1]), jnp.maximum(br[0], br[1])
        new = _cubic_interpolate(br[0], bf[0], bgtd[0], br[1], bf[1], bgtd[1], lo, hi)
        # Too close to an end: accept it once, move 0.1·width inside if it happens again
        # (or at once when it lies on or beyond an end).
        margin = 0.1 * (hi - lo)
        near_end = jnp.minimum(hi - new, new - lo) < margin
        at_end = z.insufficient | (new >= hi) | (new <= lo)
        inside = jnp.where(jnp.abs(new - hi) < jnp.abs(new - lo), hi - margin, lo + margin)
        new = jnp.where(near_end & at_end, inside, new)
        insufficient = near_end & ~at_end
        f_new, g_new, gtd_new = evaluate(new)
        low, high = z.low, 1 - z.low
        fails = armijo_fails(new, f_new) | (f_new >= bf[low])
        accepted = ~fails & wolfe(gtd_new)
        flip = ~fails & ~accepted & (gtd_new * (br[high] - br[low]) >= 0)

        # fails: the trial replaces the high end; else (the old low end becomes the high end
        # where the slope says the minimum lies beyond it) the trial replaces the low end.
        def settle(values, value):
            replaced_high = _set_row(values, high, value)
            flipped = jnp.where(flip, _set_row(values, high, _get_row(values, low)), values)
            return jnp.where(fails, replaced_high, _set_row(flipped, low, value))

        new_bf = settle(bf, f_new)
        return _Zoom(
            settle(br, new),
            new_bf,
            jax.tree.map(settle, z.bracket_g, g_new),
            settle(bgtd, gtd_new),
            jnp.where(fails, jnp.where(new_bf[0] <= new_bf[1], 0, 1), low).astype(jnp.int32),
            insufficient,
            accepted,
            z.ls_iter + 1,
        )

    z = jax.lax.while_loop(keep_zooming, zoom, zoom0)
    g_low = jax.tree.map(lambda x: _get_row(x, z.low), z.bracket_g)
    return _get_row(z.bracket, z.low), _get_row(z.bracket_f, z.low), g_low, z.ls_iter + 1


def torch_lbfgs(
    learning_rate: float | Schedule = 1.0,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    history_size: int = 100,
    line_search_fn: str | None = None,
) -> GradientTransformation:
    """L-BFGS as torch.optim.LBFGS runs it (Liu & Nocedal 1989; Nocedal & Wright 2006,
    Algorithms 7.4 and 3.5/3.6; torch's code follows minFunc): every `update` is one torch
    `step`, up to `max_iter` inner iterations k, each

        yₖ = gₖ − gₖ₋₁,  sₖ = tₖ₋₁·dₖ₋₁;  store (y, s, ρ = 1/⟨y, s⟩) only if ⟨y, s⟩ > 1e-10
                 (the oldest pair leaves beyond history_size), then γ = ⟨y, s⟩/⟨y, y⟩
        dₖ = −H·gₖ by the two-loop recursion from H₀ = γI   (dₖ = −gₖ at the very first k)
        tₖ = min(1, 1/‖gₖ‖₁)·η at the very first k, else η     (η = learning_rate)
        stop if ⟨gₖ, dₖ⟩ > −tolerance_change                  (not a descent direction)
        line_search_fn=None:  θ ← θ + tₖ·dₖ, then f and g at the new θ (skipped on the last
                              iteration: torch does not re-evaluate there)
        "strong_wolfe":       tₖ from torch's cubic strong-Wolfe search (c₁ = 1e-4,
                              c₂ = 0.9, at most max_eval − evaluations-so-far trials), θ ← θ + tₖ·dₖ

    and the update stops after max_iter iterations, once max_eval evaluations are spent (the
    one given counted), when max|g| ≤ tolerance_grad (also checked before the first
    iteration: then nothing moves), when max|tₖdₖ| ≤ tolerance_change, or when
    |fₖ₊₁ − fₖ| < tolerance_change. The memory, d, t and the iteration count carry over to
    the next update, as in torch's state. max_eval defaults to ⌊5·max_iter/4⌋.

    Differences from torch, none in the math: no closure (`update(g, state, θ, value=f(θ),
    value_fn=f)`, g = ∇f(θ); it must be the whole optimizer, not a stage after others), the
    parameters are any pytree (torch's flat vector is the concatenation of the leaves), the
    learning rate may be a schedule of the update count, and the result is an update
    u = θ_final − θ, so θ + u may differ from θ_final in the last bit. Memory:
    2·history_size copies of the params. Shapes: every state leaf as its param, the pairs
    (history_size, *leaf.shape).
    """
    lr_schedule = as_schedule(learning_rate, "learning_rate")
    max_iter = check_nonnegative_int(max_iter, "max_iter")
    if max_iter < 1:
        raise ValueError(f"max_iter must be ≥ 1 (iterations per update), got {max_iter}.")
    if max_eval is None:
        max_eval = max_iter * 5 // 4
    max_eval = check_nonnegative_int(max_eval, "max_eval")
    if max_eval < 1:
        raise ValueError(f"max_eval must be ≥ 1 (evaluations per update), got {max_eval}.")
    tolerance_grad = check_hyperparameter(tolerance_grad, "tolerance_grad")
    tolerance_change = check_hyperparameter(tolerance_change, "tolerance_change")
    history_size = check_nonnegative_int(history_size, "history_size")
    if history_size < 1:
        raise ValueError(f"history_size must be ≥ 1 (pairs kept), got {history_size}.")
    if line_search_fn not in (None, "strong_wolfe"):
        raise ValueError(
            f'line_search_fn must be None or "strong_wolfe" (torch\'s two), got {line_search_fn!r}.'
        )
    m = history_size

    def init(params: Params) -> TorchLbfgsState:
        dtype = jnp.result_type(*jax.tree.leaves(params))
        stacked = jax.tree.map(lambda p: jnp.zeros((m, *jnp.shape(p)), jnp.result_type(p)), params)
        zero_i = jnp.zeros([], jnp.int32)
        return TorchLbfgsState(
            count=zero_i,
            func_evals=zero_i,
            n_iter=zero_i,
            d=tree_zeros_like(params),
            t=jnp.zeros([], dtype),
            old_dirs=stacked,
            old_stps=jax.tree.map(jnp.copy, stacked),
            ro=jnp.zeros((m,), dtype),
            num_old=zero_i,
            h_diag=jnp.ones([], dtype),
            prev_flat_grad=tree_zeros_like(params),
            prev_loss=jnp.zeros([], dtype),
        )

    def update(
        updates: Updates,
        state: TorchLbfgsState,
        params: Params | None = None,
        *,
        value: Array | None = None,
        value_fn: Callable[..., Array] | None = None,
        **extra: Any,
    ):
        if params is None or value is None or value_fn is None:
            raise ValueError(
                "torch_lbfgs needs the params and the extra arguments value=f(θ) and "
                "value_fn=f (torch's closure): call update(grads, state, params, "
                "value=loss_value, value_fn=loss)."
            )
        extra.pop("grad", None)  # the incoming update is the gradient
        kwargs = _value_fn_kwargs(value_fn, extra)
        value_and_grad = jax.value_and_grad(lambda p: value_fn(p, **kwargs))
        dtype = state.t.dtype
        lr = jnp.asarray(lr_schedule(state.count), dtype)

        def cast_like_params(tree: Any) -> Any:
            return jax.tree.map(
                lambda x, p: jnp.asarray(x).astype(jnp.result_type(p)), tree, params
            )

        def evaluate(x: Params) -> tuple[Array, Params]:
            f, g = value_and_grad(x)
            return jnp.asarray(f).astype(dtype), cast_like_params(g)

        def two_loop(g: Params, old_dirs, old_stps, ro, num_old, h_diag) -> Params:
            """d = −H·g from the pairs in rows 0 … num_old − 1 (oldest first)."""
            rows = (jnp.arange(m), old_stps, old_dirs, ro)

            def newest_first(q, row):
                age, s_i, y_i, rho = row
                valid = age < num_old
                alpha = jnp.where(valid, _vdot(s_i, q) * rho, 0.0)
                return _where(valid, _axpy(-alpha, y_i, q), q), alpha

            q, alphas = jax.lax.scan(
                newest_first, jax.tree.map(jnp.negative, g), rows, reverse=True
            )
            r = jax.tree.map(lambda x: (x * h_diag).astype(x.dtype), q)

            def oldest_first(r, row_alpha):
                (age, s_i, y_i, rho), alpha = row_alpha
                valid = age < num_old
                beta = _vdot(y_i, r) * rho
                return _where(valid, _axpy(alpha - beta, s_i, r), r), None

            r, _ = jax.lax.scan(oldest_first, r, (rows, alphas))
            return r

        def iterate(c: _Iteration) -> _Iteration:
            inner, n_iter = c.inner + 1, c.n_iter + 1
            first = n_iter == 1  # the very first iteration of the run
            # The curvature pair of the last iteration: y = Δg, s = t·d.
            y = jax.tree.map(lambda a, b: a - b, c.g, c.prev_g)
            s = jax.tree.map(lambda x: (x * c.t).astype(x.dtype), c.d)
            ys = _vdot(y, s)
            push = ~first & (ys > _CURVATURE_THRESHOLD)
            # Full: the oldest pair leaves (every row moves up one) and the new one takes the
            # last row; else it takes the first empty row.
            full = c.num_old == m
            row = jnp.minimum(c.num_old, m - 1)

            def append(stacked: Array, value: Array) -> Array:
                shifted = jnp.where(full, jnp.roll(stacked, -1, axis=0), stacked)
                return jnp.where(push, _set_row(shifted, row, value), stacked)

            old_dirs = jax.tree.map(append, c.old_dirs, y)
            old_stps = jax.tree.map(append, c.old_stps, s)
            ro = append(c.ro, (1.0 / ys).astype(dtype))
            num_old = jnp.where(push, jnp.minimum(c.num_old + 1, m), c.num_old)
            h_diag = jnp.where(first, 1.0, jnp.where(push, ys / _vdot(y, y), c.h_diag)).astype(
                dtype
            )
            d = two_loop(c.g, old_dirs, old_stps, ro, num_old, h_diag)
            d = _where(first, jax.tree.map(jnp.negative, c.g), d)
            t = jnp.where(first, jnp.minimum(1.0, 1.0 / _sum_abs(c.g)) * lr, lr).astype(dtype)
            gtd = _vdot(c.g, d)
            not_descent = gtd > -tolerance_change
            max_ls = max_eval - c.current_evals

            def move(_):
                if line_search_fn == "strong_wolfe":

                    def along(step):
                        trial = jax.tree.map(lambda p, v: (p + step * v).astype(p.dtype), c.x, d)
                        f, g = evaluate(trial)
                        return f, g, _vdot(g, d)

                    step, f, g, evals = _strong_wolfe(
                        along, t, c.loss, c.g, gtd, _max_abs(d), max_ls
                    )
                    x = jax.tree.map(lambda p, v: (p + step * v).astype(p.dtype), c.x, d)
                    return x, f, g, step, evals, _max_abs(g) <= tolerance_grad
                x = jax.tree.map(lambda p, v: (p + t * v).astype(p.dtype), c.x, d)
                last = inner == max_iter

                def reevaluate(_):
                    f, g = evaluate(x)
                    return f, g, jnp.ones([], jnp.int32)

                f, g, evals = jax.lax.cond(
                    last, lambda _: (c.loss, c.g, jnp.zeros([], jnp.int32)), reevaluate, None
                )
                return x, f, g, t, evals, ~last & (_max_abs(g) <= tolerance_grad)

            def stay(_):
                return c.x, c.loss, c.g, t, jnp.zeros([], jnp.int32), jnp.asarray(False)

            x, loss, g, t, evals, optimal = jax.lax.cond(not_descent, stay, move, None)
            current_evals = c.current_evals + evals
            stop = (
                not_descent
                | (inner == max_iter)
                | (current_evals >= max_eval)
                | optimal
                | (_max_abs(d) * jnp.abs(t) <= tolerance_change)
                | (jnp.abs(loss - c.loss) < tolerance_change)
            )
            return _Iteration(
                x, loss, g, d, t, old_dirs, old_stps, ro, num_old, h_diag,
                c.g, c.loss, n_iter, inner, current_evals, stop,
            )  # fmt: skip

        g0 = cast_like_params(updates)
        start = _Iteration(
            x=params,
            loss=jnp.asarray(value).astype(dtype),
            g=g0,
            d=state.d,
            t=state.t,
            old_dirs=state.old_dirs,
            old_stps=state.old_stps,
            ro=state.ro,
            num_old=state.num_old,
            h_diag=state.h_diag,
            prev_g=state.prev_flat_grad,
            prev_loss=state.prev_loss,
            n_iter=state.n_iter,
            inner=jnp.zeros([], jnp.int32),
            current_evals=jnp.ones([], jnp.int32),
            stop=_max_abs(g0) <= tolerance_grad,  # already optimal: nothing moves
        )
        end = jax.lax.while_loop(lambda c: ~c.stop, iterate, start)
        moved = jax.tree.map(lambda a, b: (a - b).astype(b.dtype), end.x, params)
        new_state = TorchLbfgsState(
            count=safe_increment(state.count),
            func_evals=state.func_evals + end.current_evals,
            n_iter=end.n_iter,
            d=end.d,
            t=end.t,
            old_dirs=end.old_dirs,
            old_stps=end.old_stps,
            ro=end.ro,
            num_old=end.num_old,
            h_diag=end.h_diag,
            prev_flat_grad=end.prev_g,
            prev_loss=end.prev_loss,
        )
        return moved, new_state

    return GradientTransformation(init, update)
