"""funcnn.train: one step against hand-derived SGD math, determinism, exact resume, evaluate."""

import sys
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim, train


def linear_loss(params, batch, key):
    """ℓ(w, b) = mean((x·w + b − y)²) — gradients known in closed form."""
    del key
    x, y = batch
    err = x @ params["w"] + params["b"] - y
    return jnp.mean(err**2), {"mae": jnp.mean(jnp.abs(err))}


def pull_to_batch(params, batch, key):
    """ℓ(w) = ½‖w − batch‖²: SGD moves w toward each batch by η·(batch − w)."""
    del key
    return 0.5 * jnp.sum((params["w"] - batch) ** 2), {}


def make_data(n=24, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)
    return x, y


def fresh_state(seed=0, optimizer=None):
    params = {"w": jnp.zeros((3,), jnp.float32), "b": jnp.zeros((), jnp.float32)}
    return train.init_state(params, optimizer or optim.sgd(0.1), jax.random.key(seed))


def test_make_step_matches_closed_form_sgd_in_float64():
    with jax.enable_x64(True):
        x, y = (a.astype(np.float64) for a in make_data())
        params = {"w": jnp.asarray([0.1, 0.2, -0.3]), "b": jnp.asarray(0.05)}
        state = train.init_state(params, optim.sgd(0.1), jax.random.key(0))
        step = train.make_step(linear_loss, optim.sgd(0.1))
        new_state, metrics = step(state, (jnp.asarray(x), jnp.asarray(y)))
        # ∂ℓ/∂w = (2/N)·xᵀ(xw + b − y), ∂ℓ/∂b = (2/N)·Σ(xw + b − y)
        w, b = np.array([0.1, 0.2, -0.3]), 0.05
        err = x @ w + b - y
        expected_w = w - 0.1 * (2 / len(x)) * x.T @ err
        expected_b = b - 0.1 * (2 / len(x)) * err.sum()
        np.testing.assert_allclose(new_state.params["w"], expected_w, rtol=1e-12)
        np.testing.assert_allclose(new_state.params["b"], expected_b, rtol=1e-12)
        np.testing.assert_allclose(metrics["loss"], np.mean(err**2), rtol=1e-12)
        assert int(new_state.step) == 1


def test_make_step_gives_the_optimizer_the_loss_value_and_function():
    """polyak_sgd reads value = ℓ: on ℓ = ½‖w − c‖² one step is w ← w − ½(w − c) (γ = ℓ/‖g‖²
    = ½); lbfgs's line search calls value_fn on the batch: its first direction is g/‖g‖
    and the trial step η = 1 meets the strong Wolfe conditions (φ'(1) = 1 − ‖g‖ with
    ‖g‖ ≈ 2.87), so w ← w − g/‖g‖."""
    with jax.enable_x64(True):
        target = jnp.asarray([1.0, -2.0, 0.5])
        params = {"w": jnp.asarray([3.0, 0.0, 0.0])}
        g = np.array([3.0, 0.0, 0.0]) - np.asarray(target)
        for opt, expected in (
            (optim.polyak_sgd(max_learning_rate=10.0), np.array([2.0, -1.0, 0.25])),
            (optim.lbfgs(), np.array([3.0, 0.0, 0.0]) - g / np.linalg.norm(g)),
        ):
            state = train.init_state(params, opt, jax.random.key(0))
            new_state, _ = train.make_step(pull_to_batch, opt, donate=False)(state, target)
            np.testing.assert_allclose(np.asarray(new_state.params["w"]), expected, rtol=1e-10)


