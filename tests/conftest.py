"""Suite-wide settings: silent rank promotion is an error everywhere in the tests."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
