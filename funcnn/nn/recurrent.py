"""Recurrent networks: Elman RNN, LSTM and GRU — cells, and sequence layers driven by lax.scan.

One order everywhere, lax.scan's: the carry first, then the output.

    cell:   cell(params, carry, x) -> (carry, y)           one time step, x (N, in) → y (N, H)
    layer:  layer.apply(params, x, *, mask=None) -> ys    x (..., B, T, in) → ys (..., B, T, H)
            layer.apply(params, x, *, mask=None, initial_carry=c0, return_carry=True)
                -> (carry, ys)                             the final carry as well
    driver: scan_steps(step, xs, carry, *, mask=None) -> (carry, ys)

Like every layer, a recurrent layer returns one array by default — its output sequence — so
it composes with `serial`; `init` gives the plain shape (..., B, T, H). Inputs have rank ≥ 3:
a rank-2 shape is refused, since (B, C) and one unbatched sequence (T, C) cannot be told
apart (pass one sequence as (1, T, C)). The carry is (..., B, H) for rnn and gru, and the
pair (h, c) of two (..., B, H) arrays for lstm; `initial_carry` defaults to zeros and
`zero_carry(kind, lead, hidden)` builds one.

Dtypes: the layer computes, and returns, in x's dtype promoted with the weights' (bf16 x
with float32 weights: float32). T = 0 gives an empty (..., B, 0, H) output and the initial
carry back.

Variable lengths: `mask` (..., B, T), True for real steps (integer 0/1 accepted, float
refused). A padded step's input is zeroed before any arithmetic, leaves the carry unchanged
and outputs zeros, so right-padding a sequence changes neither its real outputs nor its
final carry, and neither values nor gradients depend on what the padded steps hold (NaN,
inf, 1e30 included). `reverse=True` runs from the
last step to the first (outputs stay aligned with their inputs); with right padding the
padded steps then come first and are skipped, so the final carry summarises the real steps
read backwards.

Every projection of the inputs, x·W_x + b, is computed for all steps in one matmul before
the scan (as one 2-D matmul over all steps' rows); only the recurrent h·W_h product runs step
by step. The LSTM layer's scan has a hand-written backward pass (`lstm_scan`): the backward
scan carries (∂h, ∂c) and writes each step's gate gradient ∂z, and ∂W_h = Σₜ hₜ₋₁ᵀ·∂zₜ is one
(H, T·N)·(T·N, 4H) matmul after it — instead of autodiff's per-step rank-N update of a
(H, 4H) accumulator in the loop carry. Its (T, N, 4H) arrays share one buffer: the forward
scan writes the gates over x_proj, the backward scan ∂z over the gates (see `_lstm_forward`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from funcnn._validation import check_choice, check_floating, check_positive_int, check_real
from funcnn.nn.core import Layer, Params, Shape, as_shape, get_child
from funcnn.nn.dense import _matmul_rows
from funcnn.nn.masking import check_mask

Array = jax.Array
Carry = Any

__all__ = [
    "gru",
    "gru_cell",
    "lstm",
    "lstm_cell",
    "lstm_scan",
    "rnn",
    "rnn_cell",
    "scan_steps",
    "zero_carry",
]

CELLS = ("rnn", "lstm", "gru")  # the recurrent cells `recurrent(kind, ...)` builds


# ---------------------------------------------------------------- step math on projected inputs
def _add_bias(y: Array, b: Array) -> Array:
    """y + b over y's last axis, with the broadcast spelled out (rank promotion stays strict)."""
    return y + jnp.reshape(b, (1,) * (y.ndim - 1) + b.shape)


def _rnn_step(w_h: Array, h: Array, x_proj: Array) -> tuple[Array, Array]:
    h = jnp.tanh(x_proj + h @ w_h)  # (N, H)
    return h, h


def _lstm_gates(z: Array, forget_bias: float) -> Array:
    """σ/tanh of the pre-activations z (..., 4H), blocks i, f, g, o, concatenated back."""
    i, f, g, o = jnp.split(z, 4, axis=-1)
    return jnp.concatenate(
        [jax.nn.sigmoid(i), jax.nn.sigmoid(f + forget_bias), jnp.tanh(g), jax.nn.sigmoid(o)],
        axis=-1,
    )


