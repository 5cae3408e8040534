"""Optimizer comparisons behind `scripts/compare_optimizers.py`.

- `verify`: every configuration of `funcnn.verify.registry` against its float64 NumPy
  reference, in float64 and float32, judged PASS/FAIL against a tolerance.
- `race`: SGD, momentum, Nesterov, RMSProp, Adam and AdamW on the same problems from the
  same start, each with its best learning rate from one shared grid.
- `decay`: Adam with L2 in the loss vs AdamW's decoupled decay on an over-fitting MLP.

`report` formats the tables and writes the machine-readable results.
"""

from funcnn.lab.compare.decay import DecayResult, DecaySetting, decay_experiment, run_decay
from funcnn.lab.compare.race import (
    PROBLEMS,
    RACE_OPTIMIZERS,
    Problem,
    RaceResult,
    race_all,
    race_one,
)
from funcnn.lab.compare.report import format_table, write_json
from funcnn.lab.compare.verify import TOLERANCES, VerifyRow, formula, verify_all

__all__ = [
    "PROBLEMS",
    "RACE_OPTIMIZERS",
    "TOLERANCES",
    "DecayResult",
    "DecaySetting",
    "Problem",
    "RaceResult",
    "VerifyRow",
    "decay_experiment",
    "format_table",
    "formula",
    "race_all",
    "race_one",
    "run_decay",
    "verify_all",
    "write_json",
]
