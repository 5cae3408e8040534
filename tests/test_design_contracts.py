"""DESIGN.md contracts that other test files leave weak or unchecked.

The audit table, contract by contract with the test that holds it: docs/design-contracts.md.

Every expectation here is independent math: float64 NumPy transcriptions written from the
DESIGN.md table (not from funcnn's code or funcnn.reference), closed forms, or exact
values. Each group says which DESIGN.md line it checks. Jitted functions are shared so the
whole file compiles a handful of programs.
"""

import inspect
import math
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import losses, nn, optim, train
from funcnn.activations import relu
from funcnn.optim.wrappers import accumulate, skip_nonfinite
from funcnn.params import decay_mask

KEY = jax.random.key(0)
_DATA = np.random.default_rng(7)  # drawn once, at import: constants, not per-test draws
W0 = _DATA.normal(size=(3, 2))
B0 = _DATA.normal(size=(2,))
del _DATA


def params_like(dtype):
    return {"b": jnp.asarray(B0, dtype), "w": jnp.asarray(W0, dtype)}


def _warmup_cosine(t, peak, warmup, total, end, init):
    """DESIGN.md: linear init→peak over `warmup` steps, half cosine to `end` at step `total`
    (the whole schedule, warmup included), then `end` forever."""
    if t < warmup:
        return init + (peak - init) * t / warmup
    progress = min(t - warmup, total - warmup) / (total - warmup)
    return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * progress))


def _one_step(optimizer):
    """update + apply, for a single optimizer (jit it once per optimizer)."""

    def step(params, state, grads):
        updates, state = optimizer.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    return step


# --- Optimizers table: defaults exactly as written ----------------------------------------

DESIGN_DEFAULTS = {
    optim.sgd: {"momentum": 0, "nesterov": False, "weight_decay": 0},
    optim.rmsprop: {
        "decay": 0.9,
        "eps": 1e-8,
        "momentum": 0,
        "centered": False,
        "eps_in_sqrt": False,
        "weight_decay": 0,
    },
    optim.adam: {"learning_rate": 3e-4, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0},
    optim.adamw: {
        "learning_rate": 3e-4,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.01,
        "mask": None,
    },
}


@pytest.mark.parametrize("alias", list(DESIGN_DEFAULTS), ids=lambda f: f.__name__)
def test_signature_defaults_are_the_design_table(alias):
    parameters = inspect.signature(alias).parameters
    assert next(iter(parameters)) == "learning_rate"
    for name, value in DESIGN_DEFAULTS[alias].items():
        assert parameters[name].default == value, (alias.__name__, name)
    # Every alias has a default learning rate: torch.optim's for sgd (1e-3) and rmsprop (1e-2).
    torch_defaults = {optim.sgd: 1e-3, optim.rmsprop: 1e-2}
    if alias in torch_defaults:
        assert parameters["learning_rate"].default == torch_defaults[alias]


# Gradients spanning 1e-9…1e1 so ε = 1e-8 is visible in float64 (|g| ≈ ε on some entries).
DEFAULT_GRADS = [
    {"b": np.array([1e-8, -3.0]), "w": np.array([[2e-9, 0.5], [-1.0, 1e-7], [4.0, -2e-8]])},
    {"b": np.array([-2e-8, 1.0]), "w": np.array([[1e-9, -0.25], [3.0, 5e-8], [-1.0, 1e-8]])},
    {"b": np.array([5e-9, -0.5]), "w": np.array([[-3e-9, 2.0], [0.5, -1e-7], [1.0, 3e-8]])},
]


def _adam_numpy(grads_seq, theta, lr, b1, b2, eps, wd_decoupled=0.0):
    """The DESIGN.md row: m, v, m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ), θ −= lr·m̂/(√v̂+ε) [− lr·wd·θ]."""
    theta = {k: v.copy() for k, v in theta.items()}
    m = {k: np.zeros_like(v) for k, v in theta.items()}
    v = {k: np.zeros_like(x) for k, x in theta.items()}
    for t, g in enumerate(grads_seq, start=1):
        for k in theta:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            theta[k] = theta[k] - lr * m_hat / (np.sqrt(v_hat) + eps) - lr * wd_decoupled * theta[k]
    return theta


