"""Tests for funcnn.lab.experiments: each experiment's measuring tools against NumPy, and the
direction each one measures, on a small budget."""

import jax
import numpy as np
import pytest

from funcnn import activations, nn
from funcnn import datasets as ds
from funcnn.lab import experiments


@pytest.fixture(scope="module")
def digits():
    return ds.digits(seed=0)


def _numpy_forward(params, x, sizes):
    """Hidden ReLU outputs of an MLP in float64 NumPy: h ← max(0, h·W + b) per hidden layer."""
    h, hidden = np.asarray(x, np.float64), []
    for i in range(len(sizes) - 2):
        layer = params[f"dense_{2 * i}"]
        h = np.maximum(0.0, h @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"]))
        hidden.append(h)
    return hidden


def test_layer_outputs_and_zero_fractions_match_numpy():
    sizes = [5, 7, 6, 3]
    layers = experiments.dense_stack(sizes, activations.relu)
    params, _ = nn.serial(*layers).init(jax.random.PRNGKey(0), (-1, 5))
    # Shift the biases so the zero fractions differ from ½ and from layer to layer.
    params["dense_0"]["b"] = params["dense_0"]["b"] + 0.3
    params["dense_2"]["b"] = params["dense_2"]["b"] - 0.4
    x = np.random.default_rng(0).standard_normal((50, 5)).astype(np.float32)
    hidden = _numpy_forward(params, x, sizes)
    outputs = experiments.layer_outputs(layers, params, x)
    np.testing.assert_allclose(outputs[1], hidden[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs[3], hidden[1], rtol=1e-5, atol=1e-6)
    got = experiments.zero_fractions(layers, params, x)
    np.testing.assert_allclose(got, [np.mean(h == 0) for h in hidden], atol=1.5 / (50 * 6))
    assert experiments.weight_keys(params) == ["dense_0", "dense_2", "dense_4"]


def test_sigmoid_gradients_vanish_at_depth_20_and_relu_gradients_do_not():
    norms = {
        name: experiments.gradient_norms(
            activations.get(name),
            depth=20,
            width=32,
            batch=64,
            w_init=experiments.MATCHED_INIT[name](),
        )
        for name in ("sigmoid", "relu")
    }
    assert norms["sigmoid"].shape == norms["relu"].shape == (20,)
    # First-layer gradient: orders of magnitude apart (measured ≈ 1e-10 vs ≈ 1).
    assert norms["sigmoid"][0] < 1e-4 * norms["relu"][0], norms
    # Within the sigmoid net the first/last ratio collapses; ReLU's stays within 100×.
    assert norms["sigmoid"][0] / norms["sigmoid"][-1] < 1e-4
    assert 1e-2 < norms["relu"][0] / norms["relu"][-1] < 1e2
    # And the decay is geometric: every 5 layers back, sigmoid's norm drops.
    assert np.all(np.diff(np.log10(norms["sigmoid"][::5])) > 0)


def test_relu_units_start_half_off_and_the_last_hidden_layer_gets_denser(digits):
    result = experiments.sparsity(hidden=(64, 64), epochs=5, learning_rate=3e-3, task=digits)
    # At init (symmetric weights, zero bias) each unit is off for about half the inputs.
    assert all(0.4 < f < 0.6 for f in result.before), result
    # Training (no sparsity penalty) turns more units of the last hidden layer on.
    assert result.after[-1] < result.before[-1] - 0.05, result
    assert result.test_accuracy > 0.9


def test_a_perceptron_cannot_fit_xor_and_one_hidden_layer_can():
    models = {"perceptron (linear)": (), "1 hidden layer": (16,)}
    results = experiments.depth(("xor",), models, epochs=40, learning_rate=3e-2)
    by_model = {r.model: r for r in results}
    linear, hidden = by_model["perceptron (linear)"], by_model["1 hidden layer"]
    assert 0.4 <= linear.train_accuracy <= 0.78, linear.train_accuracy
    assert hidden.train_accuracy == 1.0 and hidden.test_accuracy == 1.0
    # The linear model's predicted regions are separated by one straight line: along every
    # grid row, the predicted class changes at most once.
    _, _, classes = experiments.predict_grid(linear.layers, linear.params, (-2, -2), (2, 2), 40)
    assert np.all(np.sum(np.diff(classes, axis=1) != 0, axis=1) <= 1)
    _, _, classes = experiments.predict_grid(hidden.layers, hidden.params, (-2, -2), (2, 2), 40)
    assert set(np.unique(classes)) == {0, 1}


def test_clipping_rescues_a_too_high_learning_rate(digits):
    rows = experiments.stability(
        learning_rate=0.5,
        hidden=(64, 64),
        epochs=3,
        runs=((False, False), (False, True)),
        task=digits,
    )
    plain, clipped = rows
    assert (plain.warmup, plain.clipping, clipped.clipping) == (False, False, True)
    assert plain.diverged, plain
    assert not clipped.diverged and clipped.final_loss < 1.0, clipped
