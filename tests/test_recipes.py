"""The main job reaches each task's stated quality (issue 2's 'done when'), on small budgets."""

import numpy as np
import pytest

from funcnn import datasets as ds
from funcnn.lab import recipes


def run(task, **overrides):
    config = recipes.TrainConfig(task=task, **overrides)
    return recipes.run(config, progress=False)


def test_digits_reaches_97_percent_on_the_held_out_fifth():
    result = run("digits")
    assert result.test_metrics["test_accuracy"] >= 0.97
    assert len(result.task.x_test) == 360  # 20% of 1797, never seen in training


def test_xor_is_solved_exactly_by_one_hidden_layer():
    assert run("xor").test_metrics["test_accuracy"] == 1.0


def test_spirals_reach_95_percent():
    assert run("spirals").test_metrics["test_accuracy"] >= 0.95


def test_breast_cancer_reaches_95_percent():
    assert run("breast_cancer").test_metrics["test_accuracy"] >= 0.95


def test_sine_is_approximated_to_mse_below_1e_3():
    assert run("sine").test_metrics["test_loss"] < 1e-3


def test_house_coefficients_are_within_5_percent_of_the_truth():
    result = run("house")
    w = np.asarray(result.state.params["dense_0"]["w"])
    learned = ds.house_coefficients(result.task, w)
    np.testing.assert_allclose(learned, ds.tabular.HOUSE_COEFFICIENTS, rtol=0.05)


def test_spam_planted_words_rank_at_the_extremes():
    result = run("spam")
    w = np.asarray(result.state.params["dense_0"]["w"])[:, 0]
    vocab = result.task.info["vocabulary"]
    ranked = [vocab[i] for i in np.argsort(w)]
    n = len(ds.tabular.SPAM_WORDS)
    assert set(ranked[-n:]) == set(ds.tabular.SPAM_WORDS)
    assert set(ranked[:n]) == set(ds.tabular.HAM_WORDS)
    assert any("weighted vote" in line for line in recipes.readout(result))


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("task", "mnist", "task must be one of"),
        ("optimizer", "lbfgs", "optimizer must be one of"),
        ("learning_rate", -1.0, "learning_rate must be in"),
        ("dropout", 1.5, r"dropout must be in \[0.0, 1.0\]"),
        ("activation", "swish2", "activation must be one of"),
    ],
)
def test_bad_configuration_is_named(field, value, match):
    with pytest.raises(ValueError, match=match):
        recipes.resolve(recipes.TrainConfig(**{field: value}))