def test_a_callback_changes_an_injected_learning_rate_between_dispatches():
    """inject_hyperparams(sgd) at η = 0.1; after the first dispatch (4 steps) the callback
    sets η = 0: the params stop moving, and the step was compiled once."""
    opt = optim.inject_hyperparams(optim.sgd)(learning_rate=0.1)
    seen = []

    def freeze_after_first(state, info):
        seen.append(np.asarray(state.params["w"]))
        return state._replace(opt_state=optim.set_hyperparam(state.opt_state, "learning_rate", 0.0))

    data = make_data()
    state, _ = train.fit(
        fresh_state(optimizer=opt),
        linear_loss,
        opt,
        data,
        batch_size=6,
        epochs=2,
        steps_per_dispatch=4,
        progress=False,
        callback=freeze_after_first,
    )
    assert len(seen) == 2 and not np.allclose(seen[0], 0.0)
    np.testing.assert_array_equal(seen[1], seen[0])
    np.testing.assert_array_equal(np.asarray(state.params["w"]), seen[0])
    assert float(state.opt_state.hyperparams["learning_rate"]) == 0.0


def test_make_step_donates_and_runs_repeatedly_without_warnings():
    step = train.make_step(linear_loss, optim.adam(1e-2))
    state = fresh_state(optimizer=optim.adam(1e-2))
    batch = tuple(jnp.asarray(a) for a in make_data())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            state, _ = step(state, batch)
    assert int(state.step) == 3


def test_epoch_batches_is_a_deterministic_permutation_per_epoch():
    x = jnp.arange(10.0)
    key = jax.random.key(3)
    e0 = np.asarray(train.epoch_batches(x, key, 0, 3))
    e0_again = np.asarray(train.epoch_batches(x, key, 0, 3))
    e1 = np.asarray(train.epoch_batches(x, key, 1, 3))
    assert e0.shape == (3, 3)
    np.testing.assert_array_equal(e0, e0_again)
    assert len(set(e0.ravel().tolist())) == 9  # no example repeated within an epoch
    assert not np.array_equal(e0, e1)


def test_fit_is_bit_for_bit_deterministic_and_learns():
    data = make_data()
    runs = []
    for _ in range(2):
        state, history = train.fit(
            fresh_state(),
            linear_loss,
            optim.sgd(0.1),
            data,
            batch_size=8,
            epochs=30,
            progress=False,
        )
        runs.append(state)
    chex.assert_trees_all_equal(runs[0].params, runs[1].params)
    assert history["epoch"] == list(range(1, 31))
    assert history["train_loss"][-1] < 1e-3 * history["train_loss"][0]
    np.testing.assert_allclose(runs[0].params["w"], [1.0, -2.0, 0.5], atol=1e-2)


def test_fit_interrupted_mid_epoch_and_resumed_matches_uninterrupted():
    data, key = make_data(), jax.random.key(7)
    opt = optim.adam(0.05)
    kwargs = dict(batch_size=5, epochs=4, data_key=key, progress=False)  # 4 steps per epoch
    full, _ = train.fit(fresh_state(optimizer=opt), linear_loss, opt, data, **kwargs)

    # Chunks of 3 restart at each epoch boundary: steps 3, 4 | 7 — so we stop mid-epoch 2.
    stop_after = lambda state, info: info.step >= 6
    part, _ = train.fit(
        fresh_state(optimizer=opt),
        linear_loss,
        opt,
        data,
        steps_per_dispatch=3,
        callback=stop_after,
        **kwargs,
    )
    assert int(part.step) == 7
    resumed, _ = train.fit(part, linear_loss, opt, data, **kwargs)
    assert int(resumed.step) == 16
    chex.assert_trees_all_equal(resumed.params, full.params)


def test_fit_compiles_once_across_epochs():
    data = make_data(seed=1)
    opt = optim.sgd(0.05)
    train.fit(
        fresh_state(optimizer=opt), linear_loss, opt, data, batch_size=8, epochs=5, progress=False
    )
    assert train.compile_count(train.compiled_chunk(linear_loss, opt, 8)) == 1


def test_evaluate_is_the_exact_mean_with_a_partial_last_batch():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    metric = lambda params, batch: {"sq": (batch[:, 0] * params) ** 2}
    got = train.evaluate(metric, jnp.float32(2.0), x, batch_size=4)
    assert got["sq"] == pytest.approx(np.mean((2.0 * np.arange(10)) ** 2), rel=1e-6)


