"""Small gradient transformations; every optimizer in `aliases.py` is a short chain of these.

Notation used in the docstrings: g is the incoming update (the gradient for the first stage),
u the outgoing update, θ the parameters, t the 1-based step number, η the learning rate.
Only `scale_by_learning_rate` carries the minus sign (u = −η·d); all other stages produce
a descent *direction* d.

Dtypes: moments keep each leaf's dtype (unless a `*_dtype` option says otherwise) and
arithmetic runs in at least float32 (bf16 leaves are upcast, then the result cast back).
Hyperparameters are cast to that dtype explicitly, so float32 params and state stay float32
with x64 enabled. Step counters are int32 scalars.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.tree_util import PyTreeDef

from funcnn import fusion
from funcnn.optim.base import (
    Array,
    EmptyState,
    GradientTransformation,
    OptState,
    Params,
    Schedule,
    Updates,
    as_schedule,
    check_hyperparameter,
    compute_dtype,
    find_state,
    global_norm,
    safe_increment,
    tree_widest_float,
    tree_zeros_like,
)

__all__ = [
    "ClipByGlobalNormState",
    "MaskedNode",
    "MaskedState",
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByLearningRateState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "TraceState",
    "add_decayed_weights",
    "clip",
    "clip_by_global_norm",
    "current_learning_rate",
    "identity",
    "masked",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "trace",
]

MaskTree = Any  # pytree (or prefix pytree) of Python bools
MaskOrFn = MaskTree | Callable[[Params], MaskTree]


def _upcast(x: Array) -> Array:
    return x.astype(compute_dtype(x.dtype))


def _const(value: float | Array, like: Array) -> Array:
    """A hyperparameter as a 0-d array of `like`'s dtype (no weak-type or float64 promotion)."""
    return jnp.asarray(value).astype(like.dtype)


def _init_empty(params: Params) -> EmptyState:
    """`init` of every stateless stage: nothing to remember."""
    del params
    return EmptyState()


def _elementwise(leaf_fn: Callable[[Array], Array]) -> GradientTransformation:
    """A stateless stage applying u = f(g) to every leaf."""

    def update(updates: Updates, state: EmptyState, params: Params | None = None):
        del params
        return jax.tree.map(leaf_fn, updates), state

    return GradientTransformation(_init_empty, update)


# --- identity, scale, learning rate ------------------------------------------------------


def identity() -> GradientTransformation:
    """u = g. Stateless; useful as a placeholder stage."""
    return _elementwise(lambda g: g)


def scale(factor: float) -> GradientTransformation:
    """u = c·g for a fixed real `factor` c (any sign). Stateless."""
    factor = check_hyperparameter(factor, "factor", low=-float("inf"))
    return _elementwise(lambda g: (_upcast(g) * _const(factor, _upcast(g))).astype(g.dtype))


