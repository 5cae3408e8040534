"""Verification: every optimizer configuration held against its float64 NumPy reference.

    registry   the configurations — each one `Spec` (a name and its hyperparameters, written
               once) from which both the `funcnn.optim` optimizer and its
               `funcnn.reference.optim` twin are built — and the small test problem
    runner     runs funcnn and the reference side by side and measures how far apart they end

`scripts/compare_optimizers.py verify` (through `funcnn.lab.compare.verify`) and
`tests/test_reference_agreement.py` use them. This is the only package that pairs
`funcnn.optim` with `funcnn.reference`: the optimizers never import the reference.
"""

from funcnn.verify import registry, runner

__all__ = ["registry", "runner"]
