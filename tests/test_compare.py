"""Tests for funcnn.lab.compare and scripts/compare_optimizers.py, each on a tiny budget.

verify: the script passes every registered configuration and reports a deliberately wrong
update as FAIL (with exit status 1). race: the harness runs the math it claims (SGD's curve
equals the closed form of gradient descent on a quadratic) and momentum/Adam beat plain SGD
on an ill-conditioned quadratic. decay: AdamW's idle weights follow W₀·(1 − ηλ)^T exactly,
Adam+L2 drives them to ~0 whatever λ, and Adam+L2 ends with the smaller weight norm.
(AdamW with λ = 0 is plain Adam by construction — no decay stage — so it is not re-run.)
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from funcnn import optim
from funcnn.lab.compare import decay, race, verify
from funcnn.reference import optim as ref
from funcnn.verify import registry

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_optimizers.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("compare_optimizers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _load_script()


# ---------------------------------------------------------------------------------- verify


def test_verify_script_runs_the_chosen_configurations_and_writes_their_rows(
    script, tmp_path, capsys
):
    # The script's plumbing (flags, --only, JSON rows, exit status) on one configuration of
    # each family; every configuration's agreement itself is test_reference_agreement's job
    # (the same runner.compare_all, 500 steps, both dtypes), not repeated here.
    names = ["sgd_momentum", "adamw_piecewise_constant", "adafactor", "lion_cosine"]
    only = [flag for name in names for flag in ("--only", name)]
    argv = ["--out", str(tmp_path), "verify", "--steps", "5", "--dtype", "float64", *only]
    status = script.main(argv)
    out = capsys.readouterr().out
    rows = json.loads((tmp_path / "verify.json").read_text())
    assert status == 0, out
    assert {(r["configuration"], r["dtype"]) for r in rows} == {(n, "float64") for n in names}
    for row in rows:
        assert row["result"] == "PASS" and row["steps"] == 5
        assert row["max_rel_error"] <= verify.TOLERANCES[row["dtype"]]
    assert "FAIL" not in out


# A wrong formula (Nesterov's look-ahead where plain momentum is due) and an update that is
# right but for a 1e-6 relative scale: float64 must catch both; float32 (tolerance 1e-5)
# cannot see the second, which is exactly why float64 is the strict check.
WRONG = {
    "nesterov_instead_of_momentum": registry.OptimizerConfig(
        lambda: optim.sgd(0.02, 0.9, nesterov=True), lambda: ref.SGD(0.02, momentum=0.9)
    ),
    "adam_scaled_1e-6": registry.OptimizerConfig(
        lambda: optim.chain(optim.adam(1e-2), optim.scale(1 + 1e-6)), lambda: ref.Adam(1e-2)
    ),
}


def test_verify_reports_perturbed_updates_as_fail():
    rows = {(r.configuration, r.dtype): r for r in verify.verify_all(steps=5, configurations=WRONG)}
    assert not rows["nesterov_instead_of_momentum", "float64"].passed
    assert not rows["nesterov_instead_of_momentum", "float32"].passed
    assert rows["nesterov_instead_of_momentum", "float32"].max_rel_error > 1e-3
    scaled = rows["adam_scaled_1e-6", "float64"]
    assert not scaled.passed and 1e-10 < scaled.max_rel_error < 1e-5
    assert rows["adam_scaled_1e-6", "float32"].passed


def test_verify_script_exits_nonzero_on_fail(script, tmp_path, capsys, monkeypatch):
    # Inject the wrong configuration into the registry for this test only.
    monkeypatch.setitem(registry.CONFIGS, "wrong", WRONG["nesterov_instead_of_momentum"])
    argv = ["--out", str(tmp_path), "verify", "--only", "wrong", "--steps", "5"]
    status = script.main([*argv, "--dtype", "float32"])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL: wrong/float32" in out
    assert json.loads((tmp_path / "verify.json").read_text())[0]["result"] == "FAIL"


def test_formula_prints_both_sides_with_every_hyperparameter_spelled_out(script, capsys):
    assert script.main(["verify", "--formula", "adamw_mask_tree"]) == 0
    out = capsys.readouterr().out
    assert "funcnn:    optim.adamw(learning_rate=0.01, weight_decay=0.1, mask={'conv': False" in out
    assert (
        "reference: reference.optim.AdamW(learning_rate=0.01, weight_decay=0.1, "
        "mask={'dense/w': True, 'dense/b': False, 'conv/w': False})"
    ) in out
    assert "_TREE_MASK" not in out and "_WARMUP" not in out  # no private constant names
    for spec in registry.CONFIGS.values():  # every spec renders and names real stages
        assert spec.funcnn_call().startswith("optim.") and "reference" in spec.reference_call()


def test_the_verify_table_marks_the_columns_that_decide(script, tmp_path, capsys):
    argv = ["--out", str(tmp_path), "verify", "--only", "sgd", "--steps", "2"]
    assert script.main([*argv, "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "max_rel_error*" in out and "max_lr_error*" in out and "max_abs_error " in out
    assert "PASS when every column marked * is ≤ tolerance" in out


def test_the_race_count_in_the_help_is_the_registrys(script):
    assert f"# {len(race.RACE_OPTIMIZERS)} optimizers × 4 problems" in script.__doc__


def test_formula_prints_the_docstrings_of_the_code_that_runs(script, capsys):
    used = verify.documented_functions(registry.CONFIGS["clip_adamw_warmup_cosine"])
    assert {optim.clip_by_global_norm, optim.adamw, optim.warmup_cosine_decay} <= set(used)
    assert script.main(["verify", "--formula", "adamw_mask_fn"]) == 0
    out = capsys.readouterr().out
    assert optim.adamw.__doc__.strip().splitlines()[0] in out
    assert "θ ← θ − ηₜ·(m̂/(√v̂ + ε) + λ·θ·maskᵢ)" in out
    for name, config in registry.CONFIGS.items():
        assert verify.documented_functions(config), name


# ------------------------------------------------------------------------------------ race


@pytest.fixture(scope="module")
def quadratic_race():
    problem = race.quadratic(dim=8, condition=1e3)._replace(steps=400)
    names = ("sgd", "momentum", "adam")
    optimizers = {n: race.RACE_OPTIMIZERS[n] for n in names}
    return problem, {r.optimizer: r for r in race.race_all(problem, optimizers)}


def test_race_sgd_curve_is_closed_form_gradient_descent(quadratic_race):
    # x_k = (I − ηA)^k x₀, so f(x_k) = ½ Σᵢ λᵢ (1 − ηλᵢ)^{2k} cᵢ² with c = Qᵀx₀ (float64).
    problem, results = quadratic_race
    sgd = results["sgd"]
    x0 = np.asarray(problem.init["x"], np.float64)
    basis = np.eye(len(x0))
    a = np.stack([np.asarray(race.jax.grad(problem.loss)({"x": e})["x"]) for e in basis])
    lam, q = np.linalg.eigh(a.astype(np.float64))
    c = q.T @ x0
    k = np.arange(problem.steps + 1)[:, None]
    expected = 0.5 * np.sum(lam * (1 - sgd.learning_rate * lam) ** (2 * k) * c**2, axis=1)
    np.testing.assert_allclose(sgd.curve, expected, rtol=2e-3)


def test_race_momentum_and_adam_beat_sgd_on_ill_conditioned_quadratic(quadratic_race):
    _problem, results = quadratic_race
    sgd_steps = results["sgd"].steps_to_target
    for name in ("momentum", "adam"):
        steps = results[name].steps_to_target
        assert steps is not None, name
        assert sgd_steps is None or steps < sgd_steps, (name, steps, sgd_steps)
        assert results[name].final_loss < results["sgd"].final_loss
    # The best stable SGD step is bounded by 2/λ_max = 2e-3: the sweep must respect it.
    assert results["sgd"].learning_rate < 2e-3


@pytest.fixture(scope="module")
def new_racers():
    """A subset of the optimizers added with issue 22: those that read the extra arguments."""
    problem = race.quadratic(dim=8, condition=1e3)._replace(steps=60)
    names = ("lbfgs", "torch_lbfgs", "polyak_sgd", "sam")
    optimizers = {n: race.RACE_OPTIMIZERS[n] for n in names}
    return problem, {r.optimizer: r for r in race.race_all(problem, optimizers)}


def test_race_gives_the_extra_arguments_and_runs_step_choosers_once(new_racers):
    problem, results = new_racers
    f0 = float(problem.loss(problem.init))
    for name in ("lbfgs", "torch_lbfgs", "polyak_sgd"):
        assert not results[name].swept and results[name].learning_rate == 1.0, name
    assert results["sam"].swept and results["sam"].learning_rate in race.LEARNING_RATES
    # the line searches read value and value_fn: on an 8-D quadratic they are done early
    for name in ("lbfgs", "torch_lbfgs"):
        steps = results[name].steps_to_target
        assert steps is not None and steps <= 40, (name, steps)
    # Polyak's step reads value; SAM's opaque mode calls grad_fn: both make progress
    for name in ("polyak_sgd", "sam"):
        assert results[name].final_loss < 1e-2 * f0, name


def test_steps_to_target_requires_staying_below():
    curve = np.array([5.0, 0.5, 2.0, 0.4, 0.3, np.nan])
    assert race.steps_to_target(curve[:5], 1.0) == 3
    assert race.steps_to_target(curve, 1.0) is None  # a NaN at the end is not "reached"
    assert race.steps_to_target(np.array([0.1, 0.1]), 1.0) == 0


# ----------------------------------------------------------------------------------- decay

TINY = decay.DecaySetting(n_train=64, hidden=32, steps=100, learning_rate=1e-2, seed=0)


@pytest.fixture(scope="module")
def decay_runs():
    # Adam+L2 runs share one compiled program (λ is traced); each AdamW λ compiles its own.
    runs = {("adam_l2", wd): decay.run_decay("adam_l2", wd, TINY) for wd in (0.0, 1e-2, 1e-1)}
    runs["adamw", 1e-2] = decay.run_decay("adamw", 1e-2, TINY)
    return runs


def test_adamw_shrinks_idle_weights_geometrically(decay_runs):
    run = decay_runs["adamw", 1e-2]
    expected = run.idle_weight_norm_init * (1 - TINY.learning_rate * 1e-2) ** TINY.steps
    np.testing.assert_allclose(run.idle_weight_norm, expected, rtol=1e-5)


def test_adam_l2_drives_idle_weights_to_zero_whatever_lambda(decay_runs):
    # Their gradient is λW alone and Adam divides it by its RMS: a step of ≈ η·sign(W), so
    # after T·η = 1 of travel they are ~η, and the path does not depend on λ at all.
    l2, l2_strong, adamw = (
        decay_runs["adam_l2", 1e-2],
        decay_runs["adam_l2", 1e-1],
        decay_runs["adamw", 1e-2],
    )
    assert l2.idle_weight_norm < 0.1 * adamw.idle_weight_norm
    assert l2.idle_weight_norm < 0.1 * l2.idle_weight_norm_init
    np.testing.assert_allclose(l2.idle_weight_norm, l2_strong.idle_weight_norm, rtol=1e-3)


def test_adam_l2_ends_with_smaller_weights_than_adamw_at_equal_lambda(decay_runs):
    # Adam+L2 settles where ∇ℓ + λW = 0 (the L2-regularized minimum); AdamW at the same λ
    # only pulls W by ηλW per step, a far weaker constraint for η·T ≈ 1.
    assert decay_runs["adam_l2", 1e-2].weight_norm < 0.8 * decay_runs["adamw", 1e-2].weight_norm
    # and decoupled decay still shrinks them relative to no decay at all (plain Adam).
    assert decay_runs["adamw", 1e-2].weight_norm < decay_runs["adam_l2", 0.0].weight_norm


def test_verify_accepts_out_after_the_subcommand(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_optimizers.py"
    flags = ["--only", "sgd", "--steps", "3", "--dtype", "float64"]
    after = subprocess.run(
        [sys.executable, str(script), "verify", "--out", str(tmp_path / "after"), *flags],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert after.returncode == 0, after.stderr
    assert (tmp_path / "after" / "verify.json").is_file()
    bad = subprocess.run(
        [sys.executable, str(script), "verify", "--steps", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "--steps: expected a positive integer" in bad.stderr


def test_write_json_is_strict_json_with_null_for_nan_and_inf_like_the_train_scripts(tmp_path):
    from funcnn.lab.compare import write_json

    payload = {"loss": [1.5, float("nan")], "best": float("inf"), "t": np.float32("-inf")}
    text = write_json(tmp_path / "sub" / "r.json", payload).read_text()
    # json.loads with parse_constant raising: the NaN/Infinity tokens would not be JSON.
    strict = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON token {c}"))
    assert strict == {"loss": [1.5, None], "best": None, "t": None}