class ScaleByLearningRateState(NamedTuple):
    """count: int32 scalar, updates applied so far (the schedule's step).
    learning_rate: scalar of the widest param float dtype — ηₜ used by the latest update
    (η₀ = schedule(0) before the first update). Read it with `current_learning_rate`."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    learning_rate: Array


def scale_by_learning_rate(learning_rate: float | Schedule) -> GradientTransformation:
    """u = −ηₜ·d, with ηₜ = schedule(t − 1) (so the first update uses schedule(0)).

    This is the only stage that flips the sign: every other stage outputs a descent
    direction d and `apply_updates` adds u, so θ ← θ − ηₜ·d. `learning_rate` is a
    non-negative number or a schedule `step -> η` (evaluated on the int32 count inside the
    compiled step, so a changing value never re-traces).
    """
    schedule = as_schedule(learning_rate, "learning_rate")

    def init(params: Params) -> ScaleByLearningRateState:
        dtype = tree_widest_float(params)
        count = jnp.zeros([], jnp.int32)  # () int32
        # copy=True: a schedule may return one shared array; the state must own its buffer
        # (a donated step would otherwise delete the caller's array).
        return ScaleByLearningRateState(count, jnp.array(schedule(count), dtype, copy=True))

    def update(updates: Updates, state: ScaleByLearningRateState, params: Params | None = None):
        del params
        lr = jnp.asarray(schedule(state.count))  # () — may be float64 under x64; cast per leaf
        updates = jax.tree.map(
            lambda d: (-_const(lr, _upcast(d)) * _upcast(d)).astype(d.dtype), updates
        )
        new_state = ScaleByLearningRateState(
            safe_increment(state.count), lr.astype(state.learning_rate.dtype)
        )
        return updates, new_state

    return GradientTransformation(init, update)


def current_learning_rate(opt_state: OptState) -> Array:
    """The learning rate ηₜ used by the most recent update, read from an optimizer state.

    Searches the (possibly nested, chained or masked) state for the one
    `ScaleByLearningRateState`; works inside jit and on host. Before the first update it is
    schedule(0). Raises ValueError if the state holds none or several.

    >>> import jax.numpy as jnp
    >>> from funcnn import optim
    >>> opt = optim.adamw(optim.warmup_cosine_decay(1e-4, 1e-3, 10, 100))
    >>> state = opt.init({"w": jnp.ones(3)})
    >>> round(float(current_learning_rate(state)), 8)  # schedule(0) before any update
    0.0001
    """
    needs = "current_learning_rate needs exactly one scale_by_learning_rate stage in the "
    needs += "optimizer state"
    return find_state(opt_state, ScaleByLearningRateState, needs).learning_rate


# --- momentum ---------------------------------------------------------------------------


class TraceState(NamedTuple):
    """trace: the momentum buffer v, one leaf per parameter (same shape and dtype)."""

    trace: Params


def trace(
    decay: float, *, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Heavy-ball momentum (PyTorch convention, no dampening):

        vₜ = μ·vₜ₋₁ + g,    d = g + μ·vₜ  if nesterov  else  d = vₜ,    v₀ = 0

    `decay` is μ ∈ [0, 1). Sutskever et al. 2013. optax's `trace` is the same; TF's
    `SGD(momentum)` stores −η·v instead, which differs when η changes over time.
    """
    decay = check_hyperparameter(decay, "momentum", high=1.0, high_inclusive=False)

    def init(params: Params) -> TraceState:
        return TraceState(tree_zeros_like(params, accumulator_dtype))

    def update(updates: Updates, state: TraceState, params: Params | None = None):
        del params

        def leaf(g: Array, v: Array) -> tuple[Array, Array]:
            g32 = _upcast(g)
            mu = _const(decay, g32)
            v_new = mu * _upcast(v) + g32
            d = g32 + mu * v_new if nesterov else v_new
            return d.astype(g.dtype), v_new.astype(v.dtype)

        pairs = jax.tree.map(leaf, updates, state.trace)
        updates, new_trace = _unzip(pairs, updates)
        return updates, TraceState(new_trace)

    return GradientTransformation(init, update)


def _unzip(pairs: Any, like: Any) -> tuple[Any, Any]:
    """Split a tree of (a, b) tuples (shaped like `like`) into a tree of a and a tree of b."""
    a, b = _unzip_n(pairs, like, 2)
    return a, b


def _unzip3(triples: Any, like: Any) -> tuple[Any, Any, Any]:
    """Split a tree of (a, b, c) tuples (shaped like `like`) into three trees."""
    a, b, c = _unzip_n(triples, like, 3)
    return a, b, c


def _unzip_n(tuples: Any, like: Any, n: int) -> tuple[Any, ...]:
    """Split a tree of n-tuples (shaped like `like`) into n trees, the i-th of items i."""
    treedef: PyTreeDef = jax.tree.structure(like)
    flat = treedef.flatten_up_to(tuples)
    return tuple(treedef.unflatten([item[i] for item in flat]) for i in range(n))


# --- RMSProp ----------------------------------------------------------------------------


class ScaleByRmsState(NamedTuple):
    """nu: the running mean of squared gradients s (same shape/dtype as each param)."""

    nu: Params


class ScaleByRStdDevState(NamedTuple):
    """mu: running mean of gradients m; nu: running mean of squared gradients s."""

    mu: Params
    nu: Params


