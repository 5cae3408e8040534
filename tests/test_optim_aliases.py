"""The named optimizers: convergence, build-time validation, and the traps of DESIGN.md
(step counting, dtypes under x64, recompilation, donation, masks)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim

# --- convergence on a parabola and on 2-D Rosenbrock -----------------------------------

CURVATURE = jnp.array([1.0, 10.0])
CENTER = jnp.array([1.0, -2.0])


def parabola(p):
    """f(x) = ½ Σ hᵢ (xᵢ − cᵢ)², minimum at c."""
    return 0.5 * jnp.sum(CURVATURE * (p["x"] - CENTER) ** 2)


def rosenbrock(p):
    """f(x, y) = (1 − x)² + 100 (y − x²)², minimum at (1, 1)."""
    x, y = p["x"][0], p["x"][1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


PROBLEMS = {
    "parabola": (parabola, jnp.zeros(2), np.array([1.0, -2.0])),
    "rosenbrock": (rosenbrock, jnp.array([-1.2, 1.0]), np.array([1.0, 1.0])),
}
NUM_STEPS = 5000

# Learning rates tuned per problem: Rosenbrock's valley needs small steps for plain SGD.
OPTIMIZERS = {
    "parabola": {
        "sgd": optim.sgd(0.1),
        "sgd_momentum": optim.sgd(0.05, 0.9),
        "sgd_nesterov": optim.sgd(0.05, 0.9, nesterov=True),
        "rmsprop": optim.rmsprop(optim.exponential_decay(0.05, 100, 0.5)),
        "rmsprop_centered_momentum": optim.rmsprop(
            optim.exponential_decay(0.02, 100, 0.5), momentum=0.5, centered=True
        ),
        "adam": optim.adam(optim.exponential_decay(0.1, 100, 0.5)),
        "adamw": optim.adamw(optim.exponential_decay(0.1, 100, 0.5), weight_decay=1e-6),
    },
    "rosenbrock": {
        "sgd": optim.sgd(1.8e-3),
        "sgd_momentum": optim.sgd(1e-3, 0.9),
        "sgd_nesterov": optim.sgd(1e-3, 0.9, nesterov=True),
        "rmsprop": optim.rmsprop(optim.exponential_decay(0.01, 600, 0.5)),
        "rmsprop_centered_momentum": optim.rmsprop(
            optim.exponential_decay(0.003, 300, 0.5), momentum=0.5, centered=True
        ),
        "adam": optim.adam(optim.cosine_decay(0.05, NUM_STEPS)),
        "adamw": optim.adamw(
            optim.warmup_cosine_decay(0.0, 0.05, 100, NUM_STEPS), weight_decay=1e-4
        ),
    },
}


@pytest.fixture(scope="module", params=list(PROBLEMS))
def minimized(request):
    """Final (x, f(x)) of every optimizer on one problem, all in one jitted program."""
    loss, start, optimum = PROBLEMS[request.param]
    optimizers = OPTIMIZERS[request.param]

    def run(optimizer, params):
        def body(carry, _):
            p, state = carry
            updates, state = optimizer.update(jax.grad(loss)(p), state, p)
            return (optim.apply_updates(p, updates), state), None

        (p, _), _ = jax.lax.scan(body, (params, optimizer.init(params)), length=NUM_STEPS)
        return p["x"], loss(p)

    finals = jax.jit(lambda p: {n: run(o, p) for n, o in optimizers.items()})({"x": start})
    return request.param, optimum, finals


@pytest.mark.parametrize("name", list(OPTIMIZERS["parabola"]))
def test_every_alias_converges(minimized, name):
    problem, optimum, finals = minimized
    x, value = finals[name]
    distance = float(np.max(np.abs(np.asarray(x) - optimum)))
    assert distance < (1e-4 if problem == "parabola" else 5e-2), (problem, name, distance)
    if problem == "rosenbrock":
        assert float(value) < 1e-3  # from f(−1.2, 1) = 24.2


# --- structure and validation ------------------------------------------------------------


def test_aliases_are_chains_of_small_transforms():
    params = {"w": jnp.ones((2, 2))}
    state = optim.adamw(1e-3, mask={"w": True}).init(params)
    assert isinstance(state[0], optim.ScaleByAdamState)
    assert isinstance(state[1], optim.MaskedState)
    assert isinstance(state[2], optim.ScaleByLearningRateState)
    state = optim.sgd(0.1, 0.9, weight_decay=0.1).init(params)
    assert [type(s) for s in state] == [
        optim.EmptyState,
        optim.TraceState,
        optim.ScaleByLearningRateState,
    ]
    for alias in (optim.sgd(0.1), optim.rmsprop(0.1), optim.adam(), optim.adamw()):
        assert isinstance(alias, optim.GradientTransformation)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: optim.sgd(-0.1), ValueError, "learning_rate must be in .*learning_rate=-0.1"),
        (lambda: optim.sgd("0.1"), TypeError, "learning_rate must be a non-negative number or"),
        (lambda: optim.adam(None), TypeError, "learning_rate must be .*None"),
        (lambda: optim.adam(float("nan")), ValueError, "learning_rate must be a finite"),
        (lambda: optim.adam(b1=1.0), ValueError, r"b1 must be in \[0.0, 1.0\), got b1=1.0"),
        (lambda: optim.adamw(b1=-0.1), ValueError, "got b1=-0.1"),
        (lambda: optim.adam(b2=1.5), ValueError, "got b2=1.5"),
        (lambda: optim.adam(eps=0), ValueError, "got eps=0.0"),
        (lambda: optim.rmsprop(0.1, eps=-1e-8), ValueError, "got eps=-1e-08"),
        (lambda: optim.rmsprop(0.1, decay=1.0), ValueError, "got decay=1.0"),
        (lambda: optim.adam(weight_decay=-1e-4), ValueError, "got weight_decay=-0.0001"),
        (lambda: optim.adamw(weight_decay=-0.01), ValueError, "got weight_decay=-0.01"),
        (lambda: optim.sgd(0.1, weight_decay=float("nan")), ValueError, "weight_decay"),
        (lambda: optim.sgd(0.1, momentum=-0.9), ValueError, "got momentum=-0.9"),
        (lambda: optim.rmsprop(0.1, momentum=-0.1), ValueError, "got momentum=-0.1"),
        (lambda: optim.sgd(0.1, nesterov=True), ValueError, "nesterov=True needs a momentum"),
    ],
)
def test_bad_hyperparameters_raise_at_build_time_naming_the_argument(build, error, match):
    with pytest.raises(error, match=match):
        build()


# --- traps: step counting ------------------------------------------------------------------

PARAMS = {
    "dense": {
        "w": jnp.array([[0.5, -1.0, 2.0], [0.0, 1.5, -0.5]]),
        "b": jnp.array([0.1, 0.2, 0.3]),
    },
    "scale": jnp.array([1.0, -1.0, 0.5]),
}
GRADS = {
    "dense": {
        "w": jnp.array([[1e-3, -2.0, 5e2], [-7e-2, 3.0, 1e1]]),
        "b": jnp.array([4.0, -1e-2, 2.0]),
    },
    "scale": jnp.array([-3e2, 0.5, 1e-1]),
}


def _step(optimizer, params, grads, state=None):
    state = optimizer.init(params) if state is None else state
    updates, state = optimizer.update(grads, state, params)
    return optim.apply_updates(params, updates), state


def _delta(new, old):
    return jax.tree.map(
        lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64), new, old
    )


def test_first_update_uses_schedule_at_step_zero():
    schedule = lambda step: 0.1 * (step + 1.0)  # 0.1 at step 0, 0.2 at step 1
    new, state = _step(optim.sgd(schedule), PARAMS, GRADS)
    expected = jax.tree.map(lambda g: -0.1 * np.asarray(g, np.float64), GRADS)
    for d, e in zip(jax.tree.leaves(_delta(new, PARAMS)), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(d, e, rtol=1e-5, atol=1e-6)  # θ is float32
    newer, _ = _step(optim.sgd(schedule), new, GRADS, state)
    for d, g in zip(jax.tree.leaves(_delta(newer, new)), jax.tree.leaves(GRADS), strict=True):
        np.testing.assert_allclose(d, -0.2 * np.asarray(g, np.float64), rtol=1e-5, atol=1e-6)


def test_warmup_from_zero_means_the_first_adamw_update_changes_nothing():
    opt = optim.adamw(optim.warmup_cosine_decay(0.0, 1e-2, 10, 100), weight_decay=0.1)
    new, state = _step(opt, PARAMS, GRADS)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(PARAMS), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(optim.current_learning_rate(state)) == 0.0


@pytest.mark.parametrize(
    "build",
    [lambda lr: optim.adam(lr), lambda lr: optim.adamw(lr, weight_decay=0)],
    ids=["adam", "adamw"],
)
def test_adams_first_step_moves_every_coordinate_by_the_learning_rate(build):
    """t = 1: m̂ = g, v̂ = g², so |Δθ| = η·|g|/(|g| + ε) ≈ η, whatever the gradient scale."""
    lr = 1e-3
    opt = build(lr)
    new, _ = _step(opt, PARAMS, GRADS)
    for d, g in zip(jax.tree.leaves(_delta(new, PARAMS)), jax.tree.leaves(GRADS), strict=True):
        np.testing.assert_allclose(np.abs(d), lr, rtol=2e-4)
        np.testing.assert_array_equal(np.sign(d), -np.sign(np.asarray(g)))


def test_integer_hyperparameters_work():
    """b1=0, b2=0 (ints): m̂ = g, v̂ = g², so every step is −η·g/(|g| + ε)."""
    opt = optim.adamw(1e-2, b1=0, b2=0, weight_decay=0)
    params, state = PARAMS, None
    for _ in range(3):
        new, state = _step(opt, params, GRADS, state)
        for d in jax.tree.leaves(_delta(new, params)):
            np.testing.assert_allclose(np.abs(d), 1e-2, rtol=2e-4)
        params = new
    assert int(optim.sgd(1, momentum=0).init(PARAMS)[0].count) == 0


# --- traps: dtypes, recompilation, donation ----------------------------------------------

ALIASES = {
    "sgd": lambda lr: optim.sgd(lr, 0.9, nesterov=True, weight_decay=1e-2),
    "rmsprop": lambda lr: optim.rmsprop(lr, momentum=0.5, centered=True, weight_decay=1e-2),
    "adam": lambda lr: optim.adam(lr, weight_decay=1e-2),
    "adamw": lambda lr: optim.adamw(lr, mask=lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)),
}


def _train_step(optimizer, counter=None):
    def step(params, state, grads):
        if counter is not None:
            counter.append(1)  # runs only while tracing
        updates, state = optimizer.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    return step


@pytest.mark.parametrize("name", list(ALIASES))
def test_float32_params_and_state_stay_float32_with_x64_on(name):
    with jax.enable_x64(True):
        optimizer = ALIASES[name](optim.warmup_cosine_decay(0.0, 1e-2, 2, 10))
        params = jax.tree.map(lambda x: x.astype(jnp.float32), PARAMS)
        grads = jax.tree.map(lambda x: x.astype(jnp.float32), GRADS)
        state = optimizer.init(params)
        step = jax.jit(_train_step(optimizer))
        for _ in range(3):
            params, state = step(params, state, grads)
        for leaf in jax.tree.leaves((params, state)):
            assert leaf.dtype in (jnp.float32, jnp.int32), (name, leaf.dtype)
        assert optim.current_learning_rate(state).dtype == jnp.float32


@pytest.mark.parametrize("name", list(ALIASES))
def test_new_schedule_values_and_second_updates_never_retrace(name):
    traces = []
    optimizer = ALIASES[name](optim.warmup_cosine_decay(0.0, 1e-2, 2, 10))
    step = jax.jit(_train_step(optimizer, traces))
    params, state = PARAMS, optimizer.init(PARAMS)
    rates = []
    for _ in range(4):
        params, state = step(params, state, GRADS)
        rates.append(float(optim.current_learning_rate(state)))
    assert len(traces) == 1  # one trace: jit compiled one program for all four steps
    assert len(set(rates)) == 4  # the schedule did change: 0, 5e-3, 1e-2, …


@pytest.mark.parametrize("name", list(ALIASES))
def test_donated_step_runs_repeatedly_without_warnings(name):
    optimizer = ALIASES[name](optim.cosine_decay(1e-2, 10))
    step = jax.jit(_train_step(optimizer), donate_argnums=(0, 1))
    params = jax.tree.map(jnp.copy, PARAMS)
    state = optimizer.init(params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "donated buffers were not usable" would raise
        for _ in range(3):
            old_leaf = params["dense"]["w"]
            params, state = step(params, state, GRADS)
            jax.block_until_ready(params)
            assert old_leaf.is_deleted()  # donation really happened
    for leaf in jax.tree.leaves(params):
        assert np.all(np.isfinite(np.asarray(leaf)))


# --- traps: masks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mask",
    [
        {"dense": {"w": True, "b": False}, "scale": False},
        lambda p: jax.tree.map(lambda x: x.ndim >= 2, p),
    ],
    ids=["tree", "function"],
)
def test_masked_leaves_with_zero_gradient_stay_bitwise_identical(mask):
    optimizer = optim.adamw(1e-2, weight_decay=0.5, mask=mask)
    grads = jax.tree.map(jnp.zeros_like, GRADS)
    step = jax.jit(_train_step(optimizer))
    params, state = PARAMS, optimizer.init(PARAMS)
    for _ in range(5):
        params, state = step(params, state, grads)
    np.testing.assert_array_equal(
        np.asarray(params["dense"]["b"]), np.asarray(PARAMS["dense"]["b"])
    )
    np.testing.assert_array_equal(np.asarray(params["scale"]), np.asarray(PARAMS["scale"]))
    # The decayed leaf shrank by exactly (1 − η·λ)⁵ — so the mask really selected it.
    np.testing.assert_allclose(
        np.asarray(params["dense"]["w"]),
        np.asarray(PARAMS["dense"]["w"]) * (1 - 1e-2 * 0.5) ** 5,
        rtol=1e-6,
    )
