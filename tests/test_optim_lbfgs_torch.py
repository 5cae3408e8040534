"""torch_lbfgs (funcnn/optim/lbfgs_torch.py): step for step against torch.optim.LBFGS's
float64 iterates, evaluation and iteration counts, recorded in tests/fixtures/optim/
torch_lbfgs.npz by benchmarks/oracles/optim_fixtures.py (Rosenbrock and an ill-conditioned
quadratic, both line_search_fn settings, torch's defaults and binding budgets); against the
float64 transcription `funcnn.reference.optim.TorchLBFGS` on a two-leaf problem; the
already-optimal start and the errors."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.optim import lbfgs_torch
from funcnn.reference import optim as ref

FIXTURE = np.load(Path(__file__).parent / "fixtures" / "optim" / "torch_lbfgs.npz")
ROSENBROCK_START = np.array([-1.2, 1.0, -0.5, 0.8, 1.3])

# the cases of benchmarks/oracles/optim_fixtures.py: name → (problem, torch's kwargs)
CASES = {
    "rosenbrock_defaults": ("rosenbrock", dict()),
    "rosenbrock_none_lr": ("rosenbrock", dict(lr=0.2)),
    "rosenbrock_wolfe": ("rosenbrock", dict(line_search_fn="strong_wolfe")),
    "rosenbrock_wolfe_short": (
        "rosenbrock",
        dict(line_search_fn="strong_wolfe", max_iter=4, history_size=3, lr=0.5),
    ),
    "quadratic_defaults": ("quadratic", dict()),
    "quadratic_none_short": ("quadratic", dict(lr=1.0, max_iter=10, history_size=5)),
    "quadratic_wolfe": ("quadratic", dict(line_search_fn="strong_wolfe")),
    "quadratic_wolfe_tolerances": (
        "quadratic",
        dict(
            line_search_fn="strong_wolfe",
            max_iter=10,
            max_eval=12,
            tolerance_grad=1e-3,
            tolerance_change=1e-5,
        ),
    ),
}


def rosenbrock(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def problem(name):
    """(loss of {"x": …} in JAX, the same in NumPy returning (f, ∇f), start)."""
    hessian = FIXTURE["hessian"]
    if name == "rosenbrock":

        def rosenbrock_numpy(flat):
            x = flat["x"]
            g = np.zeros_like(x)
            g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
            g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
            return float(rosenbrock(x)), {"x": g}

        return (lambda p: rosenbrock(p["x"])), rosenbrock_numpy, ROSENBROCK_START

    def quadratic(p):
        d = p["x"] - 1.0
        return 0.5 * d @ (jnp.asarray(hessian) @ d)

    def quadratic_numpy(flat):
        d = flat["x"] - 1.0
        return float(0.5 * d @ hessian @ d), {"x": hessian @ d}

    return quadratic, quadratic_numpy, np.zeros(8)


def run_funcnn(opt, loss, start, steps):
    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grad, state, params, value=value, value_fn=loss)
        return optim.apply_updates(params, updates), state

    params = jax.tree.map(jnp.asarray, start)
    state = opt.init(params)
    out = []
    for _ in range(steps):
        params, state = step(params, state)
        out.append((jax.tree.map(np.asarray, params), int(state.func_evals), int(state.n_iter)))
    return out


def _ours(kwargs):
    return {("learning_rate" if k == "lr" else k): v for k, v in kwargs.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_step_for_step(name):
    kind, kwargs = CASES[name]
    loss, _, start = problem(kind)
    expected = FIXTURE[f"{name}/x"]
    with jax.enable_x64(True):
        ours = run_funcnn(optim.torch_lbfgs(**_ours(kwargs)), loss, {"x": start}, len(expected))
    for k, (params, evals, iters) in enumerate(ours):
        # measured ≤ 7.1e-10 (Rosenbrock at lr = 1 without a line search amplifies rounding)
        assert np.max(np.abs(params["x"] - expected[k])) <= 1e-8, (name, k)
        assert evals == FIXTURE[f"{name}/func_evals"][k], (name, k)
        assert iters == FIXTURE[f"{name}/n_iter"][k], (name, k)


@pytest.mark.parametrize("name", ["rosenbrock_wolfe_short", "quadratic_wolfe_tolerances"])
def test_the_transcription_itself_matches_torch(name):
    kind, kwargs = CASES[name]
    _, value_and_grad, start = problem(kind)
    twin = ref.TorchLBFGS(**_ours(kwargs))
    params = {"x": start.copy()}
    for k, expected in enumerate(FIXTURE[f"{name}/x"]):
        value, grads = value_and_grad(params)
        u = twin.update(grads, params, value=value, value_fn=value_and_grad)
        params = {"x": params["x"] + u["x"]}
        assert np.max(np.abs(params["x"] - expected)) <= 1e-8, (name, k)
        assert twin.func_evals == FIXTURE[f"{name}/func_evals"][k]
        assert twin.n_iter == FIXTURE[f"{name}/n_iter"][k]


def _phi_numpy(case):
    """φ(t) = 0.05t² − s·t + a·sin(w·t + c) and φ'(t) for a fixture case (s, a, w, c, …)."""
    s, a, w, c = (float(v) for v in case[:4])

    def phi(t):
        t = float(t)
        slope = 0.1 * t - s + a * w * np.cos(w * t + c)
        return 0.05 * t * t - s * t + a * np.sin(w * t + c), np.asarray(slope), slope

    return phi