@pytest.mark.parametrize(
    "data, batch_size, match",
    [
        ((np.zeros((4, 2)), np.zeros(4)), 8, "batch_size=8 is larger than the data"),
        ((np.zeros((0, 2)), np.zeros(0)), 1, "empty"),
        ((np.zeros((4, 2)), np.zeros(5)), 2, "leading"),
        ((np.zeros((4, 2)),), 0, "batch_size"),
    ],
)
def test_fit_rejects_bad_data(data, batch_size, match):
    with pytest.raises(ValueError, match=match):
        train.fit(
            fresh_state(),
            linear_loss,
            optim.sgd(0.1),
            data,
            batch_size=batch_size,
            epochs=1,
            progress=False,
        )


def test_fit_leaves_the_callers_params_and_key_usable():
    # fit donates its state to XLA; the arrays the caller passed to init_state must survive.
    params = {"w": jnp.full((3,), 0.25, jnp.float32), "b": jnp.asarray(0.5, jnp.float32)}
    key = jax.random.key(11)
    state = train.init_state(params, optim.sgd(0.1), key)
    train.fit(
        state, linear_loss, optim.sgd(0.1), make_data(), batch_size=8, epochs=1, progress=False
    )
    np.testing.assert_array_equal(np.asarray(params["w"]), np.full((3,), 0.25, np.float32))
    assert float(params["b"]) == 0.5
    jax.random.normal(key, (2,))  # a deleted key raises here


def test_fit_rejects_a_quick_start_style_loss_with_a_clear_type_error():
    def loss(p, x, y):
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    with pytest.raises(TypeError, match=r"loss_fn\(params, batch, key\) -> \(loss, aux\)"):
        train.fit(
            fresh_state(12),
            loss,
            optim.sgd(0.1),
            make_data(),
            batch_size=8,
            epochs=1,
            progress=False,
        )


def test_fit_epoch_metrics_are_the_mean_over_the_epochs_steps_with_a_shorter_last_chunk():
    # 5 steps per epoch dispatched as chunks of 3 + 2: the epoch's train_loss must be the
    # mean of its 5 per-step losses (divisor 5), replayed one step at a time with make_step.
    data, key, opt = make_data(n=26), jax.random.key(3), optim.sgd(0.05)
    kwargs = dict(batch_size=5, epochs=2, data_key=key, progress=False)
    _, history = train.fit(
        fresh_state(optimizer=opt), linear_loss, opt, data, steps_per_dispatch=3, **kwargs
    )
    step, state = train.make_step(linear_loss, opt, donate=False), fresh_state(optimizer=opt)
    expected = {"train_loss": [], "train_mae": []}
    for epoch in range(2):
        xs, ys = train.epoch_batches(data, key, epoch, 5)
        per_step = []
        for x, y in zip(xs, ys, strict=True):
            state, metrics = step(state, (x, y))
            per_step.append((float(metrics["loss"]), float(metrics["mae"])))
        assert len(per_step) == 5
        expected["train_loss"].append(np.mean([loss for loss, _ in per_step]))
        expected["train_mae"].append(np.mean([mae for _, mae in per_step]))
    for name, values in expected.items():
        np.testing.assert_allclose(history[name], values, rtol=1e-5)


