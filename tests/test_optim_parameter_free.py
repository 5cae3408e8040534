"""Prodigy, D-Adaptation AdamW and Mechanic (funcnn/optim/parameter_free.py) against their
float64 transcriptions in `funcnn.reference.optim`, with defaults and with non-default flags
(40 steps of the registry's problem: it has no minimum, so their scale grows without bound
and a longer run amplifies rounding chaotically), closed forms of the first step, and
validation."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.optim import schedules
from funcnn.optim.parameter_free import dadapt_adamw, mechanize, prodigy
from funcnn.reference import optim as ref
from funcnn.verify import registry as configs
from funcnn.verify import runner


def _decay_ndim2(params):
    return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


CASES = {
    "prodigy": (lambda: prodigy(), lambda: ref.Prodigy()),
    "prodigy_flags": (
        lambda: prodigy(
            schedules.cosine_decay(1.0, 30, 0.1),
            (0.8, 0.99),
            0.9,
            1e-6,
            1e-4,
            0.5,
            0.1,
            safeguard_warmup=True,
            weight_decay_mask=_decay_ndim2,
        ),
        lambda: ref.Prodigy(
            ref.schedule_cosine_decay(1.0, 30, 0.1),
            (0.8, 0.99),
            0.9,
            1e-6,
            1e-4,
            0.5,
            0.1,
            safeguard_warmup=True,
            weight_decay_mask=lambda flat: {k: x.ndim >= 2 for k, x in flat.items()},
        ),
    ),
}


def test_prodigy_matches_its_float64_transcription():
    start = configs.problem_params(0)
    with jax.enable_x64(True):
        theta = jax.tree.map(jnp.asarray, start)
        results = runner.run_funcnn({n: b() for n, (b, _) in CASES.items()}, theta, 40)
    for name, (_, build_reference) in CASES.items():
        expected, _ = ref.run_reference(
            build_reference(), ref.flatten_params(start), configs.problem_grad_numpy, 40
        )
        ours = ref.flatten_params(jax.tree.map(np.asarray, results[name][0]))
        for k in expected:
            error = np.max(np.abs(ours[k] - expected[k])) / np.max(np.abs(expected[k]))
            assert error <= 1e-10, (name, k, error)


def test_prodigy_distance_estimate_grows_from_d0():
    """d starts at estim_lr0 and only grows as θ leaves θ₀ (the point of the method)."""
    params = {"w": jnp.ones(3)}
    opt = prodigy()
    state = opt.init(params)
    estimates = []
    step = jax.jit(opt.update)
    for _ in range(20):
        updates, state = step({"w": jnp.ones(3)}, state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
        estimates.append(float(state.estim_lr))
    assert estimates[0] == pytest.approx(1e-6)  # the first step has θ = θ₀: no distance yet
    assert estimates[-1] > 100 * estimates[0]
    assert all(b >= a for a, b in itertools.pairwise(estimates))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(betas=(0.9, 1.0)), "betas"),
        (dict(betas=0.9), "betas"),
        (dict(estim_lr0=0.0), "estim_lr0"),
        (dict(weight_decay=-1.0), "weight_decay"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        prodigy(**kwargs)


def test_prodigy_needs_the_params():
    opt = prodigy()
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="params"):
        opt.update(params, opt.init(params))


# --- D-Adaptation AdamW and Mechanic ---------------------------------------------------------

PARAMETER_FREE = {
    "dadapt_adamw": (lambda: dadapt_adamw(), lambda: ref.DAdaptAdamW()),
    "dadapt_adamw_flags": (
        lambda: dadapt_adamw(schedules.cosine_decay(1.0, 30, 0.1), (0.8, 0.99), 1e-6, 1e-5, 0.1),
        lambda: ref.DAdaptAdamW(
            ref.schedule_cosine_decay(1.0, 30, 0.1), (0.8, 0.99), 1e-6, 1e-5, 0.1
        ),
    ),
    "mechanize_adam": (
        lambda: mechanize(optim.adam(1e-2)),
        lambda: ref.Mechanize(ref.Adam(1e-2)),
    ),
    "mechanize_sgd_flags": (
        lambda: mechanize(optim.sgd(1e-2, momentum=0.9), 0.1, 1e-6, 1e-4, 3),
        lambda: ref.Mechanize(ref.SGD(1e-2, momentum=0.9), 0.1, 1e-6, 1e-4, 3),
    ),
}


@pytest.fixture(scope="module")
def parameter_free_runs():
    start = configs.problem_params(0)
    with jax.enable_x64(True):
        theta = jax.tree.map(jnp.asarray, start)
        results = runner.run_funcnn({n: b() for n, (b, _) in PARAMETER_FREE.items()}, theta, 40)
    return start, results


@pytest.mark.parametrize("name", sorted(PARAMETER_FREE))
def test_dadapt_and_mechanic_match_their_float64_transcriptions(name, parameter_free_runs):
    start, results = parameter_free_runs
    expected, _ = ref.run_reference(
        PARAMETER_FREE[name][1](), ref.flatten_params(start), configs.problem_grad_numpy, 40
    )
    ours = ref.flatten_params(jax.tree.map(np.asarray, results[name][0]))
    moved = max(np.max(np.abs(expected[k] - ref.flatten_params(start)[k])) for k in expected)
    assert moved > 1e-3, "the run must move θ"
    for k in expected:
        error = np.max(np.abs(ours[k] - expected[k])) / np.max(np.abs(expected[k]))
        assert error <= 1e-10, (name, k, error)


def test_dadapt_first_step_in_closed_form():
    """t = 1: η̂ = d₀·η·√(1−β₂)/(1−β₁), m = (1−β₁)·η̂·g, v = (1−β₂)·g², s = 0 before the step so
    r = 0 and d stays d₀: u = −m/(√v + ε) − λ·η̂·θ."""
    g, theta = np.array([0.5, -3.0, 2e-3]), np.array([1.0, -2.0, 0.5])
    with jax.enable_x64(True):
        opt = dadapt_adamw(0.5, estim_lr0=1e-3, weight_decay=0.1)
        params = {"w": jnp.asarray(theta)}
        updates, state = opt.update({"w": jnp.asarray(g)}, opt.init(params), params)
    eta_hat = 1e-3 * 0.5 * np.sqrt(1 - 0.999) / (1 - 0.9)
    expected = -(0.1 * eta_hat * g) / (np.sqrt(0.001) * np.abs(g) + 1e-8) - 0.1 * eta_hat * theta
    np.testing.assert_allclose(np.asarray(updates["w"]), expected, rtol=1e-12)
    assert float(state.estim_lr) == pytest.approx(1e-3, rel=1e-15)


def test_dadapt_zero_first_gradient_keeps_d_finite():
    """Σ|s| = 0 after an all-zero gradient: d stays d₀ (optax divides by 0 and gets NaN)."""
    opt = dadapt_adamw()
    params = {"w": jnp.ones(3)}
    updates, state = opt.update({"w": jnp.zeros(3)}, opt.init(params), params)
    assert float(state.estim_lr) == pytest.approx(1e-6)
    np.testing.assert_array_equal(np.asarray(updates["w"]), np.zeros(3))


def test_mechanic_first_step_is_s_init_times_the_base_step():
    """At the first step θ = θ₀: Δ = 0, h = 0, so m = ε, v = 0, r = 0 and each sᵢ =
    (s_init/n)·ε/ε: S' = s_init and θ' = θ₀ − S'·(0 − u) = θ + s_init·u."""
    g, theta = np.array([0.5, -3.0, 2e-3]), np.array([1.0, -2.0, 0.5])
    with jax.enable_x64(True):
        opt = mechanize(optim.sgd(0.1), s_init=1e-3, num_betas=4)
        params = {"w": jnp.asarray(theta)}
        updates, state = opt.update({"w": jnp.asarray(g)}, opt.init(params), params)
    # u = θ' − θ is formed from θ' ≈ θ: exact up to θ's own rounding (≤ 1e-15 absolute).
    np.testing.assert_allclose(np.asarray(updates["w"]), 1e-3 * (-0.1 * g), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(state.s), np.full(4, 1e-3 / 4), rtol=1e-12)


