"""optax's own trajectories for funcnn's optax-named optimizers, written as a test fixture.

    python benchmarks/oracles/optax_trajectories.py      # needs the `bench` extra (optax)

Runs each case below with optax (0.2.8) in float64 for `STEPS` steps on the registry's test
problem (`funcnn.verify.registry.problem_loss`, plus a constant `shift` where a case wants
the loss above MoMo's default lower bound 0), from `registry.problem_params(0)`, passing
`value=f(θ)` to every update. Writes

    tests/fixtures/optax/trajectories.npz   θ after each step, per case: (STEPS, 30) float64,
                                            leaves flattened in jax.tree.leaves order
    tests/fixtures/optax/cases.json         each case's call (names and arguments, the same
                                            on both sides), optax's version, and each
                                            function's signature in optax (parameter names
                                            in order, keyword-only ones, defaults)

and prints funcnn's agreement with them. `tests/test_optim_optax_trajectories.py` reads the
fixture (never optax) and holds funcnn to it. A case is `{"call": name, "kwargs": {...}}`:
the same name is looked up in `funcnn.optim` and in `optax` (or `optax.contrib`), so an
argument name that differs between them fails here; an argument that is itself a call (a
schedule, a base optimizer) is written the same way.
"""

from __future__ import annotations

import inspect
import json
import sys
import warnings
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import optax.contrib  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from funcnn import optim  # noqa: E402
from funcnn.verify import registry  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "optax"
STEPS = 40


def call(name: str, *args, **kwargs):
    """A call written once for both sides; `args` only where optax passes one positionally
    (mechanize's base optimizer)."""
    return (
        {"call": name, "args": list(args), "kwargs": kwargs}
        if args
        else {"call": name, "kwargs": kwargs}
    )


CASES = {
    "optimistic_adam": {"opt": call("optimistic_adam", learning_rate=1e-2)},
    "optimistic_adam_flags": {
        "opt": call(
            "optimistic_adam",
            learning_rate=1e-2,
            optimism=0.5,
            b1=0.8,
            b2=0.99,
            eps=1e-6,
            eps_root=1e-8,
            nesterov=False,
        )
    },
    "optimistic_adam_v2_schedule": {
        "opt": call(
            "optimistic_adam_v2",
            learning_rate=call("cosine_decay_schedule", init_value=1e-2, decay_steps=40, alpha=0.1),
            alpha=0.5,
            beta=2.0,
        )
    },
    "dadapt_adamw": {"opt": call("dadapt_adamw")},
    # A constant multiplier: optax's linear_schedule computes in float32 even under x64 (its
    # values are 3e-8 off), which D-Adaptation's growing d amplifies to 1e-8 in 40 steps.
    "dadapt_adamw_flags": {
        "opt": call(
            "dadapt_adamw",
            learning_rate=0.5,
            betas=[0.8, 0.99],
            eps=1e-6,
            estim_lr0=1e-5,
            weight_decay=0.1,
        )
    },
    "mechanize_adam": {"opt": call("mechanize", call("adam", learning_rate=1e-2))},
    "mechanize_sgd_flags": {
        "opt": call(
            "mechanize",
            call("sgd", learning_rate=1e-2, momentum=0.9),
            weight_decay=0.1,
            eps=1e-6,
            s_init=1e-4,
            num_betas=3,
        )
    },
    # f(θ₀) ≈ −9.3 on the registry problem: shifted by 20, MoMo's default f* = 0 is below it.
    "momo": {"opt": call("momo"), "shift": 20.0},
    "momo_flags": {
        "opt": call(
            "momo",
            learning_rate=0.1,
            beta=0.8,
            lower_bound=-50.0,
            weight_decay=0.1,
            adapt_lower_bound=True,
        )
    },
    "momo_adam": {"opt": call("momo_adam"), "shift": 20.0},
    "momo_adam_flags": {
        "opt": call(
            "momo_adam",
            learning_rate=0.1,
            b1=0.8,
            b2=0.99,
            eps=1e-6,
            lower_bound=-50.0,
            weight_decay=0.1,
            adapt_lower_bound=True,
        )
    },
}
SIGNATURES_OF = [
    "optimistic_adam",
    "optimistic_adam_v2",
    "dadapt_adamw",
    "mechanize",
    "momo",
    "momo_adam",
]


def optax_function(name: str):
    for home in (optax, optax.contrib):
        if hasattr(home, name):
            return getattr(home, name)
    raise AttributeError(f"optax {optax.__version__} has no {name}")


def build(node, lookup):
    """A case's call tree built with `lookup(name)` (funcnn.optim or optax)."""
    if isinstance(node, dict) and "call" in node:
        args = [build(a, lookup) for a in node.get("args", [])]
        kwargs = {k: build(v, lookup) for k, v in node["kwargs"].items()}
        return lookup(node["call"])(*args, **kwargs)
    return node


def trajectory(opt, apply, shift: float) -> np.ndarray:
    params = jax.tree.map(jnp.asarray, registry.problem_params(0))

    def loss(p):
        return registry.problem_loss(p) + shift

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grad, state, params, value=value)
        return apply(params, updates), state

    state, rows = opt.init(params), []
    for _ in range(STEPS):
        params, state = step(params, state)
        rows.append(np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(params)]))
    return np.stack(rows)


def _json_default(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_json_default(v) for v in value]
    return repr(value)


def optax_signature(name: str) -> dict:
    """optax's parameter names in order, which of them are keyword-only, and the defaults."""
    parameters = inspect.signature(optax_function(name)).parameters
    return {
        "parameters": list(parameters),
        "keyword_only": [k for k, p in parameters.items() if p.kind is p.KEYWORD_ONLY],
        "defaults": {
            k: _json_default(p.default)
            for k, p in parameters.items()
            if p.default is not inspect.Parameter.empty
        },
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    arrays, rows = {}, []
    start = np.concatenate([np.ravel(x) for x in jax.tree.leaves(registry.problem_params(0))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # optimistic_adam → its v2
        for name, case in CASES.items():
            shift = case.get("shift", 0.0)
            theirs = trajectory(build(case["opt"], optax_function), optax.apply_updates, shift)
            ours = trajectory(
                build(case["opt"], lambda n: getattr(optim, n)), optim.apply_updates, shift
            )
            arrays[name] = theirs
            worst = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
            moved = float(np.max(np.abs(theirs[-1] - start)))
            rows.append((name, worst, moved))
    arrays["start"] = start
    np.savez(OUT / "trajectories.npz", **arrays)
    record = {
        "optax_version": optax.__version__,
        "steps": STEPS,
        "cases": CASES,
        "signatures": {name: optax_signature(name) for name in SIGNATURES_OF},
        "agreement": {name: worst for name, worst, _ in rows},
    }
    (OUT / "cases.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"## funcnn vs optax {optax.__version__}, float64, {STEPS} steps (registry problem)")
    print("| case | max over steps of ‖θ − θ_optax‖∞/‖θ_optax‖∞ | optax's θ moved (∞-norm) |")
    print("|---|---|---|")
    for name, worst, moved in rows:
        print(f"| {name} | {worst:.2e} | {moved:.3g} |")


if __name__ == "__main__":
    main()