def _lstm_step(
    w_h: Array, carry: tuple[Array, Array], x_proj: Array, forget_bias: float
) -> tuple[Array, Array, Array, Array]:
    """The one LSTM transcription, used by `lstm_cell` and by the fast scan `lstm_scan`:

        gates = [σ(zᵢ) σ(zf + forget_bias) tanh(z_g) σ(zₒ)],  z = x_proj + h·W_h  (N, 4H)
        c' = f⊙c + i⊙g,   h' = o⊙tanh(c')

    Returns (h', c', gates, tanh c') — the last two are what `lstm_scan`'s backward reads.
    """
    h, c = carry  # (N, H) each
    gates = _lstm_gates(x_proj + h @ w_h, forget_bias)  # (N, 4H), blocks i, f, g, o
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c_new = f * c + i * g  # (N, H)
    tanh_c = jnp.tanh(c_new)
    return o * tanh_c, c_new, gates, tanh_c  # h' (N, H)


def _gru_step(w_h: Array, b_h: Array, h: Array, x_proj: Array) -> tuple[Array, Array]:
    hidden_proj = _add_bias(h @ w_h, b_h)  # (N, 3H), blocks r, z, n
    xr, xz, xn = jnp.split(x_proj, 3, axis=-1)
    hr, hz, hn = jnp.split(hidden_proj, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    h = (1.0 - z) * n + z * h  # (N, H)
    return h, h


# ---------------------------------------------------------------- public cells
def rnn_cell(params: Params, h: Array, x: Array) -> tuple[Array, Array]:
    """Elman step: h' = tanh(x·W_x + h·W_h + b); returns (h', h').

    params {"w_x": (in, H), "w_h": (H, H), "b": (H,)}; h (N, H), x (N, in).
    """
    return _rnn_step(params["w_h"], h, _add_bias(x @ params["w_x"], params["b"]))


def lstm_cell(
    params: Params, carry: tuple[Array, Array], x: Array, *, forget_bias: float = 0.0
) -> tuple[tuple[Array, Array], Array]:
    """LSTM step (Hochreiter & Schmidhuber 1997, with a forget gate), gate order i, f, g, o:

        [zᵢ zf z_g zₒ] = x·W_x + h·W_h + b
        i = σ(zᵢ),  f = σ(zf + forget_bias),  g = tanh(z_g),  o = σ(zₒ)
        c' = f⊙c + i⊙g,   h' = o⊙tanh(c')         returns ((h', c'), h')

    params {"w_x": (in, 4H), "w_h": (H, 4H), "b": (4H,)}; carry (h, c) each (N, H).
    forget_bias is a constant added to the forget gate (TensorFlow's LSTMCell uses 1.0);
    PyTorch has none, so 0.0 matches PyTorch given the same weights and b = b_ih + b_hh.
    """
    x_proj = _add_bias(x @ params["w_x"], params["b"])  # (N, 4H)
    h, c, _, _ = _lstm_step(params["w_h"], carry, x_proj, forget_bias)
    return (h, c), h


def gru_cell(params: Params, h: Array, x: Array) -> tuple[Array, Array]:
    """GRU step (Cho et al. 2014) in PyTorch's convention, gate blocks in the order r, z, n:

        r = σ(x·W_xr + b_xr + h·W_hr + b_hr)
        z = σ(x·W_xz + b_xz + h·W_hz + b_hz)
        n = tanh(x·W_xn + b_xn + r⊙(h·W_hn + b_hn))
        h' = (1 − z)⊙n + z⊙h                         returns (h', h')

    params {"w_x": (in, 3H), "w_h": (H, 3H), "b_x": (3H,), "b_h": (3H,)}. Two biases because
    r multiplies h·W_hn + b_hn (Keras' reset_after=True).
    """
    return _gru_step(params["w_h"], params["b_h"], h, _add_bias(x @ params["w_x"], params["b_x"]))


# ---------------------------------------------------------------- the scan driver
def scan_steps(
    step: Callable[[Carry, Array], tuple[Carry, Array]],
    xs: Array,
    carry: Carry,
    *,
    mask: Array | None = None,
    reverse: bool = False,
) -> tuple[Carry, Array]:
    """Run `step(carry, x_t) -> (carry, y_t)` over axis 1 of xs (N, T, ...) with lax.scan.

    With a mask (N, T): where mask[n, t] is False the carry is kept and y_t is zero, and
    x_t is replaced by zeros *before* `step` sees it, so neither the values nor the
    gradients depend on what a padded step holds (NaN there would otherwise reach every
    gradient through `where`'s unselected branch: 0·NaN = NaN).
    Returns (final carry, ys (N, T, ...)) — lax.scan's order — with ys aligned with xs
    (also when reverse=True).
    """
    xs_time_major = jnp.swapaxes(xs, 0, 1)  # (T, N, ...)
    if mask is None:
        carry, ys = jax.lax.scan(step, carry, xs_time_major, reverse=reverse)
        return carry, jnp.swapaxes(ys, 0, 1)

    def masked_step(carry: Carry, inputs: tuple[Array, Array]) -> tuple[Carry, Array]:
        x_t, m_t = inputs  # (N, ...), (N,)
        x_t = jnp.where(m_t.reshape(m_t.shape + (1,) * (x_t.ndim - 1)), x_t, 0)
        new_carry, y_t = step(carry, x_t)
        keep = lambda new, old: jnp.where(m_t.reshape(m_t.shape + (1,) * (new.ndim - 1)), new, old)
        carry = jax.tree.map(keep, new_carry, carry)
        return carry, keep(y_t, jnp.zeros_like(y_t))

    carry, ys = jax.lax.scan(
        masked_step, carry, (xs_time_major, jnp.swapaxes(mask, 0, 1)), reverse=reverse
    )
    return carry, jnp.swapaxes(ys, 0, 1)


# ---------------------------------------------------------- the LSTM scan, hand-differentiated
# Memory layout of the hand VJP, and why: XLA:CPU allocates all temporaries of a jitted program
# as one buffer per call, and glibc's malloc serves a block over 32 MiB (its largest mmap
# threshold) by a fresh mmap, so every page of it faults in again on every call. At the
# LM benchmark's size (T 64, N 32, 4H 1024) one (T, N, 4H) array is 8 MiB: the train step's
# temporaries went from 42.5 MiB (11 000 page faults per step, about a third of its time)
# to under 32 MiB by reusing two of them in place — the forward scan overwrites x_proj[t]
# with the activated gates of step t once it has read it, and the backward scan overwrites
# gates[t] with ∂zₜ — and by recomputing tanh cₜ in the backward pass instead of saving it.
def _lstm_forward(
    w_h: Array,
    x_proj: Array,
    carry: tuple[Array, Array],
    mask: Array | None,
    forget_bias: float,
    reverse: bool,
    save: bool,
    unroll: int = 1,
) -> tuple[tuple[Array, Array], Array, Any]:
    """The forward scan over time-major x_proj (T, N, 4H). With `save`, also the residuals
    for `_lstm_scan_bwd`: (hₜ₋₁, cₜ₋₁) per step, and the activated gates (T, N, 4H) —
    written in place over x_proj's buffer, whose step t is dead once step t has read it."""

    if not save:

        def step(carry: tuple[Array, Array], inputs: Any) -> tuple[tuple[Array, Array], Any]:
            h, c = carry  # (N, H) each
            x_t, m_t = inputs
            h_new, c_new, _, _ = _lstm_step(w_h, carry, x_t, forget_bias)
            return _keep_masked((h, c), (h_new, c_new), m_t)

        carry, ys = jax.lax.scan(step, carry, (x_proj, mask), reverse=reverse, unroll=unroll)
        return carry, ys, None

    def saving_step(state: Any, inputs: Any) -> tuple[Any, Any]:
        h, c, buf = state  # buf (T, N, 4H): gates at the steps done, x_proj at the others
        t, m_t = inputs
        x_t = jax.lax.dynamic_index_in_dim(buf, t, keepdims=False)  # (N, 4H)
        h_new, c_new, gates, _ = _lstm_step(w_h, (h, c), x_t, forget_bias)
        buf = jax.lax.dynamic_update_index_in_dim(buf, gates, t, 0)
        (h_new, c_new), y = _keep_masked((h, c), (h_new, c_new), m_t)
        return (h_new, c_new, buf), (y, h, c)

    steps = jnp.arange(x_proj.shape[0])
    (h, c, gates), (ys, h_prev, c_prev) = jax.lax.scan(
        saving_step, (*carry, x_proj), (steps, mask), reverse=reverse, unroll=unroll
    )
    return (h, c), ys, (h_prev, c_prev, gates)


def _keep_masked(
    old: tuple[Array, Array], new: tuple[Array, Array], m_t: Array | None
) -> tuple[tuple[Array, Array], Array]:
    """(carry, y) of one step: the new carry and y = h', or at a masked row the old carry, y 0."""
    if m_t is None:
        return new, new[0]
    keep = m_t[:, None]  # (N, 1)
    carry = (jnp.where(keep, new[0], old[0]), jnp.where(keep, new[1], old[1]))
    return carry, jnp.where(keep, new[0], jnp.zeros_like(new[0]))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def lstm_scan(
    w_h: Array,
    x_proj: Array,
    carry: tuple[Array, Array],
    mask: Array | None,
    forget_bias: float = 0.0,
    reverse: bool = False,
    unroll: int = 1,
) -> tuple[tuple[Array, Array], Array]:
    """The LSTM recurrence over projected inputs, time-major, with a hand-written VJP.

    x_proj (T, N, 4H) = x·W_x + b for every step; carry (h₀, c₀) each (N, H); mask (T, N)
    bool or None. Returns ((h_T, c_T), hs (T, N, H)) — the same values as scanning
    `lstm_cell`'s step (masked steps keep the carry and output 0). The backward pass, with
    zₜ = x_projₜ + hₜ₋₁·W_h and gate derivatives σ' = s(1−s), tanh' = 1−t²:

        ∂hₜ = ∂yₜ + ∂h_carry,   ∂cₜ = ∂c_carry + ∂hₜ⊙oₜ⊙(1 − tanh²cₜ)
        ∂zₜ = [∂cₜ⊙gₜ⊙iₜ(1−iₜ),  ∂cₜ⊙cₜ₋₁⊙fₜ(1−fₜ),  ∂cₜ⊙iₜ⊙(1−gₜ²),  ∂hₜ⊙tanh cₜ⊙oₜ(1−oₜ)]
        ∂hₜ₋₁ = ∂zₜ·W_hᵀ,   ∂cₜ₋₁ = ∂cₜ⊙fₜ
        ∂x_projₜ = ∂zₜ,     ∂W_h = Σₜ hₜ₋₁ᵀ·∂zₜ  (one matmul over all T·N rows, after the scan)

    It saves (hₜ₋₁, cₜ₋₁) and the gates, not tanh cₜ: the backward scan carries cₜ (the
    forward's final c to start) and recomputes tanh cₜ. `unroll` is lax.scan's (time steps
    per loop iteration, in both passes; same values).
    """
    carry, ys, _ = _lstm_forward(w_h, x_proj, carry, mask, forget_bias, reverse, False, unroll)
    return carry, ys


def _lstm_scan_fwd(
    w_h: Array,
    x_proj: Array,
    carry: tuple[Array, Array],
    mask: Array | None,
    forget_bias: float,
    reverse: bool,
    unroll: int,
) -> tuple[tuple[tuple[Array, Array], Array], Any]:
    carry, ys, saved = _lstm_forward(w_h, x_proj, carry, mask, forget_bias, reverse, True, unroll)
    return (carry, ys), (w_h, mask, carry[1], saved)


def _lstm_scan_bwd(
    forget_bias: float, reverse: bool, unroll: int, residuals: Any, cotangents: Any
) -> tuple[Array, Array, tuple[Array, Array], None]:
    del forget_bias
    w_h, mask, c_last, (h_prev, c_prev, gates) = residuals
    (dh_last, dc_last), dys = cotangents
    w_h_t = w_h.T  # (4H, H)

    def step(state: Any, inputs: Any) -> tuple[Any, None]:
        # state: gradients w.r.t. the carry leaving step t, the c leaving step t (the kept
        # carry; at a masked row its value is unused), step t's gates (N, 4H), and buf
        # (T, N, 4H) — ∂z at the steps done, the gates at the others.
        dh_next, dc_next, c_t, gate, buf = state
        t, t_next, dy, c_old, m_t = inputs
        i, f, g, o = jnp.split(gate, 4, axis=-1)
        tc = jnp.tanh(c_t)
        dh = dy + dh_next
        dc = dc_next + dh * o * (1 - tc * tc)
        dz = jnp.concatenate(
            [
                dc * g * i * (1 - i),
                dc * c_old * f * (1 - f),
                dc * i * (1 - g * g),
                dh * tc * o * (1 - o),
            ],
            axis=-1,
        )  # (N, 4H)
        if m_t is None:
            dh_prev, dc_prev = dz @ w_h_t, dc * f
        else:
            keep = m_t[:, None]
            dz = jnp.where(keep, dz, jnp.zeros_like(dz))
            dh_prev = jnp.where(keep, dz @ w_h_t, dh_next)
            dc_prev = jnp.where(keep, dc * f, dc_next)
        buf = jax.lax.dynamic_update_index_in_dim(buf, dz, t, 0)
        # The next step's gates are read from the buffer *after* this write (a slot it did not
        # touch), so the write is the only reader of the old buffer and happens in place.
        # Read before it, they would be read by the fusions that compute ∂cₜ₋₁ — which do not
        # feed the write — and XLA:CPU without multi-output fusion copies the whole (T, N, 4H)
        # buffer twice per step to keep the old values (loss + grad 2.3× slower).
        gate_next = jax.lax.dynamic_index_in_dim(buf, t_next, keepdims=False)
        return (dh_prev, dc_prev, c_old, gate_next, buf), None

    n_steps = gates.shape[0]
    steps = jnp.arange(n_steps)
    # The backward scan runs the other way round: from T−1 down to 0 (or up, if `reverse`).
    step_after = 1 if reverse else -1
    next_steps = jnp.clip(steps + step_after, 0, n_steps - 1)  # the last one's read is unused
    first_gates = gates[0] if reverse else gates[-1]  # the gates of the step it starts at
    (dh0, dc0, _, _, dz), _ = jax.lax.scan(
        step,
        (dh_last, dc_last, c_last, first_gates, gates),
        (steps, next_steps, dys, c_prev, mask),
        reverse=not reverse,
        unroll=unroll,
    )
    _, n, hidden = h_prev.shape
    dw_h = jnp.reshape(h_prev, (n_steps * n, hidden)).T @ jnp.reshape(dz, (n_steps * n, -1))
    return dw_h, dz, (dh0, dc0), None


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)


