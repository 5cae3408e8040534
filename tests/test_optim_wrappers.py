"""skip_nonfinite and accumulate against float64 NumPy references; bf16 params, f32 moments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.optim.wrappers import (
    AccumulateState,
    NonFiniteGradientsError,
    SkipNonfiniteState,
    accumulate,
    check_nonfinite,
    nonfinite_counts,
    skip_nonfinite,
)
from funcnn.reference import optim as ref

_DATA = np.random.default_rng(0)  # drawn once, at import: constants, not per-test draws
W0 = _DATA.normal(size=(3, 2))
B0 = _DATA.normal(size=(2,))
del _DATA


def bitwise_equal(a, b) -> bool:
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        x.dtype == y.dtype and np.asarray(x).tobytes() == np.asarray(y).tobytes()
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def params_like(dtype=jnp.float32):
    return {"b": jnp.asarray(B0, dtype), "w": jnp.asarray(W0, dtype)}


def jitted_update(opt):
    @jax.jit
    def step(grads, state, params):
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    return step


# ----------------------------------------------------------------------------- skip_nonfinite

GRAD_SEQUENCE = [  # (label, b-gradient, w-gradient); NaN/Inf in a single entry must suffice
    ("good", 0.5, 1.0),
    ("nan", np.nan, 1.0),
    ("inf", 0.5, np.inf),
    ("good", -0.25, 2.0),
    ("-inf", -np.inf, 0.0),
    ("good", 1.5, -1.0),
]


def grads_for(b_value, w_value, dtype=jnp.float32):
    g = {"b": np.full((2,), 0.1), "w": np.full((3, 2), 0.2)}
    g["b"][0], g["w"][1, 1] = b_value, w_value
    return {k: jnp.asarray(v, dtype) for k, v in g.items()}


def test_skip_nonfinite_matches_adam_on_the_finite_steps_only():
    opt = skip_nonfinite(optim.adam(0.1), max_consecutive=3)
    step = jitted_update(opt)
    params, state = params_like(), opt.init(params_like())
    reference = ref.Adam(0.1)
    ref_params = ref.flatten_params(params_like())
    expected_skipped, expected_run = 0, 0
    for label, b_value, w_value in GRAD_SEQUENCE:
        before_params, before_inner = params, state.inner
        params, state = step(grads_for(b_value, w_value), state, params)
        if label == "good":
            ref_params = ref_params | reference.step(
                ref_params, ref.flatten_params(grads_for(b_value, w_value))
            )
            expected_run = 0
        else:
            assert bitwise_equal(params, before_params), label
            assert bitwise_equal(state.inner, before_inner), label  # Adam's t not advanced
            expected_skipped, expected_run = expected_skipped + 1, expected_run + 1
        for name, value in ref.flatten_params(params).items():
            np.testing.assert_allclose(value, ref_params[name], rtol=1e-5, atol=2e-6)
        assert nonfinite_counts(state) == {"skipped": expected_skipped, "consecutive": expected_run}


def test_first_finite_step_after_skips_is_adams_first_step():
    opt = skip_nonfinite(optim.adam(0.01))
    params, state = params_like(), opt.init(params_like())
    step = jitted_update(opt)
    params, state = step(grads_for(np.nan, 1.0), state, params)
    new, state = step(grads_for(0.5, 1.0), state, params)
    # Adam at t = 1 moves every coordinate by ≈ η·sign(g); a shifted t would not.
    np.testing.assert_allclose(np.asarray(new["w"] - params["w"]), -0.01, rtol=1e-4)
    assert int(state.inner[0].count) == 1


def test_skipped_step_keeps_negative_zero_params():
    opt = skip_nonfinite(optim.sgd(0.1))
    params = {"b": jnp.asarray([-0.0, 0.0]), "w": jnp.zeros((3, 2))}
    new, _ = jitted_update(opt)(grads_for(np.nan, 1.0), opt.init(params), params)
    assert bitwise_equal(new, params)
    assert np.signbit(np.asarray(new["b"]))[0]


def test_check_nonfinite_fails_loudly_after_max_consecutive():
    opt = skip_nonfinite(optim.sgd(0.1), max_consecutive=3)
    step = jitted_update(opt)
    params, state = params_like(), opt.init(params_like())
    for _ in range(2):
        params, state = step(grads_for(np.nan, 0.0), state, params)
    assert check_nonfinite(state) == {"skipped": 2, "consecutive": 2}
    params, state = step(grads_for(0.1, 0.0), state, params)  # a good step resets the run
    before = jax.tree.map(np.array, params)
    for _ in range(3):
        params, state = step(grads_for(np.nan, 0.0), state, params)
    after = jax.tree.map(np.array, params)
    assert bitwise_equal(after, before)  # skipped steps leave the params untouched
    with pytest.raises(
        NonFiniteGradientsError, match=r"last 3 steps.*max_consecutive=3.*5 skipped"
    ):
        check_nonfinite((params, state))  # found inside any larger pytree


def test_counts_survive_a_scan_and_nested_chains():
    opt = optim.chain(optim.clip_by_global_norm(1.0), skip_nonfinite(optim.sgd(0.1)))
    params = params_like()
    grads = jax.tree.map(lambda *xs: jnp.stack(xs), *[grads_for(b, w) for _, b, w in GRAD_SEQUENCE])

    def body(carry, g):
        params, state = carry
        updates, state = opt.update(g, state, params)
        return (optim.apply_updates(params, updates), state), None

    (params, state), _ = jax.lax.scan(body, (params, opt.init(params)), grads)
    assert isinstance(state[1], SkipNonfiniteState)
    assert nonfinite_counts(state) == {"skipped": 3, "consecutive": 0}
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


@pytest.mark.parametrize(
    "make", [lambda: skip_nonfinite(optim.adam(0.1)), lambda: accumulate(optim.adam(0.1), 2)]
)
def test_state_survives_a_donated_step(make):
    """No buffer appears twice in a fresh state (donating it twice is a runtime error)."""
    opt = make()
    step = jax.jit(jitted_update(opt), donate_argnums=(1, 2))
    params, state = params_like(), opt.init(params_like())
    for _ in range(3):
        params, state = step(grads_for(0.5, 1.0), state, params)
    assert np.isfinite(np.asarray(params["w"])).all()


def test_counts_need_the_wrapper():
    with pytest.raises(ValueError, match="no skip_nonfinite state"):
        nonfinite_counts(optim.sgd(0.1).init(params_like()))
    assert check_nonfinite(optim.sgd(0.1).init(params_like())) is None


# ----------------------------------------------------------------------------- accumulate


def batch_loss(params, x, y):
    r = x @ params["w"] + params["b"][None, :] - y  # (n, 2)
    return 0.5 * jnp.mean(jnp.sum(r * r, axis=-1))


def batch_grad_reference(params, x, y):
    """∇ of ½·mean‖xW + b − y‖² in float64 NumPy: (xᵀr/n, mean r)."""
    r = x @ params["w"] + params["b"] - y
    return {"b": r.mean(axis=0), "w": x.T @ r / len(x)}


@pytest.mark.parametrize(
    "name, make, make_ref",
    [
        ("sgd", lambda: optim.sgd(0.05, momentum=0.9), lambda: ref.SGD(0.05, momentum=0.9)),
        ("adam", lambda: optim.adam(0.05), lambda: ref.Adam(0.05)),
        (
            "adamw",
            lambda: optim.adamw(0.05, weight_decay=0.1),
            lambda: ref.AdamW(0.05, weight_decay=0.1),
        ),
    ],
)
def test_accumulate_equals_a_k_times_larger_batch(name, make, make_ref, rng):
    k, micro, big_steps = 3, 4, 4
    x = rng.normal(size=(big_steps * k * micro, 3))
    y = rng.normal(size=(big_steps * k * micro, 2))
    with jax.enable_x64(True):
        opt = accumulate(make(), every_k=k)
        params = params_like(jnp.float64)
        state = opt.init(params)

        @jax.jit
        def micro_step(params, state, xb, yb):
            grads = jax.grad(batch_loss)(params, xb, yb)
            updates, state = opt.update(grads, state, params)
            return optim.apply_updates(params, updates), state

        reference = make_ref()
        ref_params = {"b": B0.copy(), "w": W0.copy()}
        for t in range(big_steps):
            rows = slice(t * k * micro, (t + 1) * k * micro)
            grads = batch_grad_reference(ref_params, x[rows], y[rows])
            ref_params = reference.step(ref_params, grads)
            for j in range(k):
                before = params
                start = rows.start + j * micro
                params, state = micro_step(
                    params, state, x[start : start + micro], y[start : start + micro]
                )
                if j < k - 1:
                    assert bitwise_equal(params, before), (name, t, j)
            assert int(state.micro_step) == 0
            for leaf in ("b", "w"):
                np.testing.assert_allclose(params[leaf], ref_params[leaf], rtol=1e-12, atol=1e-14)
        assert params["w"].dtype == jnp.float64


def test_accumulate_every_1_is_the_inner_optimizer():
    # Each program is held against the float64 AdamW transcription on its own (two separately
    # compiled programs need not agree bit for bit across XLA versions).
    with jax.enable_x64(True):
        gradients = [grads_for(0.5, 1.0, jnp.float64), grads_for(-2.0, 0.3, jnp.float64)]
        for opt in (optim.adamw(0.01, weight_decay=0.1),
                    accumulate(optim.adamw(0.01, weight_decay=0.1), every_k=1)):  # fmt: skip
            params = params_like(jnp.float64)
            state, step = opt.init(params), jitted_update(opt)
            reference, expected = ref.AdamW(0.01, weight_decay=0.1), ref.flatten_params(params)
            for grads in gradients:
                params, state = step(grads, state, params)
                expected = expected | reference.step(expected, ref.flatten_params(grads))
            for leaf, value in ref.flatten_params(params).items():
                np.testing.assert_allclose(value, expected[leaf], rtol=1e-13, atol=1e-15)


def test_accumulate_sums_bf16_gradients_in_float32():
    opt = accumulate(optim.sgd(1.0), every_k=4)
    params = {"w": jnp.zeros((2,), jnp.bfloat16)}
    state = opt.init(params)
    assert isinstance(state, AccumulateState) and state.grad_sum["w"].dtype == jnp.float32
    step = jitted_update(opt)
    # 1 + 3·2⁻⁹ is not a bf16 number (8 mantissa bits); summing in bf16 would drop the 2⁻⁹s.
    for g in [1.0, 2**-9, 2**-9, 2**-9]:
        params, state = step({"w": jnp.full((2,), g, jnp.bfloat16)}, state, params)
    expected = -np.float32((1 + 3 * 2**-9) / 4)
    np.testing.assert_array_equal(params["w"], jnp.full((2,), expected, jnp.bfloat16))


def test_wrappers_validate_arguments():
    with pytest.raises(ValueError, match=r"every_k=0"):
        accumulate(optim.sgd(0.1), every_k=0)
    with pytest.raises(TypeError, match=r"every_k must be a positive int, got 2.5"):
        accumulate(optim.sgd(0.1), every_k=2.5)
    with pytest.raises(ValueError, match=r"max_consecutive=-1"):
        skip_nonfinite(optim.sgd(0.1), max_consecutive=-1)
    opt = skip_nonfinite(optim.sgd(0.1))
    with pytest.raises(ValueError, match=r"skip_nonfinite: updates .* same tree structure"):
        opt.update({"w": jnp.ones((3, 2))}, opt.init(params_like()), params_like())


# ----------------------------------------------------------------------------- mu/nu dtype


def test_bf16_params_with_float32_moments_converge():
    """A bf16 linear regression trained with Adam keeping m and v in float32 reaches the
    least-squares solution to bf16 precision, and every dtype stays as asked."""
    # Its own generator, so the data do not depend on which tests ran before in this process
    # (with pytest-xdist the shared RNG's draws followed the scheduling order).
    x = np.random.default_rng(0).normal(size=(64, 3))
    w_true, b_true = np.array([[1.0, -2.0], [0.5, 0.0], [-1.5, 3.0]]), np.array([0.25, -0.5])
    y = x @ w_true + b_true
    opt = optim.chain(
        optim.scale_by_adam(mu_dtype=jnp.float32, nu_dtype=jnp.float32),
        optim.scale_by_learning_rate(optim.cosine_decay(0.05, 400)),
    )
    params = params_like(jnp.bfloat16)
    state = opt.init(params)
    assert {m.dtype for m in jax.tree.leaves((state[0].mu, state[0].nu))} == {jnp.dtype("float32")}

    xb, yb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(y, jnp.bfloat16)

    def body(carry, _):
        params, state = carry
        grads = jax.grad(batch_loss)(params, xb, yb)
        updates, state = opt.update(grads, state, params)
        return (optim.apply_updates(params, updates), state), None

    (params, state), _ = jax.jit(lambda c: jax.lax.scan(body, c, None, length=400))((params, state))
    assert params["w"].dtype == jnp.bfloat16
    assert state[0].mu["w"].dtype == jnp.float32 and state[0].nu["w"].dtype == jnp.float32
    # bf16 has 8 mantissa bits: steps below half an ulp vanish, so "converged" means within
    # a few ulps (rtol 3%) and a loss 100× below the start, not float32 accuracy.
    np.testing.assert_allclose(np.asarray(params["w"], np.float64), w_true, rtol=0.03, atol=0.01)
    np.testing.assert_allclose(np.asarray(params["b"], np.float64), b_true, rtol=0.03, atol=0.01)
    final = batch_loss(jax.tree.map(lambda p: p.astype(jnp.float32), params), x, y)
    assert final < 0.01 * batch_loss(params_like(), x, y)
    # adam/adamw expose both moment options too
    for alias in (optim.adam, optim.adamw):
        adam_state = alias(1e-3, mu_dtype=jnp.float32, nu_dtype=jnp.float32).init(
            params_like(jnp.bfloat16)
        )[0]
        assert adam_state.mu["w"].dtype == jnp.float32 and adam_state.nu["w"].dtype == jnp.float32


# ----------------------------------------------------------------------------- fit reporting


def _quadratic_loss(params, batch, key):
    del key
    x, y = batch
    r = x @ params["w"] - y  # (b, 1)
    return jnp.mean(r * r), {}


def test_fit_reports_skipped_steps_and_fails_loudly():
    from funcnn.train import fit, init_state

    x = np.arange(16.0, dtype=np.float32).reshape(8, 2) / 16
    x[3, 1] = np.nan  # exactly one of the 4 minibatches per epoch holds it
    data = (x, np.zeros((8, 1), np.float32))
    opt = skip_nonfinite(optim.sgd(0.1), max_consecutive=2)
    state = init_state({"w": jnp.ones((2, 1))}, opt, jax.random.key(0))
    seen = []
    state, history = fit(
        state, _quadratic_loss, opt, data, batch_size=2, epochs=3, progress=False,
        callback=lambda s, info: seen.append(info.nonfinite),
    )  # fmt: skip
    assert history["skipped_steps"] == [1, 2, 3]
    assert set(seen[-1]) == {"skipped", "consecutive"}
    assert seen[-1]["skipped"] == 3
    assert seen[-1]["consecutive"] in (0, 1)  # 1 only if the poisoned batch came last
    assert np.isfinite(np.asarray(state.params["w"])).all()

    poisoned = (np.full_like(x, np.nan), data[1])
    state = init_state({"w": jnp.ones((2, 1))}, opt, jax.random.key(0))  # fit donated the last
    with pytest.raises(NonFiniteGradientsError, match=r"last 4 steps .*max_consecutive=2"):
        fit(state, _quadratic_loss, opt, poisoned, batch_size=2, epochs=3, progress=False)