def test_train_generated_runs_exactly_steps_updates_with_a_short_last_dispatch():
    # ℓ(w) = ½‖w − 1‖² under SGD(η): w_t = 1 − (1 − η)^t from w_0 = 0, and ℓ before step t
    # is (3/2)(1 − η)^{2t}. steps = 5 in dispatches of 2 → chunks [0, 1], [2, 3], [4].
    lr = 0.1
    sgd = optim.sgd(lr)
    state = train.init_state({"w": jnp.zeros(3)}, sgd, jax.random.key(0))
    state, history = train.train_generated(
        state, pull_to_batch, sgd, lambda key: jnp.ones(3), steps=5, steps_per_dispatch=2
    )
    assert int(state.step) == 5
    np.testing.assert_allclose(state.params["w"], 1 - (1 - lr) ** 5, rtol=1e-6)
    assert history["step"] == [2.0, 4.0, 5.0]
    per_step = 1.5 * (1 - lr) ** (2 * np.arange(5))
    expected = [per_step[0:2].mean(), per_step[2:4].mean(), per_step[4]]
    np.testing.assert_allclose(history["loss"], expected, rtol=1e-6)


@pytest.mark.parametrize("tqdm_installed", [True, False])
def test_fit_shows_progress_by_default_a_bar_and_one_line_per_epoch(
    tqdm_installed, capsys, monkeypatch
):
    # The default progress=True: a tqdm bar on stderr (when tqdm is installed) and, on stdout,
    # a line per epoch "epoch   k  <metric> <mean>…" — step and time stay in the history.
    if not tqdm_installed:
        monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # `import tqdm.auto` now fails
    opt = optim.sgd(0.1)
    _, history = train.fit(
        fresh_state(optimizer=opt), linear_loss, opt, make_data(), batch_size=8, epochs=2
    )
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2
    assert set(history) == {"epoch", "step", "time", "train_loss", "train_mae"}
    for epoch, line in enumerate(lines):
        loss, mae = history["train_loss"][epoch], history["train_mae"][epoch]
        assert line == f"epoch {epoch + 1:>3}  train_loss {loss:.4f}  train_mae {mae:.4f}"
    assert ("step" in captured.err) == tqdm_installed  # the bar's unit


def test_train_generated_draws_its_data_with_key_0_by_default():
    # Documented default: data_key=None is jax.random.key(0) (and another key other data).
    sgd = optim.sgd(0.1)

    def run(**kwargs):
        state = train.init_state({"w": jnp.zeros(3)}, sgd, jax.random.key(5))
        sample = lambda key: jax.random.normal(key, (3,))
        state, _ = train.train_generated(state, pull_to_batch, sgd, sample, steps=3, **kwargs)
        return np.asarray(state.params["w"])

    default = run()
    np.testing.assert_array_equal(default, run(data_key=jax.random.key(0)))
    assert not np.array_equal(default, run(data_key=jax.random.key(1)))


class _RecordingBar:
    """Stands in for tqdm's bar class: records what fit tells it."""

    def __init__(self, *, total, **options):
        self.total, self.updates, self.postfixes, self.lines = total, [], [], []

    def update(self, n):
        self.updates.append(n)

    def set_postfix(self, **fields):
        self.postfixes.append(fields)

    def write(self, line):
        self.lines.append(line)

    def close(self):
        pass


def test_the_bar_counts_the_steps_left_and_shows_the_epoch(monkeypatch):
    # 24 examples / 8 = 3 steps per epoch; resumed at step 2 of 6 the bar has 4 steps to go.
    bars = []
    monkeypatch.setattr(
        "tqdm.auto.tqdm", lambda **options: bars.append(_RecordingBar(**options)) or bars[-1]
    )
    opt = optim.sgd(0.1)
    kwargs = dict(batch_size=8, epochs=2, data_key=jax.random.key(3), steps_per_dispatch=1)
    part, _ = train.fit(
        fresh_state(optimizer=opt),
        linear_loss,
        opt,
        make_data(),
        callback=lambda state, info: int(state.step) == 2,
        **kwargs,
    )
    train.fit(part, linear_loss, opt, make_data(), **kwargs)
    (first, resumed) = bars
    assert (first.total, resumed.total) == (6, 4)
    assert sum(resumed.updates) == 4
    assert [p["epoch"] for p in resumed.postfixes] == [1, 2, 2, 2]


# ----------------------------------------------- the contract, stated and enforced (#19, #24)


