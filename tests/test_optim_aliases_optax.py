"""optax's optimizers in funcnn (funcnn/optim/aliases_optax.py, adam_variants.py,
normalize.py): each alias, with its defaults and with non-default flags, against its float64
transcription in `funcnn.reference.optim` (30 steps of the registry's nonconvex problem,
float64 ≤ 1e-10, float32 ≤ 1e-5), closed forms of first steps, and validation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.optim import aliases_optax as ox
from funcnn.reference import optim as ref
from funcnn.verify import registry as configs
from funcnn.verify import runner

STEPS = 30
TOL = {"float64": 1e-10, "float32": 1e-5}


def _decay_ndim2(params):
    return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


def _decay_ndim2_reference(flat):
    return {k: x.ndim >= 2 for k, x in flat.items()}


# The aliases each registry configuration builds (every one of them with defaults and with
# non-default flags).
ALIASES = {
    "adabelief",
    "yogi",
    "adan",
    "novograd",
    "adopt",
    "ademamix",
    "simplified_ademamix",
    "adamaxw",
    "lars",
    "sign_sgd",
    "signum",
    "optimistic_gradient_descent",
    "fromage",
    "optimistic_adam",
}


def run_against_reference(cases, dtype, steps=STEPS):
    """Every case's funcnn run (one jitted scan for all) and its reference; the worst
    ‖ours − ref‖∞/‖ref‖∞ over the leaves, per case."""
    start = jax.tree.map(lambda x: np.asarray(x, dtype), configs.problem_params(0))
    theta = jax.tree.map(jnp.asarray, start)
    results = runner.run_funcnn({n: build() for n, (build, _) in cases.items()}, theta, steps)
    errors = {}
    for name, (_, build_reference) in cases.items():
        expected, _ = ref.run_reference(
            build_reference(), ref.flatten_params(start), configs.problem_grad_numpy, steps
        )
        ours = ref.flatten_params(jax.tree.map(np.asarray, results[name][0]))
        errors[name] = max(
            float(np.max(np.abs(ours[k] - expected[k])) / np.max(np.abs(expected[k])))
            for k in expected
        )
    return errors


def test_every_configuration_is_registered_so_the_reference_agreement_test_runs_it():
    # tests/test_reference_agreement.py runs every registry.CONFIGS entry for 500 steps in
    # both dtypes against its float64 transcription (≤ 1e-10 float64, ≤ 1e-5 float32).
    registered = {}
    for spec in configs.CONFIGS.values():
        registered.setdefault(spec.name, []).append(spec)
    for alias in ALIASES:
        specs = registered.get(alias, [])
        assert any(not s.kwargs.keys() - {"learning_rate"} for s in specs), alias  # defaults
        if alias != "sign_sgd":  # its only argument is the learning rate
            assert any(s.kwargs.keys() - {"learning_rate"} for s in specs), alias  # flags


def test_the_comparison_catches_a_wrong_default():
    """yogi with the wrong initial accumulator (0 instead of 1e-6) must fail float64."""
    with jax.enable_x64(True):
        errors = run_against_reference(
            {"wrong": (lambda: ox.yogi(1e-2), lambda: ref.Yogi(1e-2, initial_accumulator=0.0))},
            "float64",
            steps=5,
        )
    assert errors["wrong"] > 1e-8


# --- closed forms of the first step ---------------------------------------------------------

G = {"w": jnp.array([0.5, -3.0, 0.0, 2e-3])}
THETA = {"w": jnp.array([1.0, -2.0, 0.5, 3.0])}


def _first_step(opt):
    updates, _ = opt.update(G, opt.init(THETA), THETA)
    return np.asarray(updates["w"])


def test_first_steps_in_closed_form():
    g = np.asarray(G["w"])
    # signSGD and Signum: −η·sign(g) (Signum's m₁ = (1−β)g has g's sign).
    np.testing.assert_allclose(_first_step(ox.sign_sgd(0.1)), -0.1 * np.sign(g))
    np.testing.assert_allclose(_first_step(ox.signum(0.1)), -0.1 * np.sign(g))
    # ADOPT's first update only measures v: no step.
    np.testing.assert_array_equal(_first_step(ox.adopt(0.1)), np.zeros(4))
    # Optimistic GD at t = 1: (α + β)g − βg = αg.
    d = _first_step(ox.optimistic_gradient_descent(0.1, 0.5, 2.0))
    np.testing.assert_allclose(d, -0.05 * g, rtol=1e-6)
    # AdaBelief at t = 1 with β₁ = 0: m = g, s = (g − m)² + ε_root = ε_root, so
    # d = g/√(ε_root/(1−β₂)).
    d = _first_step(ox.adabelief(1.0, b1=0.0, eps=0.0, eps_root=1e-6))
    np.testing.assert_allclose(d, -g / np.sqrt(1e-6 / (1 - 0.999)), rtol=2e-5)  # float32 1 − β₂
    # NovoGrad at t = 1: m = g/(‖g‖ + ε).
    np.testing.assert_allclose(
        _first_step(ox.novograd(1.0, eps=0.0)), -g / np.linalg.norm(g), rtol=1e-6
    )


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ox.adabelief(1e-3, b1=1.0), "b1"),
        (lambda: ox.yogi(1e-3, eps=-1.0), "eps"),
        (lambda: ox.adan(1e-3, b3=1.5), "b3"),
        (lambda: ox.novograd(-1e-3), "learning_rate"),
        (lambda: ox.adopt(1e-3, b2=-0.1), "b2"),
        (lambda: ox.ademamix(1e-3, alpha=-1.0), "alpha"),
        (lambda: ox.lars(1e-3, momentum=1.0), "momentum"),
        (lambda: ox.signum(1e-3, beta=2.0), "momentum"),
        (lambda: ox.adamaxw(1e-3, weight_decay=-1.0), "weight_decay"),
    ],
)
def test_bad_hyperparameters_name_the_argument(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_state_keeps_float32_under_x64():
    params = {"w": jnp.ones((3,), jnp.float32)}
    with jax.enable_x64(True):
        for build in (
            ox.adan,
            ox.yogi,
            ox.adabelief,
            ox.novograd,
            ox.adopt,
            ox.ademamix,
            ox.optimistic_adam,
        ):
            opt = build(1e-2)
            state = opt.init(params)
            _, state = jax.jit(opt.update)(params, state, params)
            dtypes = {
                x.dtype for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)
            }
            assert dtypes == {jnp.dtype(jnp.float32)}, (build.__name__, dtypes)


# --- optimistic Adam (optax.optimistic_adam and its v2 interface) ------------------------------

OPTIMISTIC_ADAM = {
    "defaults": (lambda: ox.optimistic_adam(1e-2), lambda: ref.OptimisticAdam(1e-2)),
    "flags": (
        lambda: ox.optimistic_adam(
            1e-2, 0.5, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-8, nesterov=False
        ),
        lambda: ref.OptimisticAdam(
            1e-2, 0.5, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-8, nesterov=False
        ),
    ),
    "v2_flags": (
        lambda: ox.optimistic_adam_v2(3e-2, alpha=0.5, beta=2.0, b1=0.0, eps_root=1e-8),
        lambda: ref.OptimisticAdamV2(3e-2, alpha=0.5, beta=2.0, b1=0.0, eps_root=1e-8),
    ),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_optimistic_adam_matches_its_transcription(dtype):
    with jax.enable_x64(dtype == "float64"):
        errors = run_against_reference(OPTIMISTIC_ADAM, dtype)
    assert max(errors.values()) <= TOL[dtype], errors


def test_optimistic_adam_first_step_in_closed_form():
    """t = 1: v̂ = g², Nesterov's m̂ = β₁(1−β₁)g/(1−β₁²) + g = g·(1 + 2β₁)/(1 + β₁), and
    r₀ = r₁ leaves −α·r₁: u = −α·g·(1 + 2β₁)/(1 + β₁)/(|g| + ε)."""
    g = np.asarray(G["w"], np.float64)
    with jax.enable_x64(True):
        params = {"w": jnp.asarray(THETA["w"], jnp.float64)}
        opt = ox.optimistic_adam(0.1, optimism=3.0)
        updates, _ = opt.update({"w": jnp.asarray(g)}, opt.init(params), params)
    expected = -0.1 * g * (1 + 2 * 0.9) / (1 + 0.9) / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(np.asarray(updates["w"]), expected, rtol=1e-12)


def test_optimistic_adam_is_v2_with_unit_rate():
    """optimistic_adam(α, o) = optimistic_adam_v2(1, alpha=α, beta=o): (α + o)r − o·r_prev."""
    with jax.enable_x64(True):
        errors = run_against_reference(
            {
                "v1_as_v2": (
                    lambda: ox.optimistic_adam(2e-2, 0.3),
                    lambda: ref.OptimisticAdamV2(1.0, alpha=2e-2, beta=0.3),
                )
            },
            "float64",
        )
    assert errors["v1_as_v2"] <= 1e-13


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: ox.optimistic_adam(lambda t: 1e-2), TypeError, "optimistic_adam_v2"),
        (lambda: ox.optimistic_adam(-1e-2), ValueError, "learning_rate"),
        (lambda: ox.optimistic_adam(1e-2, optimism=-1.0), ValueError, "optimism"),
        (lambda: ox.optimistic_adam(1e-2, b1=1.0), ValueError, "b1"),
        (lambda: ox.optimistic_adam(1e-2, eps_root=-1.0), ValueError, "eps_root"),
        (lambda: ox.optimistic_adam(1e-2, mu_dtype=jnp.int32), TypeError, "mu_dtype"),
        (lambda: ox.optimistic_adam(1e-2, nesterov=1), TypeError, "nesterov"),
        (lambda: ox.optimistic_adam_v2(1e-2, beta=-1.0), ValueError, "beta"),
    ],
)
def test_optimistic_adam_refuses_bad_hyperparameters(build, error, message):
    with pytest.raises(error, match=message):
        build()
