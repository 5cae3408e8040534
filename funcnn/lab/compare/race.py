"""The optimizer race: 33 optimizers, the same problems, the same initialization.

Every optimizer runs full-batch (deterministic) gradient descent on each problem,

    θ₀ fixed per problem;   gₖ = ∇f(θₖ);   θₖ₊₁ = θₖ + update(gₖ)      k = 0 … N−1

for every learning rate of one shared grid, and reports its best run: the fewest steps
to reach the problem's target loss (ties and misses broken by the final loss). All learning
rates of one optimizer run in a single compiled program (`vmap` over η of a `lax.scan` over
steps); η enters as a traced scalar through a schedule, so nothing recompiles per η.
A schedule-free optimizer is scored at its averaged point x (`schedule_free_eval_params`),
where its model is meant to be evaluated, not at the gradient point y.

Every update receives optax's extra arguments — `value` = f(θₖ), `grad` = gₖ, `value_fn` = f
and `grad_fn(θ, i)` = ∇f(θ) — which the line searches (`lbfgs`, `torch_lbfgs`), Polyak's
step and SAM's opaque mode read and every other optimizer ignores. The optimizers that set
their own step (`RUN_ONCE`: the parameter-free ones, the line searches and Polyak's step)
run once, at their default η = 1, instead of over the grid.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import datasets, losses, nn, optim
from funcnn.lab import optimizers
from funcnn.optim.base import GradientTransformation, optimizer_step

__all__ = [
    "LEARNING_RATES",
    "PROBLEMS",
    "RACE_OPTIMIZERS",
    "RUN_ONCE",
    "Problem",
    "RaceResult",
    "logistic_spam",
    "mlp_digits",
    "plot_race",
    "quadratic",
    "race_all",
    "race_one",
    "rosenbrock",
    "steps_to_target",
    "trajectory_fn",
]

Array = jax.Array
Params = Any
LossFn = Callable[[Params], Array]
OptimizerFactory = Callable[[optim.Schedule], GradientTransformation]

# One shared grid, half a decade apart: the same budget of tuning for every optimizer.
LEARNING_RATES: tuple[float, ...] = tuple(float(x) for x in np.logspace(-4, 0.5, 10))


# Decoupled weight decay in the race: AdamW's (and Muon's AdamW part's) λ = 1e-3; the
# others race without decay.
RACE_WEIGHT_DECAY: dict[str, float] = {"adamw": 1e-3, "muon": 1e-3}


def _racer(name: str) -> OptimizerFactory:
    weight_decay = RACE_WEIGHT_DECAY.get(name, 0.0)
    return lambda lr: optimizers.optimizer(name, lr, weight_decay=weight_decay)


# Every optimizer of `funcnn.lab.optimizers` at its standard hyperparameters; only the
# learning rate is swept (for Adafactor η is the cap of the relative step ρₜ = min(η, 1/√t)).
RACE_OPTIMIZERS: dict[str, OptimizerFactory] = {name: _racer(name) for name in optimizers.NAMES}

# The optimizers only optax has (issue 22) and torch's LBFGS, each at its peer's defaults
# with η swept (adamaxw keeps optax's λ = 1e-4). SAM runs in opaque mode, one whole cycle
# (an ascent of ρ = 0.05 along ĝ, then the outer step) per update, around SGD with
# heavy-ball momentum 0.9, the paper's base optimizer. torch_lbfgs runs one iteration per
# update (max_iter = 1, up to 25 evaluations in its strong-Wolfe search), so that a race
# step is one quasi-Newton iteration, as optax's lbfgs takes; torch's default of 20
# iterations per `step` would hide 20 steps in one.
RACE_OPTIMIZERS.update(
    {
        "adabelief": lambda lr: optim.adabelief(lr),
        "yogi": lambda lr: optim.yogi(lr),
        "adan": lambda lr: optim.adan(lr),
        "novograd": lambda lr: optim.novograd(lr),
        "adopt": lambda lr: optim.adopt(lr),
        "ademamix": lambda lr: optim.ademamix(lr),
        "simplified_ademamix": lambda lr: optim.simplified_ademamix(lr),
        "adamaxw": lambda lr: optim.adamaxw(lr),
        "lars": lambda lr: optim.lars(lr),
        "sign_sgd": lambda lr: optim.sign_sgd(lr),
        "signum": lambda lr: optim.signum(lr),
        "optimistic_gradient_descent": lambda lr: optim.optimistic_gradient_descent(lr),
        "fromage": lambda lr: optim.fromage(lr),
        "madgrad": lambda lr: optim.madgrad(lr),
        # optim.sm3 takes a constant η (as optax's); the same chain with η from a schedule
        "sm3": lambda lr: optim.chain(optim.scale_by_sm3(0.9), optim.scale_by_learning_rate(lr)),
        "noisy_sgd": lambda lr: optim.noisy_sgd(lr),
        "sam": lambda lr: optim.sam(
            optim.sgd(lr, momentum=0.9),
            optim.chain(optim.normalize(), optim.scale(-0.05)),
            opaque_mode=True,
        ),
        "dog": lambda lr: optim.dog(lr),
        "dowg": lambda lr: optim.dowg(lr),
        "cocob": lambda lr: optim.cocob(lr),
        "prodigy": lambda lr: optim.prodigy(lr),
        "polyak_sgd": lambda lr: optim.polyak_sgd(scaling=lr),
        "lbfgs": lambda lr: optim.lbfgs(lr),
        "torch_lbfgs": lambda lr: optim.torch_lbfgs(
            lr, max_iter=1, max_eval=25, line_search_fn="strong_wolfe"
        ),
    }
)

RUN_ONCE: frozenset[str] = frozenset(
    {"dog", "dowg", "cocob", "prodigy", "polyak_sgd", "lbfgs", "torch_lbfgs"}
)
"""Racers that choose their own step size: run once at η = 1 (each one's default: the
multiplier of DoG's, DoWG's, COCOB's and Prodigy's step, Polyak's `scaling`, the line
searches' initial step), not over the grid, where η would only rescale what they adapt."""


class Problem(NamedTuple):
    """A full-batch minimization problem: f, θ₀, a target loss and a step budget."""

    name: str
    loss: LossFn
    init: Params
    target: float
    steps: int
    description: str


class RaceResult(NamedTuple):
    """One optimizer's best run on one problem (its learning rate chosen from the grid)."""

    problem: str
    optimizer: str
    learning_rate: float
    steps_to_target: int | None  # first k with f(θⱼ) ≤ target for all j ≥ k; None if never
    final_loss: float  # f(θ_N); inf if the run diverged
    wall_time: float  # seconds per run of N compiled steps (sweep time / grid size)
    curve: np.ndarray  # (N + 1,) f(θ₀) … f(θ_N)
    swept: bool = True  # False: run once at its default η (RUN_ONCE)


# ------------------------------------------------------------------------------ problems


def quadratic(dim: int = 20, condition: float = 1e3, *, seed: int = 0) -> Problem:
    """f(x) = ½·xᵀAx with A = Q·diag(λ)·Qᵀ, λ log-spaced in [1, κ], Q a random rotation.

    The minimum is f(0) = 0. The rotation keeps the axes of A off the coordinate axes, so
    per-coordinate scaling (RMSProp, Adam) cannot precondition it exactly. Plain gradient
    descent needs η < 2/κ for stability and then shrinks the λ = 1 direction by only
    (1 − η) per step; heavy-ball momentum contracts at about (√κ − 1)/(√κ + 1).
    The target 1e-3 is ~1e-6 of f(x₀): the slow directions must be solved too.
    """
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eigenvalues = np.logspace(0, np.log10(condition), dim)
    a = jnp.asarray((q * eigenvalues) @ q.T, jnp.float32)  # (dim, dim)
    x0 = jnp.asarray(rng.normal(size=dim), jnp.float32)  # (dim,)

    def loss(params):
        x = params["x"]
        return 0.5 * x @ (a @ x)

    return Problem(
        "quadratic", loss, {"x": x0}, 1e-3, 1000, f"½xᵀAx, d={dim}, cond(A)={condition:g}"
    )


def rosenbrock(*, steps: int = 3000) -> Problem:
    """f(x, y) = (1 − x)² + 100·(y − x²)², from the classic start (−1.2, 1); minimum f(1, 1) = 0."""

    def loss(params):
        x, y = params["xy"][0], params["xy"][1]
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    init = {"xy": jnp.asarray([-1.2, 1.0], jnp.float32)}
    return Problem("rosenbrock", loss, init, 1e-4, steps, "(1−x)² + 100(y−x²)², start (−1.2, 1)")


def logistic_spam(*, steps: int = 300, seed: int = 0) -> Problem:
    """Logistic regression p = σ(x·w + b) on the spam task's training split, mean BCE.

    x: (N, vocab) standardized word counts; w: (vocab, 1) and b: (1,) start at zero.
    Convex and, with standardized features, well conditioned: the minimum is ≈ 0.290, and
    the target 0.295 asks for the last 2% of the way from ln 2 = 0.693.
    """
    task = datasets.spam(seed=seed)
    x, y = jnp.asarray(task.x_train), jnp.asarray(task.y_train)  # (N, V), (N, 1)
    init = {"w": jnp.zeros((x.shape[1], 1), jnp.float32), "b": jnp.zeros((1,), jnp.float32)}

    def loss(params):
        logits = x @ params["w"] + params["b"]  # (N, 1)
        return losses.binary_cross_entropy_with_logits(logits, y)

    return Problem("logistic_spam", loss, init, 0.295, steps, f"σ(xw+b), BCE, {x.shape} train")


def mlp_digits(*, hidden: int = 32, steps: int = 300, seed: int = 0) -> Problem:
    """An MLP 64 → hidden → 10 (ReLU) on the digits training split, mean cross-entropy.

    Full batch, so the network can interpolate the 1437 training images: the target 1e-3
    means "fits the training set", which plain SGD does not reach in 300 steps.
    """
    task = datasets.digits(seed=seed)
    x, y = jnp.asarray(task.x_train), jnp.asarray(task.y_train)  # (N, 64), (N,)
    model = nn.mlp([x.shape[1], hidden, task.num_outputs])
    init, _ = model.init(jax.random.PRNGKey(seed), (-1, x.shape[1]))

    def loss(params):
        return losses.cross_entropy(model.apply(params, x), y)

    return Problem(
        "mlp_digits", loss, init, 1e-3, steps, f"MLP [64, {hidden}, 10], CE, {x.shape[0]} train"
    )


PROBLEMS: dict[str, Callable[[], Problem]] = {
    "quadratic": quadratic,
    "rosenbrock": rosenbrock,
    "logistic_spam": logistic_spam,
    "mlp_digits": mlp_digits,
}


# ------------------------------------------------------------------------------- running


def _is_schedule_free(state: Any) -> bool:
    leaves = jax.tree.leaves(state, is_leaf=lambda s: isinstance(s, optim.ScheduleFreeState))
    return any(isinstance(s, optim.ScheduleFreeState) for s in leaves)


def trajectory_fn(
    problem: Problem, make_optimizer: OptimizerFactory, *, evaluate_at_x: bool = True
) -> Callable[[Array], Array]:
    """`run(η) -> (N + 1,)` losses f(θ₀) … f(θ_N) of N full-batch steps at learning rate η.

    η is a traced scalar fed through a schedule, so one compiled program serves every η.
    For a schedule-free optimizer (its state holds a `ScheduleFreeState`) and
    `evaluate_at_x=True` the losses are f(xₖ) at the averaged points (one extra forward
    pass per step); otherwise f at the params the loop holds.
    """

    def run(learning_rate: Array) -> Array:
        optimizer = make_optimizer(lambda step: learning_rate)
        value_and_grad = jax.value_and_grad(problem.loss)
        grad = jax.grad(problem.loss)
        state0 = optimizer.init(problem.init)
        at_x = evaluate_at_x and _is_schedule_free(state0)

        def evaluate(params, state):
            return problem.loss(optim.schedule_free_eval_params(params, state))

        def step(carry, _):
            params, state = carry
            loss, grads = value_and_grad(params)
            extra = dict(
                value=loss, grad=grads, value_fn=problem.loss, grad_fn=lambda p, i: grad(p)
            )
            if at_x:
                loss = evaluate(params, state)
            return optimizer_step(optimizer, grads, state, params, **extra), loss

        (params, state), losses = jax.lax.scan(
            step, (problem.init, state0), None, length=problem.steps
        )
        final = evaluate(params, state) if at_x else problem.loss(params)
        return jnp.concatenate([losses, final[None]])

    return run


def steps_to_target(curve: np.ndarray, target: float) -> int | None:
    """The first k after which the loss stays at or below target: f(θⱼ) ≤ target ∀ j ≥ k.

    "Stays" matters: a run that touches the target and bounces back (too large an η for
    Adam on a quadratic) has not reached it. NaN never counts as reached. None if never.
    """
    above = np.flatnonzero(~(curve <= target))
    k = int(above[-1]) + 1 if above.size else 0
    return k if k < len(curve) else None


def _best_index(curves: np.ndarray, target: float) -> int:
    """Fewest steps to target; among runs that never reach it, the lowest final loss."""
    finals = np.where(np.isfinite(curves[:, -1]), curves[:, -1], np.inf)
    reached = [steps_to_target(c, target) for c in curves]
    keys = [(np.inf if r is None else r, f) for r, f in zip(reached, finals, strict=True)]
    return min(range(len(keys)), key=keys.__getitem__)


def race_one(
    problem: Problem,
    name: str,
    make_optimizer: OptimizerFactory,
    learning_rates: Sequence[float] = LEARNING_RATES,
) -> RaceResult:
    """Sweep η over `learning_rates` in one vmapped program and keep the best run (a
    `RUN_ONCE` name runs once, at η = 1).

    The wall time is the sweep's execution time (compile excluded) divided by the number
    of learning rates: the cost of one run of N steps, equal for every η.
    """
    swept = name not in RUN_ONCE
    if not swept:
        learning_rates = (1.0,)
    grid = jnp.asarray(learning_rates, jnp.float32)
    sweep = jax.jit(jax.vmap(trajectory_fn(problem, make_optimizer))).lower(grid).compile()
    start = time.perf_counter()
    curves = np.asarray(jax.block_until_ready(sweep(grid)), np.float64)  # (n_lr, N + 1)
    wall_time = (time.perf_counter() - start) / len(learning_rates)
    best = _best_index(curves, problem.target)
    curve = curves[best]
    final = float(curve[-1]) if np.isfinite(curve[-1]) else float("inf")
    return RaceResult(
        problem.name,
        name,
        float(learning_rates[best]),
        steps_to_target(curve, problem.target),
        final,
        wall_time,
        curve,
        swept,
    )


def race_all(
    problem: Problem,
    optimizers: dict[str, OptimizerFactory] | None = None,
    learning_rates: Sequence[float] = LEARNING_RATES,
) -> list[RaceResult]:
    """`race_one` for every optimizer (default: `RACE_OPTIMIZERS`) on one problem."""
    optimizers = RACE_OPTIMIZERS if optimizers is None else optimizers
    return [race_one(problem, n, f, learning_rates) for n, f in optimizers.items()]


def plot_race(results: Sequence[RaceResult], problem: Problem, path: str) -> str:
    """Loss curves of each optimizer's best run, log scale, with the target as a dashed line."""
    from funcnn.lab.plotting import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        curve = np.where(np.isfinite(r.curve), r.curve, np.nan)
        ax.plot(np.maximum(curve, 1e-12), label=f"{r.optimizer} (η={r.learning_rate:.2g})")
    ax.axhline(problem.target, color="gray", linestyle="--", linewidth=1, label="target")
    ax.set(
        yscale="log", xlabel="step", ylabel="loss", title=f"{problem.name}: {problem.description}"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
