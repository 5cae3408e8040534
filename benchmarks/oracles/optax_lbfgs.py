"""funcnn's optax-named optimizers against optax itself, step for step, in float64.

    python benchmarks/oracles/optax_lbfgs.py            # needs the `bench` extra (optax)
    python benchmarks/oracles/optax_lbfgs.py --steps 50

1. `lbfgs` (memory 10, zoom line search, η₀ = 1) against `optax.lbfgs` on Rosenbrock (5-D),
   a quartic bowl and an ill-conditioned quadratic (κ = 10⁴): the largest relative
   difference of the iterates over the run, and the number of line-search evaluations.
2. Every other optax-named optimizer and stage against its optax namesake on the registry's
   nonconvex problem (`funcnn.verify.registry.problem_loss`): max ‖θ_funcnn − θ_optax‖∞/‖θ_optax‖∞
   over the steps. Polyak SGD and reduce-on-plateau get the loss value as `value`.
3. The race: steps for L-BFGS and for Adam (η ∈ {1e-3, 1e-2, 1e-1}) to bring f below 1e-10.

Only this script imports optax; the library and its tests never do.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib

from funcnn import optim
from funcnn.optim import aliases_optax as ox
from funcnn.optim import line_search
from funcnn.optim.clipping_per_unit import adaptive_grad_clip
from funcnn.optim.normalize import centralize, normalize_by_update_norm
from funcnn.optim.parameter_free import prodigy
from funcnn.optim.plateau import reduce_on_plateau
from funcnn.optim.polyak import polyak_sgd
from funcnn.optim.slow_weights import ema
from funcnn.verify import registry as configs

jax.config.update("jax_enable_x64", True)


def rosenbrock(params):
    x = params["x"]
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


CENTER = jnp.array([1.0, -2.0, 0.5, 3.0, -1.5, 2.0])


def quartic(params):
    d = params["x"] - CENTER
    return 0.5 * jnp.sum(jnp.array([1.0, 3.0, 0.5, 10.0, 2.0, 0.2]) * d * d) + 0.1 * jnp.sum(d**4)


_Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((8, 8)))
HESSIAN = jnp.asarray(_Q @ np.diag(np.logspace(0, 4, 8)) @ _Q.T)


def ill_conditioned(params):
    """½(x − 1)ᵀQΛQᵀ(x − 1), κ = 10⁴ along rotated axes (axis-aligned would suit Adam)."""
    d = params["x"] - 1.0
    return 0.5 * d @ HESSIAN @ d


PROBLEMS = {
    "rosenbrock_5d": (rosenbrock, jnp.array([-1.2, 1.0, -0.5, 0.8, 1.3])),
    "quartic_6d": (quartic, jnp.array([3.0, 1.0, -2.0, 0.0, 2.0, -1.0])),
    "quadratic_kappa_1e4": (ill_conditioned, jnp.zeros(8)),
}


def _relative(a, b) -> float:
    a, b = (
        np.concatenate([np.ravel(x) for x in jax.tree.leaves(a)]),
        np.concatenate([np.ravel(x) for x in jax.tree.leaves(b)]),
    )
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def run(opt, loss, params, steps, apply, extras=True):
    """θ after each step and f before each, jitted once."""

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(loss)(params)
        kwargs = dict(value=value, grad=grad, value_fn=loss) if extras else {}
        updates, state = opt.update(grad, state, params, **kwargs)
        return apply(params, updates), state, value

    state, trajectory, values = opt.init(params), [], []
    for _ in range(steps):
        params, state, value = step(params, state)
        trajectory.append(params)
        values.append(float(value))
    return trajectory, np.array(values)


def lbfgs_against_optax(steps: int) -> None:
    print(f"## lbfgs vs optax.lbfgs, float64, {steps} steps")
    print("| problem | max rel. diff of θ over the run | f at the end (funcnn) |")
    print("|---|---|---|")
    for name, (loss, start) in PROBLEMS.items():
        ours, values = run(line_search.lbfgs(), loss, {"x": start}, steps, optim.apply_updates)
        theirs, _ = run(optax.lbfgs(), loss, {"x": start}, steps, optax.apply_updates)
        worst = max(_relative(a, b) for a, b in zip(ours, theirs, strict=True))
        print(f"| {name} | {worst:.2e} | {values[-1]:.2e} |")


def _decay2(params):
    return jax.tree.map(lambda x: x.ndim >= 2, params)


PAIRS = {
    "adabelief": (lambda: ox.adabelief(1e-2), lambda: optax.adabelief(1e-2)),
    "adabelief_nesterov_wd": (
        lambda: ox.adabelief(1e-2, weight_decay=0.1, nesterov=True),
        lambda: optax.adabelief(1e-2, weight_decay=0.1, nesterov=True),
    ),
    "adamaxw": (lambda: ox.adamaxw(1e-2), lambda: optax.adamaxw(1e-2)),
    "adan": (lambda: ox.adan(1e-2), lambda: optax.adan(1e-2)),
    "adan_wd": (
        lambda: ox.adan(1e-2, weight_decay=0.1),
        lambda: optax.adan(1e-2, weight_decay=0.1),
    ),
    "fromage": (lambda: ox.fromage(1e-2), lambda: optax.fromage(1e-2)),
    "lars": (lambda: ox.lars(1.0), lambda: optax.lars(1.0)),
    "lars_wd_nesterov": (
        lambda: ox.lars(0.5, 0.1, _decay2, 0.01, nesterov=True),
        lambda: optax.lars(0.5, 0.1, _decay2, 0.01, nesterov=True),
    ),
    "novograd": (lambda: ox.novograd(1e-2), lambda: optax.novograd(1e-2)),
    "novograd_wd": (
        lambda: ox.novograd(1e-2, weight_decay=0.1),
        lambda: optax.novograd(1e-2, weight_decay=0.1),
    ),
    "optimistic_gradient_descent": (
        lambda: ox.optimistic_gradient_descent(1e-2, 0.5, 2.0),
        lambda: optax.optimistic_gradient_descent(1e-2, 0.5, 2.0),
    ),
    "sign_sgd": (lambda: ox.sign_sgd(1e-2), lambda: optax.sign_sgd(1e-2)),
    "signum": (lambda: ox.signum(1e-2), lambda: optax.signum(1e-2)),
    "yogi": (lambda: ox.yogi(1e-2), lambda: optax.yogi(1e-2)),
    "adopt": (lambda: ox.adopt(1e-2), lambda: optax.contrib.adopt(1e-2)),
    "adopt_nesterov": (
        lambda: ox.adopt(1e-2, nesterov=True),
        lambda: optax.contrib.adopt(1e-2, nesterov=True),
    ),
    "ademamix": (lambda: ox.ademamix(1e-2), lambda: optax.contrib.ademamix(1e-2)),
    "simplified_ademamix": (
        lambda: ox.simplified_ademamix(1e-3, alpha=2.0),
        lambda: optax.contrib.simplified_ademamix(1e-3, alpha=2.0),
    ),
    "prodigy": (lambda: prodigy(), lambda: optax.contrib.prodigy()),
    "dog": (lambda: optim.dog(weight_decay=0.1), lambda: optax.contrib.dog(weight_decay=0.1)),
    "dowg": (lambda: optim.dowg(weight_decay=0.1), lambda: optax.contrib.dowg(weight_decay=0.1)),
    "madgrad": (lambda: optim.madgrad(1e-2), lambda: optax.contrib.madgrad(1e-2)),
    "sm3": (lambda: optim.sm3(1e-2), lambda: optax.sm3(1e-2)),
    "cocob": (lambda: optim.cocob(), lambda: optax.contrib.cocob()),
    "ema": (lambda: ema(0.9), lambda: optax.ema(0.9)),
    "sam": (
        lambda: optim.sam(optim.sgd(1e-2), optim.chain(optim.normalize(), optim.scale(-0.05))),
        lambda: optax.contrib.sam(
            optax.sgd(1e-2), optax.chain(optax.contrib.normalize(), optax.scale(-0.05))
        ),
    ),
    "adaptive_grad_clip": (lambda: adaptive_grad_clip(0.1), lambda: optax.adaptive_grad_clip(0.1)),
    "centralize": (lambda: centralize(), lambda: optax.centralize()),
    "normalize_by_update_norm": (
        lambda: normalize_by_update_norm(),
        lambda: optax.normalize_by_update_norm(),
    ),
}
VALUE_PAIRS = {
    "polyak_sgd": (lambda: polyak_sgd(0.1), lambda: optax.polyak_sgd(0.1)),
    "reduce_on_plateau": (
        lambda: optim.chain(optim.sgd(1e-2), reduce_on_plateau(patience=2, rtol=0.5)),
        lambda: optax.chain(optax.sgd(1e-2), optax.contrib.reduce_on_plateau(patience=2, rtol=0.5)),
    ),
}


def optimizers_against_optax(steps: int) -> None:
    print(f"\n## optax-named optimizers vs optax, float64, {steps} steps (registry problem)")
    print("| optimizer | max rel. diff of θ over the run |")
    print("|---|---|")
    start = jax.tree.map(jnp.asarray, configs.problem_params(0))
    loss = configs.problem_loss
    for name, (ours, theirs) in {**PAIRS, **VALUE_PAIRS}.items():
        extras = name in VALUE_PAIRS
        try:
            peer = theirs()
        except (TypeError, AttributeError) as error:  # an older optax lacks the option
            print(f"| {name} | n/a in optax {optax.__version__}: {error} |")
            continue
        a, _ = run(ours(), loss, start, steps, optim.apply_updates, extras)
        b, _ = run(peer, loss, start, steps, optax.apply_updates, extras)
        worst = max(_relative(x, y) for x, y in zip(a, b, strict=True))
        print(f"| {name} | {worst:.2e} |")


def race(max_steps: int = 2000) -> None:
    print("\n## race: steps until f < 1e-10 (float64)")
    rates = (1e-3, 1e-2, 1e-1)
    print("| problem | L-BFGS | " + " | ".join(f"Adam η = {r:g}" for r in rates) + " |")
    print("|---" * (2 + len(rates)) + "|")
    for name, (loss, start) in PROBLEMS.items():
        counts = []
        runs = [(line_search.lbfgs(), True)] + [(optim.adam(r), False) for r in rates]
        for opt, extras in runs:
            _, values = run(opt, loss, {"x": start}, max_steps, optim.apply_updates, extras)
            below = np.nonzero(values < 1e-10)[0]
            counts.append(str(int(below[0])) if below.size else f"> {max_steps}")
        print(f"| {name} | " + " | ".join(counts) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--race-steps", type=int, default=2000)
    args = parser.parse_args()
    lbfgs_against_optax(args.steps)
    optimizers_against_optax(args.steps)
    race(args.race_steps)


if __name__ == "__main__":
    main()
