"""Textbook claims about neural networks, turned into measurements.

vanishing   ‖∂L/∂W_l‖ at initialization, layer by layer, in a 20-layer MLP. Backprop multiplies
            δ_l = (δ_{l+1}·W_{l+1}ᵀ) ⊙ f′(z_l) once per layer, so when |f′| < 1 (σ′ ≤ ¼)
            the first layers' gradients shrink geometrically; ReLU (f′ ∈ {0, 1}) does not.
sparsity    the fraction of hidden units whose ReLU output is exactly 0, before and after
            training on digits.
depth       a linear classifier (a single layer of perceptrons) against one and two hidden
            layers on XOR and spirals: no linear boundary separates XOR, one hidden layer does.
stability   a deliberately high learning rate with and without linear warmup and gradient
            clipping: the final loss, and whether training diverged.

Each function returns plain rows (NamedTuples) that `scripts/experiments.py` prints and plots.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from funcnn import activations, initializers, losses, nn, optim
from funcnn import datasets as ds
from funcnn._validation import check_choice, check_positive_int
from funcnn.nn.core import child_keys
from funcnn.train import fit, init_state
from funcnn.train.objectives import supervised_loss, supervised_metrics

__all__ = [
    "ACTIVATIONS",
    "DEPTH_MODELS",
    "MATCHED_INIT",
    "STABILITY_OPTIMIZERS",
    "STABILITY_RUNS",
    "DepthResult",
    "SparsityResult",
    "StabilityRow",
    "Trained",
    "VanishingRow",
    "dense_stack",
    "depth",
    "gradient_norms",
    "layer_outputs",
    "predict_grid",
    "sparsity",
    "stability",
    "train_classifier",
    "vanishing",
    "weight_keys",
    "zero_fractions",
]

Array = jax.Array
Activation = Callable[[Array], Array]

ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu", "gelu")
"""The activations the depth study compares (looked up with `activations.get`)."""
# Each activation with the initialization its literature pairs it with: Glorot (2010) for
# sigmoid/tanh, He (2015) for ReLU-like units. The vanishing experiment uses these, so it
# shows what remains once the init is right, not an init mistake.
MATCHED_INIT: dict[str, Callable[[], initializers.Initializer]] = {
    "sigmoid": initializers.glorot_normal,
    "tanh": initializers.glorot_normal,
    "relu": initializers.he_normal,
    "gelu": initializers.he_normal,
}


# ---------------------------------------------------------------------------- building blocks


def dense_stack(
    sizes: Sequence[int],
    activation_fn: Activation,
    *,
    w_init: initializers.Initializer | None = None,
) -> list[nn.Layer]:
    """The layers of an MLP [in, h₁, …, out]: dense → f per hidden layer, then a last dense.

    Kept as a list (not only a `serial`) so `layer_outputs` can read every intermediate; as
    `nn.serial(*layers)` the params are keyed dense_0, <f>_1, dense_2, ….
    """
    if len(sizes) < 2:
        raise ValueError(f"sizes must be [in, ..., out] with ≥ 2 entries, got {list(sizes)}.")
    layers: list[nn.Layer] = []
    for width in sizes[1:-1]:
        layers += [nn.dense(width, w_init=w_init), nn.activation(activation_fn)]
    return [*layers, nn.dense(sizes[-1], w_init=w_init)]


def layer_outputs(layers: Sequence[nn.Layer], params: Mapping[str, Any], x: Array) -> list[Array]:
    """[y₁, …, y_L]: the output of every layer of `nn.serial(*layers)` on x (eval mode)."""
    outputs = []
    for key, layer in zip(child_keys(layers), layers, strict=True):
        x = layer.apply(params[key], x)
        outputs.append(x)
    return outputs


def weight_keys(params: Mapping[str, Any]) -> list[str]:
    """The keys of a serial's params that hold a weight matrix "w", in layer order."""
    keys = [k for k, v in params.items() if isinstance(v, Mapping) and "w" in v]
    return sorted(keys, key=lambda k: int(k.rsplit("_", 1)[1]))


# ---------------------------------------------------------------------------- vanishing


class VanishingRow(NamedTuple):
    """‖∂L/∂W_l‖_F for l = 1…depth at init, and first/last = ‖∂L/∂W₁‖ / ‖∂L/∂W_depth‖."""

    activation: str
    init: str
    norms: np.ndarray
    ratio: float


