"""Tabular tasks: generated problems with known answers, and scikit-learn's bundled real data.

Every loader returns a `Task` with a deterministic train/test split (seeded permutation) and
features standardized with statistics fitted on the training part only:

    x̃ = (x − μ_train) / σ_train

Label conventions by `kind`:
    "classification": y int32 class ids, shape (N,)     — softmax cross-entropy
    "binary":         y float32 in {0, 1}, shape (N, 1)  — one logit, BCE-with-logits
    "regression":     y float32, shape (N, 1)            — mean squared error

Generated data uses NumPy's seeded `default_rng`, so a seed names one dataset forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from funcnn._validation import check_in_range, check_positive_int, check_real

__all__ = [
    "HAM_WORDS",
    "HOUSE_COEFFICIENTS",
    "HOUSE_FEATURES",
    "HOUSE_INTERCEPT",
    "SPAM_WORDS",
    "TASKS",
    "Task",
    "breast_cancer",
    "diabetes",
    "digits",
    "function_1d",
    "house",
    "house_coefficients",
    "load",
    "sine",
    "spam",
    "spirals",
    "standardize",
    "standardize_target",
    "train_test_split",
    "xor",
]


class Task(NamedTuple):
    """A supervised task, split and standardized. `info` holds task-specific facts
    (feature names, true coefficients, the standardization statistics, …)."""

    name: str
    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_outputs: int
    info: dict[str, Any]


def train_test_split(
    x: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic split by a seeded permutation: the last ⌈f·N⌉ shuffled rows are test."""
    check_in_range(test_fraction, "test_fraction", 0.0, 1.0, low_inclusive=False)
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}.")
    n_test = int(np.ceil(test_fraction * n))
    if n_test >= n:
        raise ValueError(f"test_fraction={test_fraction} leaves no training data out of {n}.")
    order = np.random.default_rng(seed).permutation(n)
    train, test = order[: n - n_test], order[n - n_test :]
    return x[train], y[train], x[test], y[test]