# ---------------------------------------------------------------- sequence layers
def _uniform(key: Array, shape: tuple[int, ...], bound: float) -> Array:
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def _orthogonal_blocks(key: Array, hidden: int, blocks: int) -> Array:
    """(H, blocks·H): one orthogonal H×H matrix per gate, so each gate starts norm-preserving."""
    keys = jax.random.split(key, blocks)
    ortho = jax.nn.initializers.orthogonal()
    return jnp.concatenate([ortho(k, (hidden, hidden), jnp.float32) for k in keys], axis=1)


def zero_carry(kind: str, lead: Sequence[int], hidden: int, dtype: Any = jnp.float32) -> Carry:
    """The zero initial carry of a `kind` layer for leading dims `lead`: h₀ = 0 (and c₀ = 0).

    rnn, gru → (*lead, hidden) zeros; lstm → the pair (h₀, c₀) of (*lead, hidden) zeros.
    """
    check_choice(kind, "kind", CELLS)
    check_positive_int(hidden, "hidden")
    shape = (*tuple(lead), hidden)
    if kind == "lstm":
        return (jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))
    return jnp.zeros(shape, dtype)


_RANK_ERROR = (
    "{name}: expects (batch, time, features) — (B, T, C), optionally with more leading "
    "axes — got {what}={shape}. A rank-2 shape is ambiguous (a batch of single steps (B, C) "
    "or one unbatched sequence (T, C)), so it is refused: pass one sequence as (1, T, C), "
    "or a batch of single steps as (B, 1, C)."
)