def test_mechanic_passes_the_loss_to_its_base_optimizer():
    """mechanize(polyak_sgd()) works only if `value` reaches the base optimizer."""
    opt = mechanize(optim.polyak_sgd())
    with jax.enable_x64(True):
        params = {"w": jnp.ones(2)}
        state = opt.init(params)
        updates, _ = opt.update({"w": jnp.ones(2)}, state, params, value=jnp.asarray(2.0))
        # Polyak: γ = min(f/‖g‖², 1) = 1, u = −g; Mechanic's first step is s_init·u.
        np.testing.assert_allclose(np.asarray(updates["w"]), -1e-6 * np.ones(2), rtol=1e-9)
        with pytest.raises(ValueError, match="value"):
            opt.update({"w": jnp.ones(2)}, state, params)


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: dadapt_adamw(betas=(1.0, 0.999)), ValueError, "betas"),
        (lambda: dadapt_adamw(betas=0.9), TypeError, "betas"),
        (lambda: dadapt_adamw(estim_lr0=0.0), ValueError, "estim_lr0"),
        (lambda: dadapt_adamw(eps=-1.0), ValueError, "eps"),
        (lambda: dadapt_adamw(weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: dadapt_adamw(learning_rate=-1.0), ValueError, "learning_rate"),
        (lambda: mechanize(optim.sgd), TypeError, "base_optimizer"),
        (lambda: mechanize(optim.sgd(1.0), weight_decay=-1.0), ValueError, "weight_decay"),
        (lambda: mechanize(optim.sgd(1.0), s_init=0.0), ValueError, "s_init"),
        (lambda: mechanize(optim.sgd(1.0), eps=-1.0), ValueError, "eps"),
        (lambda: mechanize(optim.sgd(1.0), num_betas=0), ValueError, "num_betas"),
        (lambda: mechanize(optim.sgd(1.0), num_betas=2.0), ValueError, "num_betas"),
    ],
)
def test_dadapt_and_mechanic_refuse_bad_settings(build, error, message):
    with pytest.raises(error, match=message):
        build()


@pytest.mark.parametrize("build", [dadapt_adamw, lambda: mechanize(optim.adam(1e-2))])
def test_dadapt_and_mechanic_need_the_params(build):
    opt = build()
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="params"):
        opt.update(params, opt.init(params))


@pytest.mark.parametrize("build", [dadapt_adamw, lambda: mechanize(optim.adam(1e-2))])
def test_dadapt_and_mechanic_keeps_float32_under_x64_and_bf16_leaves(build):
    """Buffers keep each leaf's dtype (scalars at least float32); updates keep g's dtype."""
    for dtype, x64 in ((jnp.float32, True), (jnp.bfloat16, False)):
        with jax.enable_x64(x64):
            params = {"w": jnp.ones((3,), dtype)}
            opt = build()
            state = opt.init(params)
            updates, state = jax.jit(
                lambda g, s, p, opt=opt, dtype=dtype: opt.update(
                    g, s, p, value=jnp.asarray(1.0, dtype)
                )
            )(params, state, params)
            assert updates["w"].dtype == dtype
            floats = {
                x.dtype for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)
            }
            assert floats <= {jnp.dtype(dtype), jnp.dtype(jnp.float32)}, floats