def standardize(
    x_train: np.ndarray, x_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """x̃ = (x − μ)/σ with μ, σ from the training rows only; constant columns get σ = 1."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    scale = lambda x: ((x - mean) / std).astype(np.float32)
    return scale(x_train), scale(x_test), {"mean": mean, "std": std}


def standardize_target(task: Task) -> Task:
    """ỹ = (y − μ_y)/σ_y with train statistics, kept in `info` as target_mean/target_std."""
    y_mean, y_std = task.y_train.mean(), task.y_train.std()
    scale = lambda y: ((y - y_mean) / y_std).astype(np.float32)
    info = dict(task.info, target_mean=float(y_mean), target_std=float(y_std))
    return task._replace(y_train=scale(task.y_train), y_test=scale(task.y_test), info=info)


def _make_task(name, kind, x, y, num_outputs, *, seed, test_fraction=0.2, **info) -> Task:
    x_train, y_train, x_test, y_test = train_test_split(
        x, y, test_fraction=test_fraction, seed=seed
    )
    x_train, x_test, stats = standardize(x_train, x_test)
    if kind == "classification":
        y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)
    else:
        y_train = y_train.astype(np.float32).reshape(-1, 1)
        y_test = y_test.astype(np.float32).reshape(-1, 1)
    info.update(feature_mean=stats["mean"], feature_std=stats["std"])
    return Task(name, kind, x_train, y_train, x_test, y_test, num_outputs, info)


# ---------------------------------------------------------------------------- generated


def xor(n: int = 400, *, noise: float = 0.15, seed: int = 0) -> Task:
    """Points near the four corners (±1, ±1); label = [x₁ > 0] XOR [x₂ > 0].

    Not linearly separable: a single perceptron cannot exceed 75% accuracy.
    """
    check_positive_int(n, "n")
    noise = check_real(noise, "noise")
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(n, 2))
    x = (2.0 * corners - 1.0) + noise * rng.standard_normal((n, 2))
    y = corners[:, 0] ^ corners[:, 1]
    return _make_task("xor", "classification", x, y, 2, seed=seed)


def spirals(n_per_class: int = 200, *, classes: int = 3, noise: float = 0.2, seed: int = 0) -> Task:
    """k interleaved spiral arms: arm c at radius r ∈ [0, 1] has angle 4r + 2πc/k (+ noise)."""
    check_positive_int(n_per_class, "n_per_class")
    check_positive_int(classes, "classes")
    if classes < 2:
        raise ValueError(f"classes must be ≥ 2, got classes={classes}.")
    noise = check_real(noise, "noise")
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), classes)
    label = np.repeat(np.arange(classes), n_per_class)
    angle = 4.0 * r + 2 * np.pi * label / classes + noise * rng.standard_normal(r.shape)
    x = np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1)
    return _make_task("spirals", "classification", x, label, classes, seed=seed)


def function_1d(
    fn: Callable[[np.ndarray], np.ndarray] = np.sin,
    n: int = 512,
    *,
    low: float = -np.pi,
    high: float = np.pi,
    noise: float = 0.0,
    seed: int = 0,
    name: str = "sine",
) -> Task:
    """Approximate y = fn(x) + noise·ε on x ~ U[low, high] (the universal-approximation demo)."""
    check_positive_int(n, "n")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {fn!r}.")
    if not high > low:
        raise ValueError(f"high must exceed low, got low={low}, high={high}.")
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=(n, 1))
    y = fn(x[:, 0]) + check_real(noise, "noise") * rng.standard_normal(n)
    return _make_task(name, "regression", x, y, 1, seed=seed)


def sine(n: int = 512, *, noise: float = 0.0, seed: int = 0) -> Task:
    """y = sin(x) on [−π, π]."""
    return function_1d(np.sin, n, noise=noise, seed=seed, name="sine")


HOUSE_FEATURES = ("area_m2", "bedrooms", "age_years", "distance_km")
"""Column names of the `house` task, in order."""
HOUSE_COEFFICIENTS = np.array([3000.0, 10000.0, -800.0, -2500.0])
"""The true price per unit of each `HOUSE_FEATURES` column: price = x·w + intercept + noise."""
HOUSE_INTERCEPT = 50000.0
"""The true base price of the `house` task."""


def house(n: int = 1000, *, noise: float = 5000.0, seed: int = 0) -> Task:
    """Linear regression with known truth: price = Σⱼ wⱼ·featureⱼ + b + noise.

    True w = (3000 per m², 10000 per bedroom, −800 per year of age, −2500 per km), b = 50000.
    Targets are standardized too; `info` keeps the statistics to map a fitted linear model
    back to raw units: wⱼ = w̃ⱼ·σ_y/σⱼ (see `house_coefficients`).
    """
    check_positive_int(n, "n")
    rng = np.random.default_rng(seed)
    x = np.stack(
        [
            rng.uniform(40, 250, n),
            rng.integers(1, 6, n).astype(np.float64),
            rng.uniform(0, 100, n),
            rng.uniform(0, 30, n),
        ],
        axis=1,
    )
    y = (
        x @ HOUSE_COEFFICIENTS
        + HOUSE_INTERCEPT
        + check_real(noise, "noise") * rng.standard_normal(n)
    )
    task = _make_task(
        "house",
        "regression",
        x,
        y,
        1,
        seed=seed,
        feature_names=HOUSE_FEATURES,
        true_coefficients=HOUSE_COEFFICIENTS,
        true_intercept=HOUSE_INTERCEPT,
    )
    return standardize_target(task)


def house_coefficients(task: Task, w: np.ndarray) -> np.ndarray:
    """Map weights fitted on standardized data back to raw units: wⱼ = w̃ⱼ·σ_y/σⱼ."""
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    return w * task.info["target_std"] / task.info["feature_std"]


SPAM_WORDS = ("free", "winner", "prize", "cash", "click", "offer", "urgent", "guaranteed")
"""Words that make a generated `spam` document more likely to be spam."""
HAM_WORDS = ("meeting", "project", "report", "lunch", "schedule", "family", "thanks", "agenda")
"""Words that make a generated `spam` document more likely to be ham (not spam)."""


def spam(n_docs: int = 2000, *, vocab_size: int = 200, doc_length: int = 30, seed: int = 0) -> Task:
    """Bag-of-words spam filter with a planted vocabulary.

    Each document draws `doc_length` words uniformly from the vocabulary; its label is
    Bernoulli(σ(Σ_words weight)), with weight +2 for the 8 spam words, −2 for the 8 ham words
    and 0 for the neutral rest. Features are word counts. A single logistic neuron
    p = σ(w·x + b) should learn large positive w for spam words, large negative for ham words.
    """
    check_positive_int(n_docs, "n_docs")
    check_positive_int(doc_length, "doc_length")
    planted = len(SPAM_WORDS) + len(HAM_WORDS)
    check_positive_int(vocab_size, "vocab_size")
    if vocab_size <= planted:
        raise ValueError(f"vocab_size must exceed {planted} planted words, got {vocab_size}.")
    vocab = list(SPAM_WORDS) + list(HAM_WORDS)
    vocab += [f"word{i:03d}" for i in range(vocab_size - planted)]
    weight = np.zeros(vocab_size)
    weight[: len(SPAM_WORDS)] = 2.0
    weight[len(SPAM_WORDS) : planted] = -2.0
    rng = np.random.default_rng(seed)
    words = rng.integers(0, vocab_size, size=(n_docs, doc_length))
    counts = np.zeros((n_docs, vocab_size))
    np.add.at(counts, (np.arange(n_docs)[:, None], words), 1.0)
    logit = counts @ weight
    label = (rng.uniform(size=n_docs) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return _make_task(
        "spam", "binary", counts, label, 1, seed=seed, vocabulary=tuple(vocab), true_weights=weight
    )


# ---------------------------------------------------------------------------- real data


def _sklearn_datasets():
    try:
        import sklearn.datasets
    except ImportError:
        raise ImportError(
            "The real datasets (digits, breast_cancer, diabetes) load scikit-learn's bundled "
            "files; install the extra: pip install 'funcnn[examples]'."
        ) from None
    return sklearn.datasets


def digits(*, seed: int = 0) -> Task:
    """8×8 handwritten digits (1797 images, 10 classes) from scikit-learn's bundled copy."""
    data = _sklearn_datasets().load_digits()
    return _make_task("digits", "classification", data.data, data.target, 10, seed=seed)


def breast_cancer(*, seed: int = 0) -> Task:
    """Wisconsin breast cancer (569 × 30 features), binary: 1 = benign."""
    data = _sklearn_datasets().load_breast_cancer()
    return _make_task(
        "breast_cancer",
        "binary",
        data.data,
        data.target,
        1,
        seed=seed,
        feature_names=tuple(data.feature_names),
    )


def diabetes(*, seed: int = 0) -> Task:
    """Diabetes progression regression (442 × 10); the target is standardized on train."""
    data = _sklearn_datasets().load_diabetes()
    task = _make_task(
        "diabetes",
        "regression",
        data.data,
        data.target,
        1,
        seed=seed,
        feature_names=tuple(data.feature_names),
    )
    return standardize_target(task)


TASKS: dict[str, Callable[..., Task]] = {
    "digits": digits,
    "spirals": spirals,
    "xor": xor,
    "sine": sine,
    "house": house,
    "spam": spam,
    "breast_cancer": breast_cancer,
    "diabetes": diabetes,
}
"""Every tabular task by name, as `load(name)` builds it."""


def load(name: str, *, seed: int = 0) -> Task:
    """Load a task by name: one of `TASKS`."""
    if name not in TASKS:
        raise ValueError(f"unknown task name={name!r}; choose one of {sorted(TASKS)}.")
    return TASKS[name](seed=seed)