def _recurrent_layer(
    kind: str,
    hidden: int,
    blocks: int,
    run: Callable[[Params, Array, Carry, Array | None], tuple[Carry, Array]],
    name: str,
) -> Layer:
    """Shared init/apply for rnn, lstm, gru: validation, leading-dim handling, carry shapes."""

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        shape = as_shape(in_shape)
        if len(shape) < 3:
            raise ValueError(_RANK_ERROR.format(name=name, what="in_shape", shape=shape))
        if shape[-1] == -1:
            raise ValueError(
                f"{name}: expects in_shape (..., batch, time, features) with known features, "
                f"got in_shape={shape}."
            )
        features = shape[-1]
        k_x, k_h = jax.random.split(key)
        # Input weights: PyTorch's U(±1/√H); recurrent weights: orthogonal per gate block.
        params = {
            "w_x": _uniform(k_x, (features, blocks * hidden), 1.0 / math.sqrt(hidden)),
            "w_h": _orthogonal_blocks(k_h, hidden, blocks),
        }
        if kind == "gru":
            params["b_x"] = jnp.zeros((blocks * hidden,), jnp.float32)
            params["b_h"] = jnp.zeros((blocks * hidden,), jnp.float32)
        else:
            params["b"] = jnp.zeros((blocks * hidden,), jnp.float32)
        return params, (*shape[:-1], hidden)

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
        initial_carry: Carry | None = None,
        return_carry: bool = False,
    ) -> Any:
        del key, train
        check_floating(x, f"{name}: x")
        if jnp.ndim(x) < 3:
            raise ValueError(_RANK_ERROR.format(name=name, what="x.shape", shape=jnp.shape(x)))
        w_x = get_child(params, "w_x", name)
        if x.shape[-1] != w_x.shape[0]:
            raise ValueError(
                f"{name}: x has {x.shape[-1]} features but w_x expects {w_x.shape[0]} "
                f"(w_x.shape={w_x.shape}, x.shape={x.shape})."
            )
        mask = check_mask(mask, x.shape[:-1], name)
        if mask is not None:
            # Zero the padded steps before any arithmetic: the masked scan discards their
            # results, but their gradients still flow through x·W_x (0·NaN = NaN in ∂W_x).
            x = jnp.where(mask[..., None], x, jnp.zeros_like(x))  # (..., B, T, in)
        lead, (steps, features) = x.shape[:-2], x.shape[-2:]
        n = math.prod(lead)  # not -1 in the reshape: with T = 0 the size cannot tell N
        xs = jnp.reshape(x, (n, steps, features))  # (N, T, in)
        flat_mask = None if mask is None else jnp.reshape(mask, (n, steps))
        # The carry takes the dtype the step computes in (x and the weights promoted: a
        # bf16 x with float32 weights runs in float32), so lax.scan sees one carry type.
        dtype = jnp.result_type(x, *jax.tree.leaves(params))
        if initial_carry is None:
            carry = zero_carry(kind, (n,), hidden, dtype)
        else:
            expected = jax.tree.map(jnp.shape, zero_carry(kind, lead, hidden))
            got = jax.tree.map(jnp.shape, initial_carry)
            if got != expected:
                raise ValueError(
                    f"{name}: initial_carry must have shapes {expected} "
                    f"({'the pair (h, c)' if kind == 'lstm' else 'h'}), got {got}."
                )
            carry = jax.tree.map(lambda c: jnp.reshape(c, (n, hidden)).astype(dtype), initial_carry)
        carry, ys = run(params, xs, carry, flat_mask)
        ys = jnp.reshape(ys, (*lead, steps, hidden))  # (..., T, H)
        if not return_carry:
            return ys
        return jax.tree.map(lambda c: jnp.reshape(c, (*lead, hidden)), carry), ys

    return Layer(init, apply, name)


