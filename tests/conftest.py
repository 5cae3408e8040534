"""Suite-wide settings: silent rank promotion is an error everywhere in the tests."""

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
