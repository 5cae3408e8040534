"""Prodigy (funcnn/optim/parameter_free.py) against its float64 transcription in
`funcnn.reference.optim`, with defaults and with non-default flags, and its validation."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.optim import schedules
from funcnn.optim.parameter_free import prodigy
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
