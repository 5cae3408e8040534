"""Verify every optimizer configuration against its float64 NumPy reference, as a table.

The configurations and the test problem live in `funcnn.verify.registry`, the runner in
`funcnn.verify.runner` (shared with `tests/test_reference_agreement.py`); this module runs
them in a chosen dtype and judges each run. For a configuration run N steps from the same start θ₀:

    abs error  = maxₗ ‖θₗ − θₗʳᵉᶠ‖∞                     (over parameter leaves l)
    rel error  = maxₗ ‖θₗ − θₗʳᵉᶠ‖∞ / ‖θₗʳᵉᶠ‖∞
    lr error   = maxₖ |ηₖ − ηₖʳᵉᶠ| / |ηₖʳᵉᶠ|             (the learning rate used at step k)

and the run PASSES when both relative errors (the columns max_rel_error and max_lr_error)
are ≤ the dtype's tolerance (float64: 1e-10, float32: 1e-5); max_abs_error is shown for
scale and does not decide. The reference always runs in float64; the funcnn run in `dtype`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn._validation import check_choice, check_positive_int
from funcnn.verify import registry, runner

__all__ = [
    "DTYPES",
    "TOLERANCES",
    "VerifyRow",
    "documented_functions",
    "formula",
    "verify_all",
]

TOLERANCES: dict[str, float] = {"float64": 1e-10, "float32": 1e-5}
DTYPES: tuple[str, ...] = ("float64", "float32")


class VerifyRow(NamedTuple):
    """One configuration in one dtype: errors against the reference and the verdict."""

    configuration: str
    dtype: str
    steps: int
    max_abs_error: float
    max_rel_error: float
    max_lr_error: float
    tolerance: float
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        row = self._asdict()
        row["result"] = "PASS" if self.passed else "FAIL"
        return row


def _row(name: str, dtype: str, steps: int, result: runner.Comparison) -> VerifyRow:
    abs_error = max(
        float(np.max(np.abs(result.params[k] - r), initial=0.0))
        for k, r in result.reference_params.items()
    )
    tolerance = TOLERANCES[dtype]
    # Written so that NaN fails: NaN ≤ tol is False.
    passed = bool(result.max_rel_error <= tolerance and result.max_lr_error <= tolerance)
    return VerifyRow(
        name,
        dtype,
        steps,
        abs_error,
        result.max_rel_error,
        result.max_lr_error,
        tolerance,
        passed,
    )


def verify_all(
    names: Iterable[str] | None = None,
    *,
    dtypes: Iterable[str] = DTYPES,
    steps: int = 500,
    seed: int = 0,
    configurations: Mapping[str, runner.Buildable] | None = None,
) -> list[VerifyRow]:
    """Run each configuration through funcnn (in each dtype) and the float64 reference.

    `configurations` defaults to `funcnn.verify.registry.CONFIGS`; a caller may pass its own
    mapping name -> `registry.Spec` or `registry.OptimizerConfig(build, build_reference)` (the
    tests inject a deliberately wrong update to prove a FAIL is reported). `names` selects
    entries. Each float64 run enables x64 for its own duration only.
    """
    table = registry.CONFIGS if configurations is None else configurations
    names = list(table if names is None else names)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise KeyError(f"unknown configuration(s) {unknown}; choose from {list(table)}.")
    dtypes = list(dtypes)
    for dtype in dtypes:
        check_choice(dtype, "dtype", tuple(TOLERANCES))
    check_positive_int(steps, "steps")
    selected = {n: table[n] for n in names}
    rows: dict[tuple[str, str], VerifyRow] = {}
    for dtype in dtypes:
        with jax.enable_x64(dtype == "float64"):
            results = runner.compare_all(selected, steps, dtype, seed)
        for name, result in results.items():
            rows[name, dtype] = _row(name, dtype, steps, result)
    return [rows[n, d] for n in names for d in dtypes]


# ------------------------------------------------------------------------------ formulas


def documented_functions(spec: registry.Spec) -> list[Callable]:
    """The `funcnn.optim` functions a configuration's spec calls, outermost first.

    Read from the spec itself (every `Spec` node at any depth), so the formula shown is
    always the docstring of the code that actually runs, with no hand-kept list to drift.
    """
    found: list[Callable] = []

    def visit(value: Any) -> None:
        if isinstance(value, registry.Spec):
            fn = registry.STAGES[value.name].funcnn
            if fn.__doc__ and fn not in found:
                found.append(fn)
            for arg in (*value.args, *value.kwargs.values()):
                visit(arg)
        elif isinstance(value, Mapping):
            for item in value.values():
                visit(item)
        elif isinstance(value, list | tuple):
            for item in value:
                visit(item)

    visit(spec)
    return found


def formula(name: str) -> str:
    """Both sides of configuration `name`, hyperparameters spelled out, and the update rules
    its funcnn functions document."""
    if name not in registry.CONFIGS:
        raise KeyError(f"unknown configuration {name!r}; choose from {list(registry.CONFIGS)}.")
    spec = registry.CONFIGS[name]
    parts = [
        f"configuration {name!r} (funcnn.verify.registry.CONFIGS), one spec built twice:",
        f"\n  funcnn:    {spec.funcnn_call()}",
        f"  reference: {spec.reference_call()}",
        "\nwhich runs the update rules documented in:",
    ]
    for fn in documented_functions(spec):
        doc = inspect.cleandoc(fn.__doc__ or "")
        parts.append(f"\nfuncnn.optim.{fn.__name__}{inspect.signature(fn)}\n\n{doc}")
    return "\n".join(parts)
