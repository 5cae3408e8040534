"""Tests for funcnn.lab.gradcheck: every layer's gradient against central differences, a wrong
gradient caught, and the cost of backprop against finite differences."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.lab import gradcheck


def test_every_layer_type_matches_finite_differences():
    reports = gradcheck.check_layers()
    worst = {f"{r.name}: {leaf.path}": leaf.max_rel_error for r in reports for leaf in r.leaves}
    bad = {k: v for k, v in worst.items() if not v <= gradcheck.DEFAULT_TOLERANCE}
    assert not bad, f"leaves beyond tolerance {gradcheck.DEFAULT_TOLERANCE}: {bad}"
    # Every case checked something, and the parameterized layers checked their params.
    for r in reports:
        assert r.leaves, r.name
    assert any(leaf.path.startswith("params/") for r in reports for leaf in r.leaves)


def test_catalog_covers_every_layer_factory_in_nn():
    # A public function of funcnn.nn annotated to return a Layer is a layer type; each must
    # appear in the catalog (case names start with the factory name).
    factories = {
        name
        for name in nn.__all__
        if inspect.isfunction(fn := getattr(nn, name))
        and inspect.signature(fn).return_annotation in ("Layer", nn.Layer)
    }
    covered = {case.name.split(" ")[0].split("(")[0] for case in gradcheck.layer_cases()}
    combinators = {"serial"}  # every multi-layer case (mlp, transformer) is built with serial
    assert factories - covered - combinators == set()


def test_a_wrong_gradient_is_reported_on_its_leaf_only():
    @jax.custom_vjp
    def square(x):
        return x**2

    square.defvjp(lambda x: (x**2, x), lambda x, g: (2.2 * x * g,))  # d(x²)/dx is 2x, not 2.2x

    def loss(tree):
        return jnp.sum(square(tree["wrong"])) + jnp.sum(jnp.sin(tree["right"]))

    rng = np.random.default_rng(0)
    tree = {"wrong": rng.uniform(0.5, 1.5, (3, 2)), "right": rng.standard_normal(4)}
    errors = {e.path: e for e in gradcheck.leaf_errors(loss, tree)}
    # |2.2x − 2x| / (2.2x + 2x) = 0.2 / 4.2 exactly, on every entry.
    np.testing.assert_allclose(errors["wrong"].max_rel_error, 0.2 / 4.2, rtol=1e-6)
    assert errors["right"].max_rel_error < 1e-8
    assert (errors["wrong"].size, errors["right"].size) == (6, 4)


def test_leaf_errors_on_a_closed_form_gradient_are_rounding_only():
    # L = ½ θᵀAθ + bᵀθ has ∇L = Aθ + b; cubic terms vanish, so central differences are exact
    # up to rounding and the analytic gradient must agree to ~1e-9.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 5))
    a = a + a.T
    b = rng.standard_normal(5)
    loss = lambda t: 0.5 * t["theta"] @ (a @ t["theta"]) + b @ t["theta"]
    (row,) = gradcheck.leaf_errors(loss, {"theta": rng.standard_normal(5)})
    assert row.path == "theta" and row.max_rel_error < 1e-8


def test_leaf_errors_rejects_integer_leaves():
    with pytest.raises(TypeError, match="floating"):
        gradcheck.leaf_errors(lambda t: jnp.sum(t["ids"]), {"ids": np.arange(3)})


def test_backprop_is_a_constant_multiple_of_forward_while_finite_differences_grow_with_n():
    rows = gradcheck.backprop_cost((100, 1_000, 10_000), repeats=7, fd_sample=20)
    n = np.array([r.num_params for r in rows])
    assert np.all(np.abs(np.log10(n) - [2, 3, 4]) < 0.1), n  # N ≈ 10², 10³, 10⁴
    # Backprop costs a bounded multiple of one forward pass: XLA's own FLOP count of the
    # compiled programs (deterministic, so load on a shared machine cannot flip it). The
    # timed ratio is what scripts/gradcheck.py reports; timings are not asserted here.
    flop_ratios = np.array([r.flop_ratio for r in rows])
    assert np.all((flop_ratios > 1) & (flop_ratios < 5)), flop_ratios
    # Finite differences: 2 forward passes per parameter — linear in N by count ...
    np.testing.assert_array_equal([r.fd_evals for r in rows], 2 * n)
    # ... so their FLOPs relative to one backprop grow ~N (100× here, from N=10² to 10⁴).
    fd_over_bp = np.array([r.fd_evals * r.forward_flops / r.backprop_flops for r in rows])
    np.testing.assert_allclose(fd_over_bp / fd_over_bp[0], n / n[0], rtol=0.3)