def _fit(loss_fn=linear_loss, **kwargs):
    """One epoch of 3 steps of SGD on make_data(); kwargs go to fit."""
    opt = optim.sgd(0.1)
    return train.fit(
        fresh_state(optimizer=opt), loss_fn, opt, make_data(), batch_size=8, epochs=1,
        progress=False, **kwargs,
    )  # fmt: skip


def test_fit_and_the_step_given_a_params_dict_name_trainstate_and_init_state():
    params = fresh_state().params
    with pytest.raises(TypeError, match=r"fit takes a TrainState.*got dict.*init_state\("):
        train.fit(params, linear_loss, optim.sgd(0.1), make_data(), batch_size=8, epochs=1)
    step = train.make_step(linear_loss, optim.sgd(0.1))
    with pytest.raises(TypeError, match=r"takes a TrainState.*got dict.*init_state\("):
        step(params, tuple(jnp.asarray(a) for a in make_data()))


def test_a_per_example_aux_metric_is_refused_naming_it_and_its_shape():
    # Before: fit summed the (8,) values over the batch too, reporting train_acc == 8× the
    # accuracy (4.0 with batch 4). Aux metrics are scalars, averaged over the epoch's steps.
    def per_example_aux(params, batch, key):
        loss, _ = linear_loss(params, batch, key)
        return loss, {"acc": jnp.ones(batch[0].shape[0])}

    with pytest.raises(ValueError, match=r"aux metric 'acc' has shape \(8,\).*scalars"):
        _fit(per_example_aux)


def test_aux_none_or_named_loss_is_refused_stating_the_contract():
    def no_aux(params, batch, key):
        return linear_loss(params, batch, key)[0], None

    def aux_named_loss(params, batch, key):
        loss, _ = linear_loss(params, batch, key)
        return loss, {"loss": 2 * loss}

    with pytest.raises(TypeError, match=r"no_aux must return a dict as aux .*its aux is None"):
        _fit(no_aux)
    with pytest.raises(ValueError, match=r"aux_named_loss's aux has a metric named 'loss'"):
        _fit(aux_named_loss)


@pytest.mark.parametrize("name", ["epoch", "train_loss", "step"])
def test_eval_fn_may_not_overwrite_the_historys_own_entries(name):
    def clashing(params):
        return {name: 1.0}

    with pytest.raises(ValueError, match=rf"clashing returned a metric named '{name}'"):
        _fit(eval_fn=clashing)


def test_eval_fn_returning_a_float_names_it_and_its_contract():
    def score(params):
        return 0.5

    with pytest.raises(TypeError, match=r"eval_fn\(params\) -> \{name: scalar\}.*score returned"):
        _fit(eval_fn=score)


def test_a_wrong_label_dtype_is_reported_as_itself_not_as_a_signature_problem():
    # float labels for a classifier: cross_entropy's own message must come through (before,
    # fit wrapped it in "loss_fn must have the signature …").
    from funcnn import nn
    from funcnn.train import objectives

    model = nn.mlp([3, 3])
    params, _ = model.init(jax.random.key(0), (-1, 3))
    loss_fn = objectives.supervised_loss(model.apply, "classification")
    x, y = make_data()  # y is float32: regression targets, not class ids
    opt = optim.sgd(0.1)
    state = train.init_state(params, opt, jax.random.key(0))
    with pytest.raises(ValueError, match=r"cross_entropy: .*integer array") as err:
        train.fit(state, loss_fn, opt, (x, y), batch_size=8, epochs=1, progress=False)
    first_line, note = str(err.value).split("\n", 1)
    assert "signature" not in first_line and "cross_entropy" in first_line
    assert "((8, 3), 'float32'), ((8,), 'float32')" in note