def _rmsprop_numpy(grads_seq, theta, lr, rho, eps, momentum=0.0, centered=False, in_sqrt=False):
    """PyTorch's RMSprop loop (ε outside the root unless in_sqrt), with centered + momentum."""
    theta = {k: v.copy() for k, v in theta.items()}
    s = {k: np.zeros_like(v) for k, v in theta.items()}
    mean = {k: np.zeros_like(v) for k, v in theta.items()}
    buf = {k: np.zeros_like(v) for k, v in theta.items()}
    for g in grads_seq:
        for k in theta:
            s[k] = rho * s[k] + (1 - rho) * g[k] ** 2
            var = s[k]
            if centered:
                mean[k] = rho * mean[k] + (1 - rho) * g[k]
                var = s[k] - mean[k] ** 2
            d = g[k] / (np.sqrt(var + eps) if in_sqrt else np.sqrt(var) + eps)
            if momentum:
                buf[k] = momentum * buf[k] + d
                d = buf[k]
            theta[k] = theta[k] - lr * d
    return theta


def _run_x64(optimizer, grads_seq, theta):
    """Feed a fixed gradient sequence through a jitted step in float64; return NumPy params."""
    step = jax.jit(_one_step(optimizer))
    params = jax.tree.map(jnp.asarray, theta)
    state = optimizer.init(params)
    for g in grads_seq:
        params, state = step(params, state, jax.tree.map(jnp.asarray, g))
    return jax.tree.map(np.asarray, params)


def _assert_close(actual, expected, rtol):
    for k in expected:
        np.testing.assert_allclose(actual[k], expected[k], rtol=rtol, atol=0, err_msg=k)


def _max_rel_diff(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]) / np.abs(b[k]))) for k in b)


THETA64 = {"b": B0.copy(), "w": W0.copy()}


def test_adam_and_adamw_defaults_behave_as_the_table():
    """adam() = lr 3e-4, β (0.9, 0.999), ε 1e-8; adamw() adds decoupled wd = 0.01 (lr·wd·θ)."""
    with jax.enable_x64(True):
        adam_run = _run_x64(optim.adam(), DEFAULT_GRADS, THETA64)
        adamw_run = _run_x64(optim.adamw(), DEFAULT_GRADS, THETA64)
    adam_ref = _adam_numpy(DEFAULT_GRADS, THETA64, 3e-4, 0.9, 0.999, 1e-8)
    adamw_ref = _adam_numpy(DEFAULT_GRADS, THETA64, 3e-4, 0.9, 0.999, 1e-8, wd_decoupled=0.01)
    _assert_close(adam_run, adam_ref, rtol=1e-13)
    _assert_close(adamw_run, adamw_ref, rtol=1e-13)
    # The check can fail: each neighbouring default moves the result far beyond 1e-13.
    for wrong in (
        _adam_numpy(DEFAULT_GRADS, THETA64, 1e-3, 0.9, 0.999, 1e-8),
        _adam_numpy(DEFAULT_GRADS, THETA64, 3e-4, 0.9, 0.99, 1e-8),
        _adam_numpy(DEFAULT_GRADS, THETA64, 3e-4, 0.9, 0.999, 1e-7),
        _adam_numpy(DEFAULT_GRADS, THETA64, 3e-4, 0.9, 0.999, 1e-8, wd_decoupled=1e-4),
    ):
        assert _max_rel_diff(wrong, adam_ref) > 1e-9 or _max_rel_diff(wrong, adamw_ref) > 1e-9


