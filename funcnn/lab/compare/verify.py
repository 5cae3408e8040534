"""Verify every optimizer configuration against its float64 NumPy reference, as a table.

The configurations, the test problem and both runners live in `funcnn.verify.registry`
(shared with `tests/test_reference_agreement.py`); this module runs them in a chosen dtype
and judges each run. For a configuration run N steps from the same start θ₀:

    abs error  = maxₗ ‖θₗ − θₗʳᵉᶠ‖∞                     (over parameter leaves l)
    rel error  = maxₗ ‖θₗ − θₗʳᵉᶠ‖∞ / ‖θₗʳᵉᶠ‖∞
    lr error   = maxₖ |ηₖ − ηₖʳᵉᶠ| / |ηₖʳᵉᶠ|             (the learning rate used at step k)

and the run PASSES when both relative errors are ≤ the dtype's tolerance (float64: 1e-10,
float32: 1e-5). The reference always runs in float64; the funcnn run in `dtype`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn import optim
from funcnn._validation import check_choice, check_positive_int
from funcnn.verify import registry as configs

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


def _row(name: str, dtype: str, steps: int, result: configs.Comparison) -> VerifyRow:
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
    registry: Mapping[str, configs.OptimizerConfig] | None = None,
) -> list[VerifyRow]:
    """Run each configuration through funcnn (in each dtype) and the float64 reference.

    `registry` defaults to `funcnn.verify.registry.CONFIGS`; a caller may pass its own
    mapping name -> `OptimizerConfig(build, build_reference)` (the tests inject a
    deliberately wrong update to prove a FAIL is reported). `names` selects entries.
    Each float64 run enables x64 for its own duration only.
    """
    registry = configs.CONFIGS if registry is None else registry
    names = list(registry if names is None else names)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise KeyError(f"unknown configuration(s) {unknown}; choose from {list(registry)}.")
    dtypes = list(dtypes)
    for dtype in dtypes:
        check_choice(dtype, "dtype", tuple(TOLERANCES))
    check_positive_int(steps, "steps")
    selected = {n: registry[n] for n in names}
    rows: dict[tuple[str, str], VerifyRow] = {}
    for dtype in dtypes:
        with jax.enable_x64(dtype == "float64"):
            results = configs.compare_all(selected, steps, dtype, seed)
        for name, result in results.items():
            rows[name, dtype] = _row(name, dtype, steps, result)
    return [rows[n, d] for n in names for d in dtypes]


# ------------------------------------------------------------------------------ formulas


def documented_functions(build: Callable[[], Any]) -> list[Callable]:
    """The public `funcnn.optim` functions a configuration's `build` calls, in call order.

    Read from the names its code refers to (`build.__code__.co_names`), so the formula shown
    is always the docstring of the code that actually runs, with no hand-kept list to drift.
    """
    found: list[Callable] = []
    for name in build.__code__.co_names:
        fn = getattr(optim, name, None)
        if inspect.isfunction(fn) and fn.__doc__ and fn not in found:
            found.append(fn)
    return found


def formula(name: str) -> str:
    """The update rule checked for configuration `name`, as its funcnn docstrings state it."""
    if name not in configs.CONFIGS:
        raise KeyError(f"unknown configuration {name!r}; choose from {list(configs.CONFIGS)}.")
    build = configs.CONFIGS[name].build
    try:  # the registry line(s) that build it, hyperparameters included
        source = inspect.cleandoc(inspect.getsource(build))
    except (OSError, TypeError):
        source = "(source unavailable)"
    parts = [f"configuration {name!r}, registered in funcnn.verify.registry as:\n\n{source}\n"]
    parts.append("which runs the update rules documented in:")
    for fn in documented_functions(build):
        doc = inspect.cleandoc(fn.__doc__ or "")
        parts.append(f"\nfuncnn.optim.{fn.__name__}{inspect.signature(fn)}\n\n{doc}")
    return "\n".join(parts)
