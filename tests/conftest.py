"""Suite-wide settings: silent rank promotion is an error everywhere in the tests, and XLA's
machine-code generation runs at its lowest optimization level."""

import os
import zlib

import jax
import numpy as np
import pytest

# XLA reads XLA_FLAGS when JAX starts its backend (the first computation), not at import.
# The suite is compile-bound: thousands of small programs, each run a few times. XLA:CPU's
# LLVM back end at -O0 roughly halves their compile time. The HLO passes (fusion, layout,
# algebraic simplification) still run, so each test compiles the same optimized HLO a user's
# program gets (checked: identical dumps for a transformer's loss + grad at levels 0 and 3);
# only the machine code is less tuned. Speed is measured in benchmarks/, never here.
# Subprocesses inherit it, except tests/test_compilation.py's, which run with a user's flags.
# An XLA_FLAGS that already sets the level (to time the suite at -O3, say) wins.
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _flags:
    os.environ["XLA_FLAGS"] = f"{_flags} --xla_backend_optimization_level=0".strip()

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def rng(request):
    """A NumPy generator of the test's own: seeded from the test's id, so what a test draws
    never depends on which tests ran before it (or on which xdist worker runs it)."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


@pytest.fixture(autouse=True)
def _xla_flags_unchanged():
    """A script's main() run in-process opts into XLA:CPU's fusion option by editing
    ``XLA_FLAGS`` (funcnn.scale.xla): restore the variable so the next test in this worker
    sees funcnn's default, as a user's process would."""
    before = os.environ.get("XLA_FLAGS")
    yield
    if before is None:
        os.environ.pop("XLA_FLAGS", None)
    else:
        os.environ["XLA_FLAGS"] = before
