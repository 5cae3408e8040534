"""RNN / LSTM / GRU cells and scan layers against float64 loop-by-loop NumPy references."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.nn.recurrent import lstm_scan
from funcnn.reference import gru_reference, lstm_reference, rnn_reference
from funcnn.reference.numerical import numerical_grad

KEY = jax.random.key(0)
X = np.random.default_rng(0).normal(size=(3, 7, 4))  # a constant, drawn at import
MASK = np.array([[1] * 7, [1] * 4 + [0] * 3, [0] * 7], bool)


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _randomize_biases(params):
    """Non-zero biases so that a dropped or mis-ordered bias shows up."""
    rng = np.random.default_rng(1)  # the same biases at every call, whatever ran before
    return {
        k: (jnp.asarray(rng.normal(size=v.shape), jnp.float32) if k.startswith("b") else v)
        for k, v in params.items()
    }


def _reference(kind, params, x, mask, reverse, forget_bias=0.0):
    p = {k: np.asarray(v) for k, v in params.items()}
    if kind == "rnn":
        return rnn_reference(x, p["w_x"], p["w_h"], p["b"], mask=mask, reverse=reverse)
    if kind == "lstm":
        return lstm_reference(
            x, p["w_x"], p["w_h"], p["b"], forget_bias=forget_bias, mask=mask, reverse=reverse
        )
    return gru_reference(x, p["w_x"], p["w_h"], p["b_x"], p["b_h"], mask=mask, reverse=reverse)


def _layer(kind, hidden=5, **kw):
    if kind == "lstm":
        return nn.lstm(hidden, forget_bias=kw.pop("forget_bias", 0.0), **kw)
    return {"rnn": nn.rnn, "gru": nn.gru}[kind](hidden, **kw)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_matches_reference_with_mask(kind, reverse):
    forget_bias = 1.0 if kind == "lstm" else 0.0
    layer = _layer(kind, reverse=reverse, **({"forget_bias": 1.0} if kind == "lstm" else {}))
    params, ys_shape = layer.init(KEY, X.shape)
    params = _randomize_biases(params)
    apply = jax.jit(layer.apply, static_argnames="return_carry")
    with jax.enable_x64(True):
        carry, ys = apply(_f64(params), jnp.asarray(X), mask=jnp.asarray(MASK), return_carry=True)
        only_ys = apply(_f64(params), jnp.asarray(X), mask=jnp.asarray(MASK))
        ref_carry, ref_ys = _reference(kind, params, X, MASK, reverse, forget_bias)
        assert ys.shape == ys_shape == (3, 7, 5)
        assert jax.tree.map(jnp.shape, carry) == jax.tree.map(
            jnp.shape, nn.zero_carry(kind, (3,), 5)
        )
        np.testing.assert_array_equal(only_ys, ys)  # the default returns the sequence alone
        np.testing.assert_allclose(ys, ref_ys, rtol=1e-12, atol=1e-12)
        for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(ref_carry), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # Padded steps output zeros; the all-padding row keeps the zero initial carry.
    assert np.all(np.asarray(ys)[1, 4:] == 0) and np.all(
        np.asarray(jax.tree.leaves(carry)[0])[2] == 0
    )


def test_lstm_cell_gates_match_reference_one_step(rng):
    layer = nn.lstm(3, forget_bias=0.5)
    params, _ = layer.init(KEY, (2, 1, 4))
    params = _randomize_biases(params)
    h0, c0 = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    x = rng.normal(size=(2, 4))
    with jax.enable_x64(True):
        (h, c), y = nn.lstm_cell(_f64(params), _f64((h0, c0)), jnp.asarray(x), forget_bias=0.5)
    # Hand transcription of i, f, g, o with the explicit initial state.
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    z = x @ p["w_x"] + h0 @ p["w_h"] + p["b"]
    sig = lambda a: 1 / (1 + np.exp(-a))
    i, f, g, o = sig(z[:, :3]), sig(z[:, 3:6] + 0.5), np.tanh(z[:, 6:9]), sig(z[:, 9:])
    c_ref = f * c0 + i * g
    np.testing.assert_allclose(c, c_ref, rtol=1e-12)
    np.testing.assert_allclose(h, o * np.tanh(c_ref), rtol=1e-12)
    np.testing.assert_array_equal(h, y)


@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_cells_match_one_reference_step(kind, rng):
    layer = _layer(kind, hidden=3)
    params, _ = layer.init(KEY, (2, 1, 4))
    params = _randomize_biases(params)
    x = rng.normal(size=(2, 1, 4))
    cell = nn.rnn_cell if kind == "rnn" else nn.gru_cell
    with jax.enable_x64(True):
        h, _ = cell(_f64(params), jnp.zeros((2, 3)), jnp.asarray(x[:, 0]))
        np.testing.assert_allclose(h, _reference(kind, params, x, None, False)[0], rtol=1e-12)


def test_lstm_gradient_matches_finite_differences(rng):
    layer = nn.lstm(2, forget_bias=1.0)
    params, _ = layer.init(KEY, (1, 4, 2))
    params = _randomize_biases(params)
    x = rng.normal(size=(2, 4, 2))
    with jax.enable_x64(True):
        loss = jax.jit(lambda p: jnp.sum(jnp.sin(layer.apply(p, jnp.asarray(x)))))
        analytic = jax.grad(loss)(_f64(params))
        numeric = numerical_grad(lambda p: loss(_f64(p)), params)
        for k in params:
            np.testing.assert_allclose(analytic[k], numeric[k], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("masked", "reverse"), [(False, False), (True, True)])
def test_lstm_hand_vjp_matches_autodiff_of_the_cell_scan(masked, reverse, rng):
    """The layer's hand-written backward pass (nn.lstm_scan) against jax.grad of the plain
    path — lstm_cell driven by scan_steps — in float64, for every input of the scan: params,
    input sequence, initial carry and the final-carry output; with and without a mask."""
    layer = nn.lstm(5, forget_bias=0.5, reverse=reverse)
    params, _ = layer.init(KEY, (3, 7, 4))
    params = _randomize_biases(params)
    mask = jnp.asarray(MASK) if masked else None
    carry0 = (rng.normal(size=(3, 5)), rng.normal(size=(3, 5)))
    w_out = rng.normal(size=(5,))

    def loss(fast, p, x, c0):
        if fast:
            (h, c), ys = layer.apply(p, x, mask=mask, initial_carry=c0, return_carry=True)
        else:
            step = lambda c, x_t: nn.lstm_cell(p, c, x_t, forget_bias=0.5)
            (h, c), ys = nn.scan_steps(step, x, c0, mask=mask, reverse=reverse)
        return jnp.sum(jnp.sin(ys) @ w_out) + jnp.sum(h * c) + jnp.sum(jnp.cos(c))

    with jax.enable_x64(True):
        args = (_f64(params), jnp.asarray(X), _f64(carry0))
        grad = lambda fast: jax.value_and_grad(functools.partial(loss, fast), (0, 1, 2))(*args)
        (fast_value, fast), (plain_value, plain) = jax.jit(lambda: (grad(True), grad(False)))()
        np.testing.assert_allclose(fast_value, plain_value, rtol=1e-12)
        for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_lstm_hand_vjp_float32_matches_autodiff(rng):
    """The same comparison in float32 at the benchmark's sizes: the two backward passes sum
    ∂W_h in different orders (one matmul vs T rank-N updates), so they agree to rounding."""
    layer = nn.lstm(64)
    params, _ = layer.init(KEY, (8, 12, 16))
    x = jnp.asarray(rng.normal(size=(8, 12, 16)), jnp.float32)

    def loss(fast, p):
        if fast:
            return jnp.mean(jnp.tanh(layer.apply(p, x)))
        step = lambda c, x_t: nn.lstm_cell(p, c, x_t)
        _, ys = nn.scan_steps(step, x, nn.zero_carry("lstm", (8,), 64))
        return jnp.mean(jnp.tanh(ys))

    grad = lambda fast: jax.grad(functools.partial(loss, fast))(params)
    fast, plain = jax.jit(lambda: (grad(True), grad(False)))()
    for k in params:
        scale = float(jnp.max(jnp.abs(plain[k])))
        np.testing.assert_allclose(fast[k], plain[k], rtol=0, atol=2e-5 * scale)


def test_lstm_scan_unroll_gives_the_same_values_and_gradients(rng):
    """unroll=k only changes how many steps one loop iteration runs (T = 7 is not a multiple
    of 3, so the remainder path is covered): values and gradients equal to float32 rounding."""
    w_h = jnp.asarray(rng.normal(size=(4, 16)) * 0.5, jnp.float32)
    x_proj = jnp.asarray(rng.normal(size=(7, 3, 16)), jnp.float32)
    carry = (jnp.zeros((3, 4)), jnp.zeros((3, 4)))
    mask = jnp.asarray(MASK.T)  # (T, N)

    def loss(w, x, unroll):
        (h, _), ys = lstm_scan(w, x, carry, mask, 0.0, True, unroll)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(h)

    grad = jax.value_and_grad(loss, (0, 1))
    (v1, g1), (v3, g3) = jax.jit(lambda w, x: (grad(w, x, 1), grad(w, x, 3)))(w_h, x_proj)
    np.testing.assert_allclose(v3, v1, rtol=1e-6)
    for a, b in zip(g3, g1, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_lstm_grad_reuses_its_big_buffers_in_place():
    """The hand VJP writes the gates over x_proj's buffer and ∂z over the gates, and does not
    save tanh c: the layer's loss + grad holds under 3.5 (T, N, 4H) arrays of XLA temporaries
    (2.9 measured; 5.1 when every residual had its own buffer). It matters on XLA:CPU, which
    allocates a program's temporaries as one block per call: over glibc's 32 MiB mmap ceiling
    every page of it faults in again on every call (the LM benchmark's step: 42.5 → 24.5 MiB).
    """
    steps, n, features, hidden = 16, 8, 4, 32
    layer = nn.lstm(hidden)
    params, _ = layer.init(KEY, (n, steps, features))
    x = jnp.asarray(np.random.default_rng(2).normal(size=(n, steps, features)), jnp.float32)
    loss = lambda p: jnp.sum(jnp.sin(layer.apply(p, x)))
    memory = jax.jit(jax.grad(loss)).lower(params).compile().memory_analysis()
    if memory is None:
        pytest.skip("this backend reports no memory analysis")
    unit = steps * n * 4 * hidden * 4  # bytes of one float32 (T, N, 4H) array
    assert memory.temp_size_in_bytes < 3.5 * unit


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_backward_scan_never_copies_its_buffer(reverse):
    """The backward scan writes ∂zₜ over step t's gates in place. Every read of the old
    buffer must feed that write: XLA:CPU without multi-output fusion (its default, and this
    suite's) otherwise copies the whole (T, N, 4H) buffer twice per step to keep the values
    a read still needs — it did while ∂cₜ₋₁ = ∂cₜ⊙fₜ read fₜ from it (the LM benchmark's
    loss + grad 117 → 53 ms once the next step's gates were read after the write)."""
    steps, n, hidden = 7, 3, 5  # f32[7,3,20] names only the (T, N, 4H) buffer in the HLO
    layer = nn.lstm(hidden, reverse=reverse)
    params, _ = layer.init(KEY, (n, steps, 2))
    x = jnp.asarray(np.random.default_rng(4).normal(size=(n, steps, 2)), jnp.float32)
    loss = lambda p: jnp.sum(jnp.sin(layer.apply(p, x)))
    hlo = jax.jit(jax.grad(loss)).lower(params).compile().as_text()
    assert re.findall(r"= f32\[7,3,20\]\{[\d,]*\} copy\(", hlo) == []
    assert "f32[7,3,20]" in hlo  # the buffer is there, so the pattern can match


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_forward_layer_is_causal_and_reverse_is_anticausal(kind):
    x = jnp.asarray(X[0], jnp.float32)  # (T, F): one example, given a batch axis below
    for reverse in (False, True):
        layer = _layer(kind, reverse=reverse)
        params, _ = layer.init(KEY, (1, *x.shape))
        outputs = lambda x, layer=layer, params=params: layer.apply(params, x[None])[0]
        jac = jax.jit(jax.jacrev(outputs))(x)  # (T, H, T, F)
        influence = np.abs(np.asarray(jac)).sum(axis=(1, 3))  # (T_out, T_in)
        future = np.triu(np.ones_like(influence, bool), k=1)
        blocked = future.T if reverse else future
        assert np.all(influence[blocked] == 0)
        assert np.all(influence[~blocked] > 0)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_padding_invariance_and_batch_agreement(kind, rng):
    layer = _layer(kind)
    params, _ = layer.init(KEY, X.shape)
    lengths = [7, 4, 2]
    # Garbage (not zeros) in the padded steps: the mask alone must make them irrelevant.
    padded = np.concatenate([X, rng.normal(size=(3, 5, 4)) * 100], axis=1)
    mask = jnp.arange(12)[None, :] < jnp.asarray(lengths)[:, None]
    apply = jax.jit(functools.partial(layer.apply, return_carry=True))
    carry, ys = apply(params, jnp.asarray(padded, jnp.float32), mask=mask)
    for row, n in enumerate(lengths):
        single_carry, single_ys = apply(params, jnp.asarray(X[row : row + 1, :n], jnp.float32))
        np.testing.assert_allclose(ys[row, :n], single_ys[0], rtol=1e-5, atol=1e-6)
        for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(single_carry), strict=True):
            np.testing.assert_allclose(got[row], want[0], rtol=1e-5, atol=1e-6)


def test_initial_carry_is_used_and_checked():
    layer = nn.lstm(5)
    params, _ = layer.init(KEY, X.shape)
    x = jnp.asarray(X, jnp.float32)
    carry, _ = layer.apply(params, x[:, :3], return_carry=True)
    final, resumed = layer.apply(params, x[:, 3:], initial_carry=carry, return_carry=True)
    whole_final, whole = layer.apply(params, x, return_carry=True)
    np.testing.assert_allclose(resumed, whole[:, 3:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final[1], whole_final[1], rtol=1e-5, atol=1e-6)
    # The sequence alone also resumes from a carry (return_carry only adds the final carry).
    np.testing.assert_allclose(
        layer.apply(params, x[:, 3:], initial_carry=carry), whole[:, 3:], rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="initial_carry must have shapes"):
        layer.apply(params, x, initial_carry=jnp.zeros((3, 5)))


def test_recurrent_errors_are_clear():
    layer = nn.rnn(5)
    params, _ = layer.init(KEY, X.shape)
    with pytest.raises(ValueError, match="x has 3 features but w_x expects 4"):
        layer.apply(params, jnp.zeros((3, 7, 3)))
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 7\)"):
        layer.apply(params, jnp.zeros((3, 7, 4)), mask=jnp.ones((3, 6), bool))
    with pytest.raises(TypeError, match="floating"):
        layer.apply(params, jnp.zeros((3, 7, 4), jnp.int32))
    with pytest.raises(ValueError, match="hidden"):
        nn.lstm(0)
    with pytest.raises(ValueError, match="features"):
        layer.init(KEY, (3, 7, -1))


def test_int_masks_are_converted_and_float_masks_refused_alike():
    x = jnp.asarray(X, jnp.float32)
    int_mask = jnp.asarray(MASK, jnp.int32)
    for kind in ("rnn", "lstm", "gru"):
        layer = _layer(kind)
        params, _ = layer.init(KEY, X.shape)
        np.testing.assert_array_equal(
            layer.apply(params, x, mask=int_mask), layer.apply(params, x, mask=jnp.asarray(MASK))
        )
        with pytest.raises(TypeError, match=rf"{kind}: mask must be boolean.*float32"):
            layer.apply(params, x, mask=jnp.asarray(MASK, jnp.float32))
    for layer in (nn.conv1d(2, 3), nn.max_pool1d(2), nn.global_avg_pool(), nn.flatten()):
        params, _ = layer.init(KEY, X.shape)
        with pytest.raises(TypeError, match="mask must be boolean"):
            layer.apply(params, x, mask=jnp.asarray(MASK, jnp.float32))


@pytest.mark.parametrize(("kind", "blocks"), [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_init_input_weights_uniform_bound_and_orthogonal_gate_blocks(kind, blocks):
    # PyTorch's init: W_x ~ U(±1/√H); W_h one orthogonal H×H block per gate; biases 0.
    hidden, features = 16, 64
    params, out_shape = getattr(nn, kind)(hidden).init(KEY, (-1, 5, features))
    assert tuple(out_shape) == (-1, 5, hidden)
    w_x = np.asarray(params["w_x"], np.float64)
    assert w_x.shape == (features, blocks * hidden)
    bound = 1 / np.sqrt(hidden)
    assert np.abs(w_x).max() <= bound
    # U(±b) has variance b²/3; ≥ 1024 draws put the max within 10% of b and the variance
    # within 15% of b²/3 (both fail with probability < 1e-9).
    assert np.abs(w_x).max() > 0.9 * bound
    np.testing.assert_allclose(w_x.var(), bound**2 / 3, rtol=0.15)
    w_h = np.asarray(params["w_h"], np.float64)
    assert w_h.shape == (hidden, blocks * hidden)
    for g in range(blocks):
        block = w_h[:, g * hidden : (g + 1) * hidden]
        np.testing.assert_allclose(block.T @ block, np.eye(hidden), atol=1e-5)
    for name in ("b", "b_x", "b_h"):
        if name in params:
            np.testing.assert_array_equal(params[name], 0.0)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_a_rank_2_shape_is_refused_as_ambiguous(kind):
    # (4, 3) could be a batch of 4 single steps or one sequence of 4 steps: refuse, name (B, T, C).
    layer = _layer(kind)
    with pytest.raises(
        ValueError, match=r"expects \(batch, time, features\) — \(B, T, C\).*\(1, T, C\)"
    ):
        layer.init(KEY, (4, 3))
    params, _ = layer.init(KEY, (4, 1, 3))
    with pytest.raises(ValueError, match=r"got x.shape=\(4, 3\)"):
        layer.apply(params, jnp.zeros((4, 3)))


@pytest.fixture(scope="module")
def padded_value_and_grad():
    """kind -> jitted (params, x) -> (loss, (∂params, ∂x)) of a masked forward and reverse
    layer, loss = Σ w·ys + Σ carry (every output and the final carry)."""
    mask = jnp.asarray(MASK[:2])  # (2, 7): one full row, one with 3 padded steps
    weights = jnp.asarray(np.random.default_rng(3).normal(size=(2, 7, 5)), jnp.float32)

    def build(kind):
        layers = [_layer(kind), _layer(kind, reverse=True)]
        params = [_randomize_biases(layer.init(KEY, (2, 7, 4))[0]) for layer in layers]

        def loss(params, x):
            total = 0.0
            for layer, p in zip(layers, params, strict=True):
                carry, ys = layer.apply(p, x, mask=mask, return_carry=True)
                total += jnp.sum(weights * ys) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))
            return total

        return params, jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))

    return {kind: build(kind) for kind in ("rnn", "lstm", "gru")}


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_garbage_in_padded_steps_changes_neither_values_nor_gradients(kind, padded_value_and_grad):
    # The where(mask, new, old) trap: a NaN at a padded step gave a correct forward but NaN
    # gradients for every leaf. Padded inputs are zeroed first, so the result must equal the
    # zero-padded case exactly, for any garbage.
    params, value_and_grad = padded_value_and_grad[kind]
    padded = ~MASK[:2]
    clean = np.where(padded[..., None], 0.0, X[:2]).astype(np.float32)
    want_loss, (want_dparams, want_dx) = value_and_grad(params, jnp.asarray(clean))
    assert np.isfinite(want_loss)
    for garbage in (np.nan, np.inf, -np.inf, 1e30):
        x = jnp.asarray(np.where(padded[..., None], garbage, X[:2]), jnp.float32)
        loss, (dparams, dx) = value_and_grad(params, x)
        assert loss == want_loss, (kind, garbage)
        for got, want in zip(jax.tree.leaves(dparams), jax.tree.leaves(want_dparams), strict=True):
            assert np.all(np.isfinite(got)), (kind, garbage)
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(dx, want_dx)
        assert np.all(np.asarray(dx)[padded] == 0)  # a padded input has no influence at all


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_half_precision_inputs_and_zero_steps(kind):
    # bf16/float16 x with float32 weights: the carry was made in x's dtype and lax.scan
    # refused the float32 carry the step returned. T = 0: jnp.reshape(x, (-1, 0, C)) divided
    # by zero. Now: the promoted computation (close to the float64 reference) and an empty
    # output with the initial carry back.
    layer = _layer(kind)
    params = _randomize_biases(layer.init(KEY, (2, 3, 4))[0])
    x = jnp.asarray(X[:2, :3], jnp.bfloat16)  # float16 takes the same path
    ys = layer.apply(params, x)
    assert ys.dtype == jnp.float32 and ys.shape == (2, 3, 5)
    # the reference on the same (rounded) inputs: the arithmetic itself runs in float32
    _, want = _reference(kind, params, np.asarray(x, np.float64), None, False)
    np.testing.assert_allclose(ys, want, rtol=1e-5, atol=1e-6)
    c0 = nn.recurrent.zero_carry(kind, (2,), 5)
    c0 = jax.tree.map(lambda c: c + 0.5, c0)
    carry, ys = layer.apply(params, jnp.zeros((2, 0, 4)), initial_carry=c0, return_carry=True)
    assert ys.shape == (2, 0, 5)
    for got, start in zip(jax.tree.leaves(carry), jax.tree.leaves(c0), strict=True):
        np.testing.assert_array_equal(got, start)