def gradient_norms(
    activation_fn: Activation,
    *,
    depth: int = 20,
    width: int = 64,
    batch: int = 256,
    classes: int = 10,
    w_init: initializers.Initializer | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Frobenius norms ‖∂L/∂W_l‖, l = 1…depth, at initialization: shape (depth,).

    The network is `depth` dense layers of `width` units (activation between them) on
    x ~ N(0, I) of shape (batch, width), with L = cross-entropy against uniform random labels.
    """
    check_positive_int(depth, "depth")
    layers = dense_stack([width] * depth + [classes], activation_fn, w_init=w_init)
    model = nn.serial(*layers)
    k_init, k_x, k_y = jax.random.split(jax.random.PRNGKey(seed), 3)
    params, _ = model.init(k_init, (batch, width))
    x = jax.random.normal(k_x, (batch, width))
    y = jax.random.randint(k_y, (batch,), 0, classes)
    grads = jax.jit(jax.grad(lambda p: losses.cross_entropy(model.apply(p, x), y)))(params)
    return np.array([float(jnp.linalg.norm(grads[k]["w"])) for k in weight_keys(grads)])


def vanishing(
    names: Sequence[str] = ("sigmoid", "tanh", "relu", "gelu"),
    *,
    depth: int = 20,
    width: int = 64,
    seed: int = 0,
) -> list[VanishingRow]:
    """`gradient_norms` for each named activation (keys of `ACTIVATIONS`) with its matched
    init (`MATCHED_INIT`), on the same data."""
    rows = []
    for name in names:
        check_choice(name, "activation", sorted(ACTIVATIONS))
        init = MATCHED_INIT[name]
        norms = gradient_norms(
            activations.get(name), depth=depth, width=width, w_init=init(), seed=seed
        )
        rows.append(VanishingRow(name, init.__name__, norms, float(norms[0] / norms[-1])))
    return rows


# ---------------------------------------------------------------------------- training helper


class Trained(NamedTuple):
    """A classifier trained by `train_classifier`: its layers, final params, per-epoch history,
    and exact train/test metrics ({"loss", "accuracy"})."""

    layers: list[nn.Layer]
    params: Any
    history: dict[str, list[float]]
    train: dict[str, float]
    test: dict[str, float]


def train_classifier(
    task: ds.Task,
    layers: Sequence[nn.Layer],
    optimizer: optim.GradientTransformation,
    *,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    on_init: Callable[[Any], None] | None = None,
) -> Trained:
    """Train `nn.serial(*layers)` on a classification task with `funcnn.train.fit`.

    `on_init(params)` runs on the initial params before training (fit donates their buffers,
    so anything measured at init has to be measured there).
    """
    model = nn.serial(*layers)
    k_init, k_state, k_data = jax.random.split(jax.random.PRNGKey(seed), 3)
    params, _ = model.init(k_init, (-1, task.x_train.shape[1]))
    if on_init is not None:
        on_init(params)
    state = init_state(params, optimizer, k_state)
    train_data = (task.x_train, task.y_train)
    state, history = fit(
        state,
        supervised_loss(model.apply, task.kind),
        optimizer,
        train_data,
        batch_size=batch_size,
        epochs=epochs,
        data_key=k_data,
        progress=False,
    )
    train, test = _split_means(
        supervised_metrics(model.apply, task.kind),
        state.params,
        (task.x_train, task.y_train),
        (task.x_test, task.y_test),
    )
    return Trained(list(layers), state.params, history, train, test)


def _split_means(metric_fn: Callable, params: Any, train: Any, test: Any) -> tuple[dict, dict]:
    """Exact means of per-example metrics over train and over test, from one compiled pass
    over both splits concatenated (two `evaluate` calls would compile twice: two shapes)."""
    both = jax.tree.map(lambda a, b: np.concatenate([a, b]), train, test)
    values = jax.jit(metric_fn)(params, both)
    n_train = len(jax.tree.leaves(train)[0])
    means = lambda part: {k: float(np.mean(np.asarray(v)[part])) for k, v in values.items()}
    return means(slice(None, n_train)), means(slice(n_train, None))


# ---------------------------------------------------------------------------- sparsity


@functools.lru_cache(maxsize=16)
def _compiled_zero_fractions(
    layers: tuple[nn.Layer, ...],
) -> Callable[[Any, ArrayLike], list[Array]]:
    """One jitted program per network, shared by the before/after measurements."""

    def fractions(params: Any, x: Array) -> list[Array]:
        outputs = layer_outputs(layers, params, x)
        return [
            jnp.mean(y == 0)
            for layer, y in zip(layers, outputs, strict=True)
            if layer.name == "relu"
        ]

    return jax.jit(fractions)


def zero_fractions(layers: Sequence[nn.Layer], params: Any, x: ArrayLike) -> list[float]:
    """For each ReLU layer: the fraction of its outputs on x that are exactly 0,
    (1/(B·width))·Σ [relu(z) = 0]."""
    return [float(f) for f in _compiled_zero_fractions(tuple(layers))(params, x)]


class SparsityResult(NamedTuple):
    """Per hidden layer, the exactly-zero fraction of ReLU outputs on the test inputs."""

    widths: tuple[int, ...]
    before: list[float]
    after: list[float]
    test_accuracy: float


def sparsity(
    hidden: Sequence[int] = (128, 128, 128),
    *,
    epochs: int = 30,
    learning_rate: float = 1e-3,
    batch_size: int = 64,
    task: ds.Task | None = None,
    seed: int = 0,
) -> SparsityResult:
    """Train a ReLU MLP (He init) on digits with Adam; measure ReLU zeros before and after."""
    task = ds.digits(seed=seed) if task is None else task
    sizes = [task.x_train.shape[1], *hidden, task.num_outputs]
    layers = dense_stack(sizes, activations.relu, w_init=initializers.he_normal())
    before: list[float] = []
    trained = train_classifier(
        task,
        layers,
        optim.adam(learning_rate),
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        on_init=lambda p: before.extend(zero_fractions(layers, p, task.x_test)),
    )
    after = zero_fractions(layers, trained.params, task.x_test)
    return SparsityResult(tuple(hidden), before, after, trained.test["accuracy"])


# ---------------------------------------------------------------------------- depth

# name → hidden widths; () is a single dense layer: one perceptron per class, a linear boundary.
DEPTH_MODELS: dict[str, tuple[int, ...]] = {
    "perceptron (linear)": (),
    "1 hidden layer": (32,),
    "2 hidden layers": (32, 32),
}


class DepthResult(NamedTuple):
    """One (task, model) run of the depth experiment, with what the boundary plot needs."""

    task: str
    model: str
    train_accuracy: float
    test_accuracy: float
    layers: list[nn.Layer]
    params: Any


def depth(
    tasks: Sequence[str] = ("xor", "spirals"),
    models: Mapping[str, tuple[int, ...]] = DEPTH_MODELS,
    *,
    epochs: int = 100,
    learning_rate: float = 1e-2,
    batch_size: int = 32,
    seed: int = 0,
) -> list[DepthResult]:
    """Train each model (tanh hidden units, Adam) on each 2-D task; report accuracies."""
    results = []
    for task_name in tasks:
        task = ds.load(task_name, seed=seed)
        for model_name, hidden in models.items():
            sizes = [task.x_train.shape[1], *hidden, task.num_outputs]
            trained = train_classifier(
                task,
                dense_stack(sizes, activations.tanh),
                optim.adam(learning_rate),
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
            )
            results.append(
                DepthResult(
                    task_name,
                    model_name,
                    trained.train["accuracy"],
                    trained.test["accuracy"],
                    trained.layers,
                    trained.params,
                )
            )
    return results


def predict_grid(
    layers: Sequence[nn.Layer],
    params: Any,
    low: Sequence[float],
    high: Sequence[float],
    resolution: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted class argmax f(x) on a resolution × resolution grid over [low, high] in 2-D.

    Returns (g₁, g₂, classes), each of shape (resolution, resolution), for `contourf`.
    """
    g1, g2 = np.meshgrid(
        np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution)
    )
    points = np.stack([g1.ravel(), g2.ravel()], axis=1).astype(np.float32)  # (R², 2)
    logits = nn.serial(*layers).apply(params, points)
    return g1, g2, np.asarray(jnp.argmax(logits, axis=-1)).reshape(g1.shape)