def test_rmsprop_defaults_behave_as_the_table():
    """rmsprop(lr) = decay 0.9, ε = 1e-8 outside the root, no momentum, not centered."""
    with jax.enable_x64(True):
        run = _run_x64(optim.rmsprop(0.01), DEFAULT_GRADS, THETA64)
    expected = _rmsprop_numpy(DEFAULT_GRADS, THETA64, 0.01, 0.9, 1e-8)
    _assert_close(run, expected, rtol=1e-13)
    for wrong in (
        _rmsprop_numpy(DEFAULT_GRADS, THETA64, 0.01, 0.99, 1e-8),
        _rmsprop_numpy(DEFAULT_GRADS, THETA64, 0.01, 0.9, 1e-7),
        _rmsprop_numpy(DEFAULT_GRADS, THETA64, 0.01, 0.9, 1e-8, in_sqrt=True),
    ):
        assert _max_rel_diff(wrong, expected) > 1e-9


# --- Optimizers table: the update rules over several steps, params-dependent gradients --


def _cubic_grad(theta):
    """∇ of Σ θ⁴/4 + Σ θ: the gradient θ³ + 1 depends on the current params."""
    return {k: v**3 + 1.0 for k, v in theta.items()}


def _trajectory(optimizer, theta, steps):
    """θₖ₊₁ = θₖ + update(∇f(θₖ)) in float64 under jit, for the cubic problem."""
    with jax.enable_x64(True):
        step = jax.jit(_one_step(optimizer))
        params = jax.tree.map(jnp.asarray, theta)
        state = optimizer.init(params)
        for _ in range(steps):
            grads = jax.tree.map(jnp.asarray, _cubic_grad(jax.tree.map(np.asarray, params)))
            params, state = step(params, state, grads)
        return jax.tree.map(np.asarray, params), state


SMALL_THETA = {"b": 0.5 * B0, "w": 0.5 * W0}
WCD = dict(peak_value=0.04, warmup_steps=2, decay_steps=5, end_value=0.01, init_value=0.02)


def _wcd(t):
    return _warmup_cosine(
        t, WCD["peak_value"], WCD["warmup_steps"], WCD["decay_steps"], WCD["end_value"],
        WCD["init_value"],
    )  # fmt: skip


def test_sgd_nesterov_with_weight_decay_and_schedule_is_pytorch_sgd():
    """g += wd·θ; v = μv + g; d = g + μv; θ −= lrₜ·d — PyTorch (dampening 0), 6 steps."""
    mu, wd, steps = 0.9, 0.1, 6
    got, _ = _trajectory(
        optim.sgd(optim.warmup_cosine_decay(**WCD), mu, nesterov=True, weight_decay=wd),
        SMALL_THETA,
        steps,
    )
    theta = {k: v.copy() for k, v in SMALL_THETA.items()}
    v = {k: np.zeros_like(x) for k, x in theta.items()}
    for t in range(steps):
        g = _cubic_grad(theta)
        for k in theta:
            gk = g[k] + wd * theta[k]
            v[k] = mu * v[k] + gk
            theta[k] = theta[k] - _wcd(t) * (gk + mu * v[k])
    _assert_close(got, theta, rtol=1e-13)


@pytest.mark.parametrize("eps_in_sqrt", [False, True], ids=["eps_outside", "eps_in_sqrt"])
def test_rmsprop_centered_with_momentum_is_pytorch_rmsprop(eps_in_sqrt):
    rho, eps, mu, lr, steps = 0.8, 1e-3, 0.7, 0.01, 6
    opt = optim.rmsprop(lr, rho, eps, momentum=mu, centered=True, eps_in_sqrt=eps_in_sqrt)
    got, _ = _trajectory(opt, SMALL_THETA, steps)
    theta = {k: v.copy() for k, v in SMALL_THETA.items()}
    s, m, buf = ({k: np.zeros_like(x) for k, x in theta.items()} for _ in range(3))
    for _ in range(steps):
        g = _cubic_grad(theta)
        for k in theta:
            s[k] = rho * s[k] + (1 - rho) * g[k] ** 2
            m[k] = rho * m[k] + (1 - rho) * g[k]
            var = s[k] - m[k] ** 2
            denom = np.sqrt(var + eps) if eps_in_sqrt else np.sqrt(var) + eps
            buf[k] = mu * buf[k] + g[k] / denom
            theta[k] = theta[k] - lr * buf[k]
    _assert_close(got, theta, rtol=1e-12)


