"""Tabular datasets: determinism, splits, train-only standardization, planted truths."""

import builtins

import numpy as np
import pytest

from funcnn import datasets as ds


@pytest.mark.parametrize("name", sorted(ds.TASKS))
def test_tasks_are_deterministic_and_shaped_by_kind(name):
    a, b = ds.load(name, seed=3), ds.load(name, seed=3)
    for x, y in zip(a[2:6], b[2:6], strict=True):
        np.testing.assert_array_equal(x, y)
    n_train, n_test = len(a.x_train), len(a.x_test)
    assert n_test == int(np.ceil(0.2 * (n_train + n_test)))
    assert a.x_train.dtype == np.float32
    if a.kind == "classification":
        assert a.y_train.shape == (n_train,) and a.y_train.dtype == np.int32
        assert set(np.unique(a.y_train)) <= set(range(a.num_outputs))
    else:
        assert a.y_train.shape == (n_train, 1) and a.y_train.dtype == np.float32


def test_standardization_uses_training_statistics_only():
    task = ds.load("breast_cancer")
    np.testing.assert_allclose(task.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(task.x_train.std(axis=0), 1.0, atol=1e-4)
    # The test split is mapped with the *train* μ and σ, so its mean is not forced to 0.
    assert np.abs(task.x_test.mean(axis=0)).max() > 1e-3


def test_split_is_a_partition_and_depends_on_seed():
    x = np.arange(50.0).reshape(50, 1)
    xtr, _, xte, _ = ds.train_test_split(x, x[:, 0], test_fraction=0.2, seed=1)
    assert sorted(np.concatenate([xtr[:, 0], xte[:, 0]]).tolist()) == list(range(50))
    assert len(xte) == 10
    other = ds.train_test_split(x, x[:, 0], test_fraction=0.2, seed=2)[2]
    assert not np.array_equal(xte, other)


def test_house_generator_has_the_stated_coefficients():
    """Ordinary least squares on the raw data recovers the planted truth (noise is small)."""
    task = ds.house(n=4000, seed=0)
    x_raw = task.x_train * task.info["feature_std"] + task.info["feature_mean"]
    y_raw = task.y_train[:, 0] * task.info["target_std"] + task.info["target_mean"]
    design = np.column_stack([x_raw, np.ones(len(x_raw))])
    coef, *_ = np.linalg.lstsq(design, y_raw, rcond=None)
    np.testing.assert_allclose(coef[:4], ds.tabular.HOUSE_COEFFICIENTS, rtol=0.05)
    # house_coefficients maps standardized weights back: w = w̃·σ_y/σ_x.
    w_std = coef[:4] * task.info["feature_std"] / task.info["target_std"]
    np.testing.assert_allclose(ds.house_coefficients(task, w_std), coef[:4], rtol=1e-9)


def test_spam_labels_follow_the_planted_words():
    task = ds.spam(n_docs=3000, seed=0)
    vocab = task.info["vocabulary"]
    counts = task.x_train * task.info["feature_std"] + task.info["feature_mean"]
    label = task.y_train[:, 0]
    free, meeting = vocab.index("free"), vocab.index("meeting")
    assert label[counts[:, free] > 0.5].mean() > label.mean() + 0.1
    assert label[counts[:, meeting] > 0.5].mean() < label.mean() - 0.1


def test_xor_labels_are_the_xor_of_the_signs():
    task = ds.xor(n=200, noise=0.1)
    x = task.x_train * task.info["feature_std"] + task.info["feature_mean"]
    np.testing.assert_array_equal(task.y_train, (x[:, 0] > 0) ^ (x[:, 1] > 0))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ds.load("mnist"), ValueError, "name='mnist'"),
        (lambda: ds.xor(n=0), ValueError, "n must be a positive int"),
        (lambda: ds.spirals(classes=1), ValueError, "classes must be ≥ 2"),
        (lambda: ds.spam(vocab_size=10), ValueError, "vocab_size"),
        (lambda: ds.train_test_split(np.zeros((3, 1)), np.zeros(4)), ValueError, "same length"),
        (
            lambda: ds.train_test_split(np.zeros((3, 1)), np.zeros(3), test_fraction=1.5),
            ValueError,
            "test_fraction",
        ),
    ],
)
def test_bad_dataset_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("no sklearn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r"funcnn\[examples\]"):
        ds.digits()