def scale_by_rms(
    decay: float = 0.9, eps: float = 1e-8, *, eps_in_sqrt: bool = False, centered: bool = False
) -> GradientTransformation:
    """RMSProp scaling (Hinton 2012, lecture 6e):

        sₜ = ρ·sₜ₋₁ + (1−ρ)·g²,                       s₀ = 0
        d  = g / (√sₜ + ε)          (PyTorch, default)
        d  = g / √(sₜ + ε)          (eps_in_sqrt=True: optax/TF convention)

    `centered=True` (Graves 2013) also tracks mₜ = ρ·mₜ₋₁ + (1−ρ)·g and uses the variance
    sₜ − mₜ² (clamped at 0 against rounding) in place of sₜ. `decay` is ρ ∈ [0, 1),
    `eps` is ε > 0. PyTorch's default ρ is 0.99, optax's is 0.9 (ours).
    """
    decay = check_hyperparameter(decay, "decay", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)

    def denominator(s: Array, g: Array) -> Array:
        e = _const(eps, g)
        return jnp.sqrt(s + e) if eps_in_sqrt else jnp.sqrt(s) + e

    def init(params: Params) -> ScaleByRmsState | ScaleByRStdDevState:
        if centered:
            return ScaleByRStdDevState(tree_zeros_like(params), tree_zeros_like(params))
        return ScaleByRmsState(tree_zeros_like(params))

    def update(updates: Updates, state, params: Params | None = None):
        del params
        if not centered:

            def leaf(g: Array, s: Array):
                g32 = _upcast(g)
                rho = _const(decay, g32)
                s_new = rho * _upcast(s) + (1 - rho) * g32 * g32
                return (g32 / denominator(s_new, g32)).astype(g.dtype), s_new.astype(s.dtype)

            updates, nu = _unzip(jax.tree.map(leaf, updates, state.nu), updates)
            return updates, ScaleByRmsState(nu)

        def centered_leaf(g: Array, m: Array, s: Array):
            g32 = _upcast(g)
            rho = _const(decay, g32)
            m_new = rho * _upcast(m) + (1 - rho) * g32
            s_new = rho * _upcast(s) + (1 - rho) * g32 * g32
            variance = jnp.maximum(s_new - m_new * m_new, 0)
            d = g32 / denominator(variance, g32)
            return d.astype(g.dtype), (m_new.astype(m.dtype), s_new.astype(s.dtype))

        updates, moments = _unzip(jax.tree.map(centered_leaf, updates, state.mu, state.nu), updates)
        mu, nu = _unzip(moments, updates)
        return updates, ScaleByRStdDevState(mu, nu)

    return GradientTransformation(init, update)


# --- Adam -------------------------------------------------------------------------------