def test_adamw_decoupled_decay_uses_the_scheduled_learning_rate():
    """Zero gradients make Adam's direction exactly 0, so θ_T = θ₀·Πₜ(1 − ηₜ·λ) with ηₜ the
    schedule (PyTorch/optax), not the paper's (ηₜ/η_peak)·λ; masked-out leaves never move."""
    lam, steps = 0.5, 8
    opt = optim.adamw(
        optim.warmup_cosine_decay(**WCD), weight_decay=lam, mask={"b": False, "w": True}
    )
    with jax.enable_x64(True):
        zeros = {"b": np.zeros(2), "w": np.zeros((3, 2))}
        got = _run_x64(opt, [zeros] * steps, THETA64)
    factor = math.prod(1 - _wcd(t) * lam for t in range(steps))
    np.testing.assert_allclose(got["w"], W0 * factor, rtol=1e-14)
    np.testing.assert_array_equal(got["b"], B0)
    paper = math.prod(1 - _wcd(t) / WCD["peak_value"] * lam for t in range(steps))
    assert abs(paper - factor) > 1e-3  # the two conventions are distinguishable here


# --- Schedules: warmup_cosine_decay's exact convention ------------------------------------


def test_warmup_cosine_decay_every_step_through_and_past_the_end_float64():
    peak, warmup, total, end, init = 2.0, 4, 12, 0.3, 0.5
    schedule = optim.warmup_cosine_decay(init, peak, warmup, total, end_value=end)
    steps = np.arange(0, 3 * total, dtype=np.int32)
    with jax.enable_x64(True):
        traced = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)))
        python = np.array([float(schedule(int(t))) for t in (0, warmup, total, 3 * total)])
    expected = np.array([_warmup_cosine(int(t), peak, warmup, total, end, init) for t in steps])
    np.testing.assert_allclose(traced, expected, rtol=1e-14, atol=0)
    # The landmarks, as exact numbers: init at 0, peak at W, end at T and beyond.
    assert traced[0] == init and traced[warmup] == peak
    np.testing.assert_allclose([traced[total], traced[-1]], end, rtol=1e-15)
    np.testing.assert_allclose(python, [init, peak, end, end], rtol=1e-15)
    assert np.all(np.diff(traced[:warmup]) > 0) and np.all(np.diff(traced[warmup:total]) < 0)


# --- Hyperparameter validation: every alias, every kind of bad value ---------------------

_BUILD = {
    "sgd": lambda **kw: optim.sgd(kw.pop("learning_rate", 0.1), **kw),
    "rmsprop": lambda **kw: optim.rmsprop(kw.pop("learning_rate", 0.1), **kw),
    "adam": lambda **kw: optim.adam(**kw),
    "adamw": lambda **kw: optim.adamw(**kw),
}
ALL = ["sgd", "rmsprop", "adam", "adamw"]
_BAD = [
    # (aliases, kwargs, error, text that must appear: the argument and the value)
    (ALL, {"learning_rate": -0.5}, ValueError, "learning_rate=-0.5"),
    (ALL, {"learning_rate": "1e-3"}, TypeError, "learning_rate='1e-3'"),
    (ALL, {"learning_rate": [0.1]}, TypeError, "learning_rate=[0.1]"),
    (ALL, {"learning_rate": None}, TypeError, "learning_rate=None"),
    (ALL, {"weight_decay": -1e-3}, ValueError, "weight_decay=-0.001"),
    (["adam", "adamw"], {"b1": 1.0}, ValueError, "b1=1.0"),
    (["adam", "adamw"], {"b1": -0.1}, ValueError, "b1=-0.1"),
    (["adam", "adamw"], {"b2": 1.0}, ValueError, "b2=1.0"),
    (["adam", "adamw"], {"b2": -0.5}, ValueError, "b2=-0.5"),
    (["rmsprop", "adam", "adamw"], {"eps": 0.0}, ValueError, "eps=0.0"),
    (["rmsprop", "adam", "adamw"], {"eps": -1e-8}, ValueError, "eps=-1e-08"),
    (["rmsprop"], {"decay": 1.0}, ValueError, "decay=1.0"),
    (["sgd", "rmsprop"], {"momentum": 1.0}, ValueError, "momentum=1.0"),
]  # fmt: skip
_BAD_CASES = [
    pytest.param(alias, kwargs, error, text, id=f"{alias}-{next(iter(kwargs))}={kwargs!r}")
    for aliases, kwargs, error, text in _BAD
    for alias in aliases
]


