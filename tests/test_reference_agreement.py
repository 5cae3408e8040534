"""Every registered optimizer configuration against its float64 NumPy transcription.

Each configuration runs 500 steps on a 3-leaf nonconvex problem whose gradient depends on the
current params (`funcnn.verify.registry`); all configurations of one dtype compile as a single
jitted program. float64 (x64) must agree to 1e-10, float32 to 1e-5 (relative, ∞-norm per
leaf). Deliberately perturbed optimizers show the comparison can fail.
"""

import jax
import numpy as np
import pytest

from funcnn import optim
from funcnn.reference import optim as ref
from funcnn.verify import registry, runner

NUM_STEPS = 500
TOL = {"float64": 1e-10, "float32": 1e-5}
_WARMUP_COSINE = dict(init_value=0.0, peak_value=3e-2, warmup_steps=50, decay_steps=400)


def _shifted_by_one(schedule):
    """The classic off-by-one: using schedule(t + 1) where schedule(t) is due."""
    return lambda step: schedule(step + 1)


class _AdamCountingFromTwo(ref.Adam):
    """A wrong reference: the step counter starts one update late (t = 2 at the first)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.t = 1


# Each is wrong by a little; the agreement check must notice every one of them (in the
# dtypes listed: a 1e-8 relative change per step is below float32 resolution).
PERTURBED = {
    "perturbed_scale_1e-8": registry.OptimizerConfig(
        lambda: optim.chain(optim.adamw(1e-2), optim.scale(1 + 1e-8)),
        lambda: ref.AdamW(1e-2),
    ),
    "perturbed_scale_1e-4": registry.OptimizerConfig(
        lambda: optim.chain(optim.adamw(1e-2), optim.scale(1 + 1e-4)),
        lambda: ref.AdamW(1e-2),
    ),
    "perturbed_schedule_off_by_one": registry.OptimizerConfig(
        lambda: optim.adamw(_shifted_by_one(optim.warmup_cosine_decay(**_WARMUP_COSINE))),
        lambda: ref.AdamW(ref.schedule_warmup_cosine_decay(**_WARMUP_COSINE)),
    ),
    "perturbed_bias_correction_step": registry.OptimizerConfig(
        lambda: optim.adam(1e-2), lambda: _AdamCountingFromTwo(1e-2)
    ),
}
DETECTABLE = {
    "float64": list(PERTURBED),
    "float32": [name for name in PERTURBED if name != "perturbed_scale_1e-8"],
}


@pytest.fixture(scope="module", params=["float64", "float32"])
def results(request):
    dtype = request.param
    with jax.enable_x64(dtype == "float64"):
        comparisons = runner.compare_all(
            {**registry.CONFIGS, **PERTURBED}, num_steps=NUM_STEPS, dtype=dtype
        )
    return dtype, comparisons


@pytest.mark.parametrize("name", list(registry.CONFIGS))
def test_matches_reference(results, name):
    dtype, comparisons = results
    result = comparisons[name]
    assert result.max_rel_error <= TOL[dtype], (
        f"{name} ({dtype}): max relative error {result.max_rel_error:.3e} > {TOL[dtype]:.0e}"
    )
    # The learning rate readable from the state is the one the reference used.
    assert result.max_lr_error <= TOL[dtype]


def test_perturbed_updates_are_detected(results):
    dtype, comparisons = results
    for name in DETECTABLE[dtype]:
        result = comparisons[name]
        error = max(result.max_rel_error, result.max_lr_error)
        assert error > TOL[dtype], f"{name} ({dtype}) went undetected: error {error:.3e}"


def test_problem_gradient_matches_jax_grad():
    """The hand-written NumPy gradient and jax.grad of the JAX loss describe one function."""
    with jax.enable_x64(True):
        params = registry.problem_params(seed=3)
        ours = ref.flatten_params(jax.tree.map(np.asarray, jax.grad(registry.problem_loss)(params)))
    theirs = registry.problem_grad_numpy(ref.flatten_params(params))
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-13, atol=1e-13)


def test_problem_loss_numpy_matches_the_jax_loss():
    """The NumPy loss (the `value` MoMo's reference reads) and the JAX loss are one function."""
    with jax.enable_x64(True):
        params = registry.problem_params(seed=3)
        ours = float(registry.problem_loss(params))
    assert registry.problem_loss_numpy(ref.flatten_params(params)) == pytest.approx(ours, rel=1e-14)


def test_problem_gradient_has_no_stationary_point():
    """The drift term keeps every gradient entry ≥ a − 1 − 2c·n > 0 (see problem_loss)."""
    n = sum(int(np.prod(s)) for group in registry.PROBLEM_SHAPES.values() for s in group.values())
    assert registry.DRIFT - 1 - 2 * registry.COUPLING * n > 0