class ScaleByAdamState(NamedTuple):
    """count: int32 scalar, updates done so far (t − 1). mu: first moment m; nu: second
    moment v (each shaped like the params, dtype of the param unless mu_dtype/nu_dtype)."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    mu: Params
    nu: Params


class ScaleByAmsgradState(NamedTuple):
    """`scale_by_adam(amsgrad=True)`'s state: count, mu, nu as `ScaleByAdamState`, plus
    nu_max: the running maximum v_max of the *uncorrected* second moments (dtype of nu)."""

    count: Array  # type: ignore[assignment]  # the field shadows tuple.count, as optax's do
    mu: Params
    nu: Params
    nu_max: Params


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    amsgrad: bool = False,
    fused: bool | None = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam's direction (Kingma & Ba 2015, Algorithm 1), t counting from 1:

        mₜ = β₁·mₜ₋₁ + (1−β₁)·g,   vₜ = β₂·vₜ₋₁ + (1−β₂)·g²,   m₀ = v₀ = 0
        m̂ = mₜ/(1−β₁ᵗ),   v̂ = vₜ/(1−β₂ᵗ),   d = m̂/(√v̂ + ε)

    `b1` = β₁, `b2` = β₂ ∈ [0, 1), `eps` = ε > 0. PyTorch and optax place ε the same way
    (outside the root, after bias correction). TF/Keras adds its "ε̂" to the *uncorrected*
    √vₜ, which differs in the first steps. The first step gives |d| = |g|/(|g|+ε) ≈ 1.
    `mu_dtype`/`nu_dtype` store the moments in another dtype (e.g. float32 for bf16 params).

    `amsgrad=True` (Reddi, Kale & Kumar 2018) with torch.optim.Adam(amsgrad=True)'s placement
    of the bias correction: the maximum is taken over the *uncorrected* vₜ, then corrected by
    the current step's factor,

        v_maxₜ = max(v_maxₜ₋₁, vₜ),   v_max₀ = 0,   d = m̂/(√v_maxₜ/√(1−β₂ᵗ) + ε)

    and the state is a `ScaleByAmsgradState` (an extra `nu_max` leaf per parameter, in
    nu's dtype); with amsgrad=False it stays the three-field `ScaleByAdamState`. optax's
    `scale_by_amsgrad` takes the maximum of the corrected v̂ instead, v̂_maxₜ =
    max(v̂_maxₜ₋₁, vₜ/(1−β₂ᵗ)), which differs while 1−β₂ᵗ still grows.

    `fused` picks one of two groupings of the same m̂ and v̂ (equal up to rounding, a few ulp):

        fused=False (textbook): m̂ = mₜ/(1−β₁ᵗ),   v̂ = vₜ/(1−β₂ᵗ)
        fused=True (regrouped on the old moments, g² = g·g):
            m̂ = β₁/(1−β₁ᵗ)·mₜ₋₁ + (1−β₁)/(1−β₁ᵗ)·g,   v̂ = β₂/(1−β₂ᵗ)·vₜ₋₁ + (1−β₂)/(1−β₂ᵗ)·g²

    (with amsgrad, fused=True uses max(v_maxₜ₋₁/(1−β₂ᵗ), v̂), again a function of the old
    buffers and g; fused=False uses max(v_maxₜ₋₁, vₜ)/(1−β₂ᵗ).) Regrouped, d reads (g, mₜ₋₁,
    vₜ₋₁) exactly as mₜ and vₜ do, so a compiler that fuses sibling loops emits θ', m', v' as
    one loop per leaf: 7 memory accesses per parameter instead of 9–10 (`benchmarks/README.md`).
    Without sibling fusion that form is much slower (XLA copies the donated m, v before
    overwriting them) and the textbook form is the fast one. `fused=None` (default) chooses
    `funcnn.fusion.sibling_fusion_expected()` when `update` is traced: True on GPU and TPU; on
    CPU True only if ``XLA_FLAGS`` carries ``xla_cpu_use_multi_output_fusion`` in a
    ``--xla_backend_extra_options=`` entry (what `funcnn.fusion.enable_cpu_multi_output_fusion`
    sets before JAX starts); False on any other backend. No probe is compiled.
    """
    b1 = check_hyperparameter(b1, "b1", high=1.0, high_inclusive=False)
    b2 = check_hyperparameter(b2, "b2", high=1.0, high_inclusive=False)
    eps = check_hyperparameter(eps, "eps", low_inclusive=False)
    if not isinstance(amsgrad, bool):
        raise TypeError(f"amsgrad must be True or False, got amsgrad={amsgrad!r}.")
    if fused is not None and not isinstance(fused, bool):
        raise TypeError(
            f"fused must be True, False or None (the backend's default), got fused={fused!r}."
        )

    def init(params: Params) -> ScaleByAdamState | ScaleByAmsgradState:
        count = jnp.zeros([], jnp.int32)  # () int32
        mu, nu = tree_zeros_like(params, mu_dtype), tree_zeros_like(params, nu_dtype)
        if amsgrad:
            return ScaleByAmsgradState(count, mu, nu, tree_zeros_like(params, nu_dtype))
        return ScaleByAdamState(count=count, mu=mu, nu=nu)

    def update(updates: Updates, state, params: Params | None = None):
        del params
        count = safe_increment(state.count)  # t, as int32
        regrouped = fusion.sibling_fusion_expected() if fused is None else fused  # per trace

        def leaf(g: Array, m: Array, v: Array, v_max: Array | None = None):
            g32, m32, v32 = _upcast(g), _upcast(m), _upcast(v)
            beta1, beta2 = _const(b1, g32), _const(b2, g32)
            t = count.astype(g32.dtype)
            c1, c2 = 1 - beta1**t, 1 - beta2**t  # bias corrections 1−β₁ᵗ, 1−β₂ᵗ
            m_new = beta1 * m32 + (1 - beta1) * g32
            v_new = beta2 * v32 + (1 - beta2) * g32 * g32
            if regrouped:
                # The same m̂ = mₜ/c₁, expanded on the OLD moment: (β₁/c₁)·mₜ₋₁ + ((1−β₁)/c₁)·g
                # (v̂ likewise). d then reads (g, m, v) exactly as m_new and v_new do, so XLA
                # emits θ', m', v' as sibling outputs of ONE loop per leaf: 7 memory accesses
                # per parameter instead of 9-10. Only float rounding differs (a few ulp).
                m_hat = (beta1 / c1) * m32 + ((1 - beta1) / c1) * g32
                v_hat = (beta2 / c2) * v32 + ((1 - beta2) / c2) * (g32 * g32)
                if v_max is not None:  # max(v_maxₜ₋₁, vₜ)/c₂ = max(v_maxₜ₋₁/c₂, v̂): c₂ > 0
                    v_hat = jnp.maximum(_upcast(v_max) / c2, v_hat)
            else:
                # Textbook form, for backends without sibling fusion (XLA:CPU by default):
                # reading the old moments after their in-place update would force copies of
                # the donated buffers; read the new ones.
                m_hat = m_new / c1
                v_hat = v_new / c2 if v_max is None else jnp.maximum(_upcast(v_max), v_new) / c2
            d = m_hat / (jnp.sqrt(v_hat) + _const(eps, g32))
            moments: tuple[Array, ...] = (m_new.astype(m.dtype), v_new.astype(v.dtype))
            if v_max is not None:  # v_maxₜ = max(v_maxₜ₋₁, vₜ), uncorrected (torch's)
                moments += (jnp.maximum(_upcast(v_max), v_new).astype(v_max.dtype),)
            return d.astype(g.dtype), moments

        if amsgrad:
            pairs = jax.tree.map(leaf, updates, state.mu, state.nu, state.nu_max)
            updates, moments = _unzip(pairs, updates)
            mu, nu, nu_max = _unzip3(moments, updates)
            return updates, ScaleByAmsgradState(count, mu, nu, nu_max)
        updates, moments = _unzip(jax.tree.map(leaf, updates, state.mu, state.nu), updates)
        mu, nu = _unzip(moments, updates)
        return updates, ScaleByAdamState(count, mu, nu)

    return GradientTransformation(init, update)