def test_the_callback_gets_a_typed_info_whose_carry_round_trips_through_json():
    infos = []
    _fit(steps_per_dispatch=2, callback=lambda state, info: infos.append(info))
    assert [(i.step, i.epoch_ended) for i in infos] == [(2, False), (3, True)]
    first, last = infos
    assert isinstance(first, train.FitInfo) and isinstance(first.carry, train.FitCarry)
    assert first.carry.epoch_steps == 2 and set(first.carry.epoch_sums) == {"loss", "mae"}
    assert last.carry.epoch_steps == 0 and last.history["epoch"] == [1]
    assert train.FitCarry.from_json(first.carry.to_json()) == first.carry
    with pytest.raises(ValueError, match="carry must be a FitCarry or its to_json"):
        train.FitCarry.from_json({"history": {}})


# ---------------------------------------------------------------------------- model state


def _bn_setup():
    """y = dense(batch_norm(x)): the running statistics are those of x itself, in closed form."""
    from funcnn import nn
    from funcnn.train import objectives

    model = nn.serial(nn.batch_norm(), nn.dense(1))
    params, _ = model.init(jax.random.key(0), (-1, 3))
    rng = np.random.default_rng(4)
    x = rng.normal(2.0, 3.0, size=(12, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -1.0, 0.5])).astype(np.float32)[:, None]
    loss = objectives.supervised_loss(model.apply, "regression", stateful=True)
    metrics = objectives.supervised_metrics(model.apply, "regression", stateful=True)
    state = train.init_state(
        params, optim.sgd(0.1), jax.random.key(1), nn.initial_state(model, (-1, 3))
    )
    return model, state, loss, metrics, (x, y)


def test_make_step_carries_the_model_state_with_pytorch_running_statistics():
    _, state, loss, _, (x, y) = _bn_setup()
    step = train.make_step(loss, optim.sgd(0.1))
    new, metrics = step(state, (x[:6], y[:6]))
    stats = new.model_state["batch_norm_0"]
    batch = x[:6].astype(np.float64)
    np.testing.assert_allclose(stats["mean"], 0.1 * batch.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * batch.var(0, ddof=1), rtol=1e-5)
    assert int(new.step) == 1 and np.isfinite(float(metrics["loss"]))
    assert new.params["batch_norm_0"]["scale"].shape == (3,)  # params still trained


def test_evaluate_and_fit_read_the_running_statistics():
    _, state, loss, metrics, data = _bn_setup()
    seen = []

    def eval_fn(params, model_state):
        seen.append(model_state)
        return train.evaluate(metrics, params, data, model_state=model_state, batch_size=5)

    final, history = train.fit(
        state,
        loss,
        optim.sgd(0.1),
        data,
        batch_size=6,
        epochs=2,
        eval_fn=eval_fn,
        progress=False,
    )
    assert len(seen) == 2 and "loss" in history
    # Eval mode normalizes with the running statistics, in closed form:
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), final.params)
    s = jax.tree.map(lambda a: np.asarray(a, np.float64), final.model_state["batch_norm_0"])
    x, y = (np.asarray(a, np.float64) for a in data)
    normed = (x - s["mean"]) / np.sqrt(s["var"] + 1e-5)
    normed = normed * p["batch_norm_0"]["scale"] + p["batch_norm_0"]["bias"]
    pred = normed @ p["dense_1"]["w"] + p["dense_1"]["b"]
    np.testing.assert_allclose(history["loss"][-1], np.mean((pred - y) ** 2), rtol=1e-5)


def test_fit_names_the_stateful_contract_when_the_loss_does_not_follow_it():
    _, state, _, _, data = _bn_setup()

    def stateless_loss(params, batch, key):
        return jnp.zeros(()), {}

    with pytest.raises(TypeError, match="model_state\\) -> \\(loss, aux, new_model_state\\)"):
        train.fit(state, stateless_loss, optim.sgd(0.1), data, batch_size=6, epochs=1)

    def wrong_state(params, batch, key, model_state):
        return jnp.zeros(()), {}, {}

    with pytest.raises(TypeError, match="shaped like the old"):
        train.fit(state, wrong_state, optim.sgd(0.1), data, batch_size=6, epochs=1)