def test_the_line_search_alone_matches_torchs():
    """torch's strong-Wolfe search on 1-D φ chosen so that each of its rules (the f ≥ f_prev
    test only after the second growth, the 0.1·width margin, the insufficient-progress
    memory, the high/low flip, running out of trials) decides the result. φ is evaluated in
    NumPy through a callback, so both searches see the same bits and differ only by their
    own arithmetic."""
    cases, expected = FIXTURE["line_search/cases"], FIXTURE["line_search/torch"]
    f64 = jax.ShapeDtypeStruct((), jnp.float64)

    def search(case):
        def along(t):
            def host(case, t):
                return tuple(np.float64(v) for v in _phi_numpy(case)(t))

            value, slope, _ = jax.pure_callback(host, (f64, f64, f64), case, t)
            return value, slope, slope

        f0, g0, _ = along(jnp.zeros((), jnp.float64))
        t, f, _, evals = lbfgs_torch._strong_wolfe(
            along, case[4], f0, g0, g0, 1.0, case[5].astype(jnp.int32)
        )
        return t, f, evals

    with jax.enable_x64(True):
        run = jax.jit(search)
        for case, (t, _, evals) in zip(cases, expected, strict=True):
            ours = run(jnp.asarray(case))
            # measured ≤ 2.4e-11 relative (XLA may fuse t + 0.01·(t − t_prev) into one rounding;
            # from steps 1% apart the cubic's difference quotient amplifies that)
            assert abs(float(ours[0]) - t) <= 1e-9 * max(1.0, abs(t)), case
            assert int(ours[2]) == evals, case
            phi = _phi_numpy(case)
            f0, g0, slope0 = phi(0.0)
            theirs = ref.torch_strong_wolfe_reference(phi, case[4], f0, g0, slope0, 1.0, case[5])
            assert abs(theirs[0] - t) <= 1e-12 * max(1.0, abs(t)) and theirs[3] == evals, case


CENTER = {"a": np.array([1.0, -2.0]), "b": np.array([[0.5, 3.0], [-1.5, 2.0]])}
SCALES = {"a": np.array([1.0, 3.0]), "b": np.array([[0.5, 10.0], [2.0, 0.2]])}


def quartic(p):
    """Σ s(θ − c)²/2 + 0.1·Σ(θ − c)⁴ over two leaves: not quadratic, minimum 0 at c."""
    total = 0.0
    for k in ("a", "b"):
        d = p[k] - jnp.asarray(CENTER[k], p[k].dtype)
        scale = jnp.asarray(SCALES[k], p[k].dtype)
        total = total + 0.5 * jnp.sum(scale * d * d) + 0.1 * jnp.sum(d**4)
    return total