# ---------------------------------------------------------------------------- stability


class StabilityRow(NamedTuple):
    """One run of the stability experiment. diverged: the final training loss is non-finite
    or above the first epoch's mean loss (training made the model worse)."""

    warmup: bool
    clipping: bool
    final_loss: float
    diverged: bool
    losses: list[float]


STABILITY_OPTIMIZERS = ("momentum", "adam")
# (warmup, clipping) for the four runs.
STABILITY_RUNS = ((False, False), (False, True), (True, False), (True, True))


def stability(
    *,
    optimizer: str = "momentum",
    learning_rate: float = 0.5,
    warmup_steps: int = 100,
    clip_norm: float = 1.0,
    hidden: Sequence[int] = (128, 128),
    epochs: int = 10,
    batch_size: int = 64,
    runs: Sequence[tuple[bool, bool]] = STABILITY_RUNS,
    task: ds.Task | None = None,
    seed: int = 0,
) -> list[StabilityRow]:
    """A deliberately high `learning_rate` η on a ReLU MLP (digits), four ways:
    {constant η, linear warmup 0 → η over `warmup_steps`} × {no clipping, clip ‖g‖ ≤ clip_norm}.

    optimizer: "momentum" (SGD, μ = 0.9) or "adam". Every run starts from the same init and
    sees the same batches. `runs` lists the (warmup, clipping) pairs to train.
    """
    check_choice(optimizer, "optimizer", STABILITY_OPTIMIZERS)
    task = ds.digits(seed=seed) if task is None else task
    sizes = [task.x_train.shape[1], *hidden, task.num_outputs]
    rows = []
    for warmup, clipping in runs:
        schedule = optim.linear_warmup(learning_rate, warmup_steps) if warmup else learning_rate
        inner = (
            optim.sgd(schedule, momentum=0.9) if optimizer == "momentum" else optim.adam(schedule)
        )
        stages = [optim.clip_by_global_norm(clip_norm)] if clipping else []
        trained = train_classifier(
            task,
            dense_stack(sizes, activations.relu, w_init=initializers.he_normal()),
            optim.chain(*stages, inner),
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
        )
        epoch_losses = trained.history["train_loss"]
        final = trained.train["loss"]
        diverged = not np.isfinite(final) or final > epoch_losses[0]
        rows.append(StabilityRow(warmup, clipping, final, bool(diverged), epoch_losses))
    return rows
