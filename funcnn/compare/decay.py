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

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import datasets, losses, nn, optim
from funcnn import params as param_tools
from funcnn._validation import check_positive_int
from funcnn.optim.base import apply_updates

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


def _data(setting: DecaySetting):
    task = datasets.digits(seed=setting.seed)
    x, y = task.x_train[: setting.n_train], task.y_train[: setting.n_train]
    idle = np.flatnonzero(np.all(x == 0, axis=0))  # input pixels blank in every image
    arrays = tuple(jnp.asarray(a) for a in (x, y, task.x_test, task.y_test))
    return arrays, idle, task.num_outputs


def run_decay(
    method: str, weight_decay: float, setting: DecaySetting = DEFAULT_SETTING
) -> DecayResult:
    """Train the setting's MLP with `method` ∈ METHODS at weight decay λ; measure it."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got method={method!r}.")
    check_positive_int(setting.steps, "steps")
    (x, y, x_test, y_test), idle, classes = _data(setting)
    model = nn.mlp([x.shape[1], setting.hidden, classes])
    init, _ = model.init(jax.random.PRNGKey(setting.seed), (-1, x.shape[1]))
    mask = param_tools.decay_mask(init)
    if method == "adam_l2":
        optimizer = optim.adam(setting.learning_rate)
        penalty = weight_decay
    else:
        optimizer = optim.adamw(setting.learning_rate, weight_decay=weight_decay, mask=mask)
        penalty = 0.0

    def objective(params):
        data_loss = losses.cross_entropy(model.apply(params, x), y)
        return data_loss + penalty * losses.l2_penalty(params, mask)

    @jax.jit
    def train(params):
        def step(carry, _):
            params, state = carry
            grads = jax.grad(objective)(params)
            updates, state = optimizer.update(grads, state, params)
            return (apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(
            step, (params, optimizer.init(params)), None, length=setting.steps
        )
        return params

    params = train(init)
    accuracy = lambda p, a, b: float(jnp.mean(jnp.argmax(model.apply(p, a), -1) == b))
    first = "dense_0"
    return DecayResult(
        method,
        float(weight_decay),
        float(losses.cross_entropy(model.apply(params, x), y)),
        accuracy(params, x, y),
        accuracy(params, x_test, y_test),
        float(np.sqrt(2 * losses.l2_penalty(params, mask))),
        float(np.linalg.norm(np.asarray(params[first]["w"])[idle])),
        float(np.linalg.norm(np.asarray(init[first]["w"])[idle])),
    )


def decay_experiment(
    weight_decays: Sequence[float] = WEIGHT_DECAYS, setting: DecaySetting = DEFAULT_SETTING
) -> list[DecayResult]:
    """`run_decay` for both methods at every λ, ordered by λ then method."""
    return [run_decay(m, wd, setting) for wd in weight_decays for m in METHODS]


def plot_decay(results: Sequence[DecayResult], path: str) -> str:
    """Test accuracy, ‖W‖ and the idle-weight norm against λ for both methods."""
    from funcnn.plotting import _pyplot

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
