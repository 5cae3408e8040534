"""Adam with L2 in the loss vs AdamW's decoupled weight decay, on a model that over-fits.

Both methods see the same data, model, initialization, learning rate η and λ:

    adam_l2:  ℓ(θ) + λ·½‖W‖²  minimized by Adam  →  g = ∇ℓ + λW enters m and v, so the
              decay is divided by √v̂ like the gradient:   W ← W − η·(m̂/(√v̂ + ε))
    adamw:    ℓ(θ) minimized by Adam, then W ← W − η·λ·W  (decoupled: not divided by √v̂)

W are the ≥2-D weights (`funcnn.params.decay_mask`); biases are never decayed.

What decoupling changes, seen most clearly on weights whose loss gradient is exactly zero
(here: first-layer rows of input pixels that are 0 in every training image). Under Adam+L2
their gradient is λW alone, Adam divides it by its own RMS |λW|, and the step is ≈ η·sign(W)
whatever λ > 0: they are driven to ~0 at a rate of η per step. Under AdamW they shrink
geometrically, W_T = W₀·(1 − ηλ)^T, by the amount λ asks for. More generally, Adam+L2
regularizes a weight less the larger its gradient history, AdamW every weight alike.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import datasets, losses, nn, optim
from funcnn import params as param_tools
from funcnn._validation import check_positive_int
from funcnn.optim.base import optimizer_step

__all__ = [
    "DEFAULT_SETTING",
    "METHODS",
    "WEIGHT_DECAYS",
    "DecayResult",
    "DecaySetting",
    "decay_experiment",
    "plot_decay",
    "run_decay",
]

METHODS: tuple[str, ...] = ("adam_l2", "adamw")
WEIGHT_DECAYS: tuple[float, ...] = (0.0, 1e-3, 1e-2, 1e-1, 1.0)


class DecaySetting(NamedTuple):
    """The over-fitting setting: a small digits subset and a wide one-hidden-layer MLP."""

    n_train: int = 200
    hidden: int = 256
    steps: int = 500
    learning_rate: float = 2e-3
    seed: int = 0


DEFAULT_SETTING = DecaySetting()


class DecayResult(NamedTuple):
    """One (method, λ) run after `steps` full-batch updates."""

    method: str
    weight_decay: float
    train_loss: float  # cross-entropy only, without the penalty
    train_accuracy: float
    test_accuracy: float
    weight_norm: float  # ‖W‖ over every decayed (≥2-D) weight
    idle_weight_norm: float  # ‖W₁[idle, :]‖: first-layer rows of inputs that are always 0
    idle_weight_norm_init: float


class _Setup(NamedTuple):
    model: nn.Layer
    data: tuple[jax.Array, ...]  # x (n, 64), y (n,), x_test, y_test
    idle: np.ndarray  # indices of input pixels that are 0 in every training image
    init: dict
    mask: dict  # True on the ≥2-D weights W


@functools.lru_cache(maxsize=4)
def _setup(setting: DecaySetting) -> _Setup:
    check_positive_int(setting.n_train, "n_train")
    check_positive_int(setting.hidden, "hidden")
    check_positive_int(setting.steps, "steps")
    task = datasets.digits(seed=setting.seed)
    x, y = task.x_train[: setting.n_train], task.y_train[: setting.n_train]
    idle = np.flatnonzero(np.all(x == 0, axis=0))
    data = tuple(jnp.asarray(a) for a in (x, y, task.x_test, task.y_test))
    model = nn.mlp([x.shape[1], setting.hidden, task.num_outputs])
    # One compiled init instead of op-by-op dispatch of the random initializers.
    init_fn = jax.jit(lambda key: model.init(key, (-1, x.shape[1]))[0])
    init = init_fn(jax.random.PRNGKey(setting.seed))
    return _Setup(model, data, idle, init, param_tools.decay_mask(init))


@functools.lru_cache(maxsize=16)
def _trainer(setting: DecaySetting, adamw_decay: float | None):
    """Compiled `train(θ₀, λ_L2) -> θ_T`: Adam on ℓ + λ_L2·½‖W‖² (adamw_decay None, λ_L2
    traced so every λ shares one program) or AdamW(λ = adamw_decay) on ℓ (λ_L2 = 0)."""
    setup = _setup(setting)
    x, y = setup.data[:2]
    if adamw_decay is None:
        optimizer = optim.adam(setting.learning_rate)
    else:
        optimizer = optim.adamw(setting.learning_rate, weight_decay=adamw_decay, mask=setup.mask)

    def objective(params, l2):
        data_loss = losses.cross_entropy(setup.model.apply(params, x), y)
        return data_loss + l2 * losses.l2_penalty(params, setup.mask)

    @jax.jit
    def train(params, l2):
        def step(carry, _):
            params, state = carry
            grads = jax.grad(objective)(params, l2)
            return optimizer_step(optimizer, grads, state, params), None

        carry = (params, optimizer.init(params))
        (params, _), _ = jax.lax.scan(step, carry, None, length=setting.steps)
        return params

    return train


@functools.lru_cache(maxsize=4)
def _measure(setting: DecaySetting):
    """Compiled θ -> (train CE, train accuracy, test accuracy, ‖W‖, ‖W₁[idle]‖)."""
    setup = _setup(setting)
    x, y, x_test, y_test = setup.data
    apply = setup.model.apply

    @jax.jit
    def measure(params):
        accuracy = lambda a, b: jnp.mean(jnp.argmax(apply(params, a), axis=-1) == b)
        return (
            losses.cross_entropy(apply(params, x), y),
            accuracy(x, y),
            accuracy(x_test, y_test),
            jnp.sqrt(2 * losses.l2_penalty(params, setup.mask)),
            jnp.linalg.norm(params["dense_0"]["w"][setup.idle]),
        )

    return measure


def run_decay(
    method: str, weight_decay: float, setting: DecaySetting = DEFAULT_SETTING
) -> DecayResult:
    """Train the setting's MLP with `method` ∈ METHODS at weight decay λ; measure it.

    Adam+L2 runs of one setting share one compiled program (λ is an argument); each AdamW
    λ compiles its own, since optimizer hyperparameters are validated Python numbers.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got method={method!r}.")
    weight_decay = float(weight_decay)
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be ≥ 0, got weight_decay={weight_decay}.")
    setup = _setup(setting)
    if method == "adam_l2":
        params = _trainer(setting, None)(setup.init, jnp.float32(weight_decay))
    else:
        params = _trainer(setting, weight_decay)(setup.init, jnp.float32(0.0))
    measure = _measure(setting)
    loss, train_accuracy, test_accuracy, norm, idle_norm = (float(m) for m in measure(params))
    idle_init = float(np.linalg.norm(np.asarray(setup.init["dense_0"]["w"])[setup.idle]))
    return DecayResult(
        method, weight_decay, loss, train_accuracy, test_accuracy, norm, idle_norm, idle_init
    )


