"""Moved: the verified optimizer configurations now live in `funcnn.verify`.

The registry (`CONFIGS`, now one `Spec` per configuration, and the test problem) is
`funcnn.verify.registry`; the runners (`run_funcnn`, `compare_all`, `compare`,
`Comparison`) are `funcnn.verify.runner`. `funcnn.optim.configs` re-exports them for one
version — the one module of `funcnn.optim` that reaches `funcnn.reference`, and only through
`funcnn.verify`; `import funcnn.optim` does not load it. This module will be removed in the
next version.
"""

from funcnn.verify.registry import *  # noqa: F403
from funcnn.verify.registry import __all__ as _registry_names
from funcnn.verify.runner import Comparison, compare, compare_all, run_funcnn

__all__ = [*_registry_names, "Comparison", "compare", "compare_all", "run_funcnn"]
