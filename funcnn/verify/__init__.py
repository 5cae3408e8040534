"""Verification: every optimizer configuration held against its float64 NumPy reference.

`registry` holds the configurations (each a funcnn optimizer and its `funcnn.reference`
counterpart) and the small nonconvex test problem they both run on; `scripts/
compare_optimizers.py verify` and `tests/test_reference_agreement.py` use it. This is the only
package that pairs `funcnn.optim` with `funcnn.reference`: the optimizers never import the
reference.
"""

from funcnn.verify import registry

__all__ = ["registry"]
