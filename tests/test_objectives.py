"""Supervised objectives: per-example losses, the binary threshold, and dropout in training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.train import objectives


def test_binary_accuracy_thresholds_the_logit_at_zero_probability_one_half():
    # σ(z) > ½ ⟺ z > 0: logits in (0, ½] are positive predictions, logits in [−½, 0) negative.
    logits = jnp.asarray([[0.3], [-0.3], [0.01], [-0.01], [2.0]])
    targets = jnp.asarray([[1.0], [0.0], [1.0], [0.0], [0.0]])
    values = objectives.per_example("binary", logits, targets)
    np.testing.assert_array_equal(values["accuracy"], [1.0, 1.0, 1.0, 1.0, 0.0])
    z, y = np.asarray(logits[:, 0], np.float64), np.asarray(targets[:, 0], np.float64)
    bce = np.logaddexp(0.0, z) - y * z  # −y·log σ(z) − (1 − y)·log(1 − σ(z))
    np.testing.assert_allclose(values["loss"], bce, rtol=1e-6)


def test_classification_accuracy_is_argmax_and_loss_is_cross_entropy():
    logits = jnp.asarray([[2.0, 1.0, 0.0], [0.0, 0.5, 3.0]])
    targets = jnp.asarray([0, 1])
    values = objectives.per_example("classification", logits, targets)
    np.testing.assert_array_equal(values["accuracy"], [1.0, 0.0])
    z = np.asarray(logits, np.float64)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    np.testing.assert_allclose(values["loss"], -log_p[[0, 1], [0, 1]], rtol=1e-6)


def test_the_training_loss_runs_dropout_with_the_steps_key_and_metrics_do_not():
    # The supervised loss runs the model in training mode with the step's key (so the main
    # job's --dropout changes training); evaluation metrics are deterministic, without it.
    model = nn.mlp([4, 16, 3], dropout=0.5)
    params, _ = model.init(jax.random.key(0), (-1, 4))
    x = jax.random.normal(jax.random.key(1), (8, 4))
    y = jnp.arange(8) % 3
    loss_fn = objectives.supervised_loss(model.apply, "classification")
    first, _ = loss_fn(params, (x, y), jax.random.key(2))
    second, _ = loss_fn(params, (x, y), jax.random.key(3))
    again, _ = loss_fn(params, (x, y), jax.random.key(2))
    assert float(first) == float(again) and abs(float(first) - float(second)) > 1e-3
    metrics = objectives.supervised_metrics(model.apply, "classification")(params, (x, y))
    eval_loss = objectives.per_example("classification", model.apply(params, x), y)["loss"]
    np.testing.assert_array_equal(metrics["loss"], eval_loss)
    assert abs(float(first) - float(jnp.mean(eval_loss))) > 1e-3


def test_unknown_kind_is_named():
    with pytest.raises(ValueError, match="kind"):
        objectives.per_example("ranking", jnp.zeros((2, 1)), jnp.zeros((2, 1)))