@pytest.mark.parametrize(("alias", "kwargs", "error", "text"), _BAD_CASES)
def test_bad_hyperparameters_raise_at_build_naming_argument_and_value(alias, kwargs, error, text):
    with pytest.raises(error) as info:
        _BUILD[alias](**dict(kwargs))
    assert text in str(info.value), str(info.value)


# --- Traps: dtypes, int32 counters, integer hyperparameters, donation — every alias -----

SCHEDULE = optim.warmup_cosine_decay(1e-3, 1e-2, 2, 10)
EVERY_ALIAS = {
    "sgd": optim.sgd(0.1),
    "sgd_momentum": optim.sgd(0.1, 0.9),
    "sgd_nesterov_wd_schedule": optim.sgd(SCHEDULE, 0.9, nesterov=True, weight_decay=1e-2),
    "rmsprop": optim.rmsprop(1e-2),
    "rmsprop_eps_in_sqrt": optim.rmsprop(1e-2, eps_in_sqrt=True),
    "rmsprop_centered_momentum_wd_schedule": optim.rmsprop(
        SCHEDULE, momentum=0.5, centered=True, weight_decay=1e-2
    ),
    "adam": optim.adam(),
    "adam_wd_schedule": optim.adam(SCHEDULE, weight_decay=1e-2),
    "adamw": optim.adamw(),
    "adamw_mask_schedule": optim.adamw(SCHEDULE, mask=decay_mask),
}


def _every_alias_step(params_by_name, states, grads):
    out = {name: _one_step(opt)(params_by_name[name], states[name], grads)
           for name, opt in EVERY_ALIAS.items()}  # fmt: skip
    return {n: p for n, (p, _) in out.items()}, {n: s for n, (_, s) in out.items()}


def _counters(state):
    """(path, leaf) of every `count` field in an optimizer state."""
    return [
        (jax.tree_util.keystr(path), leaf)
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
        if jax.tree_util.keystr(path).endswith(".count")
    ]


def _grads(dtype, rng):
    return {"b": jnp.asarray([0.3, -2.0], dtype), "w": jnp.asarray(rng.normal(size=(3, 2)), dtype)}


def test_float32_params_and_state_stay_float32_and_counters_int32_with_x64_for_every_alias(rng):
    with jax.enable_x64(True):
        params = {name: params_like(jnp.float32) for name in EVERY_ALIAS}
        states = {name: opt.init(params[name]) for name, opt in EVERY_ALIAS.items()}
        step = jax.jit(_every_alias_step)
        grads = _grads(jnp.float32, rng)
        for _ in range(3):
            params, states = step(params, states, grads)
        for name in EVERY_ALIAS:
            for leaf in jax.tree.leaves(params[name]):
                assert leaf.dtype == jnp.float32, name
            counters = _counters(states[name])
            assert counters, f"{name}: no step counter in its state"
            for path, count in counters:
                assert count.dtype == jnp.int32 and int(count) == 3, (name, path, count)
            for leaf in jax.tree.leaves(states[name]):
                assert leaf.dtype in (jnp.float32, jnp.int32), (name, leaf.dtype)
            assert optim.current_learning_rate(states[name]).dtype == jnp.float32
            chex.assert_tree_all_finite(params[name])


