"""Generated sequence tasks: structure, targets recomputed independently in NumPy, determinism."""

import jax
import numpy as np
import pytest

from funcnn.datasets import sequences

KEY = jax.random.key(0)


def test_adding_problem_targets_and_markers():
    x, y = sequences.adding_problem(KEY, 512, 20)
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == (512, 20, 2) and y.shape == (512,)
    markers = x[..., 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :10].sum(axis=1) == 1) and np.all(markers[:, 10:].sum(axis=1) == 1)
    np.testing.assert_allclose(y, (x[..., 0] * markers).sum(axis=1), rtol=1e-6)
    assert np.all((x[..., 0] >= 0) & (x[..., 0] < 1))
    # Predicting the mean scores about Var(u₁ + u₂) = 1/6.
    assert abs(np.mean((y - 1.0) ** 2) - sequences.ADDING_MEAN_BASELINE_MSE) < 0.03


def test_adding_problem_is_deterministic_and_jittable():
    eager = sequences.adding_problem(KEY, 4, 8)
    jitted = jax.jit(sequences.adding_problem, static_argnums=(1, 2))(KEY, 4, 8)
    for a, b in zip(eager, jitted, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("order", ["copy", "reverse", "sort"])
def test_copy_reverse_sort_layout(order):
    make = {
        "copy": sequences.copy_task,
        "reverse": sequences.reverse_task,
        "sort": sequences.sort_task,
    }
    task = make[order](KEY, 16, 5, num_symbols=6, delay=3)
    inputs, targets, mask = map(np.asarray, task[:3])
    assert task.vocab == 8 and inputs.shape == targets.shape == mask.shape == (16, 13)
    symbols = inputs[:, :5]
    assert np.all((symbols >= 1) & (symbols <= 6))
    assert np.all(inputs[:, 5:8] == 0) and np.all(inputs[:, 8] == 7) and np.all(inputs[:, 9:] == 0)
    expected = {"copy": symbols, "reverse": symbols[:, ::-1], "sort": np.sort(symbols, axis=1)}[
        order
    ]
    np.testing.assert_array_equal(targets[:, 8:], expected)
    assert np.all(targets[:, :8] == 0)
    np.testing.assert_array_equal(mask, np.arange(13)[None, :].repeat(16, 0) >= 8)


def test_parity_labels():
    bits, labels = sequences.parity_task(KEY, 64, 9)
    bits, labels = np.asarray(bits), np.asarray(labels)
    assert set(np.unique(bits)) <= {0, 1}
    np.testing.assert_array_equal(labels, bits.sum(axis=1) % 2)
    assert 0.2 < labels.mean() < 0.8


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="length"):
        sequences.adding_problem(KEY, 4, 1)
    with pytest.raises(ValueError, match="n must be"):
        sequences.parity_task(KEY, 0, 4)
    with pytest.raises(ValueError, match="delay"):
        sequences.copy_task(KEY, 4, 3, delay=-1)