# --- weight decay, clipping, masking ------------------------------------------------------


def add_decayed_weights(
    weight_decay: float = 0.0, mask: MaskOrFn | None = None
) -> GradientTransformation:
    """u = g + λ·θ on the leaves selected by `mask` (all leaves if None). Stateless.

    Placed *before* the adaptive scaling this is coupled L2 regularization (PyTorch's
    `Adam(weight_decay=λ)`, SGD's weight decay); placed *after* it and before
    `scale_by_learning_rate` it is decoupled decay θ ← θ − ηₜ·λ·θ (AdamW, Loshchilov &
    Hutter 2019, as PyTorch and optax implement it: the decay is scaled by ηₜ, not by η/η₀).
    `weight_decay` is λ ≥ 0; `mask` is a pytree of bools (a prefix of the params works) or
    a function params -> such a pytree (e.g. `funcnn.params.decay_mask`).
    """
    weight_decay = check_hyperparameter(weight_decay, "weight_decay")

    def update(updates: Updates, state: EmptyState, params: Params | None = None):
        if params is None:
            raise ValueError(
                "add_decayed_weights needs the params: call update(grads, state, params)."
            )
        updates = jax.tree.map(
            lambda g, p: (_upcast(g) + _const(weight_decay, _upcast(g)) * _upcast(p)).astype(
                g.dtype
            ),
            updates,
            params,
        )
        return updates, state

    transform = GradientTransformation(_init_empty, update)
    return transform if mask is None else masked(transform, mask)


class ClipByGlobalNormState(NamedTuple):
    """Stateless (no fields); named so a state tree shows where clipping sits."""