def quartic_numpy(flat):
    value, grads = 0.0, {}
    for k in ("a", "b"):
        d = flat[k] - CENTER[k]
        value += float(0.5 * np.sum(SCALES[k] * d * d) + 0.1 * np.sum(d**4))
        grads[k] = SCALES[k] * d + 0.4 * d**3
    return value, grads


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(line_search_fn="strong_wolfe", max_iter=5, history_size=2),
        dict(learning_rate=0.3, max_iter=6, history_size=3),
    ],
    ids=["strong_wolfe", "fixed_step"],
)
def test_two_leaf_tree_matches_the_transcription(kwargs):
    start = {"a": np.array([3.0, 1.0]), "b": np.array([[-2.0, 0.0], [2.0, -1.0]])}
    with jax.enable_x64(True):
        ours = run_funcnn(optim.torch_lbfgs(**kwargs), quartic, start, 4)
    twin, params = ref.TorchLBFGS(**kwargs), {k: v.copy() for k, v in start.items()}
    for k in range(4):
        value, grads = quartic_numpy(params)
        u = twin.update(grads, params, value=value, value_fn=quartic_numpy)
        params = {name: params[name] + u[name] for name in params}
        for name in params:
            assert np.max(np.abs(ours[k][0][name] - params[name])) <= 1e-10, (kwargs, k, name)
        assert ours[k][1:] == (twin.func_evals, twin.n_iter)


def test_an_optimal_start_does_not_move_and_float32_stays_float32():
    """At θ = c nothing moves and one evaluation is counted; from elsewhere a float32 run
    (x64 on) keeps every floating state leaf float32."""
    opt = optim.torch_lbfgs(max_iter=3)
    step = jax.jit(
        lambda p, s: opt.update(
            jax.grad(quartic)(p), s, p, value=quartic(p), value_fn=lambda q: quartic(q)
        )
    )
    params = {"a": jnp.asarray(CENTER["a"]), "b": jnp.asarray(CENTER["b"])}
    updates, state = step(params, opt.init(params))
    assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(updates))
    assert (int(state.func_evals), int(state.n_iter)) == (1, 0)
    with jax.enable_x64(True):
        params = {"a": jnp.zeros(2, jnp.float32), "b": jnp.zeros((2, 2), jnp.float32)}
        updates, state = step(params, opt.init(params))
        # max_eval = ⌊5·3/4⌋ = 3 evaluations: the given one and two re-evaluations
        assert (int(state.func_evals), int(state.n_iter)) == (3, 2)
        floats = {x.dtype for x in jax.tree.leaves((updates, state)) if x.dtype.kind == "f"}
        assert floats == {np.dtype("float32")}


def test_bad_settings_and_missing_arguments_are_named():
    with pytest.raises(ValueError, match="line_search_fn"):
        optim.torch_lbfgs(line_search_fn="backtracking")
    with pytest.raises(ValueError, match="max_iter"):
        optim.torch_lbfgs(max_iter=0)
    with pytest.raises(ValueError, match="max_eval"):
        optim.torch_lbfgs(max_eval=0)
    with pytest.raises(ValueError, match="history_size"):
        optim.torch_lbfgs(history_size=0)
    with pytest.raises(ValueError, match="learning_rate"):
        optim.torch_lbfgs(-1.0)
    opt = optim.torch_lbfgs()
    params = {"x": jnp.ones(3)}
    with pytest.raises(ValueError, match="value_fn"):
        opt.update(params, opt.init(params), params, value=1.0)


def test_vmap_over_the_learning_rate_equals_separate_runs():
    """The race sweeps η with `vmap`: batched memory rows must not reach XLA as a batched
    scatter inside the loop (XLA 0.10's CPU compiler aborted on that)."""
    start = {"a": jnp.zeros(2), "b": jnp.zeros((2, 2))}

    def run(lr):
        opt = optim.torch_lbfgs(lambda step: lr, max_iter=4, history_size=2)
        value, grad = jax.value_and_grad(quartic)(start)
        updates, _ = opt.update(grad, opt.init(start), start, value=value, value_fn=quartic)
        return updates

    rates = jnp.array([0.1, 0.5])
    together = jax.jit(jax.vmap(run))(rates)
    for i, lr in enumerate(rates):
        alone = jax.jit(run)(lr)
        for a, b in zip(jax.tree.leaves(together), jax.tree.leaves(alone), strict=True):
            np.testing.assert_allclose(np.asarray(a[i]), np.asarray(b), rtol=1e-6, atol=1e-7)
