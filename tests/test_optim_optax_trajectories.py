"""funcnn's optax-named optimizers against optax's own trajectories, step for step in float64.

The fixture (tests/fixtures/optax/) was written by benchmarks/oracles/optax_trajectories.py
with optax itself; this test never imports optax. Each case is one call, spelled the same in
both libraries (`{"call": name, "args": [...], "kwargs": {...}}`), run on the registry's
problem from `registry.problem_params(0)` with `value=f(θ)` passed to every update. The
signatures recorded there (parameter names in order, keyword-only ones, defaults) must be
funcnn's too, so an optax user's call works unchanged.
"""

import inspect
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim
from funcnn.verify import registry

FIXTURE = Path(__file__).parent / "fixtures" / "optax"
RECORD = json.loads((FIXTURE / "cases.json").read_text())
TRAJECTORIES = dict(np.load(FIXTURE / "trajectories.npz"))
TOL = 1e-12  # measured ≤ 5e-16 (optax 0.2.8); float64 round-off, a few steps amplified


def _build(node):
    if isinstance(node, dict) and "call" in node:
        args = [_build(a) for a in node.get("args", [])]
        kwargs = {k: _build(v) for k, v in node["kwargs"].items()}
        return getattr(optim, node["call"])(*args, **kwargs)
    return node


def _flat(params) -> jax.Array:
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(params)])


@pytest.fixture(scope="module")
def ours():
    """θ after each step for every case, all cases in one jitted program (a scan each)."""
    steps = RECORD["steps"]
    with jax.enable_x64(True):
        start = jax.tree.map(jnp.asarray, registry.problem_params(0))
        np.testing.assert_array_equal(np.asarray(_flat(start)), TRAJECTORIES["start"])
        optimizers = {name: _build(case["opt"]) for name, case in RECORD["cases"].items()}

        def run_one(opt, shift):
            def loss(p):
                return registry.problem_loss(p) + shift

            def body(carry, _):
                params, state = carry
                value, grad = jax.value_and_grad(loss)(params)
                params, state = optim.optimizer_step(opt, grad, state, params, value=value)
                return (params, state), _flat(params)

            _, rows = jax.lax.scan(body, (start, opt.init(start)), length=steps)
            return rows

        @jax.jit
        def run_all():
            return {
                name: run_one(opt, RECORD["cases"][name].get("shift", 0.0))
                for name, opt in optimizers.items()
            }

        return jax.tree.map(np.asarray, run_all())


@pytest.mark.parametrize("name", sorted(RECORD["cases"]))
def test_each_case_follows_optax_step_for_step(name, ours):
    theirs = TRAJECTORIES[name]
    assert np.max(np.abs(theirs[-1] - TRAJECTORIES["start"])) > 1e-3, "the case must move θ"
    error = np.max(np.abs(ours[name] - theirs)) / np.max(np.abs(theirs))
    assert error <= TOL, f"{name}: max relative difference from optax {error:.2e}"


def _as_json(value):
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("name", sorted(RECORD["signatures"]))
def test_signature_is_optax_s(name):
    expected = RECORD["signatures"][name]
    parameters = inspect.signature(getattr(optim, name)).parameters
    assert list(parameters) == expected["parameters"]
    assert [k for k, p in parameters.items() if p.kind is p.KEYWORD_ONLY] == expected[
        "keyword_only"
    ]
    defaults = {
        k: _as_json(p.default)
        for k, p in parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    assert defaults == expected["defaults"]


def test_the_fixture_is_optax_0_2_8_and_holds_every_new_optimizer():
    assert RECORD["optax_version"] == "0.2.8"
    called = {case["opt"]["call"] for case in RECORD["cases"].values()}
    assert {"optimistic_adam", "dadapt_adamw", "mechanize", "momo", "momo_adam"} <= called