def clip_by_global_norm(max_norm: float, *, eps: float = 0.0) -> GradientTransformation:
    """Rescale all leaves together so their joint norm is at most c = `max_norm`:

        ‖g‖ = √(Σᵢ gᵢ²) over every leaf,   u = g·min(1, c/‖g‖)       (eps = 0, default)
        u = g·min(1, c/(‖g‖ + ε))                                      (eps = ε > 0)

    With eps = 0 the factor is computed as c/max(‖g‖, c): exactly 1 below the threshold
    (updates untouched, bitwise) and at ‖g‖ = 0 (no 0/0). `eps=1e-6` gives PyTorch's
    `clip_grad_norm_` form, which shrinks slightly even just below the threshold. optax's
    `clip_by_global_norm` matches eps = 0. Non-finite norms propagate (use a skip wrapper).
    """
    max_norm = check_hyperparameter(max_norm, "max_norm", low_inclusive=False)
    eps = check_hyperparameter(eps, "eps")

    def init(params: Params) -> ClipByGlobalNormState:
        del params
        return ClipByGlobalNormState()

    def update(updates: Updates, state: ClipByGlobalNormState, params: Params | None = None):
        del params
        norm = global_norm(updates)  # () float32 or float64
        c = _const(max_norm, norm)
        if eps > 0:
            factor = jnp.minimum(1, c / (norm + _const(eps, norm)))
        else:
            factor = c / jnp.maximum(norm, c)
        updates = jax.tree.map(
            lambda g: (_upcast(g) * _const(factor, _upcast(g))).astype(g.dtype), updates
        )
        return updates, state

    return GradientTransformation(init, update)


def clip(max_delta: float) -> GradientTransformation:
    """Elementwise clipping u = min(max(g, −c), c) with c = `max_delta` > 0. Stateless."""
    max_delta = check_hyperparameter(max_delta, "max_delta", low_inclusive=False)
    return _elementwise(lambda g: jnp.clip(g, -_const(max_delta, g), _const(max_delta, g)))


class MaskedNode(NamedTuple):
    """Stands in for a leaf the inner transform of `masked` must not see (no leaves)."""


class MaskedState(NamedTuple):
    """inner_state: the inner transform's state, built on the selected leaves only."""

    inner_state: OptState


def _mask_tree(mask: MaskOrFn, tree: Params) -> Any:
    """Resolve `mask` against `tree`: call it if a function, then broadcast a prefix mask."""
    mask_value = mask(tree) if callable(mask) else mask
    try:
        full = jax.tree.map(lambda m, sub: jax.tree.map(lambda _: m, sub), mask_value, tree)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "mask must be a pytree of bools with the structure of the params (or a prefix of "
            f"it); got mask structure {jax.tree.structure(mask_value)} for params structure "
            f"{jax.tree.structure(tree)}."
        ) from error
    for m in jax.tree.leaves(full):
        if not isinstance(m, (bool, jnp.bool_)):
            raise TypeError(
                f"mask leaves must be Python bools (static), got {m!r} ({type(m).__name__})."
            )
    return full


def _select(mask: Any, tree: Params) -> Params:
    return jax.tree.map(lambda m, x: x if m else MaskedNode(), mask, tree)


def masked(inner: GradientTransformation, mask: MaskOrFn) -> GradientTransformation:
    """Apply `inner` only to the leaves where `mask` is True; the others pass through:

        uᵢ = inner(g)ᵢ  if maskᵢ  else  gᵢ

    The inner transform sees (and keeps state for) the selected leaves only, so e.g.
    a masked `clip_by_global_norm` measures the norm of the selected leaves. `mask` is a
    pytree of Python bools (a prefix of the params is broadcast) or a function of the
    params returning one; in `update` it is called on `params` (or on `updates` when params
    are not given), so it must depend only on the tree's structure and shapes.
    """
    if not isinstance(inner, GradientTransformation):
        raise TypeError(f"masked expects a GradientTransformation, got {type(inner).__name__}.")

    def init(params: Params) -> MaskedState:
        mask_tree = _mask_tree(mask, params)
        return MaskedState(inner.init(_select(mask_tree, params)))

    def update(updates: Updates, state: MaskedState, params: Params | None = None):
        mask_tree = _mask_tree(mask, params if params is not None else updates)
        selected_params = None if params is None else _select(mask_tree, params)
        new, inner_state = inner.update(
            _select(mask_tree, updates), state.inner_state, selected_params
        )
        updates = jax.tree.map(lambda m, n, g: n if m else g, mask_tree, new, updates)
        return updates, MaskedState(inner_state)

    return GradientTransformation(init, update)