def rnn(hidden: int, *, reverse: bool = False, name: str = "rnn") -> Layer:
    """Elman RNN over time: hₜ = tanh(xₜ·W_x + hₜ₋₁·W_h + b), h₀ = 0 (see `rnn_cell`).

    Carry: h (..., H).
    apply(params, x (..., B, T, in), *, mask=None, key=None, train=False) → hs (..., B, T, H).
    With `return_carry=True` it returns (carry, hs) — the order of the cells and lax.scan;
    `initial_carry=` (default zeros, see `zero_carry`) is the carry before the first step
    read. init(key, in_shape (..., B, T, in)) → (params, (..., B, T, H)).
    """
    check_positive_int(hidden, "hidden")

    def run(params: Params, xs: Array, carry: Array, mask: Array | None):
        x_proj = _add_bias(_matmul_rows(xs, params["w_x"]), params["b"])  # (N, T, H)
        step = functools.partial(_rnn_step, params["w_h"])
        return scan_steps(step, x_proj, carry, mask=mask, reverse=reverse)

    return _recurrent_layer("rnn", hidden, 1, run, name)


def lstm(
    hidden: int, *, forget_bias: float = 0.0, reverse: bool = False, name: str = "lstm"
) -> Layer:
    """LSTM over time (see `lstm_cell` for the gate equations), (h₀, c₀) = (0, 0).

    Carry: the pair (h, c), each (..., H).
    apply(params, x (..., B, T, in), *, mask=None, key=None, train=False) → hs (..., B, T, H).
    With `return_carry=True` it returns (carry, hs) — the order of the cells and lax.scan;
    `initial_carry=` (default zeros, see `zero_carry`) is the carry before the first step
    read. init(key, in_shape (..., B, T, in)) → (params, (..., B, T, H)).
    """
    check_positive_int(hidden, "hidden")
    forget_bias = check_real(forget_bias, "forget_bias")

    def run(params: Params, xs: Array, carry: tuple[Array, Array], mask: Array | None):
        x_proj = _add_bias(_matmul_rows(jnp.swapaxes(xs, 0, 1), params["w_x"]), params["b"])
        time_mask = None if mask is None else jnp.swapaxes(mask, 0, 1)  # (T, N)
        carry, ys = lstm_scan(params["w_h"], x_proj, carry, time_mask, forget_bias, reverse)
        return carry, jnp.swapaxes(ys, 0, 1)  # (N, T, H)

    return _recurrent_layer("lstm", hidden, 4, run, name)


def gru(hidden: int, *, reverse: bool = False, name: str = "gru") -> Layer:
    """GRU over time (see `gru_cell` for the gate equations), h₀ = 0.

    Carry: h (..., H).
    apply(params, x (..., B, T, in), *, mask=None, key=None, train=False) → hs (..., B, T, H).
    With `return_carry=True` it returns (carry, hs) — the order of the cells and lax.scan;
    `initial_carry=` (default zeros, see `zero_carry`) is the carry before the first step
    read. init(key, in_shape (..., B, T, in)) → (params, (..., B, T, H)).
    """
    check_positive_int(hidden, "hidden")

    def run(params: Params, xs: Array, carry: Array, mask: Array | None):
        x_proj = _add_bias(_matmul_rows(xs, params["w_x"]), params["b_x"])  # (N, T, 3H)
        step = functools.partial(_gru_step, params["w_h"], params["b_h"])
        return scan_steps(step, x_proj, carry, mask=mask, reverse=reverse)

    return _recurrent_layer("gru", hidden, 3, run, name)
