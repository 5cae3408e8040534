"""Suite-wide settings: silent rank promotion is an error everywhere in the tests."""

import os
import zlib

import jax
import numpy as np
import pytest

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
