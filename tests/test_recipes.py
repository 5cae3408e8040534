"""The main job reaches each task's stated quality (issue 2's 'done when'), on small budgets."""

import numpy as np
import pytest

from funcnn import datasets as ds
from funcnn import nn
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
        ("model", "resnet", "model must be one of"),
    ],
)
def test_bad_configuration_is_named(field, value, match):
    with pytest.raises(ValueError, match=match):
        recipes.resolve(recipes.TrainConfig(**{field: value}))


def test_the_main_jobs_optimizer_clips_then_decays_only_matrices():
    # Three AdamW steps of the main job's optimizer against the float64 transcription of
    # clip_by_global_norm(c) → AdamW(warmup-cosine, λ, mask = ndim ≥ 2). The gradients' norms
    # (≈ 300, 0.4, 60) make clipping visible despite Adam's scale invariance, and a decayed
    # bias or norm scale would move by ηλθ ≈ 3e-7 relative, far above the 1e-10 tolerance.
    import jax
    import jax.numpy as jnp

    from funcnn import optim
    from funcnn.reference import optim as ref

    config = recipes.resolve(recipes.TrainConfig(task="digits"))
    assert config.optimizer == "adamw" and config.clip_norm == 1.0 and config.weight_decay > 0
    total = 20
    rng = np.random.default_rng(0)
    start = {
        "dense_0": {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)},
        "layer_norm_1": {"scale": 1 + rng.normal(size=2), "bias": rng.normal(size=2)},
    }
    scales = [300.0, 0.4, 60.0]
    grads = [
        {"dense_0": {"w": s * rng.normal(size=(3, 2)), "b": np.zeros(2)},
         "layer_norm_1": {"scale": s * rng.normal(size=2), "bias": s * rng.normal(size=2)}}
        for s in scales
    ]  # fmt: skip
    warmup = int(config.warmup_fraction * total)
    reference = ref.Chain(
        ref.ClipByGlobalNorm(config.clip_norm),
        ref.AdamW(
            ref.schedule_warmup_cosine_decay(config.learning_rate, max(warmup, 1), total),
            weight_decay=config.weight_decay,
            mask={
                "dense_0/w": True,
                "dense_0/b": False,
                "layer_norm_1/bias": False,
                "layer_norm_1/scale": False,
            },
        ),
    )
    expected = ref.flatten_params(start)
    with jax.enable_x64(True):
        opt = recipes.build_optimizer(config, total_steps=total)
        params = jax.tree.map(jnp.asarray, start)
        state = opt.init(params)
        for g in grads:
            updates, state = opt.update(jax.tree.map(jnp.asarray, g), state, params)
            params = optim.apply_updates(params, updates)
            expected = reference.step(expected, ref.flatten_params(g))
        got = ref.flatten_params(jax.tree.map(np.asarray, params))
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-10, atol=1e-13, err_msg=name)
    # An undecayed leaf with zero gradient is bitwise what it was.
    np.testing.assert_array_equal(got["dense_0/b"], start["dense_0"]["b"])


def test_the_cnn_trains_with_batch_statistics_and_evaluates_with_running_ones():
    # One short epoch: the model is stateful, its running statistics move, the test metrics
    # come from them, and the images task is the only one a CNN accepts.
    result = run("digits", model="cnn", epochs=1, batch_size=128)
    assert result.config.model == "cnn" and nn.is_stateful(result.model)
    stats = result.state.model_state["batch_norm_2"]
    assert float(np.abs(np.asarray(stats["mean"])).max()) > 0  # moved from 0
    assert result.test_metrics["test_accuracy"] > 0.3  # chance is 0.1
    assert recipes.resolve(recipes.TrainConfig(model="cnn")).epochs == 20
    with pytest.raises(ValueError, match="model='cnn' needs an image task"):
        recipes.resolve(recipes.TrainConfig(task="spam", model="cnn"))