def test_bf16_params_give_bf16_moments_for_every_alias(rng):
    """Per-parameter state keeps the param's dtype; only scalars (η, counts) may differ."""
    params = {name: params_like(jnp.bfloat16) for name in EVERY_ALIAS}
    states = {name: opt.init(params[name]) for name, opt in EVERY_ALIAS.items()}
    params, states = jax.jit(_every_alias_step)(params, states, _grads(jnp.bfloat16, rng))
    for name in EVERY_ALIAS:
        for leaf in jax.tree.leaves(params[name]):
            assert leaf.dtype == jnp.bfloat16, name
        per_param = [leaf for leaf in jax.tree.leaves(states[name]) if leaf.ndim > 0]
        assert all(leaf.dtype == jnp.bfloat16 for leaf in per_param), name
        for path, count in _counters(states[name]):
            assert count.dtype == jnp.int32, (name, path)


def test_donated_step_of_every_alias_runs_repeatedly_without_warnings(rng):
    step = jax.jit(_every_alias_step, donate_argnums=(0, 1))
    params = {name: params_like(jnp.float32) for name in EVERY_ALIAS}
    states = {name: opt.init(params[name]) for name, opt in EVERY_ALIAS.items()}
    grads = _grads(jnp.float32, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Some donated buffers were not usable" would raise
        for _ in range(3):
            # Params and per-parameter buffers are updated in place. (The scalar η in the
            # state is written but never read, so jit prunes it from the inputs.)
            old = [leaf for leaf in jax.tree.leaves((params, states)) if leaf.ndim > 0]
            params, states = step(params, states, grads)
            jax.block_until_ready(params)
            assert all(leaf.is_deleted() for leaf in old)


def test_integer_hyperparameters_work_under_jit_with_x64():
    """b1=b2=0, decay=0, momentum=0, lr=1, eps=1, wd=1 as Python ints: float32 stays float32
    and the steps follow the closed forms (d = g/(|g|+1) for the adaptive ones)."""
    g = {"b": np.array([0.5, -2.0]), "w": np.array([[1.0, -0.25], [3.0, 0.0], [-1.5, 2.0]])}
    cases = {
        "sgd": (optim.sgd(1, momentum=0), lambda p, g: p - g),
        "sgd_wd": (optim.sgd(2, momentum=0, weight_decay=1), lambda p, g: p - 2 * (g + p)),
        "rmsprop": (optim.rmsprop(1, decay=0, eps=1), lambda p, g: p - g / (np.abs(g) + 1)),
        "adam": (optim.adam(1, b1=0, b2=0, eps=1), lambda p, g: p - g / (np.abs(g) + 1)),
        "adamw": (
            optim.adamw(1, b1=0, b2=0, eps=1, weight_decay=1),
            lambda p, g: p - g / (np.abs(g) + 1) - p,
        ),
    }
    with jax.enable_x64(True):
        for name, (opt, closed_form) in cases.items():
            params = params_like(jnp.float32)
            state = opt.init(params)
            step = jax.jit(_one_step(opt))
            expected = {k: np.asarray(v, np.float64) for k, v in params.items()}
            for _ in range(2):
                params, state = step(params, state, jax.tree.map(jnp.float32, g))
                expected = {k: closed_form(v, g[k]) for k, v in expected.items()}
            for k in expected:
                assert params[k].dtype == jnp.float32, name
                np.testing.assert_allclose(params[k], expected[k], rtol=1e-6, atol=1e-6)


# --- Traps: step counting through wrappers ----------------------------------------------

LINEAR_C = {"b": np.array([1.0, -2.0]), "w": np.array([[0.5, 1.0], [-1.0, 2.0], [3.0, -0.5]])}


def _linear_loss(params, batch=None, key=None):
    """f(θ) = Σ c·θ: the gradient is the constant c, so θₖ = θ₀ − c·Σ_{t<k} ηₜ for SGD."""
    del batch, key
    total = sum(jnp.sum(jnp.asarray(LINEAR_C[k], p.dtype) * p) for k, p in params.items())
    return total, {}


def _after_sgd_updates(k):
    rate = sum(_wcd(t) for t in range(k))
    start = params_like(jnp.float32)
    return {n: np.asarray(v, np.float64) - rate * LINEAR_C[n] for n, v in start.items()}


@pytest.mark.parametrize(
    ("name", "wrap", "micro_steps_per_update"),
    [
        ("plain", lambda o: o, 1),
        ("clip_chain", lambda o: optim.chain(optim.clip_by_global_norm(1e3), o), 1),
        ("skip_nonfinite", skip_nonfinite, 1),
        ("accumulate_2", lambda o: accumulate(o, every_k=2), 2),
        ("masked_all", lambda o: optim.masked(o, {"b": True, "w": True}), 1),
    ],
)
def test_wrappers_do_not_shift_the_schedule(name, wrap, micro_steps_per_update):
    """The first update uses schedule(0) (init_value ≠ 0 here), the k-th schedule(k−1)."""
    opt = wrap(optim.sgd(optim.warmup_cosine_decay(**WCD)))
    step = jax.jit(_one_step(opt))
    params = params_like(jnp.float32)
    state = opt.init(params)
    grads = jax.grad(lambda p: _linear_loss(p)[0])(params)
    for k in range(1, 4):
        for _ in range(micro_steps_per_update):
            params, state = step(params, state, grads)
        for leaf, value in _after_sgd_updates(k).items():
            np.testing.assert_allclose(params[leaf], value, rtol=1e-6, atol=1e-7, err_msg=name)


def test_make_step_does_not_shift_the_schedule_and_adam_first_step_is_lr():
    sgd_step = train.make_step(_linear_loss, optim.sgd(optim.warmup_cosine_decay(**WCD)))
    state = train.init_state(
        params_like(jnp.float32), optim.sgd(optim.warmup_cosine_decay(**WCD)), jax.random.key(1)
    )  # a fresh key: make_step donates the whole state, the key included
    for k in range(1, 4):
        state, _ = sgd_step(state, None)
        assert int(state.step) == k
        for leaf, value in _after_sgd_updates(k).items():
            np.testing.assert_allclose(state.params[leaf], value, rtol=1e-6, atol=1e-7)
    adam = optim.adam(optim.warmup_cosine_decay(**WCD))
    adam_state = train.init_state(params_like(jnp.float32), adam, jax.random.key(2))
    before = jax.tree.map(np.asarray, adam_state.params)
    adam_state, _ = train.make_step(_linear_loss, adam)(adam_state, None)
    for leaf in before:  # t = 1: |Δθ| = η₀·|c|/(|c| + ε) = init_value on every coordinate
        delta = np.asarray(adam_state.params[leaf], np.float64) - before[leaf]
        np.testing.assert_allclose(delta, -WCD["init_value"] * np.sign(LINEAR_C[leaf]), rtol=1e-5)


# --- Layers ------------------------------------------------------------------------------


def test_mlp_is_a_serial_of_dense_and_activation_layers(rng):
    sizes = [3, 5, 4, 2]
    built = nn.serial(
        nn.dense(5), nn.activation(relu), nn.dense(4), nn.activation(relu), nn.dense(2)
    )
    params, out = nn.mlp(sizes).init(KEY, (-1, 3))
    expected, expected_out = built.init(KEY, (-1, 3))
    assert out == expected_out == (-1, 2)
    chex.assert_trees_all_equal(params, expected)  # same names, same key split, same values
    # With dropout the key is split among the children exactly as a serial does.
    dropped = nn.mlp(sizes, dropout=0.5)
    manual = nn.serial(
        nn.dense(5), nn.activation(relu), nn.dropout(0.5),
        nn.dense(4), nn.activation(relu), nn.dropout(0.5), nn.dense(2),
    )  # fmt: skip
    p_drop, _ = dropped.init(KEY, (3,))
    chex.assert_trees_all_equal(p_drop, manual.init(KEY, (3,))[0])

    @jax.jit
    def outputs(x):
        return (
            nn.mlp(sizes).apply(params, x),
            built.apply(params, x),
            dropped.apply(p_drop, x, key=KEY, train=True),
            manual.apply(p_drop, x, key=KEY, train=True),
        )

    mlp_y, serial_y, mlp_dropped, serial_dropped = outputs(
        jnp.asarray(rng.normal(size=(2, 4, 3)), jnp.float32)
    )
    np.testing.assert_array_equal(mlp_y, serial_y)
    np.testing.assert_array_equal(mlp_dropped, serial_dropped)
    assert not np.array_equal(mlp_dropped, mlp_y)  # dropout was really active


def test_layer_norm_default_eps_is_1e_5_with_biased_variance():
    """x = a·(−1, −1, 1, 1) has mean 0 and biased variance a²; with a² = ε = 1e-5 the output
    is ±a/√(2a²) = ±1/√2 (unbiased variance or another ε would give 0.65… or 0.95…)."""
    assert inspect.signature(nn.layer_norm).parameters["eps"].default == 1e-5
    layer = nn.layer_norm()
    params, _ = layer.init(KEY, (-1, 4))
    a = math.sqrt(1e-5)
    x = jnp.asarray([[-a, -a, a, a]], jnp.float32)
    np.testing.assert_allclose(
        layer.apply(params, x), np.array([[-1, -1, 1, 1]]) / math.sqrt(2), rtol=1e-5
    )


# --- Losses ------------------------------------------------------------------------------


def test_bce_with_logits_is_finite_for_minus_inf_masked_logits():
    """Logit −∞ with target 0 (and +∞ with target 1) is a certain correct answer: loss 0 and
    gradient σ(z) − y = 0, finite; the finite entries keep their usual loss."""
    z = jnp.array([-jnp.inf, -jnp.inf, jnp.inf, 0.0, 2.0, -1e4])
    y = jnp.array([0.0, 0.0, 1.0, 1.0, 0.25, 0.0])
    fn = jax.jit(
        jax.value_and_grad(lambda z: losses.binary_cross_entropy_with_logits(z, y, reduction="sum"))
    )
    value, grad = fn(z)
    chex.assert_tree_all_finite((value, grad))
    zf = np.array([0.0, 2.0])
    yf = np.array([1.0, 0.25])
    finite_part = np.sum(np.logaddexp(0, zf) - yf * zf)  # softplus(z) − y·z
    np.testing.assert_allclose(value, finite_part, rtol=1e-6)
    sigmoid = 1 / (1 + np.exp(-zf))
    np.testing.assert_allclose(grad, [0, 0, 0, *(sigmoid - yf), 0], rtol=1e-6, atol=1e-7)


def test_every_loss_reduces_with_a_mean_by_default(rng):
    pred = rng.normal(size=(3, 4))
    target = rng.normal(size=(3, 4))
    logits = rng.normal(size=(3, 4)) * 2
    ids = np.array([0, 3, 1])
    probs = rng.uniform(0.05, 0.95, size=(3, 4))
    bits = rng.integers(0, 2, size=(3, 4)).astype(float)
    log_softmax = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
    expected = {
        "mse": np.mean((pred - target) ** 2),
        "cross_entropy": -np.mean(log_softmax[np.arange(3), ids]),
        "bce_logits": np.mean(np.logaddexp(0, logits) - bits * logits),
        "bce": -np.mean(bits * np.log(probs) + (1 - bits) * np.log(1 - probs)),
    }
    with jax.enable_x64(True):
        got = {
            "mse": losses.mse(jnp.asarray(pred), jnp.asarray(target)),
            "cross_entropy": losses.cross_entropy(jnp.asarray(logits), jnp.asarray(ids)),
            "bce_logits": losses.binary_cross_entropy_with_logits(
                jnp.asarray(logits), jnp.asarray(bits)
            ),
            "bce": losses.binary_cross_entropy(jnp.asarray(probs), jnp.asarray(bits)),
        }
    for name, value in expected.items():
        assert np.ndim(got[name]) == 0, name
        np.testing.assert_allclose(float(got[name]), value, rtol=1e-12, err_msg=name)