def decay_experiment(
    weight_decays: Sequence[float] = WEIGHT_DECAYS, setting: DecaySetting = DEFAULT_SETTING
) -> list[DecayResult]:
    """`run_decay` for both methods at every λ, ordered by λ then method."""
    return [run_decay(m, wd, setting) for wd in weight_decays for m in METHODS]


def plot_decay(results: Sequence[DecayResult], path: str) -> str:
    """Test accuracy, ‖W‖ and the idle-weight norm against λ for both methods."""
    from funcnn.lab.plotting import _pyplot

    plt = _pyplot()
    decays = sorted({r.weight_decay for r in results})
    panels = [
        ("test_accuracy", "test accuracy"),
        ("weight_norm", "‖W‖ (decayed weights)"),
        ("idle_weight_norm", "‖W₁[idle inputs]‖"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.6))
    for ax, (field, label) in zip(axes, panels, strict=True):
        for method in METHODS:
            by_decay = {r.weight_decay: getattr(r, field) for r in results if r.method == method}
            ax.plot(
                range(len(decays)), [by_decay.get(d, np.nan) for d in decays], "o-", label=method
            )
        ax.set_xticks(range(len(decays)), [f"{d:g}" for d in decays])
        ax.set(xlabel="weight decay λ", title=label)
        if field != "test_accuracy":
            ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
