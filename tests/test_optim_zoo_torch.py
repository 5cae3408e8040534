"""The torch.optim half of the optimizer zoo: Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop,
ASGD (funcnn/optim/accumulators.py and their aliases).

Agreement with the float64 transcriptions over 500 steps lives in the registry
(tests/test_reference_agreement.py picks up every `registry.CONFIGS` entry). Here: the
contracts (validation naming the argument, dtypes, int32 counters, one trace, checkpoints),
convergence, and closed forms of torch's first steps written by hand from torch's
documented algorithms.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.reference import optim as ref
from funcnn.train import checkpoint
from funcnn.verify import registry

# --- every new optimizer, with each flag on somewhere ------------------------------------

SCHEDULE = optim.warmup_cosine_decay(1e-3, 1e-2, 2, 10)
ZOO = {
    "adagrad": lambda: optim.adagrad(),
    "adagrad_flags": lambda: optim.adagrad(
        SCHEDULE, lr_decay=0.1, initial_accumulator_value=0.1, eps_in_sqrt=True, weight_decay=0.1
    ),
    "adadelta": lambda: optim.adadelta(),
    "adadelta_wd": lambda: optim.adadelta(SCHEDULE, weight_decay=0.1),
    "adamax": lambda: optim.adamax(),
    "adamax_wd": lambda: optim.adamax(SCHEDULE, weight_decay=0.1),
    "nadam": lambda: optim.nadam(),
    "nadam_decoupled": lambda: optim.nadam(SCHEDULE, weight_decay=0.1, decoupled_weight_decay=True),
    "radam": lambda: optim.radam(),
    "radam_decoupled": lambda: optim.radam(SCHEDULE, weight_decay=0.1, decoupled_weight_decay=True),
    "rprop": lambda: optim.rprop(),
    "rprop_flags": lambda: optim.rprop(1e-3, etas=(0.3, 1.5), step_sizes=(1e-5, 1.0)),
    "asgd": lambda: optim.asgd(),
    "asgd_flags": lambda: optim.asgd(SCHEDULE, lambd=1e-2, alpha=0.5, t0=1, weight_decay=0.1),
}


def _params(dtype, seed):
    rng = np.random.default_rng(seed)
    b, w = rng.normal(size=(2,)), rng.normal(size=(3, 2))
    return {"b": jnp.asarray(b, dtype), "w": jnp.asarray(w, dtype)}


def _one_step(optimizer):
    def step(params, state, grads):
        updates, state = optimizer.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    return step


def _counters(state):
    return [
        (jax.tree_util.keystr(path), leaf)
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
        if jax.tree_util.keystr(path).endswith(".count")
    ]


# --- validation: a clear error naming the argument and the value --------------------------

_BUILD = {
    "adagrad": optim.adagrad,
    "adadelta": optim.adadelta,
    "adamax": optim.adamax,
    "nadam": optim.nadam,
    "radam": optim.radam,
    "rprop": optim.rprop,
    "asgd": optim.asgd,
}
_ACC0 = "initial_accumulator_value"
_DECAYING = ["adagrad", "adadelta", "adamax", "nadam", "radam", "asgd"]  # rprop has no decay
_BAD = [
    # (aliases, kwargs, error, text that must appear)
    (list(_BUILD), {"learning_rate": -0.5}, ValueError, "learning_rate=-0.5"),
    (list(_BUILD), {"learning_rate": "1e-3"}, TypeError, "learning_rate='1e-3'"),
    (_DECAYING, {"weight_decay": -1e-3}, ValueError, "weight_decay=-0.001"),
    (_DECAYING[:-1], {"eps": 0.0}, ValueError, "eps=0.0"),
    (["adagrad"], {"lr_decay": -0.1}, ValueError, "lr_decay=-0.1"),
    (["adagrad"], {_ACC0: -1.0}, ValueError, f"{_ACC0}=-1.0"),
    (["adadelta"], {"rho": 1.0}, ValueError, "rho=1.0"),
    (["adadelta"], {"rho": -0.1}, ValueError, "rho=-0.1"),
    (["adamax", "nadam", "radam"], {"b1": 1.0}, ValueError, "b1=1.0"),
    (["adamax", "nadam", "radam"], {"b2": -0.5}, ValueError, "b2=-0.5"),
    (["nadam"], {"momentum_decay": -1e-3}, ValueError, "momentum_decay=-0.001"),
    (["rprop"], {"learning_rate": SCHEDULE}, TypeError, "must be a number"),
    (["rprop"], {"etas": (0.5,)}, ValueError, "etas=(0.5,)"),
    (["rprop"], {"etas": 0.5}, TypeError, "etas=0.5"),
    (["rprop"], {"etas": (1.2, 0.5)}, ValueError, "etas=(1.2, 0.5)"),
    (["rprop"], {"etas": (0.5, 1.0)}, ValueError, "etas=(0.5, 1.0)"),
    (["rprop"], {"step_sizes": (1.0, 0.1)}, ValueError, "step_sizes=(1.0, 0.1)"),
    (["rprop"], {"step_sizes": (-1e-6, 50, 1)}, ValueError, "step_sizes=(-1e-06, 50, 1)"),
    (["asgd"], {"lambd": -1e-4}, ValueError, "lambd=-0.0001"),
    (["asgd"], {"alpha": -0.75}, ValueError, "alpha=-0.75"),
    (["asgd"], {"t0": -1.0}, ValueError, "t0=-1.0"),
]  # fmt: skip
_BAD_CASES = [
    # ids must not contain reprs with memory addresses (xdist workers must agree on them)
    pytest.param(alias, kwargs, error, text, id=f"{alias}-{sorted(kwargs)}-{case}")
    for case, (aliases, kwargs, error, text) in enumerate(_BAD)
    for alias in aliases
]


@pytest.mark.parametrize(("alias", "kwargs", "error", "text"), _BAD_CASES)
def test_bad_hyperparameters_raise_at_build_naming_argument_and_value(alias, kwargs, error, text):
    with pytest.raises(error) as info:
        _BUILD[alias](**kwargs)
    assert text in str(info.value), str(info.value)


def test_integer_hyperparameters_are_accepted():
    optim.adamax(1, b1=0, b2=0)
    optim.rprop(1, etas=(0.5, 2), step_sizes=(0, 50))
    optim.asgd(1, lambd=0, alpha=1, t0=0)


# --- dtypes, counters, one trace ---------------------------------------------------------


def _zoo_step(params_by_name, states, grads, optimizers):
    out = {name: _one_step(opt)(params_by_name[name], states[name], grads)
           for name, opt in optimizers.items()}  # fmt: skip
    return {n: p for n, (p, _) in out.items()}, {n: s for n, (_, s) in out.items()}


def test_float32_params_and_state_stay_float32_and_counters_int32_with_x64():
    optimizers = {name: build() for name, build in ZOO.items()}
    with jax.enable_x64(True):
        params = {name: _params(jnp.float32, seed=1) for name in ZOO}
        states = {name: opt.init(params[name]) for name, opt in optimizers.items()}
        step = jax.jit(lambda p, s, g: _zoo_step(p, s, g, optimizers))
        grads = _params(jnp.float32, seed=2)
        for _ in range(3):
            params, states = step(params, states, grads)
    for name in ZOO:
        assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params[name])), name
        counters = _counters(states[name])
        assert counters, f"{name}: no step counter"
        for path, count in counters:
            assert count.dtype == jnp.int32 and int(count) == 3, (name, path, count)
        for leaf in jax.tree.leaves(states[name]):
            assert leaf.dtype in (jnp.float32, jnp.int32), (name, leaf.dtype)
        assert optim.current_learning_rate(states[name]).dtype == jnp.float32
        chex.assert_tree_all_finite(params[name])


def test_bf16_params_keep_bf16_per_parameter_state():
    optimizers = {name: build() for name, build in ZOO.items()}
    params = {name: _params(jnp.bfloat16, seed=3) for name in ZOO}
    states = {name: opt.init(params[name]) for name, opt in optimizers.items()}
    step = jax.jit(lambda p, s, g: _zoo_step(p, s, g, optimizers))
    params, states = step(params, states, _params(jnp.bfloat16, seed=4))
    for name in ZOO:
        assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(params[name])), name
        per_param = [leaf for leaf in jax.tree.leaves(states[name]) if leaf.ndim > 0]
        assert per_param and all(leaf.dtype == jnp.bfloat16 for leaf in per_param), name
        for path, count in _counters(states[name]):
            assert count.dtype == jnp.int32, (name, path)
        chex.assert_tree_all_finite(params[name])


@pytest.mark.parametrize("name", ["adagrad_flags", "nadam_decoupled", "rprop", "asgd_flags"])
def test_second_update_does_not_retrace(name):
    optimizer = ZOO[name]()
    traces = []

    def step(params, state, grads):
        traces.append(1)  # runs once per trace, not per call
        return _one_step(optimizer)(params, state, grads)

    jitted = jax.jit(step)
    params = _params(jnp.float32, seed=5)
    state = optimizer.init(params)
    for seed in (6, 7, 8):  # new grads, new state, new scheduled rate: same program
        params, state = jitted(params, state, _params(jnp.float32, seed=seed))
    assert len(traces) == 1


# --- convergence on a parabola ------------------------------------------------------------

CONVERGE = {
    "adagrad": lambda: optim.adagrad(0.5),
    "adadelta": lambda: optim.adadelta(10.0),
    "adamax": lambda: optim.adamax(5e-2),
    "nadam": lambda: optim.nadam(5e-2),
    "radam": lambda: optim.radam(5e-2),
    "rprop": lambda: optim.rprop(),
    "asgd": lambda: optim.asgd(0.1, t0=100),
}


@pytest.mark.parametrize("name", list(CONVERGE))
def test_converges_on_a_parabola(name):
    """f(θ) = ½Σ aᵢ(θᵢ − cᵢ)² with curvatures 0.5…2: every method reaches c."""
    target = {"b": jnp.asarray([1.0, -2.0]), "w": jnp.asarray([[0.5, 3.0], [-1.0, 0.0]])}
    curvature = {"b": jnp.asarray([0.5, 2.0]), "w": jnp.asarray([[1.0, 1.5], [0.7, 2.0]])}

    def loss(theta):
        return sum(
            0.5 * jnp.sum(a * (x - c) ** 2)
            for x, c, a in zip(
                jax.tree.leaves(theta),
                jax.tree.leaves(target),
                jax.tree.leaves(curvature),
                strict=True,
            )
        )

    optimizer = CONVERGE[name]()
    theta = jax.tree.map(jnp.zeros_like, target)

    def body(carry, _):
        theta, state = carry
        updates, state = optimizer.update(jax.grad(loss)(theta), state, theta)
        return (optim.apply_updates(theta, updates), state), None

    (theta, state), _ = jax.lax.scan(body, (theta, optimizer.init(theta)), length=400)
    start = float(loss(jax.tree.map(jnp.zeros_like, target)))
    assert float(loss(theta)) < 1e-4 * start, (name, float(loss(theta)))
    if name == "asgd":  # the average of the late iterates is at the minimum too
        assert float(loss(optim.averaged_params(state))) < 1e-4 * start


# --- checkpoints --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ZOO))
def test_state_checkpoint_round_trip_is_exact_and_resumes_identically(tmp_path, name):
    optimizer = ZOO[name]()
    step = jax.jit(_one_step(optimizer))
    params = _params(jnp.float32, seed=9)
    state = optimizer.init(params)
    for seed in (10, 11):
        params, state = step(params, state, _params(jnp.float32, seed=seed))
    path = checkpoint.save(tmp_path / "opt.npz", state)
    restored = checkpoint.restore(path, like=optimizer.init(params))
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    grads = _params(jnp.float32, seed=12)
    resumed, _ = step(params, restored, grads)
    direct, _ = step(params, state, grads)
    chex.assert_trees_all_equal(resumed, direct)


# --- closed forms of torch's algorithms ----------------------------------------------------

G = np.array([0.5, -3.0, 0.0, 2e-3])
THETA = np.array([1.0, -2.0, 0.5, 0.0])


def _run(optimizer, grads_sequence, theta=THETA):
    """θ after each of the given gradients (float64), with the final state."""
    with jax.enable_x64(True):
        params = {"x": jnp.asarray(theta)}
        state = optimizer.init(params)
        step = jax.jit(_one_step(optimizer))
        thetas = []
        for g in grads_sequence:
            params, state = step(params, state, {"x": jnp.asarray(g)})
            thetas.append(np.asarray(params["x"]))
    return thetas, state


def test_rprop_first_step_is_minus_lr_sign_and_a_flip_skips_then_shrinks():
    lr, (eta_minus, eta_plus) = 0.05, (0.4, 1.3)
    g2 = np.array([1.0, -2.0, 1.0, -1.0])  # same sign, same sign, (was 0), flipped
    g3 = g2
    (t1, t2, t3), _ = _run(optim.rprop(lr, etas=(eta_minus, eta_plus)), [G, g2, g3])
    np.testing.assert_allclose(t1, THETA - lr * np.sign(G), rtol=1e-15)
    # step 2: Δ grows where the sign repeats, stays where the old g was 0, and after the
    # flip Δ shrinks and no step is taken (g̃ = 0).
    expected2 = t1 - np.array([lr * eta_plus, -lr * eta_plus, lr, 0.0])
    np.testing.assert_allclose(t2, expected2, rtol=1e-15)
    # step 3: after the skipped step the product with g̃ = 0 is 0: Δ kept (lr·η₋), step taken.
    deltas3 = np.array([lr * eta_plus**2, lr * eta_plus**2, lr * eta_plus, lr * eta_minus])
    np.testing.assert_allclose(t3, t2 - deltas3 * np.sign(g3), rtol=1e-15)


def test_rprop_step_sizes_are_clamped():
    (t1, t2), _ = _run(optim.rprop(0.1, etas=(0.5, 4.0), step_sizes=(0.05, 0.3)), [G, G])
    np.testing.assert_allclose(t2 - t1, -np.array([0.3, -0.3, 0.0, 0.3]), rtol=1e-15)
    (t1, t2, _t3, t4), _ = _run(
        optim.rprop(0.1, etas=(0.1, 1.2), step_sizes=(0.05, 0.3)), [G, -G, -G, -G]
    )
    # after the flip Δ = max(0.1·0.1, 0.05) = 0.05 and stays there (sign product 0, then +·1.2)
    np.testing.assert_allclose(t4 - _t3, np.array([0.06, -0.06, 0.0, 0.06]), rtol=1e-14)


def test_adagrad_first_steps_closed_form():
    lr, eps, acc0, decay = 0.1, 1e-10, 0.3, 0.5
    (t1,), _ = _run(optim.adagrad(lr), [G])
    np.testing.assert_allclose(t1, THETA - lr * G / (np.abs(G) + eps), rtol=1e-14)
    (t1, t2), _ = _run(optim.adagrad(lr, lr_decay=decay, initial_accumulator_value=acc0), [G, G])
    np.testing.assert_allclose(t1, THETA - lr * G / (np.sqrt(acc0 + G**2) + eps), rtol=1e-14)
    expected = t1 - lr / (1 + decay) * G / (np.sqrt(acc0 + 2 * G**2) + eps)
    np.testing.assert_allclose(t2, expected, rtol=1e-14)
    # optax's placement: g/√(s + ε)
    (t1,), _ = _run(optim.adagrad(lr, eps=1e-7, eps_in_sqrt=True), [G])
    np.testing.assert_allclose(t1, THETA - lr * G / np.sqrt(G**2 + 1e-7), rtol=1e-14)


def test_adadelta_and_adamax_first_steps_closed_form():
    lr, rho, eps = 0.7, 0.8, 1e-6
    (t1,), _ = _run(optim.adadelta(lr, rho, eps), [G])
    np.testing.assert_allclose(
        t1, THETA - lr * np.sqrt(eps) / np.sqrt((1 - rho) * G**2 + eps) * G, rtol=1e-14
    )
    b1, b2, eps = 0.8, 0.99, 1e-8
    (t1, t2), _ = _run(optim.adamax(lr, b1, b2, eps), [G, G / 10])
    np.testing.assert_allclose(t1, THETA - lr * G / (np.abs(G) + eps), rtol=1e-14)  # m̂ = g
    # step 2: |g₂| + ε < β₂·u₁, so u₂ = β₂·(|g₁| + ε) — torch's ε sits inside the max
    m2 = b1 * (1 - b1) * G + (1 - b1) * G / 10
    u2 = np.maximum(b2 * (np.abs(G) + eps), np.abs(G / 10) + eps)
    np.testing.assert_allclose(t2, t1 - lr * m2 / ((1 - b1**2) * u2), rtol=1e-14)


def test_nadam_first_step_closed_form():
    lr, b1, eps, psi = 0.1, 0.9, 1e-8, 4e-3  # torch's defaults (β₂ drops out at t = 1)
    mu1 = b1 * (1 - 0.5 * 0.96**psi)
    mu2 = b1 * (1 - 0.5 * 0.96 ** (2 * psi))
    denom = np.abs(G) + eps  # √(v₁/(1−β₂)) = |g|
    d = G / denom + mu2 / (1 - mu1 * mu2) * (1 - b1) * G / denom  # (1−μ₁)/(1−Π₁) = 1
    (t1,), _ = _run(optim.nadam(lr), [G])
    np.testing.assert_allclose(t1, THETA - lr * d, rtol=1e-14)
    # decoupled: θ(1 − ηλ) then the same step; coupled: the step of g + λθ
    (t1,), _ = _run(optim.nadam(lr, weight_decay=0.2, decoupled_weight_decay=True), [G])
    np.testing.assert_allclose(t1, THETA * (1 - lr * 0.2) - lr * d, rtol=1e-14)


def test_radam_is_momentum_sgd_until_rho_exceeds_5_then_rectified():
    lr, b2, eps = 0.01, 0.999, 1e-8
    thetas, _ = _run(optim.radam(lr, 0.9, b2, eps), [G] * 6)
    # constant g: m̂ = g exactly, so the first five (unrectified) steps are −η·g each
    for t in range(5):
        np.testing.assert_allclose(thetas[t], THETA - (t + 1) * lr * G, rtol=1e-13, atol=1e-15)
    t, c2 = 6, 1 - b2**6
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2**t / c2
    assert 5 < rho < 6
    r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    step6 = r * G * math.sqrt(c2) / (np.sqrt(c2) * np.abs(G) + eps)  # √v₆ = √c₂·|g|
    np.testing.assert_allclose(thetas[5], thetas[4] - lr * step6, rtol=1e-13)


def test_asgd_first_step_and_average_of_the_iterates():
    lr, lambd, alpha = 0.1, 0.05, 0.75
    grads = [G * (k + 1) for k in range(6)]
    thetas, state = _run(optim.asgd(lr, lambd=lambd, alpha=alpha, t0=0), grads)
    np.testing.assert_allclose(thetas[0], THETA * (1 - lambd * lr) - lr * G, rtol=1e-14)
    eta2 = lr / (1 + lambd * lr) ** alpha
    np.testing.assert_allclose(
        thetas[1], thetas[0] * (1 - lambd * eta2) - eta2 * grads[1], rtol=1e-14
    )
    # t₀ = 0: μₜ = 1/max(1, t − 1), so θ̄ is the mean of θ₂ … θ₆
    average = np.asarray(optim.averaged_params(state)["x"])
    np.testing.assert_allclose(average, np.mean(thetas[1:], axis=0), rtol=1e-14)
    np.testing.assert_allclose(float(optim.current_learning_rate(state)),
                               lr / (1 + lambd * lr * 5) ** alpha, rtol=1e-15)  # fmt: skip
    # default t₀ = 10⁶: the "average" is the iterate itself
    thetas, state = _run(optim.asgd(lr), grads[:3])
    np.testing.assert_array_equal(np.asarray(optim.averaged_params(state)["x"]), thetas[-1])


def test_asgd_averaged_params_match_the_reference_over_500_steps():
    """The registry compares θ only; θ̄ against torch's `ax` in the float64 transcription."""
    kwargs = dict(lambd=0.05, alpha=0.5, t0=100, weight_decay=0.1)
    optimizer = optim.asgd(0.05, **kwargs)
    with jax.enable_x64(True):
        theta = registry.problem_params(seed=2)

        def body(carry, _):
            theta, state = carry
            updates, state = optimizer.update(jax.grad(registry.problem_loss)(theta), state, theta)
            return (optim.apply_updates(theta, updates), state), None

        run = jax.jit(lambda th: jax.lax.scan(body, (th, optimizer.init(th)), length=500)[0])
        _, state = run(theta)
        ours = ref.flatten_params(jax.tree.map(np.asarray, optim.averaged_params(state)))
    reference = ref.ASGD(0.05, **kwargs)
    ref.run_reference(
        reference, ref.flatten_params(theta), registry.problem_grad_numpy, num_steps=500
    )
    for key, ax in reference.ax.items():
        assert np.max(np.abs(ours[key] - ax)) / np.max(np.abs(ax)) < 1e-10, key


def test_averaged_params_needs_exactly_one_average_stage():
    state = optim.adam().init({"x": jnp.zeros(2)})
    with pytest.raises(ValueError, match="average_params"):
        optim.averaged_params(state)
